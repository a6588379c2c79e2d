/*
 * Lookup tables of the tokenizer: open-addressing hash tables over the
 * loader's arenas (keys are hashed with xxHash), and the GPT-2 byte-level
 * alphabet that maps every byte to a printable code point.
 */
#include <string.h>

/* xxHash's functions compiled in here: a vocabulary or merge lookup hashes
   a few bytes, where the call into the shared library cost as much */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tokenizer/llmd_tokenizer_int.h"


/* The one key hash of every table: the loader's and the lookups'. */
static inline uint64_t
llmd_tok_key_hash(const void *p, size_t len)
{
    return XXH3_64bits(p, len);
}


uint64_t
llmd_tok_hash(const void *p, size_t len)
{
    return llmd_tok_key_hash(p, len);
}


uint32_t
llmd_tok_vocab_find(const llmd_tokenizer_t *tok, const unsigned char *p,
    size_t len)
{
    size_t                i;
    uint32_t              slot;
    const llmd_tok_str_t *s;

    i = llmd_tok_key_hash(p, len) & tok->vocab_mask;
    for ( ;; ) {
        slot = tok->vocab_slots[i];
        if (slot == 0) {
            return LLMD_TOK_NONE;
        }
        s = &tok->bytes_of[slot - 1];
        if (s->len == len && llmd_tok_same(tok->bytes + s->off, p, len)) {
            return slot - 1;
        }
        i = (i + 1) & tok->vocab_mask;
    }
}


uint32_t
llmd_tok_spell_find(const llmd_tokenizer_t *tok, const char *p, size_t len)
{
    size_t                i;
    uint32_t              slot;
    const llmd_tok_str_t *s;

    i = llmd_tok_hash(p, len) & tok->spell_mask;
    for ( ;; ) {
        slot = tok->spell_slots[i];
        if (slot == 0) {
            return LLMD_TOK_NONE;
        }
        s = &tok->spell_of[slot - 1];
        if (s->len == len && memcmp(tok->spell + s->off, p, len) == 0) {
            return slot - 1;
        }
        i = (i + 1) & tok->spell_mask;
    }
}


/* Returns the index of the added token whose content is p, or NONE. */
uint32_t
llmd_tok_added_find(const llmd_tokenizer_t *tok, const unsigned char *p,
    size_t len)
{
    size_t                   i;
    uint32_t                 slot;
    const llmd_tok_added_t  *a;

    if (tok->added_mask == 0) {
        return LLMD_TOK_NONE;
    }
    i = llmd_tok_hash(p, len) & tok->added_mask;
    for ( ;; ) {
        slot = tok->added_slots[i];
        if (slot == 0) {
            return LLMD_TOK_NONE;
        }
        a = &tok->added[slot - 1];
        if (a->content_len == len
            && memcmp(tok->bytes + a->content_off, p, len) == 0)
        {
            return slot - 1;
        }
        i = (i + 1) & tok->added_mask;
    }
}


const llmd_tok_merge_t *
llmd_tok_merge_find(const llmd_tokenizer_t *tok, uint32_t left,
    uint32_t right)
{
    uint64_t                 key;
    size_t                   i;
    const llmd_tok_merge_t  *m;

    /* +1 keeps the pair (0, 0) apart from an empty slot. */
    key = (((uint64_t) left << 32) | right) + 1;
    i = (size_t) llmd_tok_key_hash(&key, sizeof(key)) & tok->merge_mask;
    for ( ;; ) {
        m = &tok->merges[i];
        if (m->key == key) {
            return m;
        }
        if (m->key == 0) {
            return NULL;
        }
        i = (i + 1) & tok->merge_mask;
    }
}


/*
 * GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves,
 * the other 68 bytes take the code points 256.. in byte order.
 */
static int
llmd_tok_byte_printable(unsigned b)
{
    return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac)
           || (b >= 0xae && b <= 0xff);
}


uint32_t
llmd_tok_byte_to_cp(unsigned char b)
{
    unsigned  i, n;

    if (llmd_tok_byte_printable(b)) {
        return b;
    }
    n = 0;
    for (i = 0; i < b; i++) {
        n += !llmd_tok_byte_printable(i);
    }
    return 256 + n;
}


int
llmd_tok_cp_to_byte(uint32_t cp)
{
    unsigned  b, n;

    if (cp < 256) {
        return llmd_tok_byte_printable(cp) ? (int) cp : -1;
    }
    if (cp >= 256 + 68) {
        return -1;
    }
    n = 0;
    for (b = 0; b < 256; b++) {
        if (!llmd_tok_byte_printable(b)) {
            if (256 + n == cp) {
                return (int) b;
            }
            n++;
        }
    }
    return -1;
}
