/*
 * Approximate prefix-cache block hashes (llm-d GIE v1.1-v1.5 "Gen A/B"):
 * h0 = XXH64(model || cache_salt); h_k = XXH64(block_k || LE64(h_{k-1}))
 * over full blocks of block_size bytes, at most max_blocks; h0 not listed.
 */
#ifndef LLMD_PREFIX_HASH_H
#define LLMD_PREFIX_HASH_H

#include <string.h>

#include "core/llmd_common.h"

/*
 * LE64(v) at p, the chain value as h_k hashes it: one store on little-
 * endian hosts (byte stores followed by XXH64's 8-byte load of them stall
 * on store forwarding, on the chain's critical path).  Shared by
 * llmd_prefix_hashes() and the body scanner, which must hash alike.
 */
static inline void
llmd_prefix_le64(unsigned char *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 8);
#else
    int  i;

    for (i = 0; i < 8; i++) {
        p[i] = (unsigned char) (v >> (8 * i));
    }
#endif
}

/* Writes up to max_blocks hashes to out; returns how many. */
size_t llmd_prefix_hashes(const char *model, size_t model_len,
    const char *salt, size_t salt_len, const unsigned char *input,
    size_t len, uint32_t block_size, uint32_t max_blocks, uint64_t *out);

#endif /* LLMD_PREFIX_HASH_H */
