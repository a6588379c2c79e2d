/*
 * Precise prefix index in one flat region (see llmd_kv_index.h).
 *
 * Layout: header | key buckets | engine buckets | entries.  Entries are
 * numbered from 1 (0 = none) and linked by number, never by pointer, so the
 * region may be mapped at another address after a reload.  One entry is one
 * (endpoint, block, tier): it sits in the bucket chain of its request key,
 * in the bucket chain of (endpoint, engine hash) unless it is speculative,
 * and in its endpoint's LRU list (head = most recently stored).
 *
 * The per-endpoint lists give AllBlocksCleared a cost proportional to the
 * endpoint's own entries.  When the region is full the oldest entry of the
 * endpoint holding the most entries is evicted, so one busy pod cannot push
 * the others out; vLLM's own BlockRemoved events keep the index in step
 * with the pods long before that.
 */
#include <string.h>

#include "core/llmd_lru.h"
#include "kv/llmd_kv_index.h"
#include "kv/llmd_kv_keys.h"

#define LLMD_KVI_MAGIC     0x316978766b646d6cULL      /* "lmdkvxi1" */
#define LLMD_KVI_VERSION   2
#define LLMD_KVI_NONE      0

/* Keys computed per slice of a BlockStored event. */
#define LLMD_KVI_SLICE     64

/* Evictions between two searches for the largest endpoint. */
#define LLMD_KVI_VICTIM_REFRESH  256

enum {
    LLMD_KVI_GPU = 0,
    LLMD_KVI_CPU,
    LLMD_KVI_SPEC
};


typedef struct {
    uint64_t  key;            /* request key */
    uint64_t  hash;           /* engine hash, or expiry (ms) if speculative */
    uint32_t  knext;          /* key bucket chain, or free list */
    uint32_t  hnext;          /* engine bucket chain */
    llmd_lru_link_t  lru;     /* LRU neighbours of the same endpoint */
    uint16_t  ep;
    uint8_t   tier;
    uint8_t   refs;           /* duplicate stores of the same block */
} llmd_kvi_entry_t;

struct llmd_kv_index_s {
    uint64_t         magic;
    uint64_t         size;
    uint64_t         evictions;
    uint32_t         version;
    uint32_t         entry_size;
    uint32_t         nbuckets;       /* power of two, per table */
    uint32_t         capacity;       /* entries */
    uint32_t         used;
    uint32_t         free;           /* recycled entries */
    uint32_t         fresh;          /* entries never used yet: fresh..cap */
    uint32_t         victim;         /* endpoint to evict from */
    uint32_t         victim_age;     /* evictions since it was chosen */
    uint32_t         reserved;
    llmd_lru_t       lru[LLMD_MAX_ENDPOINTS];
    uint32_t         spec[LLMD_MAX_ENDPOINTS];   /* speculative entries */
};


static uint32_t *llmd_kvi_kbuckets(const llmd_kv_index_t *idx);
static uint32_t *llmd_kvi_hbuckets(const llmd_kv_index_t *idx);
static llmd_kvi_entry_t *llmd_kvi_entry(const llmd_kv_index_t *idx,
    uint32_t e);
static uint32_t llmd_kvi_kslot(const llmd_kv_index_t *idx, uint64_t key);
static uint32_t llmd_kvi_hslot(const llmd_kv_index_t *idx, uint32_t ep,
    uint64_t hash);
static uint32_t llmd_kvi_find_hash(const llmd_kv_index_t *idx, uint32_t ep,
    uint64_t hash, int tier);
static uint32_t llmd_kvi_find_key(const llmd_kv_index_t *idx, uint32_t ep,
    uint64_t key, int tier);
static uint32_t llmd_kvi_insert(llmd_kv_index_t *idx, uint32_t ep,
    uint64_t key, uint64_t hash, int tier);
static void llmd_kvi_store(llmd_kv_index_t *idx, uint32_t ep, uint64_t key,
    uint64_t hash, int tier);
static uint32_t llmd_kvi_alloc(llmd_kv_index_t *idx, uint32_t ep);
static void llmd_kvi_remove(llmd_kv_index_t *idx, uint32_t e);
static void llmd_kvi_lru_unlink(llmd_kv_index_t *idx, uint32_t e);
static void llmd_kvi_lru_push(llmd_kv_index_t *idx, uint32_t e);
static void llmd_kvi_stored(llmd_kv_index_t *idx, uint32_t ep,
    uint64_t root, uint32_t block_size, const llmd_kv_event_t *ev,
    llmd_kv_apply_stats_t *st);


size_t
llmd_kv_index_min_size(void)
{
    /* header, 2 x 16 buckets, 16 entries and the unused entry 0 */
    return sizeof(llmd_kv_index_t) + 32 * sizeof(uint32_t)
           + 17 * sizeof(llmd_kvi_entry_t);
}


size_t
llmd_kv_index_entry_bytes(void)
{
    /* one entry and, at full load, at most one slot in each table */
    return sizeof(llmd_kvi_entry_t) + 2 * sizeof(uint32_t);
}


llmd_kv_index_t *
llmd_kv_index_create(void *mem, size_t size)
{
    size_t            room, n, nb;
    llmd_kv_index_t  *idx;

    if (mem == NULL || size < llmd_kv_index_min_size()
        || ((uintptr_t) mem & 7))
    {
        return NULL;
    }

    room = size - sizeof(llmd_kv_index_t) - sizeof(llmd_kvi_entry_t);
    n = room / llmd_kv_index_entry_bytes();
    if (n > 0xfffffff0u) {
        n = 0xfffffff0u;
    }

    /* buckets: the largest power of two not above the entry count */
    for (nb = 16; nb * 2 <= n; nb *= 2) { /* void */ }

    n = (room - 2 * nb * sizeof(uint32_t)) / sizeof(llmd_kvi_entry_t);
    if (n > 0xfffffff0u) {
        n = 0xfffffff0u;
    }

    idx = mem;
    memset(idx, 0, sizeof(llmd_kv_index_t));
    memset(llmd_kvi_kbuckets(idx), 0, 2 * nb * sizeof(uint32_t));

    idx->size = size;
    idx->version = LLMD_KVI_VERSION;
    idx->entry_size = sizeof(llmd_kvi_entry_t);
    idx->nbuckets = (uint32_t) nb;
    idx->capacity = (uint32_t) n;
    idx->fresh = 1;
    idx->magic = LLMD_KVI_MAGIC;

    return idx;
}


llmd_kv_index_t *
llmd_kv_index_attach(void *mem, size_t size)
{
    llmd_kv_index_t  *idx;

    if (mem == NULL || size < llmd_kv_index_min_size()
        || ((uintptr_t) mem & 7))
    {
        return NULL;
    }

    idx = mem;
    if (idx->magic != LLMD_KVI_MAGIC || idx->size != size
        || idx->version != LLMD_KVI_VERSION
        || idx->entry_size != sizeof(llmd_kvi_entry_t))
    {
        return NULL;
    }

    return idx;
}


void
llmd_kv_index_apply(llmd_kv_index_t *idx, uint32_t ep, uint64_t root,
    uint32_t block_size, const llmd_kv_event_t *ev,
    llmd_kv_apply_stats_t *st)
{
    int                    tier;
    size_t                 i;
    uint32_t               e;
    uint64_t               before;
    llmd_kv_apply_stats_t  dummy;

    if (st == NULL) {
        st = &dummy;
    }

    if (ep >= LLMD_MAX_ENDPOINTS) {
        st->dropped_other += ev->nhashes;
        return;
    }

    tier = ev->cpu ? LLMD_KVI_CPU : LLMD_KVI_GPU;

    switch (ev->type) {

    case LLMD_KV_BLOCK_STORED:
        llmd_kvi_stored(idx, ep, root, block_size, ev, st);
        return;

    case LLMD_KV_BLOCK_REMOVED:
        for (i = 0; i < ev->nhashes; i++) {
            e = llmd_kvi_find_hash(idx, ep, ev->hashes[i], tier);
            if (e == LLMD_KVI_NONE) {
                continue;
            }

            if (--llmd_kvi_entry(idx, e)->refs == 0) {
                llmd_kvi_remove(idx, e);
            }
            st->removed++;
        }
        return;

    case LLMD_KV_ALL_CLEARED:
        before = idx->lru[ep].count;
        llmd_kv_index_clear_endpoint(idx, ep);
        st->cleared += before;
        return;

    default:
        st->dropped_other += ev->nhashes;
        return;
    }
}


void
llmd_kv_index_clear_endpoint(llmd_kv_index_t *idx, uint32_t ep)
{
    if (ep >= LLMD_MAX_ENDPOINTS) {
        return;
    }

    while (idx->lru[ep].oldest != LLMD_KVI_NONE) {
        llmd_kvi_remove(idx, idx->lru[ep].oldest);
    }
}


void
llmd_kv_index_match(const llmd_kv_index_t *idx, const uint64_t *keys,
    size_t n, uint64_t now_ms, double *match)
{
    size_t             i, j, nactive, kept;
    uint32_t           e, stamp;
    double             w;
    uint16_t           active[LLMD_MAX_ENDPOINTS];
    uint32_t           seen[LLMD_MAX_ENDPOINTS];
    float              weight[LLMD_MAX_ENDPOINTS];
    llmd_kvi_entry_t  *entry;

    memset(match, 0, LLMD_MAX_ENDPOINTS * sizeof(double));
    memset(seen, 0, sizeof(seen));
    nactive = 0;

    for (i = 0; i < n; i++) {
        stamp = (uint32_t) i + 1;

        /* this key's endpoints and their best tier weight */
        for (e = llmd_kvi_kbuckets(idx)[llmd_kvi_kslot(idx, keys[i])];
             e != LLMD_KVI_NONE;
             e = entry->knext)
        {
            entry = llmd_kvi_entry(idx, e);
            if (entry->key != keys[i]) {
                continue;
            }

            if (entry->tier == LLMD_KVI_CPU) {
                w = 0.8;
            } else if (entry->tier == LLMD_KVI_GPU || now_ms < entry->hash) {
                w = 1.0;
            } else {
                continue;                     /* expired speculation */
            }

            if (seen[entry->ep] != stamp) {
                seen[entry->ep] = stamp;
                weight[entry->ep] = (float) w;

                /* key 0 opens the run of every endpoint holding it */
                if (i == 0) {
                    active[nactive++] = entry->ep;
                }

            } else if (w > weight[entry->ep]) {
                weight[entry->ep] = (float) w;
            }
        }

        /* an endpoint stays in the run only while it holds every key */
        kept = 0;
        for (j = 0; j < nactive; j++) {
            if (seen[active[j]] == stamp) {
                match[active[j]] += weight[active[j]];
                active[kept++] = active[j];
            }
        }
        nactive = kept;

        if (nactive == 0) {
            break;
        }
    }
}


void
llmd_kv_index_speculate(llmd_kv_index_t *idx, uint32_t ep,
    const uint64_t *keys, size_t n, uint64_t now_ms, uint32_t ttl_ms)
{
    size_t             i;
    uint32_t           e;
    llmd_kvi_entry_t  *entry;

    if (ep >= LLMD_MAX_ENDPOINTS) {
        return;
    }

    for (i = 0; i < n; i++) {
        if (llmd_kvi_find_key(idx, ep, keys[i], LLMD_KVI_GPU) != LLMD_KVI_NONE)
        {
            continue;                         /* really cached already */
        }

        e = llmd_kvi_find_key(idx, ep, keys[i], LLMD_KVI_SPEC);
        if (e == LLMD_KVI_NONE) {
            e = llmd_kvi_insert(idx, ep, keys[i], 0, LLMD_KVI_SPEC);
            if (e == LLMD_KVI_NONE) {
                return;
            }

        } else {
            llmd_kvi_lru_unlink(idx, e);
            llmd_kvi_lru_push(idx, e);
        }

        entry = llmd_kvi_entry(idx, e);
        entry->hash = now_ms + ttl_ms;
    }
}


void
llmd_kv_index_stats(const llmd_kv_index_t *idx, llmd_kv_index_stats_t *st)
{
    size_t  i;

    st->entries = idx->used;
    st->capacity = idx->capacity;
    st->evictions = idx->evictions;

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        st->per_endpoint[i] = idx->lru[i].count;
    }
}


static void
llmd_kvi_stored(llmd_kv_index_t *idx, uint32_t ep, uint64_t root,
    uint32_t block_size, const llmd_kv_event_t *ev, llmd_kv_apply_stats_t *st)
{
    int        tier;
    size_t     i, k, n, got;
    uint32_t   e;
    uint64_t   parent, keys[LLMD_KVI_SLICE];

    tier = ev->cpu ? LLMD_KVI_CPU : LLMD_KVI_GPU;
    n = ev->nhashes;

    if (n == 0) {
        return;
    }

    /* only the 1:1 engine:request block mapping is modelled */
    if (block_size == 0
        || (ev->block_size != 0 && ev->block_size != block_size))
    {
        st->dropped_block_size += n;
        return;
    }

    if (ev->extra_unsupported) {
        st->dropped_other += n;
        return;
    }

    if (ev->ntokens == 0) {
        /* tier update, e.g. an offload to CPU of blocks already indexed */
        for (i = 0; i < n; i++) {
            e = llmd_kvi_find_hash(idx, ep, ev->hashes[i], -1);
            if (e == LLMD_KVI_NONE) {
                st->dropped_other++;
                continue;
            }

            llmd_kvi_store(idx, ep, llmd_kvi_entry(idx, e)->key,
                           ev->hashes[i], tier);
            st->stored++;
        }
        return;
    }

    if (ev->ntokens / block_size != n || ev->ntokens % block_size != 0) {
        st->dropped_other += n;
        return;
    }

    if (ev->has_parent) {
        e = llmd_kvi_find_hash(idx, ep, ev->parent, -1);
        if (e == LLMD_KVI_NONE) {
            st->dropped_unknown_parent += n;
            return;
        }
        parent = llmd_kvi_entry(idx, e)->key;

    } else {
        parent = root;
    }

    for (i = 0; i < n; i += got) {
        got = llmd_kv_request_keys(root, parent,
                                   ev->tokens + i * block_size,
                                   (n - i) * block_size, block_size,
                                   ev->salt, ev->salt_len,
                                   keys, LLMD_KVI_SLICE);
        if (got == 0) {
            break;
        }

        /* the buckets are cache misses in a large region: start them all */
        for (k = 0; k < got; k++) {
            __builtin_prefetch(&llmd_kvi_hbuckets(idx)[
                llmd_kvi_hslot(idx, ep, ev->hashes[i + k])], 1);
            __builtin_prefetch(&llmd_kvi_kbuckets(idx)[
                llmd_kvi_kslot(idx, keys[k])], 1);
        }

        for (k = 0; k < got; k++) {
            llmd_kvi_store(idx, ep, keys[k], ev->hashes[i + k], tier);
        }

        parent = keys[got - 1];
        st->stored += got;
    }
}


/* Adds or refreshes (ep, key, hash, tier); a real store replaces the
   endpoint's speculative entry for the key. */
static void
llmd_kvi_store(llmd_kv_index_t *idx, uint32_t ep, uint64_t key,
    uint64_t hash, int tier)
{
    uint32_t           e, *link;
    llmd_kvi_entry_t  *entry;

    e = llmd_kvi_find_hash(idx, ep, hash, tier);

    if (e != LLMD_KVI_NONE) {
        entry = llmd_kvi_entry(idx, e);

        if (entry->refs < UINT8_MAX) {
            entry->refs++;
        }

        if (entry->key != key) {
            /* the engine reused a hash for other tokens: re-key it */
            link = &llmd_kvi_kbuckets(idx)[llmd_kvi_kslot(idx, entry->key)];
            while (*link != e) {
                link = &llmd_kvi_entry(idx, *link)->knext;
            }
            *link = entry->knext;

            entry->key = key;
            link = &llmd_kvi_kbuckets(idx)[llmd_kvi_kslot(idx, key)];
            entry->knext = *link;
            *link = e;
        }

        llmd_kvi_lru_unlink(idx, e);
        llmd_kvi_lru_push(idx, e);

    } else if (llmd_kvi_insert(idx, ep, key, hash, tier) == LLMD_KVI_NONE) {
        return;
    }

    if (tier == LLMD_KVI_GPU && idx->spec[ep] != 0) {
        e = llmd_kvi_find_key(idx, ep, key, LLMD_KVI_SPEC);
        if (e != LLMD_KVI_NONE) {
            llmd_kvi_remove(idx, e);
        }
    }
}


static uint32_t
llmd_kvi_insert(llmd_kv_index_t *idx, uint32_t ep, uint64_t key,
    uint64_t hash, int tier)
{
    uint32_t           e, *bucket;
    llmd_kvi_entry_t  *entry;

    e = llmd_kvi_alloc(idx, ep);
    if (e == LLMD_KVI_NONE) {
        return LLMD_KVI_NONE;
    }

    entry = llmd_kvi_entry(idx, e);
    entry->key = key;
    entry->hash = hash;
    entry->ep = (uint16_t) ep;
    entry->tier = (uint8_t) tier;
    entry->refs = 1;
    entry->hnext = LLMD_KVI_NONE;

    bucket = &llmd_kvi_kbuckets(idx)[llmd_kvi_kslot(idx, key)];
    entry->knext = *bucket;
    *bucket = e;

    if (tier != LLMD_KVI_SPEC) {
        bucket = &llmd_kvi_hbuckets(idx)[llmd_kvi_hslot(idx, ep, hash)];
        entry->hnext = *bucket;
        *bucket = e;
    }

    llmd_kvi_lru_push(idx, e);
    idx->used++;

    if (tier == LLMD_KVI_SPEC) {
        idx->spec[ep]++;
    }

    return e;
}


/* tier -1: any real (non-speculative) tier */
static uint32_t
llmd_kvi_find_hash(const llmd_kv_index_t *idx, uint32_t ep, uint64_t hash,
    int tier)
{
    uint32_t           e;
    llmd_kvi_entry_t  *entry;

    for (e = llmd_kvi_hbuckets(idx)[llmd_kvi_hslot(idx, ep, hash)];
         e != LLMD_KVI_NONE;
         e = entry->hnext)
    {
        entry = llmd_kvi_entry(idx, e);
        if (entry->hash == hash && entry->ep == ep
            && (tier < 0 || entry->tier == tier))
        {
            return e;
        }
    }

    return LLMD_KVI_NONE;
}


static uint32_t
llmd_kvi_find_key(const llmd_kv_index_t *idx, uint32_t ep, uint64_t key,
    int tier)
{
    uint32_t           e;
    llmd_kvi_entry_t  *entry;

    for (e = llmd_kvi_kbuckets(idx)[llmd_kvi_kslot(idx, key)];
         e != LLMD_KVI_NONE;
         e = entry->knext)
    {
        entry = llmd_kvi_entry(idx, e);
        if (entry->key == key && entry->ep == ep && entry->tier == tier) {
            return e;
        }
    }

    return LLMD_KVI_NONE;
}


/*
 * A free entry; when the region is full, the oldest entry of the endpoint
 * holding the most entries is evicted.  The largest endpoint is searched
 * again only every LLMD_KVI_VICTIM_REFRESH evictions, so a full index
 * costs O(1) per stored block, not O(endpoints).
 */
static uint32_t
llmd_kvi_alloc(llmd_kv_index_t *idx, uint32_t ep)
{
    size_t    i;
    uint32_t  e, victim;

    if (idx->free != LLMD_KVI_NONE) {
        e = idx->free;
        idx->free = llmd_kvi_entry(idx, e)->knext;
        return e;
    }

    if (idx->fresh <= idx->capacity) {
        return idx->fresh++;
    }

    victim = idx->victim;

    if (idx->victim_age++ >= LLMD_KVI_VICTIM_REFRESH
        || victim >= LLMD_MAX_ENDPOINTS || idx->lru[victim].count == 0)
    {
        victim = ep;
        for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
            if (idx->lru[i].count > idx->lru[victim].count) {
                victim = (uint32_t) i;
            }
        }

        idx->victim = victim;
        idx->victim_age = 0;
    }

    e = idx->lru[victim].oldest;
    if (e == LLMD_KVI_NONE) {
        return LLMD_KVI_NONE;
    }

    llmd_kvi_remove(idx, e);
    idx->evictions++;

    e = idx->free;
    idx->free = llmd_kvi_entry(idx, e)->knext;

    return e;
}


/* Unlinks entry e from its chains and its LRU and frees it. */
static void
llmd_kvi_remove(llmd_kv_index_t *idx, uint32_t e)
{
    uint32_t          *link;
    llmd_kvi_entry_t  *entry;

    entry = llmd_kvi_entry(idx, e);

    link = &llmd_kvi_kbuckets(idx)[llmd_kvi_kslot(idx, entry->key)];
    while (*link != LLMD_KVI_NONE && *link != e) {
        link = &llmd_kvi_entry(idx, *link)->knext;
    }
    if (*link == e) {
        *link = entry->knext;
    }

    if (entry->tier == LLMD_KVI_SPEC) {
        idx->spec[entry->ep]--;

    } else {
        link = &llmd_kvi_hbuckets(idx)[llmd_kvi_hslot(idx, entry->ep,
                                                      entry->hash)];
        while (*link != LLMD_KVI_NONE && *link != e) {
            link = &llmd_kvi_entry(idx, *link)->hnext;
        }
        if (*link == e) {
            *link = entry->hnext;
        }
    }

    llmd_kvi_lru_unlink(idx, e);

    entry->knext = idx->free;
    entry->hnext = LLMD_KVI_NONE;
    idx->free = e;
    idx->used--;
}


static void
llmd_kvi_lru_unlink(llmd_kv_index_t *idx, uint32_t e)
{
    llmd_kvi_entry_t  *entry;

    entry = llmd_kvi_entry(idx, e);
    llmd_lru_unlink(&idx->lru[entry->ep], llmd_kvi_entry(idx, 0),
        sizeof(llmd_kvi_entry_t), offsetof(llmd_kvi_entry_t, lru), e);
}


static void
llmd_kvi_lru_push(llmd_kv_index_t *idx, uint32_t e)
{
    llmd_kvi_entry_t  *entry;

    entry = llmd_kvi_entry(idx, e);
    llmd_lru_push(&idx->lru[entry->ep], llmd_kvi_entry(idx, 0),
        sizeof(llmd_kvi_entry_t), offsetof(llmd_kvi_entry_t, lru), e);
}


static uint32_t *
llmd_kvi_kbuckets(const llmd_kv_index_t *idx)
{
    return (uint32_t *) ((char *) idx + sizeof(llmd_kv_index_t));
}


static uint32_t *
llmd_kvi_hbuckets(const llmd_kv_index_t *idx)
{
    return llmd_kvi_kbuckets(idx) + idx->nbuckets;
}


static llmd_kvi_entry_t *
llmd_kvi_entry(const llmd_kv_index_t *idx, uint32_t e)
{
    llmd_kvi_entry_t  *entries;

    entries = (llmd_kvi_entry_t *) (llmd_kvi_hbuckets(idx) + idx->nbuckets);
    return &entries[e];
}


/*
 * Multiplicative mixing: engine hashes of old vLLM versions were Python
 * hash() values of small ints, whose low bits are anything but uniform.
 */
static uint32_t
llmd_kvi_kslot(const llmd_kv_index_t *idx, uint64_t key)
{
    return (uint32_t) ((key * 0x9e3779b97f4a7c15ULL) >> 32)
           & (idx->nbuckets - 1);
}


static uint32_t
llmd_kvi_hslot(const llmd_kv_index_t *idx, uint32_t ep, uint64_t hash)
{
    return (uint32_t) (((hash ^ ((uint64_t) ep << 48))
                        * 0x9e3779b97f4a7c15ULL) >> 32)
           & (idx->nbuckets - 1);
}
