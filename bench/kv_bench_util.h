/*
 * What the KV-event benchmarks share: a fast pseudo-random sequence for
 * hashes and tokens, the batches' token ids (uniform, or a real
 * tokenization from LLMD_BENCH_TOKENS), a monotonic clock in seconds, and
 * a msgpack string.
 * Used by bench/kv-ingest.c (llmd-bench-kv), bench/kv-publish.c
 * (llmd-bench-kv-pub) and bench/kv-drain.c (llmd-bench-kv-drain, the clock).
 */
#ifndef KV_BENCH_UTIL_H
#define KV_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>


/* xorshift64*: the next value of the sequence in *state (never 0). */
static inline uint64_t
kv_bench_rnd(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ULL;
}


/*
 * The token ids of the batches: drawn uniformly below 151936 (Qwen3's
 * vocabulary: uint16 and uint32 in msgpack), or, with
 * LLMD_BENCH_TOKENS=FILE, taken in turn from FILE (decimal ids, any
 * separator, e.g. llmd-tokenize's output): real text has many ids below
 * 256 (punctuation, digits, bytes), 1 or 2 bytes in msgpack.
 */
typedef struct {
    uint32_t  *ids;
    size_t     n;
    size_t     next;
    uint64_t   rnd;
} kv_bench_tokens_t;


/*
 * 0, or -1 (with a message) if LLMD_BENCH_TOKENS names an unreadable file,
 * one without ids, or an id that is not a 32-bit number.
 */
static inline int
kv_bench_tokens_init(kv_bench_tokens_t *t)
{
    int          c;
    FILE        *f;
    size_t       cap;
    uint64_t     v;
    unsigned     digits;
    const char  *path;

    memset(t, 0, sizeof(*t));
    t->rnd = 0x1234567;

    path = getenv("LLMD_BENCH_TOKENS");
    if (path == NULL || path[0] == '\0') {
        return 0;
    }

    f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return -1;
    }

    cap = 0;
    v = 0;
    digits = 0;

    for ( ;; ) {
        c = getc(f);

        if (c >= '0' && c <= '9') {
            v = v * 10 + (uint64_t) (c - '0');
            if (++digits > 10 || v > UINT32_MAX) {
                fclose(f);
                free(t->ids);
                t->ids = NULL;
                fprintf(stderr, "LLMD_BENCH_TOKENS: %s: token id %zu is "
                        "not a 32-bit number\n", path, t->n + 1);
                return -1;
            }
            continue;
        }

        if (digits > 0) {
            if (t->n == cap) {
                cap = cap ? cap * 2 : 65536;
                t->ids = realloc(t->ids, cap * sizeof(uint32_t));
                if (t->ids == NULL) {
                    fclose(f);
                    t->n = 0;
                    fprintf(stderr, "%s: out of memory\n", path);
                    return -1;
                }
            }
            t->ids[t->n++] = (uint32_t) v;
        }

        v = 0;
        digits = 0;

        if (c == EOF) {
            break;
        }
    }

    fclose(f);

    if (t->n == 0) {
        fprintf(stderr, "LLMD_BENCH_TOKENS: no token ids in %s\n", path);
        return -1;
    }

    return 0;
}


static inline uint32_t
kv_bench_token(kv_bench_tokens_t *t)
{
    if (t->n == 0) {
        return (uint32_t) (kv_bench_rnd(&t->rnd) % 151936);
    }

    t->next = (t->next + 1) % t->n;

    return t->ids[t->next];
}


static inline const char *
kv_bench_tokens_name(const kv_bench_tokens_t *t)
{
    return t->n ? "ids from LLMD_BENCH_TOKENS" : "ids uniform below 151936";
}


static inline double
kv_bench_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static inline void
kv_bench_pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

#endif /* KV_BENCH_UTIL_H */
