/*
 * Endpoint discovery in the helper process (llmd_endpoints): every
 * interval a source is asked again, and what it lists becomes the
 * upstream's endpoints (ngx_llmd_endpoints.c) without a reload.
 *   dns   NAME port=N  the A/AAAA records of NAME (e.g. a Kubernetes
 *                      headless Service) through nginx's resolver;
 *   file  PATH         llm-d's file-discovery endpoints file, read again
 *                      when it changes (core/llmd_endpoints_file.c).
 * New endpoints are scraped and, in connect mode, subscribed to; they take
 * requests once their first metrics arrive. Endpoints a source no longer
 * lists drain. A failing source (timeout, NXDOMAIN, an empty answer, a
 * broken file) never empties the pool: the last good list stays, and the
 * failure is logged once until the source answers again.
 */

#include "nginx/ngx_llmd.h"
#include "core/llmd_endpoints_file.h"


/* How long a draining endpoint may keep its slot at most. */
#define NGX_LLMD_DRAIN_LIMIT  (15 * 60 * 1000)


typedef struct {
    ngx_llmd_srv_conf_t     *lcf;
    ngx_llmd_source_t       *src;
    ngx_event_t              timer;
    ngx_resolver_ctx_t      *rctx;        /* a DNS question in flight */
    ngx_file_uniq_t          uniq;        /* the file last read */
    time_t                   mtime;
    off_t                    size;
    ngx_uint_t               failing;     /* logged once per failure */
    ngx_uint_t               skipped;     /* entries skipped last time */
    ngx_uint_t               over;        /* left out last time */
    ngx_queue_t              queue;
} ngx_llmd_discovery_t;


static void ngx_llmd_discovery_timer(ngx_event_t *ev);
static void ngx_llmd_discovery_dns(ngx_llmd_discovery_t *d);
static void ngx_llmd_discovery_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_llmd_discovery_file(ngx_llmd_discovery_t *d);
static void ngx_llmd_discovery_apply(ngx_llmd_discovery_t *d,
    ngx_llmd_found_t *found, ngx_uint_t n);
static void ngx_llmd_discovery_failed(ngx_llmd_discovery_t *d,
    const char *fmt, ...);
static void ngx_llmd_discovery_next(ngx_llmd_discovery_t *d);
static u_char *ngx_llmd_source_text(u_char *p, u_char *last,
    ngx_llmd_source_t *src);


static ngx_queue_t  ngx_llmd_discoveries;
static ngx_uint_t   ngx_llmd_discoveries_inited;


ngx_int_t
ngx_llmd_discovery_start(ngx_cycle_t *cycle, ngx_llmd_srv_conf_t *lcf)
{
    ngx_uint_t             i;
    ngx_llmd_source_t     *src;
    ngx_llmd_discovery_t  *d;

    if (!ngx_llmd_discoveries_inited) {
        ngx_queue_init(&ngx_llmd_discoveries);
        ngx_llmd_discoveries_inited = 1;
    }

    src = lcf->sources.elts;

    for (i = 0; i < lcf->sources.nelts; i++) {
        d = ngx_pcalloc(cycle->pool, sizeof(ngx_llmd_discovery_t));
        if (d == NULL) {
            return NGX_ERROR;
        }

        d->lcf = lcf;
        d->src = &src[i];
        d->uniq = (ngx_file_uniq_t) -1;

        d->timer.handler = ngx_llmd_discovery_timer;
        d->timer.data = d;
        d->timer.log = cycle->log;
        d->timer.cancelable = 1;

        ngx_queue_insert_tail(&ngx_llmd_discoveries, &d->queue);

        /* at once: endpoints should not wait a whole interval */
        ngx_add_timer(&d->timer, 1);
    }

    return NGX_OK;
}


void
ngx_llmd_discovery_stop_all(void)
{
    ngx_queue_t           *q;
    ngx_llmd_discovery_t  *d;

    if (!ngx_llmd_discoveries_inited) {
        return;
    }

    for (q = ngx_queue_head(&ngx_llmd_discoveries);
         q != ngx_queue_sentinel(&ngx_llmd_discoveries);
         q = ngx_queue_next(q))
    {
        d = ngx_queue_data(q, ngx_llmd_discovery_t, queue);

        if (d->timer.timer_set) {
            ngx_del_timer(&d->timer);
        }

        if (d->rctx) {
            ngx_resolve_name_done(d->rctx);
            d->rctx = NULL;
        }
    }
}


static void
ngx_llmd_discovery_timer(ngx_event_t *ev)
{
    ngx_uint_t             freed;
    ngx_llmd_discovery_t  *d;

    d = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (d->lcf->sh->writer_pid != ngx_pid) {
        ngx_log_error(NGX_LOG_INFO, ev->log, 0, "llmd: process %P took "
                      "over discovery for upstream \"%V\"",
                      d->lcf->sh->writer_pid, &d->lcf->upstream->host);
        return;
    }

    freed = ngx_llmd_endpoints_reap(d->lcf, NGX_LLMD_DRAIN_LIMIT);

    if (freed) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                       "llmd: %ui drained endpoint(s) of \"%V\" freed",
                       freed, &d->lcf->upstream->host);
    }

    if (d->src->type == NGX_LLMD_SOURCE_DNS) {
        ngx_llmd_discovery_dns(d);

    } else {
        ngx_llmd_discovery_file(d);
    }
}


static void
ngx_llmd_discovery_dns(ngx_llmd_discovery_t *d)
{
    ngx_resolver_ctx_t  *ctx;

    if (d->rctx) {
        /* the previous question is still out; its timeout ends it */
        ngx_llmd_discovery_next(d);
        return;
    }

    ctx = ngx_resolve_start(d->lcf->resolver, NULL);

    if (ctx == NULL) {
        ngx_llmd_discovery_failed(d, "out of memory");
        return;
    }

    if (ctx == NGX_NO_RESOLVER) {
        ngx_llmd_discovery_failed(d, "no resolver defined");
        return;
    }

    ctx->name = d->src->name;
    ctx->handler = ngx_llmd_discovery_resolved;
    ctx->data = d;
    ctx->timeout = d->lcf->resolver_timeout;

    d->rctx = ctx;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        /* the resolver freed ctx */
        d->rctx = NULL;
        ngx_llmd_discovery_failed(d, "cannot resolve");
    }
}


static void
ngx_llmd_discovery_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_llmd_discovery_t  *d = ctx->data;

    u_char             *p;
    ngx_uint_t          i, n;
    ngx_pool_t         *pool;
    ngx_llmd_found_t   *found;

    d->rctx = NULL;

    if (ctx->state != NGX_OK || ctx->naddrs == 0) {
        ngx_llmd_discovery_failed(d, "%s", ctx->state != NGX_OK
                                  ? ngx_resolver_strerror(ctx->state)
                                  : "no address in the answer");
        ngx_resolve_name_done(ctx);
        return;
    }

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        ngx_resolve_name_done(ctx);
        ngx_llmd_discovery_next(d);
        return;
    }

    n = ngx_min(ctx->naddrs, LLMD_MAX_ENDPOINTS);

    found = ngx_pcalloc(pool, n * sizeof(ngx_llmd_found_t));
    if (found == NULL) {
        goto done;
    }

    for (i = 0; i < n; i++) {
        found[i].sockaddr = ngx_palloc(pool, ctx->addrs[i].socklen);
        p = ngx_pnalloc(pool, NGX_SOCKADDR_STRLEN);
        if (found[i].sockaddr == NULL || p == NULL) {
            goto done;
        }

        ngx_memcpy(found[i].sockaddr, ctx->addrs[i].sockaddr,
                   ctx->addrs[i].socklen);
        found[i].socklen = ctx->addrs[i].socklen;
        ngx_inet_set_port(found[i].sockaddr, d->src->port);

        found[i].name.data = p;
        found[i].name.len = ngx_sock_ntop(found[i].sockaddr,
                                          found[i].socklen, p,
                                          NGX_SOCKADDR_STRLEN, 1);
        found[i].labels = d->src->labels;
    }

    ngx_resolve_name_done(ctx);
    ctx = NULL;

    ngx_llmd_discovery_apply(d, found, n);

done:

    if (ctx) {
        ngx_resolve_name_done(ctx);
        ngx_llmd_discovery_next(d);
    }

    ngx_destroy_pool(pool);
}


static void
ngx_llmd_discovery_file(ngx_llmd_discovery_t *d)
{
    char                    err[LLMD_ERRLEN];
    ngx_uint_t              i, n;
    ngx_pool_t             *pool;
    ngx_addr_t              addr;
    ngx_file_info_t         fi;
    ngx_llmd_found_t       *found;
    llmd_endpoints_file_t  *ef;

    if (ngx_file_info(d->src->name.data, &fi) == NGX_FILE_ERROR) {
        ngx_llmd_discovery_failed(d, "cannot stat: %s",
                                  strerror(ngx_errno));
        return;
    }

    if (ngx_file_uniq(&fi) == d->uniq && ngx_file_mtime(&fi) == d->mtime
        && ngx_file_size(&fi) == d->size && !d->failing)
    {
        ngx_llmd_discovery_next(d);
        return;
    }

    ef = llmd_endpoints_file_load((char *) d->src->name.data,
                                  LLMD_MAX_ENDPOINTS, err, sizeof(err));
    if (ef == NULL) {
        ngx_llmd_discovery_failed(d, "%s", err);
        return;
    }

    d->uniq = ngx_file_uniq(&fi);
    d->mtime = ngx_file_mtime(&fi);
    d->size = ngx_file_size(&fi);

    if (ef->skipped && ef->skipped != d->skipped) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "llmd: %uz entr%s of \"%V\" skipped, the first: %s",
                      ef->skipped, ef->skipped == 1 ? "y" : "ies",
                      &d->src->name, ef->warning);
    }

    d->skipped = ef->skipped;

    if (ef->n == 0) {
        llmd_endpoints_file_free(ef);
        ngx_llmd_discovery_failed(d, "no usable endpoint in the file");
        return;
    }

    pool = ngx_create_pool(4096, ngx_cycle->log);
    if (pool == NULL) {
        llmd_endpoints_file_free(ef);
        ngx_llmd_discovery_next(d);
        return;
    }

    found = ngx_pcalloc(pool, ef->n * sizeof(ngx_llmd_found_t));
    n = 0;

    for (i = 0; found && i < ef->n; i++) {
        if (ngx_parse_addr_port(pool, &addr, (u_char *) ef->entries[i].address,
                                ngx_strlen(ef->entries[i].address))
            != NGX_OK)
        {
            continue;
        }

        found[n].sockaddr = addr.sockaddr;
        found[n].socklen = addr.socklen;
        found[n].name.data = (u_char *) ef->entries[i].address;
        found[n].name.len = ngx_strlen(ef->entries[i].address);
        found[n].labels = (u_char *) ef->entries[i].labels;
        n++;
    }

    if (found) {
        ngx_llmd_discovery_apply(d, found, n);

    } else {
        ngx_llmd_discovery_next(d);
    }

    ngx_destroy_pool(pool);
    llmd_endpoints_file_free(ef);
}


/* A good answer: the upstream's endpoints of this source follow it. */
static void
ngx_llmd_discovery_apply(ngx_llmd_discovery_t *d, ngx_llmd_found_t *found,
    ngx_uint_t n)
{
    u_char                   text[NGX_MAX_PATH + 64];
    u_char                   added[LLMD_MAX_ENDPOINTS];
    u_char                   removed[LLMD_MAX_ENDPOINTS];
    u_char                  *last;
    ngx_uint_t               s, over;
    ngx_llmd_srv_conf_t     *lcf;
    ngx_llmd_source_sh_t    *ss;
    ngx_llmd_endpoint_sh_t  *ep;

    lcf = d->lcf;
    ss = &lcf->sh->sources[d->src->index];
    last = ngx_llmd_source_text(text, text + sizeof(text), d->src);

    ngx_memzero(added, sizeof(added));
    ngx_memzero(removed, sizeof(removed));

    over = ngx_llmd_endpoints_sync(lcf, d->src, found, n, added, removed);

    for (s = 0; s < LLMD_MAX_ENDPOINTS; s++) {
        ep = &lcf->sh->endpoints[s];

        if (removed[s]) {
            ngx_llmd_scrape_remove(lcf, s);
            ngx_llmd_kv_remove(lcf, s);

            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "llmd: endpoint %*s of upstream \"%V\" is gone "
                          "from %*s: no new requests, it drains",
                          ep->name_len, ep->name, &lcf->upstream->host,
                          last - text, text);
        }

        if (added[s]) {
            if (lcf->metrics && ngx_llmd_scrape_add(lcf, s) != NGX_OK) {
                ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                              "llmd: cannot scrape new endpoint %*s",
                              ep->name_len, ep->name);
            }

            ngx_llmd_kv_add(lcf, s);

            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "llmd: endpoint %*s of upstream \"%V\" found by "
                          "%*s%s", ep->name_len, ep->name,
                          &lcf->upstream->host, last - text, text,
                          lcf->metrics ? "; it takes requests once its "
                                         "metrics answer" : "");
        }
    }

    if (over != d->over && over) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "llmd: %ui endpoint(s) of %*s left out: upstream "
                      "\"%V\" holds at most %d", over, last - text, text,
                      &lcf->upstream->host, LLMD_MAX_ENDPOINTS);
    }

    d->over = over;

    if (d->failing) {
        d->failing = 0;
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "llmd: %*s of upstream \"%V\" answers again (%ui "
                      "endpoints)", last - text, text, &lcf->upstream->host,
                      n);
    }

    (void) ngx_atomic_fetch_add(&ss->updates, 1);
    ss->endpoints = n;
    ss->over_limit = over;
    ss->updated = ngx_current_msec ? ngx_current_msec : 1;

    ngx_llmd_discovery_next(d);
}


/* A failed look-up: the endpoints stay as they are; logged once. */
static void
ngx_llmd_discovery_failed(ngx_llmd_discovery_t *d, const char *fmt, ...)
{
    u_char                 text[NGX_MAX_PATH + 64];
    u_char                *p, *last;
    va_list                args;
    ngx_llmd_source_sh_t  *ss;

    ss = &d->lcf->sh->sources[d->src->index];

    va_start(args, fmt);
    p = ngx_vslprintf(ss->last_error, ss->last_error + NGX_LLMD_ERROR_LEN - 1,
                      fmt, args);
    va_end(args);
    *p = '\0';

    ss->error_time = ngx_current_msec ? ngx_current_msec : 1;
    (void) ngx_atomic_fetch_add(&ss->errors, 1);

    if (!d->failing) {
        d->failing = 1;
        last = ngx_llmd_source_text(text, text + sizeof(text), d->src);

        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "llmd: %*s of upstream \"%V\" failed: %s; its "
                      "endpoints stay as they are", last - text, text,
                      &d->lcf->upstream->host, ss->last_error);
    }

    ngx_llmd_discovery_next(d);
}


/* Asked again after the interval; a source read once (interval 0, llm-d's
   file-discovery without watchFile) only until it answers. */
static void
ngx_llmd_discovery_next(ngx_llmd_discovery_t *d)
{
    if (ngx_exiting || ngx_terminate || ngx_quit || d->timer.timer_set) {
        return;
    }

    if (d->src->interval) {
        ngx_add_timer(&d->timer, d->src->interval);

    } else if (d->failing) {
        ngx_add_timer(&d->timer, 1000);
    }
}


/* "dns NAME:PORT" or "file PATH", for messages. */
static u_char *
ngx_llmd_source_text(u_char *p, u_char *last, ngx_llmd_source_t *src)
{
    if (src->type == NGX_LLMD_SOURCE_DNS) {
        return ngx_slprintf(p, last, "dns %V port %d", &src->name,
                            (int) src->port);
    }

    return ngx_slprintf(p, last, "file \"%V\"", &src->name);
}
