/*
 * Approximate prefix index in one flat region (see llmd_prefix_index.h).
 *
 * Laid out in an llmd_index_region_t with one bucket table: each entry is
 * one (hash, endpoint) pair, chained in its hash bucket and, by the region,
 * in its endpoint's LRU list (head = most recently used).
 *
 * The bucket table is cut into regions of 2^slot_bits buckets (1024: one
 * 4 KB page; the table starts on a page when the region's memory does).
 * A prompt's blocks go in segments of LLMD_PI_SEGMENT: every block of a
 * segment has its bucket in the region chosen by the hash of the
 * segment's first block, at the slot its own hash chooses.  A lookup or
 * insert of a 256-block prompt then touches 16 bucket pages, not 256: in
 * nginx every lookup starts with the TLB empty (each system call empties
 * it on a VM without PCID) and each page cost a page walk.  The same
 * block always lands in the same bucket: its hash is chained, so it fixes
 * the whole prefix before it and with it the segment's first block.  The
 * entry keeps its region (base.spare) for the eviction's unchain, which
 * has no prompt.  Buckets head chains of entries, so a region that gets
 * more blocks than others has longer chains, never fewer entries: the
 * capacity is the entry count, whatever the regions' loads.
 */
#include <string.h>

#include "core/llmd_prefix_index.h"

#define LLMD_PI_MAGIC    0x3178696470646d6cULL       /* "lmdpdix1" */
/* 2: the shared llmd_index_region_t header (1 had none); 3: buckets in
   regions chosen per segment, the header a page */
#define LLMD_PI_VERSION  3
/* the header's size: the bucket table starts on a page boundary */
#define LLMD_PI_HEADER   4096
/* blocks of a segment, whose buckets share one region (a power of two) */
#define LLMD_PI_SEGMENT  16
/* buckets of a region, log2: 1024 x 4 bytes, a page; more when the table
   has more than 2^16 regions (the entry keeps its region in 16 bits) */
#define LLMD_PI_SLOT_BITS    10
#define LLMD_PI_REGION_BITS  16
/* spreads a segment's first hash over the regions (Fibonacci hashing) */
#define LLMD_PI_MIX      0x9e3779b97f4a7c15ULL
/* prefetch distance in blocks: lookups load a bucket this far ahead to
   prefetch its first entry; the buckets and entries of a large index are
   cache misses */
#define LLMD_PI_AHEAD    8
/* the insert's distance (its buckets twice as far): in a full index its
   searches still missed the first entries prefetched 8 blocks ahead */
#define LLMD_PI_INSERT_AHEAD  16
/*
 * at most this many of an endpoint's oldest entries are prefetched before
 * an insert evicts them (their buckets, then each bucket's first entry);
 * the eviction then unchains them in the same order as without
 */
#define LLMD_PI_EVICT_AHEAD  256


typedef struct {
    llmd_index_entry_t  base;       /* endpoint, LRU neighbours, region */
    uint32_t            chain;      /* next entry of the bucket */
    uint64_t            hash;
} llmd_pi_entry_t;

struct llmd_prefix_index_s {
    llmd_index_region_t  region;
    uint32_t             slot_bits;     /* log2 of a region's buckets */
    uint32_t             region_mask;   /* regions - 1, below 2^16 */
};


/* Where the buckets are, read once into a function's locals. */
typedef struct {
    uint32_t  *buckets;
    uint32_t   slot_bits;
    uint32_t   slot_mask;
    uint32_t   region_mask;
} llmd_pi_geo_t;

/* The region of the segment a walk over a prompt's blocks is in: computed
   once per segment, not per block (a multiply on every bucket's address
   cost the insert ~0.4 us of 256 blocks). */
typedef struct {
    size_t     segment;         /* block / LLMD_PI_SEGMENT, or SIZE_MAX */
    uint32_t   region;
    uint32_t  *base;            /* the region's first bucket */
} llmd_pi_cursor_t;


static const llmd_index_layout_t  llmd_pi_layout = {
    LLMD_PI_MAGIC, LLMD_PI_VERSION, LLMD_PI_HEADER,
    sizeof(llmd_pi_entry_t), 1
};


static llmd_pi_entry_t *llmd_pi_entry(const llmd_prefix_index_t *idx,
    uint32_t e);
static inline void llmd_pi_geo(const llmd_prefix_index_t *idx,
    llmd_pi_geo_t *g);
static inline uint32_t llmd_pi_region(const llmd_pi_geo_t *g,
    uint64_t first);
static inline uint32_t *llmd_pi_region_buckets(const llmd_pi_geo_t *g,
    uint32_t region);
static inline uint32_t *llmd_pi_entry_bucket(const llmd_pi_geo_t *g,
    const llmd_pi_entry_t *entry);
static inline void llmd_pi_cursor_init(llmd_pi_cursor_t *c);
static inline uint32_t *llmd_pi_cursor_bucket(const llmd_pi_geo_t *g,
    llmd_pi_cursor_t *c, const uint64_t *hashes, size_t i);
static uint32_t llmd_pi_find(const llmd_prefix_index_t *idx,
    const uint32_t *bucket, uint64_t hash, uint32_t ep);
static void llmd_pi_unchain(llmd_index_region_t *r, uint32_t e);
static inline void llmd_pi_prefetch_victims(
    const llmd_prefix_index_t *idx, uint32_t ep, uint32_t keep)
    __attribute__((always_inline));


_Static_assert(sizeof(llmd_prefix_index_t) <= LLMD_PI_HEADER,
               "the index header fits its page");


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
    uint32_t              bits;
    llmd_prefix_index_t  *idx;

    idx = (llmd_prefix_index_t *) llmd_index_region_create(mem, size,
                                                           &llmd_pi_layout);
    if (idx == NULL) {
        return NULL;
    }

    /* nbuckets is a power of two */
    for (bits = 0; (1u << bits) < idx->region.nbuckets; bits++) {
        /* void */
    }

    idx->slot_bits = bits < LLMD_PI_SLOT_BITS ? bits : LLMD_PI_SLOT_BITS;
    if (bits - idx->slot_bits > LLMD_PI_REGION_BITS) {
        idx->slot_bits = bits - LLMD_PI_REGION_BITS;
    }

    idx->region_mask = (1u << (bits - idx->slot_bits)) - 1;

    return idx;
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
    int               found;
    size_t            i;
    uint32_t          e;
    llmd_pi_geo_t     g;
    llmd_pi_entry_t  *entry, *entries;
    llmd_pi_cursor_t  cur, ahead;

    memset(match, 0, LLMD_MAX_ENDPOINTS * sizeof(uint32_t));

    /* read once: the stores to match[] could alias the region's header */
    llmd_pi_geo(idx, &g);
    entries = llmd_pi_entry(idx, 0);

    /*
     * Every bucket first: in nginx each lookup starts with the TLB empty
     * (a system call empties it on this VM) and the buckets out of the
     * caches, and a bucket prefetched only a few blocks ahead was still
     * missing when it was read (two thirds of the function's time there);
     * all of them at once overlap their misses and page walks (one page
     * per segment).  Not wasted when the match stops early: the insert
     * after the pick (llmd_prefix_index_add) reads the same buckets.
     */
    llmd_pi_cursor_init(&cur);

    for (i = 0; i < n; i++) {
        __builtin_prefetch(llmd_pi_cursor_bucket(&g, &cur, hashes, i));
    }

    llmd_pi_cursor_init(&cur);
    llmd_pi_cursor_init(&ahead);

    for (i = 0; i < n && i < LLMD_PI_AHEAD; i++) {
        e = *llmd_pi_cursor_bucket(&g, &ahead, hashes, i);
        if (e != LLMD_INDEX_NONE) {
            __builtin_prefetch(&entries[e]);
        }
    }

    for (i = 0; i < n; i++) {
        found = 0;

        /* the first entry of a block further on */
        if (i + LLMD_PI_AHEAD < n) {
            e = *llmd_pi_cursor_bucket(&g, &ahead, hashes,
                                       i + LLMD_PI_AHEAD);
            if (e != LLMD_INDEX_NONE) {
                __builtin_prefetch(&entries[e]);
            }
        }

        for (e = *llmd_pi_cursor_bucket(&g, &cur, hashes, i);
             e != LLMD_INDEX_NONE;
             e = entry->chain)
        {
            entry = &entries[e];
            if (entry->hash == hashes[i]) {
                match[entry->base.ep]++;
                found = 1;
            }
        }

        /* chained hashes: the first miss ends every longer prefix */
        if (!found) {
            break;
        }
    }
}


void
llmd_prefix_index_add(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t n, uint32_t capacity)
{
    size_t            i;
    uint32_t          e, *bucket;
    llmd_pi_geo_t     g;
    llmd_pi_entry_t  *entry;
    llmd_pi_cursor_t  cur, near, far;

    if (ep >= LLMD_MAX_ENDPOINTS || capacity == 0) {
        return;
    }

    llmd_pi_geo(idx, &g);
    llmd_pi_cursor_init(&cur);
    llmd_pi_cursor_init(&near);
    llmd_pi_cursor_init(&far);

    /*
     * The first entry of each of the first blocks' buckets (the match
     * before the insert has read the buckets themselves): in a full index
     * the chain an insert searches holds other prompts' entries, cold,
     * and the search stalled on them (85 % of the function's samples).
     */
    for (i = n; i-- > 0 && i + LLMD_PI_INSERT_AHEAD >= n; ) {
        e = *llmd_pi_cursor_bucket(&g, &near, hashes, i);
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
            __builtin_prefetch(llmd_pi_cursor_bucket(&g, &far, hashes,
                                   i - 2 * LLMD_PI_INSERT_AHEAD));
        }

        if (i >= LLMD_PI_INSERT_AHEAD) {
            e = *llmd_pi_cursor_bucket(&g, &near, hashes,
                                       i - LLMD_PI_INSERT_AHEAD);
            if (e != LLMD_INDEX_NONE) {
                __builtin_prefetch(llmd_pi_entry(idx, e));
            }
        }

        bucket = llmd_pi_cursor_bucket(&g, &cur, hashes, i);
        e = llmd_pi_find(idx, bucket, hashes[i], ep);

        if (e != LLMD_INDEX_NONE) {
            llmd_index_region_touch(&idx->region, &llmd_pi_layout, e);
            continue;
        }

        e = llmd_index_region_alloc(&idx->region, &llmd_pi_layout, ep,
                                    llmd_pi_unchain);
        if (e == LLMD_INDEX_NONE) {
            return;
        }

        /* the eviction above may have unchained an entry of this bucket:
           its head is read after it */
        entry = llmd_pi_entry(idx, e);
        entry->hash = hashes[i];
        entry->base.spare = (uint16_t) cur.region;
        entry->chain = *bucket;
        *bucket = e;
    }

    llmd_pi_prefetch_victims(idx, ep, capacity);
    llmd_index_region_evict_beyond(&idx->region, ep, capacity,
                                   llmd_pi_unchain);
}


void
llmd_prefix_index_clear_endpoint(llmd_prefix_index_t *idx, uint32_t ep)
{
    llmd_index_region_clear_endpoint(&idx->region, ep, llmd_pi_unchain);
}


uint32_t
llmd_prefix_index_holds(const llmd_prefix_index_t *idx, uint32_t ep)
{
    return ep < LLMD_MAX_ENDPOINTS
           ? llmd_index_region_count(&idx->region, ep) : 0;
}


size_t
llmd_prefix_index_bucket(const llmd_prefix_index_t *idx,
    const uint64_t *hashes, size_t i)
{
    llmd_pi_geo_t     g;
    llmd_pi_cursor_t  c;

    llmd_pi_geo(idx, &g);
    llmd_pi_cursor_init(&c);

    return (size_t) (llmd_pi_cursor_bucket(&g, &c, hashes, i) - g.buckets);
}


long
llmd_prefix_index_check(const llmd_prefix_index_t *idx)
{
    long              chained, steps;
    size_t            b;
    uint32_t          e;
    llmd_pi_geo_t     g;
    llmd_pi_entry_t  *entry;

    llmd_pi_geo(idx, &g);
    chained = 0;

    for (b = 0; b < idx->region.nbuckets; b++) {
        steps = 0;

        for (e = g.buckets[b]; e != LLMD_INDEX_NONE; e = entry->chain) {
            if (e > idx->region.capacity
                || ++steps > (long) idx->region.capacity)
            {
                return -1;
            }

            entry = llmd_pi_entry(idx, e);

            if (llmd_pi_entry_bucket(&g, entry) != &g.buckets[b]
                || entry->base.ep >= LLMD_MAX_ENDPOINTS)
            {
                return -1;
            }

            chained++;
        }
    }

    return chained;
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


/* The index's geometry, copied into the caller's locals. */
static inline void
llmd_pi_geo(const llmd_prefix_index_t *idx, llmd_pi_geo_t *g)
{
    g->buckets = llmd_index_region_buckets(&idx->region, &llmd_pi_layout, 0);
    g->slot_bits = idx->slot_bits;
    g->slot_mask = (1u << idx->slot_bits) - 1;
    g->region_mask = idx->region_mask;
}


/* The region of a segment whose first block has hash first. */
static inline uint32_t
llmd_pi_region(const llmd_pi_geo_t *g, uint64_t first)
{
    return (uint32_t) ((first * LLMD_PI_MIX) >> 40) & g->region_mask;
}


/* The first bucket of region region. */
static inline uint32_t *
llmd_pi_region_buckets(const llmd_pi_geo_t *g, uint32_t region)
{
    return g->buckets + ((size_t) region << g->slot_bits);
}


/* A cursor before any segment. */
static inline void
llmd_pi_cursor_init(llmd_pi_cursor_t *c)
{
    c->segment = SIZE_MAX;
    c->region = 0;
    c->base = NULL;
}


/* The bucket of block i, its region from the cursor c when it is still
   in c's segment (c->segment = SIZE_MAX: none yet). */
static inline uint32_t *
llmd_pi_cursor_bucket(const llmd_pi_geo_t *g, llmd_pi_cursor_t *c,
    const uint64_t *hashes, size_t i)
{
    if (i / LLMD_PI_SEGMENT != c->segment) {
        c->segment = i / LLMD_PI_SEGMENT;
        c->region = llmd_pi_region(g, hashes[c->segment * LLMD_PI_SEGMENT]);
        c->base = llmd_pi_region_buckets(g, c->region);
    }

    return &c->base[hashes[i] & g->slot_mask];
}


/* The bucket entry is chained in (its region kept in base.spare). */
static inline uint32_t *
llmd_pi_entry_bucket(const llmd_pi_geo_t *g, const llmd_pi_entry_t *entry)
{
    return &llmd_pi_region_buckets(g, entry->base.spare)[
               entry->hash & g->slot_mask];
}


static uint32_t
llmd_pi_find(const llmd_prefix_index_t *idx, const uint32_t *bucket,
    uint64_t hash, uint32_t ep)
{
    uint32_t          e;
    llmd_pi_entry_t  *entry;

    for (e = *bucket; e != LLMD_INDEX_NONE; e = entry->chain) {
        entry = llmd_pi_entry(idx, e);
        if (entry->hash == hash && entry->base.ep == ep) {
            return e;
        }
    }

    return LLMD_INDEX_NONE;
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
    uint32_t          e, f, j, k, nv;
    uint32_t          victims[LLMD_PI_EVICT_AHEAD];
    llmd_pi_geo_t     g;
    llmd_pi_entry_t  *entries, *v;

    nv = llmd_index_region_count(&idx->region, ep);

    if (nv <= keep) {
        return;
    }

    nv = nv - keep < LLMD_PI_EVICT_AHEAD ? nv - keep : LLMD_PI_EVICT_AHEAD;

    llmd_pi_geo(idx, &g);
    entries = llmd_pi_entry(idx, 0);

    e = idx->region.lru[ep].oldest;

    for (j = 0; j < nv && e != LLMD_INDEX_NONE; j++) {
        victims[j] = e;
        __builtin_prefetch(llmd_pi_entry_bucket(&g, &entries[e]));
        e = entries[e].base.lru.newer;
    }

    for (k = 0; k < j; k++) {
        v = &entries[victims[k]];
        f = *llmd_pi_entry_bucket(&g, v);
        if (f != LLMD_INDEX_NONE && f != victims[k]) {
            __builtin_prefetch(&entries[f]);
        }
    }
}


/* The region's unchain function: e leaves its bucket. */
static void
llmd_pi_unchain(llmd_index_region_t *r, uint32_t e)
{
    llmd_pi_geo_t         g;
    llmd_prefix_index_t  *idx;

    idx = (llmd_prefix_index_t *) r;
    llmd_pi_geo(idx, &g);

    llmd_index_chain_unlink(llmd_pi_entry_bucket(&g, llmd_pi_entry(idx, e)),
                            llmd_pi_entry(idx, 0), sizeof(llmd_pi_entry_t),
                            offsetof(llmd_pi_entry_t, chain), e);
}
