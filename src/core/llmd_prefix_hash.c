/*
 * Approximate prefix-cache block hashes, llm-d GIE v1.1-v1.5 ("Gen A/B",
 * docs/parsers.md, "Prefix hashes"):
 *
 *   h0  = XXH64(model || cache_salt, seed 0)
 *   h_k = XXH64(block_k || LE64(h_{k-1}), seed 0)
 *
 * over the full blocks of block_size bytes, at most max_blocks of them; a
 * trailing partial block is ignored and h0 is not part of the result.
 * The XXH64 state lives on the stack: nothing is allocated.
 */

#define XXH_STATIC_LINKING_ONLY
#include <string.h>
#include <xxhash.h>

#include "core/llmd_prefix_hash.h"


/* Blocks up to this size are hashed from a stack copy. */
#define LLMD_HASH_STACK_BLOCK  1024


size_t
llmd_prefix_hashes(const char *model, size_t model_len,
    const char *salt, size_t salt_len, const unsigned char *input,
    size_t len, uint32_t block_size, uint32_t max_blocks, uint64_t *out)
{
    size_t          nblocks, k;
    uint64_t        h;
    unsigned char   le[8], buf[LLMD_HASH_STACK_BLOCK + 8];
    XXH64_state_t   st;

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

    if (XXH64_reset(&st, 0) != XXH_OK) {
        return 0;
    }

    if (model_len) {
        (void) XXH64_update(&st, model, model_len);
    }

    if (salt != NULL && salt_len) {
        (void) XXH64_update(&st, salt, salt_len);
    }

    h = XXH64_digest(&st);

    for (k = 0; k < nblocks; k++) {

        if (block_size <= LLMD_HASH_STACK_BLOCK) {
            /* one-shot XXH64 over a copy: several times faster than the
               streaming calls for the usual 64-byte blocks */
            memcpy(buf, input + k * block_size, block_size);
            llmd_put_le64(buf + block_size, h);
            h = XXH64(buf, block_size + 8, 0);

        } else {
            llmd_put_le64(le, h);
            (void) XXH64_reset(&st, 0);
            (void) XXH64_update(&st, input + k * block_size, block_size);
            (void) XXH64_update(&st, le, sizeof(le));
            h = XXH64_digest(&st);
        }

        out[k] = h;
    }

    return nblocks;
}
