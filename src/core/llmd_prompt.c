/*
 * Request body -> model, cache salt, stream flag and the prompt bytes the
 * approximate prefix scorer hashes (docs/parsers.md, "Request body").
 *
 * Memory: cJSON allocates through global hooks (cJSON_InitHooks). While
 * llmd_request_parse() runs, the hooks point to a trampoline that takes
 * memory from the caller's region allocator through a static pointer, and
 * free is a no-op because region memory is released by its owner all at
 * once; the default hooks are restored before returning. This is correct
 * because every user of the core calls it from one thread (nginx workers
 * are single threaded); it is not safe to parse concurrently from several
 * threads, and it resets any custom cJSON hooks another component set.
 *
 * Cost: one cJSON parse (linear, nesting bounded by cJSON's
 * CJSON_NESTING_LIMIT of 1000), then one linear pass to measure and one to
 * write the prompt bytes, allocated once. cJSON takes 64 bytes per JSON
 * value, up to 32 times the body for a list of one-digit token ids, and
 * about 0.4 us per value. Its memory is therefore capped at
 * LLMD_JSON_BUDGET_FACTOR times the body plus LLMD_JSON_BUDGET_MIN: a body
 * past that (which takes longer to parse than to serve from any cache) is
 * not hashed. The parse then succeeds with no model and no prompt, so the
 * request is scheduled on load signals alone, like a body larger than
 * llmd_body_limit; err says so.
 */

#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "core/llmd_go_json.h"
#include "core/llmd_prompt.h"


/*
 * String prompts take 1x the body, chat about 6x, token ids of 5-6 digits
 * about 11x: 16x leaves room for all of them.
 */
#define LLMD_JSON_BUDGET_FACTOR  16
#define LLMD_JSON_BUDGET_MIN     (1024 * 1024)


/* messages are serialised in two passes: measure (p == NULL), then write */
typedef struct {
    unsigned char  *p;
    size_t          n;
} llmd_out_t;


static void *llmd_json_malloc(size_t size);
static void llmd_json_free(void *p);
static const cJSON *llmd_json_member(const cJSON *obj, const char *name);
static int llmd_completions_prompt(const cJSON *prompt, const llmd_alloc_t *a,
    llmd_request_t *out, char *err, size_t errlen);
static int llmd_token_ids(const cJSON *list, llmd_out_t *o);
static int llmd_chat_messages(const cJSON *messages, llmd_out_t *o,
    char *err, size_t errlen);
static int llmd_chat_content(const cJSON *content, llmd_out_t *o,
    char *err, size_t errlen);
static int llmd_json_string_field(const cJSON *obj, const char *name,
    const char **value);
static void llmd_out_bytes(llmd_out_t *o, const void *s, size_t len);
static void llmd_out_go_string(llmd_out_t *o, const unsigned char *s,
    size_t len);
static void llmd_out_write(void *o, const void *s, size_t len);


/* the allocator of the parse in progress (single threaded, see above) */
static const llmd_alloc_t  *llmd_json_alloc;
static size_t               llmd_json_budget;
static size_t               llmd_json_budget_min = LLMD_JSON_BUDGET_MIN;
static int                  llmd_json_oom;
static int                  llmd_json_over;


llmd_api_t
llmd_api_from_path(const char *path, size_t len)
{
    static const char  chat[] = "/chat/completions";
    static const char  compl[] = "/completions";

    if (path == NULL) {
        return LLMD_API_OTHER;
    }

    if (len >= sizeof(chat) - 1
        && memcmp(path + len - (sizeof(chat) - 1), chat, sizeof(chat) - 1)
           == 0)
    {
        return LLMD_API_CHAT;
    }

    if (len >= sizeof(compl) - 1
        && memcmp(path + len - (sizeof(compl) - 1), compl, sizeof(compl) - 1)
           == 0)
    {
        return LLMD_API_COMPLETIONS;
    }

    return LLMD_API_OTHER;
}


size_t
llmd_request_json_budget(size_t len)
{
    if (len >= ((size_t) -1 - llmd_json_budget_min) / LLMD_JSON_BUDGET_FACTOR)
    {
        return llmd_json_budget_min;
    }

    return llmd_json_budget_min + len * LLMD_JSON_BUDGET_FACTOR;
}


void
llmd_request_set_json_budget_min(size_t min)
{
    llmd_json_budget_min = min ? min : LLMD_JSON_BUDGET_MIN;
}


int
llmd_request_parse(llmd_api_t api, const char *body, size_t len,
    const llmd_alloc_t *a, llmd_request_t *out, char *err, size_t errlen)
{
    int           rc;
    size_t        i;
    cJSON        *root;
    const char   *end, *s;
    llmd_out_t    o;
    cJSON_Hooks   hooks;
    const cJSON  *item;

    memset(out, 0, sizeof(llmd_request_t));
    out->model = "";

    if (errlen) {
        err[0] = '\0';
    }

    if (body == NULL || len == 0) {
        snprintf(err, errlen, "request body is not valid JSON");
        return -1;
    }

    hooks.malloc_fn = llmd_json_malloc;
    hooks.free_fn = llmd_json_free;

    llmd_json_alloc = a;
    llmd_json_oom = 0;
    llmd_json_over = 0;
    llmd_json_budget = llmd_request_json_budget(len);

    cJSON_InitHooks(&hooks);

    end = NULL;
    root = cJSON_ParseWithLengthOpts(body, len, &end, 0);

    /* back to malloc/free for any other cJSON user in the process */
    cJSON_InitHooks(NULL);
    llmd_json_alloc = NULL;

    if (root == NULL && llmd_json_over) {
        snprintf(err, errlen, "request body too complex to hash, scheduled "
                 "on load alone");
        return 0;
    }

    if (root == NULL) {
        snprintf(err, errlen, "%s", llmd_json_oom
                 ? "out of memory" : "request body is not valid JSON");
        return -1;
    }

    /* cJSON stops after the first value: anything but spaces may follow */
    if (end != NULL) {
        for (i = end - body; i < len; i++) {
            if (body[i] != ' ' && body[i] != '\t' && body[i] != '\n'
                && body[i] != '\r')
            {
                snprintf(err, errlen, "request body is not valid JSON");
                return -1;
            }
        }
    }

    if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "request body must be a JSON object");
        return -1;
    }

    /* vLLM serves its (first) model when the request names none */
    item = llmd_json_member(root, "model");

    if (item != NULL && !cJSON_IsNull(item)) {
        if (!cJSON_IsString(item) || item->valuestring == NULL) {
            snprintf(err, errlen, "model must be a string");
            return -1;
        }

        out->model = item->valuestring;
        out->model_len = strlen(item->valuestring);
    }

    if (llmd_json_string_field(root, "cache_salt", &s) != 0) {
        snprintf(err, errlen, "cache_salt must be a string");
        return -1;
    }

    if (s != NULL && s[0] != '\0') {
        out->cache_salt = s;
        out->cache_salt_len = strlen(s);
    }

    out->stream = cJSON_IsTrue(llmd_json_member(root, "stream")) ? 1 : 0;

    switch (api) {

    case LLMD_API_COMPLETIONS:
        out->json_prompt = llmd_json_member(root, "prompt");
        return llmd_completions_prompt(out->json_prompt, a, out, err,
                                       errlen);

    case LLMD_API_CHAT:
        item = llmd_json_member(root, "messages");

        if (!cJSON_IsArray(item) || item->child == NULL) {
            snprintf(err, errlen,
                     "messages must be a non-empty list of chat messages");
            return -1;
        }

        out->json_messages = item;
        item = llmd_json_member(root, "tools");
        out->tools = item != NULL && !cJSON_IsNull(item);

        /* what vLLM passes to the chat template besides the messages */
        item = llmd_json_member(root, "chat_template_kwargs");
        out->json_chat_kwargs = cJSON_IsObject(item) ? item : NULL;
        out->add_generation_prompt =
            !cJSON_IsFalse(llmd_json_member(root, "add_generation_prompt"));

        item = out->json_messages;

        o.p = NULL;
        o.n = 0;

        rc = llmd_chat_messages(item, &o, err, errlen);
        if (rc != 0) {
            return rc;
        }

        o.p = a->alloc(a->ctx, o.n);
        if (o.p == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }

        out->prompt = o.p;
        o.n = 0;

        (void) llmd_chat_messages(item, &o, err, errlen);

        out->prompt_len = o.n;
        return 0;

    default:
        return 0;
    }
}


static void *
llmd_json_malloc(size_t size)
{
    void  *p;

    if (llmd_json_alloc == NULL) {
        return NULL;
    }

    if (size > llmd_json_budget) {
        llmd_json_over = 1;
        return NULL;
    }

    llmd_json_budget -= size;

    p = llmd_json_alloc->alloc(llmd_json_alloc->ctx, size ? size : 1);

    if (p == NULL) {
        llmd_json_oom = 1;
    }

    return p;
}


static void
llmd_json_free(void *p)
{
    /* region memory is released by its owner */
}


/*
 * The last member named name: a duplicated key takes its last value, as in
 * Python's json module (vLLM) and Go's encoding/json (llm-d). Keys are
 * compared case-sensitively (Go would also match "Model" to a struct field;
 * vLLM would not).
 */
static const cJSON *
llmd_json_member(const cJSON *obj, const char *name)
{
    const cJSON  *c, *found;

    found = NULL;

    for (c = obj->child; c != NULL; c = c->next) {
        if (c->string != NULL && strcmp(c->string, name) == 0) {
            found = c;
        }
    }

    return found;
}


/*
 * A string member that may be absent or null (*value = NULL); any other
 * type is an error, as when Go decodes it into a string field.
 */
static int
llmd_json_string_field(const cJSON *obj, const char *name,
    const char **value)
{
    const cJSON  *item;

    *value = NULL;

    item = llmd_json_member(obj, name);

    if (item == NULL || cJSON_IsNull(item)) {
        return 0;
    }

    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        return -1;
    }

    *value = item->valuestring;
    return 0;
}


static int
llmd_completions_prompt(const cJSON *prompt, const llmd_alloc_t *a,
    llmd_request_t *out, char *err, size_t errlen)
{
    size_t          n, l;
    const cJSON    *c;
    unsigned char  *p;
    llmd_out_t      o;

    if (prompt == NULL || cJSON_IsNull(prompt)) {
        snprintf(err, errlen, "prompt not found in request body");
        return -1;
    }

    if (cJSON_IsString(prompt) && prompt->valuestring != NULL) {
        out->prompt = (const unsigned char *) prompt->valuestring;
        out->prompt_len = strlen(prompt->valuestring);
        return 0;
    }

    if (!cJSON_IsArray(prompt) || prompt->child == NULL) {
        goto invalid;
    }

    if (cJSON_IsString(prompt->child)) {

        /* a list of strings, joined with single spaces */

        n = 0;

        for (c = prompt->child; c != NULL; c = c->next) {
            if (!cJSON_IsString(c) || c->valuestring == NULL) {
                goto invalid;
            }

            n += strlen(c->valuestring) + (c != prompt->child);
        }

        p = a->alloc(a->ctx, n ? n : 1);
        if (p == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }

        out->prompt = p;
        out->prompt_len = n;

        for (c = prompt->child; c != NULL; c = c->next) {
            if (c != prompt->child) {
                *p++ = ' ';
            }

            l = strlen(c->valuestring);
            memcpy(p, c->valuestring, l);
            p += l;
        }

        return 0;
    }

    /* token ids, [int] or [[int]]: measure, then write */

    o.p = NULL;
    o.n = 0;

    if (llmd_token_ids(prompt, &o) != 0) {
        goto invalid;
    }

    o.p = a->alloc(a->ctx, o.n ? o.n : 1);
    if (o.p == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    out->prompt = o.p;
    o.n = 0;

    (void) llmd_token_ids(prompt, &o);

    out->prompt_len = o.n;
    return 0;

invalid:

    snprintf(err, errlen,
             "prompt must be a string, a list of strings or token ids");
    return -1;
}


/*
 * A list of token ids, or a list of such lists, as 4 little-endian bytes per
 * id. An id is an integer 0 .. 2^32 - 1 (vLLM accepts 1.0 for 1 too).
 */
static int
llmd_token_ids(const cJSON *list, llmd_out_t *o)
{
    int             nested;
    double          d;
    uint32_t        id;
    const cJSON    *c, *t;
    unsigned char   le[4];

    nested = cJSON_IsArray(list->child);

    for (c = list->child; c != NULL; c = c->next) {

        if (nested) {
            if (!cJSON_IsArray(c)) {
                return -1;
            }

            t = c->child;

        } else {
            t = c;
        }

        for ( /* void */ ; t != NULL; t = nested ? t->next : NULL) {
            if (!cJSON_IsNumber(t)) {
                return -1;
            }

            d = t->valuedouble;

            if (!(d >= 0.0 && d <= 4294967295.0)) {
                return -1;
            }

            id = (uint32_t) d;

            if ((double) id != d) {
                return -1;
            }

            le[0] = (unsigned char) id;
            le[1] = (unsigned char) (id >> 8);
            le[2] = (unsigned char) (id >> 16);
            le[3] = (unsigned char) (id >> 24);

            llmd_out_bytes(o, le, 4);
        }
    }

    return 0;
}


/*
 * messages as llm-d GIE v1.1-v1.3 serialise them with Go's encoding/json
 * ("Gen A", spec section 3.3.5): [{"role":…,"content":…},…] where role is
 * omitted when empty and content is the string when non-empty, else the
 * list of content parts when present, else "". Other fields are dropped;
 * a null message or part is Go's zero value; a wrongly typed field fails
 * the request as Go's decoder fails it.
 */
static int
llmd_chat_messages(const cJSON *messages, llmd_out_t *o, char *err,
    size_t errlen)
{
    const char    *role;
    const cJSON   *m;

    llmd_out_bytes(o, "[", 1);

    for (m = messages->child; m != NULL; m = m->next) {

        if (m != messages->child) {
            llmd_out_bytes(o, ",", 1);
        }

        if (cJSON_IsNull(m)) {
            llmd_out_bytes(o, "{\"content\":\"\"}", 14);
            continue;
        }

        if (!cJSON_IsObject(m)) {
            snprintf(err, errlen, "each chat message must be an object");
            return -1;
        }

        if (llmd_json_string_field(m, "role", &role) != 0) {
            snprintf(err, errlen, "chat message role must be a string");
            return -1;
        }

        llmd_out_bytes(o, "{", 1);

        if (role != NULL && role[0] != '\0') {
            llmd_out_bytes(o, "\"role\":", 7);
            llmd_out_go_string(o, (const unsigned char *) role,
                               strlen(role));
            llmd_out_bytes(o, ",", 1);
        }

        llmd_out_bytes(o, "\"content\":", 10);

        if (llmd_chat_content(llmd_json_member(m, "content"), o, err, errlen)
            != 0)
        {
            return -1;
        }

        llmd_out_bytes(o, "}", 1);
    }

    llmd_out_bytes(o, "]", 1);

    return 0;
}


static int
llmd_chat_content(const cJSON *content, llmd_out_t *o, char *err,
    size_t errlen)
{
    const char    *type, *text, *url;
    const cJSON   *b, *img;

    if (content == NULL || cJSON_IsNull(content)) {
        llmd_out_bytes(o, "\"\"", 2);
        return 0;
    }

    if (cJSON_IsString(content) && content->valuestring != NULL) {
        llmd_out_go_string(o, (const unsigned char *) content->valuestring,
                           strlen(content->valuestring));
        return 0;
    }

    if (!cJSON_IsArray(content)) {
        goto invalid;
    }

    llmd_out_bytes(o, "[", 1);

    for (b = content->child; b != NULL; b = b->next) {

        if (b != content->child) {
            llmd_out_bytes(o, ",", 1);
        }

        type = NULL;
        text = NULL;
        url = NULL;

        if (!cJSON_IsNull(b)) {
            if (!cJSON_IsObject(b)
                || llmd_json_string_field(b, "type", &type) != 0
                || llmd_json_string_field(b, "text", &text) != 0)
            {
                goto invalid;
            }

            img = llmd_json_member(b, "image_url");

            if (img != NULL && !cJSON_IsNull(img)) {
                if (!cJSON_IsObject(img)
                    || llmd_json_string_field(img, "url", &url) != 0)
                {
                    goto invalid;
                }
            }
        }

        llmd_out_bytes(o, "{\"type\":", 8);
        llmd_out_go_string(o, (const unsigned char *) (type ? type : ""),
                           type ? strlen(type) : 0);

        if (text != NULL && text[0] != '\0') {
            llmd_out_bytes(o, ",\"text\":", 8);
            llmd_out_go_string(o, (const unsigned char *) text,
                               strlen(text));
        }

        /* Go's omitempty never drops a struct: image_url is always there */
        llmd_out_bytes(o, ",\"image_url\":{", 14);

        if (url != NULL && url[0] != '\0') {
            llmd_out_bytes(o, "\"url\":", 6);
            llmd_out_go_string(o, (const unsigned char *) url, strlen(url));
        }

        llmd_out_bytes(o, "}}", 2);
    }

    llmd_out_bytes(o, "]", 1);

    return 0;

invalid:

    snprintf(err, errlen, "chat message content must be a string or a list "
             "of content parts");
    return -1;
}


static void
llmd_out_bytes(llmd_out_t *o, const void *s, size_t len)
{
    if (o->p != NULL) {
        memcpy(o->p + o->n, s, len);
    }

    o->n += len;
}


/* llmd_out_bytes as a llmd_go_write_pt */
static void
llmd_out_write(void *o, const void *s, size_t len)
{
    llmd_out_bytes(o, s, len);
}


/*
 * A JSON string as Go's encoding/json.Marshal writes it: '"' and '\'
 * escaped; \b \f \n \r \t short escapes (Go >= 1.22); other control bytes
 * as \u00xx (lowercase hex); '<' '>' '&' as \u003c \u003e \u0026; U+2028
 * and U+2029 as \u2028 \u2029; each byte that does not start a valid UTF-8
 * sequence as \ufffd; all other UTF-8 (and DEL) literal.
 */
static void
llmd_out_go_string(llmd_out_t *o, const unsigned char *s, size_t len)
{
    llmd_out_bytes(o, "\"", 1);
    llmd_go_json_escape(s, len, llmd_out_write, o);
    llmd_out_bytes(o, "\"", 1);
}


