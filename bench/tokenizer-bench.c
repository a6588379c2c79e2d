/*
 * llmd-tokenizer-bench: load time, resident memory of a loaded tokenizer
 * and single-thread encode throughput of the C library.
 *   llmd-tokenizer-bench tokenizer.json file... (each file is one text)
 * Prints one line of key=value figures per file.
 *
 *   llmd-tokenizer-bench --prefix-cache tokenizer.json corpus [rounds]
 * Encode latency (p50/p90/p99/max per prompt) of ~8k-token prompts: 16
 * groups whose first ~7k tokens are shared ("Group g: " + the corpus's
 * start) followed by ~1k tokens no prompt had before ("Question i: " + a
 * slice of the corpus at a varying offset), and cold prompts ("Request i:
 * " + 8k tokens of the corpus at a varying offset); each set plain and
 * through a 16 MB prefix cache (default stride).  Every cached encoding is
 * compared with the plain one (outside the timing).  LLMD_BENCH_SETS=0123
 * picks the sets (0 shared plain, 1 shared cached, 2 cold plain, 3 cold
 * cached; default all), e.g. to profile one of them.
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


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}


/* Prompt i of a set into buf: a label, then corpus bytes from off. */
static size_t
make_prompt(char *buf, const char *label, long i, const char *corpus,
    size_t clen, size_t off, size_t len)
{
    size_t  n, k, chunk;

    n = (size_t) sprintf(buf, label, i);
    for (k = 0; k < len; k += chunk) {
        chunk = clen - (off + k) % clen;
        if (chunk > len - k) {
            chunk = len - k;
        }
        memcpy(buf + n + k, corpus + (off + k) % clen, chunk);
    }
    return n + len;
}


static int
prefix_cache_bench(const char *path, const char *corpus_path, long rounds)
{
    char                     err[256], *corpus, *buf, *shared;
    long                     i, n, m, set, ntok;
    size_t                   clen, lp, ls, len, size, cap;
    double                   t0, *lat;
    void                    *scratch;
    uint32_t                *ids, *ref;
    FILE                    *f;
    llmd_tokenizer_t        *tok;
    llmd_tok_cache_t        *cache;
    llmd_tok_cache_stats_t   st;
    const char              *sets;

    sets = getenv("LLMD_BENCH_SETS");
    if (sets == NULL || *sets == '\0') {
        sets = "0123";
    }
    tok = llmd_tokenizer_load(path, NULL, err, sizeof(err));
    if (tok == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    f = fopen(corpus_path, "rb");
    if (f == NULL) {
        perror(corpus_path);
        return 1;
    }
    corpus = malloc(1 << 20);
    clen = fread(corpus, 1, 1 << 20, f);
    fclose(f);
    cap = 1 << 16;
    cache = llmd_tok_cache_create(tok, LLMD_TOK_CACHE_MIN, 0);
    size = llmd_tokenizer_cached_scratch_size(tok, cache, 256 * 1024);
    llmd_tok_cache_free(cache);
    scratch = malloc(size);
    ids = malloc(cap * sizeof(uint32_t));
    ref = malloc(cap * sizeof(uint32_t));
    buf = malloc(256 * 1024);
    shared = malloc(256 * 1024);
    lat = malloc(rounds * sizeof(double));
    if (clen < 16384 || !scratch || !ids || !ref || !buf || !shared || !lat) {
        fprintf(stderr, "corpus too small or out of memory\n");
        return 1;
    }

    /* the bytes of ~7,000 tokens and of ~1,000 tokens of the corpus */
    for (lp = 4096; lp < 200000; lp += 256) {
        len = make_prompt(shared, "", 0, corpus, clen, 0, lp);
        n = llmd_tokenizer_encode(tok, shared, len, 0, scratch, size, ids,
                                  cap);
        if (n >= 7000) {
            break;
        }
    }
    ls = lp / 7;

    for (set = 0; set < 4; set++) {
        if (strchr(sets, '0' + (int) set) == NULL) {
            continue;
        }
        cache = set % 2 ? llmd_tok_cache_create(tok, 16 << 20, 0) : NULL;
        ntok = 0;
        for (i = -16; i < rounds; i++) {
            if (set < 2) {
                /* group (i mod 16)'s shared part, then a new question */
                len = make_prompt(buf, "Group %ld: ", (i + 16) % 16, corpus,
                                  clen, 0, lp);
                len += make_prompt(buf + len, "\n\nQuestion %ld: ", i,
                                   corpus, clen, lp + (size_t) (i + 16)
                                                  * 4099 % clen, ls);
            } else {
                len = make_prompt(buf, "Request %ld: ", i, corpus, clen,
                                  (size_t) (i + 16) * 7919 % clen, lp + ls);
            }
            t0 = now();
            n = llmd_tokenizer_encode_cached(tok, cache, buf, len,
                                             LLMD_TOK_ADD_SPECIAL_TOKENS,
                                             scratch, size, ids, cap);
            if (i >= 0) {
                lat[i] = (now() - t0) * 1e6;
                ntok += n;
            }
            m = llmd_tokenizer_encode(tok, buf, len,
                                      LLMD_TOK_ADD_SPECIAL_TOKENS, scratch,
                                      size, ref, cap);
            if (n < 0 || n != m || memcmp(ids, ref, n * sizeof(uint32_t))) {
                fprintf(stderr, "prompt %ld: cached ids differ\n", i);
                return 1;
            }
        }
        qsort(lat, rounds, sizeof(double), cmp_double);
        llmd_tok_cache_stats(cache, &st);
        printf("%s prompts, %s: %ld prompts of %ld tokens avg: "
               "p50 %.1f us, p90 %.1f us, p99 %.1f us, max %.1f us; "
               "ids identical to plain encoding; cache hits %lu of %lu, "
               "ids reused %lu, encoded %lu\n",
               set < 2 ? "shared-prefix" : "cold",
               cache ? "prefix cache 16 MB" : "plain encode", rounds,
               ntok / rounds, lat[rounds / 2], lat[rounds * 9 / 10],
               lat[rounds * 99 / 100], lat[rounds - 1],
               (unsigned long) st.hits, (unsigned long) st.lookups,
               (unsigned long) st.reused_ids,
               (unsigned long) st.encoded_ids);
        llmd_tok_cache_free(cache);
    }
    free(corpus);
    free(scratch);
    free(ids);
    free(ref);
    free(buf);
    free(shared);
    free(lat);
    llmd_tokenizer_free(tok);
    return 0;
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

    if (argc >= 4 && strcmp(argv[1], "--prefix-cache") == 0) {
        return prefix_cache_bench(argv[2], argv[3],
                                  argc > 4 ? atol(argv[4]) : 2000);
    }
    if (argc < 3) {
        fprintf(stderr, "usage: llmd-tokenizer-bench tokenizer.json "
                "file...\n       llmd-tokenizer-bench --prefix-cache "
                "tokenizer.json corpus [rounds]\n");
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
