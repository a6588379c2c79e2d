/*
 * The flow-control queue (llm-d's flow control, docs/flow-control.md):
 * requests that find the pool saturated wait here, in priority bands
 * (higher priority first), within a band per flow (fairness id), each flow
 * first come first served; the next request to dispatch is taken from the
 * highest non-empty band by its fairness policy (global-strict: the oldest
 * head of any flow; round-robin: the flow served longest ago). Bounded by
 * count and bytes, globally and per band.
 *
 * The queue is one flat region of plain data addressed by indexes only, so
 * it can live in shared memory mapped anywhere; the caller serialises
 * every call (the nginx glue holds the zone's mutex).
 */

#ifndef LLMD_FLOWQ_H
#define LLMD_FLOWQ_H

#include "core/llmd_common.h"

#define LLMD_FLOW_MAX_BANDS        16      /* configured priorityBands */
#define LLMD_FLOWQ_BANDS           32      /* bands live at once */
#define LLMD_FLOWQ_ID_LEN          64      /* fairness id, truncated */
#define LLMD_FLOWQ_HIST            15      /* wait histogram buckets */

/* llm-d's defaults */
#define LLMD_FLOW_DEFAULT_TTL_MS          60000
#define LLMD_FLOW_BAND_MAX_BYTES          1000000000ULL
#define LLMD_FLOW_BAND_MAX_REQUESTS       5000
#define LLMD_FLOW_DEFAULT_FAIRNESS_ID     "default-flow"

typedef enum {
    LLMD_FAIR_GLOBAL_STRICT = 0,      /* global-strict-fairness-policy */
    LLMD_FAIR_ROUND_ROBIN             /* round-robin-fairness-policy */
} llmd_fairness_t;

typedef struct {
    int32_t          priority;
    uint64_t         max_bytes;        /* 0: LLMD_FLOW_BAND_MAX_BYTES */
    uint64_t         max_requests;     /* 0: LLMD_FLOW_BAND_MAX_REQUESTS */
    llmd_fairness_t  fairness;
} llmd_flow_band_t;

/* The EndpointPickerConfig's featureGates and flowControl block. */
typedef struct {
    int               enabled;         /* featureGates: flowControl */
    uint64_t          max_bytes;       /* 0: no global bound */
    uint64_t          max_requests;    /* 0: no global bound */
    uint64_t          ttl_ms;          /* defaultRequestTTL; 0: none */
    uint64_t          no_endpoint_ttl_ms; /* noEndpointRequestTTL */
    llmd_flow_band_t  default_band;    /* template, priority unused */
    int               has_negative_band;
    llmd_flow_band_t  negative_band;   /* defaultNegativePriorityBand */
    llmd_flow_band_t  bands[LLMD_FLOW_MAX_BANDS];
    size_t            nbands;
} llmd_flow_params_t;

/* llm-d's defaults: gate off, TTLs 60 s, no global bounds. */
void llmd_flow_defaults(llmd_flow_params_t *fp);

/* The band settings that apply to a priority. */
const llmd_flow_band_t *llmd_flow_band_for(const llmd_flow_params_t *fp,
    int32_t priority);

/* Ticket states */
#define LLMD_TICKET_FREE      0
#define LLMD_TICKET_QUEUED    1
#define LLMD_TICKET_GRANTED   2   /* may dispatch; the owner collects it */
#define LLMD_TICKET_RUNNING   3   /* collected: the request is in flight */

/* Outcomes counted */
typedef enum {
    LLMD_FLOWQ_DISPATCHED = 0,
    LLMD_FLOWQ_REJECTED_CAPACITY,
    LLMD_FLOWQ_EVICTED_TTL,
    LLMD_FLOWQ_EVICTED_CANCELLED,
    LLMD_FLOWQ_NOUTCOMES
} llmd_flowq_outcome_t;

typedef struct {
    uint32_t   state;
    uint32_t   flow;           /* flow index + 1 */
    uint32_t   next;           /* in the flow's FIFO, index + 1; 0: none */
    uint32_t   prev;
    uint64_t   seq;            /* arrival order; identifies the ticket */
    uint64_t   bytes;
    uint64_t   enq_ms;
    uint64_t   grant_ms;
} llmd_flowq_ticket_t;

typedef struct {
    uint32_t   used;
    uint32_t   band;           /* band index + 1 */
    uint32_t   head, tail;     /* ticket index + 1 */
    uint32_t   count;
    uint64_t   bytes;
    uint64_t   served;         /* band's dispatch stamp of its last grant */
    char       id[LLMD_FLOWQ_ID_LEN];
} llmd_flowq_flow_t;

typedef struct {
    uint32_t         used;
    int32_t          priority;
    llmd_flow_band_t cfg;
    uint32_t         count;
    uint64_t         bytes;
    uint64_t         served;   /* grants so far */
} llmd_flowq_band_t;

typedef struct {
    uint32_t            nslots;
    uint32_t            nflows;
    uint64_t            seq;
    uint32_t            count;
    uint64_t            bytes;
    uint32_t            granted;   /* granted, not yet collected */
    uint32_t            running;   /* collected, not yet released */
    uint64_t            max_bytes;
    uint64_t            max_requests;
    uint64_t            outcomes[LLMD_FLOWQ_NOUTCOMES];
    uint64_t            enqueued;
    uint64_t            wait_hist[LLMD_FLOWQ_HIST + 1];
    uint64_t            wait_ms_sum;
    llmd_flowq_band_t   bands[LLMD_FLOWQ_BANDS];
    /* nslots tickets, then nflows flows */
} llmd_flowq_t;

/* Wait histogram upper bounds, milliseconds (+Inf implied). */
extern const uint64_t  llmd_flowq_hist_ms[LLMD_FLOWQ_HIST];

/* Bytes of a queue with nslots tickets and nflows flows. */
size_t llmd_flowq_size(uint32_t nslots, uint32_t nflows);

void llmd_flowq_init(llmd_flowq_t *q, uint32_t nslots, uint32_t nflows,
    const llmd_flow_params_t *fp);

/*
 * Queues a request; 0 with *ticket (index) and *seq, or -1 when a bound
 * (global or band, count or bytes), the ticket or the flow table is full
 * (counted as rejected).
 */
int llmd_flowq_enqueue(llmd_flowq_t *q, const llmd_flow_params_t *fp,
    int32_t priority, const char *id, size_t idlen, uint64_t bytes,
    uint64_t now_ms, uint32_t *ticket, uint64_t *seq);

/* The ticket that dispatches next, or -1 when nothing waits. */
int64_t llmd_flowq_next(const llmd_flowq_t *q);

/* Grants the ticket: out of the queue, may dispatch; the wait recorded. */
void llmd_flowq_grant(llmd_flowq_t *q, uint32_t ticket, uint64_t now_ms);

/* The ticket's state if it still holds seq, else LLMD_TICKET_FREE. */
uint32_t llmd_flowq_state(const llmd_flowq_t *q, uint32_t ticket,
    uint64_t seq);

/*
 * The owner collects its granted ticket: counted dispatched; the ticket
 * stays RUNNING (in q->running) until released when the request ends, so
 * that admitted requests are counted from their grant on.
 */
void llmd_flowq_collect(llmd_flowq_t *q, uint32_t ticket, uint64_t seq);

/*
 * The owner is done with the ticket: a queued ticket leaves the queue with
 * the outcome (expired, cancelled) and its wait recorded; a granted one is
 * counted dispatched, a running one just ends (outcome ignored). Nothing
 * if seq no longer matches.
 */
void llmd_flowq_release(llmd_flowq_t *q, uint32_t ticket, uint64_t seq,
    llmd_flowq_outcome_t outcome, uint64_t now_ms);

/*
 * Frees tickets whose owner is gone (a process that died): queued longer
 * than queued_max_ms (0: never) or granted and not collected for
 * granted_max_ms (running tickets are never reaped). Returns how many.
 */
uint32_t llmd_flowq_reap(llmd_flowq_t *q, uint64_t now_ms,
    uint64_t queued_max_ms, uint64_t granted_max_ms);

/* The i-th ticket and flow, for status pages. */
const llmd_flowq_ticket_t *llmd_flowq_ticket(const llmd_flowq_t *q,
    uint32_t i);
const llmd_flowq_flow_t *llmd_flowq_flow(const llmd_flowq_t *q, uint32_t i);

#endif /* LLMD_FLOWQ_H */
