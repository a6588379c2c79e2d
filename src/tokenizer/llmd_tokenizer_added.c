/*
 * Added tokens (special tokens such as "<|im_start|>" and user-added
 * words): found in the raw text before normalization, leftmost first and
 * longest at a position, as the JavaScript reference's trie does.  Their
 * lstrip/rstrip flags remove JavaScript white space from the text next to
 * them.
 */
#include <string.h>

#include "tokenizer/llmd_tokenizer_int.h"


uint32_t
llmd_tok_added_next(const llmd_tokenizer_t *tok, const unsigned char *p,
    size_t len, size_t *pos)
{
    size_t                i, k, n;
    uint32_t              idx;
    const unsigned char  *q;

    if (tok->n_added == 0) {
        return LLMD_TOK_NONE;
    }
    for (i = 0; i < len; i++) {
        if (tok->added_first_byte >= 0) {
            q = memchr(p + i, tok->added_first_byte, len - i);
            if (q == NULL) {
                return LLMD_TOK_NONE;
            }
            i = q - p;

        } else if (!tok->added_first[p[i]]) {
            continue;
        }
        for (k = 0; k < tok->n_added_lens; k++) {
            n = tok->added_lens[k];
            if (n > len - i) {
                continue;
            }
            idx = llmd_tok_added_find(tok, p + i, n);
            if (idx != LLMD_TOK_NONE) {
                *pos = i;
                return idx;
            }
        }
    }
    return LLMD_TOK_NONE;
}


/* Decodes the code point starting at p (valid UTF-8); sets its length. */
static uint32_t
llmd_tok_utf8_at(const unsigned char *p, size_t len, size_t *n)
{
    if (p[0] < 0x80 || len < 2) {
        *n = 1;
        return p[0];
    }
    if (p[0] < 0xe0) {
        *n = 2;
        return ((uint32_t) (p[0] & 0x1f) << 6) | (p[1] & 0x3f);
    }
    if (p[0] < 0xf0 || len < 4) {
        *n = len < 3 ? len : 3;
        if (len < 3) {
            return 0xfffd;
        }
        return ((uint32_t) (p[0] & 0x0f) << 12)
               | ((uint32_t) (p[1] & 0x3f) << 6) | (p[2] & 0x3f);
    }
    *n = 4;
    return ((uint32_t) (p[0] & 0x07) << 18) | ((uint32_t) (p[1] & 0x3f) << 12)
           | ((uint32_t) (p[2] & 0x3f) << 6) | (p[3] & 0x3f);
}


size_t
llmd_tok_space_prefix(const unsigned char *p, size_t len)
{
    size_t  i, n;

    i = 0;
    while (i < len && llmd_tok_is_js_space(llmd_tok_utf8_at(p + i, len - i,
                                                            &n)))
    {
        i += n;
    }
    return i;
}


size_t
llmd_tok_space_suffix(const unsigned char *p, size_t len)
{
    size_t  end, start, n;

    end = len;
    while (end > 0) {
        /* Step back to the lead byte of the last code point. */
        start = end - 1;
        while (start > 0 && (p[start] & 0xc0) == 0x80 && end - start < 4) {
            start--;
        }
        if (!llmd_tok_is_js_space(llmd_tok_utf8_at(p + start, end - start,
                                                    &n)))
        {
            break;
        }
        end = start;
    }
    return len - end;
}
