/*
 * OpenAI-style JSON errors, shaped as vLLM's:
 *   {"error":{"message":"...","type":"BadRequestError","param":null,
 *    "code":400}}
 * The balancer cannot answer from inside peer selection, so it records
 * its verdict in the request context and fails; nginx then produces its own
 * error page, which these filters replace with the recorded status and a
 * JSON body:
 *   400 - the body is not a valid completions/chat request (the upstream
 *         is never contacted; the connection stays open);
 *   503 - no endpoint is available (all gone, down, failed or at
 *         max_conns).
 * Every other error page nginx makes itself for a request the balancer
 * scheduled (502 when no endpoint could be reached, 504 on a timeout, ...)
 * is JSON too, and so is any error page of a location with
 * `llmd_json_errors on` (a 413 for a body over client_max_body_size comes
 * before the balancer runs). Error responses of the pods pass unchanged.
 */

#include "nginx/ngx_llmd.h"


static ngx_int_t ngx_llmd_reject_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_llmd_reject_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_str_t *ngx_llmd_reject_body(ngx_http_request_t *r,
    ngx_llmd_ctx_t *ctx);
static void ngx_llmd_reject_default(ngx_http_request_t *r,
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
    ngx_str_t            *body;
    ngx_llmd_ctx_t       *ctx;
    ngx_llmd_loc_conf_t  *llcf;

    if (r != r->main
        || r->headers_out.status < NGX_HTTP_BAD_REQUEST
        || (r->upstream && r->upstream->headers_in.status_n))
    {
        /* not an error page of nginx's own: a pod's answer passes as is */
        return ngx_llmd_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmd_module);

    if (ctx == NULL) {
        llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmd_module);

        if (!llcf->json_errors) {
            return ngx_llmd_next_header_filter(r);
        }

        ctx = ngx_pcalloc(r->pool, sizeof(ngx_llmd_ctx_t));
        if (ctx == NULL) {
            return ngx_llmd_next_header_filter(r);
        }

        ngx_http_set_ctx(r, ctx, ngx_http_llmd_module);
    }

    if (ctx->reject_status == 0) {
        ngx_llmd_reject_default(r, ctx);

    } else if (ctx->reject_status == NGX_HTTP_BAD_REQUEST) {
        /* the body was read whole to be judged: the connection may stay */
        r->keepalive = ctx->keepalive;
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


/*
 * An error page nginx made without a verdict of the balancer: the status
 * stays; vLLM's error type and a message that says what happened.
 */
static void
ngx_llmd_reject_default(ngx_http_request_t *r, ngx_llmd_ctx_t *ctx)
{
    const char  *type;

    ctx->reject_status = r->headers_out.status;

    switch (ctx->reject_status) {

    case NGX_HTTP_BAD_REQUEST:
    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
    case NGX_HTTP_REQUEST_URI_TOO_LARGE:
    case NGX_HTTP_REQUEST_HEADER_TOO_LARGE:
    case NGX_HTTP_LENGTH_REQUIRED:
        type = "BadRequestError";
        break;

    case NGX_HTTP_UNAUTHORIZED:
        type = "AuthenticationError";
        break;

    case NGX_HTTP_FORBIDDEN:
        type = "PermissionDeniedError";
        break;

    case NGX_HTTP_NOT_FOUND:
        type = "NotFoundError";
        break;

    case NGX_HTTP_NOT_ALLOWED:
        type = "MethodNotAllowedError";
        break;

    case NGX_HTTP_REQUEST_TIME_OUT:
    case NGX_HTTP_GATEWAY_TIME_OUT:
        type = "TimeoutError";
        break;

    case 429:
        type = "RateLimitError";
        break;

    case NGX_HTTP_BAD_GATEWAY:
    case NGX_HTTP_SERVICE_UNAVAILABLE:
        type = "ServiceUnavailableError";
        break;

    default:
        type = ctx->reject_status >= NGX_HTTP_INTERNAL_SERVER_ERROR
               ? "InternalServerError" : "BadRequestError";
        break;
    }

    ngx_llmd_reject(r, ctx, ctx->reject_status, type, NULL, 0);
}


static ngx_str_t *
ngx_llmd_reject_body(ngx_http_request_t *r, ngx_llmd_ctx_t *ctx)
{
    u_char           *p;
    size_t            len;
    ngx_str_t         msg, *body, *host;
    static u_char     fmt_head[] = "{\"error\":{\"message\":\"";

    body = ngx_palloc(r->pool, sizeof(ngx_str_t));
    if (body == NULL) {
        return NULL;
    }

    host = ctx->lcf ? &ctx->lcf->upstream->host : NULL;

    msg = ctx->reject_message;

    if (msg.len == 0) {
        msg.data = ngx_pnalloc(r->pool, 160 + (host ? host->len : 0));
        if (msg.data == NULL) {
            return NULL;
        }

        switch (ctx->reject_status) {

        case NGX_HTTP_SERVICE_UNAVAILABLE:
            p = host ? ngx_sprintf(msg.data, "no inference endpoint is "
                                   "available in upstream \"%V\"", host)
                     : ngx_sprintf(msg.data, "service unavailable");
            break;

        case NGX_HTTP_BAD_GATEWAY:
            p = host ? ngx_sprintf(msg.data, "no inference endpoint of "
                                   "upstream \"%V\" could be reached", host)
                     : ngx_sprintf(msg.data, "bad gateway");
            break;

        case NGX_HTTP_GATEWAY_TIME_OUT:
            p = ngx_sprintf(msg.data, "the inference endpoint did not "
                            "answer in time");
            break;

        case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
            p = ngx_sprintf(msg.data, "request body is too large");
            break;

        default:
            p = ngx_sprintf(msg.data, "HTTP error %ui",
                            ctx->reject_status);
            break;
        }

        msg.len = p - msg.data;
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
