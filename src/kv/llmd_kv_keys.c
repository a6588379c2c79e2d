/*
 * llm-d "xxh64" request keys (see llmd_kv_keys.h).  All integers enter the
 * hash little-endian, whatever the host order.
 */
#include <string.h>

#define XXH_STATIC_LINKING_ONLY      /* XXH64_state_t on the stack */
#include <xxhash.h>

#include "core/llmd_common.h"
#include "kv/llmd_kv_keys.h"

/* Blocks up to this many tokens are hashed in one call from a stack copy. */
#define LLMD_KV_KEYS_FAST_TOKENS  256


static void llmd_kv_put_le32(unsigned char *p, uint32_t v);


uint64_t
llmd_kv_root_key(const char *seed, size_t seed_len, const char *model,
    size_t model_len)
{
    unsigned char  head[16];
    XXH64_state_t  st;

    llmd_put_le64(head, XXH64(seed_len ? seed : "", seed_len, 0));
    llmd_put_le64(head + 8, (uint64_t) model_len);

    XXH64_reset(&st, 0);
    XXH64_update(&st, head, sizeof(head));
    if (model_len) {
        XXH64_update(&st, model, model_len);
    }

    return XXH64_digest(&st);
}


size_t
llmd_kv_request_keys(uint64_t root, uint64_t parent, const uint32_t *tokens,
    size_t ntokens, uint32_t block_size, const char *salt, size_t salt_len,
    uint64_t *out, size_t max)
{
    size_t          n, k, i, len;
    unsigned char   buf[8 + 4 * LLMD_KV_KEYS_FAST_TOKENS + 8];
    unsigned char   le[4 * 64];
    const uint32_t *t;
    XXH64_state_t   st;

    if (block_size == 0) {
        return 0;
    }

    n = ntokens / block_size;
    if (n > max) {
        n = max;
    }

    for (k = 0; k < n; k++) {
        t = tokens + k * block_size;

        if (block_size <= LLMD_KV_KEYS_FAST_TOKENS) {
            llmd_put_le64(buf, parent);
            for (i = 0; i < block_size; i++) {
                llmd_kv_put_le32(buf + 8 + 4 * i, t[i]);
            }
            len = 8 + 4 * (size_t) block_size;

            if (salt == NULL || parent != root) {
                parent = XXH64(buf, len, 0);
                out[k] = parent;
                continue;
            }

            XXH64_reset(&st, 0);
            XXH64_update(&st, buf, len);

        } else {
            /* large blocks: stream the tokens in slices */
            XXH64_reset(&st, 0);
            llmd_put_le64(buf, parent);
            XXH64_update(&st, buf, 8);

            for (i = 0; i < block_size; i++) {
                llmd_kv_put_le32(le + 4 * (i % 64), t[i]);
                if (i % 64 == 63 || i + 1 == block_size) {
                    XXH64_update(&st, le, 4 * (i % 64 + 1));
                }
            }
        }

        if (salt != NULL && parent == root) {
            llmd_put_le64(buf, (uint64_t) salt_len);
            XXH64_update(&st, buf, 8);
            if (salt_len) {
                XXH64_update(&st, salt, salt_len);
            }
        }

        parent = XXH64_digest(&st);
        out[k] = parent;
    }

    return n;
}


static void
llmd_kv_put_le32(unsigned char *p, uint32_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 4);
#else
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
    p[2] = (unsigned char) (v >> 16);
    p[3] = (unsigned char) (v >> 24);
#endif
}
