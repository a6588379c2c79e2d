/*
 * Internals shared by the tokenizer's files: the read-only tables built by
 * the loader and used by encode/decode.  Not part of the public API.
 */
#ifndef LLMD_TOKENIZER_INT_H
#define LLMD_TOKENIZER_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <string.h>

#include "tokenizer/llmd_tokenizer.h"

/* Ids the post-processor may put before/after the sequence. */
#define LLMD_TOK_MAX_TEMPLATE    8
/* Longest added token, in bytes. */
#define LLMD_TOK_MAX_ADDED_LEN   256
/* Pieces up to this many bytes use the quadratic merge loop. */
#define LLMD_TOK_SMALL_PIECE     48
/* Fixed scratch memory given to PCRE2 (contexts, match data, frames). */
#define LLMD_TOK_PCRE2_ARENA     (256 * 1024)
/* Regex match limit per match attempt (pathological backtracking). */
#define LLMD_TOK_MATCH_LIMIT     (10 * 1000 * 1000)
/* Sanitizing and normalizing grow a text at most this many times. */
#define LLMD_TOK_GROWTH          3
/* Code points per byte of a decomposed (NFD) text, an upper bound. */
#define LLMD_TOK_CP_PER_BYTE     2

#define LLMD_TOK_NONE            0xffffffffu

/* Per-id flags. */
#define LLMD_TOK_F_PRESENT   0x01   /* the id has a token */
#define LLMD_TOK_F_ADDED     0x02   /* from "added_tokens" */
#define LLMD_TOK_F_SPECIAL   0x04   /* added token with "special": true */
#define LLMD_TOK_F_SELF      0x08   /* BPE of its bytes gives this id alone */
#define LLMD_TOK_F_VOCAB     0x10   /* in the model vocabulary */

/*
 * The hot piece table: pieces of up to 8 bytes that encode to one id, a
 * direct lookup without xxHash or the vocabulary's three tables.  Entries
 * are vocabulary tokens in id order (in BPE vocabularies the most frequent
 * first) while a slot of two is free; 16 bytes each.
 */
#define LLMD_TOK_HOT_BITS    14
#define LLMD_TOK_HOT_SLOTS   ((size_t) 1 << LLMD_TOK_HOT_BITS)
#define LLMD_TOK_HOT_MAX     8

typedef struct {
    uint64_t  key;          /* the bytes, little-endian, zero-padded */
    uint32_t  id;
    uint32_t  len;          /* 0: empty */
} llmd_tok_hot_t;

/* A slice of one of the tokenizer's byte arenas. */
typedef struct {
    uint32_t  off;
    uint32_t  len;
} llmd_tok_str_t;

/* A merge rule: (left, right) -> result, applied in rank order. */
typedef struct {
    uint64_t  key;            /* (left << 32 | right) + 1; 0 = empty slot */
    uint32_t  rank;
    uint32_t  result;
} llmd_tok_merge_t;

typedef struct {
    uint32_t  id;
    uint32_t  content_off;    /* into bytes */
    uint32_t  content_len;
    uint8_t   lstrip;
    uint8_t   rstrip;
} llmd_tok_added_t;

typedef enum {
    LLMD_TOK_NORM_NONE = 0,
    LLMD_TOK_NORM_NFC
} llmd_tok_norm_t;

struct llmd_tokenizer_s {
    size_t              n_ids;          /* largest id + 1 */

    /* Vocabulary spellings (as in the JSON) and the bytes they stand for. */
    char               *spell;
    size_t              spell_len;
    llmd_tok_str_t     *spell_of;       /* [n_ids] */
    unsigned char      *bytes;
    size_t              bytes_len;
    llmd_tok_str_t     *bytes_of;       /* [n_ids] */
    uint8_t            *flags;          /* [n_ids] LLMD_TOK_F_* */

    /* Model vocabulary by bytes: slot = id + 1, 0 = empty. */
    uint32_t           *vocab_slots;
    size_t              vocab_mask;
    /* Spelling -> id for token_to_id (vocabulary and added tokens). */
    uint32_t           *spell_slots;
    size_t              spell_mask;

    llmd_tok_merge_t   *merges;
    size_t              merge_mask;
    uint32_t            byte_id[256];   /* id of each single byte */
    int                 ignore_merges;
    /*
     * Pieces whose vocabulary id is emitted alone (LLMD_TOK_F_SELF or
     * ignore_merges): a memo of part of the vocabulary, NULL if none.
     */
    llmd_tok_hot_t     *hot;

    /* Added tokens, matched leftmost-longest before normalization. */
    llmd_tok_added_t   *added;
    size_t              n_added;
    uint32_t           *added_slots;    /* content -> index + 1 */
    size_t              added_mask;
    uint8_t             added_first[256]; /* first bytes of added tokens */
    int                 added_first_byte; /* the only one, or < 0 */
    uint32_t            added_lens[LLMD_TOK_MAX_ADDED_LEN + 1];
    size_t              n_added_lens;   /* distinct lengths, longest first */

    llmd_tok_norm_t     normalizer;

    /* Pre-tokenizer: an optional regex split, then byte-level. */
    pcre2_code         *split;
    int                 split_jit;
    int                 add_prefix_space;
    /*
     * The split pattern is one whose pieces provably end between an ASCII
     * letter and an ASCII non-letter (llmd_tokenizer_cache.c).
     */
    int                 split_restart;
    /*
     * The pattern is Llama-3's (3) or Qwen2's (1: its \p{N} takes one
     * digit), whose matches over ASCII text llmd_tok_split_ascii() finds
     * without PCRE2; 0 otherwise.
     */
    unsigned            split_ascii_digits;

    /* Post-processor (add_special_tokens). */
    uint32_t            prefix_ids[LLMD_TOK_MAX_TEMPLATE];
    size_t              n_prefix;
    uint32_t            suffix_ids[LLMD_TOK_MAX_TEMPLATE];
    size_t              n_suffix;
};

/*
 * a[0..len) == b[0..len), inline for the short keys of vocabulary lookups
 * (most pieces are 2-10 bytes): two loads that may overlap, never outside
 * the len bytes.
 */
static inline int
llmd_tok_same(const unsigned char *a, const unsigned char *b, size_t len)
{
    uint64_t  x0, x1, y0, y1;
    uint32_t  u0, u1, v0, v1;

    if (len >= 8) {
        if (len > 16) {
            return memcmp(a, b, len) == 0;
        }
        memcpy(&x0, a, 8);
        memcpy(&y0, b, 8);
        memcpy(&x1, a + len - 8, 8);
        memcpy(&y1, b + len - 8, 8);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
    }
    if (len >= 4) {
        memcpy(&u0, a, 4);
        memcpy(&v0, b, 4);
        memcpy(&u1, a + len - 4, 4);
        memcpy(&v1, b + len - 4, 4);
        return ((u0 ^ v0) | (u1 ^ v1)) == 0;
    }
    if (len == 0) {
        return 1;
    }
    /* 1-3 bytes: the first, the middle and the last */
    return a[0] == b[0] && a[len >> 1] == b[len >> 1]
           && a[len - 1] == b[len - 1];
}


/*
 * p[0..len) (1 <= len <= 8) as a little-endian integer, zero-padded,
 * without reading outside the len bytes.
 */
static inline uint64_t
llmd_tok_key8(const unsigned char *p, size_t len)
{
    uint32_t  lo, hi;

    if (len >= 4) {
        memcpy(&lo, p, 4);
        memcpy(&hi, p + len - 4, 4);
        /* the overlap holds the same bytes in both */
        return (uint64_t) lo | ((uint64_t) hi << (8 * (len - 4)));
    }
    return (uint64_t) p[0] | ((uint64_t) p[len >> 1] << (8 * (len >> 1)))
           | ((uint64_t) p[len - 1] << (8 * (len - 1)));
}


static inline size_t
llmd_tok_hot_slot(uint64_t key, size_t len)
{
    return (size_t) (((key ^ len) * 0x9e3779b97f4a7c15ULL)
                     >> (64 - LLMD_TOK_HOT_BITS));
}


/* The id of a hot piece p[0..len), or LLMD_TOK_NONE (then ask the
   vocabulary). */
static inline uint32_t
llmd_tok_hot_find(const llmd_tokenizer_t *tok, const unsigned char *p,
    size_t len)
{
    uint64_t               key;
    size_t                 i;
    const llmd_tok_hot_t  *e;

    if (len == 0 || len > LLMD_TOK_HOT_MAX || tok->hot == NULL) {
        return LLMD_TOK_NONE;
    }
    key = llmd_tok_key8(p, len);
    i = llmd_tok_hot_slot(key, len);
    e = &tok->hot[i];
    if (e->key == key && e->len == len) {
        return e->id;
    }
    e = &tok->hot[(i + 1) & (LLMD_TOK_HOT_SLOTS - 1)];
    if (e->key == key && e->len == len) {
        return e->id;
    }
    return LLMD_TOK_NONE;
}


/* llmd_tokenizer_table.c: hashing of byte strings and merge pairs. */
uint64_t llmd_tok_hash(const void *p, size_t len);
uint32_t llmd_tok_vocab_find(const llmd_tokenizer_t *tok,
    const unsigned char *p, size_t len);
uint32_t llmd_tok_spell_find(const llmd_tokenizer_t *tok, const char *p,
    size_t len);
uint32_t llmd_tok_added_find(const llmd_tokenizer_t *tok,
    const unsigned char *p, size_t len);
const llmd_tok_merge_t *llmd_tok_merge_find(const llmd_tokenizer_t *tok,
    uint32_t left, uint32_t right);
/* GPT-2 byte <-> code point mapping of byte-level vocabularies. */
uint32_t llmd_tok_byte_to_cp(unsigned char b);
int llmd_tok_cp_to_byte(uint32_t cp);

/* llmd_tokenizer_bpe.c */
size_t llmd_tok_bpe_scratch(size_t piece_len);
/*
 * Merges the bytes of one piece; writes the ids to out (room for len ids).
 * work is llmd_tok_bpe_scratch(len) bytes.  Returns the number of ids.
 */
size_t llmd_tok_bpe(const llmd_tokenizer_t *tok, const unsigned char *p,
    size_t len, void *work, uint32_t *out);

/* llmd_tokenizer_pretok.c */
int llmd_tok_compile_split(const char *pattern, int literal,
    pcre2_code **code, int *jit, char *err, size_t errlen);
/* The GPT-2 pattern of a ByteLevel pre-tokenizer with use_regex. */
extern const char llmd_tok_gpt2_pattern[];
/* Whether c is white space to JavaScript (\s, String.prototype.trim). */
int llmd_tok_is_js_space(uint32_t c);

/* llmd_tokenizer_added.c */
/*
 * Finds the leftmost-longest added token in p[0..len); returns its index
 * and sets *pos, or returns LLMD_TOK_NONE.
 */
uint32_t llmd_tok_added_next(const llmd_tokenizer_t *tok,
    const unsigned char *p, size_t len, size_t *pos);
/* Lengths of the JavaScript white space at the start/end of p[0..len). */
size_t llmd_tok_space_prefix(const unsigned char *p, size_t len);
size_t llmd_tok_space_suffix(const unsigned char *p, size_t len);

/* llmd_tokenizer_cache.c */
/* A restart boundary of a text: its offset, key and the ids before it. */
typedef struct {
    uint32_t  b;
    uint32_t  n;
    uint64_t  k0;           /* XXH3-128 of the text before b */
    uint64_t  k1;
} llmd_tok_cand_t;

/* Whether pattern (a tokenizer.json Split regex) is one of the known ones. */
int llmd_tok_split_is_restartable(const char *pattern);
/* ASCII classes of the split patterns: \p{L}, \p{N}, ECMAScript's \s */
#define llmd_tok_a_letter(c)  ((unsigned) (((c) | 0x20) - 'a') < 26)
#define llmd_tok_a_digit(c)   ((unsigned) ((c) - '0') < 10)
/* \t \n \v \f \r and ' ' */
#define llmd_tok_a_space(c)   ((c) == ' ' || (unsigned) ((c) - 9) < 5)

/* 3 for Llama-3's split pattern, 1 for Qwen2's, else 0. */
unsigned llmd_tok_split_ascii_digits(const char *pattern);
/* llmd_tokenizer_encode.c: the end of the split pattern's match at i of
   the ASCII text p[0..len) (i < len; a match starts at every position) */
size_t llmd_tok_split_ascii(unsigned digits, const unsigned char *p,
    size_t len, size_t i);
/*
 * The boundaries of the sanitized text p[0..len) the cache remembers, in
 * increasing order, at most max; returns their number (keys unset).
 */
size_t llmd_tok_cache_plan(const llmd_tok_cache_t *cache,
    const unsigned char *p, size_t len, llmd_tok_cand_t *cands, size_t max);
/*
 * Boundaries per hash state kept by llmd_tok_cache_lookup(): 8, or more
 * so that at most LLMD_TOK_SNAP_MAX states are kept (tiny strides).
 */
#define LLMD_TOK_SNAP_EVERY  8
#define LLMD_TOK_SNAP_MAX    1024
#define llmd_tok_cache_snap_every(ncands)                                    \
    ((ncands) / LLMD_TOK_SNAP_MAX + 1 > LLMD_TOK_SNAP_EVERY                  \
     ? (ncands) / LLMD_TOK_SNAP_MAX + 1 : LLMD_TOK_SNAP_EVERY)
/* The scratch bytes of those states for ncands boundaries. */
#define llmd_tok_cache_snaps_size(ncands)                                    \
    (((ncands) / llmd_tok_cache_snap_every(ncands) + 1)                      \
     * llmd_tok_cache_state_size() + 64)
size_t llmd_tok_cache_state_size(void);
/*
 * Keys the boundaries cands[0..n) of p from the last back until one is
 * cached; returns its index + 1 (sets *hit, *nhit) or 0.  The keys of
 * that boundary and all later ones are set.  snaps: 64-byte aligned,
 * llmd_tok_cache_snaps_size(max) bytes for n <= max boundaries, a state
 * kept every llmd_tok_cache_snap_every(max).
 */
size_t llmd_tok_cache_lookup(llmd_tok_cache_t *cache, const unsigned char *p,
    llmd_tok_cand_t *cands, size_t n, size_t every, void *snaps,
    const uint32_t **hit, size_t *nhit);
/* The ids cached for cand (sets *n), or NULL. */
const uint32_t *llmd_tok_cache_find(llmd_tok_cache_t *cache,
    const llmd_tok_cand_t *cand, size_t *n);
/* Stores ids[0..n) and the boundaries whose id count (n) is known. */
void llmd_tok_cache_put(llmd_tok_cache_t *cache, const uint32_t *ids,
    size_t n, const llmd_tok_cand_t *cands, size_t ncands);
void llmd_tok_cache_count(llmd_tok_cache_t *cache, size_t reused,
    size_t encoded);
const llmd_tokenizer_t *llmd_tok_cache_tokenizer(
    const llmd_tok_cache_t *cache);
size_t llmd_tok_cache_stride(const llmd_tok_cache_t *cache);

#endif /* LLMD_TOKENIZER_INT_H */
