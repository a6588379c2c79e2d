/*
 * Compiling the pre-tokenizer's split regex with PCRE2.  tokenizer.json
 * patterns are written for Oniguruma; they are rewritten so that PCRE2
 * matches what the JavaScript reference (@lenml/tokenizers, RegExp with the
 * "u" flag) matches:
 *   - the contraction group "(?i:'s|'t|...)" becomes the explicit
 *     [sS]... classes the reference uses;
 *   - \s and \S become the ECMAScript white space set (which includes
 *     U+FEFF and excludes U+0085, unlike Oniguruma's Unicode White_Space);
 *   - no PCRE2_UCP, so \d \w \b stay ASCII as in ECMAScript.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/llmd_tokenizer_int.h"


#define LLMD_TOK_JS_SPACE                                                    \
    "\\t\\n\\x{0b}\\f\\r \\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}"       \
    "\\x{2029}\\x{202f}\\x{205f}\\x{3000}\\x{feff}"

#define LLMD_TOK_CONTRACTIONS      "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
#define LLMD_TOK_CONTRACTIONS_JS                                             \
    "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))"

/* Longest pattern accepted, after rewriting. */
#define LLMD_TOK_MAX_PATTERN  8192


/* The pattern of the JavaScript ByteLevel pre-tokenizer (use_regex). */
const char  llmd_tok_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+"
    "|\\s+(?!\\S)|\\s+";


int
llmd_tok_is_js_space(uint32_t c)
{
    switch (c) {
    case 0x09: case 0x0a: case 0x0b: case 0x0c: case 0x0d: case 0x20:
    case 0xa0: case 0x1680: case 0x2028: case 0x2029: case 0x202f:
    case 0x205f: case 0x3000: case 0xfeff:
        return 1;
    default:
        return c >= 0x2000 && c <= 0x200a;
    }
}


static int
llmd_tok_append(char *dst, size_t *n, size_t cap, const char *s, size_t len)
{
    if (*n + len >= cap) {
        return -1;
    }
    memcpy(dst + *n, s, len);
    *n += len;
    return 0;
}


static int
llmd_tok_rewrite(const char *src, char *dst, size_t cap, char *err,
    size_t errlen)
{
    size_t       n, clen;
    int          in_class, rc;
    const char  *p, *start;

    n = 0;
    in_class = 0;
    clen = sizeof(LLMD_TOK_CONTRACTIONS) - 1;
    rc = 0;

    for (p = src; *p != '\0' && rc == 0; p++) {
        if (!in_class && strncmp(p, LLMD_TOK_CONTRACTIONS, clen) == 0) {
            rc = llmd_tok_append(dst, &n, cap, LLMD_TOK_CONTRACTIONS_JS,
                                 sizeof(LLMD_TOK_CONTRACTIONS_JS) - 1);
            p += clen - 1;
            continue;
        }

        if (*p == '\\' && p[1] != '\0') {
            p++;
            if (*p == 's') {
                if (in_class) {
                    rc = llmd_tok_append(dst, &n, cap, LLMD_TOK_JS_SPACE,
                                         sizeof(LLMD_TOK_JS_SPACE) - 1);
                } else {
                    rc = llmd_tok_append(dst, &n, cap, "[", 1);
                    rc |= llmd_tok_append(dst, &n, cap, LLMD_TOK_JS_SPACE,
                                          sizeof(LLMD_TOK_JS_SPACE) - 1);
                    rc |= llmd_tok_append(dst, &n, cap, "]", 1);
                }
            } else if (*p == 'S') {
                if (in_class) {
                    snprintf(err, errlen, "\\S inside a character class "
                             "is not supported");
                    return -1;
                }
                rc = llmd_tok_append(dst, &n, cap, "[^", 2);
                rc |= llmd_tok_append(dst, &n, cap, LLMD_TOK_JS_SPACE,
                                      sizeof(LLMD_TOK_JS_SPACE) - 1);
                rc |= llmd_tok_append(dst, &n, cap, "]", 1);
            } else {
                rc = llmd_tok_append(dst, &n, cap, p - 1, 2);
            }
            continue;
        }

        if (!in_class && *p == '[') {
            /* A ']' right after "[" or "[^" is a literal member. */
            start = p;
            p++;
            if (*p == '^') {
                p++;
            }
            if (*p == ']') {
                p++;
            }
            rc = llmd_tok_append(dst, &n, cap, start, p - start);
            p--;
            in_class = 1;
            continue;
        }
        if (in_class && *p == ']') {
            in_class = 0;
        }
        rc = llmd_tok_append(dst, &n, cap, p, 1);
    }

    if (rc != 0) {
        snprintf(err, errlen, "split pattern too long");
        return -1;
    }
    dst[n] = '\0';
    return 0;
}


int
llmd_tok_compile_split(const char *pattern, int literal, pcre2_code **code,
    int *jit, char *err, size_t errlen)
{
    char        *buf;
    int          errcode;
    uint32_t     options;
    PCRE2_SIZE   erroff;
    const char  *src;
    char         msg[256];

    buf = NULL;
    options = PCRE2_UTF;
    if (literal) {
        options |= PCRE2_LITERAL;
        src = pattern;
    } else {
        buf = malloc(LLMD_TOK_MAX_PATTERN);
        if (buf == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (llmd_tok_rewrite(pattern, buf, LLMD_TOK_MAX_PATTERN, err, errlen)
            != 0)
        {
            free(buf);
            return -1;
        }
        src = buf;
    }

    *code = pcre2_compile((PCRE2_SPTR) src, PCRE2_ZERO_TERMINATED, options,
                          &errcode, &erroff, NULL);
    free(buf);
    if (*code == NULL) {
        pcre2_get_error_message(errcode, (PCRE2_UCHAR *) msg, sizeof(msg));
        snprintf(err, errlen, "split pattern does not compile at %zu: %s",
                 (size_t) erroff, msg);
        return -1;
    }

    /* Without JIT the interpreter is used; both honour the match limit. */
    *jit = pcre2_jit_compile(*code, PCRE2_JIT_COMPLETE) == 0;
    return 0;
}
