/*
 * The region both prefix indexes are laid out in (see llmd_index_region.h):
 * geometry, create/attach checks, eviction, clearing an endpoint and the
 * statistics; the hot paths (alloc, free, touch) are inline in the header.
 */
#include <string.h>

#include "core/llmd_index_region.h"

/* The smallest bucket table, and entries the smallest region holds. */
#define LLMD_INDEX_MIN_BUCKETS   16
#define LLMD_INDEX_MIN_ENTRIES   16

/* Entry numbers stay clear of UINT32_MAX. */
#define LLMD_INDEX_MAX_ENTRIES   0xfffffff0u

/* Evictions between two searches for the largest endpoint. */
#define LLMD_INDEX_VICTIM_REFRESH  256


static uint32_t llmd_index_victim(llmd_index_region_t *r, uint32_t ep);
static uint32_t llmd_index_drop_oldest(llmd_index_region_t *r, uint32_t ep,
    uint32_t keep, llmd_index_unchain_pt unchain);


size_t
llmd_index_region_min_size(const llmd_index_layout_t *layout)
{
    /* the header, the smallest tables, a few entries and the unused 0 */
    return layout->header_size
           + (size_t) layout->ntables * LLMD_INDEX_MIN_BUCKETS
             * sizeof(uint32_t)
           + (LLMD_INDEX_MIN_ENTRIES + 1) * (size_t) layout->entry_size;
}


size_t
llmd_index_region_entry_bytes(const llmd_index_layout_t *layout)
{
    /* one entry and, at full load, at most one slot in each table */
    return layout->entry_size + layout->ntables * sizeof(uint32_t);
}


/* A fresh region of nb buckets per table and n entries: the header
   zeroed, every table empty. */
static llmd_index_region_t *
llmd_index_region_init(void *mem, size_t size,
    const llmd_index_layout_t *layout, size_t nb, size_t n)
{
    llmd_index_region_t  *r;

    r = mem;
    memset(r, 0, layout->header_size);

    r->layout = *layout;
    r->size = size;
    r->nbuckets = (uint32_t) nb;
    r->capacity = (uint32_t) n;
    r->fresh = 1;
    /* none chosen yet: the first eviction compares every endpoint */
    r->victim = LLMD_MAX_ENDPOINTS;

    memset(llmd_index_region_buckets(r, layout, 0), 0,
           layout->ntables * nb * sizeof(uint32_t));

    return r;
}


llmd_index_region_t *
llmd_index_region_create(void *mem, size_t size,
    const llmd_index_layout_t *layout)
{
    size_t  room, n, nb;

    if (mem == NULL || ((uintptr_t) mem & 7)
        || size < llmd_index_region_min_size(layout))
    {
        return NULL;
    }

    room = size - layout->header_size - layout->entry_size;
    n = room / llmd_index_region_entry_bytes(layout);
    if (n > LLMD_INDEX_MAX_ENTRIES) {
        n = LLMD_INDEX_MAX_ENTRIES;
    }

    /* buckets: the largest power of two not above the entry count */
    for (nb = LLMD_INDEX_MIN_BUCKETS; nb * 2 <= n; nb *= 2) { /* void */ }

    n = (room - layout->ntables * nb * sizeof(uint32_t))
        / layout->entry_size;
    if (n > LLMD_INDEX_MAX_ENTRIES) {
        n = LLMD_INDEX_MAX_ENTRIES;
    }

    return llmd_index_region_init(mem, size, layout, nb, n);
}


size_t
llmd_index_region_flat_entry_bytes(const llmd_index_layout_t *layout,
    uint32_t words_per_entry)
{
    return layout->entry_size
           + (size_t) layout->ntables * words_per_entry * sizeof(uint32_t);
}


size_t
llmd_index_region_flat_min_size(const llmd_index_layout_t *layout,
    uint32_t words_per_entry)
{
    /* the header, the unused entry 0, a line of rounding per table and
       the smallest number of entries */
    return layout->header_size + layout->entry_size
           + (size_t) layout->ntables * 64
           + LLMD_INDEX_MIN_ENTRIES
             * llmd_index_region_flat_entry_bytes(layout, words_per_entry);
}


llmd_index_region_t *
llmd_index_region_create_flat(void *mem, size_t size,
    const llmd_index_layout_t *layout, uint32_t words_per_entry)
{
    size_t  room, n, nb;

    if (mem == NULL || ((uintptr_t) mem & 7) || words_per_entry == 0
        || size < llmd_index_region_flat_min_size(layout, words_per_entry))
    {
        return NULL;
    }

    /* every table may round its words up by at most one 64-byte line */
    room = size - layout->header_size - layout->entry_size
           - (size_t) layout->ntables * 64;
    n = room / llmd_index_region_flat_entry_bytes(layout, words_per_entry);
    if (n > LLMD_INDEX_MAX_ENTRIES / words_per_entry) {
        n = LLMD_INDEX_MAX_ENTRIES / words_per_entry;
    }

    nb = (n * words_per_entry + 15) & ~(size_t) 15;

    return llmd_index_region_init(mem, size, layout, nb, n);
}


llmd_index_region_t *
llmd_index_region_attach(void *mem, size_t size,
    const llmd_index_layout_t *layout)
{
    llmd_index_region_t  *r;

    if (mem == NULL || ((uintptr_t) mem & 7)
        || size < llmd_index_region_min_size(layout))
    {
        return NULL;
    }

    r = mem;
    if (memcmp(&r->layout, layout, sizeof(llmd_index_layout_t)) != 0
        || r->size != size)
    {
        return NULL;
    }

    return r;
}


uint32_t
llmd_index_region_evict(llmd_index_region_t *r, uint32_t ep,
    llmd_index_unchain_pt unchain)
{
    uint32_t     e;
    llmd_lru_t  *lru;

    lru = &r->lru[llmd_index_victim(r, ep)];

    e = lru->oldest;
    if (e == LLMD_INDEX_NONE) {
        return LLMD_INDEX_NONE;
    }

    unchain(r, e);
    llmd_lru_unlink(lru, llmd_index_region_entries(r, &r->layout),
                    r->layout.entry_size, offsetof(llmd_index_entry_t, lru),
                    e);
    r->used--;
    r->evictions++;

    return e;
}


void
llmd_index_region_evict_beyond(llmd_index_region_t *r, uint32_t ep,
    uint32_t keep, llmd_index_unchain_pt unchain)
{
    if (ep < LLMD_MAX_ENDPOINTS) {
        r->evictions += llmd_index_drop_oldest(r, ep, keep, unchain);
    }
}


void
llmd_index_region_clear_endpoint(llmd_index_region_t *r, uint32_t ep,
    llmd_index_unchain_pt unchain)
{
    if (ep < LLMD_MAX_ENDPOINTS) {
        (void) llmd_index_drop_oldest(r, ep, 0, unchain);
    }
}


void
llmd_index_region_stats(const llmd_index_region_t *r, llmd_index_stats_t *st)
{
    size_t  i;

    st->entries = r->used;
    st->capacity = r->capacity;
    st->evictions = r->evictions;

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        st->per_endpoint[i] = r->lru[i].count;
    }
}


/*
 * The endpoint to evict from when the region is full: the one holding the
 * most entries (the inserting one on a tie), so one busy endpoint cannot
 * starve the others of space.  All endpoints are compared only every
 * LLMD_INDEX_VICTIM_REFRESH evictions (or when the victim has nothing
 * left), so a full region costs O(1) per insert, not O(endpoints); in
 * between, an inserting endpoint that has grown past the victim takes its
 * place.
 */
static uint32_t
llmd_index_victim(llmd_index_region_t *r, uint32_t ep)
{
    size_t    i;
    uint32_t  victim;

    victim = r->victim;

    if (r->victim_age++ >= LLMD_INDEX_VICTIM_REFRESH
        || victim >= LLMD_MAX_ENDPOINTS
        || r->lru[victim].count == 0)
    {
        victim = ep;
        for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
            if (r->lru[i].count > r->lru[victim].count) {
                victim = (uint32_t) i;
            }
        }

        r->victim_age = 0;

    } else if (r->lru[ep].count > r->lru[victim].count) {
        victim = ep;
    }

    r->victim = victim;

    return victim;
}


/* Unchains and frees the oldest entries of ep until it holds keep; returns
   how many. */
static uint32_t
llmd_index_drop_oldest(llmd_index_region_t *r, uint32_t ep, uint32_t keep,
    llmd_index_unchain_pt unchain)
{
    uint32_t  e, dropped;

    for (dropped = 0; r->lru[ep].count > keep; dropped++) {
        e = r->lru[ep].oldest;
        unchain(r, e);
        llmd_index_region_free(r, &r->layout, e);
    }

    return dropped;
}
