/*
 * In-process tokenizer for Hugging Face tokenizer.json files of the
 * byte-level BPE family (Qwen2/Qwen3, Llama-3.x, GPT-2 style): encodes UTF-8
 * text to the token ids vLLM computes, and decodes ids back to bytes.
 *
 * Life cycle: llmd_tokenizer_load() once (in the nginx master, before fork,
 * so workers share the pages); afterwards the tokenizer is read-only and may
 * be used from any number of threads/processes at once.  Encoding allocates
 * nothing: the caller passes scratch memory of llmd_tokenizer_scratch_size()
 * bytes and an output array.  Every input (invalid UTF-8, megabyte runs of
 * one character) gives a defined result in bounded time.
 */
#ifndef LLMD_TOKENIZER_H
#define LLMD_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct llmd_tokenizer_s  llmd_tokenizer_t;

/* Flags of llmd_tokenizer_encode(). */
#define LLMD_TOK_ADD_SPECIAL_TOKENS  0x01  /* run the post-processor (BOS) */
#define LLMD_TOK_TRUNCATE            0x02  /* stop at capacity, no error */

/* Flags of llmd_tokenizer_decode(). */
#define LLMD_TOK_SKIP_SPECIAL_TOKENS 0x01

/* Negative results of encode/decode. */
#define LLMD_TOK_ERR_SCRATCH   -1   /* scratch smaller than scratch_size() */
#define LLMD_TOK_ERR_CAPACITY  -2   /* output array/buffer too small */
#define LLMD_TOK_ERR_LIMIT     -3   /* regex match limit hit (pathological) */
#define LLMD_TOK_ERR_INVALID   -4   /* bad argument or unknown token id */

/*
 * Loads tokenizer.json (path required) and tokenizer_config.json (config_path
 * may be NULL; when given it must be valid JSON but is otherwise not used:
 * like the JavaScript reference, the special tokens added on encode come
 * from tokenizer.json's post_processor only).  Returns NULL with a message
 * in err on failure (unsupported model type, bad JSON, regex does not
 * compile ...).  See docs/tokenizer.md for what is supported.
 */
llmd_tokenizer_t *llmd_tokenizer_load(const char *path,
    const char *config_path, char *err, size_t errlen);
void llmd_tokenizer_free(llmd_tokenizer_t *tok);

/* Bytes of scratch memory encode() needs for a text of up to text_len bytes. */
size_t llmd_tokenizer_scratch_size(const llmd_tokenizer_t *tok,
    size_t text_len);
/* An upper bound of the ids encode() produces for text_len bytes of text. */
size_t llmd_tokenizer_max_ids(const llmd_tokenizer_t *tok, size_t text_len);

/*
 * Encodes text (UTF-8; invalid sequences are replaced by U+FFFD as the
 * WHATWG decoder does) to ids.  Returns the number of ids written, or a
 * negative LLMD_TOK_ERR_*.  With LLMD_TOK_TRUNCATE a too small ids array is
 * not an error: the first `capacity` ids of the full encoding are written
 * and capacity is returned.
 */
long llmd_tokenizer_encode(const llmd_tokenizer_t *tok, const char *text,
    size_t len, unsigned flags, void *scratch, size_t scratch_size,
    uint32_t *ids, size_t capacity);

/*
 * Decodes ids to the bytes they stand for (byte-level: the raw bytes, which
 * may end inside a UTF-8 sequence).  Returns the number of bytes written to
 * out, or a negative LLMD_TOK_ERR_* (CAPACITY when out is too small,
 * INVALID for an id outside the vocabulary).
 */
long llmd_tokenizer_decode(const llmd_tokenizer_t *tok, const uint32_t *ids,
    size_t n, unsigned flags, char *out, size_t capacity);

/* Number of ids: the largest id + 1 (vocabulary and added tokens). */
size_t llmd_tokenizer_vocab_size(const llmd_tokenizer_t *tok);

/*
 * Id of a token given in its vocabulary spelling (e.g. "Ġthe",
 * "<|im_start|>"), or -1.
 */
long llmd_tokenizer_token_to_id(const llmd_tokenizer_t *tok, const char *token,
    size_t len);

/* Vocabulary spelling of an id (not NUL-terminated), or NULL. */
const char *llmd_tokenizer_id_to_token(const llmd_tokenizer_t *tok,
    uint32_t id, size_t *len);

/* Whether id is an added token marked "special". */
int llmd_tokenizer_is_special(const llmd_tokenizer_t *tok, uint32_t id);

/*
 * Prefix cache (docs/tokenizer.md, "Cached prefix tokenization"): remembers
 * the ids of recently encoded texts at boundaries where the tokenizer
 * provably restarts (the end of an added token; inside a segment, between
 * an ASCII letter and an ASCII non-letter for the Llama-3, Qwen2 and GPT-2
 * split patterns), keyed by XXH3-128 of the text up to the boundary.  An
 * encode through the cache copies the ids of the longest cached boundary
 * prefix and encodes only the rest: the ids are those of
 * llmd_tokenizer_encode() in every case.  One cache belongs to one
 * tokenizer and is not thread-safe (one per worker).  bytes bounds all of
 * its memory (ring of ids plus index); stride is the distance in text bytes
 * between the boundaries it remembers (0: LLMD_TOK_CACHE_STRIDE).
 */
typedef struct llmd_tok_cache_s  llmd_tok_cache_t;

#define LLMD_TOK_CACHE_STRIDE    256
#define LLMD_TOK_CACHE_MIN       (64 * 1024)

typedef struct {
    uint64_t  lookups;      /* encodes through the cache */
    uint64_t  hits;         /* ... that reused a cached prefix */
    uint64_t  reused_ids;   /* ids copied from the cache */
    uint64_t  encoded_ids;  /* ids encoded by the tokenizer */
    uint64_t  stored;       /* entries stored */
    uint64_t  bytes;        /* memory of the cache */
} llmd_tok_cache_stats_t;

/* NULL when bytes < LLMD_TOK_CACHE_MIN or out of memory. */
llmd_tok_cache_t *llmd_tok_cache_create(const llmd_tokenizer_t *tok,
    size_t bytes, size_t stride);
void llmd_tok_cache_free(llmd_tok_cache_t *cache);

/*
 * Writes every page of the cache's memory once (on Linux after
 * madvise(MADV_POPULATE_WRITE)), so that no encode takes the first-write
 * page faults of the ring and the index (measured ~11-27 us per 4 KiB page
 * on a VM, nine pages per 8k-token entry).  The memory stays resident.
 * Returns the bytes touched.  Contents are unchanged.
 */
size_t llmd_tok_cache_prefault(llmd_tok_cache_t *cache);
void llmd_tok_cache_stats(const llmd_tok_cache_t *cache,
    llmd_tok_cache_stats_t *stats);

/*
 * Scratch memory encode_cached() needs with this cache: scratch_size() and
 * 24 bytes per stride bytes of text (cache NULL: scratch_size()).
 */
size_t llmd_tokenizer_cached_scratch_size(const llmd_tokenizer_t *tok,
    const llmd_tok_cache_t *cache, size_t text_len);

/*
 * llmd_tokenizer_encode() through cache (NULL: no cache), with the same
 * arguments, results and flags; scratch is cached_scratch_size() bytes.
 */
long llmd_tokenizer_encode_cached(const llmd_tokenizer_t *tok,
    llmd_tok_cache_t *cache, const char *text, size_t len, unsigned flags,
    void *scratch, size_t scratch_size, uint32_t *ids, size_t capacity);

#endif /* LLMD_TOKENIZER_H */
