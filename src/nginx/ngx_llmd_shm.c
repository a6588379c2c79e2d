/*
 * The shared-memory zone of one llmd upstream: the endpoint slots
 * (ngx_llmd_endpoints.c; keyed by address, so metrics, counters and the
 * prefix index survive a reload and follow a server when the list is
 * reordered), seqlocked metrics written by the helper process, decision
 * counters, and the prefix indexes.
 */

#include "nginx/ngx_llmd.h"


static ngx_int_t ngx_llmd_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static void *ngx_llmd_alloc_region(ngx_slab_pool_t *shpool, size_t size,
    size_t min, size_t *len);


const double  ngx_llmd_hist_bounds_us[NGX_LLMD_HIST_BUCKETS] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000
};


ngx_int_t
ngx_llmd_shm_add(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf)
{
    ngx_str_t                      name;
    ngx_http_upstream_srv_conf_t  *uscf;

    uscf = lcf->upstream;

    name.len = sizeof("llmd_") - 1 + uscf->host.len;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(name.data, "llmd_%V", &uscf->host);

    lcf->shm_zone = ngx_shared_memory_add(cf, &name, lcf->zone_size,
                                          &ngx_http_llmd_module);
    if (lcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    if (lcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shared zone \"%V\" is already used", &name);
        return NGX_ERROR;
    }

    lcf->shm_zone->init = ngx_llmd_init_zone;
    lcf->shm_zone->data = lcf;

    return NGX_OK;
}


static ngx_int_t
ngx_llmd_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_llmd_srv_conf_t  *olcf = data;

    size_t                 len, size;
    void                  *mem;
    ngx_int_t              rc;
    ngx_slab_pool_t       *shpool;
    ngx_llmd_shctx_t      *sh;
    ngx_llmd_srv_conf_t   *lcf;

    lcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (olcf && olcf->sh
        && (olcf->sh->magic != NGX_LLMD_SHM_MAGIC
            || olcf->sh->version != NGX_LLMD_SHM_VERSION))
    {
        /*
         * laid out by another build of the module: not expected, as nginx
         * keeps a zone only for the same module (ngx_llmd_module_file.c),
         * but the old workers and the helper still use it, so it cannot
         * be laid out again in place: refuse, as limit_req does for a
         * changed key, and keep the running configuration
         */
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "llmd zone \"%V\" was laid out by another build of "
                      "the module (layout %uD, this build %d): restart "
                      "nginx, or give the zone another name or size",
                      &shm_zone->shm.name, olcf->sh->version,
                      NGX_LLMD_SHM_VERSION);
        return NGX_ERROR;
    }

    if (olcf && olcf->sh) {
        /* reload: keep the endpoints, counters and the prefix index */
        lcf->sh = olcf->sh;
        lcf->shpool = olcf->shpool;
        lcf->index = olcf->index;
        lcf->kv_index = olcf->kv_index;

        if (lcf->precise && lcf->kv_index == NULL) {
            ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                          "llmd zone \"%V\" was created without a KV-event "
                          "index: precise scoring starts after a restart, "
                          "approximate until then", &shm_zone->shm.name);
            lcf->precise = 0;
        }

        ngx_shmtx_lock(&shpool->mutex);
        rc = ngx_llmd_endpoints_map(lcf, shm_zone->shm.log);

        if (rc == NGX_OK) {
            rc = ngx_llmd_decide_zone(lcf, shpool, 1, shm_zone->shm.log);
        }

        ngx_shmtx_unlock(&shpool->mutex);

        return rc;
    }

    lcf->shpool = shpool;

    sh = ngx_slab_calloc(shpool, sizeof(ngx_llmd_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->magic = NGX_LLMD_SHM_MAGIC;
    sh->version = NGX_LLMD_SHM_VERSION;
    shpool->data = sh;
    lcf->sh = sh;

    len = sizeof(" in llmd zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in llmd zone \"%V\"%Z",
                &shm_zone->shm.name);

    shpool->log_nomem = 0;

    if (ngx_llmd_decide_zone(lcf, shpool, 0, shm_zone->shm.log) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * The indexes take every remaining page: all of it for the approximate
     * index, or three quarters for the precise (KV-event) index and the
     * rest for the approximate one, which serves pods without live events.
     */
    size = shpool->pfree * ngx_pagesize;

    if (lcf->precise) {
        mem = ngx_llmd_alloc_region(shpool, size / 4 * 3,
                                    llmd_kv_index_min_size(), &len);
        if (mem == NULL) {
            goto too_small;
        }

        lcf->kv_index = llmd_kv_index_create(mem, len);
        if (lcf->kv_index == NULL) {
            goto too_small;
        }

        sh->kv_index_mem = mem;
        sh->kv_index_size = len;
        size = shpool->pfree * ngx_pagesize;
    }

    mem = ngx_llmd_alloc_region(shpool, size, llmd_prefix_index_min_size(),
                                &len);
    if (mem == NULL) {
        goto too_small;
    }

    lcf->index = llmd_prefix_index_create(mem, len);
    if (lcf->index == NULL) {
        goto too_small;
    }

    sh->index_mem = mem;
    sh->index_size = len;

    return ngx_llmd_endpoints_map(lcf, shm_zone->shm.log);

too_small:

    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                  "llmd zone \"%V\" is too small for its indexes",
                  &shm_zone->shm.name);
    return NGX_ERROR;
}


/* The largest slab allocation up to size bytes (and at least min). */
static void *
ngx_llmd_alloc_region(ngx_slab_pool_t *shpool, size_t size, size_t min,
    size_t *len)
{
    void  *mem;

    size = ngx_align(size, ngx_pagesize);

    while (size > min) {
        size -= ngx_pagesize;
        mem = ngx_slab_alloc(shpool, size);
        if (mem) {
            *len = size;
            return mem;
        }
    }

    return NULL;
}




void
ngx_llmd_metrics_read(ngx_llmd_endpoint_sh_t *ep, ngx_llmd_metrics_sh_t *out)
{
    ngx_uint_t    tries;
    ngx_atomic_uint_t  seq;

    for (tries = 0; tries < 64; tries++) {
        seq = ep->metrics.seq;

        if (seq & 1) {
            ngx_cpu_pause();
            continue;
        }

        ngx_memory_barrier();
        ngx_memcpy(out, (void *) &ep->metrics, sizeof(ngx_llmd_metrics_sh_t));
        ngx_memory_barrier();

        if (ep->metrics.seq == seq) {
            return;
        }
    }

    /* a writer that died mid-update: treat as no metrics */
    ngx_memzero(out, sizeof(ngx_llmd_metrics_sh_t));
}


void
ngx_llmd_metrics_write(ngx_llmd_endpoint_sh_t *ep, ngx_llmd_metrics_sh_t *in)
{
    ngx_atomic_uint_t  seq;

    seq = ep->metrics.seq;
    if (seq & 1) {
        /* a previous writer died mid-update */
        seq++;
    }

    ep->metrics.seq = seq + 1;
    ngx_memory_barrier();

    ep->metrics.waiting = in->waiting;
    ep->metrics.running = in->running;
    ep->metrics.kv_usage = in->kv_usage;
    ep->metrics.block_size = in->block_size;
    ep->metrics.num_gpu_blocks = in->num_gpu_blocks;
    ep->metrics.have_waiting = in->have_waiting;
    ep->metrics.have_kv = in->have_kv;
    ep->metrics.updated = in->updated;
    ep->metrics.error_time = in->error_time;
    ngx_memcpy(ep->metrics.last_error, in->last_error, NGX_LLMD_ERROR_LEN);
    ep->metrics.base_sent = in->base_sent;
    ep->metrics.base_sent_tokens = in->base_sent_tokens;
    ep->metrics.base_done = in->base_done;
    ep->metrics.base_done_tokens = in->base_done_tokens;

    ngx_memory_barrier();
    ep->metrics.seq = seq + 2;
}


void
ngx_llmd_record_decision(ngx_llmd_shctx_t *sh, uint64_t ns)
{
    ngx_uint_t  i;
    double      us;

    us = (double) ns / 1000.0;

    for (i = 0; i < NGX_LLMD_HIST_BUCKETS; i++) {
        if (us <= ngx_llmd_hist_bounds_us[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&sh->decision_hist[i], 1);
    (void) ngx_atomic_fetch_add(&sh->decision_ns_sum, ns);
    (void) ngx_atomic_fetch_add(&sh->decisions, 1);
}


/*
 * In-flight load of candidate i for this decision: the tokens the request
 * would make it compute (uncached prompt tokens, plus the output estimate
 * of inflight-load-producer's addEstimatedOutputTokens), the tokens in
 * flight to it, and with llmd_inflight on, its scraped queue, running and
 * KV values moved to the present by what was sent and finished since the
 * scrape (core/llmd_inflight.h). st has its scraped values and fresh set.
 */
ngx_int_t
ngx_llmd_inflight_state(ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx,
    ngx_uint_t i, ngx_llmd_metrics_sh_t *m, llmd_endpoint_state_t *st)
{
    double                   block_tokens;
    uint64_t                 tokens;
    llmd_inflight_t          d;
    const llmd_plugin_t     *prod;
    ngx_llmd_endpoint_sh_t  *ep;

    if (ctx->req_tokens == NULL) {
        ctx->req_tokens = ngx_pcalloc(ctx->pool,
                                      ctx->neps * sizeof(uint64_t));
        if (ctx->req_tokens == NULL) {
            return NGX_ERROR;
        }
    }

    ep = &lcf->sh->endpoints[ctx->cands[i].slot];

    /* approximate blocks are characters, 4 to a token */
    block_tokens = ctx->precise ? (double) lcf->prefix.block_size
                                : (double) lcf->approx.block_size / 4;

    tokens = llmd_inflight_uncached(ctx->prompt_tokens, st->prefix_match,
                                    ctx->prefix_total, block_tokens);

    prod = lcf->inflight_producer;

    if (prod != NULL && prod->u.inflight.add_output) {
        tokens += llmd_inflight_output(ctx->prompt_tokens,
                                       prod->u.inflight.output_ratio, -1,
                                       prod->u.inflight.max_output);
    }

    ctx->req_tokens[i] = tokens;
    st->request_tokens = (double) tokens;
    st->inflight_tokens = (double) (ngx_atomic_int_t) ep->inflight_tokens;

    if (st->inflight_tokens < 0) {
        st->inflight_tokens = 0;
    }

    if (lcf->inflight) {
        ngx_llmd_inflight_since(ep, m, &d);
        llmd_inflight_adjust(st, &d, m->block_size, m->num_gpu_blocks);
    }

    return NGX_OK;
}


/*
 * The request goes to candidate i: in flight there, until it finishes; its
 * tokens until the first chunk of a streamed answer
 * (ngx_llmd_inflight_body_filter) or until it finishes.
 */
void
ngx_llmd_inflight_sent(ngx_llmd_ctx_t *ctx, ngx_uint_t i,
    ngx_llmd_endpoint_sh_t *ep)
{
    uint64_t  tokens;

    tokens = ctx->req_tokens ? ctx->req_tokens[i] : 0;
    ctx->charged_tokens = tokens;
    ctx->prompt_released = 0;
    ctx->sse = 0;

    (void) ngx_atomic_fetch_add(&ep->active, 1);
    (void) ngx_atomic_fetch_add(&ep->inflight_tokens, tokens);
    (void) ngx_atomic_fetch_add(&ep->sent_tokens, tokens);
    (void) ngx_atomic_fetch_add(&ep->sent, 1);
}


/* The request sent to ep finished (answered, failed or aborted). */
void
ngx_llmd_inflight_done(ngx_llmd_ctx_t *ctx, ngx_llmd_endpoint_sh_t *ep)
{
    uint64_t  tokens;

    tokens = ctx->charged_tokens;
    ctx->charged_tokens = 0;

    (void) ngx_atomic_fetch_add(&ep->active, (ngx_atomic_int_t) -1);

    if (!ctx->prompt_released) {
        (void) ngx_atomic_fetch_add(&ep->inflight_tokens,
                                    -(ngx_atomic_int_t) tokens);
    }

    ctx->prompt_released = 1;

    /* the prompt's KV blocks stay on the pod until the request ends */
    (void) ngx_atomic_fetch_add(&ep->done_tokens, tokens);
    (void) ngx_atomic_fetch_add(&ep->done, 1);
}


/*
 * llm-d's inflight-load-producer (without addEstimatedOutputTokens) frees a
 * request's tokens when the first chunk of a streamed answer (content type
 * text/event-stream) arrives: its prefill is done. Other answers keep them
 * until they end (free() of the balancer). The request itself stays in
 * flight until it ends; so does its share of the KV estimate
 * (done_tokens).
 */

static ngx_http_output_header_filter_pt  ngx_llmd_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_llmd_next_body_filter;


static ngx_llmd_ctx_t *
ngx_llmd_inflight_ctx(ngx_http_request_t *r)
{
    ngx_llmd_ctx_t  *ctx;

    if (r != r->main || r->upstream == NULL) {
        return NULL;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmd_module);

    if (ctx == NULL || ctx->lcf == NULL || ctx->active_slot < 0
        || ctx->prompt_released)
    {
        return NULL;
    }

    return ctx;
}


static ngx_int_t
ngx_llmd_inflight_header_filter(ngx_http_request_t *r)
{
    ngx_str_t        *ct;
    ngx_llmd_ctx_t   *ctx;

    static ngx_str_t  sse = ngx_string("text/event-stream");

    ctx = ngx_llmd_inflight_ctx(r);

    if (ctx != NULL) {
        ct = &r->headers_out.content_type;
        ctx->sse = ct->len >= sse.len
                   && ngx_strncasecmp(ct->data, sse.data, sse.len) == 0;
    }

    return ngx_llmd_next_header_filter(r);
}


static ngx_int_t
ngx_llmd_inflight_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    const llmd_plugin_t     *prod;
    ngx_chain_t             *cl;
    ngx_llmd_ctx_t          *ctx;
    ngx_llmd_endpoint_sh_t  *ep;

    ctx = ngx_llmd_inflight_ctx(r);

    if (ctx == NULL || !ctx->sse) {
        return ngx_llmd_next_body_filter(r, in);
    }

    prod = ctx->lcf->inflight_producer;

    if (prod != NULL && prod->u.inflight.add_output) {
        /* the output estimate stays until the end, with the prompt */
        return ngx_llmd_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        if (ngx_buf_size(cl->buf) > 0) {
            break;
        }
    }

    if (cl == NULL) {
        return ngx_llmd_next_body_filter(r, in);
    }

    ep = &ctx->lcf->sh->endpoints[ctx->active_slot];

    if (ep->incarnation == ctx->active_incarnation) {
        (void) ngx_atomic_fetch_add(&ep->inflight_tokens,
                                    -(ngx_atomic_int_t) ctx->charged_tokens);
    }

    ctx->prompt_released = 1;

    return ngx_llmd_next_body_filter(r, in);
}


ngx_int_t
ngx_llmd_inflight_filter_init(ngx_conf_t *cf)
{
    ngx_llmd_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_llmd_inflight_header_filter;

    ngx_llmd_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_llmd_inflight_body_filter;

    return NGX_OK;
}


/* What was sent to ep and finished since the scrape m holds. */
void
ngx_llmd_inflight_since(ngx_llmd_endpoint_sh_t *ep, ngx_llmd_metrics_sh_t *m,
    llmd_inflight_t *d)
{
    ngx_atomic_int_t  v;

    v = (ngx_atomic_int_t) (ep->sent - m->base_sent);
    d->sent = v > 0 ? (uint64_t) v : 0;
    v = (ngx_atomic_int_t) (ep->sent_tokens - m->base_sent_tokens);
    d->sent_tokens = v > 0 ? (uint64_t) v : 0;
    v = (ngx_atomic_int_t) (ep->done - m->base_done);
    d->done = v > 0 ? (uint64_t) v : 0;
    v = (ngx_atomic_int_t) (ep->done_tokens - m->base_done_tokens);
    d->done_tokens = v > 0 ? (uint64_t) v : 0;
}
