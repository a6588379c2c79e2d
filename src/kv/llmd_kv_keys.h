/*
 * llm-d request keys, "xxh64" variant of the dual-key design
 * (docs/kv-events.md, "Request keys"): chained XXH64 over blocks of
 * block_size token ids, rooted in the hash seed and the model name.  The
 * same function keys both the index (from an event's token_ids) and a
 * request (from its prompt tokens), so the two meet without reproducing
 * vLLM's own block hash.
 */
#ifndef LLMD_KV_KEYS_H
#define LLMD_KV_KEYS_H

#include "core/llmd_common.h"

/* initH = XXH64(LE64(XXH64(seed)) || LE64(model_len) || model) */
uint64_t llmd_kv_root_key(const char *seed, size_t seed_len,
    const char *model, size_t model_len);

/*
 * key_k = XXH64(LE64(parent) || LE32(t_0..t_{B-1})
 *               [|| LE64(salt_len) || salt   only for the block whose parent
 *                                            is the root, when salt != NULL])
 * Full blocks only; returns the number of keys written (<= max).
 * parent == root means "first block of the prompt".
 */
size_t llmd_kv_request_keys(uint64_t root, uint64_t parent,
    const uint32_t *tokens, size_t ntokens, uint32_t block_size,
    const char *salt, size_t salt_len, uint64_t *out, size_t max);

#endif /* LLMD_KV_KEYS_H */
