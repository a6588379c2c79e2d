/*
 * Fuzz target: text to tokenize (llmd_tokenizer_encode,
 * tokenizer/llmd_tokenizer.h) with t/data/tokenizer-tiny.json, loaded once:
 * NFC, the split regex, byte-level BPE, added and special tokens.  The
 * first input byte holds the flags: bit 0 adds the special tokens, bit 1
 * also encodes into half the room with LLMD_TOK_TRUNCATE (the same ids
 * must come first), bit 2 decodes skipping special tokens, bit 3 decodes
 * the text itself read as 16-bit ids (unknown ones included) instead of
 * its encoding.  The ids are then decoded (llmd_tokenizer_decode), and once
 * more into one byte too few.  Every encoding is repeated through a prefix
 * cache that lives for the whole run (stride 1: every boundary), after a
 * prefix of the text cut at two thirds, and must give the same ids.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/llmd_tokenizer.h"
#include "fuzz_common.h"


static void fuzz_tok_encode(fuzz_input_t *in, unsigned flags,
    uint32_t **ids, size_t *nids);
static void fuzz_tok_ids(fuzz_input_t *in, uint32_t **ids, size_t *nids);
static void fuzz_tok_decode(const uint32_t *ids, size_t nids,
    unsigned flags, int encoded);


static llmd_tokenizer_t  *tok;
static llmd_tok_cache_t  *cache;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char  err[512];

    tok = llmd_tokenizer_load(fuzz_data_path("tokenizer-tiny.json"), NULL,
                              err, sizeof(err));
    if (tok == NULL) {
        fuzz_fail(__FILE__, __LINE__, err);
    }

    cache = llmd_tok_cache_create(tok, 1 << 20, 1);
    if (cache == NULL) {
        fuzz_fail(__FILE__, __LINE__, "no cache");
    }

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t         nids;
    unsigned       mode;
    uint32_t      *ids;
    fuzz_input_t   in;

    in.p = data;
    in.n = size;
    mode = fuzz_byte(&in);

    if (mode & 8) {
        fuzz_tok_ids(&in, &ids, &nids);

    } else {
        fuzz_tok_encode(&in, mode, &ids, &nids);
    }

    fuzz_tok_decode(ids, nids, (mode & 4) ? LLMD_TOK_SKIP_SPECIAL_TOKENS : 0,
                    !(mode & 8));
    free(ids);

    return 0;
}


static void
fuzz_tok_encode(fuzz_input_t *in, unsigned mode, uint32_t **ids,
    size_t *nids)
{
    long       n, t;
    void      *scratch;
    size_t     i, cap, hcap, ssize, cut;
    unsigned   flags;
    uint32_t  *half, *again;

    flags = (mode & 1) ? LLMD_TOK_ADD_SPECIAL_TOKENS : 0;
    ssize = llmd_tokenizer_cached_scratch_size(tok, cache, in->n);
    cap = llmd_tokenizer_max_ids(tok, in->n);

    scratch = malloc(ssize);
    *ids = malloc(cap * sizeof(uint32_t));
    FUZZ_CHECK(scratch != NULL && *ids != NULL);

    n = llmd_tokenizer_encode(tok, (const char *) in->p, in->n, flags,
                              scratch, ssize, *ids, cap);

    FUZZ_CHECK(n >= 0 || n == LLMD_TOK_ERR_LIMIT);
    FUZZ_CHECK(n <= (long) cap);
    *nids = n > 0 ? (size_t) n : 0;

    for (i = 0; i < *nids; i++) {
        FUZZ_CHECK((*ids)[i] < llmd_tokenizer_vocab_size(tok));
    }

    if ((mode & 2) && *nids > 1) {
        hcap = *nids / 2;
        half = malloc(hcap * sizeof(uint32_t));
        FUZZ_CHECK(half != NULL);

        t = llmd_tokenizer_encode(tok, (const char *) in->p, in->n,
                                  flags | LLMD_TOK_TRUNCATE, scratch, ssize,
                                  half, hcap);
        FUZZ_CHECK(t == (long) hcap);
        FUZZ_CHECK(memcmp(half, *ids, hcap * sizeof(uint32_t)) == 0);
        free(half);
    }

    /* through the cache: a prefix, then the whole text */
    again = malloc(cap * sizeof(uint32_t));
    FUZZ_CHECK(again != NULL);
    cut = in->n * 2 / 3;
    t = llmd_tokenizer_encode_cached(tok, cache, (const char *) in->p, cut,
                                     flags, scratch, ssize, again, cap);
    FUZZ_CHECK(t >= 0 || t == LLMD_TOK_ERR_LIMIT);
    t = llmd_tokenizer_encode_cached(tok, cache, (const char *) in->p,
                                     in->n, flags, scratch, ssize, again,
                                     cap);
    FUZZ_CHECK(t == n);
    FUZZ_CHECK(n <= 0 || memcmp(again, *ids, n * sizeof(uint32_t)) == 0);
    free(again);

    free(scratch);
}


/* The rest of the input as little-endian 16-bit ids, two past the
   vocabulary at most: mostly known ones. */
static void
fuzz_tok_ids(fuzz_input_t *in, uint32_t **ids, size_t *nids)
{
    size_t  i;

    *nids = in->n / 2;
    *ids = malloc((*nids ? *nids : 1) * sizeof(uint32_t));
    FUZZ_CHECK(*ids != NULL);

    for (i = 0; i < *nids; i++) {
        (*ids)[i] = fuzz_u16(in) % (llmd_tokenizer_vocab_size(tok) + 2);
    }
}


static void
fuzz_tok_decode(const uint32_t *ids, size_t nids, unsigned flags,
    int encoded)
{
    long     n, m;
    char    *out;
    size_t   cap;

    /* grown until it fits: no bound on the bytes an id stands for */
    cap = 16 * nids + 16;

    for ( ;; ) {
        out = malloc(cap);
        FUZZ_CHECK(out != NULL);

        n = llmd_tokenizer_decode(tok, ids, nids, flags, out, cap);
        if (n != LLMD_TOK_ERR_CAPACITY) {
            break;
        }

        free(out);
        cap *= 2;
    }

    /* every id the encoder gives is known */
    FUZZ_CHECK(n >= 0 || (!encoded && n == LLMD_TOK_ERR_INVALID));
    FUZZ_CHECK(n <= (long) cap);
    free(out);

    if (n <= 0) {
        return;
    }

    /* exactly one byte short: CAPACITY, never a write past the room */
    out = malloc(n - 1 ? n - 1 : 1);
    FUZZ_CHECK(out != NULL);
    m = llmd_tokenizer_decode(tok, ids, nids, flags, out, n - 1);
    FUZZ_CHECK(m == LLMD_TOK_ERR_CAPACITY);
    free(out);
}
