/*
 * Upstream peer selection, modelled on ngx_http_upstream_least_conn_module.c
 * and _hash_module.c, over the upstream's own endpoint table in shared
 * memory (ngx_llmd_endpoints.c) instead of round robin's peer list, so that
 * endpoints can come and go without a reload. The per-request init makes
 * the whole decision in one straight line (ngx_llmd_schedule):
 *
 *   request        body -> parsed request, or a 400   ngx_llmd_request.c
 *   candidates     the ACTIVE endpoints               ngx_llmd_endpoints.c
 *   prefix match   approximate and precise            ngx_llmd_prefix.c
 *   endpoints      metrics and in-flight counts       (here)
 *   decide         profile handler, profiles: filters, ngx_llmd_decide.c,
 *                  scorers, weights, picker; deciders  core/llmd_decide.c
 *   prefill pick   the prefill stage's best usable pod (here)
 *   record         decision time and counters         ngx_llmd_shm.c
 *
 * then the request to the decode pod gets the prefill pod's address
 * (ngx_llmd_pd_headers), and keeps the decode stage's ranking; get()
 * hands out the best endpoint that is not tried, gone, down, failed
 * (max_fails within fail_timeout, counted for all workers) or at
 * max_conns (in flight across all workers), so proxy_next_upstream
 * retries take the next best; free() counts failures and in-flight
 * requests.
 */

#include "nginx/ngx_llmd.h"


static ngx_int_t ngx_llmd_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_llmd_schedule(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx);
static ngx_int_t ngx_llmd_endpoint_states(ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx, llmd_endpoint_state_t *eps);
static ngx_int_t ngx_llmd_prefill_pick(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx);
static ngx_int_t ngx_llmd_get_peer(ngx_peer_connection_t *pc, void *data);
static ngx_int_t ngx_llmd_usable(ngx_llmd_endpoint_sh_t *ep,
    ngx_llmd_cand_t *cand, time_t now);
static void ngx_llmd_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state);
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_llmd_set_session(ngx_peer_connection_t *pc,
    void *data);
static void ngx_llmd_save_session(ngx_peer_connection_t *pc, void *data);
#endif
#if (NGX_DEBUG)
static void ngx_llmd_log_scores(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx);
#endif
static uint64_t ngx_llmd_now_ns(void);


static uint64_t  ngx_llmd_rng;


/*
 * At the end of the configuration, after the defaults are applied
 * (ngx_http_llmd_init_upstream): the `server` lines become static
 * endpoints, precise scoring loads its tokenizer, the zone is declared.
 */
ngx_int_t
ngx_llmd_balancer_init(ngx_conf_t *cf, ngx_http_upstream_srv_conf_t *us,
    ngx_llmd_srv_conf_t *lcf)
{
    if (ngx_llmd_statics_init(cf, lcf) != NGX_OK) {
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
    ngx_llmd_ctx_t       *ctx;
    ngx_llmd_srv_conf_t  *lcf;

    lcf = ngx_http_conf_upstream_srv_conf(us, ngx_http_llmd_module);

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_llmd_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->lcf = lcf;
    ctx->pool = r->pool;
    ctx->keepalive = r->keepalive;
    ctx->chosen = -1;
    ctx->prefill = -1;
    ctx->active_slot = -1;

    ngx_http_set_ctx(r, ctx, ngx_http_llmd_module);

    r->upstream->peer.data = ctx;
    r->upstream->peer.get = ngx_llmd_get_peer;
    r->upstream->peer.free = ngx_llmd_free_peer;
#if (NGX_HTTP_SSL)
    r->upstream->peer.set_session = ngx_llmd_set_session;
    r->upstream->peer.save_session = ngx_llmd_save_session;
#endif

    if (ngx_llmd_rng == 0) {
        ngx_llmd_rng = ((uint64_t) ngx_pid << 32) ^ ngx_llmd_now_ns() ^ 1;
    }

    if (ngx_llmd_schedule(r, lcf, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->decision && ngx_llmd_pd_headers(r, lcf, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    /* every candidate once at most; proxy_next_upstream_tries may cap it */
    r->upstream->peer.tries = ngx_max(ctx->neps, 1);

    return NGX_OK;
}


/* One decision: request -> candidates -> prefix match -> endpoints ->
   decide -> the prefill pick. */
static ngx_int_t
ngx_llmd_schedule(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx)
{
    uint64_t                start;
    ngx_int_t               rc;
    llmd_request_t          req;
    ngx_llmd_cand_t         cands[LLMD_MAX_ENDPOINTS];
    llmd_endpoint_state_t   eps[LLMD_MAX_ENDPOINTS];

    start = ngx_llmd_now_ns();
    ctx->prefill = -1;

    rc = ngx_llmd_request_read(r, lcf, ctx, &req);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    /* read on the stack, kept for the retries: only the members there are
       (LLMD_MAX_ENDPOINTS of them would be a 4 KB malloc per request) */
    ctx->neps = ngx_llmd_members_read(lcf->sh, cands);

    ctx->cands = ngx_palloc(r->pool,
                            ngx_max(ctx->neps, 1) * sizeof(ngx_llmd_cand_t));
    if (ctx->cands == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->cands, cands, ctx->neps * sizeof(ngx_llmd_cand_t));

    if (ctx->neps == 0) {
        /* nothing to rank: get() answers 503 */
        ctx->scheduled = 1;
        return NGX_OK;
    }

    if (ngx_llmd_prefix_match(r, lcf, ctx, rc == NGX_OK ? &req : NULL, eps)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_llmd_endpoint_states(lcf, ctx, eps) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_llmd_decide(r, lcf, ctx, rc == NGX_OK ? &req : NULL, eps,
                        &ngx_llmd_rng)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_llmd_prefill_pick(r, lcf, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->scheduled = 1;
    ctx->decision_ns = ngx_llmd_now_ns() - start;

    ngx_llmd_record_decision(lcf->sh, ctx->decision_ns);

#if (NGX_DEBUG)
    if (ctx->result) {
        ngx_llmd_log_scores(r, lcf, ctx);
    }
#endif

    return NGX_OK;
}


/*
 * The prefill pod: the best of the prefill stage's order that may take a
 * request now (nginx's rules, as for the decode pod). It stays the same
 * when the decode leg is retried on the next decode pod.
 */
static ngx_int_t
ngx_llmd_prefill_pick(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx)
{
    time_t                   now;
    ngx_uint_t               k, i;
    llmd_stage_t            *st;
    ngx_llmd_endpoint_sh_t  *ep;

    if (ctx->decision == NULL || ctx->result == NULL) {
        return NGX_OK;
    }

    st = &ctx->decision->prefill;
    now = ngx_time();

    for (k = 0; k < st->result.norder; k++) {
        i = st->result.order[k];
        ep = &lcf->sh->endpoints[ctx->cands[i].slot];

        if (!ngx_llmd_usable(ep, &ctx->cands[i], now)) {
            continue;
        }

        ctx->prefill_name.data = ngx_pnalloc(r->pool, NGX_LLMD_NAME_LEN);
        if (ctx->prefill_name.data == NULL) {
            return NGX_ERROR;
        }

        ctx->prefill_name.len = ngx_min(ep->name_len, NGX_LLMD_NAME_LEN);
        ngx_memcpy(ctx->prefill_name.data, ep->name, ctx->prefill_name.len);

        if (ep->incarnation != ctx->cands[i].incarnation) {
            continue;                 /* the slot changed hands meanwhile */
        }

        ctx->prefill = i;
        (void) ngx_atomic_fetch_add(&lcf->sh->pd_decisions, 1);

        return NGX_OK;
    }

    ctx->prefill_name.len = 0;

    return NGX_OK;
}


/*
 * What the helper last scraped and what is in flight, per candidate (the
 * scraped values moved to the present by the in-flight load).
 */
static ngx_int_t
ngx_llmd_endpoint_states(ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx,
    llmd_endpoint_state_t *eps)
{
    ngx_uint_t               i;
    ngx_msec_t               now;
    ngx_llmd_metrics_sh_t    m;
    ngx_llmd_endpoint_sh_t  *ep;

    now = ngx_current_msec;

    for (i = 0; i < ctx->neps; i++) {
        ep = &lcf->sh->endpoints[ctx->cands[i].slot];

        ngx_llmd_metrics_read(ep, &m);

        eps[i].waiting = m.waiting;
        eps[i].running = m.running;
        eps[i].kv_usage = m.have_kv ? m.kv_usage : 0;
        eps[i].fresh = (m.updated != 0 && m.have_waiting
                        && ngx_llmd_metrics_age(now, m.updated)
                           <= lcf->metrics_stale);
        eps[i].active = (uint32_t) ep->active;

        if (ngx_llmd_inflight_state(lcf, ctx, i, &m, &eps[i]) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_llmd_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_llmd_ctx_t  *ctx = data;

    time_t                   now;
    uintptr_t                m;
    ngx_int_t                rc;
    ngx_uint_t               k, i, n;
    ngx_addr_t               addr;
    ngx_llmd_cand_t         *cand;
    ngx_llmd_srv_conf_t     *lcf;
    ngx_llmd_endpoint_sh_t  *ep;

    lcf = ctx->lcf;

    pc->cached = 0;
    pc->connection = NULL;

    now = ngx_time();

    for (k = 0; ctx->result && k < ctx->result->norder; k++) {
        i = ctx->result->order[k];

        n = i / (8 * sizeof(uintptr_t));
        m = (uintptr_t) 1 << i % (8 * sizeof(uintptr_t));

        if (ctx->tried[n] & m) {
            continue;
        }

        cand = &ctx->cands[i];
        ep = &lcf->sh->endpoints[cand->slot];

        if (!ngx_llmd_usable(ep, cand, now)) {
            continue;
        }

        rc = ngx_llmd_endpoint_address(lcf->sh, cand, ctx->pool, &addr);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED) {
            continue;                 /* the slot holds another endpoint */
        }

        ctx->tried[n] |= m;

        if (ep->max_fails && (ngx_uint_t) ep->fails >= ep->max_fails) {
            /* fail_timeout is over: this request probes it, alone */
            ep->checked = (ngx_atomic_uint_t) now;
        }

        /* $upstream_addr keeps each attempt's name: one per attempt */
        pc->name = ngx_palloc(ctx->pool, sizeof(ngx_str_t));
        if (pc->name == NULL) {
            return NGX_ERROR;
        }

        *pc->name = addr.name;
        pc->sockaddr = addr.sockaddr;
        pc->socklen = addr.socklen;
        ctx->peer_name = addr.name;

        ctx->chosen = i;
        ctx->active_slot = cand->slot;
        ctx->active_incarnation = cand->incarnation;
        ngx_llmd_inflight_sent(ctx, i, ep);
        (void) ngx_atomic_fetch_add(&ep->picks, 1);

        ngx_llmd_prefix_record(lcf, ctx, i, cand->slot);
        ngx_llmd_decide_record(lcf, ctx);

        return NGX_OK;
    }

    (void) ngx_atomic_fetch_add(&lcf->sh->rejected_no_endpoint, 1);

    ngx_llmd_reject(NULL, ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                    "ServiceUnavailableError", NULL, 0);

    pc->name = &ctx->lcf->upstream->host;

    return NGX_BUSY;
}


/* nginx's rules for a server that may take a request, for all workers. */
static ngx_int_t
ngx_llmd_usable(ngx_llmd_endpoint_sh_t *ep, ngx_llmd_cand_t *cand,
    time_t now)
{
    if (ep->incarnation != cand->incarnation
        || ep->state != NGX_LLMD_EP_ACTIVE
        || ep->down)
    {
        return 0;
    }

    if (ep->max_fails
        && (ngx_uint_t) ep->fails >= ep->max_fails
        && now - (time_t) ep->checked <= ep->fail_timeout)
    {
        return 0;
    }

    if (ep->max_conns && (ngx_uint_t) ep->active >= ep->max_conns) {
        return 0;
    }

    return 1;
}


static void
ngx_llmd_free_peer(ngx_peer_connection_t *pc, void *data, ngx_uint_t state)
{
    ngx_llmd_ctx_t  *ctx = data;

    ngx_llmd_endpoint_sh_t  *ep;

    if (pc->tries) {
        pc->tries--;
    }

    if (ctx->active_slot < 0) {
        return;
    }

    ep = &ctx->lcf->sh->endpoints[ctx->active_slot];
    ctx->active_slot = -1;

    if (ep->incarnation != ctx->active_incarnation) {
        /* the endpoint is gone and its slot reused: nothing to count */
        return;
    }

    ngx_llmd_inflight_done(ctx, ep);

    if (state & NGX_PEER_FAILED) {
        if (ep->max_fails
            && (ngx_uint_t) ngx_atomic_fetch_add(&ep->fails, 1) + 1
               == ep->max_fails)
        {
            ngx_log_error(NGX_LOG_WARN, pc->log, 0,
                          "upstream server temporarily disabled");
        }

        ep->checked = (ngx_atomic_uint_t) ngx_time();

    } else if (ep->fails) {
        /* it answered: mark it live again */
        ep->fails = 0;
    }
}


#if (NGX_HTTP_SSL)

/* TLS sessions are not kept per endpoint; keepalive connections are. */
static ngx_int_t
ngx_llmd_set_session(ngx_peer_connection_t *pc, void *data)
{
    return NGX_OK;
}


static void
ngx_llmd_save_session(ngx_peer_connection_t *pc, void *data)
{
}

#endif


#if (NGX_DEBUG)

/* llm-d's "Calculated score" lines, one per scorer and endpoint. */
static void
ngx_llmd_log_scores(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx)
{
    ngx_uint_t               s, i, n;
    const llmd_profile_t    *profile;
    ngx_llmd_endpoint_sh_t  *ep;

    n = ctx->neps;
    profile = ctx->decision->decode.profile;

    if (ctx->result->scores == NULL) {
        return;
    }

    for (s = 0; s < ctx->result->nscorers; s++) {
        for (i = 0; i < n; i++) {
            ep = &lcf->sh->endpoints[ctx->cands[i].slot];
            ngx_log_debug6(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "llmd: Calculated score plugin=%s/%s "
                           "endpoint=%*s score=%.4f weight=%.2f",
                           profile->scorers[s].plugin->type_name,
                           profile->scorers[s].plugin->name,
                           ep->name_len, ep->name,
                           ctx->result->scores[s * n + i],
                           profile->scorers[s].weight);
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
