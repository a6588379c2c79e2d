/*
 * Approximate prefix-cache block hashes: llm-d GIE v1.1-v1.5's chain
 * ("Gen A/B") with the module's own hash function for the links:
 * h0 = XXH64(model || cache_salt);
 * h_k = XXH3_64(LE64(h_{k-1}) || LE64(XXH3_64(block_k)))
 * over full blocks of block_size bytes, at most max_blocks; h0 not listed.
 */
#ifndef LLMD_PREFIX_HASH_H
#define LLMD_PREFIX_HASH_H

#include <xxhash.h>    /* after the includer's own, if it inlines xxhash */

#include "core/llmd_common.h"


/* One link of the chain: h_k from h_{k-1} and XXH3_64(block_k). The
   scanner and llmd_prefix_hashes() both call it, so they cannot differ. */
static inline uint64_t
llmd_prefix_link(uint64_t prev, uint64_t block_hash)
{
    unsigned char  link[16];

    llmd_put_le64(link, prev);
    llmd_put_le64(link + 8, block_hash);

    return XXH3_64bits(link, sizeof(link));
}

/* h0: the chain's seed, from model and salt (salt NULL: none). */
uint64_t llmd_prefix_seed(const char *model, size_t model_len,
    const char *salt, size_t salt_len);

/* Writes up to max_blocks hashes to out; returns how many. */
size_t llmd_prefix_hashes(const char *model, size_t model_len,
    const char *salt, size_t salt_len, const unsigned char *input,
    size_t len, uint32_t block_size, uint32_t max_blocks, uint64_t *out);

#endif /* LLMD_PREFIX_HASH_H */
