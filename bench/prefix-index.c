/*
 * The approximate prefix index's lookup and record, per prompt shape,
 * without nginx: what one request costs the index (llmd_prefix_index_
 * match_held, then llmd_prefix_index_add_held for the picked endpoint, as
 * the module calls them) when the same prompts come back (what
 * bench/balancer.sh sends), when chats grow turn by turn, and when
 * prompts share a long head (a system prompt).  64 prompts of up to 512
 * blocks (32 KB at 64 bytes a block), 4 endpoints, each prompt's
 * endpoint fixed (prefix affinity); p50 / p90 / p99 per shape.
 *
 *   repeat  64 prompts of 512 blocks, in turn
 *   chat    64 conversations in turn; turn t sends 64 + 32 t blocks
 *           (t = 0..14, then again), each turn the one before plus 32
 *   shared  64 prompts of 512 blocks, the first 448 the same in all
 *
 * LLMD_BENCH_COLD=1: before each request a system call and 256 KB
 * written elsewhere (untimed), as the worker's socket I/O does between two
 * decisions (on a VM without PCID a system call empties the TLB).
 *
 * Usage: build/bin/llmd-bench-prefix-index [requests]   (run with taskset)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "core/llmd_prefix_index.h"

#define NPROMPTS    64
#define NBLOCKS     512
#define NEPS        4
#define SHARED      448
#define INDEX_SIZE  (16 << 20)
#define COLD_SIZE   (256 << 10)
#define WARMUP      2000

static uint64_t  hashes[NPROMPTS][NBLOCKS];
static char      cold_junk[COLD_SIZE];


static double
now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}


/* a prompt's chain: distinct per block and prompt, as chained hashes are */
static void
make_prompts(const char *shape)
{
    size_t    k, i;
    uint64_t  x;

    x = 88172645463325252ULL;

    for (k = 0; k < NPROMPTS; k++) {
        for (i = 0; i < NBLOCKS; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            hashes[k][i] = x;
        }

        if (strcmp(shape, "shared") == 0 && k > 0) {
            memcpy(hashes[k], hashes[0], SHARED * sizeof(uint64_t));
        }
    }
}


static size_t
blocks_of(const char *shape, long r)
{
    if (strcmp(shape, "chat") == 0) {
        return 64 + 32 * (size_t) ((r / NPROMPTS) % 15);
    }

    return NBLOCKS;
}


static int
run(const char *shape, long requests, int cold)
{
    int                   seen, rc;
    long                  r;
    size_t                k, n, taken;
    double                t0, t1, t2, *lookup, *record;
    void                 *mem;
    uint32_t              match[LLMD_MAX_ENDPOINTS];
    llmd_prefix_held_t    held;
    llmd_prefix_index_t  *idx;

    mem = calloc(1, INDEX_SIZE);
    lookup = malloc(requests * sizeof(double));
    record = malloc(requests * sizeof(double));
    rc = 1;

    if (mem == NULL || lookup == NULL || record == NULL) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }

    idx = llmd_prefix_index_create(mem, INDEX_SIZE);
    if (idx == NULL) {
        fprintf(stderr, "llmd_prefix_index_create failed\n");
        goto done;
    }

    make_prompts(shape);
    taken = 0;

    for (r = -WARMUP; r < requests; r++) {
        k = (size_t) (r + WARMUP) % NPROMPTS;
        n = blocks_of(shape, r + WARMUP);

        if (cold) {
            (void) syscall(SYS_getppid);
            memset(cold_junk, (int) r, sizeof(cold_junk));
        }

        t0 = now_ns();
        llmd_prefix_index_match_held(idx, hashes[k], n, match, &held);
        t1 = now_ns();
        seen = llmd_prefix_index_add_held(idx, k % NEPS, hashes[k], n,
                                          1 << 20, &held);
        t2 = now_ns();

        if (r >= 0) {
            lookup[r] = t1 - t0;
            record[r] = t2 - t1;
            taken += seen;
        }
    }

    qsort(lookup, requests, sizeof(double), cmp_double);
    qsort(record, requests, sizeof(double), cmp_double);

    printf("  %-7s lookup p50 %5.2f p90 %5.2f p99 %5.2f us;"
           "  record p50 %5.2f p90 %5.2f p99 %5.2f us"
           " (%zu of %ld taken as the lookup saw them)\n", shape,
           lookup[requests / 2] / 1e3, lookup[requests * 9 / 10] / 1e3,
           lookup[requests * 99 / 100] / 1e3, record[requests / 2] / 1e3,
           record[requests * 9 / 10] / 1e3,
           record[requests * 99 / 100] / 1e3, taken, requests);

    rc = 0;

done:

    free(mem);
    free(lookup);
    free(record);

    return rc;
}


int
main(int argc, char **argv)
{
    int          cold;
    long         requests;
    const char  *cold_env;

    requests = argc > 1 ? atol(argv[1]) : 20000;
    if (requests < 100) {
        fprintf(stderr, "usage: %s [requests >= 100]\n", argv[0]);
        return 1;
    }

    cold_env = getenv("LLMD_BENCH_COLD");
    cold = cold_env != NULL && atoi(cold_env) != 0;

    printf("prefix index per request, %d prompts of up to %d blocks, "
           "%d endpoints, %ld requests%s:\n", NPROMPTS, NBLOCKS, NEPS,
           requests, cold ? ", TLB and caches emptied before each" : "");

    return run("repeat", requests, cold) || run("chat", requests, cold)
           || run("shared", requests, cold);
}
