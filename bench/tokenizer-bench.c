/*
 * llmd-tokenizer-bench: load time, resident memory of a loaded tokenizer
 * and single-thread encode throughput of the C library.
 *   llmd-tokenizer-bench tokenizer.json file... (each file is one text)
 * Prints one line of key=value figures per file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tokenizer/llmd_tokenizer.h"


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static long
rss_kb(void)
{
    FILE  *f;
    long   size, resident;

    f = fopen("/proc/self/statm", "r");
    if (f == NULL || fscanf(f, "%ld %ld", &size, &resident) != 2) {
        if (f) {
            fclose(f);
        }
        return -1;
    }
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}


int
main(int argc, char **argv)
{
    char               err[256], *text;
    int                i;
    long               rss0, rss1, n, rounds;
    size_t             len, cap;
    double             t0, t1, elapsed;
    void              *scratch;
    uint32_t          *ids;
    FILE              *f;
    llmd_tokenizer_t  *tok;

    if (argc < 3) {
        fprintf(stderr, "usage: llmd-tokenizer-bench tokenizer.json "
                "file...\n");
        return 2;
    }
    rss0 = rss_kb();
    t0 = now();
    tok = llmd_tokenizer_load(argv[1], NULL, err, sizeof(err));
    t1 = now();
    if (tok == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    rss1 = rss_kb();
    printf("load_ms=%.1f rss_delta_kb=%ld\n", (t1 - t0) * 1e3, rss1 - rss0);

    for (i = 2; i < argc; i++) {
        f = fopen(argv[i], "rb");
        if (f == NULL) {
            perror(argv[i]);
            return 1;
        }
        text = malloc(1 << 24);
        len = fread(text, 1, 1 << 24, f);
        fclose(f);
        cap = llmd_tokenizer_max_ids(tok, len);
        ids = malloc(cap * sizeof(uint32_t));
        scratch = malloc(llmd_tokenizer_scratch_size(tok, len));
        n = 0;
        rounds = 0;
        t0 = now();
        do {
            n = llmd_tokenizer_encode(tok, text, len, 0, scratch,
                                      llmd_tokenizer_scratch_size(tok, len),
                                      ids, cap);
            if (n < 0) {
                fprintf(stderr, "encode failed: %ld\n", n);
                return 1;
            }
            rounds++;
            elapsed = now() - t0;
        } while (elapsed < 2.0);
        printf("file=%s bytes=%zu tokens=%ld rounds=%ld tokens_per_s=%.0f "
               "MB_per_s=%.2f\n", argv[i], len, n, rounds,
               n * rounds / elapsed, len * rounds / elapsed / 1e6);
        free(text);
        free(ids);
        free(scratch);
    }
    llmd_tokenizer_free(tok);
    return 0;
}
