/*
 * The prefix-cache step of a decision: how many leading blocks of the
 * prompt each endpoint holds, approximate and precise behind one function.
 *   approximate: the prompt's character blocks, hashed as llm-d does, are
 *                looked up in the index of what was routed where;
 *   precise:     the prompt's token blocks, keyed as the KV-event index
 *                keys them (ngx_llmd_precise.c), are looked up in what the
 *                pods reported; an endpoint whose event stream is neither
 *                live nor connected is scored with its approximate match
 *                instead.
 * After the pick, the prompt's blocks are recorded for the picked endpoint.
 * In precise mode the approximate blocks are hashed only when they are
 * used: for the approximate lookup when an endpoint scored by it holds
 * entries, for the record when the picked endpoint is such an endpoint.
 */

#include "nginx/ngx_llmd.h"
#include "core/llmd_body_scan.h"
#include "core/llmd_prefix_hash.h"


static void ngx_llmd_prefix_approx(ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx, uint32_t *slot_match);
static ngx_int_t ngx_llmd_prefix_precise(ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx, llmd_endpoint_state_t *eps);
static ngx_int_t ngx_llmd_prefix_hashes(ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx);
static ngx_uint_t ngx_llmd_precise_trusted(ngx_llmd_endpoint_sh_t *ep);


/*
 * Fills eps[0..ctx->neps).prefix_match, ctx->match and ctx->prefix_total;
 * req is NULL when there is no prompt to match.
 */
ngx_int_t
ngx_llmd_prefix_match(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx, const llmd_request_t *req,
    llmd_endpoint_state_t *eps)
{
    uint32_t            slot_match[LLMD_MAX_ENDPOINTS];
    ngx_uint_t          i;
    llmd_request_t     *copy;

    ctx->nhashes = 0;
    ctx->unhashed = NULL;
    ctx->held.last = LLMD_INDEX_NONE;

    /* estimated as the approximate index counts: 4 bytes to a token */
    ctx->prompt_tokens = req != NULL ? (req->prompt_len + 3) / 4 : 0;

    if (req != NULL && lcf->has_prefix && req->hashed) {
        /* the body scanner hashed the blocks (ngx_llmd_request.c) and
           copied a precise completions prompt's text */
        ctx->hashes = (uint64_t *) req->hashes;
        ctx->nhashes = req->nhashes;

        if (ctx->hashes == NULL && ctx->nhashes) {
            /* precise: hashed from the scanner's copy when needed */
            if (req->text == NULL && req->msgs == NULL) {
                ctx->nhashes = 0;

            } else {
                copy = ngx_palloc(r->pool, sizeof(llmd_request_t));
                if (copy == NULL) {
                    return NGX_ERROR;
                }

                *copy = *req;
                ctx->unhashed = copy;
                ctx->unhashed_scan = ngx_llmd_request_scans;
            }
        }

        if (ngx_llmd_precise_keys(r, lcf, ctx, req) == NGX_ERROR) {
            return NGX_ERROR;
        }

    } else if (req != NULL && lcf->has_prefix) {
        ctx->hashes = ngx_palloc(r->pool, sizeof(uint64_t)
                                          * lcf->approx.max_prefix_blocks);
        if (ctx->hashes == NULL) {
            return NGX_ERROR;
        }

        ctx->nhashes = llmd_prefix_hashes(req->model, req->model_len,
                                          req->cache_salt,
                                          req->cache_salt_len,
                                          req->prompt, req->prompt_len,
                                          lcf->approx.block_size,
                                          lcf->approx.max_prefix_blocks,
                                          ctx->hashes);

        if (ngx_llmd_precise_keys(r, lcf, ctx, req) == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    if (!ctx->nhashes) {
        (void) ngx_atomic_fetch_add(&lcf->sh->load_only, 1);
    }

    if (ctx->precise) {
        /* the approximate match only for endpoints without an event
           stream to trust */
        if (ngx_llmd_prefix_precise(lcf, ctx, eps) != NGX_OK) {
            return NGX_ERROR;
        }

        ctx->prefix_total = (uint32_t) ctx->nkeys;

    } else {
        /* e.g. the prompt could not be tokenized: scored approximately */
        if (ngx_llmd_prefix_hashes(lcf, ctx) == NGX_ERROR) {
            return NGX_ERROR;
        }

        ngx_llmd_prefix_approx(lcf, ctx, slot_match);

        for (i = 0; i < ctx->neps; i++) {
            eps[i].prefix_match = slot_match[ctx->cands[i].slot];
        }

        ctx->prefix_total = (uint32_t) ctx->nhashes;
    }

    ctx->match = ngx_palloc(r->pool, ctx->neps * sizeof(double));
    if (ctx->match == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < ctx->neps; i++) {
        ctx->match[i] = eps[i].prefix_match;
    }

    return NGX_OK;
}


/*
 * The request's blocks count as cached on the picked endpoint: llm-d adds
 * them to the approximate index before the request is sent, and precise
 * mode holds them as speculative entries until the pod's own events come.
 * In precise mode the approximate index learns only what is routed to an
 * endpoint scored by it (neither live nor connected, as it is now): one
 * scored from the KV index is never read from the approximate index.
 * Runs at the first pick, after the decision's clock ($llmd_decision_us).
 */
void
ngx_llmd_prefix_record(ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx,
    ngx_uint_t peer, ngx_uint_t slot)
{
    if (!ctx->indexed && ctx->nhashes) {
        if ((!ctx->precise
             || !ngx_llmd_precise_trusted(&lcf->sh->endpoints[slot]))
            && ngx_llmd_prefix_hashes(lcf, ctx) == NGX_OK)
        {
            /* with what the approximate lookup saw: a prompt the
               endpoint holds as one run is moved without a search, if
               no worker changed the index in between */
            ngx_shmtx_lock(&lcf->shpool->mutex);
            llmd_prefix_index_add_held(lcf->index, slot, ctx->hashes,
                                       ctx->nhashes,
                                       lcf->approx.lru_capacity_per_server,
                                       &ctx->held);
            ngx_shmtx_unlock(&lcf->shpool->mutex);
        }

        /* in the scorer's blocks (precise: KV blocks), as the hit */
        (void) ngx_atomic_fetch_add(&lcf->sh->prefix_blocks_total,
                                    ctx->prefix_total);
        (void) ngx_atomic_fetch_add(&lcf->sh->prefix_blocks_hit,
                                    (ngx_atomic_int_t) ctx->match[peer]);
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
}


/* The approximate index's match of the request's blocks, per slot, and
   what the record after the pick may reuse (ctx->held). */
static void
ngx_llmd_prefix_approx(ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx,
    uint32_t *slot_match)
{
    if (ctx->nhashes == 0) {
        ngx_memzero(slot_match, sizeof(uint32_t) * LLMD_MAX_ENDPOINTS);
        return;
    }

    ngx_shmtx_lock(&lcf->shpool->mutex);
    llmd_prefix_index_match_held(lcf->index, ctx->hashes, ctx->nhashes,
                                 slot_match, &ctx->held);
    ngx_shmtx_unlock(&lcf->shpool->mutex);
}


/*
 * The approximate blocks of a precise request, hashed now if they were
 * not: from the scanner's copy of a string prompt or of plain chat
 * messages, in the worker's buffers, as the scanner would have hashed
 * them. NGX_DECLINED when that copy is gone (another body was scanned
 * since: not while one decision runs).
 */
static ngx_int_t
ngx_llmd_prefix_hashes(ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx)
{
    uint64_t              *hashes;
    const llmd_request_t  *q;

    q = ctx->unhashed;

    if (q == NULL) {
        return ctx->hashes != NULL || ctx->nhashes == 0 ? NGX_OK
                                                       : NGX_DECLINED;
    }

    if (ctx->unhashed_scan != ngx_llmd_request_scans) {
        return NGX_DECLINED;
    }

    hashes = ngx_palloc(ctx->pool, sizeof(uint64_t)
                                   * lcf->approx.max_prefix_blocks);
    if (hashes == NULL) {
        return NGX_ERROR;
    }

    if (q->msgs != NULL) {
        ctx->nhashes = llmd_body_chat_hashes(q->model, q->model_len,
                                             q->cache_salt,
                                             q->cache_salt_len, q->msgs,
                                             q->nmsgs,
                                             lcf->approx.block_size,
                                             lcf->approx.max_prefix_blocks,
                                             hashes);

    } else {
        ctx->nhashes = llmd_prefix_hashes(q->model, q->model_len,
                                          q->cache_salt, q->cache_salt_len,
                                          (const u_char *) q->text,
                                          q->text_len,
                                          lcf->approx.block_size,
                                          lcf->approx.max_prefix_blocks,
                                          hashes);
    }

    ctx->hashes = hashes;
    ctx->unhashed = NULL;

    (void) ngx_atomic_fetch_add(&lcf->sh->precise_approx_hashes, 1);

    return NGX_OK;
}


/*
 * Precise match of every endpoint into eps[].prefix_match, in blocks of
 * the precise keys. An endpoint whose event stream is neither live nor
 * connected (ngx_llmd_precise_trusted) is scored with its approximate
 * match, scaled to the same number of blocks; the approximate index is
 * read (and the approximate blocks hashed) only if one of those endpoints
 * holds entries in it (else each of their matches is 0 whatever the
 * prompt).
 */
static ngx_int_t
ngx_llmd_prefix_precise(ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx,
    llmd_endpoint_state_t *eps)
{
    ngx_int_t           rc;
    double              match[LLMD_MAX_ENDPOINTS];
    uint32_t            approx_match[LLMD_MAX_ENDPOINTS];
    ngx_uint_t          i, slot, fallbacks, learned;
    u_char              fallback[LLMD_MAX_ENDPOINTS];

    fallbacks = 0;

    for (i = 0; i < ctx->neps; i++) {
        fallback[i] = !ngx_llmd_precise_trusted(
                          &lcf->sh->endpoints[ctx->cands[i].slot]);
        fallbacks += fallback[i];
    }

    learned = 0;

    ngx_shmtx_lock(&lcf->shpool->mutex);

    llmd_kv_index_match(lcf->kv_index, ctx->keys, ctx->nkeys,
                        ngx_current_msec, match);

    for (i = 0; ctx->nhashes && i < ctx->neps && !learned; i++) {
        learned = fallback[i]
                  && llmd_prefix_index_holds(lcf->index, ctx->cands[i].slot);
    }

    ngx_shmtx_unlock(&lcf->shpool->mutex);

    if (learned) {
        /* hashed outside the lock */
        rc = ngx_llmd_prefix_hashes(lcf, ctx);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        learned = (rc == NGX_OK && ctx->nhashes);
    }

    if (learned) {
        ngx_shmtx_lock(&lcf->shpool->mutex);
        llmd_prefix_index_match(lcf->index, ctx->hashes, ctx->nhashes,
                                approx_match);
        ngx_shmtx_unlock(&lcf->shpool->mutex);
    }

    for (i = 0; i < ctx->neps; i++) {
        slot = ctx->cands[i].slot;

        if (!fallback[i]) {
            eps[i].prefix_match = match[slot];

        } else {
            eps[i].prefix_match = learned
                ? (double) approx_match[slot] / ctx->nhashes * ctx->nkeys
                : 0;
        }
    }

    (void) ngx_atomic_fetch_add(&lcf->sh->precise_decisions, 1);

    if (fallbacks) {
        (void) ngx_atomic_fetch_add(&lcf->sh->precise_fallbacks, fallbacks);
    }

    return NGX_OK;
}


/*
 * Whether an endpoint's precise match can be taken as it is: its event
 * stream is live (a batch applied since its last clear), or the helper's
 * subscriber is connected to its publisher (connect mode) and nothing has
 * made its entries doubtful since (a clear, a failed scrape): a publisher
 * that has said nothing since the connection came up has reported no
 * block, so the KV index holds all there is to know of it (nothing, or
 * speculative entries), as of a live pod.
 */
static ngx_uint_t
ngx_llmd_precise_trusted(ngx_llmd_endpoint_sh_t *ep)
{
    return ep->kv_live || ep->kv_connected;
}
