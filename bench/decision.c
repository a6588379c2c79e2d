/*
 * The approximate decision without nginx around it: for 32 KB completions
 * prompts and 8 endpoints, time request parsing, prefix hashing,
 * prefix-index lookup and insert, and scoring with llm-d's default profile,
 * and print p50/p90/p99 per step and in total, twice: parsing with cJSON
 * then hashing the prompt bytes (llmd_request_parse, the module before the
 * body scanner; precise mode still), and the body scanner that hashes as it
 * scans (llmd_body_scan, the module's approximate path).  Then the scanner
 * alone at 32 KB, 256 KB and 1 MB prompts (linear?).  What
 * $llmd_decision_us measures inside nginx, minus the body copy and the
 * scheduler noise of a loaded machine.  Last, the same number of samples
 * of a pure-CPU loop as long as the scanner decision's p50 (no memory, no
 * calls): the tail this machine adds to any computation of that length
 * (interrupts, the hypervisor), against which the decision's p99 is read.
 *
 * The tail: the index and the arena are written once before the timed
 * requests (a running nginx has long touched its zone; first touches cost
 * a page fault each, 10-30 us on this VM), and the scanner path's slow
 * samples (above p50 + 3 us) are counted apart: the first request of each
 * of the 64 prompts (it inserts 256 new entries) and the rest, per ms of
 * the timed time, beside the control's: slow events that strike any
 * computation at the same rate per ms are the machine's, not the
 * decision's.  Page faults (getrusage) during each timed run are printed.
 *
 * LLMD_BENCH_COLD=1 adds, before each request, a system call and 256 KB
 * written elsewhere (untimed), as nginx's socket I/O does between two
 * decisions: on this VM (PTI, no PCID) a system call empties the TLB, so
 * the index's random buckets cost a page walk each, as in the worker.
 *
 * Usage: build/bin/llmd-bench-decision [requests]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "core/llmd_prompt.h"
#include "core/llmd_body_scan.h"
#include "core/llmd_prefix_hash.h"
#include "core/llmd_prefix_index.h"
#include "core/llmd_scheduler.h"

#define ARENA_SIZE  (8 << 20)
#define INDEX_SIZE  (16 << 20)
#define NEPS        8
/* the slow samples: above p50 by this much */
#define SLOW_NS     3000
/* distinct prompts, as bench/balancer.sh sends them */
#define NPROMPTS    64
#define COLD_SIZE   (256 << 10)

static char    arena[ARENA_SIZE];
static size_t  arena_used;
static int     cold;
static char    cold_junk[COLD_SIZE];
static long    run_faults;

static void *
arena_alloc(void *ctx, size_t n)
{
    void  *p;

    n = (n + 15) & ~(size_t) 15;
    if (arena_used + n > sizeof(arena)) {
        return NULL;
    }

    p = arena + arena_used;
    arena_used += n;
    return p;
}

static double
now_ns(void)
{
    struct timespec  t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}

static void
report(const char *what, double *v, int n)
{
    qsort(v, n, sizeof(double), cmp_double);
    printf("  %-22s p50 %6.1f us  p90 %6.1f us  p99 %6.1f us\n", what,
           v[n / 2] / 1e3, v[n * 9 / 10] / 1e3, v[n * 99 / 100] / 1e3);
}

static long
minor_faults(void)
{
    struct rusage  ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt + ru.ru_majflt;
}


/*
 * The samples of v (unsorted, in request order) above p50 + SLOW_NS:
 * how many, how many of them among the first `first`, and the rest per
 * ms of the samples' total time.
 */
static void
slow_report(const char *what, const double *v, int n, int first)
{
    int      i, slow, early;
    double  *s, p50, sum;

    s = malloc(n * sizeof(double));
    if (s == NULL) {
        return;
    }

    memcpy(s, v, n * sizeof(double));
    qsort(s, n, sizeof(double), cmp_double);
    p50 = s[n / 2];
    free(s);

    slow = 0; early = 0; sum = 0;

    for (i = 0; i < n; i++) {
        sum += v[i];

        if (v[i] > p50 + SLOW_NS) {
            slow++;
            early += (i < first);
        }
    }

    printf("  %-22s %d of %d above p50 + %d us (%.2f %%): %d among the "
           "first %d, the other %d = %.2f per ms of timed time\n",
           what, slow, n, SLOW_NS / 1000, 100.0 * slow / n, early, first,
           slow - early, (slow - early) / (sum / 1e6));
}


/* a completions body with a prompt of about plen bytes; returns its length */
static int
make_body(char *body, int plen)
{
    int  len;

    len = sprintf(body, "{\"model\":\"meta-llama/Llama-3.1-8B-Instruct\","
                  "\"max_tokens\":16,\"prompt\":\"%08d ", 0);
    while (len < plen) {
        len += sprintf(body + len, "The quick brown fox jumps over the "
                       "lazy dog. ");
    }
    len += sprintf(body + len, "\"}");

    return len;
}


static int
run(int scanner, char *body, int len, int n, double *tp, double *th,
    double *ti, double *ts, double *tt)
{
    int                     i, e;
    char                    err[LLMD_ERRLEN], num[9];
    void                   *mem;
    double                  t0, t1, t2, t3, t4;
    size_t                  nh;
    uint32_t                match[LLMD_MAX_ENDPOINTS];
    uint64_t                rng, hashes[256];
    llmd_prefix_held_t      held;
    llmd_alloc_t            a = { arena_alloc, NULL };
    llmd_body_t             b;
    llmd_config_t          *cf;
    llmd_request_t          req;
    llmd_sched_input_t      in;
    llmd_sched_result_t     res;
    llmd_prefix_index_t    *idx;
    const llmd_profile_t   *profile;
    double                  scores[3 * NEPS];
    llmd_endpoint_state_t   eps[NEPS];

    mem = malloc(INDEX_SIZE);
    if (mem != NULL) {
        /* every page touched once, as in a zone nginx has been using (not
           0: the compiler makes malloc + memset 0 a calloc, which touches
           nothing) */
        memset(mem, 0xa5, INDEX_SIZE);
    }

    idx = mem ? llmd_prefix_index_create(mem, INDEX_SIZE) : NULL;
    cf = llmd_config_default(err, sizeof(err));
    if (idx == NULL || cf == NULL) {
        fprintf(stderr, "setup failed: %s\n", err);
        return 1;
    }

    profile = llmd_config_primary_profile(cf);
    rng = 42;
    run_faults = minor_faults();

    for (i = 0; i < n; i++) {
        /* NPROMPTS distinct prefixes, as bench/balancer.sh sends them */
        snprintf(num, sizeof(num), "%08d", i % NPROMPTS);
        memcpy(strstr(body, "\"prompt\":\"") + 10, num, 8);

        arena_used = 0;
        memset(eps, 0, sizeof(eps));
        for (e = 0; e < NEPS; e++) {
            eps[e].fresh = 1;
            eps[e].kv_usage = 0.1 * e;
        }

        if (cold) {
            (void) syscall(SYS_getppid);
            memset(cold_junk, i, sizeof(cold_junk));
        }

        t0 = now_ns();

        if (scanner) {
            /* as ngx_llmd_request.c calls it */
            memset(&b, 0, sizeof(b));
            b.block_size = 64;
            b.max_blocks = 256;
            b.hashes = hashes;
            b.exact_len = 1;

            if (llmd_body_scan(LLMD_API_COMPLETIONS, body, len, &a, &b, err,
                               sizeof(err)) != 0)
            {
                fprintf(stderr, "scan: %s\n", err);
                return 1;
            }

            t1 = now_ns();
            nh = b.nhashes;

        } else {
            if (llmd_request_parse(LLMD_API_COMPLETIONS, body, len, &a, &req,
                                   err, sizeof(err)) != 0)
            {
                fprintf(stderr, "parse: %s\n", err);
                return 1;
            }

            t1 = now_ns();
            nh = llmd_prefix_hashes(req.model, req.model_len, NULL, 0,
                                    req.prompt, req.prompt_len, 64, 256,
                                    hashes);
        }

        t2 = now_ns();
        llmd_prefix_index_match_held(idx, hashes, nh, match, &held);
        for (e = 0; e < NEPS; e++) {
            eps[e].prefix_match = match[e];
        }

        t3 = now_ns();
        in.eps = eps;
        in.neps = NEPS;
        in.prefix_total = (uint32_t) nh;
        in.rng = &rng;
        res.scores = scores;
        llmd_schedule(profile, &in, &res);
        /* with what the lookup saw of the pick, as the module records */
        llmd_prefix_index_add_held(idx, res.order[0], hashes, nh, 31250,
                                   &held);
        t4 = now_ns();

        tp[i] = t1 - t0; th[i] = t2 - t1; ti[i] = t3 - t2; ts[i] = t4 - t3;
        tt[i] = t4 - t0;
    }

    run_faults = minor_faults() - run_faults;
    llmd_config_free(cf);
    free(mem);
    return 0;
}


/* n samples of a dependent multiply chain of about ns nanoseconds */
static void
control(double ns, int n, double *v)
{
    int                 i;
    long                k, iters;
    double              t0;
    volatile uint64_t   sink;
    uint64_t            x;

    x = 1;
    iters = 1000;
    t0 = now_ns();
    for (k = 0; k < iters; k++) {
        x = x * 6364136223846793005ULL + 1;
    }
    t0 = now_ns() - t0;
    iters = (long) (ns / (t0 / iters));

    for (i = 0; i < n; i++) {
        t0 = now_ns();
        for (k = 0; k < iters; k++) {
            x = x * 6364136223846793005ULL + 1;
        }
        v[i] = now_ns() - t0;
    }

    sink = x;
    (void) sink;
}


int
main(int argc, char **argv)
{
    int      n, len, k;
    char    *body;
    double  *tp, *th, *ti, *ts, *tt;
    static const int  sizes[3] = { 32 * 1024, 256 * 1024, 1024 * 1024 };

    n = argc > 1 ? atoi(argv[1]) : 20000;
    if (n < 100) {
        n = 100;
    }

    cold = getenv("LLMD_BENCH_COLD") != NULL
           && atoi(getenv("LLMD_BENCH_COLD")) != 0;

    /* written once: the arena's pages are not first touched in a timing */
    memset(arena, 0, sizeof(arena));

    body = malloc(1100 * 1024);
    tp = malloc(5 * n * sizeof(double));
    if (body == NULL || tp == NULL) {
        return 1;
    }

    th = tp + n; ti = th + n; ts = ti + n; tt = ts + n;

    len = make_body(body, 33600);

    printf("approximate decision, %d-byte body (32 KB prompt), %d endpoints, "
           "%d requests, one core%s:\n", len, NEPS, n,
           cold ? ", TLB and caches cold (LLMD_BENCH_COLD)" : "");

    if (run(0, body, len, n, tp, th, ti, ts, tt) != 0) {
        return 1;
    }

    printf(" cJSON tree, then the prompt bytes hashed:\n");
    report("parse (cJSON)", tp, n);
    report("prefix hashes", th, n);
    report("index lookup", ti, n);
    report("score + pick + insert", ts, n);
    report("total", tt, n);
    printf("  page faults in the timed run: %ld\n", run_faults);

    if (run(1, body, len, n, tp, th, ti, ts, tt) != 0) {
        return 1;
    }

    printf(" body scanner, hashing as it scans:\n");
    report("scan + prefix hashes", tp, n);
    report("index lookup", ti, n);
    report("score + pick + insert", ts, n);
    slow_report("total, slow samples", tt, n, NPROMPTS);
    report("total", tt, n);
    printf("  page faults in the timed run: %ld\n", run_faults);

    qsort(tt, n, sizeof(double), cmp_double);
    control(tt[n / 2], n, tp);
    printf(" control, a pure-CPU loop as long as that total's p50:\n");
    slow_report("slow samples", tp, n, 0);
    report("same length, no memory", tp, n);

    printf("body scanner alone (scan + hashes of 256 x 64-byte blocks), "
           "by prompt size:\n");

    for (k = 0; k < 3; k++) {
        char  what[64];
        int   m = n / (k == 0 ? 1 : k == 1 ? 8 : 32);

        m = m < 100 ? 100 : m;
        len = make_body(body, sizes[k]);

        if (run(1, body, len, m, tp, th, ti, ts, tt) != 0) {
            return 1;
        }

        snprintf(what, sizeof(what), "%d KB body", len / 1024);
        report(what, tp, m);
    }

    return 0;
}
