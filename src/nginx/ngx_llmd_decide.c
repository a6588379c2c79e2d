/*
 * The decision step of a request (core/llmd_decide.h says what it asks of
 * its caller) and what the decision does to the request and its answer:
 *
 *   inputs     per candidate its labels, LoRA adapters, cached prompt
 *              tokens and a stable id; per plugin the session header's
 *              endpoint and the no-hit LRU state (in the zone, shared by
 *              all workers); the prompt's estimated token count
 *   decide     llmd_decide(): the profile handler, its profiles, filters
 *              and deciders
 *   request    the prefill pick goes to the decode pod in
 *              x-prefiller-host-port (encode picks: x-encoder-hosts-ports),
 *              replacing any such header the client sent
 *   answer     session-affinity plugins name the pick in their header
 *   record     no-hit-lru-scorer learns the endpoints of a cold request
 */

#include "nginx/ngx_llmd.h"

#include <xxhash.h>


#define NGX_LLMD_PREFILL_HEADER  "x-prefiller-host-port"
#define NGX_LLMD_ENCODE_HEADER   "x-encoder-hosts-ports"

/* characters per token of the prompt estimate (the approximate index's) */
#define NGX_LLMD_CHARS_PER_TOKEN  4

/* decisions of finished requests a worker keeps for the next ones */
#define NGX_LLMD_KEEP_DECISIONS  32


static ngx_table_elt_t *ngx_llmd_header_in(ngx_http_request_t *r,
    const char *name);
static void ngx_llmd_session_in(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx, const llmd_plugin_t *p,
    llmd_plugin_input_t *pin);
static ngx_int_t ngx_llmd_session_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_llmd_session_out(ngx_http_request_t *r,
    ngx_llmd_ctx_t *ctx, const llmd_plugin_t *p);
static u_char *ngx_llmd_skip_header(u_char *p, u_char *last,
    const char *name);


static ngx_int_t ngx_llmd_lora_read(ngx_http_request_t *r,
    ngx_llmd_lora_sh_t *lora, llmd_endpoint_info_t *info);
static llmd_decision_t *ngx_llmd_decision_get(ngx_http_request_t *r);
static void ngx_llmd_decision_put(void *data);


static ngx_http_output_header_filter_pt  ngx_llmd_next_header_filter;

/*
 * An llmd_decision_t is 8.6 KB (three stages of LLMD_MAX_ENDPOINTS): from
 * the pool it was a malloc and a free per request (and a page fault when
 * glibc had trimmed the heap meanwhile). A request takes one a finished
 * request left here and gives it back when its pool goes (the decision is
 * read until then: retries, the answer's headers, the log variables).
 */
static llmd_decision_t  *ngx_llmd_decisions[NGX_LLMD_KEEP_DECISIONS];
static ngx_uint_t        ngx_llmd_ndecisions;


ngx_int_t
ngx_llmd_decide_init(ngx_conf_t *cf)
{
    ngx_llmd_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_llmd_session_header_filter;

    return NGX_OK;
}


/* What the loaded configuration needs of the glue. */
ngx_int_t
ngx_llmd_decide_conf(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf)
{
    size_t                i, j;
    ngx_uint_t            n;
    llmd_plugin_t        *p;
    llmd_profile_t       *profile;
    const llmd_config_t  *lc;

    lc = lcf->cf;
    n = 0;

    for (i = 0; i < lc->nplugins; i++) {
        p = &lc->plugins[i];

        if (p->type == LLMD_PLUGIN_NO_HIT_LRU_SCORER) {
            n++;
        }

        if (p->type == LLMD_PLUGIN_LORA_AFFINITY_SCORER) {
            lcf->has_lora = 1;
        }

        if (p->type == LLMD_PLUGIN_SESSION_AFFINITY_SCORER
            || p->type == LLMD_PLUGIN_SESSION_AFFINITY_FILTER)
        {
            lcf->has_session = 1;
        }
    }

    for (i = 0; i < lc->nprofiles; i++) {
        profile = &lc->profiles[i];

        for (j = 0; j < profile->nfilters; j++) {
            if (profile->filters[j]->type == LLMD_PLUGIN_LABEL_FILTER) {
                lcf->has_labels = 1;
            }
        }
    }

    if (n > NGX_LLMD_MAX_NOHIT) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "llmd_balancer: %s has %ui no-hit-lru-scorer "
                           "plugins, at most %d are supported", lc->file, n,
                           NGX_LLMD_MAX_NOHIT);
        return NGX_ERROR;
    }

    lcf->has_nohit = n;

    if (n) {
        lcf->nohit = ngx_pcalloc(cf->pool,
                                 lc->nplugins * sizeof(llmd_nohit_lru_t *));
        if (lcf->nohit == NULL) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * What the decision keeps in the zone, under its mutex: the LoRA state of
 * the endpoints (lora-affinity-scorer) and the LRU states of the
 * no-hit-lru-scorer plugins, kept across a reload by plugin name and size,
 * new ones allocated, those no longer configured freed. At the zone's
 * creation this runs before the indexes take the rest of the zone; after a
 * reload a new state may find no room, and its scorer then runs without it
 * (warned).
 */
ngx_int_t
ngx_llmd_decide_zone(ngx_llmd_srv_conf_t *lcf, ngx_slab_pool_t *shpool,
    ngx_uint_t reload, ngx_log_t *log)
{
    size_t                i, k, len;
    uint32_t              cap;
    ngx_uint_t            used[NGX_LLMD_MAX_NOHIT];
    llmd_plugin_t        *p;
    ngx_llmd_shctx_t     *sh;
    llmd_nohit_lru_t     *lru;
    ngx_llmd_nohit_sh_t  *e;

    sh = lcf->sh;
    ngx_memzero(used, sizeof(used));

    if (lcf->has_lora && sh->lora == NULL) {
        sh->lora = ngx_slab_calloc_locked(shpool, LLMD_MAX_ENDPOINTS
                                                  * sizeof(ngx_llmd_lora_sh_t));
        if (sh->lora == NULL) {
            if (!reload) {
                ngx_log_error(NGX_LOG_EMERG, log, 0, "llmd zone is too small "
                              "for the LoRA state of its endpoints");
                return NGX_ERROR;
            }

            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "llmd: no room in the zone for the LoRA state of "
                          "its endpoints: lora-affinity-scorer scores 0 "
                          "until a restart");
        }
    }

    for (i = 0; lcf->has_nohit && i < lcf->cf->nplugins; i++) {
        p = &lcf->cf->plugins[i];

        if (p->type != LLMD_PLUGIN_NO_HIT_LRU_SCORER) {
            continue;
        }

        cap = p->u.nohit.lru_size;
        len = ngx_strlen(p->name);

        for (k = 0; k < NGX_LLMD_MAX_NOHIT; k++) {
            e = &sh->nohit[k];

            if (e->lru && !used[k] && e->capacity == cap
                && len < NGX_LLMD_NAME_LEN
                && ngx_strcmp(e->name, p->name) == 0)
            {
                used[k] = 1;
                lcf->nohit[p->index] = e->lru;
                break;
            }
        }
    }

    /* states of plugins gone from the configuration */
    for (k = 0; k < NGX_LLMD_MAX_NOHIT; k++) {
        e = &sh->nohit[k];

        if (e->lru && !used[k]) {
            ngx_slab_free_locked(shpool, e->lru);
            ngx_memzero(e, sizeof(ngx_llmd_nohit_sh_t));
        }
    }

    for (i = 0; lcf->has_nohit && i < lcf->cf->nplugins; i++) {
        p = &lcf->cf->plugins[i];

        if (p->type != LLMD_PLUGIN_NO_HIT_LRU_SCORER
            || lcf->nohit[p->index] != NULL)
        {
            continue;
        }

        for (k = 0; k < NGX_LLMD_MAX_NOHIT; k++) {
            if (sh->nohit[k].lru == NULL) {
                break;
            }
        }

        cap = p->u.nohit.lru_size;
        lru = NULL;

        if (k < NGX_LLMD_MAX_NOHIT) {
            lru = ngx_slab_alloc_locked(shpool, llmd_nohit_lru_size(cap));
        }

        if (lru == NULL) {
            if (!reload) {
                ngx_log_error(NGX_LOG_EMERG, log, 0,
                              "llmd zone is too small for the LRU of "
                              "no-hit-lru-scorer \"%s\"", p->name);
                return NGX_ERROR;
            }

            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "llmd: no room in the zone for the LRU of "
                          "no-hit-lru-scorer \"%s\": it runs without "
                          "history until a restart", p->name);
            continue;
        }

        llmd_nohit_lru_init(lru, cap);

        e = &sh->nohit[k];
        e->lru = lru;
        e->capacity = cap;
        ngx_cpystrn(e->name, (u_char *) p->name, NGX_LLMD_NAME_LEN);
        lcf->nohit[p->index] = lru;
    }

    return NGX_OK;
}


/*
 * llmd_decide() over the candidates (eps: their load and prefix match;
 * req: the parsed request or NULL). Leaves ctx->decision, ctx->decide_in
 * and ctx->result (the decode stage's order, NULL when no endpoint passed).
 */
ngx_int_t
ngx_llmd_decide(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx, const llmd_request_t *req,
    llmd_endpoint_state_t *eps, uint64_t *rng)
{
    int                      rc;
    size_t                   i, n;
    u_char                  *labels;
    double                   per_block;
    ngx_table_elt_t         *h;
    llmd_plugin_t           *p;
    llmd_decision_t         *d;
    llmd_decide_input_t     *in;
    llmd_plugin_input_t     *pin;
    llmd_endpoint_info_t    *info;
    ngx_llmd_endpoint_sh_t  *ep;
    const llmd_config_t     *lc;

    lc = lcf->cf;
    n = ctx->neps;

    in = ngx_pcalloc(r->pool, sizeof(llmd_decide_input_t));
    d = ngx_llmd_decision_get(r);      /* llmd_decide() clears it */
    info = ngx_pcalloc(r->pool, n * sizeof(llmd_endpoint_info_t));
    pin = ngx_pcalloc(r->pool, (lc->nplugins + 1)
                               * sizeof(llmd_plugin_input_t));

    if (d == NULL) {
        return NGX_ERROR;
    }

    d->scores = ngx_palloc(r->pool, sizeof(double)
                           * ngx_max(llmd_decide_scores_size(lc, n), 1));

    if (in == NULL || info == NULL || pin == NULL || d->scores == NULL)
    {
        return NGX_ERROR;
    }

    labels = NULL;

    if (lcf->has_labels) {
        labels = ngx_palloc(r->pool, n * LLMD_LABELS_LEN);
        if (labels == NULL) {
            return NGX_ERROR;
        }

        /* the helper rewrites labels under the mutex */
        ngx_shmtx_lock(&lcf->shpool->mutex);

        for (i = 0; i < n; i++) {
            ep = &lcf->sh->endpoints[ctx->cands[i].slot];
            ngx_memcpy(labels + i * LLMD_LABELS_LEN, ep->labels,
                       LLMD_LABELS_LEN);
            labels[(i + 1) * LLMD_LABELS_LEN - 1] = '\0';
        }

        ngx_shmtx_unlock(&lcf->shpool->mutex);
    }

    /* prompt tokens per matched block, unweighted by tier */
    per_block = ctx->precise
                ? (double) lcf->prefix.block_size
                : (double) lcf->approx.block_size / NGX_LLMD_CHARS_PER_TOKEN;

    for (i = 0; i < n; i++) {
        ep = &lcf->sh->endpoints[ctx->cands[i].slot];

        if (labels && labels[i * LLMD_LABELS_LEN] != '\0') {
            info[i].labels = (char *) labels + i * LLMD_LABELS_LEN;
        }

        info[i].id = XXH64(ep->name, ngx_min(ep->name_len,
                                             NGX_LLMD_NAME_LEN), 0);
        info[i].cached_tokens = (uint32_t) (eps[i].prefix_match * per_block);

        if (lcf->has_lora && lcf->sh->lora
            && ngx_llmd_lora_read(r, &lcf->sh->lora[ctx->cands[i].slot],
                                  &info[i])
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    in->eps = eps;
    in->info = info;
    in->neps = n;
    in->prefix_total = ctx->prefix_total;
    in->rng = rng;
    in->plugin_in = pin;

    if (req != NULL) {
        in->prompt_chars = (uint32_t) ngx_min(req->prompt_len, UINT32_MAX);
        in->prompt_tokens = in->prompt_chars / NGX_LLMD_CHARS_PER_TOKEN;

        in->model = (char *) ngx_pnalloc(r->pool, req->model_len + 1);
        if (in->model == NULL) {
            return NGX_ERROR;
        }

        ngx_cpystrn((u_char *) in->model, (u_char *) req->model,
                    req->model_len + 1);
    }

    if (lc->handler->type == LLMD_PLUGIN_HEADER_PROFILE_HANDLER) {
        h = ngx_llmd_header_in(r, lc->handler->u.header_profile.header);

        if (h != NULL) {
            in->profile_header = (char *) ngx_pnalloc(r->pool,
                                                      h->value.len + 1);
            if (in->profile_header == NULL) {
                return NGX_ERROR;
            }

            ngx_cpystrn((u_char *) in->profile_header, h->value.data,
                        h->value.len + 1);
        }
    }

    for (i = 0; i < lc->nplugins; i++) {
        p = &lc->plugins[i];

        pin[p->index].session_endpoint = -1;
        pin[p->index].nohit = lcf->nohit ? lcf->nohit[p->index] : NULL;

        if (p->type == LLMD_PLUGIN_SESSION_AFFINITY_SCORER
            || p->type == LLMD_PLUGIN_SESSION_AFFINITY_FILTER)
        {
            ngx_llmd_session_in(r, lcf, ctx, p, &pin[p->index]);
        }
    }

    /* no-hit-lru-scorer reads the shared LRU */
    if (lcf->has_nohit) {
        ngx_shmtx_lock(&lcf->shpool->mutex);
    }

    rc = llmd_decide(lc, in, d);

    if (lcf->has_nohit) {
        ngx_shmtx_unlock(&lcf->shpool->mutex);
    }

    in->eps = NULL;     /* the caller's, gone after the decision */

    ctx->decide_in = in;
    ctx->decision = d;
    ctx->result = (rc == 0) ? &d->decode.result : NULL;

    return NGX_OK;
}


/* A decision for this request, given back when its pool is destroyed. */
static llmd_decision_t *
ngx_llmd_decision_get(ngx_http_request_t *r)
{
    llmd_decision_t     *d;
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    if (ngx_llmd_ndecisions) {
        d = ngx_llmd_decisions[--ngx_llmd_ndecisions];

    } else {
        d = ngx_alloc(sizeof(llmd_decision_t), r->connection->log);
        if (d == NULL) {
            return NULL;
        }
    }

    cln->handler = ngx_llmd_decision_put;
    cln->data = d;

    return d;
}


static void
ngx_llmd_decision_put(void *data)
{
    llmd_decision_t  *d = data;

    if (ngx_llmd_ndecisions < NGX_LLMD_KEEP_DECISIONS) {
        ngx_llmd_decisions[ngx_llmd_ndecisions++] = d;
        return;
    }

    ngx_free(d);
}


/* After the first pick: the no-hit LRU learns a cold request's endpoints. */
void
ngx_llmd_decide_record(ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx)
{
    if (ctx->recorded || ctx->decision == NULL) {
        return;
    }

    ctx->recorded = 1;

    if (!lcf->has_nohit) {
        return;
    }

    ngx_shmtx_lock(&lcf->shpool->mutex);
    llmd_decide_record(lcf->cf, ctx->decide_in, ctx->decision,
                       (int) ctx->chosen, (int) ctx->prefill);
    ngx_shmtx_unlock(&lcf->shpool->mutex);
}


/*
 * The request to the decode pod carries the prefill pick in
 * x-prefiller-host-port and the encode picks in x-encoder-hosts-ports
 * (when the configuration sets them, as llm-d's disaggregation handlers
 * do); a header of these names from the client is removed either way.
 * The proxy module has already built the request: its header block, the
 * first buffer, is copied with the lines changed. Retries resend it as is.
 */
ngx_int_t
ngx_llmd_pd_headers(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx)
{
    size_t                 len, k, max;
    u_char                *p, *last, *end, *line, *next, *q;
    ngx_buf_t             *b, *nb;
    ngx_chain_t           *cl;
    ngx_llmd_cand_t       *cand;
    llmd_stage_t          *enc;
    ngx_llmd_endpoint_sh_t *ep;
    const llmd_config_t   *lc;

    static ngx_uint_t      warned;

    lc = lcf->cf;

    if (!lc->prefill_header && !lc->encode_header) {
        return NGX_OK;
    }

    cl = r->upstream->request_bufs;

    if (cl == NULL || cl->buf->in_file || !ngx_buf_in_memory(cl->buf)) {
        goto unknown;
    }

    b = cl->buf;
    p = b->pos;
    last = b->last;

    /* an HTTP/1.x request line, then the header lines up to CRLF CRLF */
    line = ngx_strlchr(p, last, '\n');
    if (line == NULL || line - p < 10
        || ngx_strncmp(line - 9, "HTTP/1.", 7) != 0)
    {
        goto unknown;
    }

    end = NULL;

    for (q = line + 1; q + 1 < last; q = next + 1) {
        if (q[0] == '\r' && q[1] == '\n') {
            end = q;
            break;
        }

        next = ngx_strlchr(q, last, '\n');
        if (next == NULL) {
            break;
        }
    }

    if (end == NULL) {
        goto unknown;
    }

    enc = &ctx->decision->encode;
    max = 0;

    if (lc->encode_header && enc->result.norder) {
        max = enc->profile->picker->u.picker.max_endpoints;
        max = ngx_max(ngx_min(max, enc->result.norder), 1);
    }

    len = (last - p) + sizeof(NGX_LLMD_PREFILL_HEADER ": \r\n")
          + ctx->prefill_name.len + sizeof(NGX_LLMD_ENCODE_HEADER ": \r\n")
          + max * (NGX_LLMD_NAME_LEN + 1);

    nb = ngx_create_temp_buf(r->pool, len);
    if (nb == NULL) {
        return NGX_ERROR;
    }

    q = ngx_cpymem(nb->last, p, line + 1 - p);

    for (p = line + 1; p < end; p = next) {
        next = ngx_strlchr(p, end, '\n');
        next = next ? next + 1 : end;

        if (ngx_llmd_skip_header(p, next, NGX_LLMD_PREFILL_HEADER)
            || ngx_llmd_skip_header(p, next, NGX_LLMD_ENCODE_HEADER))
        {
            continue;
        }

        q = ngx_cpymem(q, p, next - p);
    }

    if (lc->prefill_header && ctx->prefill >= 0) {
        q = ngx_sprintf(q, NGX_LLMD_PREFILL_HEADER ": %V\r\n",
                        &ctx->prefill_name);
    }

    if (max) {
        q = ngx_cpymem(q, NGX_LLMD_ENCODE_HEADER ": ",
                       sizeof(NGX_LLMD_ENCODE_HEADER ": ") - 1);

        for (k = 0; k < max; k++) {
            cand = &ctx->cands[enc->result.order[k]];
            ep = &lcf->sh->endpoints[cand->slot];

            if (k) {
                *q++ = ',';
            }

            q = ngx_cpymem(q, ep->name, ngx_min(ep->name_len,
                                                NGX_LLMD_NAME_LEN));
        }

        *q++ = '\r'; *q++ = '\n';
    }

    q = ngx_cpymem(q, end, last - end);

    nb->last = q;
    nb->last_buf = b->last_buf;
    nb->last_in_chain = b->last_in_chain;
    nb->flush = b->flush;

    cl->buf = nb;

    return NGX_OK;

unknown:

    if (!warned) {
        warned = 1;
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "llmd: the upstream request is not an HTTP/1.x "
                      "request built in memory (proxy_pass): the "
                      "disaggregation headers are not set");
    }

    return NGX_OK;
}


/* Whether the header line p..last is named name (any case). */
static u_char *
ngx_llmd_skip_header(u_char *p, u_char *last, const char *name)
{
    size_t  len;

    len = ngx_strlen(name);

    if ((size_t) (last - p) > len && p[len] == ':'
        && ngx_strncasecmp(p, (u_char *) name, len) == 0)
    {
        return p;
    }

    return NULL;
}


/* The request header of this name (lowercase), or NULL. */
static ngx_table_elt_t *
ngx_llmd_header_in(ngx_http_request_t *r, const char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i];
        }
    }
}


/*
 * session-affinity (encoded_endpoint_header): the header holds the
 * base64 of an endpoint's name, here its ip:port; the candidate of that
 * name, if any, is the session's.
 */
static void
ngx_llmd_session_in(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx, const llmd_plugin_t *p, llmd_plugin_input_t *pin)
{
    u_char                   buf[NGX_LLMD_NAME_LEN * 2];
    ngx_str_t                value, name;
    ngx_uint_t               i;
    ngx_table_elt_t         *h;
    ngx_llmd_endpoint_sh_t  *ep;

    h = ngx_llmd_header_in(r, p->u.session.header);
    if (h == NULL) {
        return;
    }

    value = h->value;

    while (value.len && value.data[value.len - 1] == ' ') {
        value.len--;
    }

    if (value.len == 0 || ngx_base64_decoded_length(value.len) > sizeof(buf))
    {
        return;
    }

    name.data = buf;

    if (ngx_decode_base64(&name, &value) != NGX_OK) {
        return;
    }

    for (i = 0; i < ctx->neps; i++) {
        ep = &lcf->sh->endpoints[ctx->cands[i].slot];

        if (ep->name_len == name.len
            && ngx_strncmp(ep->name, name.data, name.len) == 0)
        {
            pin->session_endpoint = (int32_t) i;
            return;
        }
    }
}


/* The answer of a pod names the session's endpoint, as llm-d does. */
static ngx_int_t
ngx_llmd_session_header_filter(ngx_http_request_t *r)
{
    size_t                i;
    ngx_llmd_ctx_t       *ctx;
    const llmd_plugin_t  *p;

    if (r != r->main || r->upstream == NULL
        || r->upstream->headers_in.status_n == 0)
    {
        return ngx_llmd_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmd_module);

    if (ctx == NULL || ctx->decision == NULL || ctx->lcf == NULL
        || !ctx->lcf->has_session || ctx->chosen < 0)
    {
        return ngx_llmd_next_header_filter(r);
    }

    for (i = 0; i < ctx->lcf->cf->nplugins; i++) {
        p = &ctx->lcf->cf->plugins[i];

        if (p->type != LLMD_PLUGIN_SESSION_AFFINITY_SCORER
            && p->type != LLMD_PLUGIN_SESSION_AFFINITY_FILTER)
        {
            continue;
        }

        if (ngx_llmd_session_out(r, ctx, p) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return ngx_llmd_next_header_filter(r);
}


static ngx_int_t
ngx_llmd_session_out(ngx_http_request_t *r, ngx_llmd_ctx_t *ctx,
    const llmd_plugin_t *p)
{
    ngx_str_t                name, *hdr;
    ngx_uint_t               i;
    ngx_table_elt_t         *h;
    const char              *want;
    llmd_decision_t         *d;
    ngx_llmd_endpoint_sh_t  *ep;

    d = ctx->decision;
    want = p->u.session.profile_name;
    name = ctx->peer_name;

    if (want != NULL
        && !(d->decode.profile && ngx_strcmp(want, d->decode.profile->name)
                                  == 0))
    {
        if (d->prefill.profile
            && ngx_strcmp(want, d->prefill.profile->name) == 0
            && ctx->prefill >= 0)
        {
            name = ctx->prefill_name;

        } else if (d->encode.profile
                   && ngx_strcmp(want, d->encode.profile->name) == 0
                   && d->encode.result.norder)
        {
            i = d->encode.result.order[0];
            ep = &ctx->lcf->sh->endpoints[ctx->cands[i].slot];
            name.data = ep->name;
            name.len = ngx_min(ep->name_len, NGX_LLMD_NAME_LEN);

        } else {
            return NGX_OK;      /* that stage did not run: no header */
        }
    }

    if (name.len == 0) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    hdr = &h->key;
    hdr->len = ngx_strlen(p->u.session.header);
    hdr->data = (u_char *) p->u.session.header;

    h->value.data = ngx_pnalloc(r->pool, ngx_base64_encoded_length(name.len));
    if (h->value.data == NULL) {
        h->hash = 0;
        return NGX_ERROR;
    }

    ngx_encode_base64(&h->value, &name);
    h->hash = 1;

    return NGX_OK;
}


/* The helper, after a scrape: the endpoint's LoRA adapters. */
void
ngx_llmd_lora_write(ngx_llmd_shctx_t *sh, ngx_uint_t slot,
    const llmd_vllm_metrics_t *vm)
{
    ngx_atomic_uint_t    seq;
    ngx_llmd_lora_sh_t  *lora;

    if (sh->lora == NULL) {
        return;
    }

    lora = &sh->lora[slot];

    seq = lora->seq;
    if (seq & 1) {
        seq++;                        /* a previous writer died */
    }

    lora->seq = seq + 1;
    ngx_memory_barrier();

    lora->have = vm->have_lora;
    lora->max = vm->lora_max;
    ngx_cpystrn(lora->running, (u_char *) vm->lora_running, LLMD_LORA_LEN);
    ngx_cpystrn(lora->waiting, (u_char *) vm->lora_waiting, LLMD_LORA_LEN);

    ngx_memory_barrier();
    lora->seq = seq + 2;
}


/* A request: the endpoint's LoRA adapters into info (none: left empty). */
static ngx_int_t
ngx_llmd_lora_read(ngx_http_request_t *r, ngx_llmd_lora_sh_t *lora,
    llmd_endpoint_info_t *info)
{
    u_char             *running, *waiting;
    uint32_t            max;
    ngx_uint_t          tries, have;
    ngx_atomic_uint_t   seq;

    running = ngx_pnalloc(r->pool, 2 * LLMD_LORA_LEN);
    if (running == NULL) {
        return NGX_ERROR;
    }

    waiting = running + LLMD_LORA_LEN;

    for (tries = 0; tries < 64; tries++) {
        seq = lora->seq;

        if (seq & 1) {
            ngx_cpu_pause();
            continue;
        }

        ngx_memory_barrier();

        have = lora->have;
        max = lora->max;
        ngx_memcpy(running, lora->running, LLMD_LORA_LEN);
        ngx_memcpy(waiting, lora->waiting, LLMD_LORA_LEN);

        ngx_memory_barrier();

        if (lora->seq != seq) {
            continue;
        }

        if (have) {
            running[LLMD_LORA_LEN - 1] = '\0';
            waiting[LLMD_LORA_LEN - 1] = '\0';
            info->lora_running = (char *) running;
            info->lora_waiting = (char *) waiting;
            info->lora_max = max;
        }

        return NGX_OK;
    }

    return NGX_OK;
}
