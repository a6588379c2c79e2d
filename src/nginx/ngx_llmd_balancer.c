/*
 * Upstream peer selection: the per-request init parses the body once,
 * scores every server with the configured llm-d profile and keeps the
 * ranking; get() hands out the best server that is not tried, down, failed
 * or at max_conns (so proxy_next_upstream retries take the next best);
 * free() keeps round robin's bookkeeping and the in-flight counters.
 * Modelled on ngx_http_upstream_least_conn_module.c and _hash_module.c.
 */

#include "nginx/ngx_llmd.h"
#include "core/llmd_prompt.h"
#include "core/llmd_prefix_hash.h"


typedef struct {
    /* the round robin per-request data must be first */
    ngx_http_upstream_rr_peer_data_t   rrp;
    ngx_llmd_srv_conf_t               *lcf;
    ngx_llmd_ctx_t                    *ctx;
} ngx_llmd_peer_data_t;


static ngx_int_t ngx_llmd_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_llmd_schedule(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx, ngx_uint_t n);
static ngx_int_t ngx_llmd_get_peer(ngx_peer_connection_t *pc, void *data);
static void ngx_llmd_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state);
static void *ngx_llmd_pool_alloc(void *ctx, size_t size);
static uint64_t ngx_llmd_now_ns(void);


static uint64_t  ngx_llmd_rng;


ngx_int_t
ngx_llmd_init_upstream(ngx_conf_t *cf, ngx_http_upstream_srv_conf_t *us)
{
    ngx_llmd_srv_conf_t  *lcf;

    lcf = ngx_http_conf_upstream_srv_conf(us, ngx_http_llmd_module);

    if (ngx_http_upstream_init_round_robin(cf, us) != NGX_OK) {
        return NGX_ERROR;
    }

    /* upstream{} blocks are not merged: apply the defaults here */
    ngx_conf_init_value(lcf->metrics, 1);
    ngx_conf_init_msec_value(lcf->metrics_interval, 50);
    ngx_conf_init_msec_value(lcf->metrics_timeout, 1000);
    ngx_conf_init_msec_value(lcf->metrics_stale, 2000);
    ngx_conf_init_size_value(lcf->metrics_buffer, 512 * 1024);
    ngx_conf_init_size_value(lcf->body_limit, 8 * 1024 * 1024);

    if (lcf->metrics_uri.len == 0) {
        ngx_str_set(&lcf->metrics_uri, "/metrics");
    }

    if (lcf->metrics_interval < 10) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "llmd_metrics_interval must be at least 10ms "
                           "in upstream \"%V\"", &us->host);
        return NGX_ERROR;
    }

    if (lcf->metrics_buffer < 4096) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "llmd_metrics_buffer must be at least 4k "
                           "in upstream \"%V\"", &us->host);
        return NGX_ERROR;
    }

    if (ngx_llmd_targets_init(cf, lcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_llmd_precise_init(cf, lcf) != NGX_OK) {
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

    ngx_http_set_ctx(r, ctx, ngx_http_llmd_module);

    lp->lcf = lcf;
    lp->ctx = ctx;

    if (ngx_llmd_rng == 0) {
        ngx_llmd_rng = ((uint64_t) ngx_pid << 32) ^ ngx_llmd_now_ns() ^ 1;
    }

    return ngx_llmd_schedule(r, lcf, ctx, lp->rrp.peers->number);
}


static ngx_int_t
ngx_llmd_schedule(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx, ngx_uint_t n)
{
    char                     err[LLMD_ERRLEN];
    u_char                  *body;
    size_t                   len, i, s;
    uint64_t                 start;
    uint32_t                 slot_match[LLMD_MAX_ENDPOINTS];
    ngx_int_t                rc;
    ngx_msec_t               now;
    llmd_api_t               api;
    llmd_alloc_t             alloc;
    llmd_request_t           req;
    ngx_llmd_target_t       *t;
    llmd_sched_input_t       in;
    llmd_sched_result_t     *res;
    ngx_llmd_metrics_sh_t    m;
    ngx_llmd_endpoint_sh_t  *ep;
    llmd_endpoint_state_t    eps[LLMD_MAX_ENDPOINTS];

    start = ngx_llmd_now_ns();

    if (n != lcf->targets.nelts || n == 0) {
        /* cannot happen: the peer list was built from the same servers */
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "llmd: %ui peers but %ui targets", n,
                      lcf->targets.nelts);
        return NGX_ERROR;
    }

    ctx->neps = n;
    ctx->nhashes = 0;

    api = llmd_api_from_path((char *) r->uri.data, r->uri.len);

    if (api != LLMD_API_OTHER) {
        rc = ngx_llmd_request_body(r, lcf->body_limit, &body, &len);

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_DECLINED && len > lcf->body_limit) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "llmd: request body of %uz bytes is larger than "
                          "llmd_body_limit %uz, scheduled on load alone",
                          len, lcf->body_limit);
        }

        if (rc == NGX_OK) {
            alloc.alloc = ngx_llmd_pool_alloc;
            alloc.ctx = r->pool;

            if (llmd_request_parse(api, (char *) body, len, &alloc, &req,
                                   err, sizeof(err))
                != 0)
            {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "llmd: rejected request: %s", err);

                (void) ngx_atomic_fetch_add(
                                       &lcf->sh->rejected_bad_request, 1);

                ngx_llmd_reject(r, ctx, NGX_HTTP_BAD_REQUEST,
                                "invalid_request_error", err, ngx_strlen(err));
                return NGX_ERROR;
            }

            if (lcf->has_prefix) {
                ctx->hashes = ngx_palloc(r->pool, sizeof(uint64_t)
                                         * lcf->approx.max_prefix_blocks);
                if (ctx->hashes == NULL) {
                    return NGX_ERROR;
                }

                ctx->nhashes = llmd_prefix_hashes(req.model, req.model_len,
                                        req.cache_salt, req.cache_salt_len,
                                        req.prompt, req.prompt_len,
                                        lcf->approx.block_size,
                                        lcf->approx.max_prefix_blocks,
                                        ctx->hashes);

                if (ngx_llmd_precise_keys(r, lcf, ctx, api, &req)
                    == NGX_ERROR)
                {
                    return NGX_ERROR;
                }
            }
        }
    }

    if (ctx->nhashes) {
        ngx_shmtx_lock(&lcf->shpool->mutex);
        llmd_prefix_index_match(lcf->index, ctx->hashes, ctx->nhashes,
                                slot_match);
        ngx_shmtx_unlock(&lcf->shpool->mutex);

    } else {
        ngx_memzero(slot_match, sizeof(slot_match));
        (void) ngx_atomic_fetch_add(&lcf->sh->load_only, 1);
    }

    ctx->match = ngx_palloc(r->pool, n * sizeof(double));
    if (ctx->match == NULL) {
        return NGX_ERROR;
    }

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
        eps[i].prefix_match = slot_match[t[i].slot];
    }

    ctx->prefix_total = (uint32_t) ctx->nhashes;

    if (ctx->precise) {
        ngx_llmd_precise_match(lcf, ctx, slot_match, eps);
        ctx->prefix_total = (uint32_t) ctx->nkeys;
    }

    for (i = 0; i < n; i++) {
        ctx->match[i] = eps[i].prefix_match;
    }

    res = ngx_palloc(r->pool, sizeof(llmd_sched_result_t));
    if (res == NULL) {
        return NGX_ERROR;
    }

    res->nscorers = lcf->profile->nscorers;
    res->scores = ngx_palloc(r->pool, sizeof(double) * n
                                      * ngx_max(res->nscorers, 1));
    if (res->scores == NULL) {
        return NGX_ERROR;
    }

    in.eps = eps;
    in.neps = n;
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
#else
    (void) s;
#endif

    return NGX_OK;
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

    if (!ctx->indexed && ctx->nhashes) {
        /* llm-d updates the index for the picked endpoint before sending */
        ngx_shmtx_lock(&lcf->shpool->mutex);
        llmd_prefix_index_add(lcf->index, slot, ctx->hashes, ctx->nhashes,
                              lcf->approx.lru_capacity_per_server);
        ngx_shmtx_unlock(&lcf->shpool->mutex);

        (void) ngx_atomic_fetch_add(&lcf->sh->prefix_blocks_total,
                                    ctx->nhashes);
        (void) ngx_atomic_fetch_add(&lcf->sh->prefix_blocks_hit,
                                    (ngx_atomic_int_t) ctx->match[p]);
        ctx->indexed = 1;
    }

    if (ctx->precise && ctx->nkeys && lcf->kv_speculative) {
        /* siblings sent before this pod's events arrive land here too */
        ngx_shmtx_lock(&lcf->shpool->mutex);
        llmd_kv_index_speculate(lcf->kv_index, slot, ctx->keys, ctx->nkeys,
                                ngx_current_msec,
                                (uint32_t) lcf->kv_speculative);
        ngx_shmtx_unlock(&lcf->shpool->mutex);
        ctx->nkeys = 0;
    }

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


static void *
ngx_llmd_pool_alloc(void *ctx, size_t size)
{
    return ngx_palloc((ngx_pool_t *) ctx, size);
}


static uint64_t
ngx_llmd_now_ns(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}
