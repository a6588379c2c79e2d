/*
 * Precise prefix-cache scoring on the request path: the prompt is
 * tokenized in-process (chat messages rendered with the model's chat
 * template first), cut into blocks of tokenProcessorConfig.blockSize
 * tokens, keyed as the KV-event index keys them, and looked up in the
 * shared-memory index the helper fills from vLLM's KV events.
 */

#include <cJSON.h>

#include "nginx/ngx_llmd.h"


static ngx_int_t ngx_llmd_precise_load(ngx_conf_t *cf,
    ngx_llmd_srv_conf_t *lcf);
static void ngx_llmd_precise_cleanup(void *data);
static ngx_int_t ngx_llmd_precise_text(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, llmd_api_t api, const llmd_request_t *req,
    const char **text, size_t *len, unsigned *flags,
    const uint32_t **ids, size_t *nids);
static ngx_int_t ngx_llmd_precise_render(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, const llmd_request_t *req, const char **text,
    size_t *len);
static llmd_tok_cache_t *ngx_llmd_precise_cache(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf);

/*
 * Text beyond this many bytes per matchable token is not tokenized: the
 * blocks that can be matched never need it, and the tokenizer's scratch
 * memory grows with the text.
 */
#define NGX_LLMD_TEXT_PER_TOKEN  8


/* Buffers reused by every request of a worker (ngx_llmd_wbuf()). */
static ngx_llmd_wbuf_t  ngx_llmd_scratch;   /* tokenizer scratch */
static ngx_llmd_wbuf_t  ngx_llmd_ids;       /* token ids */
static ngx_llmd_wbuf_t  ngx_llmd_text;      /* rendered chat */
static ngx_llmd_wbuf_t  ngx_llmd_chat;      /* plain messages, cJSON items */


/*
 * At the end of the upstream block: precise scoring runs when the profile
 * asks for it and a tokenizer is configured; otherwise the prefix scorer
 * stays approximate, with a warning.
 */
ngx_int_t
ngx_llmd_precise_init(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf)
{
    if (!lcf->has_prefix || lcf->prefix.mode != LLMD_PREFIX_PRECISE) {
        return NGX_OK;
    }

    if (lcf->tokenizer_path.len == 0) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "upstream \"%V\": the prefix-cache scorer asks "
                           "for precise scoring (KV events) but no "
                           "\"llmd_tokenizer\" is set; it runs in "
                           "approximate mode", &lcf->upstream->host);
        return NGX_OK;
    }

    if (lcf->kv_mode == NGX_LLMD_KV_OFF) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "upstream \"%V\": \"llmd_kv_events off\": the "
                           "prefix-cache scorer runs in approximate mode",
                           &lcf->upstream->host);
        return NGX_OK;
    }

    if (ngx_llmd_precise_load(cf, lcf) != NGX_OK) {
        return NGX_ERROR;
    }

    lcf->precise = 1;

    return NGX_OK;
}


/* llmd_tokenizer_cache off | SIZE [stride=N] */
char *
ngx_llmd_tokenizer_cache_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_llmd_srv_conf_t  *lcf = conf;

    ssize_t     size;
    ngx_int_t   n;
    ngx_str_t  *value;

    if (lcf->tokenizer_cache != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        size = 0;

    } else {
        size = ngx_parse_size(&value[1]);
        if (size == NGX_ERROR
            || (size != 0 && size < LLMD_TOK_CACHE_MIN))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llmd_tokenizer_cache\" must be \"off\", "
                               "0 or a size of at least %uzk, not \"%V\"",
                               (size_t) LLMD_TOK_CACHE_MIN / 1024, &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    lcf->tokenizer_cache = (size_t) size;

    if (cf->args->nelts == 3) {
        n = NGX_ERROR;

        if (ngx_strncmp(value[2].data, "stride=", 7) == 0) {
            n = ngx_atoi(value[2].data + 7, value[2].len - 7);
        }

        if (n < 1 || n > 65536) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid \"%V\" (stride=1..65536 bytes)",
                               &value[2]);
            return NGX_CONF_ERROR;
        }

        lcf->tokenizer_cache_stride = (ngx_uint_t) n;
    }

    return NGX_CONF_OK;
}


/* Loaded once, in the master: workers share the read-only tables. */
static ngx_int_t
ngx_llmd_precise_load(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf)
{
    char                 err[LLMD_ERRLEN];
    ngx_str_t            path, json, config;
    ngx_file_info_t      fi;
    ngx_pool_cleanup_t  *cln;

    path = lcf->tokenizer_path;

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    /* a directory holds tokenizer.json and tokenizer_config.json */
    if (ngx_file_info(path.data, &fi) != NGX_FILE_ERROR && ngx_is_dir(&fi)) {
        json.len = path.len + sizeof("/tokenizer.json") - 1;
        json.data = ngx_pnalloc(cf->pool, json.len + 1);
        config.len = path.len + sizeof("/tokenizer_config.json") - 1;
        config.data = ngx_pnalloc(cf->pool, config.len + 1);

        if (json.data == NULL || config.data == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(json.data, "%V/tokenizer.json%Z", &path);
        ngx_sprintf(config.data, "%V/tokenizer_config.json%Z", &path);

        if (ngx_file_info(config.data, &fi) == NGX_FILE_ERROR) {
            ngx_str_null(&config);
        }

    } else {
        json = path;
        ngx_str_null(&config);
    }

    lcf->tokenizer = llmd_tokenizer_load((char *) json.data,
                                         (char *) config.data,
                                         err, sizeof(err));
    if (lcf->tokenizer == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "llmd_tokenizer: %s", err);
        return NGX_ERROR;
    }

    if (config.len) {
        lcf->chat_template = llmd_chat_template_load((char *) config.data,
                                                     err, sizeof(err));
        if (lcf->chat_template == NULL) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "llmd_tokenizer: %s; chat requests are scored "
                               "approximately", err);
        }

    } else {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "llmd_tokenizer: no tokenizer_config.json next to "
                           "\"%V\": no chat template, chat requests are "
                           "scored approximately", &json);
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_llmd_precise_cleanup;
    cln->data = lcf;

    return NGX_OK;
}


static void
ngx_llmd_precise_cleanup(void *data)
{
    ngx_llmd_srv_conf_t  *lcf = data;

    if (lcf->chat_template) {
        llmd_chat_template_free(lcf->chat_template);
        lcf->chat_template = NULL;
    }

    if (lcf->tokenizer) {
        llmd_tokenizer_free(lcf->tokenizer);
        lcf->tokenizer = NULL;
    }
}


/*
 * The request's block keys into ctx->keys. NGX_DECLINED when the request
 * cannot be scored precisely (nothing to tokenize, no chat template,
 * tokenizer error): the approximate scores are used instead.
 */
ngx_int_t
ngx_llmd_precise_keys(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx, const llmd_request_t *req)
{
    long               n;
    void              *scratch;
    size_t             len, size, nids, cap;
    ngx_uint_t         truncated, exact;
    uint32_t          *ids;
    uint64_t           root;
    unsigned           flags;
    const char        *text;
    const uint32_t    *given;
    llmd_tok_cache_t  *cache;

    if (!lcf->precise || lcf->kv_index == NULL) {
        return NGX_DECLINED;
    }

    if (ngx_llmd_precise_text(r, lcf, ctx->api, req, &text, &len, &flags,
                              &given, &nids)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    /* only the blocks that can be matched are worth tokenizing */
    cap = (size_t) lcf->prefix.block_size * lcf->prefix.max_prefix_blocks;

    truncated = 0;
    exact = (given != NULL);

    if (given == NULL) {
        if (len > cap * NGX_LLMD_TEXT_PER_TOKEN) {
            len = cap * NGX_LLMD_TEXT_PER_TOKEN;
            truncated = 1;
        }

        /* llmd_tokenize_limit bounds what one request costs a worker */
        if (len > lcf->tokenize_limit) {
            len = lcf->tokenize_limit;
            truncated = 1;
        }

        /* the ids of a recently seen prefix come from the cache */
        cache = ngx_llmd_precise_cache(r, lcf);

        size = llmd_tokenizer_cached_scratch_size(lcf->tokenizer, cache, len);
        scratch = ngx_llmd_wbuf(&ngx_llmd_scratch, size, r->connection->log);
        ids = ngx_llmd_wbuf(&ngx_llmd_ids, cap * sizeof(uint32_t),
                            r->connection->log);
        if (scratch == NULL || ids == NULL) {
            return NGX_ERROR;
        }

        n = llmd_tokenizer_encode_cached(lcf->tokenizer, cache, text, len,
                                         flags | LLMD_TOK_TRUNCATE, scratch,
                                         size, ids, cap);
        if (n < 0) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "llmd: prompt not tokenized (error %l), scored "
                          "approximately", n);
            return NGX_DECLINED;
        }

        given = ids;
        nids = (size_t) n;
        exact = !truncated && nids < cap;
    }

    /*
     * llm-d's precise setup counts the prompt's real tokens (its
     * token-producer asks vLLM) for the in-flight load; when only the
     * prompt's head was tokenized, the byte estimate stands unless the
     * head alone has more tokens
     */
    if (exact || nids > ctx->prompt_tokens) {
        ctx->prompt_tokens = nids;
    }

    if (nids > cap) {
        nids = cap;
    }

    ctx->keys = ngx_palloc(r->pool, sizeof(uint64_t)
                                    * lcf->prefix.max_prefix_blocks);
    if (ctx->keys == NULL) {
        return NGX_ERROR;
    }

    root = llmd_kv_root_key(lcf->prefix.hash_seed,
                            ngx_strlen(lcf->prefix.hash_seed),
                            req->model, req->model_len);

    ctx->nkeys = llmd_kv_request_keys(root, root, given, nids,
                                      lcf->prefix.block_size,
                                      req->cache_salt, req->cache_salt_len,
                                      ctx->keys,
                                      lcf->prefix.max_prefix_blocks);

    /* the cut may have split the last pre-token: its block is unsure */
    if (truncated && ctx->nkeys) {
        ctx->nkeys--;
    }

    ctx->precise = 1;

    return NGX_OK;
}


/*
 * What vLLM tokenizes: a completions prompt with special tokens added
 * (string, first of a list, or token ids as given), or the chat template's
 * rendering of the messages, which carries its own special tokens.
 */
static ngx_int_t
ngx_llmd_precise_text(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    llmd_api_t api, const llmd_request_t *req, const char **text,
    size_t *len, unsigned *flags, const uint32_t **ids, size_t *nids)
{
    size_t        n, cap;
    uint32_t     *out;
    const cJSON  *prompt, *item;

    *ids = NULL;
    *nids = 0;

    if (api == LLMD_API_CHAT) {
        /* tool definitions change the rendering; we do not render them */
        if ((req->json_messages == NULL && req->msgs == NULL)
            || lcf->chat_template == NULL || req->tools)
        {
            return NGX_DECLINED;
        }

        *flags = 0;
        return ngx_llmd_precise_render(r, lcf, req, text, len);
    }

    *flags = LLMD_TOK_ADD_SPECIAL_TOKENS;

    /* one string prompt, copied out by the body scanner */
    if (req->text != NULL) {
        *text = req->text;
        *len = req->text_len;
        return *len ? NGX_OK : NGX_DECLINED;
    }

    prompt = req->json_prompt;
    if (prompt == NULL) {
        return NGX_DECLINED;
    }

    /* a batch of prompts: the first one decides where the batch goes */
    if (cJSON_IsArray(prompt) && cJSON_IsString(prompt->child)) {
        prompt = prompt->child;
    }

    if (cJSON_IsArray(prompt) && cJSON_IsArray(prompt->child)) {
        prompt = prompt->child;
    }

    if (cJSON_IsString(prompt) && prompt->valuestring != NULL) {
        *text = prompt->valuestring;
        *len = ngx_strlen(prompt->valuestring);
        return *len ? NGX_OK : NGX_DECLINED;
    }

    if (!cJSON_IsArray(prompt)) {
        return NGX_DECLINED;
    }

    cap = (size_t) lcf->prefix.block_size * lcf->prefix.max_prefix_blocks;
    out = ngx_llmd_wbuf(&ngx_llmd_ids, cap * sizeof(uint32_t),
                        r->connection->log);
    if (out == NULL) {
        return NGX_ERROR;
    }

    n = 0;

    for (item = prompt->child; item != NULL && n < cap; item = item->next) {
        if (!cJSON_IsNumber(item) || item->valuedouble < 0
            || item->valuedouble > 4294967295.0)
        {
            return NGX_DECLINED;
        }

        out[n++] = (uint32_t) item->valuedouble;
    }

    *ids = out;
    *nids = n;

    return n ? NGX_OK : NGX_DECLINED;
}


/*
 * The prompt vLLM renders: the request's messages, add_generation_prompt
 * and chat_template_kwargs through the model's chat template; messages
 * the body scanner read (req->msgs: each a string role and content, no
 * chat_template_kwargs object) are rendered without a JSON tree.
 */
static ngx_int_t
ngx_llmd_precise_render(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    const llmd_request_t *req, const char **text, size_t *len)
{
    long              n;
    char              err[LLMD_ERRLEN];
    char             *buf;
    size_t            cap, needed, i, nmsgs, size;
    ngx_uint_t        attempt;
    const cJSON      *m;
    llmd_chat_msg_t  *msgs;

    msgs = NULL;
    nmsgs = 0;

    if (req->msgs != NULL) {
        nmsgs = req->nmsgs;
        size = nmsgs * sizeof(llmd_chat_msg_t);
        msgs = ngx_llmd_wbuf(&ngx_llmd_chat,
                             size + llmd_chat_msgs_scratch_size(nmsgs),
                             r->connection->log);
        if (msgs == NULL) {
            return NGX_ERROR;
        }

        for (i = 0; i < nmsgs; i++) {
            msgs[i].role = req->msgs[i].role;
            msgs[i].content = req->msgs[i].content;
        }

    } else {
        for (m = req->json_messages->child; m != NULL; m = m->next) {
            nmsgs++;
        }
    }

    /* the template adds a few dozen bytes per message to its contents */
    cap = 4096 + 256 * nmsgs;

    cap += r->request_body && r->headers_in.content_length_n > 0
           ? (size_t) r->headers_in.content_length_n : 0;

    for (attempt = 0; attempt < 2; attempt++) {
        buf = ngx_llmd_wbuf(&ngx_llmd_text, cap, r->connection->log);
        if (buf == NULL) {
            return NGX_ERROR;
        }

        needed = 0;

        if (msgs != NULL) {
            n = llmd_chat_template_render_msgs(lcf->chat_template, msgs,
                                               nmsgs,
                                               req->add_generation_prompt,
                                               msgs + nmsgs,
                                               llmd_chat_msgs_scratch_size(
                                                   nmsgs),
                                               buf, cap, &needed, err,
                                               sizeof(err));

        } else {
            n = llmd_chat_template_render_kw(lcf->chat_template,
                                             req->json_messages,
                                             req->json_chat_kwargs,
                                             req->add_generation_prompt,
                                             buf, cap, &needed, err,
                                             sizeof(err));
        }
        if (n >= 0) {
            *text = buf;
            *len = (size_t) n;
            return NGX_OK;
        }

        if (n != -2 || needed <= cap) {
            break;
        }

        cap = needed;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "llmd: chat template not rendered (%s), scored "
                  "approximately", n == -2 ? "too long" : err);

    return NGX_DECLINED;
}


/*
 * At a worker's start: the KV index is mapped (ngx_llmd_kv_index_map),
 * and the prefix cache of each precise upstream is made and every page of
 * it written once now, not by the requests that would fill it (the first
 * write to a page is a fault, on a VM ~11-27 us; an 8k-token entry spans
 * nine pages, and a 16 MB cache takes hundreds of entries before its ring
 * wraps).
 */
ngx_int_t
ngx_llmd_precise_init_process(ngx_cycle_t *cycle)
{
    size_t                  bytes;
    ngx_uint_t              i;
    ngx_msec_t              t;
    ngx_llmd_srv_conf_t   **lcfp, *lcf;
    ngx_llmd_main_conf_t   *lmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    lmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_llmd_module);
    if (lmcf == NULL) {
        return NGX_OK;
    }

    lcfp = lmcf->upstreams.elts;

    for (i = 0; i < lmcf->upstreams.nelts; i++) {
        lcf = lcfp[i];

        if (lcf->precise && lcf->kv_index != NULL) {
            ngx_llmd_kv_index_map(cycle, lcf, 0);
        }

        if (!lcf->precise || lcf->tokenizer == NULL
            || lcf->kv_index == NULL || lcf->tokenizer_cache == 0
            || lcf->tok_cache != NULL || lcf->tok_cache_failed)
        {
            continue;
        }

        ngx_time_update();
        t = ngx_current_msec;

        lcf->tok_cache = llmd_tok_cache_create(lcf->tokenizer,
                                               lcf->tokenizer_cache,
                                               lcf->tokenizer_cache_stride);
        if (lcf->tok_cache == NULL) {
            lcf->tok_cache_failed = 1;
            ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                          "llmd: no memory for a tokenizer cache of %uz "
                          "bytes, prompts are tokenized whole",
                          lcf->tokenizer_cache);
            continue;
        }

        bytes = llmd_tok_cache_prefault(lcf->tok_cache);

        ngx_time_update();

        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "llmd: tokenizer cache of upstream \"%V\" "
                      "prefaulted: %uz KB in %M ms", &lcf->upstream->host,
                      bytes >> 10, ngx_current_msec - t);
    }

    return NGX_OK;
}


/*
 * This worker's prefix cache of the upstream's tokenizer (llmd_tokenizer_
 * cache bytes), made at the worker's start (ngx_llmd_precise_init_process)
 * or else at the first precise request; NULL when off.
 */
static llmd_tok_cache_t *
ngx_llmd_precise_cache(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf)
{
    if (lcf->tok_cache || lcf->tokenizer_cache == 0
        || lcf->tok_cache_failed)
    {
        return lcf->tok_cache;
    }

    lcf->tok_cache = llmd_tok_cache_create(lcf->tokenizer,
                                           lcf->tokenizer_cache,
                                           lcf->tokenizer_cache_stride);
    if (lcf->tok_cache == NULL) {
        lcf->tok_cache_failed = 1;
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "llmd: no memory for a tokenizer cache of %uz bytes, "
                      "prompts are tokenized whole", lcf->tokenizer_cache);
    }

    return lcf->tok_cache;
}
