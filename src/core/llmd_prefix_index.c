/*
 * Approximate prefix index in one flat region (see llmd_prefix_index.h).
 *
 * Layout: header | buckets (uint32 entry numbers) | entries.  Entries are
 * numbered from 1 (0 = none) and linked by number, never by pointer, so the
 * region may be mapped at another address after a reload.  Each entry is one
 * (hash, endpoint) pair, chained in its hash bucket and in its endpoint's
 * LRU list (head = most recently used).
 */
#include <string.h>

#include "core/llmd_lru.h"
#include "core/llmd_prefix_index.h"

#define LLMD_PI_MAGIC    0x3178696470646d6cULL       /* "lmdpdix1" */
#define LLMD_PI_NONE     0


typedef struct {
    uint64_t  hash;
    uint32_t  chain;          /* next entry of the bucket, or free list */
    llmd_lru_link_t  lru;     /* LRU neighbours of the same endpoint */
    uint16_t  ep;
    uint16_t  reserved;
} llmd_pi_entry_t;

struct llmd_prefix_index_s {
    uint64_t         magic;
    uint64_t         size;
    uint64_t         evictions;
    uint32_t         nbuckets;       /* power of two */
    uint32_t         capacity;       /* entries */
    uint32_t         used;
    uint32_t         free;           /* recycled entries */
    uint32_t         fresh;          /* entries never used yet: fresh..cap */
    uint32_t         reserved;
    llmd_lru_t       lru[LLMD_MAX_ENDPOINTS];
};


static uint32_t *llmd_pi_buckets(const llmd_prefix_index_t *idx);
static llmd_pi_entry_t *llmd_pi_entry(const llmd_prefix_index_t *idx,
    uint32_t e);
static uint32_t llmd_pi_find(const llmd_prefix_index_t *idx, uint64_t hash,
    uint32_t ep);
static uint32_t llmd_pi_alloc(llmd_prefix_index_t *idx, uint32_t ep);
static void llmd_pi_remove(llmd_prefix_index_t *idx, uint32_t e);
static void llmd_pi_lru_unlink(llmd_prefix_index_t *idx, uint32_t e);
static void llmd_pi_lru_push(llmd_prefix_index_t *idx, uint32_t e);


size_t
llmd_prefix_index_min_size(void)
{
    /* header, 16 buckets, 16 entries and the unused entry 0 */
    return sizeof(llmd_prefix_index_t) + 16 * sizeof(uint32_t)
           + 17 * sizeof(llmd_pi_entry_t);
}


size_t
llmd_prefix_index_entry_bytes(void)
{
    /* one entry and, at full load, at most one bucket slot */
    return sizeof(llmd_pi_entry_t) + sizeof(uint32_t);
}


llmd_prefix_index_t *
llmd_prefix_index_create(void *mem, size_t size)
{
    size_t                room, n, nb;
    llmd_prefix_index_t  *idx;

    if (mem == NULL || size < llmd_prefix_index_min_size()
        || ((uintptr_t) mem & 7))
    {
        return NULL;
    }

    room = size - sizeof(llmd_prefix_index_t) - sizeof(llmd_pi_entry_t);
    n = room / llmd_prefix_index_entry_bytes();
    if (n > 0xfffffff0u) {
        n = 0xfffffff0u;
    }

    /* buckets: the largest power of two not above the entry count */
    for (nb = 16; nb * 2 <= n; nb *= 2) { /* void */ }

    n = (room - nb * sizeof(uint32_t)) / sizeof(llmd_pi_entry_t);
    if (n > 0xfffffff0u) {
        n = 0xfffffff0u;
    }

    idx = mem;
    memset(idx, 0, sizeof(llmd_prefix_index_t));
    memset(llmd_pi_buckets(idx), 0, nb * sizeof(uint32_t));

    idx->size = size;
    idx->nbuckets = (uint32_t) nb;
    idx->capacity = (uint32_t) n;
    idx->fresh = 1;
    idx->magic = LLMD_PI_MAGIC;

    return idx;
}


llmd_prefix_index_t *
llmd_prefix_index_attach(void *mem, size_t size)
{
    llmd_prefix_index_t  *idx;

    if (mem == NULL || size < llmd_prefix_index_min_size()) {
        return NULL;
    }

    idx = mem;
    if (idx->magic != LLMD_PI_MAGIC || idx->size != size) {
        return NULL;
    }

    return idx;
}


void
llmd_prefix_index_match(const llmd_prefix_index_t *idx,
    const uint64_t *hashes, size_t n, uint32_t *match)
{
    int               found;
    size_t            i;
    uint32_t          e;
    llmd_pi_entry_t  *entry;

    memset(match, 0, LLMD_MAX_ENDPOINTS * sizeof(uint32_t));

    for (i = 0; i < n; i++) {
        found = 0;

        for (e = llmd_pi_buckets(idx)[hashes[i] & (idx->nbuckets - 1)];
             e != LLMD_PI_NONE;
             e = entry->chain)
        {
            entry = llmd_pi_entry(idx, e);
            if (entry->hash == hashes[i]) {
                match[entry->ep]++;
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
    llmd_pi_entry_t  *entry;

    if (ep >= LLMD_MAX_ENDPOINTS || capacity == 0) {
        return;
    }

    /*
     * Last block first, so the first blocks end up most recently used: a
     * prefix is only found from block 0 on, so its head is worth the most.
     */
    for (i = n; i-- > 0; ) {
        e = llmd_pi_find(idx, hashes[i], ep);

        if (e != LLMD_PI_NONE) {
            llmd_pi_lru_unlink(idx, e);
            llmd_pi_lru_push(idx, e);
            continue;
        }

        e = llmd_pi_alloc(idx, ep);
        if (e == LLMD_PI_NONE) {
            return;
        }

        entry = llmd_pi_entry(idx, e);
        entry->hash = hashes[i];
        entry->ep = (uint16_t) ep;

        bucket = &llmd_pi_buckets(idx)[hashes[i] & (idx->nbuckets - 1)];
        entry->chain = *bucket;
        *bucket = e;

        llmd_pi_lru_push(idx, e);
        idx->used++;
    }

    while (idx->lru[ep].count > capacity) {
        llmd_pi_remove(idx, idx->lru[ep].oldest);
        idx->evictions++;
    }
}


void
llmd_prefix_index_clear_endpoint(llmd_prefix_index_t *idx, uint32_t ep)
{
    if (ep >= LLMD_MAX_ENDPOINTS) {
        return;
    }

    while (idx->lru[ep].oldest != LLMD_PI_NONE) {
        llmd_pi_remove(idx, idx->lru[ep].oldest);
    }
}


void
llmd_prefix_index_stats(const llmd_prefix_index_t *idx,
    llmd_prefix_index_stats_t *st)
{
    size_t  i;

    st->entries = idx->used;
    st->capacity = idx->capacity;
    st->evictions = idx->evictions;

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        st->per_endpoint[i] = idx->lru[i].count;
    }
}


static uint32_t *
llmd_pi_buckets(const llmd_prefix_index_t *idx)
{
    return (uint32_t *) ((char *) idx + sizeof(llmd_prefix_index_t));
}


static llmd_pi_entry_t *
llmd_pi_entry(const llmd_prefix_index_t *idx, uint32_t e)
{
    llmd_pi_entry_t  *entries;

    entries = (llmd_pi_entry_t *) (llmd_pi_buckets(idx) + idx->nbuckets);
    return &entries[e];
}


static uint32_t
llmd_pi_find(const llmd_prefix_index_t *idx, uint64_t hash, uint32_t ep)
{
    uint32_t          e;
    llmd_pi_entry_t  *entry;

    for (e = llmd_pi_buckets(idx)[hash & (idx->nbuckets - 1)];
         e != LLMD_PI_NONE;
         e = entry->chain)
    {
        entry = llmd_pi_entry(idx, e);
        if (entry->hash == hash && entry->ep == ep) {
            return e;
        }
    }

    return LLMD_PI_NONE;
}


/*
 * A free entry; when the region is full, the oldest entry of the endpoint
 * holding the most entries is evicted (the inserting one on a tie), so one
 * busy endpoint cannot starve the others of index space.
 */
static uint32_t
llmd_pi_alloc(llmd_prefix_index_t *idx, uint32_t ep)
{
    size_t    i;
    uint32_t  e, victim;

    if (idx->free != LLMD_PI_NONE) {
        e = idx->free;
        idx->free = llmd_pi_entry(idx, e)->chain;
        return e;
    }

    if (idx->fresh <= idx->capacity) {
        return idx->fresh++;
    }

    victim = ep;

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        if (idx->lru[i].count > idx->lru[victim].count) {
            victim = (uint32_t) i;
        }
    }

    e = idx->lru[victim].oldest;
    if (e == LLMD_PI_NONE) {
        return LLMD_PI_NONE;
    }

    llmd_pi_remove(idx, e);
    idx->evictions++;

    e = idx->free;
    idx->free = llmd_pi_entry(idx, e)->chain;

    return e;
}


/* Unlinks entry e from its bucket and its LRU and frees it. */
static void
llmd_pi_remove(llmd_prefix_index_t *idx, uint32_t e)
{
    uint32_t         *link;
    llmd_pi_entry_t  *entry;

    entry = llmd_pi_entry(idx, e);

    link = &llmd_pi_buckets(idx)[entry->hash & (idx->nbuckets - 1)];
    while (*link != LLMD_PI_NONE && *link != e) {
        link = &llmd_pi_entry(idx, *link)->chain;
    }

    if (*link == e) {
        *link = entry->chain;
    }

    llmd_pi_lru_unlink(idx, e);

    entry->chain = idx->free;
    idx->free = e;
    idx->used--;
}


static void
llmd_pi_lru_unlink(llmd_prefix_index_t *idx, uint32_t e)
{
    llmd_pi_entry_t  *entry;

    entry = llmd_pi_entry(idx, e);
    llmd_lru_unlink(&idx->lru[entry->ep], llmd_pi_entry(idx, 0),
        sizeof(llmd_pi_entry_t), offsetof(llmd_pi_entry_t, lru), e);
}


static void
llmd_pi_lru_push(llmd_prefix_index_t *idx, uint32_t e)
{
    llmd_pi_entry_t  *entry;

    entry = llmd_pi_entry(idx, e);
    llmd_lru_push(&idx->lru[entry->ep], llmd_pi_entry(idx, 0),
        sizeof(llmd_pi_entry_t), offsetof(llmd_pi_entry_t, lru), e);
}
