/*
 * The run: one epoll loop that sends requests at their scheduled times
 * (open loop: Poisson or constant arrivals per stage) or keeps N in flight
 * (concurrent stages), over non-blocking HTTP/1.1 keepalive connections,
 * and times every streamed token.  A timerfd armed at the next arrival
 * wakes the loop, so the send lag is not rounded to epoll's milliseconds.
 */
#define _GNU_SOURCE  /* strcasestr */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "lg.h"


typedef enum {
    RD_HEADER = 0,
    RD_LENGTH,          /* Content-Length body */
    RD_CHUNK_SIZE,
    RD_CHUNK_DATA,
    RD_CHUNK_CRLF,
    RD_TRAILER,
    RD_UNTIL_EOF
} lg_rd_state_e;

typedef struct lg_conn_s  lg_conn_t;

struct lg_conn_s {
    int             fd;
    int             connecting;
    int             reused;       /* served a request before */
    long            req;          /* index in reqs, -1 when idle */
    lg_conn_t      *next;         /* idle list / all list */
    lg_conn_t      *all_next;

    char            whdr[512];
    size_t          whdr_len, woff;   /* woff over header + body */
    const char     *body;
    size_t          body_len;

    lg_rd_state_e   rd;
    char           *hbuf;         /* header bytes, then line scratch */
    size_t          hlen;
    long long       remaining;    /* body or chunk bytes left */
    int             chunked, close_after, got_bytes, done_marker;
    char           *ev;           /* SSE bytes not yet split into events */
    size_t          evlen, evcap;
    char           *jbody;        /* non-streamed body */
    size_t          jlen, jcap;
};

typedef struct {
    const lg_config_t    *cf;
    const lg_workload_t  *wl;
    lg_requests_t        *reqs;
    lg_self_t            *self;

    int                   ep, tfd;
    struct sockaddr_in    addr;
    char                  path[512];
    double                t0;         /* CLOCK_MONOTONIC at start */

    lg_conn_t            *idle, *all;
    long                  nconns, inflight;

    long                 *pending;    /* requests waiting for a conn */
    size_t                npending, pend_head, pend_cap;

    int                   stage;      /* current, nstages = done */
    double                stage_start, stage_end;
    double                next_send;
    long                  stage_sent;
    long                 *stage_inflight;
    double                last_timeout_check;

    size_t               *order;
    size_t                order_pos;
    uint64_t              rng;
} lg_run_t;


static double
mono(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static double
now(lg_run_t *r)
{
    return mono() - r->t0;
}


static lg_request_t *
req_of(lg_run_t *r, lg_conn_t *c)
{
    return c->req >= 0 ? &r->reqs->v[c->req] : NULL;
}


static int
push_itl(lg_request_t *q, double v)
{
    float   *n;
    size_t   cap;

    if (q->nitl == q->citl) {
        if (q->citl >= LG_MAX_ITL) {
            return -1;
        }
        cap = q->citl ? q->citl * 2 : 256;
        n = realloc(q->itl, cap * sizeof(float));
        if (n == NULL) {
            return -1;
        }
        q->itl = n;
        q->citl = cap;
    }
    q->itl[q->nitl++] = (float) v;
    return 0;
}


static void
conn_free(lg_run_t *r, lg_conn_t *c)
{
    lg_conn_t  **pp;

    for (pp = &r->all; *pp; pp = &(*pp)->all_next) {
        if (*pp == c) {
            *pp = c->all_next;
            break;
        }
    }
    /* an idle connection the server closed must not be handed out again */
    if (c->req < 0) {
        for (pp = &r->idle; *pp; pp = &(*pp)->next) {
            if (*pp == c) {
                *pp = c->next;
                break;
            }
        }
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->hbuf);
    free(c->ev);
    free(c->jbody);
    free(c);
    r->nconns--;
}


static lg_conn_t *
conn_new(lg_run_t *r)
{
    lg_conn_t           *c;
    int                  one = 1;
    struct epoll_event   ev;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->req = -1;
    c->hbuf = malloc(LG_MAX_HEADER);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->hbuf == NULL || c->fd < 0) {
        free(c->hbuf);
        if (c->fd >= 0) {
            close(c->fd);
        }
        free(c);
        return NULL;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *) &r->addr, sizeof(r->addr)) != 0) {
        if (errno != EINPROGRESS) {
            close(c->fd);
            free(c->hbuf);
            free(c);
            return NULL;
        }
        c->connecting = 1;
    }
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = c;
    if (epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        close(c->fd);
        free(c->hbuf);
        free(c);
        return NULL;
    }
    c->all_next = r->all;
    r->all = c;
    r->nconns++;
    r->self->conns_opened++;
    return c;
}


static void
conn_reset_read(lg_conn_t *c)
{
    c->rd = RD_HEADER;
    c->hlen = 0;
    c->remaining = 0;
    c->chunked = 0;
    c->close_after = 0;
    c->got_bytes = 0;
    c->done_marker = 0;
    c->evlen = 0;
    c->jlen = 0;
}


static int conn_write(lg_run_t *r, lg_conn_t *c);
static void dispatch_pending(lg_run_t *r);


static void
stage_done_one(lg_run_t *r, lg_request_t *q)
{
    r->inflight--;
    r->stage_inflight[q->stage]--;
}


/* Ends the request on c; the connection is kept when the reply allows. */
static void
finish(lg_run_t *r, lg_conn_t *c, int ok, const char *error)
{
    lg_request_t  *q = req_of(r, c);
    int            keep;

    if (q != NULL) {
        q->end = now(r);
        q->ok = ok;
        if (!ok && q->error[0] == '\0') {
            snprintf(q->error, sizeof(q->error), "%s",
                     error ? error : "failed");
        }
        stage_done_one(r, q);
    }
    /* any complete reply, error statuses included, leaves the connection
     * usable; transport failures set close_after */
    keep = !c->close_after && c->rd == RD_HEADER;
    c->req = -1;
    c->reused = 1;
    conn_reset_read(c);
    if (keep) {
        c->next = r->idle;
        r->idle = c;
    } else {
        conn_free(r, c);
    }
    dispatch_pending(r);
}


static void
start_on(lg_run_t *r, lg_conn_t *c, long id)
{
    lg_request_t       *q = &r->reqs->v[id];
    const lg_prompt_t  *p = &r->wl->prompts[q->prompt];
    int                 n;

    c->req = id;
    conn_reset_read(c);
    n = snprintf(c->whdr, sizeof(c->whdr),
                 "POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
                 "Content-Type: application/json\r\n"
                 "Accept: %s\r\nContent-Length: %zu\r\n\r\n",
                 r->path, r->cf->host, r->cf->port,
                 r->cf->stream ? "text/event-stream" : "application/json",
                 p->body_len);
    c->whdr_len = (size_t) n < sizeof(c->whdr) ? (size_t) n
                                                : sizeof(c->whdr) - 1;
    c->woff = 0;
    c->body = p->body;
    c->body_len = p->body_len;
    if (q->sent == 0) {
        q->sent = now(r);
        if (r->cf->stages[q->stage].concurrency == 0
            && r->self->nlag < r->reqs->cap)
        {
            r->self->lag[r->self->nlag++] = q->sent - q->scheduled;
        }
    }
    if (!c->connecting) {
        conn_write(r, c);
    }
}


/* A request gets an idle connection, a new one, or waits for one. */
static void
assign(lg_run_t *r, long id)
{
    lg_conn_t     *c;
    lg_request_t  *q = &r->reqs->v[id];
    long          *np;
    size_t         i, cap;

    c = r->idle;
    if (c != NULL) {
        r->idle = c->next;
        start_on(r, c, id);
        return;
    }
    if (r->nconns < r->cf->max_conns) {
        c = conn_new(r);
        if (c != NULL) {
            start_on(r, c, id);
            return;
        }
        if (r->nconns == 0) {
            q->sent = q->end = now(r);
            snprintf(q->error, sizeof(q->error), "connect: %s",
                     strerror(errno));
            stage_done_one(r, q);
            return;
        }
    }
    if (r->npending == r->pend_cap) {
        cap = r->pend_cap ? r->pend_cap * 2 : 1024;
        np = malloc(cap * sizeof(long));
        if (np == NULL) {
            q->sent = q->end = now(r);
            snprintf(q->error, sizeof(q->error), "out of memory");
            stage_done_one(r, q);
            return;
        }
        for (i = 0; i < r->npending; i++) {
            np[i] = r->pending[(r->pend_head + i) % r->pend_cap];
        }
        free(r->pending);
        r->pending = np;
        r->pend_cap = cap;
        r->pend_head = 0;
    }
    r->pending[(r->pend_head + r->npending) % r->pend_cap] = id;
    r->npending++;
}


static void
dispatch_pending(lg_run_t *r)
{
    long  id;

    while (r->npending > 0
           && (r->idle != NULL || r->nconns < r->cf->max_conns))
    {
        id = r->pending[r->pend_head];
        r->pend_head = (r->pend_head + 1) % r->pend_cap;
        r->npending--;
        assign(r, id);
    }
}


static size_t
next_prompt(lg_run_t *r)
{
    size_t  i, j, t, n = r->wl->n;

    if (r->order_pos == 0) {
        /* a fresh shuffle per pass: every prompt once, in random order */
        for (i = n - 1; i > 0; i--) {
            j = lg_rng_next(&r->rng) % (i + 1);
            t = r->order[i];
            r->order[i] = r->order[j];
            r->order[j] = t;
        }
    }
    i = r->order[r->order_pos];
    r->order_pos = (r->order_pos + 1) % n;
    return i;
}


static int
new_request(lg_run_t *r, double scheduled)
{
    lg_request_t  *q, *nv;
    double        *lag;
    size_t         cap;

    if (r->reqs->n == r->reqs->cap) {
        cap = r->reqs->cap * 2;
        nv = realloc(r->reqs->v, cap * sizeof(lg_request_t));
        if (nv == NULL) {
            return -1;
        }
        r->reqs->v = nv;
        r->reqs->cap = cap;
        lag = realloc(r->self->lag, cap * sizeof(double));
        if (lag == NULL) {
            return -1;
        }
        r->self->lag = lag;
    }
    q = &r->reqs->v[r->reqs->n];
    memset(q, 0, sizeof(*q));
    q->id = (long) r->reqs->n;
    q->stage = r->stage;
    q->prompt = (int) next_prompt(r);
    q->scheduled = scheduled;
    q->usage_prompt = q->usage_completion = q->usage_cached = -1;
    r->reqs->n++;
    r->inflight++;
    r->stage_inflight[r->stage]++;
    r->stage_sent++;
    if (r->inflight > r->self->max_inflight) {
        r->self->max_inflight = r->inflight;
    }
    assign(r, q->id);
    return 0;
}


/* The next arrival after the one just sent. */
static double
next_arrival(lg_run_t *r, const lg_stage_t *st)
{
    double  rate = st->rate * r->cf->time_scale;

    if (r->cf->load == LG_LOAD_POISSON) {
        return r->next_send - log(lg_rng_uniform(&r->rng)) / rate;
    }
    /* k / rate from the stage start: no rounding error piles up */
    return r->stage_start + (double) r->stage_sent / rate;
}


static void
begin_stage(lg_run_t *r, double t)
{
    const lg_stage_t  *st;

    if (r->stage >= r->cf->nstages) {
        return;
    }
    st = &r->cf->stages[r->stage];
    r->stage_start = t;
    r->stage_end = t + st->duration / r->cf->time_scale;
    r->stage_sent = 0;
    r->next_send = t;
    if (st->concurrency == 0 && r->cf->load == LG_LOAD_POISSON) {
        r->next_send = next_arrival(r, st);
    }
    if (!r->cf->quiet) {
        fprintf(stderr, "llmd-loadgen: stage %d started at %.1f s (%s %g)\n",
                r->stage, t * r->cf->time_scale,
                st->concurrency ? "concurrency" : "rate",
                st->concurrency ? (double) st->concurrency : st->rate);
    }
}


/* Sends what is due; moves to the next stage when this one is over. */
static int
schedule(lg_run_t *r)
{
    const lg_stage_t  *st;
    double             t;

    while (r->stage < r->cf->nstages) {
        st = &r->cf->stages[r->stage];
        t = now(r);
        if (st->concurrency > 0) {
            while (t < r->stage_end
                   && r->stage_inflight[r->stage] < st->concurrency
                   && (st->num_requests == 0
                       || r->stage_sent < st->num_requests))
            {
                if (new_request(r, t) != 0) {
                    return -1;
                }
            }
            if (t >= r->stage_end
                || (st->num_requests > 0 && r->stage_sent >= st->num_requests
                    && r->stage_inflight[r->stage] == 0))
            {
                r->stage++;
                begin_stage(r, t < r->stage_end ? t : r->stage_end);
                continue;
            }
            return 0;
        }
        /* the margin keeps k / rate == duration out of the stage */
        while (r->next_send <= t && r->next_send < r->stage_end - 1e-9) {
            if (new_request(r, r->next_send) != 0) {
                return -1;
            }
            r->next_send = next_arrival(r, st);
        }
        if (r->next_send >= r->stage_end - 1e-9) {
            if (t < r->stage_end) {
                r->next_send = r->stage_end;
                return 0;
            }
            t = r->stage_end;
            r->stage++;
            begin_stage(r, t);
            continue;
        }
        return 0;
    }
    return 0;
}


static int
conn_write(lg_run_t *r, lg_conn_t *c)
{
    struct iovec  iov[2];
    int           n = 0;
    ssize_t       w;
    size_t        total = c->whdr_len + c->body_len;

    while (c->req >= 0 && c->woff < total) {
        n = 0;
        if (c->woff < c->whdr_len) {
            iov[n].iov_base = c->whdr + c->woff;
            iov[n].iov_len = c->whdr_len - c->woff;
            n++;
            iov[n].iov_base = (void *) c->body;
            iov[n].iov_len = c->body_len;
            n++;
        } else {
            iov[n].iov_base = (void *) (c->body + (c->woff - c->whdr_len));
            iov[n].iov_len = total - c->woff;
            n++;
        }
        w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return 0;
            }
            return -1;
        }
        c->woff += (size_t) w;
    }
    return 0;
}


static void
copy_error(lg_request_t *q, const char *json, size_t len)
{
    cJSON        *o, *e, *m;
    const char   *msg = NULL;

    o = cJSON_ParseWithLength(json, len);
    e = o ? cJSON_GetObjectItemCaseSensitive(o, "error") : NULL;
    m = e ? cJSON_GetObjectItemCaseSensitive(e, "message") : NULL;
    if (cJSON_IsString(m)) {
        msg = m->valuestring;
    }
    m = o ? cJSON_GetObjectItemCaseSensitive(o, "detail") : NULL;
    if (msg == NULL && cJSON_IsString(m)) {
        msg = m->valuestring;
    }
    snprintf(q->error, sizeof(q->error), "HTTP %d%s%s", q->status,
             msg ? ": " : "", msg ? msg : "");
    cJSON_Delete(o);
}


static void
read_usage(lg_request_t *q, cJSON *o)
{
    cJSON  *u, *v, *d;

    u = cJSON_GetObjectItemCaseSensitive(o, "usage");
    if (!cJSON_IsObject(u)) {
        return;
    }
    v = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
    if (cJSON_IsNumber(v)) {
        q->usage_prompt = (long) v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
    if (cJSON_IsNumber(v)) {
        q->usage_completion = (long) v->valuedouble;
    }
    d = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens_details");
    v = cJSON_IsObject(d)
        ? cJSON_GetObjectItemCaseSensitive(d, "cached_tokens") : NULL;
    if (cJSON_IsNumber(v)) {
        q->usage_cached = (long) v->valuedouble;
    }
}


/* One SSE data payload. */
static void
sse_data(lg_run_t *r, lg_conn_t *c, const char *data, size_t len, double t)
{
    lg_request_t  *q = req_of(r, c);
    cJSON         *o, *ch, *c0, *txt, *delta;
    int            token = 0;

    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        c->done_marker = 1;
        return;
    }
    o = cJSON_ParseWithLength(data, len);
    if (o == NULL) {
        snprintf(q->error, sizeof(q->error), "bad JSON in the stream");
        return;
    }
    if (cJSON_GetObjectItemCaseSensitive(o, "error") != NULL) {
        copy_error(q, data, len);
    }
    ch = cJSON_GetObjectItemCaseSensitive(o, "choices");
    c0 = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
    if (c0 != NULL) {
        txt = cJSON_GetObjectItemCaseSensitive(c0, "text");
        if (txt == NULL) {
            delta = cJSON_GetObjectItemCaseSensitive(c0, "delta");
            txt = delta ? cJSON_GetObjectItemCaseSensitive(delta, "content")
                        : NULL;
        }
        token = cJSON_IsString(txt) && txt->valuestring[0] != '\0';
    }
    read_usage(q, o);
    cJSON_Delete(o);

    if (!token) {
        return;
    }
    q->events++;
    if (q->first_token == 0) {
        q->first_token = t;
    } else {
        push_itl(q, t - q->last_token);
    }
    q->last_token = t;
}


/* Body bytes of a streamed reply: split into events at blank lines. */
static int
sse_feed(lg_run_t *r, lg_conn_t *c, const char *p, size_t n, double t)
{
    char    *e, *line, *nl, *end, *cap;
    size_t   consumed, ll;

    if (c->evlen + n > LG_MAX_EVENT) {
        return -1;
    }
    if (c->evlen + n + 1 > c->evcap) {
        cap = realloc(c->ev, c->evlen + n + 4096);
        if (cap == NULL) {
            return -1;
        }
        c->ev = cap;
        c->evcap = c->evlen + n + 4096;
    }
    memcpy(c->ev + c->evlen, p, n);
    c->evlen += n;
    c->ev[c->evlen] = '\0';

    consumed = 0;
    for ( ;; ) {
        e = strstr(c->ev + consumed, "\n\n");
        end = strstr(c->ev + consumed, "\r\n\r\n");
        if (e == NULL || (end != NULL && end < e)) {
            e = end;
        }
        if (e == NULL) {
            break;
        }
        /* lines of one event */
        line = c->ev + consumed;
        while (line < e) {
            nl = memchr(line, '\n', e - line);
            if (nl == NULL) {
                nl = e;
            }
            ll = nl - line;
            if (ll > 0 && line[ll - 1] == '\r') {
                ll--;
            }
            if (ll >= 5 && memcmp(line, "data:", 5) == 0) {
                line += 5;
                ll -= 5;
                if (ll > 0 && *line == ' ') {
                    line++;
                    ll--;
                }
                sse_data(r, c, line, ll, t);
            }
            line = nl + 1;
        }
        consumed = (e - c->ev) + (*e == '\r' ? 4 : 2);
    }
    memmove(c->ev, c->ev + consumed, c->evlen - consumed);
    c->evlen -= consumed;
    return 0;
}


static int
payload(lg_run_t *r, lg_conn_t *c, const char *p, size_t n, double t)
{
    lg_request_t  *q = req_of(r, c);
    char          *nb;
    size_t         take;

    if (r->cf->stream && q->status == 200) {
        return sse_feed(r, c, p, n, t);
    }
    take = n;
    if (c->jlen + take > LG_MAX_BODY) {
        take = LG_MAX_BODY - c->jlen;
    }
    if (take == 0) {
        return 0;
    }
    if (c->jlen + take > c->jcap) {
        nb = realloc(c->jbody, c->jlen + take + 4096);
        if (nb == NULL) {
            return -1;
        }
        c->jbody = nb;
        c->jcap = c->jlen + take + 4096;
    }
    memcpy(c->jbody + c->jlen, p, take);
    c->jlen += take;
    return 0;
}


static void
complete(lg_run_t *r, lg_conn_t *c, double t)
{
    lg_request_t  *q = req_of(r, c);
    cJSON         *o;

    c->rd = RD_HEADER;
    if (q->status != 200) {
        copy_error(q, c->jbody ? c->jbody : "", c->jlen);
        finish(r, c, 0, NULL);
        return;
    }
    if (r->cf->stream) {
        if (q->error[0] != '\0') {
            finish(r, c, 0, NULL);
            return;
        }
        if (!c->done_marker || q->first_token == 0) {
            finish(r, c, 0, "stream ended without [DONE] or tokens");
            return;
        }
        finish(r, c, 1, NULL);
        return;
    }
    o = cJSON_ParseWithLength(c->jbody ? c->jbody : "", c->jlen);
    if (o == NULL) {
        finish(r, c, 0, "bad JSON reply");
        return;
    }
    read_usage(q, o);
    cJSON_Delete(o);
    q->first_token = q->last_token = t;
    finish(r, c, 1, NULL);
}


static int
parse_header(lg_run_t *r, lg_conn_t *c, size_t hdr_end)
{
    lg_request_t  *q = req_of(r, c);
    char          *line, *nl, *v;
    int            major, minor, status, have_len = 0;
    long long      len;

    c->hbuf[hdr_end] = '\0';
    if (sscanf(c->hbuf, "HTTP/%d.%d %d", &major, &minor, &status) != 3
        || status < 100 || status > 599)
    {
        return -1;
    }
    q->status = status;
    c->close_after = (major == 1 && minor == 0);
    line = strstr(c->hbuf, "\r\n");
    while (line != NULL && line[2] != '\0') {
        line += 2;
        nl = strstr(line, "\r\n");
        if (nl != NULL) {
            *nl = '\0';
        }
        v = strchr(line, ':');
        if (v != NULL) {
            *v++ = '\0';
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            if (strcasecmp(line, "content-length") == 0) {
                len = strtoll(v, NULL, 10);
                if (len < 0) {
                    return -1;
                }
                c->remaining = len;
                have_len = 1;
            } else if (strcasecmp(line, "transfer-encoding") == 0
                       && strcasestr(v, "chunked") != NULL)
            {
                c->chunked = 1;
            } else if (strcasecmp(line, "connection") == 0) {
                if (strcasestr(v, "close") != NULL) {
                    c->close_after = 1;
                } else if (strcasestr(v, "keep-alive") != NULL) {
                    c->close_after = 0;
                }
            } else if (strcasecmp(line, "x-sim-pod") == 0
                       || strcasecmp(line, "x-llmd-endpoint") == 0)
            {
                snprintf(q->server, sizeof(q->server), "%s", v);
            }
        }
        if (nl == NULL) {
            break;
        }
        line = nl;
    }
    if (c->chunked) {
        c->rd = RD_CHUNK_SIZE;
        c->hlen = 0;
    } else if (have_len) {
        c->rd = RD_LENGTH;
    } else {
        c->rd = RD_UNTIL_EOF;
        c->close_after = 1;
    }
    return 0;
}


/* Feeds received bytes through the reply's state machine: 1 when the reply
 * is complete (then c may be gone), -1 on a protocol error. */
static int
conn_input(lg_run_t *r, lg_conn_t *c, const char *p, size_t n, double t)
{
    size_t     i, take, hdr_end;
    char      *end;
    long long  sz;

    while (n > 0 && c->req >= 0) {
        switch (c->rd) {

        case RD_HEADER:
            take = n;
            if (c->hlen + take > LG_MAX_HEADER - 1) {
                take = LG_MAX_HEADER - 1 - c->hlen;
                if (take == 0) {
                    return -1;
                }
            }
            memcpy(c->hbuf + c->hlen, p, take);
            c->hlen += take;
            c->hbuf[c->hlen] = '\0';
            end = strstr(c->hbuf, "\r\n\r\n");
            if (end == NULL) {
                p += take;
                n -= take;
                break;
            }
            hdr_end = end - c->hbuf + 4;
            /* bytes of this read past the header go to the body */
            i = c->hlen - hdr_end;
            p += take - i;
            n -= take - i;
            if (parse_header(r, c, hdr_end - 2) != 0) {
                return -1;
            }
            c->hlen = 0;
            if (c->rd == RD_LENGTH && c->remaining == 0) {
                complete(r, c, t);
                return 1;
            }
            break;

        case RD_LENGTH:
            take = (size_t) c->remaining < n ? (size_t) c->remaining : n;
            if (payload(r, c, p, take, t) != 0) {
                return -1;
            }
            p += take;
            n -= take;
            c->remaining -= take;
            if (c->remaining == 0) {
                complete(r, c, t);
                return 1;
            }
            break;

        case RD_UNTIL_EOF:
            if (payload(r, c, p, n, t) != 0) {
                return -1;
            }
            n = 0;
            break;

        case RD_CHUNK_SIZE:
        case RD_TRAILER:
            /* one line at a time in hbuf */
            if (c->hlen >= 1024) {
                return -1;
            }
            c->hbuf[c->hlen++] = *p++;
            n--;
            if (c->hlen < 2 || c->hbuf[c->hlen - 1] != '\n') {
                break;
            }
            c->hbuf[c->hlen] = '\0';
            if (c->rd == RD_TRAILER) {
                if (c->hlen == 2 || c->hlen == 1) {
                    complete(r, c, t);
                    return 1;
                }
                c->hlen = 0;
                break;
            }
            sz = strtoll(c->hbuf, &end, 16);
            if (end == c->hbuf || sz < 0 || sz > (1LL << 40)) {
                return -1;
            }
            c->hlen = 0;
            if (sz == 0) {
                c->rd = RD_TRAILER;
            } else {
                c->remaining = sz;
                c->rd = RD_CHUNK_DATA;
            }
            break;

        case RD_CHUNK_DATA:
            take = (size_t) c->remaining < n ? (size_t) c->remaining : n;
            if (payload(r, c, p, take, t) != 0) {
                return -1;
            }
            p += take;
            n -= take;
            c->remaining -= take;
            if (c->remaining == 0) {
                c->rd = RD_CHUNK_CRLF;
                c->hlen = 0;
            }
            break;

        case RD_CHUNK_CRLF:
            if (*p == '\n') {
                c->rd = RD_CHUNK_SIZE;
                c->hlen = 0;
            } else if (*p != '\r') {
                return -1;
            }
            p++;
            n--;
            break;
        }
    }
    return 0;
}


/* A failure on c: a reused connection the server closed before answering
 * is retried once on a fresh one; anything else fails the request. */
static void
conn_error(lg_run_t *r, lg_conn_t *c, const char *what)
{
    long  id = c->req;

    if (id >= 0 && c->reused && !c->got_bytes) {
        c->req = -1;
        conn_free(r, c);
        c = conn_new(r);
        if (c != NULL) {
            start_on(r, c, id);
            return;
        }
        r->reqs->v[id].end = now(r);
        snprintf(r->reqs->v[id].error, sizeof(r->reqs->v[id].error),
                 "reconnect: %s", strerror(errno));
        stage_done_one(r, &r->reqs->v[id]);
        dispatch_pending(r);
        return;
    }
    if (id >= 0) {
        c->close_after = 1;
        finish(r, c, 0, what);
        return;
    }
    conn_free(r, c);
}


static void
conn_event(lg_run_t *r, lg_conn_t *c, uint32_t events)
{
    char       buf[65536];
    ssize_t    n;
    int        err = 0, k;
    socklen_t  elen = sizeof(err);
    double     t;

    if (c->connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err != 0) {
            errno = err;
            conn_error(r, c, "connect failed");
            return;
        }
        c->connecting = 0;
    }
    if (c->req >= 0 && (events & EPOLLOUT)) {
        if (conn_write(r, c) != 0) {
            conn_error(r, c, "write failed");
            return;
        }
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
        return;
    }
    for ( ;; ) {
        n = read(c->fd, buf, sizeof(buf));
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            conn_error(r, c, "read failed");
            return;
        }
        if (n == 0) {
            if (c->req >= 0 && c->rd == RD_UNTIL_EOF) {
                complete(r, c, now(r));
                return;
            }
            conn_error(r, c, "connection closed early");
            return;
        }
        if (c->req < 0) {
            /* bytes on an idle connection: not HTTP we understand */
            conn_free(r, c);
            return;
        }
        c->got_bytes = 1;
        t = now(r);
        k = conn_input(r, c, buf, (size_t) n, t);
        if (k < 0) {
            conn_error(r, c, "bad HTTP reply");
            return;
        }
        if (k > 0) {
            /* the request ended: c may be freed or carry the next one */
            return;
        }
    }
}


static void
check_timeouts(lg_run_t *r, double t)
{
    lg_conn_t     *c, *next;
    lg_request_t  *q;
    double         limit;

    if (r->cf->request_timeout <= 0 || t - r->last_timeout_check < 0.05) {
        return;
    }
    r->last_timeout_check = t;
    limit = r->cf->request_timeout / r->cf->time_scale;
    for (c = r->all; c != NULL; c = next) {
        next = c->all_next;
        q = req_of(r, c);
        if (q != NULL && t - q->sent > limit) {
            c->close_after = 1;
            finish(r, c, 0, "timeout");
        }
    }
}


static void
arm(lg_run_t *r, double at)
{
    struct itimerspec  its;
    double             abs_t = r->t0 + at;

    memset(&its, 0, sizeof(its));
    if (abs_t <= r->t0) {
        abs_t = r->t0 + 1e-6;
    }
    its.it_value.tv_sec = (time_t) abs_t;
    its.it_value.tv_nsec = (long) ((abs_t - (double) its.it_value.tv_sec)
                                   * 1e9);
    timerfd_settime(r->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}


int
lg_run(const lg_config_t *cf, const lg_workload_t *wl, lg_requests_t *reqs,
    lg_self_t *self, char *err, size_t errlen)
{
    lg_run_t             r;
    struct epoll_event   evs[256], ev;
    struct addrinfo      hints, *ai = NULL;
    struct rusage        ru0, ru1;
    struct timespec      rt;
    char                 port[16];
    double               t, wake, drain_end = 0;
    lg_conn_t           *c, *next;
    uint64_t             ticks;
    size_t               i;
    int                  n, k, rc = -1;

    memset(&r, 0, sizeof(r));
    r.cf = cf;
    r.wl = wl;
    r.reqs = reqs;
    r.self = self;
    r.rng = cf->seed ^ 0x5deece66dULL;
    r.ep = r.tfd = -1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", cf->port);
    if (getaddrinfo(cf->host, port, &hints, &ai) != 0 || ai == NULL) {
        snprintf(err, errlen, "cannot resolve %s", cf->host);
        return -1;
    }
    memcpy(&r.addr, ai->ai_addr, sizeof(r.addr));
    freeaddrinfo(ai);
    snprintf(r.path, sizeof(r.path), "%s/v1/%s", cf->path_prefix,
             cf->chat ? "chat/completions" : "completions");

    reqs->cap = 4096;
    reqs->n = 0;
    reqs->v = malloc(reqs->cap * sizeof(lg_request_t));
    self->lag = malloc(reqs->cap * sizeof(double));
    r.stage_inflight = calloc(cf->nstages + 1, sizeof(long));
    r.order = malloc(wl->n * sizeof(size_t));
    r.ep = epoll_create1(EPOLL_CLOEXEC);
    r.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (reqs->v == NULL || self->lag == NULL || r.stage_inflight == NULL
        || r.order == NULL || r.ep < 0 || r.tfd < 0)
    {
        snprintf(err, errlen, "out of memory or descriptors");
        goto done;
    }
    for (i = 0; i < wl->n; i++) {
        r.order[i] = i;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = NULL;
    epoll_ctl(r.ep, EPOLL_CTL_ADD, r.tfd, &ev);

    getrusage(RUSAGE_SELF, &ru0);
    clock_gettime(CLOCK_REALTIME, &rt);
    self->start_epoch = rt.tv_sec + rt.tv_nsec / 1e9;
    r.t0 = mono();
    begin_stage(&r, 0);

    for ( ;; ) {
        if (schedule(&r) != 0) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        t = now(&r);
        check_timeouts(&r, t);
        if (r.stage >= cf->nstages) {
            if (r.inflight == 0) {
                break;
            }
            if (drain_end == 0) {
                drain_end = t + cf->drain_timeout / cf->time_scale;
                if (!cf->quiet) {
                    fprintf(stderr, "llmd-loadgen: last stage over at"
                            " %.1f s, %ld requests in flight\n",
                            t * cf->time_scale, r.inflight);
                }
            }
            if (t >= drain_end) {
                break;
            }
            wake = drain_end;
        } else {
            wake = r.next_send;
            if (cf->stages[r.stage].concurrency > 0) {
                wake = r.stage_end;
            }
        }
        if (cf->request_timeout > 0 && wake > t + 0.05) {
            wake = t + 0.05;
        }
        arm(&r, wake);
        n = epoll_wait(r.ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            snprintf(err, errlen, "epoll_wait: %s", strerror(errno));
            goto done;
        }
        for (k = 0; k < n; k++) {
            if (evs[k].data.ptr == NULL) {
                if (read(r.tfd, &ticks, sizeof(ticks)) < 0) {
                    /* nothing due yet: spurious wake */
                }
                continue;
            }
            conn_event(&r, evs[k].data.ptr, evs[k].events);
        }
    }

    while (r.npending > 0) {
        lg_request_t  *q = &reqs->v[r.pending[r.pend_head]];

        r.pend_head = (r.pend_head + 1) % r.pend_cap;
        r.npending--;
        q->end = now(&r);
        snprintf(q->error, sizeof(q->error), "never sent: no connection");
        stage_done_one(&r, q);
    }

    /* what is still in flight when the drain time is over has failed */
    for (c = r.all; c != NULL; c = next) {
        next = c->all_next;
        if (c->req >= 0) {
            c->close_after = 1;
            finish(&r, c, 0, "still running at the end of the drain time");
        }
    }
    self->wall = now(&r);
    getrusage(RUSAGE_SELF, &ru1);
    self->cpu_user = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec)
                     + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6;
    self->cpu_sys = (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec)
                    + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    rc = 0;

done:
    while (r.all != NULL) {
        conn_free(&r, r.all);
    }
    free(r.pending);
    free(r.stage_inflight);
    free(r.order);
    if (r.ep >= 0) {
        close(r.ep);
    }
    if (r.tfd >= 0) {
        close(r.tfd);
    }
    return rc;
}
