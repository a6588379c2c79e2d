/*
 * The first step of a decision: the request. Its path says which OpenAI API
 * it is; for completions and chat the buffered body (in memory, in several
 * buffers or spilled to a temporary file) is read as one byte range and
 * parsed once into an llmd_request_t by the body scanner, which hashes the
 * prompt's prefix blocks without building a JSON tree (core/llmd_body_scan.h)
 * and accepts and rejects the bodies cJSON does (core/llmd_prompt.h). When
 * the prefix scorer is precise, what it tokenizes is copied out decoded
 * into a buffer the worker keeps: a completions prompt that is one string,
 * or the roles and contents of chat messages that are each exactly a
 * string role and content (the chat template renders them); a list of
 * prompts or token ids, or messages with anything more, are parsed again
 * by cJSON for the precise scorer. In precise mode the scanner does not
 * hash the approximate blocks, it only counts them (from the prompt's
 * length): ngx_llmd_prefix.c hashes them from the copied text or messages
 * when the approximate index is read or written (docs/kv-events.md). A
 * body that is not a valid request is answered 400 with an OpenAI-style
 * error and never reaches a pod. The body
 * buffers themselves are never modified: the proxy module has already
 * linked them into the upstream request.
 *
 * The body is read as one byte range: nginx reads a Content-Length body
 * it keeps in memory into one buffer (the request body filter of
 * ngx_llmd_body.c puts the rest behind the part read with the headers),
 * and buffers that lie one behind the other in memory are scanned in
 * place. Any other body in several buffers (chunked, spilled to a
 * temporary file) is joined for the scanner in a buffer the worker keeps
 * between requests (up to NGX_LLMD_BODY_KEEP bytes): a fresh 32 KB from
 * the pool per request made malloc give the memory back to the kernel and
 * fault it in again every time, which cost more than the decision. The
 * scan is synchronous and nothing of the joined copy outlives it (model
 * and cache_salt are copied to the pool).
 */

#include "nginx/ngx_llmd.h"
#include "core/llmd_body_scan.h"


/* bodies joined in the worker's buffer up to this size (larger: pool) */
#define NGX_LLMD_BODY_KEEP  (1024 * 1024)
/* precise chat: conversations of more messages are parsed by cJSON */
#define NGX_LLMD_CHAT_MSGS  256


static ngx_int_t ngx_llmd_request_body(ngx_http_request_t *r, size_t limit,
    u_char **body, size_t *len, ngx_uint_t *joined);
static u_char *ngx_llmd_body_scratch(ngx_http_request_t *r, size_t size);
static ngx_int_t ngx_llmd_request_scan(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx, u_char *body, size_t len,
    ngx_uint_t text, llmd_alloc_t *alloc, llmd_request_t *req, char *err,
    int *bad, ngx_uint_t *reparse);
static void *ngx_llmd_pool_alloc(void *ctx, size_t size);
static ngx_int_t ngx_llmd_pool_copy(ngx_pool_t *pool, const char **s,
    size_t len);


static ngx_llmd_wbuf_t  ngx_llmd_body_buf;   /* joined bodies */
static ngx_llmd_wbuf_t  ngx_llmd_prompt_buf; /* precise: the prompt text */
static ngx_llmd_wbuf_t  ngx_llmd_msgs_buf;   /* precise chat: messages */

ngx_uint_t  ngx_llmd_request_scans;


/*
 * NGX_OK with *req parsed; NGX_DECLINED when there is no prompt to look at
 * (another API, no body, a body over llmd_body_limit): the request is
 * scheduled on load signals alone; NGX_ERROR when the request is refused
 * (the 400 is armed in ctx) or on a failure.
 */
ngx_int_t
ngx_llmd_request_read(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx, llmd_request_t *req)
{
    int            bad;
    char           err[LLMD_ERRLEN];
    u_char        *body;
    size_t         len;
    ngx_int_t      rc;
    ngx_uint_t     joined, text, reparse;
    llmd_alloc_t   alloc;

    ctx->api = llmd_api_from_path((char *) r->uri.data, r->uri.len);

    if (ctx->api == LLMD_API_OTHER) {
        return NGX_DECLINED;
    }

    /* precise: a completions prompt's text, or a chat request's roles
       and contents, are copied out by the scanner */
    text = (lcf->precise && lcf->kv_index != NULL);
    reparse = 0;

    rc = ngx_llmd_request_body(r, lcf->body_limit, &body, &len, &joined);

    if (rc != NGX_OK) {
        if (rc == NGX_DECLINED && len > lcf->body_limit) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "llmd: request body of %uz bytes is larger than "
                          "llmd_body_limit %uz, scheduled on load alone",
                          len, lcf->body_limit);
        }

        return rc;
    }

    alloc.alloc = ngx_llmd_pool_alloc;
    alloc.ctx = r->pool;

    if (ngx_llmd_request_scan(r, lcf, ctx, body, len, text, &alloc, req,
                              err, &bad, &reparse)
        != NGX_OK)
    {
        return NGX_ERROR;

    } else if (reparse) {
        /* a list of prompts or token ids, or chat messages with more than
           a string role and content: the precise scorer reads them from
           cJSON's tree (the body is still as scanned: nothing ran in
           between) */
        bad = llmd_request_parse(ctx->api, (char *) body, len, &alloc, req,
                                 err, sizeof(err));
    }

    if (joined && !bad
        && (ngx_llmd_pool_copy(r->pool, &req->model, req->model_len)
            != NGX_OK
            || ngx_llmd_pool_copy(r->pool, &req->cache_salt,
                                  req->cache_salt_len)
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    if (bad) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "llmd: rejected request: %s", err);

        (void) ngx_atomic_fetch_add(&lcf->sh->rejected_bad_request, 1);

        ngx_llmd_reject(r, ctx, NGX_HTTP_BAD_REQUEST, "BadRequestError",
                        err, ngx_strlen(err));
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * The body scanner: *bad is llmd_request_parse()'s answer (0, or -1 with
 * err) and req holds the prefix hashes instead of the prompt bytes; with
 * text, req->text is the prompt's text when it is one string, req->msgs
 * a chat request's messages when each is a string role and content, and
 * *reparse is set otherwise (the precise scorer needs cJSON's tree);
 * with text, req->hashes is NULL and req->nhashes the number of blocks
 * (hashed later when needed); NGX_ERROR when a buffer cannot be allocated.
 */
static ngx_int_t
ngx_llmd_request_scan(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx, u_char *body, size_t len, ngx_uint_t text,
    llmd_alloc_t *alloc, llmd_request_t *req, char *err, int *bad,
    ngx_uint_t *reparse)
{
    u_char              *copy;
    uint64_t            *hashes;
    llmd_body_t          b;
    llmd_request_msg_t  *msgs;

    hashes = NULL;
    copy = NULL;
    msgs = NULL;

    if (text) {
        /* the decoded prompt is never longer than the body */
        if (len <= NGX_LLMD_BODY_KEEP) {
            copy = ngx_llmd_wbuf(&ngx_llmd_prompt_buf,
                                 ngx_max(len, 64 * 1024),
                                 r->connection->log);
        } else {
            copy = ngx_pnalloc(r->pool, len);
        }

        if (copy == NULL) {
            return NGX_ERROR;
        }

        if (ctx->api == LLMD_API_CHAT) {
            msgs = ngx_llmd_wbuf(&ngx_llmd_msgs_buf, NGX_LLMD_CHAT_MSGS
                                 * sizeof(llmd_request_msg_t),
                                 r->connection->log);
            if (msgs == NULL) {
                return NGX_ERROR;
            }
        }
    }

    ngx_llmd_request_scans++;

    if (lcf->has_prefix && !text) {
        hashes = ngx_palloc(r->pool, sizeof(uint64_t)
                                     * lcf->approx.max_prefix_blocks);
        if (hashes == NULL) {
            return NGX_ERROR;
        }
    }

    ngx_memzero(&b, sizeof(llmd_body_t));
    ngx_memzero(req, sizeof(llmd_request_t));

    b.block_size = hashes ? lcf->approx.block_size : 0;
    b.max_blocks = lcf->approx.max_prefix_blocks;
    b.hashes = hashes;
    b.exact_len = 1;

    if (msgs) {
        /* the roles and contents go to the copy buffer, decoded: never
           longer than the body with their NULs */
        b.msgs = msgs;
        b.msgs_cap = NGX_LLMD_CHAT_MSGS;
        b.msg_text = copy;
        b.msg_text_cap = len;

    } else {
        b.copy = copy;
        b.copy_cap = copy ? len : 0;
    }

    *bad = llmd_body_scan(ctx->api, (char *) body, len, alloc, &b, err,
                          LLMD_ERRLEN);

    if (copy && *bad == 0) {
        if (b.prompt_string) {
            req->text = (char *) copy;
            req->text_len = b.prompt_len;

        } else if (b.msgs_plain) {
            req->msgs = msgs;
            req->nmsgs = b.nmsgs;

        } else {
            *reparse = b.has_prompt;
        }
    }

    req->model = b.model;
    req->model_len = b.model_len;
    req->cache_salt = b.cache_salt;
    req->cache_salt_len = b.cache_salt_len;
    req->stream = b.stream;
    req->tools = b.tools;
    req->add_generation_prompt = b.add_generation_prompt;
    req->prompt_len = b.prompt_len;
    req->hashed = 1;
    req->hashes = hashes;
    req->nhashes = b.nhashes;

    if (text && lcf->has_prefix && lcf->approx.block_size) {
        /* the blocks the scanner would have hashed: whole ones of the
           prompt's bytes (exact_len), at most max_prefix_blocks */
        req->nhashes = ngx_min(b.prompt_len / lcf->approx.block_size,
                               lcf->approx.max_prefix_blocks);
    }

    return NGX_OK;
}


/*
 * Returns NGX_OK with the body, NGX_DECLINED when there is no complete
 * body to look at (no body, unbuffered, or larger than limit: *len is then
 * the size seen), NGX_ERROR on a read failure. A body whose buffers lie
 * one behind the other in memory is the range they cover; any other body
 * in several buffers is joined into the worker's scratch buffer (*joined
 * is then 1: valid until the next request's body), or into the pool when
 * it is larger than NGX_LLMD_BODY_KEEP.
 */
static ngx_int_t
ngx_llmd_request_body(ngx_http_request_t *r, size_t limit, u_char **body,
    size_t *len, ngx_uint_t *joined)
{
    u_char                    *p, *first, *last;
    off_t                      total, size;
    ssize_t                    n;
    ngx_buf_t                 *b;
    ngx_uint_t                 apart;
    ngx_chain_t               *cl;
    ngx_http_request_body_t   *rb;

    *body = NULL;
    *len = 0;
    *joined = 0;

    rb = r->request_body;

    if (rb == NULL || rb->bufs == NULL) {
        return NGX_DECLINED;
    }

    if (r->request_body_no_buffering || rb->rest > 0) {
        /* peer selection runs before the body is complete */
        return NGX_DECLINED;
    }

    total = 0;
    first = NULL;
    last = NULL;
    apart = 0;

    for (cl = rb->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            total += b->file_last - b->file_pos;
            apart = 1;

        } else if (!ngx_buf_special(b) && b->last != b->pos) {
            total += b->last - b->pos;

            if (first == NULL) {
                first = b->pos;

            } else if (b->pos != last) {
                apart = 1;
            }

            last = b->last;
        }
    }

    *len = (size_t) total;

    if (total == 0 || (size_t) total > limit) {
        return NGX_DECLINED;
    }

    if (!apart) {
        /* one buffer, or buffers one behind the other: no copy */
        *body = first;
        return NGX_OK;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llmd body: %O bytes in several places, joined", total);

    if ((size_t) total <= NGX_LLMD_BODY_KEEP) {
        p = ngx_llmd_body_scratch(r, (size_t) total);
        *joined = 1;

    } else {
        p = ngx_pnalloc(r->pool, (size_t) total);
    }

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


/* The worker's buffer for joined bodies, grown by doubling, never shrunk. */
static u_char *
ngx_llmd_body_scratch(ngx_http_request_t *r, size_t size)
{
    size_t  n;

    if (size <= ngx_llmd_body_buf.size) {
        return ngx_llmd_body_buf.data;
    }

    n = ngx_max(ngx_llmd_body_buf.size, 64 * 1024);

    while (n < size) {
        n *= 2;
    }

    n = ngx_min(n, NGX_LLMD_BODY_KEEP);

    return ngx_llmd_wbuf(&ngx_llmd_body_buf, n, r->connection->log);
}


static void *
ngx_llmd_pool_alloc(void *ctx, size_t size)
{
    return ngx_palloc((ngx_pool_t *) ctx, size);
}


/*
 * A buffer a worker reuses for every request (the request path is
 * synchronous), grown to size when smaller: nothing large is allocated per
 * request.  NULL (and an empty buffer) when the allocation fails.
 */
void *
ngx_llmd_wbuf(ngx_llmd_wbuf_t *b, size_t size, ngx_log_t *log)
{
    if (size <= b->size) {
        return b->data;
    }

    if (b->data) {
        ngx_free(b->data);
    }

    b->size = 0;
    b->data = ngx_alloc(size, log);
    if (b->data == NULL) {
        return NULL;
    }

    b->size = size;

    return b->data;
}


/* *s, len bytes, now in the pool (NULL and "" stay as they are) */
static ngx_int_t
ngx_llmd_pool_copy(ngx_pool_t *pool, const char **s, size_t len)
{
    u_char  *p;

    if (*s == NULL || len == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(p, *s, len);
    p[len] = '\0';
    *s = (const char *) p;

    return NGX_OK;
}
