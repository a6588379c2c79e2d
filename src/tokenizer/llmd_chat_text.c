/*
 * The text view over a message's content (llmd_chat_int.h).  Messages are
 * read the way vLLM's chat_utils reads them for templates of the "string"
 * content format: the content of a message is one string, the non-empty
 * texts of its text parts joined with "\n".  That string is never copied:
 * the view walks the parts in place, and the renderers find, strip, trim
 * and emit ranges of it as Python's str methods and Jinja's filters would.
 */
#include <string.h>

#include "tokenizer/llmd_chat_int.h"


static const char *llmd_chat_part_text(const cJSON *part);
static void llmd_chat_text_seek(llmd_chat_text_t *v, size_t i);
static unsigned char llmd_chat_text_at(llmd_chat_text_t *v, size_t i);
static int llmd_chat_py_space(uint32_t c);
static size_t llmd_chat_text_decode(llmd_chat_text_t *v, size_t i, size_t b,
    uint32_t *cp);


/* A part type whose text vLLM keeps; *key is the member holding it. */
int
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


void
llmd_chat_text_init_str(llmd_chat_text_t *v, const char *s)
{
    memset(v, 0, sizeof(*v));
    v->str = s;
    v->len = strlen(s);
}


/* content: the message's "content" (validated); NULL/null is "". */
void
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


void
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


int
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
size_t
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
size_t
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


size_t
llmd_chat_text_lstrip_nl(llmd_chat_text_t *v, size_t a, size_t b)
{
    while (a < b && llmd_chat_text_at(v, a) == '\n') {
        a++;
    }
    return a;
}


size_t
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
void
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
void
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


void
llmd_chat_emit_all(llmd_chat_text_t *v, llmd_chat_out_t *w)
{
    llmd_chat_text_emit(v, 0, v->len, w);
}
