/*
 * Go's encoding/json string escaping (llmd_go_json.h): '"' and '\'
 * escaped; \b \f \n \r \t short escapes (Go >= 1.22); other control bytes
 * as \u00xx (lowercase hex); '<' '>' '&' as \u003c \u003e \u0026; U+2028
 * and U+2029 as \u2028 \u2029; each byte that does not start a valid UTF-8
 * sequence as \ufffd; all other UTF-8 (and DEL) literal. Runs of literal
 * bytes go to write() in one call.
 */

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "core/llmd_go_json.h"


static size_t llmd_go_plain(const unsigned char *s, size_t i, size_t len);


/*
 * The first i' >= i at which s[i'] is not written as it is by the plain
 * ASCII rule: a byte below 0x20 or above 0x7f, '"', '\\', '<', '>' or '&'
 * (len when there is none).  Sixteen bytes per step with SSE2: a signed
 * compare with 0x20 catches both the control bytes and those >= 0x80.
 */
static size_t
llmd_go_plain(const unsigned char *s, size_t i, size_t len)
{
    unsigned char  c;

#if defined(__SSE2__)
    int       mask;
    __m128i   v, m, lo, q, bs, lt, gt, amp;

    lo = _mm_set1_epi8(0x20);
    q = _mm_set1_epi8('"');
    bs = _mm_set1_epi8('\\');
    lt = _mm_set1_epi8('<');
    gt = _mm_set1_epi8('>');
    amp = _mm_set1_epi8('&');

    while (len - i >= 16) {
        v = _mm_loadu_si128((const __m128i *) (s + i));
        m = _mm_or_si128(_mm_cmplt_epi8(v, lo),
                         _mm_or_si128(_mm_cmpeq_epi8(v, q),
                                      _mm_cmpeq_epi8(v, bs)));
        m = _mm_or_si128(m, _mm_or_si128(_mm_cmpeq_epi8(v, lt),
                                         _mm_or_si128(_mm_cmpeq_epi8(v, gt),
                                                      _mm_cmpeq_epi8(v, amp))));
        mask = _mm_movemask_epi8(m);

        if (mask != 0) {
            return i + (size_t) __builtin_ctz((unsigned) mask);
        }

        i += 16;
    }
#endif

    for ( /* void */ ; i < len; i++) {
        c = s[i];

        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<'
            || c == '>' || c == '&')
        {
            break;
        }
    }

    return i;
}


void
llmd_go_json_escape(const unsigned char *s, size_t len, llmd_go_write_pt write,
    void *data)
{
    size_t               i, start, n;
    unsigned char        c, esc[6];
    static const char    hex[] = "0123456789abcdef";

    start = 0;
    i = 0;

    for ( ;; ) {
        i = llmd_go_plain(s, i, len);

        if (i >= len) {
            break;
        }

        c = s[i];

        if (c >= 0x80) {
            n = llmd_utf8_len(s + i, len - i);

            if (n == 0) {
                write(data, s + start, i - start);
                write(data, "\\ufffd", 6);
                i++;
                start = i;
                continue;
            }

            if (n == 3 && c == 0xe2 && s[i + 1] == 0x80
                && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9))
            {
                write(data, s + start, i - start);
                write(data, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
                i += 3;
                start = i;
                continue;
            }

            i += n;
            continue;
        }

        write(data, s + start, i - start);

        esc[0] = '\\';

        switch (c) {
        case '"':
        case '\\':
            esc[1] = c;
            write(data, esc, 2);
            break;
        case '\b':
            write(data, "\\b", 2);
            break;
        case '\f':
            write(data, "\\f", 2);
            break;
        case '\n':
            write(data, "\\n", 2);
            break;
        case '\r':
            write(data, "\\r", 2);
            break;
        case '\t':
            write(data, "\\t", 2);
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            write(data, esc, 6);
            break;
        }

        i++;
        start = i;
    }

    write(data, s + start, len - start);
}


size_t
llmd_utf8_len(const unsigned char *s, size_t len)
{
    size_t         n, k;
    unsigned char  lo, hi;

    lo = 0x80;
    hi = 0xbf;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;

    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;

        if (s[0] == 0xe0) {
            lo = 0xa0;

        } else if (s[0] == 0xed) {
            hi = 0x9f;
        }

    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;

        if (s[0] == 0xf0) {
            lo = 0x90;

        } else if (s[0] == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return 0;
    }

    if (len < n || s[1] < lo || s[1] > hi) {
        return 0;
    }

    for (k = 2; k < n; k++) {
        if (s[k] < 0x80 || s[k] > 0xbf) {
            return 0;
        }
    }

    return n;
}
