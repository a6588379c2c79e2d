/*
 * The region both prefix indexes (approximate, precise) are laid out in:
 * one caller-provided memory block, nginx shared memory or malloc'ed,
 *
 *   index header (starts with llmd_index_region_t) | bucket tables | entries
 *
 * with offsets only, so it survives a reload that maps it elsewhere.
 * Entries have a fixed size, start with llmd_index_entry_t, are numbered
 * from 1 (0 = none) and linked by number.  The region owns allocation (free
 * list, never-used entries, and when full eviction of the oldest entry of
 * the largest endpoint), one LRU list per endpoint and the statistics.  The
 * index on top owns its bucket chains and what an entry means: before the
 * region frees an entry it evicts, it calls the index's unchain function,
 * which takes the entry out of the index's chains.  Not thread-safe: the
 * caller holds a lock.
 */
#ifndef LLMD_INDEX_REGION_H
#define LLMD_INDEX_REGION_H

#include "core/llmd_common.h"
#include "core/llmd_lru.h"

#define LLMD_INDEX_NONE  0

/* What identifies an index's layout: attach refuses a region made with any
   other (another index, or an older build of the same one). */
typedef struct {
    uint64_t  magic;           /* which index */
    uint32_t  version;         /* bumped when its header or entry changes */
    uint32_t  header_size;     /* the index's header */
    uint32_t  entry_size;
    uint32_t  ntables;         /* bucket tables */
} llmd_index_layout_t;

/* The start of every entry; the index's own fields follow. */
typedef struct {
    llmd_lru_link_t  lru;      /* its endpoint's LRU; for a free entry,
                                  lru.older links the free list */
    uint16_t         ep;
    uint16_t         reserved;
} llmd_index_entry_t;

/* The start of every index header. */
typedef struct {
    llmd_index_layout_t  layout;
    uint64_t             size;          /* of the whole region */
    uint64_t             evictions;
    uint32_t             nbuckets;      /* per table, a power of two */
    uint32_t             capacity;      /* entries 1..capacity */
    uint32_t             used;
    uint32_t             free;          /* recycled entries */
    uint32_t             fresh;         /* never used yet: fresh..capacity */
    uint32_t             victim;        /* endpoint to evict from */
    uint32_t             victim_age;    /* evictions since it was chosen */
    uint32_t             reserved;
    llmd_lru_t           lru[LLMD_MAX_ENDPOINTS];
} llmd_index_region_t;

typedef struct {
    uint64_t  entries;
    uint64_t  capacity;                 /* max entries in the region */
    uint64_t  evictions;
    uint32_t  per_endpoint[LLMD_MAX_ENDPOINTS];
} llmd_index_stats_t;

/* Takes entry e out of the index's own chains (the region then frees it). */
typedef void (*llmd_index_unchain_pt)(llmd_index_region_t *r, uint32_t e);


/* Smallest region that holds a few entries. */
size_t llmd_index_region_min_size(const llmd_index_layout_t *layout);

/* Bytes one entry costs, its slot in each bucket table included. */
size_t llmd_index_region_entry_bytes(const llmd_index_layout_t *layout);

/* Lays out an empty index in mem[0..size) (8-byte aligned): the header is
   zeroed but for the region's fields, the buckets are empty.  NULL if mem
   is misaligned or size too small. */
llmd_index_region_t *llmd_index_region_create(void *mem, size_t size,
    const llmd_index_layout_t *layout);

/*
 * As llmd_index_region_create, for an index whose bucket tables are not
 * chained lists heads but open-addressed slots: each of the ntables tables
 * gets words_per_entry uint32 words per entry the region holds (rounded up
 * to whole 64-byte lines; nbuckets = words per table, a multiple of 16, not
 * a power of two), so the tables' load is fixed by the layout, whatever
 * the size.  NULL if mem is misaligned or size holds fewer than 16 entries.
 */
llmd_index_region_t *llmd_index_region_create_flat(void *mem, size_t size,
    const llmd_index_layout_t *layout, uint32_t words_per_entry);

/* Bytes one entry costs in a region made by llmd_index_region_create_flat,
   and the smallest such region. */
size_t llmd_index_region_flat_entry_bytes(const llmd_index_layout_t *layout,
    uint32_t words_per_entry);
size_t llmd_index_region_flat_min_size(const llmd_index_layout_t *layout,
    uint32_t words_per_entry);

/* The index created earlier in mem[0..size) with this very layout, or
   NULL (misaligned, other size, other magic, version or sizes). */
llmd_index_region_t *llmd_index_region_attach(void *mem, size_t size,
    const llmd_index_layout_t *layout);

/*
 * The slow path of llmd_index_region_alloc, for a full region: the oldest
 * entry of the endpoint holding the most entries, unchained and out of its
 * LRU, for the caller to reuse (counted as an eviction).  LLMD_INDEX_NONE
 * if there is nothing to evict.
 */
uint32_t llmd_index_region_evict(llmd_index_region_t *r, uint32_t ep,
    llmd_index_unchain_pt unchain);

/* Evicts the oldest entries of ep until it holds at most keep. */
void llmd_index_region_evict_beyond(llmd_index_region_t *r, uint32_t ep,
    uint32_t keep, llmd_index_unchain_pt unchain);

/* Unchains and frees every entry of ep (not counted as evictions). */
void llmd_index_region_clear_endpoint(llmd_index_region_t *r, uint32_t ep,
    llmd_index_unchain_pt unchain);

void llmd_index_region_stats(const llmd_index_region_t *r,
    llmd_index_stats_t *st);


/*
 * Bucket table t (0..ntables-1) of a region laid out with layout:
 * nbuckets entry numbers.  An index passes its own static layout, so the
 * compiler folds the header size into the address.
 */
static inline uint32_t *
llmd_index_region_buckets(const llmd_index_region_t *r,
    const llmd_index_layout_t *layout, uint32_t t)
{
    return (uint32_t *) ((char *) r + layout->header_size)
           + (size_t) t * r->nbuckets;
}


/* Entry 0 (unused) of the array after the bucket tables: entry e is at
   entries + e * entry_size. */
static inline void *
llmd_index_region_entries(const llmd_index_region_t *r,
    const llmd_index_layout_t *layout)
{
    return llmd_index_region_buckets(r, layout, layout->ntables);
}


/*
 * The functions below take the layout too: an index passes its own static
 * one, so the entry size and the offsets are constants in its hot paths.
 */

static inline llmd_index_entry_t *
llmd_index_region_entry(const llmd_index_region_t *r,
    const llmd_index_layout_t *layout, uint32_t e)
{
    char  *entries;

    entries = llmd_index_region_entries(r, layout);
    return (llmd_index_entry_t *) (entries + (size_t) e * layout->entry_size);
}


/*
 * A new entry, the newest of ep's LRU (ep < LLMD_MAX_ENDPOINTS); only its
 * llmd_index_entry_t is set.  A recycled entry first, then a never-used
 * one, else one evicted (llmd_index_region_evict).  LLMD_INDEX_NONE if
 * there is nothing to evict.
 */
static inline uint32_t
llmd_index_region_alloc(llmd_index_region_t *r,
    const llmd_index_layout_t *layout, uint32_t ep,
    llmd_index_unchain_pt unchain)
{
    uint32_t  e;

    e = r->free;

    if (e != LLMD_INDEX_NONE) {
        r->free = llmd_index_region_entry(r, layout, e)->lru.older;

    } else if (r->fresh <= r->capacity) {
        e = r->fresh++;

    } else {
        e = llmd_index_region_evict(r, ep, unchain);
        if (e == LLMD_INDEX_NONE) {
            return LLMD_INDEX_NONE;
        }
    }

    llmd_index_region_entry(r, layout, e)->ep = (uint16_t) ep;
    llmd_lru_push(&r->lru[ep], llmd_index_region_entries(r, layout),
                  layout->entry_size, offsetof(llmd_index_entry_t, lru), e);
    r->used++;

    return e;
}


/* Frees entry e, already out of the index's chains. */
static inline void
llmd_index_region_free(llmd_index_region_t *r,
    const llmd_index_layout_t *layout, uint32_t e)
{
    llmd_index_entry_t  *entry;

    entry = llmd_index_region_entry(r, layout, e);
    llmd_lru_unlink(&r->lru[entry->ep], llmd_index_region_entries(r, layout),
                    layout->entry_size, offsetof(llmd_index_entry_t, lru),
                    e);

    entry->lru.older = r->free;
    r->free = e;
    r->used--;
}


/* Makes e the most recently used entry of its endpoint. */
static inline void
llmd_index_region_touch(llmd_index_region_t *r,
    const llmd_index_layout_t *layout, uint32_t e)
{
    void        *entries;
    llmd_lru_t  *lru;

    entries = llmd_index_region_entries(r, layout);
    lru = &r->lru[llmd_index_region_entry(r, layout, e)->ep];

    llmd_lru_unlink(lru, entries, layout->entry_size,
                    offsetof(llmd_index_entry_t, lru), e);
    llmd_lru_push(lru, entries, layout->entry_size,
                  offsetof(llmd_index_entry_t, lru), e);
}


/* Makes the run first..last of one endpoint's LRU (first the newest of
   it, last the oldest) its most recently used entries, order kept. */
static inline void
llmd_index_region_touch_run(llmd_index_region_t *r,
    const llmd_index_layout_t *layout, uint32_t first, uint32_t last)
{
    llmd_lru_raise_run(&r->lru[llmd_index_region_entry(r, layout, first)->ep],
                       llmd_index_region_entries(r, layout),
                       layout->entry_size, offsetof(llmd_index_entry_t, lru),
                       first, last);
}


/* Entries endpoint ep holds. */
static inline uint32_t
llmd_index_region_count(const llmd_index_region_t *r, uint32_t ep)
{
    return r->lru[ep].count;
}


/*
 * Takes entry e out of the bucket chain that starts at *link; entries of
 * the chain link to the next one with the uint32_t at next_off.  Nothing
 * happens if e is not in the chain.
 */
static inline void
llmd_index_chain_unlink(uint32_t *link, void *entries, size_t entry_size,
    size_t next_off, uint32_t e)
{
    while (*link != LLMD_INDEX_NONE && *link != e) {
        link = (uint32_t *) ((char *) entries + (size_t) *link * entry_size
                             + next_off);
    }

    if (*link == e) {
        *link = *(uint32_t *) ((char *) entries + (size_t) e * entry_size
                               + next_off);
    }
}

#endif /* LLMD_INDEX_REGION_H */
