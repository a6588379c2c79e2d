/*
 * The flow-control queue: see llmd_flowq.h and docs/flow-control.md.
 */

#include <string.h>

#include "core/llmd_flowq.h"


const uint64_t  llmd_flowq_hist_ms[LLMD_FLOWQ_HIST] = {
    1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
    60000, 300000
};


void
llmd_flow_defaults(llmd_flow_params_t *fp)
{
    memset(fp, 0, sizeof(llmd_flow_params_t));

    fp->ttl_ms = LLMD_FLOW_DEFAULT_TTL_MS;
    fp->no_endpoint_ttl_ms = LLMD_FLOW_DEFAULT_TTL_MS;
    fp->default_band.fairness = LLMD_FAIR_GLOBAL_STRICT;
}


const llmd_flow_band_t *
llmd_flow_band_for(const llmd_flow_params_t *fp, int32_t priority)
{
    size_t  i;

    for (i = 0; i < fp->nbands; i++) {
        if (fp->bands[i].priority == priority) {
            return &fp->bands[i];
        }
    }

    if (priority < 0 && fp->has_negative_band) {
        return &fp->negative_band;
    }

    return &fp->default_band;
}


static llmd_flowq_ticket_t *
llmd_flowq_tickets(const llmd_flowq_t *q)
{
    return (llmd_flowq_ticket_t *) (void *) ((char *) q
                                              + sizeof(llmd_flowq_t));
}


static llmd_flowq_flow_t *
llmd_flowq_flows(const llmd_flowq_t *q)
{
    return (llmd_flowq_flow_t *) (void *) (llmd_flowq_tickets(q) + q->nslots);
}


size_t
llmd_flowq_size(uint32_t nslots, uint32_t nflows)
{
    return sizeof(llmd_flowq_t) + nslots * sizeof(llmd_flowq_ticket_t)
           + nflows * sizeof(llmd_flowq_flow_t);
}


void
llmd_flowq_init(llmd_flowq_t *q, uint32_t nslots, uint32_t nflows,
    const llmd_flow_params_t *fp)
{
    memset(q, 0, llmd_flowq_size(nslots, nflows));

    q->nslots = nslots;
    q->nflows = nflows;
    q->max_bytes = fp->max_bytes;
    q->max_requests = fp->max_requests;
}


static uint64_t
llmd_band_limit(uint64_t v, uint64_t def)
{
    return v ? v : def;
}


/* The live band of a priority, created from its settings if needed. */
static llmd_flowq_band_t *
llmd_flowq_band(llmd_flowq_t *q, const llmd_flow_params_t *fp,
    int32_t priority)
{
    size_t              i;
    llmd_flowq_band_t  *b, *free_band;

    free_band = NULL;

    for (i = 0; i < LLMD_FLOWQ_BANDS; i++) {
        b = &q->bands[i];

        if (b->used && b->priority == priority) {
            return b;
        }

        if (free_band == NULL && (!b->used || b->count == 0)) {
            free_band = b;
        }
    }

    if (free_band == NULL) {
        return NULL;
    }

    /* an empty band is recycled; its flows are gone with its requests */
    memset(free_band, 0, sizeof(llmd_flowq_band_t));
    free_band->used = 1;
    free_band->priority = priority;
    free_band->cfg = *llmd_flow_band_for(fp, priority);
    free_band->cfg.priority = priority;

    return free_band;
}


static llmd_flowq_flow_t *
llmd_flowq_flow_get(llmd_flowq_t *q, uint32_t band, const char *id,
    size_t idlen)
{
    uint32_t            i;
    llmd_flowq_flow_t  *flows, *f, *free_flow;

    if (idlen >= LLMD_FLOWQ_ID_LEN) {
        idlen = LLMD_FLOWQ_ID_LEN - 1;
    }

    flows = llmd_flowq_flows(q);
    free_flow = NULL;

    for (i = 0; i < q->nflows; i++) {
        f = &flows[i];

        if (!f->used) {
            if (free_flow == NULL) {
                free_flow = f;
            }

            continue;
        }

        if (f->band == band && strncmp(f->id, id, idlen) == 0
            && f->id[idlen] == '\0')
        {
            return f;
        }
    }

    if (free_flow == NULL) {
        return NULL;
    }

    memset(free_flow, 0, sizeof(llmd_flowq_flow_t));
    free_flow->used = 1;
    free_flow->band = band;
    memcpy(free_flow->id, id, idlen);
    free_flow->id[idlen] = '\0';

    return free_flow;
}


int
llmd_flowq_enqueue(llmd_flowq_t *q, const llmd_flow_params_t *fp,
    int32_t priority, const char *id, size_t idlen, uint64_t bytes,
    uint64_t now_ms, uint32_t *ticket, uint64_t *seq)
{
    uint32_t              i, fi;
    llmd_flowq_band_t    *b;
    llmd_flowq_flow_t    *f, *flows;
    llmd_flowq_ticket_t  *t, *tickets;

    if ((q->max_requests && q->count + 1 > q->max_requests)
        || (q->max_bytes && q->bytes + bytes > q->max_bytes))
    {
        goto full;
    }

    b = llmd_flowq_band(q, fp, priority);
    if (b == NULL) {
        goto full;
    }

    if (b->count + 1
        > llmd_band_limit(b->cfg.max_requests, LLMD_FLOW_BAND_MAX_REQUESTS)
        || b->bytes + bytes
           > llmd_band_limit(b->cfg.max_bytes, LLMD_FLOW_BAND_MAX_BYTES))
    {
        goto full;
    }

    tickets = llmd_flowq_tickets(q);

    for (i = 0; i < q->nslots; i++) {
        if (tickets[i].state == LLMD_TICKET_FREE) {
            break;
        }
    }

    if (i == q->nslots) {
        goto full;
    }

    f = llmd_flowq_flow_get(q, (uint32_t) (b - q->bands) + 1, id, idlen);
    if (f == NULL) {
        goto full;
    }

    flows = llmd_flowq_flows(q);
    fi = (uint32_t) (f - flows);

    t = &tickets[i];
    memset(t, 0, sizeof(llmd_flowq_ticket_t));
    t->state = LLMD_TICKET_QUEUED;
    t->flow = fi + 1;
    t->seq = ++q->seq;
    t->bytes = bytes;
    t->enq_ms = now_ms;

    t->prev = f->tail;
    if (f->tail) {
        tickets[f->tail - 1].next = i + 1;

    } else {
        f->head = i + 1;
        /* a flow that comes back waits its turn behind those served less
           recently (round-robin) */
        f->served = b->served;
    }

    f->tail = i + 1;
    f->count++;
    f->bytes += bytes;

    b->count++;
    b->bytes += bytes;
    q->count++;
    q->bytes += bytes;
    q->enqueued++;

    *ticket = i;
    *seq = t->seq;

    return 0;

full:

    q->outcomes[LLMD_FLOWQ_REJECTED_CAPACITY]++;

    return -1;
}


int64_t
llmd_flowq_next(const llmd_flowq_t *q)
{
    uint32_t                  i;
    const llmd_flowq_band_t  *b, *best;
    llmd_flowq_flow_t        *flows, *f, *pick;
    llmd_flowq_ticket_t      *tickets;

    if (q->count == 0) {
        return -1;
    }

    best = NULL;

    for (i = 0; i < LLMD_FLOWQ_BANDS; i++) {
        b = &q->bands[i];

        if (b->used && b->count > 0
            && (best == NULL || b->priority > best->priority))
        {
            best = b;
        }
    }

    if (best == NULL) {
        return -1;
    }

    flows = llmd_flowq_flows(q);
    tickets = llmd_flowq_tickets(q);
    pick = NULL;

    for (i = 0; i < q->nflows; i++) {
        f = &flows[i];

        if (!f->used || f->count == 0
            || f->band != (uint32_t) (best - q->bands) + 1)
        {
            continue;
        }

        if (pick == NULL) {
            pick = f;
            continue;
        }

        if (best->cfg.fairness == LLMD_FAIR_ROUND_ROBIN
            && f->served != pick->served)
        {
            if (f->served < pick->served) {
                pick = f;
            }

            continue;
        }

        if (tickets[f->head - 1].seq < tickets[pick->head - 1].seq) {
            pick = f;
        }
    }

    if (pick == NULL) {
        return -1;
    }

    return (int64_t) pick->head - 1;
}


/* Takes a queued ticket out of its flow, band and the totals. */
static void
llmd_flowq_unlink(llmd_flowq_t *q, llmd_flowq_ticket_t *t)
{
    llmd_flowq_band_t    *b;
    llmd_flowq_flow_t    *f;
    llmd_flowq_ticket_t  *tickets;

    tickets = llmd_flowq_tickets(q);
    f = &llmd_flowq_flows(q)[t->flow - 1];
    b = &q->bands[f->band - 1];

    if (t->prev) {
        tickets[t->prev - 1].next = t->next;

    } else {
        f->head = t->next;
    }

    if (t->next) {
        tickets[t->next - 1].prev = t->prev;

    } else {
        f->tail = t->prev;
    }

    t->next = 0;
    t->prev = 0;

    f->count--;
    f->bytes -= t->bytes;
    b->count--;
    b->bytes -= t->bytes;
    q->count--;
    q->bytes -= t->bytes;

    if (f->count == 0) {
        f->used = 0;
    }
}


static void
llmd_flowq_record_wait(llmd_flowq_t *q, uint64_t ms)
{
    size_t  i;

    for (i = 0; i < LLMD_FLOWQ_HIST; i++) {
        if (ms <= llmd_flowq_hist_ms[i]) {
            break;
        }
    }

    q->wait_hist[i]++;
    q->wait_ms_sum += ms;
}


void
llmd_flowq_grant(llmd_flowq_t *q, uint32_t ticket, uint64_t now_ms)
{
    llmd_flowq_band_t    *b;
    llmd_flowq_flow_t    *f;
    llmd_flowq_ticket_t  *t;

    if (ticket >= q->nslots) {
        return;
    }

    t = &llmd_flowq_tickets(q)[ticket];

    if (t->state != LLMD_TICKET_QUEUED) {
        return;
    }

    f = &llmd_flowq_flows(q)[t->flow - 1];
    b = &q->bands[f->band - 1];

    b->served++;
    f->served = b->served;

    llmd_flowq_unlink(q, t);
    t->state = LLMD_TICKET_GRANTED;
    t->grant_ms = now_ms;
    q->granted++;

    llmd_flowq_record_wait(q, now_ms > t->enq_ms ? now_ms - t->enq_ms : 0);
}


uint32_t
llmd_flowq_state(const llmd_flowq_t *q, uint32_t ticket, uint64_t seq)
{
    const llmd_flowq_ticket_t  *t;

    if (ticket >= q->nslots) {
        return LLMD_TICKET_FREE;
    }

    t = &llmd_flowq_tickets(q)[ticket];

    return t->seq == seq ? t->state : LLMD_TICKET_FREE;
}


void
llmd_flowq_release(llmd_flowq_t *q, uint32_t ticket, uint64_t seq,
    llmd_flowq_outcome_t outcome, uint64_t now_ms)
{
    llmd_flowq_ticket_t  *t;

    if (llmd_flowq_state(q, ticket, seq) == LLMD_TICKET_FREE) {
        return;
    }

    t = &llmd_flowq_tickets(q)[ticket];

    if (t->state == LLMD_TICKET_GRANTED) {
        q->outcomes[LLMD_FLOWQ_DISPATCHED]++;
        q->granted--;

    } else if (t->state == LLMD_TICKET_RUNNING) {
        q->running--;

    } else {
        llmd_flowq_unlink(q, t);
        llmd_flowq_record_wait(q, now_ms > t->enq_ms
                                  ? now_ms - t->enq_ms : 0);
        q->outcomes[outcome]++;
    }

    t->state = LLMD_TICKET_FREE;
}


void
llmd_flowq_collect(llmd_flowq_t *q, uint32_t ticket, uint64_t seq)
{
    llmd_flowq_ticket_t  *t;

    if (llmd_flowq_state(q, ticket, seq) != LLMD_TICKET_GRANTED) {
        return;
    }

    t = &llmd_flowq_tickets(q)[ticket];
    t->state = LLMD_TICKET_RUNNING;
    q->granted--;
    q->running++;
    q->outcomes[LLMD_FLOWQ_DISPATCHED]++;
}


uint32_t
llmd_flowq_reap(llmd_flowq_t *q, uint64_t now_ms, uint64_t queued_max_ms,
    uint64_t granted_max_ms)
{
    uint32_t              i, n;
    llmd_flowq_ticket_t  *t;

    n = 0;

    for (i = 0; i < q->nslots; i++) {
        t = &llmd_flowq_tickets(q)[i];

        if (t->state == LLMD_TICKET_QUEUED && queued_max_ms
            && now_ms > t->enq_ms && now_ms - t->enq_ms > queued_max_ms)
        {
            llmd_flowq_release(q, i, t->seq, LLMD_FLOWQ_EVICTED_TTL, now_ms);
            n++;

        } else if (t->state == LLMD_TICKET_GRANTED && granted_max_ms
                   && now_ms > t->grant_ms
                   && now_ms - t->grant_ms > granted_max_ms)
        {
            q->granted--;
            t->state = LLMD_TICKET_FREE;
            n++;
        }
    }

    return n;
}


const llmd_flowq_ticket_t *
llmd_flowq_ticket(const llmd_flowq_t *q, uint32_t i)
{
    return i < q->nslots ? &llmd_flowq_tickets(q)[i] : NULL;
}


const llmd_flowq_flow_t *
llmd_flowq_flow(const llmd_flowq_t *q, uint32_t i)
{
    return i < q->nflows ? &llmd_flowq_flows(q)[i] : NULL;
}
