/*
 * The run: one epoll loop that sends requests when the arrival schedule
 * (lg_arrivals.h) says they are due, over non-blocking HTTP/1.1 keepalive
 * connections, and times every streamed token.  Replies go through the
 * HTTP parser (lg_http.h) and, when streamed, the SSE parser (lg_sse.h).
 * A timerfd armed at the next arrival wakes the loop, so the send lag is
 * not rounded to epoll's milliseconds.
 *
 * In the inference-perf-v0.2 mode a request has a connection of its own,
 * closed after the reply (inference-perf opens an aiohttp session per
 * request), the stream's lines are stamped (lg_lines.h) and the output
 * text is kept until its tokens are counted, as inference-perf counts
 * them.
 */
#include <errno.h>
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
#include "lg_arrivals.h"
#include "lg_http.h"
#include "lg_sse.h"


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

    lg_http_t       http;         /* the reply */
    int             got_bytes, done_marker;
    lg_sse_t        sse;          /* streamed body */
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

    lg_arrivals_t         arr;
    long                 *stage_inflight;
    double                last_timeout_check;

    size_t               *order;
    size_t                order_pos;
    uint64_t              rng;
} lg_run_t;


static double lg_monotonic(void);
static double lg_run_now(lg_run_t *r);
static lg_request_t *lg_conn_request(lg_run_t *r, lg_conn_t *c);
static int lg_request_push_itl(lg_request_t *q, double v);
static void lg_conn_free(lg_run_t *r, lg_conn_t *c);
static lg_conn_t *lg_conn_new(lg_run_t *r);
static void lg_conn_reset_read(lg_conn_t *c);
static void lg_run_retire(lg_run_t *r, lg_request_t *q);
static int lg_conn_peer_closed(lg_conn_t *c);
static void lg_request_finish(lg_run_t *r, lg_conn_t *c, int ok,
    const char *error);
static void lg_request_start(lg_run_t *r, lg_conn_t *c, long id);
static void lg_request_assign(lg_run_t *r, long id);
static void lg_run_dispatch_pending(lg_run_t *r);
static size_t lg_run_next_prompt(lg_run_t *r);
static int lg_request_new(lg_run_t *r, double scheduled);
static void lg_run_stage_note(lg_run_t *r);
static int lg_run_schedule(lg_run_t *r);
static int lg_conn_write(lg_run_t *r, lg_conn_t *c);
static void lg_request_error_json(lg_request_t *q, const char *json,
    size_t len);
static void lg_request_usage(lg_request_t *q, cJSON *o);
static void lg_request_text(lg_request_t *q, const char *text);
static void lg_request_count_text(lg_run_t *r, lg_request_t *q);
static void lg_stream_data(lg_run_t *r, lg_request_t *q, const char *data,
    size_t len, double t);
static int lg_stream_feed(lg_run_t *r, lg_conn_t *c, const char *p,
    size_t n, double t);
static int lg_reply_body(lg_run_t *r, lg_conn_t *c, const char *p, size_t n,
    double t);
static void lg_reply_complete(lg_run_t *r, lg_conn_t *c, double t);
static int lg_conn_input(lg_run_t *r, lg_conn_t *c, const char *p, size_t n,
    double t);
static void lg_conn_error(lg_run_t *r, lg_conn_t *c, const char *what);
static void lg_conn_event(lg_run_t *r, lg_conn_t *c, uint32_t events);
static void lg_run_check_timeouts(lg_run_t *r, double t);
static void lg_run_arm(lg_run_t *r, double at);


static double
lg_monotonic(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static double
lg_run_now(lg_run_t *r)
{
    return lg_monotonic() - r->t0;
}


static lg_request_t *
lg_conn_request(lg_run_t *r, lg_conn_t *c)
{
    return c->req >= 0 ? &r->reqs->v[c->req] : NULL;
}


static int
lg_request_push_itl(lg_request_t *q, double v)
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
lg_conn_free(lg_run_t *r, lg_conn_t *c)
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
    free(c->http.buf);
    lg_sse_free(&c->sse);
    free(c->jbody);
    free(c);
    r->nconns--;
}


static lg_conn_t *
lg_conn_new(lg_run_t *r)
{
    lg_conn_t           *c;
    int                  one = 1;
    struct epoll_event   ev;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->req = -1;
    lg_http_init(&c->http, malloc(LG_MAX_HEADER), LG_MAX_HEADER);
    lg_sse_init(&c->sse, LG_MAX_EVENT);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->http.buf == NULL || c->fd < 0) {
        free(c->http.buf);
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
            free(c->http.buf);
            free(c);
            return NULL;
        }
        c->connecting = 1;
    }
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = c;
    if (epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        close(c->fd);
        free(c->http.buf);
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
lg_conn_reset_read(lg_conn_t *c)
{
    lg_http_reset(&c->http);
    c->got_bytes = 0;
    c->done_marker = 0;
    lg_sse_reset(&c->sse);
    c->jlen = 0;
}


static void
lg_run_retire(lg_run_t *r, lg_request_t *q)
{
    r->inflight--;
    r->stage_inflight[q->stage]--;
}


/* Whether the server already closed its side of c (EOF is waiting). */
static int
lg_conn_peer_closed(lg_conn_t *c)
{
    char  byte;

    return recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}


/* Ends the request on c; the connection is kept when the reply allows. */
static void
lg_request_finish(lg_run_t *r, lg_conn_t *c, int ok, const char *error)
{
    lg_request_t  *q = lg_conn_request(r, c);
    int            keep;

    if (q != NULL) {
        q->end = lg_run_now(r);
        q->ok = ok;
        if (!ok && q->error[0] == '\0') {
            snprintf(q->error, sizeof(q->error), "%s",
                     error ? error : "failed");
        }
        lg_run_retire(r, q);
    }
    /* any complete reply, error statuses included, leaves the connection
     * usable unless the server said it closes it, or closed it already:
     * with edge-triggered events, a FIN that came with the last bytes of
     * the reply is announced once, while the reply is read, and a request
     * sent on the half-closed connection would wait forever */
    keep = c->http.state == LG_HTTP_COMPLETE && !c->http.close
           && !lg_conn_peer_closed(c);
    if (r->cf->mode == LG_MODE_IP_V02) {
        keep = 0;
    }
    c->req = -1;
    c->reused = 1;
    lg_conn_reset_read(c);
    if (keep) {
        c->next = r->idle;
        r->idle = c;
    } else {
        lg_conn_free(r, c);
    }
    lg_run_dispatch_pending(r);
}


static void
lg_request_start(lg_run_t *r, lg_conn_t *c, long id)
{
    lg_request_t       *q = &r->reqs->v[id];
    const lg_prompt_t  *p = &r->wl->prompts[q->prompt];
    int                 n;

    c->req = id;
    lg_conn_reset_read(c);
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
        q->sent = lg_run_now(r);
        if (r->cf->stages[q->stage].concurrency == 0
            && r->self->nlag < r->reqs->cap)
        {
            r->self->lag[r->self->nlag++] = q->sent - q->scheduled;
        }
    }
    if (!c->connecting) {
        lg_conn_write(r, c);
    }
}


/* A request gets an idle connection, a new one, or waits for one. */
static void
lg_request_assign(lg_run_t *r, long id)
{
    lg_conn_t     *c;
    lg_request_t  *q = &r->reqs->v[id];
    long          *np;
    size_t         i, cap;

    c = r->idle;
    if (c != NULL) {
        r->idle = c->next;
        lg_request_start(r, c, id);
        return;
    }
    if (r->nconns < r->cf->max_conns) {
        c = lg_conn_new(r);
        if (c != NULL) {
            lg_request_start(r, c, id);
            return;
        }
        if (r->nconns == 0) {
            q->sent = q->end = lg_run_now(r);
            snprintf(q->error, sizeof(q->error), "connect: %s",
                     strerror(errno));
            lg_run_retire(r, q);
            return;
        }
    }
    if (r->npending == r->pend_cap) {
        cap = r->pend_cap ? r->pend_cap * 2 : 1024;
        np = malloc(cap * sizeof(long));
        if (np == NULL) {
            q->sent = q->end = lg_run_now(r);
            snprintf(q->error, sizeof(q->error), "out of memory");
            lg_run_retire(r, q);
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
lg_run_dispatch_pending(lg_run_t *r)
{
    long  id;

    while (r->npending > 0
           && (r->idle != NULL || r->nconns < r->cf->max_conns))
    {
        id = r->pending[r->pend_head];
        r->pend_head = (r->pend_head + 1) % r->pend_cap;
        r->npending--;
        lg_request_assign(r, id);
    }
}


static size_t
lg_run_next_prompt(lg_run_t *r)
{
    size_t  i, j, t, n = r->wl->n;

    if (r->cf->mode == LG_MODE_IP_V02) {
        /* the k-th request of every stage: prompt k of the shuffled list */
        return (size_t) r->arr.stage_sent % n;
    }

    if (r->order_pos == 0 && r->cf->group_bursts
        && r->cf->prompts_per_group > 0)
    {
        /* groups in random order, each group's siblings one after another
           (prompt g * per + p is sibling p of group g) */
        size_t  g, per = (size_t) r->cf->prompts_per_group, ng = n / per;

        for (g = 0; g < ng; g++) {
            r->order[g] = g;
        }
        for (i = ng - 1; ng > 1 && i > 0; i--) {
            j = lg_rng_next(&r->rng) % (i + 1);
            t = r->order[i];
            r->order[i] = r->order[j];
            r->order[j] = t;
        }
        for (g = ng; g-- > 0; ) {
            for (i = per; i-- > 0; ) {
                r->order[g * per + i] = r->order[g] * per + i;
            }
        }

    } else if (r->order_pos == 0) {
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
lg_request_new(lg_run_t *r, double scheduled)
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
    q->stage = r->arr.stage;
    q->prompt = (int) lg_run_next_prompt(r);
    q->scheduled = scheduled;
    q->usage_prompt = q->usage_completion = q->usage_cached = -1;
    q->text_tokens = -1;
    r->reqs->n++;
    r->inflight++;
    r->stage_inflight[q->stage]++;
    if (r->inflight > r->self->max_inflight) {
        r->self->max_inflight = r->inflight;
    }
    lg_request_assign(r, q->id);
    return 0;
}


/* Says that a stage began, at its time in the simulated run. */
static void
lg_run_stage_note(lg_run_t *r)
{
    const lg_arrivals_t  *a = &r->arr;
    const lg_stage_t     *st;

    if (a->stage >= r->cf->nstages || r->cf->quiet) {
        return;
    }
    st = &r->cf->stages[a->stage];
    fprintf(stderr, "llmd-loadgen: stage %d started at %.1f s (%s %g)\n",
            a->stage, a->stage_start * r->cf->time_scale,
            st->concurrency ? "concurrency" : "rate",
            st->concurrency ? (double) st->concurrency : st->rate);
}


/* Sends what is due; moves to the next stage when this one is over. */
static int
lg_run_schedule(lg_run_t *r)
{
    lg_arrivals_t  *a = &r->arr;
    double          t, at;

    while (a->stage < r->cf->nstages) {
        t = lg_run_now(r);
        while (lg_arrivals_due(a, t, r->stage_inflight[a->stage], &at)) {
            if (lg_request_new(r, at) != 0) {
                return -1;
            }
            lg_arrivals_sent(a);
        }
        if (!lg_arrivals_next_stage(a, t, r->stage_inflight[a->stage])) {
            return 0;
        }
        lg_run_stage_note(r);
    }
    return 0;
}


static int
lg_conn_write(lg_run_t *r, lg_conn_t *c)
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
lg_request_error_json(lg_request_t *q, const char *json, size_t len)
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
lg_request_usage(lg_request_t *q, cJSON *o)
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


/* Appends to the output text (inference-perf mode); drops it when there
 * is no memory, so that it is not counted. */
static void
lg_request_text(lg_request_t *q, const char *text)
{
    size_t   len = strlen(text), cap;
    char    *n;

    if (q->text_len + len + 1 > q->text_cap) {
        cap = (q->text_len + len + 1) * 2 + 256;
        n = realloc(q->text, cap);
        if (n == NULL) {
            free(q->text);
            q->text = NULL;
            q->text_len = q->text_cap = 0;
            snprintf(q->error, sizeof(q->error), "out of memory");
            return;
        }
        q->text = n;
        q->text_cap = cap;
    }
    memcpy(q->text + q->text_len, text, len + 1);
    q->text_len += len;
}


/* The output's tokens as inference-perf counts them; the text goes. */
static void
lg_request_count_text(lg_run_t *r, lg_request_t *q)
{
    q->text_tokens = lg_workload_count(r->wl, q->text ? q->text : "",
                                       q->text_len);
    free(q->text);
    q->text = NULL;
    q->text_len = q->text_cap = 0;
}


/* One SSE data payload: a chunk of the reply, maybe a token. */
static void
lg_stream_data(lg_run_t *r, lg_request_t *q, const char *data, size_t len,
    double t)
{
    cJSON  *o, *ch, *c0, *txt, *delta;
    int     token = 0;

    o = cJSON_ParseWithLength(data, len);
    if (o == NULL) {
        snprintf(q->error, sizeof(q->error), "bad JSON in the stream");
        return;
    }
    if (cJSON_GetObjectItemCaseSensitive(o, "error") != NULL) {
        lg_request_error_json(q, data, len);
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
        if (token && r->cf->mode == LG_MODE_IP_V02) {
            lg_request_text(q, txt->valuestring);
        }
    }
    lg_request_usage(q, o);
    cJSON_Delete(o);

    if (!token) {
        return;
    }
    q->events++;
    if (q->first_token == 0) {
        q->first_token = t;
    } else {
        lg_request_push_itl(q, t - q->last_token);
    }
    q->last_token = t;
}


/* Body bytes of a streamed reply: every data line of its events. */
static int
lg_stream_feed(lg_run_t *r, lg_conn_t *c, const char *p, size_t n, double t)
{
    const char  *data;
    size_t       len;
    int          rc;

    if (lg_sse_feed(&c->sse, p, n) != 0) {
        return -1;
    }
    while ((rc = lg_sse_next(&c->sse, &data, &len)) != LG_SSE_AGAIN) {
        if (rc == LG_SSE_DONE) {
            c->done_marker = 1;
        } else {
            lg_stream_data(r, lg_conn_request(r, c), data, len, t);
        }
    }
    return 0;
}


static int
lg_reply_body(lg_run_t *r, lg_conn_t *c, const char *p, size_t n, double t)
{
    lg_request_t  *q = lg_conn_request(r, c);
    char          *nb;
    size_t         take;

    if (r->cf->stream && q->status == 200) {
        if (r->cf->mode == LG_MODE_IP_V02
            && lg_lines_feed(&q->lines, p, n, t) != 0)
        {
            return -1;
        }
        return lg_stream_feed(r, c, p, n, t);
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
lg_reply_complete(lg_run_t *r, lg_conn_t *c, double t)
{
    lg_request_t  *q = lg_conn_request(r, c);
    cJSON         *o, *ch, *c0, *txt;

    if (r->cf->mode == LG_MODE_IP_V02 && lg_lines_eof(&q->lines, t) != 0) {
        lg_request_finish(r, c, 0, "out of memory");
        return;
    }
    if (q->status != 200) {
        lg_request_error_json(q, c->jbody ? c->jbody : "", c->jlen);
        lg_request_finish(r, c, 0, NULL);
        return;
    }
    if (r->cf->stream) {
        if (q->error[0] != '\0') {
            lg_request_finish(r, c, 0, NULL);
            return;
        }
        if (!c->done_marker || q->first_token == 0) {
            lg_request_finish(r, c, 0,
                              "stream ended without [DONE] or tokens");
            return;
        }
        if (r->cf->mode == LG_MODE_IP_V02) {
            lg_request_count_text(r, q);
        }
        lg_request_finish(r, c, 1, NULL);
        return;
    }
    o = cJSON_ParseWithLength(c->jbody ? c->jbody : "", c->jlen);
    if (o == NULL) {
        lg_request_finish(r, c, 0, "bad JSON reply");
        return;
    }
    lg_request_usage(q, o);
    if (r->cf->mode == LG_MODE_IP_V02) {
        ch = cJSON_GetObjectItemCaseSensitive(o, "choices");
        c0 = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
        txt = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "text") : NULL;
        if (cJSON_IsString(txt)) {
            lg_request_text(q, txt->valuestring);
        }
        lg_request_count_text(r, q);
    }
    cJSON_Delete(o);
    q->first_token = q->last_token = t;
    lg_request_finish(r, c, 1, NULL);
}


/* Feeds received bytes through the reply's parser: 1 when the reply is
 * complete (then c may be gone), -1 on a protocol error. */
static int
lg_conn_input(lg_run_t *r, lg_conn_t *c, const char *p, size_t n, double t)
{
    lg_request_t  *q = lg_conn_request(r, c);
    size_t         used;
    int            rc;

    for ( ;; ) {
        rc = lg_http_parse(&c->http, p, n, &used);
        p += used;
        n -= used;

        switch (rc) {

        case LG_HTTP_AGAIN:
            return 0;

        case LG_HTTP_STATUS:
            q->status = c->http.status;
            break;

        case LG_HTTP_FIELD:
            if (strcasecmp(c->http.name, "x-sim-pod") == 0
                || strcasecmp(c->http.name, "x-llmd-endpoint") == 0)
            {
                snprintf(q->server, sizeof(q->server), "%s", c->http.value);

            } else if (strcasecmp(c->http.name, "x-llmd-queue-us") == 0) {
                /* nginx's $llmd_queue_us, when the location adds it */
                q->gw_queue = strtod(c->http.value, NULL) / 1e6;
                q->have_gw_queue = 1;
            }
            break;

        case LG_HTTP_BODY:
            if (lg_reply_body(r, c, c->http.body, c->http.body_len, t) != 0) {
                return -1;
            }
            break;

        case LG_HTTP_DONE:
            /* bytes after the reply are not one we asked for */
            lg_reply_complete(r, c, t);
            return 1;

        default:
            return -1;
        }
    }
}


/* A failure on c: a reused connection the server closed before answering
 * is retried once on a fresh one; anything else fails the request. */
static void
lg_conn_error(lg_run_t *r, lg_conn_t *c, const char *what)
{
    long  id = c->req;

    if (id >= 0 && c->reused && !c->got_bytes) {
        c->req = -1;
        lg_conn_free(r, c);
        c = lg_conn_new(r);
        if (c != NULL) {
            lg_request_start(r, c, id);
            return;
        }
        r->reqs->v[id].end = lg_run_now(r);
        snprintf(r->reqs->v[id].error, sizeof(r->reqs->v[id].error),
                 "reconnect: %s", strerror(errno));
        lg_run_retire(r, &r->reqs->v[id]);
        lg_run_dispatch_pending(r);
        return;
    }
    if (id >= 0) {
        lg_request_finish(r, c, 0, what);
        return;
    }
    lg_conn_free(r, c);
}


static void
lg_conn_event(lg_run_t *r, lg_conn_t *c, uint32_t events)
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
            lg_conn_error(r, c, "connect failed");
            return;
        }
        c->connecting = 0;
    }
    if (c->req >= 0 && (events & EPOLLOUT)) {
        if (lg_conn_write(r, c) != 0) {
            lg_conn_error(r, c, "write failed");
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
            lg_conn_error(r, c, "read failed");
            return;
        }
        if (n == 0) {
            if (c->req >= 0 && lg_http_eof(&c->http) == LG_HTTP_DONE) {
                lg_reply_complete(r, c, lg_run_now(r));
                return;
            }
            lg_conn_error(r, c, "connection closed early");
            return;
        }
        if (c->req < 0) {
            /* bytes on an idle connection: not HTTP we understand */
            lg_conn_free(r, c);
            return;
        }
        c->got_bytes = 1;
        t = lg_run_now(r);
        k = lg_conn_input(r, c, buf, (size_t) n, t);
        if (k < 0) {
            lg_conn_error(r, c, "bad HTTP reply");
            return;
        }
        if (k > 0) {
            /* the request ended: c may be freed or carry the next one */
            return;
        }
    }
}


static void
lg_run_check_timeouts(lg_run_t *r, double t)
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
        q = lg_conn_request(r, c);
        if (q != NULL && t - q->sent > limit) {
            lg_request_finish(r, c, 0, "timeout");
        }
    }
}


static void
lg_run_arm(lg_run_t *r, double at)
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
    r.t0 = lg_monotonic();
    if (lg_arrivals_start(&r.arr, cf, &r.rng, 0) != 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    lg_run_stage_note(&r);

    for ( ;; ) {
        if (lg_run_schedule(&r) != 0) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        t = lg_run_now(&r);
        lg_run_check_timeouts(&r, t);
        if (r.arr.stage >= cf->nstages) {
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
            wake = lg_arrivals_wake(&r.arr);
        }
        if (cf->request_timeout > 0 && wake > t + 0.05) {
            wake = t + 0.05;
        }
        lg_run_arm(&r, wake);
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
            lg_conn_event(&r, evs[k].data.ptr, evs[k].events);
        }
    }

    while (r.npending > 0) {
        lg_request_t  *q = &reqs->v[r.pending[r.pend_head]];

        r.pend_head = (r.pend_head + 1) % r.pend_cap;
        r.npending--;
        q->end = lg_run_now(&r);
        snprintf(q->error, sizeof(q->error), "never sent: no connection");
        lg_run_retire(&r, q);
    }

    /* what is still in flight when the drain time is over has failed */
    for (c = r.all; c != NULL; c = next) {
        next = c->all_next;
        if (c->req >= 0) {
            lg_request_finish(&r, c, 0,
                              "still running at the end of the drain time");
        }
    }
    self->wall = lg_run_now(&r);
    getrusage(RUSAGE_SELF, &ru1);
    self->cpu_user = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec)
                     + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6;
    self->cpu_sys = (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec)
                    + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    rc = 0;

done:
    while (r.all != NULL) {
        lg_conn_free(&r, r.all);
    }
    lg_arrivals_free(&r.arr);
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
