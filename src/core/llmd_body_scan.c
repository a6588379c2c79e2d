/*
 * The request body scanner (docs/parsers.md, "Request body scanner"): what
 * llmd_request_parse() computes with a cJSON tree, computed without one.
 *
 * Pass 1 validates the whole body as cJSON 1.7.15 (Debian's, with its
 * security fixes) parses it, step by step in cJSON's order, and remembers
 * where the values of the top-level members that matter start (the last
 * of duplicates, as llmd_prompt.c's member lookup takes the last).  It
 * also counts what cJSON would allocate through llmd_prompt.c's hooks (one
 * item per value, each string's and each number's bytes) against the same
 * budget, so a body past it gives the same "too complex" answer.
 *
 * cJSON's grammar, as the scanner follows it: blanks are any byte <= 0x20
 * inside the value (llmd_prompt.c allows only " \t\r\n" after it); a UTF-8
 * BOM is skipped when the body has at least 5 bytes; strings may hold any
 * raw byte but '"' and '\'; their end is found by skipping one byte after
 * every '\', then the escapes are decoded from the start by cJSON's own
 * stepping (\uXXXX with a non-hex digit decodes to U+0000, a low surrogate
 * alone or a high one without a low one fails); a number is the longest
 * run of [0-9+-eE.] from a '-' or a digit and must be entirely what strtod
 * reads; nesting deeper than CJSON_NESTING_LIMIT fails; a string value is
 * cut at its first NUL byte (cJSON's strings are C strings).
 *
 * Pass 2 reads the recorded values of the (now known valid) body: model,
 * cache_salt, stream, tools, add_generation_prompt, and the prompt, whose
 * bytes (string, joined strings, token ids as 4 LE bytes, or the Go
 * serialisation of chat messages) go to a sink that hashes prefix blocks
 * as they come and stops producing bytes once the last block is hashed;
 * type errors are still checked to the end, in llmd_prompt.c's order.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "core/llmd_body_scan.h"
#include "core/llmd_go_json.h"
#include "core/llmd_prompt_sink.h"
#include "core/llmd_str_find.h"


#define LLMD_SCAN_OK        0
#define LLMD_SCAN_INVALID   1
#define LLMD_SCAN_OVER      2

/* the top-level members read */
enum {
    LLMD_F_MODEL = 0,
    LLMD_F_SALT,
    LLMD_F_STREAM,
    LLMD_F_PROMPT,
    LLMD_F_MESSAGES,
    LLMD_F_TOOLS,
    LLMD_F_AGP,
    LLMD_F_KWARGS,
    LLMD_F_N
};

static const char  *llmd_top_names[LLMD_F_N] = {
    "model", "cache_salt", "stream", "prompt", "messages", "tools",
    "add_generation_prompt", "chat_template_kwargs"
};


typedef const unsigned char  u_char_c;


static int llmd_scan_json(u_char_c *p, u_char_c *e, size_t budget,
    u_char_c **fields, u_char_c **plain, u_char_c **root, u_char_c **rend);
static int llmd_scan_string(u_char_c **pp, u_char_c *e, size_t *used,
    size_t budget, u_char_c **cend);
static size_t llmd_esc_whole(u_char_c *s, u_char_c *e);
static size_t llmd_num_prefix(u_char_c *s, size_t n);
static size_t llmd_esc_len(u_char_c *s, u_char_c *close);
static size_t llmd_esc_decode(u_char_c *s, u_char_c *close,
    unsigned char *out, size_t *adv);
static unsigned llmd_hex4(u_char_c *s);
static int llmd_key_is(u_char_c *q, u_char_c *close, const char *name);
static u_char_c *llmd_str_close(u_char_c *p);
static u_char_c *llmd_skip_value(u_char_c *p);
static u_char_c *llmd_arr_first(u_char_c *p);
static u_char_c *llmd_arr_next(u_char_c *v);
static void llmd_members(u_char_c *p, const char **names, size_t n,
    u_char_c **vals);
static void llmd_str_emit(llmd_prompt_sink_t *s, u_char_c *p, int go);
static void llmd_str_emit_plain(llmd_prompt_sink_t *s, u_char_c *p,
    u_char_c *cend);
static int llmd_str_empty(u_char_c *p);
static int llmd_str_get(u_char_c *p, const llmd_alloc_t *a,
    const char **str, size_t *len);
static int llmd_num_value(u_char_c *p, const llmd_alloc_t *a, double *d);
static void llmd_body_sink(llmd_prompt_sink_t *s, const llmd_body_t *b);
static void llmd_go_emit(llmd_prompt_sink_t *s, u_char_c *p, size_t len);
static int llmd_completions(llmd_prompt_sink_t *s, u_char_c *prompt,
    u_char_c *plain, const llmd_alloc_t *a, llmd_body_t *b, char *err,
    size_t errlen);
static int llmd_chat(llmd_prompt_sink_t *s, u_char_c *messages, char *err,
    size_t errlen);
static int llmd_chat_content(llmd_prompt_sink_t *s, u_char_c *content);
static void llmd_chat_msgs(u_char_c *messages, llmd_body_t *b);
static const char *llmd_msg_str(u_char_c *p, llmd_body_t *b, size_t *used);


#define llmd_is_ws(c)   ((c) <= 0x20)
#define llmd_is_hex(c)  (((c) >= '0' && (c) <= '9')                         \
                         || ((c) >= 'a' && (c) <= 'f')                      \
                         || ((c) >= 'A' && (c) <= 'F'))
#define llmd_is_num(c)  (((c) >= '0' && (c) <= '9') || (c) == '+'           \
                         || (c) == '-' || (c) == 'e' || (c) == 'E'          \
                         || (c) == '.')

/* the type of a value by its first byte (valid JSON) */
#define llmd_is_null(v)    ((v) == NULL || *(v) == 'n')
#define llmd_is_string(v)  ((v) != NULL && *(v) == '"')
#define llmd_is_array(v)   ((v) != NULL && *(v) == '[')
#define llmd_is_object(v)  ((v) != NULL && *(v) == '{')
#define llmd_is_number(v)  ((v) != NULL && (*(v) == '-'                     \
                            || (*(v) >= '0' && *(v) <= '9')))


static u_char_c *
llmd_ws(u_char_c *p, u_char_c *e)
{
    while (p < e && llmd_is_ws(*p)) {
        p++;
    }

    return p;
}


int
llmd_body_scan(llmd_api_t api, const char *body, size_t len,
    const llmd_alloc_t *a, llmd_body_t *b, char *err, size_t errlen)
{
    int                  rc;
    u_char_c            *p, *e, *root, *rend, *f[LLMD_F_N];
    u_char_c            *plain[LLMD_F_N];
    const char          *s;
    size_t               n;
    llmd_prompt_sink_t   sink;

    b->model = "";
    b->model_len = 0;
    b->cache_salt = NULL;
    b->cache_salt_len = 0;
    b->stream = 0;
    b->tools = 0;
    b->add_generation_prompt = 0;
    b->has_prompt = 0;
    b->prompt_string = 0;
    b->prompt_len = 0;
    b->nhashes = 0;
    b->chat_kwargs = 0;
    b->msgs_plain = 0;
    b->nmsgs = 0;

    if (errlen) {
        err[0] = '\0';
    }

    if (body == NULL || len == 0) {
        snprintf(err, errlen, "request body is not valid JSON");
        return -1;
    }

    memset(f, 0, sizeof(f));
    memset(plain, 0, sizeof(plain));

    p = (u_char_c *) body;
    e = p + len;

    rc = llmd_scan_json(p, e, llmd_request_json_budget(len), f, plain,
                        &root, &rend);

    if (rc == LLMD_SCAN_OVER) {
        snprintf(err, errlen, "request body too complex to hash, scheduled "
                 "on load alone");
        return 0;
    }

    if (rc != LLMD_SCAN_OK) {
        snprintf(err, errlen, "request body is not valid JSON");
        return -1;
    }

    for (p = rend; p < e; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            snprintf(err, errlen, "request body is not valid JSON");
            return -1;
        }
    }

    if (*root != '{') {
        snprintf(err, errlen, "request body must be a JSON object");
        return -1;
    }

    if (!llmd_is_null(f[LLMD_F_MODEL])) {
        if (!llmd_is_string(f[LLMD_F_MODEL])) {
            snprintf(err, errlen, "model must be a string");
            return -1;
        }

        if (llmd_str_get(f[LLMD_F_MODEL], a, &b->model, &b->model_len)
            != 0)
        {
            goto nomem;
        }
    }

    if (!llmd_is_null(f[LLMD_F_SALT])) {
        if (!llmd_is_string(f[LLMD_F_SALT])) {
            snprintf(err, errlen, "cache_salt must be a string");
            return -1;
        }

        if (llmd_str_get(f[LLMD_F_SALT], a, &s, &n) != 0) {
            goto nomem;
        }

        if (n) {
            b->cache_salt = s;
            b->cache_salt_len = n;
        }
    }

    b->stream = f[LLMD_F_STREAM] != NULL && *f[LLMD_F_STREAM] == 't';

    switch (api) {

    case LLMD_API_COMPLETIONS:
        llmd_body_sink(&sink, b);
        rc = llmd_completions(&sink, f[LLMD_F_PROMPT], plain[LLMD_F_PROMPT],
                              a, b, err, errlen);
        break;

    case LLMD_API_CHAT:
        if (!llmd_is_array(f[LLMD_F_MESSAGES])
            || llmd_arr_first(f[LLMD_F_MESSAGES]) == NULL)
        {
            snprintf(err, errlen,
                     "messages must be a non-empty list of chat messages");
            return -1;
        }

        b->tools = !llmd_is_null(f[LLMD_F_TOOLS]);
        b->add_generation_prompt = f[LLMD_F_AGP] == NULL
                                   || *f[LLMD_F_AGP] != 'f';

        b->chat_kwargs = llmd_is_object(f[LLMD_F_KWARGS]);

        llmd_body_sink(&sink, b);
        rc = llmd_chat(&sink, f[LLMD_F_MESSAGES], err, errlen);
        b->has_prompt = (rc == 0);

        if (rc == 0 && b->msgs != NULL && !b->chat_kwargs) {
            llmd_chat_msgs(f[LLMD_F_MESSAGES], b);
        }

        break;

    default:
        return 0;
    }

    if (rc != 0) {
        b->has_prompt = 0;
        return -1;
    }

    b->prompt_len = sink.n;
    b->nhashes = sink.nh;

    return 0;

nomem:

    snprintf(err, errlen, "out of memory");
    return -1;
}


/* ---- pass 1: validation as cJSON parses ---- */


#define llmd_cjson_alloc(size)                                              \
    do {                                                                    \
        used += (size);                                                     \
        if (used > budget) {                                                \
            return LLMD_SCAN_OVER;                                          \
        }                                                                   \
    } while (0)


/*
 * plain[k]: when the top-level member k is a string without a '\', the end
 * of its C string, its first NUL or its closing quote (pass 2 then reads it
 * without searching again)
 */
static int
llmd_scan_json(u_char_c *p, u_char_c *e, size_t budget, u_char_c **fields,
    u_char_c **plain, u_char_c **root, u_char_c **rend)
{
    int            rc, fid, vf;
    size_t         used, depth, n, k;
    u_char_c      *q, *cend;
    unsigned char  close, stack[CJSON_NESTING_LIMIT];

    used = 0;
    depth = 0;
    fid = -1;

    /* the root item */
    llmd_cjson_alloc(sizeof(cJSON));

    if (e - p >= 5 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
        p += 3;
    }

    p = llmd_ws(p, e);
    *root = p;

value:

    if (p >= e) {
        return LLMD_SCAN_INVALID;
    }

    vf = fid;

    if (fid >= 0) {
        fields[fid] = p;
        plain[fid] = NULL;
        fid = -1;
    }

    switch (*p) {

    case 'n':
        if (e - p >= 4 && memcmp(p, "null", 4) == 0) {
            p += 4;
            goto next;
        }

        return LLMD_SCAN_INVALID;

    case 't':
        if (e - p >= 4 && memcmp(p, "true", 4) == 0) {
            p += 4;
            goto next;
        }

        return LLMD_SCAN_INVALID;

    case 'f':
        if (e - p >= 5 && memcmp(p, "false", 5) == 0) {
            p += 5;
            goto next;
        }

        return LLMD_SCAN_INVALID;

    case '"':
        rc = llmd_scan_string(&p, e, &used, budget, &cend);
        if (rc != LLMD_SCAN_OK) {
            return rc;
        }

        if (vf >= 0) {
            plain[vf] = cend;
        }

        goto next;

    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        for (n = 0; p + n < e && llmd_is_num(p[n]); n++) {
            /* void */
        }

        /* Debian's cJSON copies the number for strtod (CVE-2023-26819) */
        llmd_cjson_alloc(n + 1);

        k = llmd_num_prefix(p, n);
        if (k == 0) {
            return LLMD_SCAN_INVALID;
        }

        /* k < n leaves a number byte where a separator must be */
        p += k;
        goto next;

    case '[':
    case '{':
        if (depth >= CJSON_NESTING_LIMIT) {
            return LLMD_SCAN_INVALID;
        }

        stack[depth++] = *p;
        close = (*p == '[') ? ']' : '}';

        q = ++p;
        p = llmd_ws(p, e);

        if (p < e && *p == close) {
            p++;
            depth--;
            goto next;
        }

        /*
         * cJSON allocates the first element's item unless the bracket is
         * the last byte: blanks up to the end still cost an item (its
         * blank skipping stops on the last byte), then fail
         */
        if (q >= e) {
            return LLMD_SCAN_INVALID;
        }

        llmd_cjson_alloc(sizeof(cJSON));

        if (p >= e) {
            return LLMD_SCAN_INVALID;
        }

        if (close == ']') {
            goto value;
        }

        goto key;

    default:
        return LLMD_SCAN_INVALID;
    }

key:

    /* p < e, at the member's first byte */
    if (*p != '"') {
        return LLMD_SCAN_INVALID;
    }

    q = p;

    rc = llmd_scan_string(&p, e, &used, budget, &cend);
    if (rc != LLMD_SCAN_OK) {
        return rc;
    }

    if (depth == 1) {
        for (k = 0; k < LLMD_F_N; k++) {
            if (llmd_key_is(q + 1, p - 1, llmd_top_names[k])) {
                fid = (int) k;
                break;
            }
        }
    }

    p = llmd_ws(p, e);

    if (p >= e || *p != ':') {
        return LLMD_SCAN_INVALID;
    }

    p = llmd_ws(p + 1, e);
    goto value;

next:

    if (depth == 0) {
        *rend = p;
        return LLMD_SCAN_OK;
    }

    p = llmd_ws(p, e);

    if (p >= e) {
        return LLMD_SCAN_INVALID;
    }

    close = (stack[depth - 1] == '[') ? ']' : '}';

    if (*p == ',') {
        /* the next element's item */
        llmd_cjson_alloc(sizeof(cJSON));

        if (close == ']') {
            p = llmd_ws(p + 1, e);
            goto value;
        }

        /* nothing after the comma (CVE-2023-53154 fix) */
        if (e - p < 2) {
            return LLMD_SCAN_INVALID;
        }

        p = llmd_ws(p + 1, e);

        if (p >= e) {
            return LLMD_SCAN_INVALID;
        }

        goto key;
    }

    if (*p == close) {
        p++;
        depth--;
        goto next;
    }

    return LLMD_SCAN_INVALID;
}


/*
 * A string at *pp ('"'): its end as cJSON finds it (every '\' skips the
 * next byte), its allocation, then its escapes by cJSON's decoding steps.
 * *pp moves past the closing quote; *cend is the end of its C string (the
 * first NUL or the closing quote) when it holds no '\', NULL otherwise.
 *
 * One pass finds the end, the first NUL and the escapes together
 * (llmd_str_find()).  cJSON decodes the escapes from the start again, and
 * its steps (2, 6 or 12 bytes) need not fall where the end scan's 2-byte
 * skips do; they do while every escape is whole (llmd_esc_whole(): its
 * bytes hold no '"' and no '\' but the second of a surrogate pair), so
 * those are checked where the end scan meets them; from the first other
 * '\' on, the escapes are decoded as cJSON does, after the allocation.
 */
static int
llmd_scan_string(u_char_c **pp, u_char_c *e, size_t *pused, size_t budget,
    u_char_c **cend)
{
    size_t     skipped, n, used;
    u_char_c  *p, *q, *h, *nul, *slow, *bs;

    p = *pp;
    q = p + 1;
    skipped = 0;
    nul = NULL;
    slow = NULL;

    for ( ;; ) {
        h = llmd_str_find(q, e);

        if (h == e) {
            return LLMD_SCAN_INVALID;
        }

        if (*h == '"') {
            break;
        }

        if (*h == '\0') {
            if (nul == NULL) {
                nul = h;
            }

            q = h + 1;
            continue;
        }

        /* a '\' the end scan stops at */

        if (e - h < 2) {
            return LLMD_SCAN_INVALID;
        }

        skipped++;
        n = (slow == NULL) ? llmd_esc_whole(h, e) : 0;

        if (n == 0) {
            if (slow == NULL) {
                slow = h;
            }

            q = h + 2;
            continue;
        }

        /* a surrogate pair's second '\' is one the end scan stops at */
        skipped += (n == 12);
        q = h + n;
    }

    used = *pused;
    llmd_cjson_alloc((size_t) (h - p) - skipped + 1);
    *pused = used;

    *cend = skipped ? NULL : (nul ? nul : h);

    q = slow;

    while (q != NULL && q < h) {
        bs = memchr(q, '\\', h - q);
        if (bs == NULL) {
            break;
        }

        n = llmd_esc_len(bs, h);
        if (n == 0) {
            return LLMD_SCAN_INVALID;
        }

        q = bs + n;
    }

    *pp = h + 1;

    return LLMD_SCAN_OK;
}


/*
 * The length of the escape at s ('\', s + 1 < e) when it is valid and
 * whole: what llmd_esc_len() accepts, with hex digits where it reads a
 * \u escape's four (cJSON decodes any four bytes there; whole escapes
 * are checked where the search meets them, anything else by cJSON's
 * stepping); 0 for anything else.
 */
static size_t
llmd_esc_whole(u_char_c *s, u_char_c *e)
{
    size_t  i, n;

    n = llmd_esc_len(s, e);

    /* 6: \uXXXX; 12: a surrogate pair, with "\u" at 6 and 7 */
    for (i = 2; i < n; i++) {
        if (i != 6 && i != 7 && !llmd_is_hex(s[i])) {
            return 0;
        }
    }

    return n;
}


/* How many bytes of s[0..n) (number bytes) glibc's strtod reads. */
static size_t
llmd_num_prefix(u_char_c *s, size_t n)
{
    size_t  i, j, d1, d2;

    i = 0;

    if (i < n && s[i] == '-') {
        i++;
    }

    for (d1 = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++, d1++) {
        /* void */
    }

    d2 = 0;

    if (i < n && s[i] == '.') {
        for (j = i + 1; j < n && s[j] >= '0' && s[j] <= '9'; j++, d2++) {
            /* void */
        }

        if (d1 + d2 == 0) {
            return 0;
        }

        i = j;

    } else if (d1 == 0) {
        return 0;
    }

    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        j = i + 1;

        if (j < n && (s[j] == '+' || s[j] == '-')) {
            j++;
        }

        if (j < n && s[j] >= '0' && s[j] <= '9') {
            while (j < n && s[j] >= '0' && s[j] <= '9') {
                j++;
            }

            i = j;
        }
    }

    return i;
}


/* cJSON's parse_hex4: any non-hex digit makes the whole value 0 */
static unsigned
llmd_hex4(u_char_c *s)
{
    unsigned  h, i, c;

    h = 0;

    for (i = 0; i < 4; i++) {
        c = s[i];

        if (c >= '0' && c <= '9') {
            h = (h << 4) | (c - '0');

        } else if (c >= 'A' && c <= 'F') {
            h = (h << 4) | (c - 'A' + 10);

        } else if (c >= 'a' && c <= 'f') {
            h = (h << 4) | (c - 'a' + 10);

        } else {
            return 0;
        }
    }

    return h;
}


/*
 * The length of the escape at s ('\') before the closing quote at close,
 * or 0 when cJSON fails on it.  s[1] may be the closing quote itself (when
 * a \u escape with non-hex digits swallowed a '\').
 */
static size_t
llmd_esc_len(u_char_c *s, u_char_c *close)
{
    unsigned  c1, c2;

    switch (s[1]) {
    case 'b': case 'f': case 'n': case 'r': case 't':
    case '"': case '\\': case '/':
        return 2;

    case 'u':
        if (close - s < 6) {
            return 0;
        }

        c1 = llmd_hex4(s + 2);

        if (c1 >= 0xdc00 && c1 <= 0xdfff) {
            return 0;
        }

        if (c1 < 0xd800 || c1 > 0xdbff) {
            return 6;
        }

        if (close - (s + 6) < 6 || s[6] != '\\' || s[7] != 'u') {
            return 0;
        }

        c2 = llmd_hex4(s + 8);

        if (c2 < 0xdc00 || c2 > 0xdfff) {
            return 0;
        }

        return 12;

    default:
        return 0;
    }
}


/* A valid escape (llmd_esc_len() != 0) -> its UTF-8 bytes in out. */
static size_t
llmd_esc_decode(u_char_c *s, u_char_c *close, unsigned char *out,
    size_t *adv)
{
    unsigned long  cp;

    *adv = 2;

    switch (s[1]) {
    case 'b':
        out[0] = '\b';
        return 1;
    case 'f':
        out[0] = '\f';
        return 1;
    case 'n':
        out[0] = '\n';
        return 1;
    case 'r':
        out[0] = '\r';
        return 1;
    case 't':
        out[0] = '\t';
        return 1;
    case 'u':
        break;
    default:
        out[0] = s[1];
        return 1;
    }

    cp = llmd_hex4(s + 2);
    *adv = 6;

    if (cp >= 0xd800 && cp <= 0xdbff) {
        cp = 0x10000 + (((cp & 0x3ff) << 10) | (llmd_hex4(s + 8) & 0x3ff));
        *adv = 12;
    }

    if (cp < 0x80) {
        out[0] = (unsigned char) cp;
        return 1;
    }

    if (cp < 0x800) {
        out[0] = (unsigned char) (0xc0 | (cp >> 6));
        out[1] = (unsigned char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        out[0] = (unsigned char) (0xe0 | (cp >> 12));
        out[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        out[2] = (unsigned char) (0x80 | (cp & 0x3f));
        return 3;
    }

    out[0] = (unsigned char) (0xf0 | (cp >> 18));
    out[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
    out[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
    out[3] = (unsigned char) (0x80 | (cp & 0x3f));
    return 4;
}


/*
 * Whether the key q..close (raw, between the quotes), decoded and cut at
 * its first NUL as cJSON's C string is, equals name.
 */
static int
llmd_key_is(u_char_c *q, u_char_c *close, const char *name)
{
    size_t         n, adv, i;
    unsigned char  out[4];

    while (q < close) {
        if (*q != '\\') {
            if (*q == '\0') {
                return *name == '\0';
            }

            if (*q != (unsigned char) *name) {
                return 0;
            }

            name++;
            q++;
            continue;
        }

        n = llmd_esc_decode(q, close, out, &adv);

        for (i = 0; i < n; i++) {
            if (out[i] == '\0') {
                return *name == '\0';
            }

            if (out[i] != (unsigned char) *name) {
                return 0;
            }

            name++;
        }

        q += adv;
    }

    return *name == '\0';
}


/* ---- pass 2: reading the valid body ---- */


/* The closing quote of the string at p, as cJSON's end scan finds it. */
static u_char_c *
llmd_str_close(u_char_c *p)
{
    u_char_c  *q, *quote, *bs;

    q = p + 1;
    quote = NULL;

    for ( ;; ) {
        if (quote == NULL || quote < q) {
            quote = (u_char_c *) strchr((const char *) q, '"');
            /* the body is valid: a quote follows; strchr is not bounded by
               a length but stops at the first NUL byte, so search on */
            while (quote == NULL) {
                q += strlen((const char *) q) + 1;
                quote = (u_char_c *) strchr((const char *) q, '"');
            }
        }

        bs = memchr(q, '\\', quote - q);
        if (bs == NULL) {
            return quote;
        }

        q = bs + 2;
    }
}


/* Past the value at p (valid JSON). */
static u_char_c *
llmd_skip_value(u_char_c *p)
{
    size_t  depth;

    switch (*p) {

    case '"':
        return llmd_str_close(p) + 1;

    case '[':
    case '{':
        depth = 0;

        for ( ;; ) {
            switch (*p) {
            case '"':
                p = llmd_str_close(p) + 1;
                continue;
            case '[':
            case '{':
                depth++;
                break;
            case ']':
            case '}':
                if (--depth == 0) {
                    return p + 1;
                }
                break;
            }

            p++;
        }

    case 'n':
    case 't':
        return p + 4;

    case 'f':
        return p + 5;

    default:
        while (llmd_is_num(*p)) {
            p++;
        }

        return p;
    }
}


static u_char_c *
llmd_vws(u_char_c *p)
{
    while (llmd_is_ws(*p)) {
        p++;
    }

    return p;
}


/* The first element of the array at p, NULL if it is empty. */
static u_char_c *
llmd_arr_first(u_char_c *p)
{
    p = llmd_vws(p + 1);
    return *p == ']' ? NULL : p;
}


/* The element after the one at v, NULL after the last. */
static u_char_c *
llmd_arr_next(u_char_c *v)
{
    v = llmd_vws(llmd_skip_value(v));
    return *v == ',' ? llmd_vws(v + 1) : NULL;
}


/* The values of the object at p's members named names[] (the last of
   duplicates; NULL when absent). */
static void
llmd_members(u_char_c *p, const char **names, size_t n, u_char_c **vals)
{
    size_t     i;
    u_char_c  *q, *close;

    for (i = 0; i < n; i++) {
        vals[i] = NULL;
    }

    p = llmd_vws(p + 1);

    if (*p == '}') {
        return;
    }

    for ( ;; ) {
        q = p;
        close = llmd_str_close(q);
        p = llmd_vws(llmd_vws(close + 1) + 1);

        for (i = 0; i < n; i++) {
            if (llmd_key_is(q + 1, close, names[i])) {
                vals[i] = p;
                break;
            }
        }

        p = llmd_vws(llmd_skip_value(p));

        if (*p != ',') {
            return;
        }

        p = llmd_vws(p + 1);
    }
}


/*
 * The string at p, decoded and cut at its first NUL, into the sink: raw
 * (go == 0) or as Go's encoding/json writes its contents (go == 1).  The
 * raw runs and the bytes of each escape go out separately: a UTF-8
 * sequence never spans both (an escape's first byte is never a
 * continuation byte and its bytes are a complete sequence), so Go's
 * validity rules give the same as over the whole decoded string.
 */
static void
llmd_str_emit(llmd_prompt_sink_t *s, u_char_c *p, int go)
{
    size_t          n, adv;
    u_char_c       *q, *close, *h, *run;
    unsigned char   out[4];

    if (!s->active) {
        return;
    }

    close = llmd_str_close(p);
    q = p + 1;

    while (q < close && s->active) {
        run = q;

        /*
         * the raw bytes up to a '\' or a NUL; a '"' before the close is
         * raw here (a \u escape with non-hex digits ended on the '\'
         * that skipped it)
         */
        for ( ;; ) {
            h = llmd_str_find(q, close);

            if (h == close || *h != '"') {
                break;
            }

            q = h + 1;
        }

        if (go) {
            llmd_go_emit(s, run, h - run);

        } else {
            llmd_prompt_sink_write(s, run, h - run);
        }

        if (h == close || *h == '\0') {
            return;
        }

        n = llmd_esc_decode(h, close, out, &adv);

        if (out[0] == '\0') {
            return;
        }

        if (go) {
            llmd_go_emit(s, out, n);

        } else {
            llmd_prompt_sink_write(s, out, n);
        }

        q = h + adv;
    }
}


/*
 * llmd_str_emit(s, p, 0) for a string known from pass 1 to hold no '\',
 * its C string ending at cend: no search.
 */
static void
llmd_str_emit_plain(llmd_prompt_sink_t *s, u_char_c *p, u_char_c *cend)
{
    if (!s->active) {
        return;
    }

    llmd_prompt_sink_write(s, p + 1, cend - (p + 1));
}


/* Whether the string at p is empty as a C string. */
static int
llmd_str_empty(u_char_c *p)
{
    size_t         adv;
    unsigned char  out[4];

    if (p[1] == '"' || p[1] == '\0') {
        return 1;
    }

    if (p[1] != '\\') {
        return 0;
    }

    (void) llmd_esc_decode(p + 1, llmd_str_close(p), out, &adv);

    return out[0] == '\0';
}


/* The string at p as a C string: in place, or decoded into memory of a. */
static int
llmd_str_get(u_char_c *p, const llmd_alloc_t *a, const char **str,
    size_t *len)
{
    u_char_c            *close, *z;
    unsigned char       *copy;
    llmd_prompt_sink_t   s;

    close = llmd_str_close(p);

    /* no '"' comes before the first '\' */
    z = llmd_str_find(p + 1, close);

    if (z == close || *z == '\0') {
        *str = (const char *) p + 1;
        *len = z - (p + 1);
        return 0;
    }

    copy = a->alloc(a->ctx, close - p);
    if (copy == NULL) {
        return -1;
    }

    llmd_prompt_sink_start(&s, copy, close - p, 1);

    llmd_str_emit(&s, p, 0);

    *str = (const char *) s.copy;
    *len = s.n;
    return 0;
}


/* The value of the number at p, as cJSON's strtod gives it. */
static int
llmd_num_value(u_char_c *p, const llmd_alloc_t *a, double *d)
{
    char      buf[64], *c;
    size_t    n, i;
    uint64_t  v;

    for (n = 0; llmd_is_num(p[n]); n++) {
        /* void */
    }

    if (n <= 15) {
        v = 0;

        for (i = 0; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
            v = v * 10 + (p[i] - '0');
        }

        if (i == n) {
            *d = (double) v;
            return 0;
        }
    }

    c = buf;

    if (n >= sizeof(buf)) {
        c = a->alloc(a->ctx, n + 1);
        if (c == NULL) {
            return -1;
        }
    }

    memcpy(c, p, n);
    c[n] = '\0';
    *d = strtod(c, NULL);

    return 0;
}


/* ---- the prompt bytes ---- */

/* A sink for the prompt as b asks for it (llmd_body_t's "in" fields). */
static void
llmd_body_sink(llmd_prompt_sink_t *s, const llmd_body_t *b)
{
    llmd_prompt_sink_start(s, b->copy, b->copy_cap, b->exact_len);
    llmd_prompt_sink_hash(s, b->model, b->model_len, b->cache_salt,
                          b->cache_salt_len, b->block_size, b->max_blocks,
                          b->hashes);
}


/* What Go's encoding/json.Marshal writes for these string bytes (the
   cJSON path writes the same, llmd_go_json.c). */
static void
llmd_go_emit(llmd_prompt_sink_t *s, u_char_c *p, size_t len)
{
    llmd_go_json_escape(p, len, llmd_prompt_sink_write_pt, s);
}


static int
llmd_completions(llmd_prompt_sink_t *s, u_char_c *prompt, u_char_c *plain,
    const llmd_alloc_t *a, llmd_body_t *b, char *err, size_t errlen)
{
    int            nested, first;
    double         d;
    uint32_t       id;
    u_char_c      *c, *t;
    unsigned char  le[4];

    if (llmd_is_null(prompt)) {
        snprintf(err, errlen, "prompt not found in request body");
        return -1;
    }

    if (llmd_is_string(prompt)) {
        if (plain != NULL) {
            llmd_str_emit_plain(s, prompt, plain);

        } else {
            llmd_str_emit(s, prompt, 0);
        }

        b->has_prompt = 1;
        b->prompt_string = 1;
        return 0;
    }

    if (!llmd_is_array(prompt) || (c = llmd_arr_first(prompt)) == NULL) {
        goto invalid;
    }

    if (llmd_is_string(c)) {

        /* a list of strings, joined with single spaces */

        for (first = 1; c != NULL; c = llmd_arr_next(c), first = 0) {
            if (!llmd_is_string(c)) {
                goto invalid;
            }

            if (s->active && !first) {
                llmd_prompt_sink_write(s, " ", 1);
            }

            llmd_str_emit(s, c, 0);
        }

        b->has_prompt = 1;
        return 0;
    }

    /* token ids, [int] or [[int]] */

    nested = llmd_is_array(c);

    for ( /* void */ ; c != NULL; c = llmd_arr_next(c)) {

        if (nested) {
            if (!llmd_is_array(c)) {
                goto invalid;
            }

            t = llmd_arr_first(c);

        } else {
            t = c;
        }

        for ( /* void */ ; t != NULL; t = nested ? llmd_arr_next(t) : NULL) {
            if (!llmd_is_number(t)) {
                goto invalid;
            }

            if (llmd_num_value(t, a, &d) != 0) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }

            if (!(d >= 0.0 && d <= 4294967295.0)) {
                goto invalid;
            }

            id = (uint32_t) d;

            if ((double) id != d) {
                goto invalid;
            }

            if (s->active) {
                le[0] = (unsigned char) id;
                le[1] = (unsigned char) (id >> 8);
                le[2] = (unsigned char) (id >> 16);
                le[3] = (unsigned char) (id >> 24);

                llmd_prompt_sink_write(s, le, 4);
            }
        }
    }

    b->has_prompt = 1;
    return 0;

invalid:

    snprintf(err, errlen,
             "prompt must be a string, a list of strings or token ids");
    return -1;
}


static int
llmd_chat(llmd_prompt_sink_t *s, u_char_c *messages, char *err,
    size_t errlen)
{
    int           first;
    u_char_c     *m, *v[2];
    static const char  *names[2] = { "role", "content" };

    llmd_prompt_sink_write(s, "[", 1);

    first = 1;

    for (m = llmd_arr_first(messages); m != NULL;
         m = llmd_arr_next(m), first = 0)
    {
        if (!first && s->active) {
            llmd_prompt_sink_write(s, ",", 1);
        }

        if (llmd_is_null(m)) {
            if (s->active) {
                llmd_prompt_sink_write(s, "{\"content\":\"\"}", 14);
            }

            continue;
        }

        if (!llmd_is_object(m)) {
            snprintf(err, errlen, "each chat message must be an object");
            return -1;
        }

        llmd_members(m, names, 2, v);

        if (!llmd_is_null(v[0]) && !llmd_is_string(v[0])) {
            snprintf(err, errlen, "chat message role must be a string");
            return -1;
        }

        if (s->active) {
            llmd_prompt_sink_write(s, "{", 1);

            if (!llmd_is_null(v[0]) && !llmd_str_empty(v[0])) {
                llmd_prompt_sink_write(s, "\"role\":\"", 8);
                llmd_str_emit(s, v[0], 1);
                llmd_prompt_sink_write(s, "\",", 2);
            }

            llmd_prompt_sink_write(s, "\"content\":", 10);
        }

        if (llmd_chat_content(s, v[1]) != 0) {
            snprintf(err, errlen, "chat message content must be a string "
                     "or a list of content parts");
            return -1;
        }

        if (s->active) {
            llmd_prompt_sink_write(s, "}", 1);
        }
    }

    if (s->active) {
        llmd_prompt_sink_write(s, "]", 1);
    }

    return 0;
}


static int
llmd_chat_content(llmd_prompt_sink_t *s, u_char_c *content)
{
    int           first;
    u_char_c     *c, *v[3], *url;
    static const char  *names[3] = { "type", "text", "image_url" };
    static const char  *url_name[1] = { "url" };

    if (llmd_is_null(content)) {
        if (s->active) {
            llmd_prompt_sink_write(s, "\"\"", 2);
        }

        return 0;
    }

    if (llmd_is_string(content)) {
        if (s->active) {
            llmd_prompt_sink_write(s, "\"", 1);
            llmd_str_emit(s, content, 1);
            llmd_prompt_sink_write(s, "\"", 1);
        }

        return 0;
    }

    if (!llmd_is_array(content)) {
        return -1;
    }

    if (s->active) {
        llmd_prompt_sink_write(s, "[", 1);
    }

    first = 1;

    for (c = llmd_arr_first(content); c != NULL;
         c = llmd_arr_next(c), first = 0)
    {
        if (!first && s->active) {
            llmd_prompt_sink_write(s, ",", 1);
        }

        v[0] = NULL;
        v[1] = NULL;
        url = NULL;

        if (!llmd_is_null(c)) {
            if (!llmd_is_object(c)) {
                return -1;
            }

            llmd_members(c, names, 3, v);

            if ((!llmd_is_null(v[0]) && !llmd_is_string(v[0]))
                || (!llmd_is_null(v[1]) && !llmd_is_string(v[1])))
            {
                return -1;
            }

            if (!llmd_is_null(v[2])) {
                if (!llmd_is_object(v[2])) {
                    return -1;
                }

                llmd_members(v[2], url_name, 1, &url);

                if (!llmd_is_null(url) && !llmd_is_string(url)) {
                    return -1;
                }
            }

            if (llmd_is_null(v[0])) {
                v[0] = NULL;
            }

            if (llmd_is_null(v[1])) {
                v[1] = NULL;
            }

            if (llmd_is_null(url)) {
                url = NULL;
            }
        }

        if (!s->active) {
            continue;
        }

        llmd_prompt_sink_write(s, "{\"type\":\"", 9);

        if (v[0] != NULL) {
            llmd_str_emit(s, v[0], 1);
        }

        llmd_prompt_sink_write(s, "\"", 1);

        if (v[1] != NULL && !llmd_str_empty(v[1])) {
            llmd_prompt_sink_write(s, ",\"text\":\"", 9);
            llmd_str_emit(s, v[1], 1);
            llmd_prompt_sink_write(s, "\"", 1);
        }

        llmd_prompt_sink_write(s, ",\"image_url\":{", 14);

        if (url != NULL && !llmd_str_empty(url)) {
            llmd_prompt_sink_write(s, "\"url\":\"", 7);
            llmd_str_emit(s, url, 1);
            llmd_prompt_sink_write(s, "\"", 1);
        }

        llmd_prompt_sink_write(s, "}}", 2);
    }

    if (s->active) {
        llmd_prompt_sink_write(s, "]", 1);
    }

    return 0;
}


/*
 * The messages as the chat template reads them from cJSON's tree, when
 * every one is an object of exactly a string "role" and a string "content"
 * (keys compared decoded and cut at a NUL, as cJSON's strcmp sees them):
 * each decoded as llmd_str_emit() decodes a string prompt (held to cJSON's
 * valuestring).  Anything else leaves msgs_plain 0.
 */
static void
llmd_chat_msgs(u_char_c *messages, llmd_body_t *b)
{
    size_t      n, used, k;
    u_char_c   *m, *p, *q, *close, *v[2];

    n = 0;
    used = 0;

    for (m = llmd_arr_first(messages); m != NULL; m = llmd_arr_next(m)) {

        if (!llmd_is_object(m) || n == b->msgs_cap) {
            return;
        }

        v[0] = NULL;
        v[1] = NULL;

        p = llmd_vws(m + 1);

        while (*p != '}') {
            q = p;
            close = llmd_str_close(q);
            p = llmd_vws(llmd_vws(close + 1) + 1);

            if (llmd_key_is(q + 1, close, "role")) {
                k = 0;

            } else if (llmd_key_is(q + 1, close, "content")) {
                k = 1;

            } else {
                return;
            }

            if (v[k] != NULL || !llmd_is_string(p)) {
                return;
            }

            v[k] = p;

            p = llmd_vws(llmd_skip_value(p));

            if (*p == ',') {
                p = llmd_vws(p + 1);
            }
        }

        if (v[0] == NULL || v[1] == NULL) {
            return;
        }

        b->msgs[n].role = llmd_msg_str(v[0], b, &used);
        b->msgs[n].content = llmd_msg_str(v[1], b, &used);

        if (b->msgs[n].role == NULL || b->msgs[n].content == NULL) {
            return;
        }

        n++;
    }

    b->nmsgs = n;
    b->msgs_plain = 1;
}


/*
 * A C string Go-escaped into the sink, read only as far as the hashed
 * bytes can reach: each input byte is written as one byte or more, so the
 * first need - s->n input bytes give all the output still hashed, and the
 * 4 bytes after them complete any UTF-8 sequence starting before (its
 * escape depends only on its own bytes); what a cut there changes is
 * written after the last hashed byte.
 */
static void
llmd_chat_hash_str(llmd_prompt_sink_t *s, const char *str, size_t need)
{
    size_t  left;

    left = need > s->n ? need - s->n : 0;

    llmd_go_emit(s, (u_char_c *) str, strnlen(str, left + 4));
}


/*
 * llmd_chat()'s bytes for plain messages (each a string role and content,
 * decoded and cut at their first NUL): an empty role is left out as
 * llmd_str_empty() leaves it out, and Go's escaping of a decoded string
 * is the same as of its raw runs and escapes one after the other (see
 * llmd_str_emit()).
 */
size_t
llmd_body_chat_hashes(const char *model, size_t model_len, const char *salt,
    size_t salt_len, const llmd_request_msg_t *msgs, size_t nmsgs,
    uint32_t block_size, uint32_t max_blocks, uint64_t *out)
{
    size_t               i, need;
    llmd_prompt_sink_t   s;

    llmd_prompt_sink_start(&s, NULL, 0, 0);
    llmd_prompt_sink_hash(&s, model, model_len, salt, salt_len, block_size,
                          max_blocks, out);

    /* the serialisation's bytes that are hashed */
    need = (size_t) block_size * max_blocks;

    llmd_prompt_sink_write(&s, "[", 1);

    for (i = 0; i < nmsgs && s.active; i++) {
        if (i) {
            llmd_prompt_sink_write(&s, ",", 1);
        }

        llmd_prompt_sink_write(&s, "{", 1);

        if (msgs[i].role[0] != '\0') {
            llmd_prompt_sink_write(&s, "\"role\":\"", 8);
            llmd_chat_hash_str(&s, msgs[i].role, need);
            llmd_prompt_sink_write(&s, "\",", 2);
        }

        llmd_prompt_sink_write(&s, "\"content\":\"", 11);
        llmd_chat_hash_str(&s, msgs[i].content, need);
        llmd_prompt_sink_write(&s, "\"}", 2);
    }

    if (s.active) {
        llmd_prompt_sink_write(&s, "]", 1);
    }

    return s.nh;
}


/* The string at p, decoded, cut at its first NUL and NUL-terminated, at
   msg_text + *used; NULL when it does not fit. */
static const char *
llmd_msg_str(u_char_c *p, llmd_body_t *b, size_t *used)
{
    llmd_prompt_sink_t  s;

    if (*used >= b->msg_text_cap) {
        return NULL;
    }

    llmd_prompt_sink_start(&s, b->msg_text + *used,
                           b->msg_text_cap - *used, 1);

    llmd_str_emit(&s, p, 0);

    if (s.n >= s.cap) {
        return NULL;
    }

    s.copy[s.n] = '\0';
    *used += s.n + 1;

    return (const char *) s.copy;
}
