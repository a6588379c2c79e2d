/*
 * Upstream peer selection, modelled on ngx_http_upstream_least_conn_module.c
 * and _hash_module.c. The per-request init makes the whole decision in one
 * straight line (ngx_llmd_schedule):
 *
 *   request        body -> parsed request, or a 400   ngx_llmd_request.c
 *   prefix match   approximate and precise            ngx_llmd_prefix.c
 *   endpoints      metrics and in-flight counts       (here)
 *   schedule       scorers, weights, picker           core/llmd_scheduler.c
 *   record         decision time and counters         ngx_llmd_shm.c
 *
 * and keeps the ranking; get() hands out the best server that is not
 * tried, down, failed or at max_conns (so proxy_next_upstream retries take
 * the next best) and records the prompt's blocks for it; free() keeps
 * round robin's bookkeeping and the in-flight counters.
 */

#include "nginx/ngx_llmd.h"


typedef struct {
    /* the round robin per-request data must be first */
    ngx_http_upstream_rr_peer_data_t   rrp;
    ngx_llmd_srv_conf_t               *lcf;
    ngx_llmd_ctx_t                    *ctx;
} ngx_llmd_peer_data_t;


static ngx_int_t ngx_llmd_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_llmd_schedule(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx);
static void ngx_llmd_endpoint_states(ngx_llmd_srv_conf_t *lcf,
    llmd_endpoint_state_t *eps, ngx_uint_t n);
static ngx_int_t ngx_llmd_get_peer(ngx_peer_connection_t *pc, void *data);
static void ngx_llmd_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state);
#if (NGX_DEBUG)
static void ngx_llmd_log_scores(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, llmd_sched_result_t *res, ngx_uint_t n);
#endif
static uint64_t ngx_llmd_now_ns(void);


static uint64_t  ngx_llmd_rng;


/*
 * At the end of the configuration, after the defaults are applied
 * (ngx_http_llmd_init_upstream): round robin builds the peer list, every
 * server gets its endpoint slot, precise scoring loads its tokenizer.
 */
ngx_int_t
ngx_llmd_balancer_init(ngx_conf_t *cf, ngx_http_upstream_srv_conf_t *us,
    ngx_llmd_srv_conf_t *lcf)
{
    if (ngx_http_upstream_init_round_robin(cf, us) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_llmd_targets_init(cf, lcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_llmd_precise_init(cf, lcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_llmd_shm_add(cf, lcf) != NGX_OK) {
        return NGX_ERROR;
    }

    us->peer.init = ngx_llmd_init_peer;

    return NGX_OK;
}


static ngx_int_t
ngx_llmd_init_peer(ngx_http_request_t *r, ngx_http_upstream_srv_conf_t *us)
{
    ngx_llmd_ctx_t        *ctx;
    ngx_llmd_srv_conf_t   *lcf;
    ngx_llmd_peer_data_t  *lp;

    lcf = ngx_http_conf_upstream_srv_conf(us, ngx_http_llmd_module);

    lp = ngx_palloc(r->pool, sizeof(ngx_llmd_peer_data_t));
    if (lp == NULL) {
        return NGX_ERROR;
    }

    r->upstream->peer.data = &lp->rrp;

    if (ngx_http_upstream_init_round_robin_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    r->upstream->peer.get = ngx_llmd_get_peer;
    r->upstream->peer.free = ngx_llmd_free_peer;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_llmd_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->lcf = lcf;
    ctx->chosen = -1;
    ctx->active_slot = -1;
    ctx->neps = lp->rrp.peers->number;

    ngx_http_set_ctx(r, ctx, ngx_http_llmd_module);

    lp->lcf = lcf;
    lp->ctx = ctx;

    if (ngx_llmd_rng == 0) {
        ngx_llmd_rng = ((uint64_t) ngx_pid << 32) ^ ngx_llmd_now_ns() ^ 1;
    }

    if (ctx->neps != lcf->targets.nelts || ctx->neps == 0) {
        /* cannot happen: the peer list was built from the same servers */
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "llmd: %ui peers but %ui targets", ctx->neps,
                      lcf->targets.nelts);
        return NGX_ERROR;
    }

    return ngx_llmd_schedule(r, lcf, ctx);
}


/* One decision: request -> prefix match -> endpoints -> schedule. */
static ngx_int_t
ngx_llmd_schedule(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx)
{
    uint64_t                start;
    ngx_int_t               rc;
    llmd_request_t          req;
    llmd_sched_input_t      in;
    llmd_sched_result_t    *res;
    llmd_endpoint_state_t   eps[LLMD_MAX_ENDPOINTS];

    start = ngx_llmd_now_ns();

    rc = ngx_llmd_request_read(r, lcf, ctx, &req);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (ngx_llmd_prefix_match(r, lcf, ctx, rc == NGX_OK ? &req : NULL, eps)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_llmd_endpoint_states(lcf, eps, ctx->neps);

    res = ngx_palloc(r->pool, sizeof(llmd_sched_result_t));
    if (res == NULL) {
        return NGX_ERROR;
    }

    res->nscorers = lcf->profile->nscorers;
    res->scores = ngx_palloc(r->pool, sizeof(double) * ctx->neps
                                      * ngx_max(res->nscorers, 1));
    if (res->scores == NULL) {
        return NGX_ERROR;
    }

    in.eps = eps;
    in.neps = ctx->neps;
    in.prefix_total = ctx->prefix_total;
    in.rng = &ngx_llmd_rng;

    if (llmd_schedule(lcf->profile, &in, res) != 0) {
        return NGX_ERROR;
    }

    ctx->result = res;
    ctx->scheduled = 1;
    ctx->decision_ns = ngx_llmd_now_ns() - start;

    ngx_llmd_record_decision(lcf->sh, ctx->decision_ns);

#if (NGX_DEBUG)
    ngx_llmd_log_scores(r, lcf, res, ctx->neps);
#endif

    return NGX_OK;
}


/* What the helper last scraped and what is in flight, per endpoint. */
static void
ngx_llmd_endpoint_states(ngx_llmd_srv_conf_t *lcf,
    llmd_endpoint_state_t *eps, ngx_uint_t n)
{
    ngx_uint_t               i;
    ngx_msec_t               now;
    ngx_llmd_target_t       *t;
    ngx_llmd_metrics_sh_t    m;
    ngx_llmd_endpoint_sh_t  *ep;

    now = ngx_current_msec;
    t = lcf->targets.elts;

    for (i = 0; i < n; i++) {
        ep = &lcf->sh->endpoints[t[i].slot];

        ngx_llmd_metrics_read(ep, &m);

        eps[i].waiting = m.waiting;
        eps[i].running = m.running;
        eps[i].kv_usage = m.have_kv ? m.kv_usage : 0;
        eps[i].fresh = (m.updated != 0 && m.have_waiting
                        && ngx_llmd_metrics_age(now, m.updated)
                           <= lcf->metrics_stale);
        eps[i].active = (uint32_t) ep->active;
    }
}


static ngx_int_t
ngx_llmd_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_llmd_peer_data_t  *lp = data;

    time_t                          now;
    uintptr_t                       m;
    ngx_uint_t                      k, i, p, n, slot;
    ngx_llmd_ctx_t                 *ctx;
    ngx_llmd_srv_conf_t            *lcf;
    ngx_llmd_endpoint_sh_t         *ep;
    ngx_llmd_target_t              *t;
    ngx_http_upstream_rr_peer_t    *peer, *best;
    ngx_http_upstream_rr_peers_t   *peers;

    ctx = lp->ctx;
    lcf = lp->lcf;
    peers = lp->rrp.peers;

    pc->cached = 0;
    pc->connection = NULL;

    now = ngx_time();
    best = NULL;
    p = 0;

    ngx_http_upstream_rr_peers_wlock(peers);

    for (k = 0; k < ctx->result->norder; k++) {
        i = ctx->result->order[k];

        n = i / (8 * sizeof(uintptr_t));
        m = (uintptr_t) 1 << i % (8 * sizeof(uintptr_t));

        if (lp->rrp.tried[n] & m) {
            continue;
        }

        for (peer = peers->peer, p = 0; p < i && peer; p++) {
            peer = peer->next;
        }

        if (peer == NULL || peer->down) {
            continue;
        }

        if (peer->max_fails
            && peer->fails >= peer->max_fails
            && now - peer->checked <= peer->fail_timeout)
        {
            continue;
        }

        if (peer->max_conns && peer->conns >= peer->max_conns) {
            continue;
        }

        best = peer;
        p = i;
        break;
    }

    if (best == NULL) {
        ngx_http_upstream_rr_peers_unlock(peers);

        (void) ngx_atomic_fetch_add(&lcf->sh->rejected_no_endpoint, 1);

        ngx_llmd_reject(NULL, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                        "service_unavailable", NULL, 0);

        pc->name = peers->name;
        return NGX_BUSY;
    }

    best->conns++;
    lp->rrp.current = best;

    n = p / (8 * sizeof(uintptr_t));
    m = (uintptr_t) 1 << p % (8 * sizeof(uintptr_t));
    lp->rrp.tried[n] |= m;

    if (now - best->checked > best->fail_timeout) {
        best->checked = now;
    }

    ngx_http_upstream_rr_peers_unlock(peers);

    pc->sockaddr = best->sockaddr;
    pc->socklen = best->socklen;
    pc->name = &best->name;

    t = lcf->targets.elts;
    slot = t[p].slot;
    ep = &lcf->sh->endpoints[slot];

    ctx->chosen = p;
    ctx->active_slot = slot;
    (void) ngx_atomic_fetch_add(&ep->active, 1);
    (void) ngx_atomic_fetch_add(&ep->picks, 1);

    ngx_llmd_prefix_record(lcf, ctx, p, slot);

    return NGX_OK;
}


static void
ngx_llmd_free_peer(ngx_peer_connection_t *pc, void *data, ngx_uint_t state)
{
    ngx_llmd_peer_data_t  *lp = data;

    ngx_llmd_ctx_t  *ctx;

    ctx = lp->ctx;

    if (ctx->active_slot >= 0) {
        (void) ngx_atomic_fetch_add(
                    &lp->lcf->sh->endpoints[ctx->active_slot].active,
                    (ngx_atomic_int_t) -1);
        ctx->active_slot = -1;
    }

    ngx_http_upstream_free_round_robin_peer(pc, &lp->rrp, state);
}


#if (NGX_DEBUG)

/* llm-d's "Calculated score" lines, one per scorer and endpoint. */
static void
ngx_llmd_log_scores(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    llmd_sched_result_t *res, ngx_uint_t n)
{
    ngx_uint_t          s, i;
    ngx_llmd_target_t  *t;

    t = lcf->targets.elts;

    for (s = 0; s < res->nscorers; s++) {
        for (i = 0; i < n; i++) {
            ngx_log_debug5(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "llmd: Calculated score plugin=%s/%s "
                           "endpoint=%V score=%.4f weight=%.2f",
                           lcf->profile->scorers[s].plugin->type_name,
                           lcf->profile->scorers[s].plugin->name,
                           &t[i].name, res->scores[s * n + i],
                           lcf->profile->scorers[s].weight);
        }
    }
}

#endif


static uint64_t
ngx_llmd_now_ns(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}
