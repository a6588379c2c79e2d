/*
 * The buffered request body as one contiguous byte range, whether nginx
 * kept it in memory (one or several buffers) or spilled it to a temporary
 * file. The body buffers themselves are never modified: the proxy module
 * has already linked them into the upstream request.
 */

#include "nginx/ngx_llmd.h"


/*
 * Returns NGX_OK with the body, NGX_DECLINED when there is no complete
 * body to look at (no body, unbuffered, or larger than limit: *len is then
 * the size seen), NGX_ERROR on a read failure.
 */
ngx_int_t
ngx_llmd_request_body(ngx_http_request_t *r, size_t limit, u_char **body,
    size_t *len)
{
    u_char                    *p;
    off_t                      total, size;
    ssize_t                    n;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_http_request_body_t   *rb;

    *body = NULL;
    *len = 0;

    rb = r->request_body;

    if (rb == NULL || rb->bufs == NULL) {
        return NGX_DECLINED;
    }

    if (r->request_body_no_buffering || rb->rest > 0) {
        /* peer selection runs before the body is complete */
        return NGX_DECLINED;
    }

    total = 0;

    for (cl = rb->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            total += b->file_last - b->file_pos;

        } else if (!ngx_buf_special(b)) {
            total += b->last - b->pos;
        }
    }

    *len = (size_t) total;

    if (total == 0 || (size_t) total > limit) {
        return NGX_DECLINED;
    }

    /* the common case, a body in one memory buffer, needs no copy */

    b = rb->bufs->buf;

    if (rb->bufs->next == NULL && !b->in_file) {
        *body = b->pos;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, (size_t) total);
    if (p == NULL) {
        return NGX_ERROR;
    }

    *body = p;

    for (cl = rb->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            size = b->file_last - b->file_pos;

            n = ngx_read_file(b->file, p, (size_t) size, b->file_pos);

            if (n == NGX_ERROR) {
                return NGX_ERROR;
            }

            if (n != size) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "llmd: read only %z of %O bytes of the "
                              "request body from \"%V\"",
                              n, size, &b->file->name);
                return NGX_ERROR;
            }

            p += size;

        } else if (!ngx_buf_special(b)) {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    return NGX_OK;
}
