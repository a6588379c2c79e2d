/*
 * The request body as one byte range, for the body scanner.
 *
 * nginx 1.22 reads a body in two places: what came with the headers (the
 * preread part, in r->header_in) and the rest, received into a buffer of
 * its own (rb->buf). The body scanner reads one range, so such a body was
 * joined: a copy of the whole body for every request.
 *
 * The request body filter here makes nginx read the rest right behind the
 * preread part. nginx itself reads the whole rest into r->header_in when
 * it fits behind the preread bytes there; for a request the balancer will
 * scan (an llmd_balancer upstream, a completions or chat path, a
 * Content-Length body within llmd_body_limit whose rest nginx would keep
 * in one memory buffer anyway: less than client_body_buffer_size plus a
 * quarter), the filter copies the preread bytes (at most the header
 * buffer, usually a few hundred bytes) into a buffer of the body's size
 * from the request pool, placed so that the rest starts on a cache line
 * (the kernel's copy into an unaligned destination is slower), and
 * points r->header_in's pointers
 * at it, with the preread bytes before pos and room for the rest behind
 * last: nginx then takes its own path, reads the rest behind them and
 * allocates no buffer for it. r->header_in's pointers are restored by a
 * cleanup of the request pool (which runs before nginx reuses the
 * connection's buffer for the next request; the header buffer keeps the
 * request line and headers untouched). Chunked bodies, HTTP/2, unbuffered
 * bodies and bodies nginx spills to a temporary file are left alone.
 *
 * ngx_llmd_request_body() (ngx_llmd_request.c) then takes the buffers,
 * which lie one behind the other in memory, as the range they cover,
 * with no copy.
 */

#include "nginx/ngx_llmd.h"


#define NGX_LLMD_BODY_ALIGN  64


/* r->header_in's pointers, as they were before the filter moved them */
typedef struct {
    ngx_buf_t                    *buf;
    u_char                       *start;
    u_char                       *pos;
    u_char                       *last;
    u_char                       *end;
} ngx_llmd_body_hdr_t;


static ngx_int_t ngx_llmd_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_llmd_body_preread(ngx_http_request_t *r,
    ngx_buf_t *b);
static void ngx_llmd_body_restore(void *data);


static ngx_http_request_body_filter_pt  ngx_llmd_next_request_body_filter;


ngx_int_t
ngx_llmd_body_init(ngx_conf_t *cf)
{
    ngx_llmd_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_llmd_body_filter;

    return NGX_OK;
}


/*
 * The first call of a request with a preread part comes before nginx has
 * a buffer for the rest (rb->buf is NULL) with one buffer, the preread
 * bytes, which the length filter has just consumed from r->header_in.
 */
static ngx_int_t
ngx_llmd_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    if (in != NULL
        && in->next == NULL
        && r->request_body->buf == NULL
        && ngx_llmd_body_preread(r, in->buf) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_llmd_next_request_body_filter(r, in);
}


static ngx_int_t
ngx_llmd_body_preread(ngx_http_request_t *r, ngx_buf_t *b)
{
    u_char                        *p;
    off_t                          rest, room;
    size_t                         preread, total;
    ngx_buf_t                     *hb;
    ngx_pool_cleanup_t            *cln;
    ngx_llmd_body_hdr_t           *saved;
    ngx_llmd_srv_conf_t           *lcf;
    ngx_http_upstream_t           *u;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_upstream_srv_conf_t  *uscf;

    hb = r->header_in;
    rest = r->request_body->rest;

    if (r != r->main
        || r->headers_in.chunked
        || r->request_body_no_buffering
        || r->request_body_in_file_only
#if (NGX_HTTP_V2)
        || r->stream != NULL
#endif
        || hb == NULL
        || b->in_file
        || b->last != hb->last
        || hb->pos != hb->last
        || rest <= 0)
    {
        return NGX_OK;
    }

    room = hb->end - hb->last;

    if (rest <= room) {
        /* nginx reads the rest into r->header_in itself */
        return NGX_OK;
    }

    u = r->upstream;

    if (u == NULL || u->conf == NULL || u->conf->upstream == NULL) {
        return NGX_OK;
    }

    uscf = u->conf->upstream;

    if (uscf->srv_conf == NULL) {
        return NGX_OK;
    }

    lcf = ngx_http_conf_upstream_srv_conf(uscf, ngx_http_llmd_module);

    if (lcf == NULL || !lcf->enabled
        || llmd_api_from_path((char *) r->uri.data, r->uri.len)
           == LLMD_API_OTHER)
    {
        return NGX_OK;
    }

    preread = b->last - b->pos;
    total = preread + (size_t) rest;

    if (total > lcf->body_limit) {
        return NGX_OK;
    }

    /* nginx keeps the rest in one memory buffer below this size
       (ngx_http_read_client_request_body()), else it goes to a file */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (rest >= (off_t) (clcf->client_body_buffer_size
                         + (clcf->client_body_buffer_size >> 2)))
    {
        return NGX_OK;
    }

    /* the rest starts on a cache line: the kernel's copy into an
       unaligned destination is slower */

    p = ngx_pnalloc(r->pool, total + NGX_LLMD_BODY_ALIGN - 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    p = ngx_align_ptr(p + preread, NGX_LLMD_BODY_ALIGN) - preread;

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_llmd_body_hdr_t));
    if (cln == NULL) {
        return NGX_ERROR;
    }

    saved = cln->data;
    saved->buf = hb;
    saved->start = hb->start;
    saved->pos = hb->pos;
    saved->last = hb->last;
    saved->end = hb->end;

    cln->handler = ngx_llmd_body_restore;

    ngx_memcpy(p, b->pos, preread);

    b->start = p;
    b->pos = p;
    b->last = p + preread;
    b->end = b->last;

    hb->start = p;
    hb->pos = p + preread;
    hb->last = hb->pos;
    hb->end = p + total;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llmd body: preread %uz bytes, the rest of %O read "
                   "behind them", preread, rest);

    return NGX_OK;
}


static void
ngx_llmd_body_restore(void *data)
{
    ngx_llmd_body_hdr_t  *saved = data;

    saved->buf->start = saved->start;
    saved->buf->pos = saved->pos;
    saved->buf->last = saved->last;
    saved->buf->end = saved->end;
}
