/*
 * What the KV-event benchmarks share: a fast pseudo-random sequence for
 * hashes and tokens, a monotonic clock in seconds, and a msgpack string.
 * Used by bench/kv-ingest.c (llmd-bench-kv) and bench/kv-publish.c
 * (llmd-bench-kv-pub).
 */
#ifndef KV_BENCH_UTIL_H
#define KV_BENCH_UTIL_H

#include <stdint.h>
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
