/*
 * The OpenAI API as vLLM serves it (spec vllm-interop.md sections 5.2-5.3):
 * request validation with cJSON, OpenAI error bodies, non-streaming
 * responses and SSE chunks ("data: <json>\n\n", an optional usage chunk,
 * "data: [DONE]").  Chat messages are rendered by chat.c (the project's
 * chat templates) before tokenization.  On pods with a P/D role the
 * requests' kv_transfer_params are honoured and a decode pod's sidecar
 * (pd.c) runs the prefill leg first when the request names a prefiller.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "sim.h"


static void sim_openai_token(sim_req_t *r, uint32_t id, const char *text,
    size_t len, int last);
static void sim_openai_serve(sim_conn_t *c, sim_req_t *r);
static void sim_openai_prefilled(sim_req_t *r, int status, const char *body,
    size_t len, const char *err);
static void sim_json_kv_params(sim_buf_t *b, sim_req_t *r);


static sim_buf_t  sim_scratch;


void
sim_openai_error(sim_conn_t *c, int status, const char *type,
    const char *param, const char *fmt, ...)
{
    sim_buf_t  b = { NULL, 0, 0 };
    char       msg[1024];
    va_list    ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    sim_buf_puts(&b, "{\"error\":{\"message\":");
    sim_buf_json_str(&b, msg, strlen(msg));
    sim_buf_printf(&b, ",\"type\":\"%s\",\"param\":", type);
    if (param) {
        sim_buf_json_str(&b, param, strlen(param));
    } else {
        sim_buf_puts(&b, "null");
    }
    sim_buf_printf(&b, ",\"code\":%d}}", status);

    sim_http_respond(c, status, "application/json", b.data, b.len);
    sim_buf_free(&b);
}


void
sim_openai_bad_request(sim_conn_t *c, int status, const char *reason)
{
    sim_openai_error(c, status, "BadRequestError", NULL, "%s", reason);
}


void
sim_openai_models(sim_conn_t *c)
{
    const sim_config_t  *cf = c->pod->cf;
    sim_buf_t            b = { NULL, 0, 0 };
    long                 now = (long) sim_wall_time();

    sim_buf_puts(&b, "{\"object\":\"list\",\"data\":[{\"id\":");
    sim_buf_json_str(&b, cf->model, strlen(cf->model));
    sim_buf_printf(&b, ",\"object\":\"model\",\"created\":%ld,"
                   "\"owned_by\":\"vllm\",\"root\":", now);
    sim_buf_json_str(&b, cf->model, strlen(cf->model));
    sim_buf_printf(&b, ",\"parent\":null,\"max_model_len\":%d,"
                   "\"permission\":[]}]}", cf->max_model_len);

    sim_http_respond(c, 200, "application/json", b.data, b.len);
    sim_buf_free(&b);
}


/* Tokens of a completions prompt; -1 with err (and param) on bad input. */
static long
sim_prompt_tokens(const cJSON *prompt, uint32_t *ids, size_t cap,
    char *err, size_t errlen)
{
    const cJSON  *e;
    long          n;
    double        v;

    if (cJSON_IsString(prompt)) {
        n = sim_tok_encode(prompt->valuestring, strlen(prompt->valuestring),
                           1, ids, cap);
        if (n < 0) {
            snprintf(err, errlen, "prompt too long");
        }
        return n;
    }

    if (!cJSON_IsArray(prompt) || cJSON_GetArraySize(prompt) == 0) {
        snprintf(err, errlen, "'prompt' must be a string, a list of strings "
                 "or a list of token ids");
        return -1;
    }

    e = prompt->child;
    if (cJSON_IsString(e) || cJSON_IsArray(e)) {
        if (cJSON_GetArraySize(prompt) != 1) {
            snprintf(err, errlen, "the simulator serves one prompt per "
                     "request");
            return -1;
        }
        return sim_prompt_tokens(e, ids, cap, err, errlen);
    }

    n = 0;
    cJSON_ArrayForEach(e, prompt) {
        if (!cJSON_IsNumber(e)) {
            snprintf(err, errlen, "token ids must be integers");
            return -1;
        }
        v = e->valuedouble;
        if (v < 0 || v >= 4294967295.0 || v != (double) (uint32_t) v) {
            snprintf(err, errlen, "token id %g out of range", v);
            return -1;
        }
        if ((size_t) n == cap) {
            snprintf(err, errlen, "prompt too long");
            return -1;
        }
        ids[n++] = (uint32_t) v;
    }

    return n;
}


static int
sim_get_int(const cJSON *o, const char *name, long *v, int *present)
{
    const cJSON  *e = cJSON_GetObjectItemCaseSensitive(o, name);

    *present = 0;
    if (e == NULL || cJSON_IsNull(e)) {
        return 0;
    }
    if (!cJSON_IsNumber(e) || e->valuedouble != (double) (long) e->valuedouble)
    {
        return -1;
    }

    *present = 1;
    *v = (long) e->valuedouble;
    return 0;
}


void
sim_openai_handle(sim_conn_t *c, sim_api_t api)
{
    const sim_config_t  *cf = c->pod->cf;
    const cJSON         *e, *so;
    sim_buf_t            chat = { NULL, 0, 0 };
    sim_req_t           *r = NULL;
    cJSON               *j;
    char                 err[512];
    uint32_t            *ids = NULL;
    size_t               cap;
    long                 n, max_tokens, v;
    int                  present, ignore_eos, rc;

    j = cJSON_ParseWithLength(c->req.body, c->req.body_len);
    if (!cJSON_IsObject(j)) {
        sim_openai_error(c, 400, "BadRequestError", NULL,
                         "request body is not a JSON object");
        goto done;
    }

    e = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (e && !cJSON_IsNull(e)) {
        if (!cJSON_IsString(e)) {
            sim_openai_error(c, 400, "BadRequestError", "model",
                             "'model' must be a string");
            goto done;
        }
        if (strcmp(e->valuestring, cf->model) != 0) {
            sim_openai_error(c, 404, "NotFoundError", "model",
                             "The model `%s` does not exist.",
                             e->valuestring);
            goto done;
        }
    }

    if (sim_get_int(j, "n", &v, &present) != 0 || (present && v != 1)) {
        sim_openai_error(c, 400, "BadRequestError", "n",
                         "the simulator supports n = 1 only");
        goto done;
    }

    cap = (size_t) cf->max_model_len + 1;
    ids = malloc(cap * sizeof(uint32_t));
    r = sim_req_new(c->pod, sim_openai_token);
    if (ids == NULL || r == NULL) {
        sim_openai_error(c, 500, "InternalServerError", NULL,
                         "out of memory");
        goto done;
    }

    r->api = api;

    if (api == SIM_API_CHAT) {
        rc = sim_chat_render(j, &chat, err, sizeof(err));
        if (rc == SIM_CHAT_NO_MEMORY) {
            sim_openai_error(c, 500, "InternalServerError", NULL,
                             "out of memory");
            goto done;
        }
        if (rc != 0) {
            sim_openai_error(c, 400, "BadRequestError", "messages", "%s",
                             err);
            goto done;
        }

        n = sim_tok_encode(chat.data ? chat.data : "", chat.len, 0, ids, cap);
        if (n < 0) {
            snprintf(err, sizeof(err), "prompt too long");
        }

    } else {
        e = cJSON_GetObjectItemCaseSensitive(j, "prompt");
        if (e == NULL) {
            sim_openai_error(c, 400, "BadRequestError", "prompt",
                             "'prompt' is required");
            goto done;
        }
        n = sim_prompt_tokens(e, ids, cap, err, sizeof(err));
    }

    if (n < 0 || (size_t) n >= cap) {
        if (n >= 0) {
            snprintf(err, sizeof(err), "prompt too long");
        }
        if (strcmp(err, "prompt too long") == 0) {
            sim_openai_error(c, 400, "BadRequestError", NULL,
                             "This model's maximum context length is %d "
                             "tokens. However, your prompt is longer.",
                             cf->max_model_len);
        } else {
            sim_openai_error(c, 400, "BadRequestError",
                             api == SIM_API_CHAT ? "messages" : "prompt",
                             "%s", err);
        }
        goto done;
    }

    if (n == 0) {
        sim_openai_error(c, 400, "BadRequestError", "prompt",
                         "The prompt cannot be empty");
        goto done;
    }

    if (sim_get_int(j, "max_completion_tokens", &max_tokens, &present) != 0
        || (!present
            && sim_get_int(j, "max_tokens", &max_tokens, &present) != 0))
    {
        sim_openai_error(c, 400, "BadRequestError", "max_tokens",
                         "'max_tokens' must be an integer");
        goto done;
    }

    if (!present) {
        max_tokens = api == SIM_API_CHAT ? cf->max_model_len - n : 16;
    }

    if (max_tokens < 1) {
        sim_openai_error(c, 400, "BadRequestError", "max_tokens",
                         "max_tokens must be at least 1, got %ld.",
                         max_tokens);
        goto done;
    }

    if (n + max_tokens > cf->max_model_len) {
        sim_openai_error(c, 400, "BadRequestError", NULL,
                         "This model's maximum context length is %d tokens. "
                         "However, you requested %ld tokens (%ld in the "
                         "messages, %ld in the completion). Please reduce "
                         "the length of the messages or completion.",
                         cf->max_model_len, n + max_tokens, n, max_tokens);
        goto done;
    }

    if ((size_t) (n + max_tokens + cf->block_size - 1) / cf->block_size
        > sim_kv_num_blocks(c->pod->kv))
    {
        sim_openai_error(c, 400, "BadRequestError", NULL,
                         "the request needs %ld tokens of KV cache, more "
                         "than the %u blocks of %d tokens this pod has",
                         n + max_tokens, sim_kv_num_blocks(c->pod->kv),
                         cf->block_size);
        goto done;
    }

    e = cJSON_GetObjectItemCaseSensitive(j, "cache_salt");
    if (e && !cJSON_IsNull(e)) {
        if (!cJSON_IsString(e) || e->valuestring[0] == '\0'
            || strlen(e->valuestring) > SIM_MAX_SALT)
        {
            sim_openai_error(c, 400, "BadRequestError", "cache_salt",
                             "'cache_salt' must be a non-empty string");
            goto done;
        }
        r->salt = strdup(e->valuestring);
        r->salt_len = strlen(e->valuestring);
    }

    e = cJSON_GetObjectItemCaseSensitive(j, "kv_transfer_params");
    if (c->pod->role != SIM_ROLE_BOTH && e && !cJSON_IsNull(e)) {
        if (!cJSON_IsObject(e)) {
            sim_openai_error(c, 400, "BadRequestError", "kv_transfer_params",
                             "'kv_transfer_params' must be an object");
            goto done;
        }
        r->kv_producer = sim_pd_is_prefill_leg(e);
        r->remote_blocks = sim_pd_remote_blocks(e);
    }

    e = cJSON_GetObjectItemCaseSensitive(j, "stream");
    r->stream = cJSON_IsTrue(e);
    so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
    r->include_usage = cJSON_IsTrue(
        cJSON_GetObjectItemCaseSensitive(so, "include_usage"));

    ignore_eos = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j,
                                                               "ignore_eos"));
    r->max_tokens = (int) max_tokens;
    r->finish_reason = "length";
    if (!ignore_eos && cf->eos_tokens > 0 && max_tokens > cf->eos_tokens) {
        /* the simulated model "emits EOS" after eos_tokens tokens */
        r->max_tokens = cf->eos_tokens;
        r->finish_reason = "stop";
    }

    r->tokens = realloc(ids, (size_t) (n + max_tokens + 1) * sizeof(uint32_t));
    if (r->tokens == NULL) {
        r->tokens = ids;
        sim_openai_error(c, 500, "InternalServerError", NULL,
                         "out of memory");
        ids = NULL;
        goto done;
    }
    ids = NULL;
    r->cap_tokens = (size_t) (n + max_tokens + 1);
    r->n_prompt = (size_t) n;
    r->n_tokens = (size_t) n;

    r->conn = c;
    c->sreq = r;
    c->busy = 1;
    c->pod->requests++;

    if (c->pod->role == SIM_ROLE_DECODE && c->req.prefiller) {
        sim_pd_sidecar(r, j, c->req.prefiller, c->req.prefiller_len,
                       sim_openai_prefilled);
    } else {
        sim_openai_serve(c, r);
    }
    r = NULL;

done:

    if (r) {
        sim_req_free(r);
    }
    free(ids);
    sim_buf_free(&chat);
    cJSON_Delete(j);
}


/* Hands the request of c to the engine; its answer starts at once. */
static void
sim_openai_serve(sim_conn_t *c, sim_req_t *r)
{
    r->state = SIM_REQ_WAITING;

    if (r->stream) {
        sim_http_stream_start(c, "text/event-stream; charset=utf-8");
    }

    if (sim_engine_add(c->pod, r) != 0) {
        c->sreq = NULL;
        c->busy = 0;
        c->keepalive = 0;
        c->closing = 1;
        sim_req_free(r);
    }
}


/* The sidecar's prefill leg ended (pd.c): decode here, or pass its error. */
static void
sim_openai_prefilled(sim_req_t *r, int status, const char *body, size_t len,
    const char *err)
{
    sim_conn_t  *c = r->conn;

    if (c == NULL) {
        sim_req_free(r);                /* the client has gone */
        return;
    }

    if (status == 0) {
        sim_openai_serve(c, r);
        return;
    }

    c->sreq = NULL;
    sim_req_free(r);

    if (len) {
        sim_http_respond(c, status, "application/json", body, len);
    } else {
        sim_openai_error(c, status, status == 502 ? "BadGateway"
                                                  : "InternalServerError",
                         NULL, "%s", err);
    }
    sim_http_done(c);
}


static void
sim_json_head(sim_buf_t *b, sim_req_t *r, const char *object)
{
    const char  *model = r->pod->cf->model;

    sim_buf_printf(b, "{\"id\":\"%s%s\",\"object\":\"%s\",\"created\":%ld,"
                   "\"model\":", r->api == SIM_API_CHAT ? "chatcmpl-" : "cmpl-",
                   r->id, object, r->created);
    sim_buf_json_str(b, model, strlen(model));
}


static void
sim_json_usage(sim_buf_t *b, sim_req_t *r)
{
    sim_buf_printf(b, "\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu,"
                   "\"completion_tokens\":%zu,\"prompt_tokens_details\":"
                   "{\"cached_tokens\":%zu}}", r->n_prompt,
                   r->n_prompt + r->n_output, r->n_output,
                   r->prefill_cached >= 0 ? (size_t) r->prefill_cached
                                          : r->cached_prompt);
}


/*
 * vLLM's kv_transfer_params member: where a finished prefill leg's blocks
 * are (it ends at its 1-token length cap), else null.
 */
static void
sim_json_kv_params(sim_buf_t *b, sim_req_t *r)
{
    sim_buf_puts(b, ",\"kv_transfer_params\":");

    if (r->kv_producer && strcmp(r->finish_reason, "length") == 0) {
        sim_pd_params_json(b, r->pod, r);
        r->pod->stats.prefill_legs++;
    } else {
        sim_buf_puts(b, "null");
    }
}


static void
sim_sse(sim_conn_t *c, sim_buf_t *b)
{
    sim_buf_puts(b, "\n\n");
    sim_http_stream_chunk(c, b->data, b->len);
    b->len = 0;
}


/* The engine's token callback: SSE chunks, or the whole answer at the end. */
static void
sim_openai_token(sim_req_t *r, uint32_t id, const char *text, size_t len,
    int last)
{
    sim_conn_t  *c = r->conn;
    sim_buf_t   *b = &sim_scratch;
    int          chat = r->api == SIM_API_CHAT;
    char         finish[32];

    if (c == NULL) {
        return;
    }

    if (last) {
        snprintf(finish, sizeof(finish), "\"%s\"", r->finish_reason);
    } else {
        snprintf(finish, sizeof(finish), "null");
    }

    if (!r->stream) {
        sim_buf_append(&r->text, text, len);
        if (!last) {
            return;
        }

        b->len = 0;
        sim_json_head(b, r, chat ? "chat.completion" : "text_completion");
        if (chat) {
            sim_buf_puts(b, ",\"choices\":[{\"index\":0,\"message\":"
                         "{\"role\":\"assistant\",\"content\":");
            sim_buf_json_str(b, r->text.data, r->text.len);
            sim_buf_printf(b, ",\"tool_calls\":[]},\"logprobs\":null,"
                           "\"finish_reason\":%s,\"stop_reason\":null}],",
                           finish);
        } else {
            sim_buf_puts(b, ",\"choices\":[{\"index\":0,\"text\":");
            sim_buf_json_str(b, r->text.data, r->text.len);
            sim_buf_printf(b, ",\"logprobs\":null,\"finish_reason\":%s,"
                           "\"stop_reason\":null,\"prompt_logprobs\":null}],",
                           finish);
        }
        sim_json_usage(b, r);
        if (r->pod->role != SIM_ROLE_BOTH) {
            sim_json_kv_params(b, r);
        }
        sim_buf_puts(b, "}");

        sim_http_respond(c, 200, "application/json", b->data, b->len);
        sim_http_done(c);
        r->conn = NULL;
        return;
    }

    b->len = 0;

    if (chat && r->n_output == 1) {
        sim_buf_puts(b, "data: ");
        sim_json_head(b, r, "chat.completion.chunk");
        sim_buf_puts(b, ",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
                     "\"assistant\",\"content\":\"\"},\"logprobs\":null,"
                     "\"finish_reason\":null}]}");
        sim_sse(c, b);
    }

    sim_buf_puts(b, "data: ");
    if (chat) {
        sim_json_head(b, r, "chat.completion.chunk");
        sim_buf_puts(b, ",\"choices\":[{\"index\":0,\"delta\":{\"content\":");
        sim_buf_json_str(b, text, len);
        sim_buf_printf(b, "},\"logprobs\":null,\"finish_reason\":%s}]}",
                       finish);
    } else {
        sim_json_head(b, r, "text_completion");
        sim_buf_puts(b, ",\"choices\":[{\"index\":0,\"text\":");
        sim_buf_json_str(b, text, len);
        sim_buf_printf(b, ",\"logprobs\":null,\"finish_reason\":%s,"
                       "\"stop_reason\":null}]}", finish);
    }
    sim_sse(c, b);

    if (!last) {
        return;
    }

    if (r->include_usage) {
        sim_buf_puts(b, "data: ");
        sim_json_head(b, r, chat ? "chat.completion.chunk"
                                 : "text_completion");
        sim_buf_puts(b, ",\"choices\":[],");
        sim_json_usage(b, r);
        sim_buf_puts(b, "}");
        sim_sse(c, b);
    }

    sim_buf_puts(b, "data: [DONE]\n\n");
    sim_http_stream_chunk(c, b->data, b->len);
    b->len = 0;
    sim_http_stream_end(c);
    sim_http_done(c);
    r->conn = NULL;
}
