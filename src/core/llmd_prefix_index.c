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
    const uint64_t *hashes, size_t n, const llmd_prefix_held_t *held);
static int llmd_pi_raise_held(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t n);
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
 * The lookup; with held, one endpoint's run is followed on the way (the
 * first endpoint found holding block 0): each later block's entry of that
 * endpoint continues the run when its newer LRU link (on the line just
 * read for its hash) is the previous block's entry.  Each block adds at
 * most one to the run (an endpoint holds a hash once), so the run is the
 * whole prompt only if every block's entry is there and linked.  In
 * registers only: the plain lookup is the same code without it (inlined
 * with held NULL).
 */
static inline void
llmd_pi_match(const llmd_prefix_index_t *idx, const uint64_t *hashes,
    size_t n, uint32_t *match, llmd_prefix_held_t *held)
{
    int               found;
    size_t            i, run;
    uint32_t          e, ep, prev, run_ep, mask, *buckets;
    llmd_pi_entry_t  *entry, *entries;

    memset(match, 0, LLMD_MAX_ENDPOINTS * sizeof(uint32_t));

    /* read once: the stores to match[] could alias the region's header */
    buckets = llmd_index_region_buckets(&idx->region, &llmd_pi_layout, 0);
    mask = idx->region.nbuckets - 1;
    entries = llmd_pi_entry(idx, 0);
    run = 0;
    run_ep = LLMD_MAX_ENDPOINTS;
    prev = LLMD_INDEX_NONE;

    if (held != NULL) {
        held->changes = idx->changes;
    }

    /*
     * Every bucket first: in nginx each lookup starts with the TLB empty
     * (a system call empties it on this VM) and the buckets out of the
     * caches, and a bucket prefetched only a few blocks ahead was still
     * missing when it was read (two thirds of the function's time there);
     * all of them at once overlap their misses and page walks.  Not wasted
     * when the match stops early: the insert after the pick
     * (llmd_prefix_index_add) reads the same buckets.  (Prefetching each
     * bucket earlier, in the body scanner as it made each hash, cost 2-3.5
     * us more per request in nginx than it saved here on a VM where every
     * such prefetch waited for its page walk: docs/benchmark.md, "Issue
     * 14, P3, twelfth session".)
     *
     * Then the first entry of every bucket, all of them before the walk
     * too: the buckets are then arriving, and the entries' misses overlap
     * as the buckets' did (a throwaway loop with the TLB emptied before
     * each lookup: 1.4-1.6 us against 1.6-1.9 with each entry prefetched
     * 8 blocks ahead).
     */
    for (i = 0; i < n; i++) {
        __builtin_prefetch(&buckets[hashes[i] & mask]);
    }

    for (i = 0; i < n; i++) {
        e = buckets[hashes[i] & mask];
        if (e != LLMD_INDEX_NONE) {
            __builtin_prefetch(&entries[e]);
        }
    }

    for (i = 0; i < n; i++) {
        found = 0;

        for (e = buckets[hashes[i] & mask];
             e != LLMD_INDEX_NONE;
             e = entry->chain)
        {
            entry = &entries[e];
            if (entry->hash != hashes[i]) {
                continue;
            }

            found = 1;
            ep = entry->base.ep;
            match[ep]++;

            if (held == NULL) {
                continue;
            }

            if (ep == run_ep) {
                run += entry->base.lru.newer == prev;
                prev = e;

            } else if (i == 0 && run_ep == LLMD_MAX_ENDPOINTS) {
                run_ep = ep;
                held->first = prev = e;
                run = 1;
            }
        }

        /* chained hashes: the first miss ends every longer prefix */
        if (!found) {
            break;
        }
    }

    if (held != NULL) {
        held->ep = run_ep;
        held->last = run == n && n > 0 ? prev : LLMD_INDEX_NONE;
    }
}


/* The insert; held: what the lookup saw, or NULL.  1 if it was taken. */
static inline int
llmd_pi_add(llmd_prefix_index_t *idx, uint32_t ep, const uint64_t *hashes,
    size_t n, uint32_t capacity, const llmd_prefix_held_t *held)
{
    int               seen;
    size_t            i;
    uint32_t          e, *bucket;
    llmd_pi_entry_t  *entry;

    if (ep >= LLMD_MAX_ENDPOINTS || capacity == 0) {
        return 0;
    }

    seen = 0;

    if (held != NULL && llmd_pi_raise_seen(idx, ep, hashes, n, held)) {
        idx->changes++;
        seen = 1;
        goto evict;
    }

    idx->changes++;

    if (llmd_pi_raise_held(idx, ep, hashes, n)) {
        goto evict;
    }

    /*
     * The first entry of each of the first blocks' buckets (the match
     * before the insert has read the buckets themselves): in a full index
     * the chain an insert searches holds other prompts' entries, cold,
     * and the search stalled on them (85 % of the function's samples).
     */
    for (i = n; i-- > 0 && i + LLMD_PI_INSERT_AHEAD >= n; ) {
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
    for (i = n; i-- > 0; ) {
        if (i >= 2 * LLMD_PI_INSERT_AHEAD) {
            __builtin_prefetch(
                llmd_pi_bucket(idx, hashes[i - 2 * LLMD_PI_INSERT_AHEAD]));
        }

        if (i >= LLMD_PI_INSERT_AHEAD) {
            e = *llmd_pi_bucket(idx, hashes[i - LLMD_PI_INSERT_AHEAD]);
            if (e != LLMD_INDEX_NONE) {
                __builtin_prefetch(llmd_pi_entry(idx, e));
            }
        }

        e = llmd_pi_find(idx, hashes[i], ep);

        if (e != LLMD_INDEX_NONE) {
            llmd_index_region_touch(&idx->region, &llmd_pi_layout, e);
            continue;
        }

        e = llmd_index_region_alloc(&idx->region, &llmd_pi_layout, ep,
                                    llmd_pi_unchain);
        if (e == LLMD_INDEX_NONE) {
            return 0;
        }

        entry = llmd_pi_entry(idx, e);
        entry->hash = hashes[i];

        bucket = llmd_pi_bucket(idx, hashes[i]);
        entry->chain = *bucket;
        *bucket = e;
    }

evict:

    llmd_pi_prefetch_victims(idx, ep, capacity);
    llmd_index_region_evict_beyond(&idx->region, ep, capacity,
                                   llmd_pi_unchain);

    return seen;
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
 * llmd_pi_raise_held on what the lookup saw: when nothing was added or
 * cleared since (the change count is the lookup's) and the lookup saw ep
 * hold the blocks as one run, the run is moved at once, with no search
 * and no walk.  The first and last entries' hashes are compared too, so
 * a held of other hashes is never taken.  0 (nothing changed) otherwise.
 */
static int
llmd_pi_raise_seen(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t n, const llmd_prefix_held_t *held)
{
    llmd_pi_entry_t  *first, *last;

    if (n == 0 || held->last == LLMD_INDEX_NONE || held->ep != ep
        || held->changes != idx->changes)
    {
        return 0;
    }

    first = llmd_pi_entry(idx, held->first);
    last = llmd_pi_entry(idx, held->last);

    if (first->hash != hashes[0] || last->hash != hashes[n - 1]) {
        return 0;
    }

    llmd_index_region_touch_run(&idx->region, &llmd_pi_layout, held->first,
                                held->last);

    return 1;
}


/*
 * A prompt sent again to the endpoint that holds it: when ep's LRU holds
 * all of its blocks as one run in their order (block 0 the newest of the
 * run), as the insert left them, the insert would find every block and
 * touch each, last first, which only moves that run in front of ep's
 * LRU.  Then the run is moved at once: one bucket search and a walk over
 * the run's links (read by the lookup just before) instead of n searches
 * and n moves.  0 (nothing changed) when the blocks are not such a run.
 */
static int
llmd_pi_raise_held(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t n)
{
    size_t            i;
    uint32_t          e, first;
    llmd_pi_entry_t  *entries;

    if (n == 0) {
        return 0;
    }

    first = llmd_pi_find(idx, hashes[0], ep);
    if (first == LLMD_INDEX_NONE) {
        return 0;
    }

    entries = llmd_pi_entry(idx, 0);
    e = first;

    for (i = 1; i < n; i++) {
        e = entries[e].base.lru.older;
        if (e == LLMD_INDEX_NONE || entries[e].hash != hashes[i]) {
            return 0;
        }
    }

    llmd_index_region_touch_run(&idx->region, &llmd_pi_layout, first, e);

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
