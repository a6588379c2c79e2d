/*
 * vLLM's prefix-cache block hashes (spec vllm-interop.md section 3):
 * hash_k = SHA-256(canonical CBOR of (parent, (tokens...), extra_keys)),
 * parent = the previous block's digest (sha256_cbor) or its low 64 bits as
 * an int (historical sha256_cbor_64bit), NONE_HASH for the first block.
 * The wire value of KV events is the digest's last 8 bytes, big-endian.
 */
#include <string.h>

#include <cbor.h>
#include <openssl/evp.h>

#include "sim.h"


/* Largest CBOR of one block: header, parent, 256 uint32 tokens, salt. */
#define SIM_CBOR_MAX  (64 + SIM_MAX_BLOCK_SIZE * 5 + SIM_MAX_SALT)


uint64_t
sim_low64(const unsigned char d[32])
{
    uint64_t  v;
    int       i;

    v = 0;
    for (i = 24; i < 32; i++) {
        v = (v << 8) | d[i];
    }

    return v;
}


static int
sim_sha256(const unsigned char *p, size_t n, unsigned char out[32])
{
    unsigned int  len;

    len = 32;
    return EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1 ? 0 : -1;
}


int
sim_hasher_init(sim_hasher_t *h, sim_algo_t algo, const char *seed)
{
    unsigned char  buf[SIM_MAX_SALT + 16];
    size_t         n, len;

    h->algo = algo;
    len = strlen(seed);
    if (len > SIM_MAX_SALT) {
        return -1;
    }

    /* NONE_HASH = H(serialise(seed string)) */
    n = cbor_encode_string_start(len, buf, sizeof(buf));
    if (n == 0) {
        return -1;
    }

    memcpy(buf + n, seed, len);
    return sim_sha256(buf, n + len, h->none);
}


size_t
sim_hash_cbor(const sim_hasher_t *h, const unsigned char *parent,
    const uint32_t *toks, size_t n, const char *salt, size_t salt_len,
    unsigned char *buf, size_t cap)
{
    size_t  off, k, i;

    if (parent == NULL) {
        parent = h->none;
    }

    if (cap < SIM_CBOR_MAX || n > SIM_MAX_BLOCK_SIZE
        || salt_len > SIM_MAX_SALT)
    {
        return 0;
    }

    off = cbor_encode_array_start(3, buf, cap);

    if (h->algo == SIM_HASH_SHA256_CBOR_64) {
        off += cbor_encode_uint(sim_low64(parent), buf + off, cap - off);

    } else {
        off += cbor_encode_bytestring_start(32, buf + off, cap - off);
        memcpy(buf + off, parent, 32);
        off += 32;
    }

    off += cbor_encode_array_start(n, buf + off, cap - off);
    for (i = 0; i < n; i++) {
        k = cbor_encode_uint(toks[i], buf + off, cap - off);
        if (k == 0) {
            return 0;
        }
        off += k;
    }

    if (salt == NULL) {
        off += cbor_encode_null(buf + off, cap - off);

    } else {
        /* extra_keys = (cache_salt,) */
        off += cbor_encode_array_start(1, buf + off, cap - off);
        off += cbor_encode_string_start(salt_len, buf + off, cap - off);
        memcpy(buf + off, salt, salt_len);
        off += salt_len;
    }

    return off;
}


uint64_t
sim_hash_block(const sim_hasher_t *h, const unsigned char *parent,
    const uint32_t *toks, size_t n, const char *salt, size_t salt_len,
    unsigned char out[32])
{
    unsigned char  buf[SIM_CBOR_MAX];
    size_t         len;

    len = sim_hash_cbor(h, parent, toks, n, salt, salt_len, buf,
                        sizeof(buf));
    if (len == 0 || sim_sha256(buf, len, out) != 0) {
        memset(out, 0, 32);
        return 0;
    }

    return sim_low64(out);
}
