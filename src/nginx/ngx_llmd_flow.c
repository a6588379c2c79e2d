/*
 * Admission and flow control (docs/flow-control.md): llm-d's saturation
 * detector and flow controller in front of an llmd upstream, before the
 * request reaches proxy_pass.
 *
 * `llmd_admission UPSTREAM;` in a location adds a precontent-phase check:
 *
 *   flow control off (no featureGates: [flowControl]): a sheddable request
 *   (priority < 0) that finds the pool saturated is answered 429; every
 *   other request goes on (llm-d's legacy admission);
 *
 *   flow control on: every request takes a ticket in the upstream's queue
 *   in shared memory (core/llmd_flowq.c: bands, fairness, bounds), shared
 *   by all workers. Whenever a waiting request looks again and the pool is
 *   not saturated, the next ticket of the queue (whichever worker owns it)
 *   is granted; a request whose ticket is granted goes on to proxy_pass.
 *   A request that must wait is parked like limit_req's delay: a timer on
 *   its connection, no worker blocked, nothing sent upstream, the body not
 *   read yet; it looks again every poll interval. Its TTL expiring answers
 *   429 with Retry-After (503 when the pool has no endpoint); a client that
 *   goes away frees its ticket (pool cleanup).
 *
 * The queue, counters and the last saturation live in a zone of their own
 * per upstream ("llmd_flow_NAME"), so this file only touches the balancer's
 * zone to read endpoints and metrics.
 */

#include "nginx/ngx_llmd.h"


#define NGX_LLMD_FLOW_SLOTS      4096
#define NGX_LLMD_FLOW_MAX_SLOTS  65536
#define NGX_LLMD_FLOW_FLOWS      256


typedef struct {
    ngx_str_t                     name;
    ngx_int_t                     priority;
} ngx_llmd_objective_t;


/* shared by the workers; the queue follows */
typedef struct {
    ngx_atomic_t                  admitted;        /* went on, no queue */
    ngx_atomic_t                  rejected_sheddable;
    ngx_atomic_t                  saturation_ppm;  /* last evaluation */
    ngx_atomic_t                  stale_endpoints;
    ngx_msec_t                    reaped;          /* last reap */
    size_t                        qsize;
    llmd_flowq_t                 *q;
} ngx_llmd_flow_sh_t;


struct ngx_llmd_flow_conf_s {
    ngx_llmd_srv_conf_t          *lcf;
    ngx_array_t                   objectives;      /* ngx_llmd_objective_t */
    ngx_shm_zone_t               *shm_zone;
    ngx_slab_pool_t              *shpool;
    ngx_llmd_flow_sh_t           *sh;
    ngx_uint_t                    slots;
    ngx_uint_t                    flows;
};


struct ngx_llmd_flow_loc_s {
    ngx_http_upstream_srv_conf_t *uscf;
    ngx_msec_t                    poll;
    time_t                        retry_after;
};


/* one request's way through admission */
typedef struct {
    ngx_llmd_flow_conf_t         *fcf;
    ngx_http_request_t           *r;
    ngx_int_t                     priority;
    ngx_str_t                     flow_id;
    uint32_t                      ticket;
    uint64_t                      seq;
    ngx_msec_t                    start;
    ngx_msec_t                    regime_start;
    uint64_t                      start_ns;
    uint64_t                      waited_ns;
    const char                   *outcome;
    ngx_queue_t                   parked_link;    /* in this process */
    unsigned                      parked:1;
    unsigned                      queued:1;
    unsigned                      empty:1;        /* no endpoint regime */
    unsigned                      done:1;
} ngx_llmd_flow_ctx_t;


static ngx_int_t ngx_llmd_flow_shm_init(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_llmd_flow_handler(ngx_http_request_t *r);
static ngx_int_t ngx_llmd_flow_start(ngx_http_request_t *r,
    ngx_llmd_flow_loc_t *flcf, ngx_llmd_flow_ctx_t **fctxp);
static ngx_int_t ngx_llmd_flow_check(ngx_http_request_t *r,
    ngx_llmd_flow_loc_t *flcf, ngx_llmd_flow_ctx_t *fctx);
static void ngx_llmd_flow_wake(ngx_http_request_t *r);
static void ngx_llmd_flow_cleanup(void *data);
static ngx_llmd_flow_ctx_t *ngx_llmd_flow_get_ctx(ngx_http_request_t *r);
static double ngx_llmd_flow_saturation(ngx_llmd_flow_conf_t *fcf,
    ngx_uint_t admitted, ngx_uint_t *nendpoints);
static ngx_int_t ngx_llmd_flow_reject(ngx_http_request_t *r,
    ngx_llmd_flow_ctx_t *fctx, ngx_llmd_flow_loc_t *flcf, ngx_uint_t status,
    const char *outcome, const char *message);
static ngx_int_t ngx_llmd_flow_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_llmd_flow_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static void ngx_llmd_flow_release(ngx_llmd_flow_ctx_t *fctx,
    llmd_flowq_outcome_t outcome);
static void ngx_llmd_flow_park(ngx_llmd_flow_ctx_t *fctx);
static void ngx_llmd_flow_unpark(ngx_llmd_flow_ctx_t *fctx);
static void ngx_llmd_flow_kick(ngx_llmd_flow_conf_t *fcf, int64_t ticket);


/*
 * The requests parked in this process, oldest first: a request that
 * finishes here, or a look that grants another request's ticket, wakes
 * the owner of the next ticket at once when it is parked in this process;
 * owners in other workers see their grant at their next poll.
 */
static ngx_queue_t  ngx_llmd_flow_parked;


static ngx_http_output_body_filter_pt  ngx_llmd_flow_next_body_filter;
static uint64_t ngx_llmd_flow_now_ns(void);


static ngx_http_variable_t  ngx_llmd_flow_vars[] = {

    { ngx_string("llmd_queue_us"), NULL, ngx_llmd_flow_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmd_flow_outcome"), NULL, ngx_llmd_flow_variable, 1,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmd_priority"), NULL, ngx_llmd_flow_variable, 2,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_str_t  ngx_llmd_objective_headers[] = {
    ngx_string("x-llm-d-inference-objective"),
    ngx_string("x-gateway-inference-objective"),
    ngx_null_string
};

static ngx_str_t  ngx_llmd_fairness_headers[] = {
    ngx_string("x-llm-d-inference-fairness-id"),
    ngx_string("x-gateway-inference-fairness-id"),
    ngx_null_string
};


/* the flow conf of an upstream, created on first use */
static ngx_llmd_flow_conf_t *
ngx_llmd_flow_conf(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf)
{
    ngx_llmd_flow_conf_t  *fcf;

    if (lcf->flow != NULL) {
        return lcf->flow;
    }

    fcf = ngx_pcalloc(cf->pool, sizeof(ngx_llmd_flow_conf_t));
    if (fcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&fcf->objectives, cf->pool, 4,
                       sizeof(ngx_llmd_objective_t))
        != NGX_OK)
    {
        return NULL;
    }

    fcf->lcf = lcf;
    lcf->flow = fcf;

    return fcf;
}


/* llmd_objective NAME PRIORITY; in an llmd upstream */

char *
ngx_llmd_objective(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_llmd_srv_conf_t  *lcf = conf;

    ngx_int_t              prio;
    ngx_str_t             *value;
    ngx_uint_t             i, neg;
    ngx_llmd_flow_conf_t  *fcf;
    ngx_llmd_objective_t  *o;

    value = cf->args->elts;

    fcf = ngx_llmd_flow_conf(cf, lcf);
    if (fcf == NULL) {
        return NGX_CONF_ERROR;
    }

    neg = (value[2].len > 1 && value[2].data[0] == '-');
    prio = ngx_atoi(value[2].data + neg, value[2].len - neg);

    if (prio == NGX_ERROR || prio > 2147483647) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid priority \"%V\"",
                           &value[2]);
        return NGX_CONF_ERROR;
    }

    o = fcf->objectives.elts;

    for (i = 0; i < fcf->objectives.nelts; i++) {
        if (o[i].name.len == value[1].len
            && ngx_strncmp(o[i].name.data, value[1].data, value[1].len) == 0)
        {
            return "is duplicate";
        }
    }

    o = ngx_array_push(&fcf->objectives);
    if (o == NULL) {
        return NGX_CONF_ERROR;
    }

    o->name = value[1];
    o->priority = neg ? -prio : prio;

    return NGX_CONF_OK;
}


/* llmd_admission UPSTREAM [poll=TIME] [retry_after=SECONDS]; */

char *
ngx_llmd_admission(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_llmd_loc_conf_t  *llcf = conf;

    ngx_str_t            *value, s;
    ngx_url_t             u;
    ngx_uint_t            i;
    ngx_llmd_flow_loc_t  *flcf;

    if (llcf->flow != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    flcf = ngx_pcalloc(cf->pool, sizeof(ngx_llmd_flow_loc_t));
    if (flcf == NULL) {
        return NGX_CONF_ERROR;
    }

    flcf->poll = 10;
    flcf->retry_after = 1;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "poll=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            flcf->poll = ngx_parse_time(&s, 0);
            if (flcf->poll == (ngx_msec_t) NGX_ERROR || flcf->poll == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "retry_after=", 12) == 0) {
            flcf->retry_after = ngx_atotm(value[i].data + 12,
                                          value[i].len - 12);
            if (flcf->retry_after == NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = value[1];
    u.default_port = 80;
    u.no_resolve = 1;

    /* the upstream{} block may come later: resolved per request */
    flcf->uscf = ngx_http_upstream_add(cf, &u, 0);
    if (flcf->uscf == NULL) {
        return NGX_CONF_ERROR;
    }

    llcf->flow = flcf;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                       &value[i]);
    return NGX_CONF_ERROR;
}


/*
 * Once the upstream block is read and its EndpointPickerConfig loaded: the
 * zone for its queue and counters.
 */
ngx_int_t
ngx_llmd_flow_init(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf)
{
    size_t                 size;
    ngx_str_t              name;
    ngx_llmd_flow_conf_t  *fcf;

    fcf = ngx_llmd_flow_conf(cf, lcf);
    if (fcf == NULL) {
        return NGX_ERROR;
    }

    if (lcf->cf->flow.enabled) {
        /* waiting requests, and those admitted until they end */
        fcf->slots = NGX_LLMD_FLOW_SLOTS;

        if (lcf->cf->flow.max_requests) {
            fcf->slots = ngx_min(lcf->cf->flow.max_requests,
                                 NGX_LLMD_FLOW_MAX_SLOTS);
        }

        fcf->slots += NGX_LLMD_FLOW_SLOTS;

        fcf->flows = NGX_LLMD_FLOW_FLOWS;
    }

    name.len = sizeof("llmd_flow_") - 1 + lcf->upstream->host.len;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(name.data, "llmd_flow_%V", &lcf->upstream->host);

    size = sizeof(ngx_llmd_flow_sh_t)
           + llmd_flowq_size(fcf->slots, fcf->flows);
    size = ngx_align(size + 16 * ngx_pagesize, ngx_pagesize);

    fcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                          &ngx_http_llmd_module);
    if (fcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    fcf->shm_zone->init = ngx_llmd_flow_shm_init;
    fcf->shm_zone->data = fcf;

    return NGX_OK;
}


static ngx_int_t
ngx_llmd_flow_shm_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_llmd_flow_conf_t  *ofcf = data;

    size_t                 qsize;
    ngx_llmd_flow_sh_t    *sh;
    ngx_llmd_flow_conf_t  *fcf;

    fcf = shm_zone->data;
    fcf->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    qsize = llmd_flowq_size(fcf->slots, fcf->flows);

    if (ofcf != NULL && ofcf->sh != NULL && ofcf->sh->qsize == qsize) {
        /* a reload with the same queue: waiting requests keep their place;
           the new global bounds apply */
        fcf->sh = ofcf->sh;
        fcf->sh->q->max_bytes = fcf->lcf->cf->flow.max_bytes;
        fcf->sh->q->max_requests = fcf->lcf->cf->flow.max_requests;
        return NGX_OK;
    }

    if (shm_zone->shm.exists) {
        fcf->sh = fcf->shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_calloc(fcf->shpool, sizeof(ngx_llmd_flow_sh_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->q = ngx_slab_alloc(fcf->shpool, qsize);
    if (sh->q == NULL) {
        return NGX_ERROR;
    }

    sh->qsize = qsize;
    llmd_flowq_init(sh->q, fcf->slots, fcf->flows, &fcf->lcf->cf->flow);

    fcf->shpool->data = sh;
    fcf->sh = sh;

    return NGX_OK;
}


ngx_int_t
ngx_llmd_flow_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_variable_t        *var, *v;
    ngx_http_core_main_conf_t  *cmcf;

    for (v = ngx_llmd_flow_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_llmd_flow_handler;

    ngx_llmd_flow_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_llmd_flow_body_filter;

    return NGX_OK;
}


/*
 * The last byte of the response: an admitted request's ticket goes back
 * now, not when the request is freed (after a lingering close, possibly
 * seconds later).
 */
static ngx_int_t
ngx_llmd_flow_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t          *cl;
    ngx_llmd_flow_ctx_t  *fctx;

    if (r == r->main) {
        for (cl = in; cl; cl = cl->next) {
            if (!cl->buf->last_buf) {
                continue;
            }

            fctx = ngx_llmd_flow_get_ctx(r);

            if (fctx != NULL && fctx->done) {
                ngx_llmd_flow_release(fctx, LLMD_FLOWQ_DISPATCHED);
            }

            break;
        }
    }

    return ngx_llmd_flow_next_body_filter(r, in);
}


static ngx_int_t
ngx_llmd_flow_handler(ngx_http_request_t *r)
{
    ngx_int_t             rc;
    ngx_llmd_loc_conf_t  *llcf;
    ngx_llmd_flow_ctx_t  *fctx;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmd_module);

    if (llcf->flow == NULL || r != r->main) {
        return NGX_DECLINED;
    }

    fctx = ngx_llmd_flow_get_ctx(r);

    if (fctx == NULL) {
        rc = ngx_llmd_flow_start(r, llcf->flow, &fctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (fctx->done) {
        return NGX_DECLINED;
    }

    return ngx_llmd_flow_check(r, llcf->flow, fctx);
}


/* The first look: priority, flow, the legacy check or a ticket. */
static ngx_int_t
ngx_llmd_flow_start(ngx_http_request_t *r, ngx_llmd_flow_loc_t *flcf,
    ngx_llmd_flow_ctx_t **fctxp)
{
    int                    rc;
    double                 sat;
    uint64_t               bytes;
    ngx_str_t             *hv, *names;
    ngx_uint_t             i, j, n;
    ngx_list_part_t       *part;
    ngx_table_elt_t       *h;
    ngx_pool_cleanup_t    *cln;
    ngx_llmd_srv_conf_t   *lcf;
    ngx_llmd_flow_ctx_t   *fctx;
    ngx_llmd_flow_conf_t  *fcf;
    ngx_llmd_objective_t  *o;

    if (flcf->uscf->srv_conf == NULL) {
        return NGX_DECLINED;
    }

    lcf = flcf->uscf->srv_conf[ngx_http_llmd_module.ctx_index];

    if (lcf == NULL || !lcf->enabled || lcf->flow == NULL
        || lcf->flow->sh == NULL)
    {
        return NGX_DECLINED;
    }

    fcf = lcf->flow;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_llmd_flow_ctx_t));
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    fctx = cln->data;
    ngx_memzero(fctx, sizeof(ngx_llmd_flow_ctx_t));
    fctx->fcf = fcf;
    fctx->r = r;
    fctx->start = ngx_current_msec;
    fctx->regime_start = fctx->start;
    fctx->start_ns = ngx_llmd_flow_now_ns();
    ngx_str_set(&fctx->flow_id, LLMD_FLOW_DEFAULT_FAIRNESS_ID);
    cln->handler = ngx_llmd_flow_cleanup;
    *fctxp = fctx;

    /* headers: the objective names the priority; the fairness id the
       flow (first of the new name, then the deprecated one) */
    for (n = 0; n < 2; n++) {
        names = n == 0 ? ngx_llmd_objective_headers
                       : ngx_llmd_fairness_headers;
        hv = NULL;

        for (j = 0; hv == NULL && names[j].len; j++) {
            part = &r->headers_in.headers.part;
            h = part->elts;

            for (i = 0; /* void */; i++) {
                if (i >= part->nelts) {
                    if (part->next == NULL) {
                        break;
                    }

                    part = part->next;
                    h = part->elts;
                    i = 0;
                }

                if (h[i].key.len == names[j].len
                    && ngx_strncasecmp(h[i].key.data, names[j].data,
                                       names[j].len) == 0
                    && h[i].value.len)
                {
                    hv = &h[i].value;
                    break;
                }
            }
        }

        if (hv == NULL) {
            continue;
        }

        if (n == 1) {
            fctx->flow_id = *hv;
            continue;
        }

        /* an objective this upstream does not know: priority 0 (llm-d's
           default InferenceObjective) */
        o = fcf->objectives.elts;

        for (i = 0; i < fcf->objectives.nelts; i++) {
            if (o[i].name.len == hv->len
                && ngx_strncmp(o[i].name.data, hv->data, hv->len) == 0)
            {
                fctx->priority = o[i].priority;
                break;
            }
        }
    }

    if (!lcf->cf->flow.enabled) {
        /* llm-d's legacy admission: only sheddable requests are checked */
        fctx->done = 1;

        if (fctx->priority < 0) {
            sat = ngx_llmd_flow_saturation(fcf, 0, NULL);

            if (sat >= 1.0) {
                (void) ngx_atomic_fetch_add(&fcf->sh->rejected_sheddable, 1);
                return ngx_llmd_flow_reject(r, fctx, flcf, 429, "rejected",
                                            "system saturated, sheddable "
                                            "request dropped");
            }
        }

        (void) ngx_atomic_fetch_add(&fcf->sh->admitted, 1);
        fctx->outcome = "admitted";

        return NGX_OK;
    }

    bytes = r->headers_in.content_length_n > 0
            ? (uint64_t) r->headers_in.content_length_n : 0;

    ngx_shmtx_lock(&fcf->shpool->mutex);
    rc = llmd_flowq_enqueue(fcf->sh->q, &lcf->cf->flow,
                            (int32_t) fctx->priority,
                            (char *) fctx->flow_id.data, fctx->flow_id.len,
                            bytes, ngx_current_msec, &fctx->ticket,
                            &fctx->seq);
    ngx_shmtx_unlock(&fcf->shpool->mutex);

    if (rc != 0) {
        fctx->done = 1;
        return ngx_llmd_flow_reject(r, fctx, flcf, 429, "rejected",
                                    "request rejected by flow control: "
                                    "queue at capacity");
    }

    fctx->queued = 1;

    return NGX_OK;
}


/* One look at the queue: go on, wait, or give up. */
static ngx_int_t
ngx_llmd_flow_check(ngx_http_request_t *r, ngx_llmd_flow_loc_t *flcf,
    ngx_llmd_flow_ctx_t *fctx)
{
    double                 sat;
    int64_t                next, kick;
    uint32_t               state;
    uint64_t               ttl, bound;
    ngx_uint_t             n, empty;
    ngx_msec_t             now;
    ngx_event_t           *wev;
    llmd_flow_params_t    *fp;
    ngx_llmd_flow_conf_t  *fcf;

    fcf = fctx->fcf;
    fp = &fcf->lcf->cf->flow;
    now = ngx_current_msec;
    kick = -1;

    ngx_shmtx_lock(&fcf->shpool->mutex);

    /* tickets of a process that died: once a second, well past the
       longest wait an owner allows itself */
    if (now - fcf->sh->reaped >= 1000) {
        fcf->sh->reaped = now;
        bound = ngx_max(fp->ttl_ms, fp->no_endpoint_ttl_ms);
        (void) llmd_flowq_reap(fcf->sh->q, now,
                               fp->ttl_ms && fp->no_endpoint_ttl_ms
                               ? bound + 10000 : 0,
                               10000 + 100 * flcf->poll);
    }

    sat = ngx_llmd_flow_saturation(fcf, fcf->sh->q->granted
                                        + fcf->sh->q->running, &n);
    empty = (n == 0);

    state = llmd_flowq_state(fcf->sh->q, fctx->ticket, fctx->seq);

    if (state == LLMD_TICKET_QUEUED && sat < 1.0) {
        next = llmd_flowq_next(fcf->sh->q);

        if (next >= 0) {
            llmd_flowq_grant(fcf->sh->q, (uint32_t) next, now);

            if ((uint32_t) next != fctx->ticket) {
                kick = next;
            }
        }

        state = llmd_flowq_state(fcf->sh->q, fctx->ticket, fctx->seq);
    }

    if (state == LLMD_TICKET_FREE) {
        /* reaped: this process was too late by far */
        ngx_shmtx_unlock(&fcf->shpool->mutex);
        ngx_llmd_flow_kick(fcf, kick);

        fctx->queued = 0;
        fctx->done = 1;
        fctx->waited_ns = ngx_llmd_flow_now_ns() - fctx->start_ns;

        return ngx_llmd_flow_reject(r, fctx, flcf, 429, "evicted_ttl",
                                    "request timed out in queue");
    }

    if (state == LLMD_TICKET_GRANTED) {
        /* the ticket stays RUNNING until the request ends (cleanup) */
        llmd_flowq_collect(fcf->sh->q, fctx->ticket, fctx->seq);
        ngx_shmtx_unlock(&fcf->shpool->mutex);
        ngx_llmd_flow_kick(fcf, kick);

        fctx->done = 1;
        fctx->outcome = "dispatched";
        fctx->waited_ns = ngx_llmd_flow_now_ns() - fctx->start_ns;

        return NGX_DECLINED;
    }

    /* the budget in force: each change of regime starts a fresh one, the
       whole wait is bounded by the longer budget */
    if (empty != fctx->empty) {
        fctx->empty = empty;
        fctx->regime_start = now;
    }

    ttl = empty ? fp->no_endpoint_ttl_ms : fp->ttl_ms;
    bound = ngx_max(fp->ttl_ms, fp->no_endpoint_ttl_ms);

    if ((ttl && now - fctx->regime_start >= ttl)
        || (fp->ttl_ms && fp->no_endpoint_ttl_ms && now - fctx->start >= bound))
    {
        llmd_flowq_release(fcf->sh->q, fctx->ticket, fctx->seq,
                           LLMD_FLOWQ_EVICTED_TTL, now);
        ngx_shmtx_unlock(&fcf->shpool->mutex);
        ngx_llmd_flow_kick(fcf, kick);

        fctx->queued = 0;
        fctx->done = 1;
        fctx->waited_ns = ngx_llmd_flow_now_ns() - fctx->start_ns;

        if (empty) {
            return ngx_llmd_flow_reject(r, fctx, flcf,
                                        NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "evicted_ttl",
                                        "request timed out in queue and no "
                                        "endpoints are available");
        }

        return ngx_llmd_flow_reject(r, fctx, flcf, 429, "evicted_ttl",
                                    "request timed out in queue");
    }

    ngx_shmtx_unlock(&fcf->shpool->mutex);
    ngx_llmd_flow_kick(fcf, kick);

    /* park: limit_req's delay, the client watched for going away */
    fctx->outcome = "queued";

    wev = r->connection->write;

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_llmd_flow_wake;

    wev->delayed = 1;
    ngx_add_timer(wev, flcf->poll);

    ngx_llmd_flow_park(fctx);

    return NGX_AGAIN;
}


static void
ngx_llmd_flow_wake(ngx_http_request_t *r)
{
    ngx_event_t          *wev;
    ngx_llmd_flow_ctx_t  *fctx;

    wev = r->connection->write;

    if (wev->delayed) {
        /* not the timer: the socket became writable */
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }

        return;
    }

    if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    fctx = ngx_llmd_flow_get_ctx(r);

    if (fctx != NULL) {
        ngx_llmd_flow_unpark(fctx);
    }

    ngx_http_core_run_phases(r);
}


/* The request is gone: a ticket still held goes back. */
static void
ngx_llmd_flow_cleanup(void *data)
{
    ngx_llmd_flow_ctx_t  *fctx = data;

    ngx_llmd_flow_unpark(fctx);
    ngx_llmd_flow_release(fctx, LLMD_FLOWQ_EVICTED_CANCELLED);
}


/* A queued ticket leaves with the outcome; a running one just ends. */
static void
ngx_llmd_flow_release(ngx_llmd_flow_ctx_t *fctx,
    llmd_flowq_outcome_t outcome)
{
    int64_t                next;
    ngx_llmd_flow_conf_t  *fcf;

    if (!fctx->queued) {
        return;
    }

    fcf = fctx->fcf;
    fctx->queued = 0;
    next = -1;

    ngx_shmtx_lock(&fcf->shpool->mutex);
    llmd_flowq_release(fcf->sh->q, fctx->ticket, fctx->seq, outcome,
                       ngx_current_msec);

    if (fctx->done) {
        /* a request in flight ended: room for the next one */
        next = llmd_flowq_next(fcf->sh->q);
    }

    ngx_shmtx_unlock(&fcf->shpool->mutex);

    if (next >= 0) {
        ngx_llmd_flow_kick(fcf, next);
    }
}


static void
ngx_llmd_flow_park(ngx_llmd_flow_ctx_t *fctx)
{
    if (fctx->parked) {
        return;
    }

    if (ngx_llmd_flow_parked.next == NULL) {
        ngx_queue_init(&ngx_llmd_flow_parked);
    }

    ngx_queue_insert_tail(&ngx_llmd_flow_parked, &fctx->parked_link);
    fctx->parked = 1;
}


static void
ngx_llmd_flow_unpark(ngx_llmd_flow_ctx_t *fctx)
{
    if (fctx->parked) {
        ngx_queue_remove(&fctx->parked_link);
        fctx->parked = 0;
    }
}


/*
 * Wakes the request of this process that holds ticket, if one is parked
 * here: it looks at once instead of at its next poll.
 */
static void
ngx_llmd_flow_kick(ngx_llmd_flow_conf_t *fcf, int64_t ticket)
{
    ngx_queue_t          *q;
    ngx_event_t          *wev;
    ngx_llmd_flow_ctx_t  *f;

    if (ticket < 0 || ngx_llmd_flow_parked.next == NULL) {
        return;
    }

    for (q = ngx_queue_head(&ngx_llmd_flow_parked);
         q != ngx_queue_sentinel(&ngx_llmd_flow_parked);
         q = ngx_queue_next(q))
    {
        f = ngx_queue_data(q, ngx_llmd_flow_ctx_t, parked_link);

        if (f->fcf != fcf || f->ticket != (uint32_t) ticket) {
            continue;
        }

        ngx_llmd_flow_unpark(f);

        wev = f->r->connection->write;

        if (wev->timer_set) {
            ngx_del_timer(wev);
        }

        wev->delayed = 0;
        ngx_post_event(wev, &ngx_posted_events);

        return;
    }
}


static ngx_llmd_flow_ctx_t *
ngx_llmd_flow_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *c;

    for (c = r->pool->cleanup; c; c = c->next) {
        if (c->handler == ngx_llmd_flow_cleanup) {
            return c->data;
        }
    }

    return NULL;
}


/*
 * The detector over the upstream's candidates now.
 *
 * admitted: requests granted by the queue and not finished yet; the
 * concurrency detector counts max(in flight at the pods, admitted), so a
 * request is counted from its grant on, also before the balancer counts
 * it.
 *
 * The utilization detector reads each pod's last scrape; with llmd_inflight
 * on (the default) moved to the present as the metric scorers see it: the
 * requests sent to the pod since the scrape queue there, those finished
 * let its queue move up (core/llmd_inflight.h). The admitted requests not
 * at a pod yet (granted, body being read, balancer not run) are spread
 * over the candidates' queues. Without this every look between two
 * scrapes saw the same room and granted another request: a burst went
 * through whole before the next scrape showed the queues (issue 13,
 * docs/flow-control.md).
 */
static double
ngx_llmd_flow_saturation(ngx_llmd_flow_conf_t *fcf, ngx_uint_t admitted,
    ngx_uint_t *nendpoints)
{
    double                   sat;
    size_t                   stale;
    uint64_t                 total;
    ngx_uint_t               i, n, adjust;
    ngx_msec_t               now;
    llmd_inflight_t          d;
    llmd_endpoint_state_t    st;
    ngx_llmd_cand_t          cands[LLMD_MAX_ENDPOINTS];
    ngx_llmd_shctx_t        *sh;
    ngx_llmd_metrics_sh_t    m;
    ngx_llmd_endpoint_sh_t  *ep;
    llmd_sat_endpoint_t      eps[LLMD_MAX_ENDPOINTS];

    sh = fcf->lcf->sh;
    now = ngx_current_msec;
    adjust = fcf->lcf->inflight
             && fcf->lcf->cf->saturation.type == LLMD_SAT_UTILIZATION;

    n = ngx_llmd_members_read(sh, cands);

    for (i = 0; i < n; i++) {
        ep = &sh->endpoints[cands[i].slot];
        ngx_llmd_metrics_read(ep, &m);

        eps[i].have_metrics = (m.updated != 0 && m.have_waiting);
        eps[i].age_ms = ngx_llmd_metrics_age(now, m.updated);
        eps[i].waiting = m.waiting;
        eps[i].kv_usage = m.kv_usage;
        eps[i].inflight = ep->active;

        if (adjust && eps[i].have_metrics) {
            st.waiting = m.waiting;
            st.running = m.running;
            st.kv_usage = m.kv_usage;
            st.fresh = 1;
            ngx_llmd_inflight_since(ep, &m, &d);
            llmd_inflight_adjust(&st, &d, m.block_size, m.num_gpu_blocks);
            eps[i].waiting = st.waiting;
            eps[i].kv_usage = st.kv_usage;
        }
    }

    for (i = 0, total = 0; i < n; i++) {
        total += eps[i].inflight;
    }

    if (n && admitted > total) {
        eps[0].inflight += admitted - total;

        if (adjust) {
            for (i = 0; i < n; i++) {
                eps[i].waiting += (double) (admitted - total) / n;
            }
        }
    }

    sat = llmd_sat_pool(&fcf->lcf->cf->saturation, eps, n, &stale);

    fcf->sh->saturation_ppm = (ngx_atomic_uint_t) (sat * 1e6);
    fcf->sh->stale_endpoints = stale;

    if (nendpoints) {
        *nendpoints = n;
    }

    return sat;
}


static ngx_int_t
ngx_llmd_flow_reject(ngx_http_request_t *r, ngx_llmd_flow_ctx_t *fctx,
    ngx_llmd_flow_loc_t *flcf, ngx_uint_t status, const char *outcome,
    const char *message)
{
    ngx_table_elt_t  *h;
    ngx_llmd_ctx_t   *ctx;

    fctx->outcome = outcome;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_llmd_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->lcf = fctx->fcf->lcf;
    ctx->chosen = -1;
    ctx->active_slot = -1;
    ngx_http_set_ctx(r, ctx, ngx_http_llmd_module);

    ngx_llmd_reject(r, ctx, status,
                    status == 429 ? "RateLimitError"
                                  : "ServiceUnavailableError",
                    message, ngx_strlen(message));

    if (status == 429 && flcf->retry_after) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Retry-After");

        h->value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (h->value.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->value.len = ngx_sprintf(h->value.data, "%T", flcf->retry_after)
                       - h->value.data;
    }

    return status;
}


static ngx_int_t
ngx_llmd_flow_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char               *p;
    ngx_llmd_flow_ctx_t  *fctx;

    fctx = ngx_llmd_flow_get_ctx(r->main);

    if (fctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 16);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->data = p;

    switch (data) {

    case 0:
        v->len = ngx_sprintf(p, "%uL", (uint64_t) (fctx->waited_ns / 1000))
                 - p;
        break;

    case 1:
        if (fctx->outcome == NULL) {
            v->not_found = 1;
            return NGX_OK;
        }

        v->data = (u_char *) fctx->outcome;
        v->len = ngx_strlen(fctx->outcome);
        break;

    default:
        v->len = ngx_sprintf(p, "%i", fctx->priority) - p;
        break;
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* status: an upper bound of what the two writers below produce */
size_t
ngx_llmd_flow_status_size(ngx_llmd_srv_conf_t *lcf)
{
    ngx_llmd_flow_conf_t  *fcf;

    fcf = lcf->flow;

    if (fcf == NULL || fcf->sh == NULL) {
        return 0;
    }

    return 4096 + (LLMD_FLOWQ_HIST + 2) * (128 + lcf->upstream->host.len)
           + (LLMD_FLOWQ_BANDS + fcf->flows)
             * (512 + 6 * LLMD_FLOWQ_ID_LEN + 2 * lcf->upstream->host.len);
}


/* "flow_control":{...}, in the upstream's JSON object */
u_char *
ngx_llmd_flow_status_json(u_char *p, ngx_llmd_srv_conf_t *lcf)
{
    ngx_uint_t                i, n;
    llmd_flowq_t             *q;
    ngx_llmd_flow_sh_t       *sh;
    ngx_llmd_flow_conf_t     *fcf;
    const llmd_flowq_flow_t  *f;
    const llmd_flowq_band_t  *b;

    fcf = lcf->flow;

    if (fcf == NULL || fcf->sh == NULL) {
        return p;
    }

    sh = fcf->sh;
    q = sh->q;

    p = ngx_sprintf(p, "\"flow_control\":{\"enabled\":%s,"
                    "\"detector\":\"%s\",\"saturation\":%.3f,"
                    "\"stale_endpoints\":%uA,\"admitted\":%uA,"
                    "\"rejected_sheddable\":%uA,",
                    lcf->cf->flow.enabled ? "true" : "false",
                    lcf->cf->saturation.type == LLMD_SAT_CONCURRENCY
                    ? "concurrency-detector" : "utilization-detector",
                    (double) sh->saturation_ppm / 1e6, sh->stale_endpoints,
                    sh->admitted, sh->rejected_sheddable);

    ngx_shmtx_lock(&fcf->shpool->mutex);

    p = ngx_sprintf(p, "\"queue\":{\"requests\":%uD,\"bytes\":%uL,"
                    "\"admitted_in_flight\":%uD,"
                    "\"capacity\":%uD,\"enqueued\":%uL,\"dispatched\":%uL,"
                    "\"rejected_capacity\":%uL,\"evicted_ttl\":%uL,"
                    "\"evicted_cancelled\":%uL,\"wait_ms_sum\":%uL,"
                    "\"bands\":[",
                    q->count, q->bytes, q->granted + q->running,
                    q->nslots, q->enqueued,
                    q->outcomes[LLMD_FLOWQ_DISPATCHED],
                    q->outcomes[LLMD_FLOWQ_REJECTED_CAPACITY],
                    q->outcomes[LLMD_FLOWQ_EVICTED_TTL],
                    q->outcomes[LLMD_FLOWQ_EVICTED_CANCELLED],
                    q->wait_ms_sum);

    n = 0;

    for (i = 0; i < LLMD_FLOWQ_BANDS; i++) {
        b = &q->bands[i];

        if (!b->used) {
            continue;
        }

        p = ngx_sprintf(p, "%s{\"priority\":%D,\"requests\":%uD,"
                        "\"bytes\":%uL,\"dispatched\":%uL}",
                        n++ ? "," : "", b->priority, b->count, b->bytes,
                        b->served);
    }

    p = ngx_sprintf(p, "],\"flows\":[");

    n = 0;

    for (i = 0; i < q->nflows; i++) {
        f = llmd_flowq_flow(q, i);

        if (!f->used) {
            continue;
        }

        p = ngx_sprintf(p, "%s{\"fairness_id\":\"", n++ ? "," : "");
        p = (u_char *) ngx_escape_json(p, (u_char *) f->id,
                                       ngx_strlen(f->id));
        p = ngx_sprintf(p, "\",\"priority\":%D,\"requests\":%uD,"
                        "\"bytes\":%uL}",
                        q->bands[f->band - 1].priority, f->count, f->bytes);
    }

    p = ngx_sprintf(p, "],\"wait_ms_histogram\":[");

    for (i = 0; i <= LLMD_FLOWQ_HIST; i++) {
        p = ngx_sprintf(p, "%s%uL", i ? "," : "", q->wait_hist[i]);
    }

    ngx_shmtx_unlock(&fcf->shpool->mutex);

    return ngx_sprintf(p, "]}},");
}


/* llm-d's flow-control metric names, prefixed as the module's others */
u_char *
ngx_llmd_flow_status_prom(u_char *p, ngx_llmd_srv_conf_t *lcf)
{
    uint64_t                  cum;
    ngx_str_t                *u;
    ngx_uint_t                i;
    llmd_flowq_t             *q;
    ngx_llmd_flow_sh_t       *sh;
    ngx_llmd_flow_conf_t     *fcf;
    const llmd_flowq_flow_t  *f;
    const llmd_flowq_band_t  *b;

    fcf = lcf->flow;

    if (fcf == NULL || fcf->sh == NULL) {
        return p;
    }

    sh = fcf->sh;
    q = sh->q;
    u = &lcf->upstream->host;

    p = ngx_sprintf(p,
        "# HELP llmd_flow_control_pool_saturation Last pool saturation "
        "seen by the saturation detector (1 = at capacity).\n"
        "# TYPE llmd_flow_control_pool_saturation gauge\n"
        "llmd_flow_control_pool_saturation{inference_pool=\"%V\"} %.4f\n"
        "# HELP llmd_flow_control_stale_endpoints Endpoints with missing "
        "or stale metrics in the last evaluation.\n"
        "# TYPE llmd_flow_control_stale_endpoints gauge\n"
        "llmd_flow_control_stale_endpoints{inference_pool=\"%V\"} %uA\n",
        u, (double) sh->saturation_ppm / 1e6, u, sh->stale_endpoints);

    ngx_shmtx_lock(&fcf->shpool->mutex);

    p = ngx_sprintf(p,
        "# HELP llmd_flow_control_requests_total Requests by admission "
        "outcome.\n"
        "# TYPE llmd_flow_control_requests_total counter\n"
        "llmd_flow_control_requests_total{inference_pool=\"%V\","
        "outcome=\"Dispatched\"} %uL\n"
        "llmd_flow_control_requests_total{inference_pool=\"%V\","
        "outcome=\"RejectedCapacity\"} %uL\n"
        "llmd_flow_control_requests_total{inference_pool=\"%V\","
        "outcome=\"EvictedTTL\"} %uL\n"
        "llmd_flow_control_requests_total{inference_pool=\"%V\","
        "outcome=\"EvictedContextCancelled\"} %uL\n"
        "llmd_flow_control_requests_total{inference_pool=\"%V\","
        "outcome=\"RejectedSheddable\"} %uA\n"
        "llmd_flow_control_requests_total{inference_pool=\"%V\","
        "outcome=\"Admitted\"} %uA\n"
        "# HELP llmd_flow_control_queue_size Requests waiting in the "
        "flow-control queue.\n"
        "# TYPE llmd_flow_control_queue_size gauge\n",
        u, q->outcomes[LLMD_FLOWQ_DISPATCHED],
        u, q->outcomes[LLMD_FLOWQ_REJECTED_CAPACITY],
        u, q->outcomes[LLMD_FLOWQ_EVICTED_TTL],
        u, q->outcomes[LLMD_FLOWQ_EVICTED_CANCELLED],
        u, sh->rejected_sheddable, u, sh->admitted);

    for (i = 0; i < q->nflows; i++) {
        f = llmd_flowq_flow(q, i);

        if (!f->used) {
            continue;
        }

        p = ngx_sprintf(p, "llmd_flow_control_queue_size{inference_pool="
                        "\"%V\",fairness_id=\"", u);
        p = (u_char *) ngx_escape_json(p, (u_char *) f->id,
                                       ngx_strlen(f->id));
        p = ngx_sprintf(p, "\",priority=\"%D\"} %uD\n",
                        q->bands[f->band - 1].priority, f->count);
    }

    p = ngx_sprintf(p,
        "# HELP llmd_flow_control_queue_bytes Bytes of the requests "
        "waiting, per priority band.\n"
        "# TYPE llmd_flow_control_queue_bytes gauge\n");

    for (i = 0; i < LLMD_FLOWQ_BANDS; i++) {
        b = &q->bands[i];

        if (b->used) {
            p = ngx_sprintf(p, "llmd_flow_control_queue_bytes{inference_pool="
                            "\"%V\",priority=\"%D\"} %uL\n",
                            u, b->priority, b->bytes);
        }
    }

    p = ngx_sprintf(p,
        "# HELP llmd_flow_control_request_queue_duration_seconds Time "
        "requests spent in the flow-control queue.\n"
        "# TYPE llmd_flow_control_request_queue_duration_seconds "
        "histogram\n");

    cum = 0;

    for (i = 0; i < LLMD_FLOWQ_HIST; i++) {
        cum += q->wait_hist[i];
        p = ngx_sprintf(p, "llmd_flow_control_request_queue_duration_seconds"
                        "_bucket{inference_pool=\"%V\",le=\"%.3f\"} %uL\n",
                        u, (double) llmd_flowq_hist_ms[i] / 1000, cum);
    }

    cum += q->wait_hist[LLMD_FLOWQ_HIST];

    p = ngx_sprintf(p, "llmd_flow_control_request_queue_duration_seconds"
                    "_bucket{inference_pool=\"%V\",le=\"+Inf\"} %uL\n"
                    "llmd_flow_control_request_queue_duration_seconds_sum"
                    "{inference_pool=\"%V\"} %.3f\n"
                    "llmd_flow_control_request_queue_duration_seconds_count"
                    "{inference_pool=\"%V\"} %uL\n",
                    u, cum, u, (double) q->wait_ms_sum / 1000, u, cum);

    ngx_shmtx_unlock(&fcf->shpool->mutex);

    return p;
}


static uint64_t
ngx_llmd_flow_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}
