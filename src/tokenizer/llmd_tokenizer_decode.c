/*
 * Decoding ids to bytes and the vocabulary accessors.  A byte-level token
 * stands for raw bytes, so the output may end inside a UTF-8 sequence; an
 * added token stands for its content.
 */
#include <string.h>

#include "tokenizer/llmd_tokenizer_int.h"


long
llmd_tokenizer_decode(const llmd_tokenizer_t *tok, const uint32_t *ids,
    size_t n, unsigned flags, char *out, size_t capacity)
{
    size_t                i, len;
    const llmd_tok_str_t *s;

    if (tok == NULL || (ids == NULL && n > 0)
        || (out == NULL && capacity > 0))
    {
        return LLMD_TOK_ERR_INVALID;
    }
    len = 0;
    for (i = 0; i < n; i++) {
        if (ids[i] >= tok->n_ids
            || !(tok->flags[ids[i]] & LLMD_TOK_F_PRESENT))
        {
            return LLMD_TOK_ERR_INVALID;
        }
        if ((flags & LLMD_TOK_SKIP_SPECIAL_TOKENS)
            && (tok->flags[ids[i]] & LLMD_TOK_F_SPECIAL))
        {
            continue;
        }
        s = &tok->bytes_of[ids[i]];
        if (s->len > capacity - len) {
            return LLMD_TOK_ERR_CAPACITY;
        }
        memcpy(out + len, tok->bytes + s->off, s->len);
        len += s->len;
    }
    return (long) len;
}


size_t
llmd_tokenizer_vocab_size(const llmd_tokenizer_t *tok)
{
    return tok->n_ids;
}


long
llmd_tokenizer_token_to_id(const llmd_tokenizer_t *tok, const char *token,
    size_t len)
{
    uint32_t  id;

    if (tok == NULL || token == NULL) {
        return -1;
    }
    id = llmd_tok_spell_find(tok, token, len);
    return id == LLMD_TOK_NONE ? -1 : (long) id;
}


const char *
llmd_tokenizer_id_to_token(const llmd_tokenizer_t *tok, uint32_t id,
    size_t *len)
{
    if (tok == NULL || id >= tok->n_ids
        || !(tok->flags[id] & LLMD_TOK_F_PRESENT))
    {
        return NULL;
    }
    if (len != NULL) {
        *len = tok->spell_of[id].len;
    }
    return tok->spell + tok->spell_of[id].off;
}


int
llmd_tokenizer_is_special(const llmd_tokenizer_t *tok, uint32_t id)
{
    return tok != NULL && id < tok->n_ids
           && (tok->flags[id] & LLMD_TOK_F_SPECIAL) != 0;
}
