/*
 * Prompt tokenization.  With --tokenizer the project's BPE tokenizer
 * (src/tokenizer/llmd_tokenizer.h) gives the ids vLLM computes, so block
 * hashes and KV events carry real token ids.  Without it a deterministic
 * fallback cuts the text into pieces (an optional leading space plus up to
 * 4 letters or digits, or one other byte: about 3-4 bytes per token) and
 * maps every piece to XXH64(piece) mod vocab_size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>

#include <xxhash.h>

#include "sim.h"
#include "tokenizer/llmd_tokenizer.h"


#define SIM_OUT_TEXT  " The quick brown fox jumps over the lazy dog."
#define SIM_OUT_MAX   64
#define SIM_TOK_CACHE_BYTES  (64 * 1024 * 1024)


static llmd_tokenizer_t  *sim_tok;
static llmd_tok_cache_t  *sim_tok_cache;     /* prefixes of recent prompts */
static void              *sim_tok_scratch;
static size_t             sim_tok_scratch_len;
static uint32_t           sim_vocab = 128256;

static uint32_t           sim_out_ids[SIM_OUT_MAX];
static char               sim_out_text[SIM_OUT_MAX][32];
static size_t             sim_out_len[SIM_OUT_MAX];
static size_t             sim_out_n;


static int
sim_piece_char(unsigned char c)
{
    return isalnum(c) || c >= 0x80;
}


/* Length of the fallback piece starting at s (n > 0). */
static size_t
sim_piece(const unsigned char *s, size_t n)
{
    size_t  i, start;

    i = 0;
    if (s[0] == ' ' && n > 1 && sim_piece_char(s[1])) {
        i = 1;
    }

    if (!sim_piece_char(s[i])) {
        return 1;
    }

    start = i;
    while (i < n && sim_piece_char(s[i]) && i - start < 4) {
        i++;
    }

    return i;
}


static long
sim_fallback_encode(const char *text, size_t len, uint32_t *ids, size_t cap)
{
    const unsigned char  *s = (const unsigned char *) text;
    size_t                off, k, n;

    n = 0;
    for (off = 0; off < len; off += k) {
        k = sim_piece(s + off, len - off);
        if (n == cap) {
            return -1;
        }
        ids[n++] = (uint32_t) (XXH64(s + off, k, 0) % sim_vocab);
    }

    return (long) n;
}


long
sim_tok_encode(const char *text, size_t len, int add_special, uint32_t *ids,
    size_t cap)
{
    size_t  need;
    long    n;
    void   *p;

    if (sim_tok == NULL) {
        return sim_fallback_encode(text, len, ids, cap);
    }

    need = llmd_tokenizer_cached_scratch_size(sim_tok, sim_tok_cache, len);
    if (need > sim_tok_scratch_len) {
        p = realloc(sim_tok_scratch, need);
        if (p == NULL) {
            return -1;
        }
        sim_tok_scratch = p;
        sim_tok_scratch_len = need;
    }

    n = llmd_tokenizer_encode_cached(sim_tok, sim_tok_cache, text, len,
                                     add_special
                                     ? LLMD_TOK_ADD_SPECIAL_TOKENS : 0,
                                     sim_tok_scratch, sim_tok_scratch_len,
                                     ids, cap);
    return n < 0 ? -1 : n;
}


int
sim_tok_init(const sim_config_t *cf, char *err, size_t errlen)
{
    const unsigned char  *s = (const unsigned char *) SIM_OUT_TEXT;
    uint32_t              ids[SIM_OUT_MAX];
    size_t                i, off, k;
    long                  n, m;

    sim_vocab = cf->vocab_size ? cf->vocab_size : 128256;

    if (cf->tokenizer) {
        /* tokenizer_config.json, when present, sets the special tokens */
        sim_tok = llmd_tokenizer_load(cf->tokenizer_json,
                                      cf->tokenizer_config[0]
                                      ? cf->tokenizer_config : NULL,
                                      err, errlen);
        if (sim_tok == NULL) {
            return -1;
        }

        /*
         * Prompts that share a long prefix (a group's system prompt) are
         * tokenized once up to a boundary where the tokenizer restarts:
         * the same ids (llmd_tokenizer.h), a fraction of the CPU.  Without
         * it a 9,000-token prompt of decoded random ids took ~6 ms of the
         * one loop that also ends every pod's steps.
         */
        sim_tok_cache = llmd_tok_cache_create(sim_tok, SIM_TOK_CACHE_BYTES,
                                              0);

        n = sim_tok_encode(SIM_OUT_TEXT, strlen(SIM_OUT_TEXT), 0, ids,
                           SIM_OUT_MAX);
        if (n <= 0) {
            snprintf(err, errlen, "tokenizer cannot encode the output text");
            return -1;
        }

        for (i = 0; i < (size_t) n; i++) {
            m = llmd_tokenizer_decode(sim_tok, &ids[i], 1, 0,
                                      sim_out_text[i], 31);
            if (m < 0) {
                m = 0;
            }
            sim_out_ids[i] = ids[i];
            sim_out_len[i] = (size_t) m;
        }

        sim_out_n = (size_t) n;
        return 0;
    }

    for (off = 0; off < strlen(SIM_OUT_TEXT) && sim_out_n < SIM_OUT_MAX;
         off += k)
    {
        k = sim_piece(s + off, strlen(SIM_OUT_TEXT) - off);
        memcpy(sim_out_text[sim_out_n], s + off, k);
        sim_out_len[sim_out_n] = k;
        sim_out_ids[sim_out_n] = (uint32_t) (XXH64(s + off, k, 0)
                                             % sim_vocab);
        sim_out_n++;
    }

    return 0;
}


uint32_t
sim_tok_output(uint64_t i, const char **text, size_t *len)
{
    i %= sim_out_n;
    *text = sim_out_text[i];
    *len = sim_out_len[i];
    return sim_out_ids[i];
}


int
sim_tok_is_real(void)
{
    return sim_tok != NULL;
}
