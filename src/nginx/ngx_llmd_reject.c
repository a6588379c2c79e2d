/*
 * OpenAI-style JSON errors for requests the balancer refuses. The balancer
 * cannot answer from inside peer selection, so it records the verdict in
 * the request context and fails; nginx then produces its own 500/502 page,
 * which these filters replace with the recorded status and a JSON body:
 *   400 - the body is not a valid completions/chat request (the upstream
 *         is never contacted);
 *   503 - no endpoint is available (all down, failed or at max_conns).
 */

#include "nginx/ngx_llmd.h"


static ngx_int_t ngx_llmd_reject_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_llmd_reject_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_str_t *ngx_llmd_reject_body(ngx_http_request_t *r,
    ngx_llmd_ctx_t *ctx);


static ngx_http_output_header_filter_pt  ngx_llmd_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_llmd_next_body_filter;


ngx_int_t
ngx_llmd_reject_init(ngx_conf_t *cf)
{
    ngx_llmd_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_llmd_reject_header_filter;

    ngx_llmd_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_llmd_reject_body_filter;

    return NGX_OK;
}


void
ngx_llmd_reject(ngx_http_request_t *r, ngx_llmd_ctx_t *ctx,
    ngx_uint_t status, const char *type, const char *message, size_t len)
{
    ctx->reject_status = status;
    ctx->reject_type.data = (u_char *) type;
    ctx->reject_type.len = ngx_strlen(type);
    ctx->reject_message.len = 0;

    if (r && message && len) {
        ctx->reject_message.data = ngx_pnalloc(r->pool, len);
        if (ctx->reject_message.data) {
            ngx_memcpy(ctx->reject_message.data, message, len);
            ctx->reject_message.len = len;
        }
    }
}


static ngx_int_t
ngx_llmd_reject_header_filter(ngx_http_request_t *r)
{
    ngx_str_t       *body;
    ngx_llmd_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmd_module);

    if (ctx == NULL
        || ctx->reject_status == 0
        || r != r->main
        || r->headers_out.status < NGX_HTTP_INTERNAL_SERVER_ERROR
        || (r->upstream && r->upstream->headers_in.status_n))
    {
        /* not an nginx error page for a request the balancer refused */
        return ngx_llmd_next_header_filter(r);
    }

    body = ngx_llmd_reject_body(r, ctx);
    if (body == NULL) {
        return ngx_llmd_next_header_filter(r);
    }

    r->err_status = ctx->reject_status;
    r->headers_out.status = ctx->reject_status;
    r->headers_out.status_line.len = 0;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;

    r->headers_out.content_length_n = body->len;

    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    ctx->reject_armed = 1;

    return ngx_llmd_next_header_filter(r);
}


static ngx_int_t
ngx_llmd_reject_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t       *b;
    ngx_str_t       *body;
    ngx_chain_t      out;
    ngx_llmd_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmd_module);

    if (ctx == NULL || !ctx->reject_armed) {
        return ngx_llmd_next_body_filter(r, in);
    }

    if (ctx->reject_done) {
        /* the rest of nginx's own error page */
        return NGX_OK;
    }

    ctx->reject_done = 1;

    body = ngx_llmd_reject_body(r, ctx);
    if (body == NULL) {
        return NGX_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_llmd_next_body_filter(r, &out);
}


/* {"error":{"message":"...","type":"...","param":null,"code":400}}\n */

static ngx_str_t *
ngx_llmd_reject_body(ngx_http_request_t *r, ngx_llmd_ctx_t *ctx)
{
    u_char           *p;
    size_t            len;
    ngx_str_t         msg, *body;
    static u_char     fmt_head[] = "{\"error\":{\"message\":\"";

    body = ngx_palloc(r->pool, sizeof(ngx_str_t));
    if (body == NULL) {
        return NULL;
    }

    if (ctx->reject_message.len) {
        msg = ctx->reject_message;

    } else {
        msg.data = ngx_pnalloc(r->pool, 96 + ctx->lcf->upstream->host.len);
        if (msg.data == NULL) {
            return NULL;
        }

        msg.len = ngx_sprintf(msg.data,
                              "no inference endpoint is available in "
                              "upstream \"%V\"", &ctx->lcf->upstream->host)
                  - msg.data;
    }

    len = sizeof(fmt_head) - 1
          + msg.len + ngx_escape_json(NULL, msg.data, msg.len)
          + sizeof("\",\"type\":\"\",\"param\":null,\"code\":000}}\n") - 1
          + ctx->reject_type.len;

    body->data = ngx_pnalloc(r->pool, len);
    if (body->data == NULL) {
        return NULL;
    }

    p = ngx_cpymem(body->data, fmt_head, sizeof(fmt_head) - 1);
    p = (u_char *) ngx_escape_json(p, msg.data, msg.len);
    p = ngx_sprintf(p, "\",\"type\":\"%V\",\"param\":null,\"code\":%03ui}}\n",
                    &ctx->reject_type, ctx->reject_status);

    body->len = p - body->data;

    return body;
}
