/*
 * Approximate prefix index in one flat region (see llmd_prefix_index.h).
 *
 * Laid out in an llmd_index_region_t with one bucket table: each entry is
 * one (hash, endpoint) pair, chained in its hash bucket and, by the region,
 * in its endpoint's LRU list (head = most recently used).
 */
#include <string.h>

#include "core/llmd_prefix_index.h"

#define LLMD_PI_MAGIC    0x3178696470646d6cULL       /* "lmdpdix1" */
/* 2: the shared llmd_index_region_t header (1 had none); 3: changes */
#define LLMD_PI_VERSION  3
/* the insert's prefetch distance in blocks (its buckets twice as far):
   in a full index its searches missed first entries prefetched only 8
   blocks ahead */
#define LLMD_PI_INSERT_AHEAD  16
/*
 * at most this many of an endpoint's oldest entries are prefetched before
 * an insert evicts them (their buckets, then each bucket's first entry);
 * the eviction then unchains them in the same order as without
 */
#define LLMD_PI_EVICT_AHEAD  256
/* the lookup probes block 0, every LLMD_PI_STRIDE-th block and the last
   first (llmd_pi_match); longer prompts (llm-d allows 32,768 blocks) a
   longer stride, so at most LLMD_PI_PROBES of them */
#define LLMD_PI_STRIDE  16
#define LLMD_PI_PROBES  64


typedef struct {
    llmd_index_entry_t  base;       /* endpoint and its LRU neighbours */
    uint32_t            chain;      /* next entry of the bucket */
    uint64_t            hash;
} llmd_pi_entry_t;

struct llmd_prefix_index_s {
    llmd_index_region_t  region;
    uint64_t             changes;   /* adds and clears so far: a lookup's
                                       llmd_prefix_held_t is still true
                                       while this has not moved */
};


static const llmd_index_layout_t  llmd_pi_layout = {
    LLMD_PI_MAGIC, LLMD_PI_VERSION, sizeof(llmd_prefix_index_t),
    sizeof(llmd_pi_entry_t), 1
};


static llmd_pi_entry_t *llmd_pi_entry(const llmd_prefix_index_t *idx,
    uint32_t e);
static uint32_t *llmd_pi_bucket(const llmd_prefix_index_t *idx,
    uint64_t hash);
static uint32_t llmd_pi_find(const llmd_prefix_index_t *idx, uint64_t hash,
    uint32_t ep);
static inline void llmd_pi_match(const llmd_prefix_index_t *idx,
    const uint64_t *hashes, size_t n, uint32_t *match,
    llmd_prefix_held_t *held) __attribute__((always_inline));
static inline int llmd_pi_add(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t n, uint32_t capacity,
    const llmd_prefix_held_t *held) __attribute__((always_inline));
static int llmd_pi_raise_seen(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t n, const llmd_prefix_held_t *held,
    size_t *run, uint32_t *end);
static int llmd_pi_insert(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t from, size_t n, uint32_t first,
    uint32_t last);
static size_t llmd_pi_run(const llmd_pi_entry_t *entries, uint32_t first,
    const uint64_t *hashes, size_t n, uint32_t *end);
static void llmd_pi_unchain(llmd_index_region_t *r, uint32_t e);
static inline void llmd_pi_prefetch_victims(
    const llmd_prefix_index_t *idx, uint32_t ep, uint32_t keep)
    __attribute__((always_inline));


size_t
llmd_prefix_index_min_size(void)
{
    return llmd_index_region_min_size(&llmd_pi_layout);
}


size_t
llmd_prefix_index_entry_bytes(void)
{
    return llmd_index_region_entry_bytes(&llmd_pi_layout);
}


llmd_prefix_index_t *
llmd_prefix_index_create(void *mem, size_t size)
{
    return (llmd_prefix_index_t *) llmd_index_region_create(mem, size,
                                                            &llmd_pi_layout);
}


llmd_prefix_index_t *
llmd_prefix_index_attach(void *mem, size_t size)
{
    return (llmd_prefix_index_t *) llmd_index_region_attach(mem, size,
                                                            &llmd_pi_layout);
}


void
llmd_prefix_index_match(const llmd_prefix_index_t *idx,
    const uint64_t *hashes, size_t n, uint32_t *match)
{
    llmd_pi_match(idx, hashes, n, match, NULL);
}


void
llmd_prefix_index_match_held(const llmd_prefix_index_t *idx,
    const uint64_t *hashes, size_t n, uint32_t *match,
    llmd_prefix_held_t *held)
{
    llmd_pi_match(idx, hashes, n, match, held);
}


void
llmd_prefix_index_add(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t n, uint32_t capacity)
{
    (void) llmd_pi_add(idx, ep, hashes, n, capacity, NULL);
}


int
llmd_prefix_index_add_held(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t n, uint32_t capacity,
    const llmd_prefix_held_t *held)
{
    return llmd_pi_add(idx, ep, hashes, n, capacity, held);
}


/*
 * The lookup, without reading every block.  An endpoint's blocks of one
 * chain always form a prefix of it: an insert adds or touches a prompt's
 * blocks last first (block 0 ends up the newest), a raise moves such a run
 * whole, every later insert that touches block i + 1 of this chain touches
 * block i after it, and evictions take an endpoint's oldest entry first.
 * So block i + 1 is always older than block i in that endpoint's LRU and
 * goes first: an endpoint holding block k holds blocks 0..k.  The match of
 * an endpoint, which the walk over every block counted (blocks held until
 * the first block no endpoint holds), is then the length k of its prefix,
 * found by probing block 0, every LLMD_PI_STRIDE-th block (a longer
 * stride past 992 blocks) and the last (17 buckets for 256 blocks, all
 * prefetched at once) and then
 * only the blocks between the last probe an endpoint holds and the next:
 * ~30 buckets instead of 256, on as many pages (each lookup in nginx
 * starts with the TLB empty).  Should a prefix ever not be whole, the
 * match is still at most the prompt's length and the work bounded: each
 * block is read at most once per group of endpoints.
 *
 * held: the first endpoint found holding block 0 (bucket chain order, as
 * the walk found it), its entries of block 0 and, when it holds the whole
 * prompt, of the last block; whether the blocks between are one run of
 * its LRU is for the record to check (llmd_pi_raise_seen).
 */
static inline void
llmd_pi_match(const llmd_prefix_index_t *idx, const uint64_t *hashes,
    size_t n, uint32_t *match, llmd_prefix_held_t *held)
{
    size_t            i, j, np, lo, hi, stride;
    uint32_t          e, ep, mask, nfound, *buckets;
    uint32_t          probe[LLMD_PI_PROBES];
    uint32_t          found[LLMD_MAX_ENDPOINTS];
    uint8_t           probes_held[LLMD_MAX_ENDPOINTS];
    int               advanced;
    llmd_pi_entry_t  *entry, *entries;

    memset(match, 0, LLMD_MAX_ENDPOINTS * sizeof(uint32_t));

    if (held != NULL) {
        held->changes = idx->changes;
        held->ep = LLMD_MAX_ENDPOINTS;
        held->first = LLMD_INDEX_NONE;
        held->last = LLMD_INDEX_NONE;
    }

    if (n == 0) {
        return;
    }

    /* read once: the stores to match[] could alias the region's header */
    buckets = llmd_index_region_buckets(&idx->region, &llmd_pi_layout, 0);
    mask = idx->region.nbuckets - 1;
    entries = llmd_pi_entry(idx, 0);

    /* the probed blocks: 0, stride - 1, 2 x stride - 1, ..., n - 1 */
    stride = (n + LLMD_PI_PROBES - 3) / (LLMD_PI_PROBES - 2);
    if (stride < LLMD_PI_STRIDE) {
        stride = LLMD_PI_STRIDE;
    }

    np = 0;
    probe[np++] = 0;

    for (i = stride - 1; i < n - 1 && np < LLMD_PI_PROBES - 1; i += stride) {
        probe[np++] = (uint32_t) i;
    }

    if (n > 1) {
        probe[np++] = (uint32_t) (n - 1);
    }

    /*
     * Every probed bucket first, then every one's first entry, then the
     * walks: the misses and page walks overlap instead of waiting in turn.
     */
    for (j = 0; j < np; j++) {
        __builtin_prefetch(&buckets[hashes[probe[j]] & mask]);
    }

    for (j = 0; j < np; j++) {
        e = buckets[hashes[probe[j]] & mask];
        if (e != LLMD_INDEX_NONE) {
            __builtin_prefetch(&entries[e]);
        }
    }

    /* probes_held[ep]: how many probes, from the first on, ep holds */
    nfound = 0;

    for (j = 0; j < np; j++) {
        for (e = buckets[hashes[probe[j]] & mask];
             e != LLMD_INDEX_NONE;
             e = entry->chain)
        {
            entry = &entries[e];
            if (entry->hash != hashes[probe[j]]) {
                continue;
            }

            ep = entry->base.ep;

            /* match[ep] 1: ep holds block 0 (probes_held is not
               cleared: only such endpoints' are read) */
            if (j == 0) {
                if (match[ep] != 0) {
                    continue;
                }

                match[ep] = 1;
                probes_held[ep] = 1;
                found[nfound++] = ep;

                if (held != NULL && held->ep == LLMD_MAX_ENDPOINTS) {
                    held->ep = ep;
                    held->first = e;
                }

                continue;
            }

            if (match[ep] != 1 || probes_held[ep] != j) {
                continue;
            }

            probes_held[ep]++;

            if (held != NULL && ep == held->ep && j == np - 1) {
                held->last = e;
            }
        }

        if (nfound == 0) {
            return;
        }
    }

    if (held != NULL && np == 1) {
        held->last = held->first;
    }

    /*
     * An endpoint holding every probe holds the whole prompt; one holding
     * probes 0..c-1 holds a prefix ending between probe c - 1 and probe c:
     * those blocks are walked once for all such endpoints, each counting
     * while it holds the next block.
     */
    for (i = 0; i < nfound; i++) {
        ep = found[i];
        match[ep] = probes_held[ep] == np ? (uint32_t) n
                                          : probe[probes_held[ep] - 1] + 1;
    }

    for (j = 1; j < np; j++) {
        lo = probe[j - 1] + 1;
        hi = probe[j];

        for (i = 0; i < nfound; i++) {
            if (probes_held[found[i]] == j) {
                break;
            }
        }

        if (i == nfound || lo >= hi) {
            continue;
        }

        for (i = lo; i < hi; i++) {
            __builtin_prefetch(&buckets[hashes[i] & mask]);
        }

        for (i = lo; i < hi; i++) {
            advanced = 0;

            for (e = buckets[hashes[i] & mask];
                 e != LLMD_INDEX_NONE;
                 e = entry->chain)
            {
                entry = &entries[e];
                ep = entry->base.ep;

                if (entry->hash == hashes[i] && match[ep] == i
                    && probes_held[ep] == j)
                {
                    match[ep]++;
                    advanced = 1;
                }
            }

            if (!advanced) {
                break;
            }
        }
    }
}


/* The insert; held: what the lookup saw, or NULL.  1 if it was taken. */
static inline int
llmd_pi_add(llmd_prefix_index_t *idx, uint32_t ep, const uint64_t *hashes,
    size_t n, uint32_t capacity, const llmd_prefix_held_t *held)
{
    int               seen, spoiled;
    size_t            run;
    uint32_t          first, end;
    uint64_t          evictions;

    if (ep >= LLMD_MAX_ENDPOINTS || capacity == 0) {
        return 0;
    }

    seen = 0;
    run = 0;
    end = LLMD_INDEX_NONE;

    if (held != NULL
        && llmd_pi_raise_seen(idx, ep, hashes, n, held, &run, &end))
    {
        idx->changes++;
        seen = 1;
        goto evict;
    }

    idx->changes++;

    /*
     * The insert touches or adds every block, last first, which leaves
     * blocks 0..n - 1 the newest of ep's LRU in order.  The blocks ep
     * already holds as one run from block 0 on, in that order (a prompt
     * sent again, the turns before a chat's newest, a shared head), need
     * not be searched one by one: the others are inserted, then the run
     * is moved in front of them at once, which is where the touches would
     * have put it.  Only if it is still one run from first to end: an
     * eviction in between (a full region) may have taken part of it, and
     * the insert may have found and moved its first or last entry (a later
     * block whose hash repeats one of the run's, a collision a client can
     * craft), after which first..end would be no run of the LRU at all.
     * Then the run's blocks are inserted as the others.  A later block
     * repeating a block inside the run only leaves that entry behind the
     * run rather than in it.  The run the lookup's view was checked
     * against is that one (held->first is ep's entry of block 0): it is
     * not walked twice.
     */
    if (run > 0) {
        first = held->first;

    } else {
        first = n > 0 ? llmd_pi_find(idx, hashes[0], ep) : LLMD_INDEX_NONE;

        if (first != LLMD_INDEX_NONE) {
            run = llmd_pi_run(llmd_pi_entry(idx, 0), first, hashes, n,
                              &end);
        }
    }

    evictions = idx->region.evictions;

    spoiled = llmd_pi_insert(idx, ep, hashes, run, n, first, end);
    if (spoiled < 0) {
        return 0;
    }

    if (run > 0) {
        if (!spoiled && idx->region.evictions == evictions) {
            llmd_index_region_touch_run(&idx->region, &llmd_pi_layout, first,
                                        end);

        } else if (llmd_pi_insert(idx, ep, hashes, 0, run, LLMD_INDEX_NONE,
                                  LLMD_INDEX_NONE)
                   < 0)
        {
            return 0;
        }
    }

evict:

    llmd_pi_prefetch_victims(idx, ep, capacity);
    llmd_index_region_evict_beyond(&idx->region, ep, capacity,
                                   llmd_pi_unchain);

    return seen;
}


/*
 * Blocks from..n - 1 of a prompt for ep, last first: each found is
 * touched, each missing added, so each becomes ep's newest.  -1 if an
 * entry could not be had (nothing to evict); else 1 if an entry found was
 * first or last (the ends of the run the caller moves next), 0 if not.
 */
static int
llmd_pi_insert(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t from, size_t n, uint32_t first,
    uint32_t last)
{
    int               spoiled;
    size_t            i;
    uint32_t          e, *bucket;
    llmd_pi_entry_t  *entry;

    spoiled = 0;

    /*
     * The first entry of each of the first blocks' buckets (the match
     * before the insert has read the buckets themselves): in a full index
     * the chain an insert searches holds other prompts' entries, cold,
     * and the search stalled on them (85 % of the function's samples).
     */
    for (i = n; i-- > from && i + LLMD_PI_INSERT_AHEAD >= n; ) {
        e = *llmd_pi_bucket(idx, hashes[i]);
        if (e != LLMD_INDEX_NONE) {
            __builtin_prefetch(llmd_pi_entry(idx, e));
        }
    }

    /*
     * Last block first, so the first blocks end up most recently used: a
     * prefix is only found from block 0 on, so its head is worth the most.
     * Each block prefetches the bucket 2 x LLMD_PI_INSERT_AHEAD blocks on and
     * the first entry of the bucket LLMD_PI_INSERT_AHEAD blocks on.
     */
    for (i = n; i-- > from; ) {
        if (i >= from + 2 * LLMD_PI_INSERT_AHEAD) {
            __builtin_prefetch(
                llmd_pi_bucket(idx, hashes[i - 2 * LLMD_PI_INSERT_AHEAD]));
        }

        if (i >= from + LLMD_PI_INSERT_AHEAD) {
            e = *llmd_pi_bucket(idx, hashes[i - LLMD_PI_INSERT_AHEAD]);
            if (e != LLMD_INDEX_NONE) {
                __builtin_prefetch(llmd_pi_entry(idx, e));
            }
        }

        e = llmd_pi_find(idx, hashes[i], ep);

        if (e != LLMD_INDEX_NONE) {
            llmd_index_region_touch(&idx->region, &llmd_pi_layout, e);
            spoiled |= (e == first || e == last);
            continue;
        }

        e = llmd_index_region_alloc(&idx->region, &llmd_pi_layout, ep,
                                    llmd_pi_unchain);
        if (e == LLMD_INDEX_NONE) {
            return -1;
        }

        entry = llmd_pi_entry(idx, e);
        entry->hash = hashes[i];

        bucket = llmd_pi_bucket(idx, hashes[i]);
        entry->chain = *bucket;
        *bucket = e;
    }

    return spoiled;
}


void
llmd_prefix_index_clear_endpoint(llmd_prefix_index_t *idx, uint32_t ep)
{
    idx->changes++;
    llmd_index_region_clear_endpoint(&idx->region, ep, llmd_pi_unchain);
}


uint32_t
llmd_prefix_index_holds(const llmd_prefix_index_t *idx, uint32_t ep)
{
    return ep < LLMD_MAX_ENDPOINTS
           ? llmd_index_region_count(&idx->region, ep) : 0;
}


void
llmd_prefix_index_stats(const llmd_prefix_index_t *idx,
    llmd_prefix_index_stats_t *st)
{
    llmd_index_region_stats(&idx->region, st);
}


static llmd_pi_entry_t *
llmd_pi_entry(const llmd_prefix_index_t *idx, uint32_t e)
{
    llmd_pi_entry_t  *entries;

    entries = llmd_index_region_entries(&idx->region, &llmd_pi_layout);
    return &entries[e];
}


static uint32_t *
llmd_pi_bucket(const llmd_prefix_index_t *idx, uint64_t hash)
{
    return &llmd_index_region_buckets(&idx->region, &llmd_pi_layout, 0)[
               hash & (idx->region.nbuckets - 1)];
}


static uint32_t
llmd_pi_find(const llmd_prefix_index_t *idx, uint64_t hash, uint32_t ep)
{
    uint32_t          e;
    llmd_pi_entry_t  *entry;

    for (e = *llmd_pi_bucket(idx, hash);
         e != LLMD_INDEX_NONE;
         e = entry->chain)
    {
        entry = llmd_pi_entry(idx, e);
        if (entry->hash == hash && entry->base.ep == ep) {
            return e;
        }
    }

    return LLMD_INDEX_NONE;
}


/*
 * The insert on what the lookup saw: when nothing was added or cleared
 * since (the change count is the lookup's) and the lookup saw ep hold the
 * prompt's first and last blocks, and the blocks are one run of ep's LRU
 * in their order, the run is moved at once, with no bucket search.  The
 * lookup read only some blocks, so the run is checked here
 * (llmd_pi_run).  0 (nothing changed) when it is not such a run; then
 * *run and *end are the run from held->first that was walked, *run 0 if
 * none was.
 */
static int
llmd_pi_raise_seen(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t n, const llmd_prefix_held_t *held,
    size_t *run, uint32_t *end)
{
    llmd_pi_entry_t  *entries;

    if (n == 0 || held->last == LLMD_INDEX_NONE || held->ep != ep
        || held->changes != idx->changes)
    {
        return 0;
    }

    entries = llmd_pi_entry(idx, 0);

    if (entries[held->first].hash != hashes[0]
        || entries[held->last].hash != hashes[n - 1])
    {
        return 0;
    }

    *run = llmd_pi_run(entries, held->first, hashes, n, end);

    if (*run != n || *end != held->last) {
        return 0;
    }

    llmd_index_region_touch_run(&idx->region, &llmd_pi_layout, held->first,
                                held->last);

    return 1;
}


/*
 * Before ep's entries beyond keep are evicted, oldest first: the buckets of
 * the first LLMD_PI_EVICT_AHEAD of them all at once, then the first entry
 * of each of those buckets, where the unchain's walk starts.  Once an
 * endpoint's LRU is full every insert evicts as many entries as it adds,
 * each in a random bucket: unprefetched, the unchain's misses were most of
 * an insert's time (16 us of a 256-block insert in nginx).  Always
 * inlined: a function that only reads and prefetches is pure to gcc, which
 * drops the call.
 */
static inline void
llmd_pi_prefetch_victims(const llmd_prefix_index_t *idx, uint32_t ep,
    uint32_t keep)
{
    uint32_t          e, f, j, k, nv, mask, *buckets;
    uint32_t          victims[LLMD_PI_EVICT_AHEAD];
    llmd_pi_entry_t  *entries;

    nv = llmd_index_region_count(&idx->region, ep);

    if (nv <= keep) {
        return;
    }

    nv = nv - keep < LLMD_PI_EVICT_AHEAD ? nv - keep : LLMD_PI_EVICT_AHEAD;

    buckets = llmd_index_region_buckets(&idx->region, &llmd_pi_layout, 0);
    mask = idx->region.nbuckets - 1;
    entries = llmd_pi_entry(idx, 0);

    e = idx->region.lru[ep].oldest;

    for (j = 0; j < nv && e != LLMD_INDEX_NONE; j++) {
        victims[j] = e;
        __builtin_prefetch(&buckets[entries[e].hash & mask]);
        e = entries[e].base.lru.newer;
    }

    for (k = 0; k < j; k++) {
        f = buckets[entries[victims[k]].hash & mask];
        if (f != LLMD_INDEX_NONE && f != victims[k]) {
            __builtin_prefetch(&entries[f]);
        }
    }
}


/*
 * The run from block 0: how many of hashes[0..n - 1] the LRU links from
 * first (ep's entry of block 0) on lead through in order, each to the
 * next older entry (at least 1), and in *end the entry of the run's last
 * block.  The links stay in first's endpoint's LRU, so the run is that
 * endpoint's.  The entries one insert adds are consecutive (block i + d
 * at e - d when block i is at e): while they are, the links are checked
 * with loads that do not wait for each other; where they are not (the
 * next insert's blocks, a recycled entry), the link is followed.
 */
static size_t
llmd_pi_run(const llmd_pi_entry_t *entries, uint32_t first,
    const uint64_t *hashes, size_t n, uint32_t *end)
{
    size_t    i, d;
    uint32_t  e, older;

    e = first;
    i = 1;

    while (i < n) {
        for (d = 1; i < n && d < e; d++, i++) {
            if (entries[e - d].hash != hashes[i]
                || entries[e - d + 1].base.lru.older != e - d)
            {
                break;
            }
        }

        e -= (uint32_t) (d - 1);

        if (i == n) {
            break;
        }

        older = entries[e].base.lru.older;
        if (older == LLMD_INDEX_NONE || entries[older].hash != hashes[i]) {
            break;
        }

        e = older;
        i++;
    }

    *end = e;

    return i;
}


/* The region's unchain function: e leaves its bucket. */
static void
llmd_pi_unchain(llmd_index_region_t *r, uint32_t e)
{
    llmd_prefix_index_t  *idx;

    idx = (llmd_prefix_index_t *) r;

    llmd_index_chain_unlink(llmd_pi_bucket(idx, llmd_pi_entry(idx, e)->hash),
                            llmd_pi_entry(idx, 0), sizeof(llmd_pi_entry_t),
                            offsetof(llmd_pi_entry_t, chain), e);
}
