/*
 * Approximate prefix-cache block hashes (docs/parsers.md, "Prefix
 * hashes"). The chain is llm-d GIE v1.1-v1.5's ("Gen A/B"): every block's
 * hash depends on the block's bytes and on the previous block's hash, the
 * first on model and cache_salt. The hash function of the links is the
 * module's own (the approximate index is the module's own shared memory;
 * nothing outside the module sees these values):
 *
 *   h0  = XXH64(model || cache_salt, seed 0)
 *   b_k = XXH3_64bits(block_k)
 *   h_k = XXH3_64bits(LE64(h_{k-1}) || LE64(b_k))
 *
 * over the full blocks of block_size bytes, at most max_blocks of them; a
 * trailing partial block is ignored and h0 is not part of the result.
 * The b_k do not depend on each other, so the CPU overlaps them; only the
 * 16-byte link is serial (llm-d's XXH64 over block || LE64(h_{k-1}) was
 * serial over the whole block: ~2.4 us for 256 blocks against ~1.0 us).
 * Nothing is allocated.
 */

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "core/llmd_prefix_hash.h"


uint64_t
llmd_prefix_seed(const char *model, size_t model_len, const char *salt,
    size_t salt_len)
{
    XXH64_state_t  st;

    (void) XXH64_reset(&st, 0);

    if (model_len) {
        (void) XXH64_update(&st, model, model_len);
    }

    if (salt != NULL && salt_len) {
        (void) XXH64_update(&st, salt, salt_len);
    }

    return XXH64_digest(&st);
}


size_t
llmd_prefix_hashes(const char *model, size_t model_len,
    const char *salt, size_t salt_len, const unsigned char *input,
    size_t len, uint32_t block_size, uint32_t max_blocks, uint64_t *out)
{
    size_t    nblocks, k;
    uint64_t  h;

    if (block_size == 0 || max_blocks == 0 || input == NULL) {
        return 0;
    }

    /* full blocks only; never more than the caller's array holds */
    nblocks = len / block_size;

    if (nblocks > max_blocks) {
        nblocks = max_blocks;
    }

    if (nblocks == 0) {
        return 0;
    }

    h = llmd_prefix_seed(model, model_len, salt, salt_len);

    for (k = 0; k < nblocks; k++) {
        h = llmd_prefix_link(h, XXH3_64bits(input + k * block_size,
                                            block_size));
        out[k] = h;
    }

    return nblocks;
}
