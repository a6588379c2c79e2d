/*
 * Text from token ids as Hugging Face's decode() gives it (lg_text.h).
 */
#include <string.h>

#include "lg_text.h"


static size_t lg_text_utf8_scan(const unsigned char *p, size_t n,
    int *valid);
static size_t lg_text_replace(char *s, size_t n, const char *from,
    const char *to);
static const char *lg_text_short_escape(unsigned long cp);
static size_t lg_text_u_escape(unsigned long u, char *out);


size_t
lg_text_utf8_lossy(const char *in, size_t n, char *out)
{
    const unsigned char  *p = (const unsigned char *) in;
    size_t                i = 0, o = 0, k;
    int                   valid;

    while (i < n) {
        k = lg_text_utf8_scan(p + i, n - i, &valid);
        if (valid) {
            memcpy(out + o, p + i, k);
            o += k;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
        }
        i += k;
    }
    return o;
}


size_t
lg_text_clean_up_spaces(char *s, size_t n)
{
    /* transformers applies these one after the other, in this order */
    static const char  *from[] = { " .", " ?", " !", " ,", " ' ", " n't",
                                   " 'm", " 's", " 've", " 're" };
    static const char  *to[] = { ".", "?", "!", ",", "'", "n't",
                                 "'m", "'s", "'ve", "'re" };
    size_t              i;

    for (i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
        n = lg_text_replace(s, n, from[i], to[i]);
    }
    return n;
}


size_t
lg_text_json_ascii(const char *s, size_t n, char *out)
{
    const unsigned char  *p = (const unsigned char *) s;
    size_t                i = 0, o = 0, k, j;
    unsigned long         cp;
    const char           *esc;
    int                   valid;

    out[o++] = '"';
    while (i < n) {
        k = lg_text_utf8_scan(p + i, n - i, &valid);
        cp = 0xfffd;
        if (valid) {
            cp = k == 1 ? p[i] : p[i] & (0x7f >> k);
            for (j = 1; j < k; j++) {
                cp = cp << 6 | (p[i + j] & 0x3f);
            }
        }
        i += k;
        esc = lg_text_short_escape(cp);
        if (esc != NULL) {
            out[o++] = '\\';
            out[o++] = *esc;
        } else if (cp >= 0x20 && cp < 0x7f) {
            out[o++] = (char) cp;
        } else if (cp > 0xffff) {
            cp -= 0x10000;
            o += lg_text_u_escape(0xd800 | (cp >> 10), out + o);
            o += lg_text_u_escape(0xdc00 | (cp & 0x3ff), out + o);
        } else {
            o += lg_text_u_escape(cp, out + o);
        }
    }
    out[o++] = '"';
    return o;
}


/* The letter after the backslash of Python's two-character escapes. */
static const char *
lg_text_short_escape(unsigned long cp)
{
    switch (cp) {
    case '"':
        return "\"";
    case '\\':
        return "\\";
    case '\n':
        return "n";
    case '\r':
        return "r";
    case '\t':
        return "t";
    case '\b':
        return "b";
    case '\f':
        return "f";
    default:
        return NULL;
    }
}


/* \uXXXX in lower-case hex, as Python writes it: 6 bytes. */
static size_t
lg_text_u_escape(unsigned long u, char *out)
{
    static const char  hex[] = "0123456789abcdef";

    out[0] = '\\';
    out[1] = 'u';
    out[2] = hex[(u >> 12) & 15];
    out[3] = hex[(u >> 8) & 15];
    out[4] = hex[(u >> 4) & 15];
    out[5] = hex[u & 15];
    return 6;
}


/*
 * The sequence at p: its length when valid (*valid = 1), else the length
 * of its maximal ill-formed subpart (at least 1), which one U+FFFD stands
 * for.
 */
static size_t
lg_text_utf8_scan(const unsigned char *p, size_t n, int *valid)
{
    unsigned char  lo = 0x80, hi = 0xbf;
    size_t         len, k;

    *valid = 1;
    if (p[0] < 0x80) {
        return 1;
    }
    *valid = 0;
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        len = 2;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        len = 3;
        lo = p[0] == 0xe0 ? 0xa0 : 0x80;
        hi = p[0] == 0xed ? 0x9f : 0xbf;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        len = 4;
        lo = p[0] == 0xf0 ? 0x90 : 0x80;
        hi = p[0] == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 1;
    }
    if (n < 2 || p[1] < lo || p[1] > hi) {
        return 1;
    }
    for (k = 2; k < len; k++) {
        if (k >= n || (p[k] & 0xc0) != 0x80) {
            return k;
        }
    }
    *valid = 1;
    return len;
}


/* Python's str.replace(from, to) in place; to is not longer than from. */
static size_t
lg_text_replace(char *s, size_t n, const char *from, const char *to)
{
    size_t  fl = strlen(from), tl = strlen(to), r = 0, w = 0;

    while (r < n) {
        if (r + fl <= n && memcmp(s + r, from, fl) == 0) {
            memcpy(s + w, to, tl);
            w += tl;
            r += fl;
        } else {
            s[w++] = s[r++];
        }
    }
    return w;
}
