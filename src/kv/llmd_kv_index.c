/*
 * Precise prefix index in one flat region (see llmd_kv_index.h).
 *
 * Laid out in an llmd_index_region_t with two bucket tables (request keys;
 * endpoint and engine hash).  One entry is one (endpoint, block, tier): it
 * sits in the bucket chain of its request key, in the bucket chain of
 * (endpoint, engine hash) unless it is speculative, and, by the region, in
 * its endpoint's LRU list (head = most recently stored).
 *
 * The per-endpoint lists give AllBlocksCleared a cost proportional to the
 * endpoint's own entries.  When the region is full the oldest entry of the
 * endpoint holding the most entries is evicted, so one busy pod cannot push
 * the others out; vLLM's own BlockRemoved events keep the index in step
 * with the pods long before that.
 */
#include <string.h>

#include "kv/llmd_kv_index.h"
#include "kv/llmd_kv_keys.h"

#define LLMD_KVI_MAGIC     0x316978766b646d6cULL      /* "lmdkvxi1" */
/* 3: the shared llmd_index_region_t header */
#define LLMD_KVI_VERSION   3

/* Keys computed per slice of a BlockStored event. */
#define LLMD_KVI_SLICE     64

enum {
    LLMD_KVI_GPU = 0,
    LLMD_KVI_CPU,
    LLMD_KVI_SPEC
};

/* The two bucket tables. */
enum {
    LLMD_KVI_KEYS = 0,
    LLMD_KVI_HASHES
};


typedef struct {
    llmd_index_entry_t  base;    /* endpoint and its LRU neighbours */
    uint32_t            knext;   /* key bucket chain */
    uint64_t            key;     /* request key */
    uint64_t            hash;    /* engine hash, or expiry (ms) if
                                    speculative */
    uint32_t            hnext;   /* engine bucket chain */
    uint8_t             tier;
    uint8_t             refs;    /* duplicate stores of the same block */
} llmd_kvi_entry_t;

struct llmd_kv_index_s {
    llmd_index_region_t  region;
    uint32_t             spec[LLMD_MAX_ENDPOINTS];   /* speculative entries */
};


static const llmd_index_layout_t  llmd_kvi_layout = {
    LLMD_KVI_MAGIC, LLMD_KVI_VERSION, sizeof(llmd_kv_index_t),
    sizeof(llmd_kvi_entry_t), 2
};


/* lookups run this many keys ahead of their bucket loads (prefetch) */
#define LLMD_KVI_AHEAD  8

static llmd_kvi_entry_t *llmd_kvi_entry(const llmd_kv_index_t *idx,
    uint32_t e);
static uint32_t *llmd_kvi_kbucket(const llmd_kv_index_t *idx, uint64_t key);
static uint32_t *llmd_kvi_hbucket(const llmd_kv_index_t *idx, uint32_t ep,
    uint64_t hash);
static uint32_t llmd_kvi_find_hash(const llmd_kv_index_t *idx, uint32_t ep,
    uint64_t hash, int tier);
static uint32_t llmd_kvi_find_key(const llmd_kv_index_t *idx, uint32_t ep,
    uint64_t key, int tier);
static uint32_t llmd_kvi_insert(llmd_kv_index_t *idx, uint32_t ep,
    uint64_t key, uint64_t hash, int tier);
static void llmd_kvi_store(llmd_kv_index_t *idx, uint32_t ep, uint64_t key,
    uint64_t hash, int tier);
static void llmd_kvi_remove(llmd_kv_index_t *idx, uint32_t e);
static void llmd_kvi_unchain(llmd_index_region_t *r, uint32_t e);
static void llmd_kvi_key_unlink(llmd_kv_index_t *idx, uint32_t e);
static void llmd_kvi_stored(llmd_kv_index_t *idx, uint32_t ep,
    uint64_t root, uint32_t block_size, const llmd_kv_event_t *ev,
    llmd_kv_apply_stats_t *st);


size_t
llmd_kv_index_min_size(void)
{
    return llmd_index_region_min_size(&llmd_kvi_layout);
}


size_t
llmd_kv_index_entry_bytes(void)
{
    return llmd_index_region_entry_bytes(&llmd_kvi_layout);
}


llmd_kv_index_t *
llmd_kv_index_create(void *mem, size_t size)
{
    return (llmd_kv_index_t *) llmd_index_region_create(mem, size,
                                                        &llmd_kvi_layout);
}


llmd_kv_index_t *
llmd_kv_index_attach(void *mem, size_t size)
{
    return (llmd_kv_index_t *) llmd_index_region_attach(mem, size,
                                                        &llmd_kvi_layout);
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
            if (e == LLMD_INDEX_NONE) {
                continue;
            }

            if (--llmd_kvi_entry(idx, e)->refs == 0) {
                llmd_kvi_remove(idx, e);
            }
            st->removed++;
        }
        return;

    case LLMD_KV_ALL_CLEARED:
        before = llmd_index_region_count(&idx->region, ep);
        llmd_kv_index_clear_endpoint(idx, ep);
        st->cleared += before;
        return;

    default:
        st->dropped_other += ev->nhashes;
        return;
    }
}


void
llmd_kv_index_prefetch(const llmd_kv_index_t *idx, uint32_t ep,
    const llmd_kv_event_t *ev)
{
    size_t  i, n;

    if (ep >= LLMD_MAX_ENDPOINTS
        || (ev->type != LLMD_KV_BLOCK_STORED
            && ev->type != LLMD_KV_BLOCK_REMOVED))
    {
        return;
    }

    if (ev->has_parent) {
        __builtin_prefetch(llmd_kvi_hbucket(idx, ep, ev->parent));
    }

    n = ev->nhashes < LLMD_KVI_SLICE ? ev->nhashes : LLMD_KVI_SLICE;

    for (i = 0; i < n; i++) {
        __builtin_prefetch(llmd_kvi_hbucket(idx, ep, ev->hashes[i]), 1);
    }
}


void
llmd_kv_index_clear_endpoint(llmd_kv_index_t *idx, uint32_t ep)
{
    llmd_index_region_clear_endpoint(&idx->region, ep, llmd_kvi_unchain);
}


void
llmd_kv_index_match(const llmd_kv_index_t *idx, const uint64_t *keys,
    size_t n, uint64_t now_ms, double *match)
{
    size_t             i, j, nactive, kept;
    uint32_t           e, ep, stamp;
    double             w;
    uint16_t           active[LLMD_MAX_ENDPOINTS];
    uint32_t           seen[LLMD_MAX_ENDPOINTS];
    float              weight[LLMD_MAX_ENDPOINTS];
    llmd_kvi_entry_t  *entry;

    memset(match, 0, LLMD_MAX_ENDPOINTS * sizeof(double));
    memset(seen, 0, sizeof(seen));
    nactive = 0;

    /* the buckets and entries of a large index are cache misses: the
       lookups run LLMD_KVI_AHEAD keys behind their bucket loads */
    for (i = 0; i < n && i < LLMD_KVI_AHEAD; i++) {
        __builtin_prefetch(llmd_kvi_kbucket(idx, keys[i]));
    }

    for (i = 0; i < n; i++) {
        stamp = (uint32_t) i + 1;

        /* the bucket of a key further on, and the first entry of a
           nearer one, whose bucket was prefetched before */
        if (i + LLMD_KVI_AHEAD < n) {
            __builtin_prefetch(llmd_kvi_kbucket(idx,
                                                keys[i + LLMD_KVI_AHEAD]));
        }

        if (i + LLMD_KVI_AHEAD / 2 < n) {
            e = *llmd_kvi_kbucket(idx, keys[i + LLMD_KVI_AHEAD / 2]);
            if (e != LLMD_INDEX_NONE) {
                __builtin_prefetch(llmd_kvi_entry(idx, e));
            }
        }

        /* this key's endpoints and their best tier weight */
        for (e = *llmd_kvi_kbucket(idx, keys[i]);
             e != LLMD_INDEX_NONE;
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

            ep = entry->base.ep;

            if (seen[ep] != stamp) {
                seen[ep] = stamp;
                weight[ep] = (float) w;

                /* key 0 opens the run of every endpoint holding it */
                if (i == 0) {
                    active[nactive++] = ep;
                }

            } else if (w > weight[ep]) {
                weight[ep] = (float) w;
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
        if (llmd_kvi_find_key(idx, ep, keys[i], LLMD_KVI_GPU)
            != LLMD_INDEX_NONE)
        {
            continue;                         /* really cached already */
        }

        e = llmd_kvi_find_key(idx, ep, keys[i], LLMD_KVI_SPEC);
        if (e == LLMD_INDEX_NONE) {
            e = llmd_kvi_insert(idx, ep, keys[i], 0, LLMD_KVI_SPEC);
            if (e == LLMD_INDEX_NONE) {
                return;
            }

        } else {
            llmd_index_region_touch(&idx->region, &llmd_kvi_layout, e);
        }

        entry = llmd_kvi_entry(idx, e);
        entry->hash = now_ms + ttl_ms;
    }
}


void
llmd_kv_index_stats(const llmd_kv_index_t *idx, llmd_kv_index_stats_t *st)
{
    llmd_index_region_stats(&idx->region, st);
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
            if (e == LLMD_INDEX_NONE) {
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
        if (e == LLMD_INDEX_NONE) {
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

        /*
         * the buckets are cache misses in a large region: start them all,
         * then the first entry of each engine-hash chain, which
         * llmd_kvi_find_hash() reads next (a new block walks its whole
         * chain)
         */
        for (k = 0; k < got; k++) {
            __builtin_prefetch(llmd_kvi_hbucket(idx, ep, ev->hashes[i + k]),
                               1);
            __builtin_prefetch(llmd_kvi_kbucket(idx, keys[k]), 1);
        }

        for (k = 0; k < got; k++) {
            e = *llmd_kvi_hbucket(idx, ep, ev->hashes[i + k]);
            if (e != LLMD_INDEX_NONE) {
                __builtin_prefetch(llmd_kvi_entry(idx, e));
            }
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

    if (e != LLMD_INDEX_NONE) {
        entry = llmd_kvi_entry(idx, e);

        if (entry->refs < UINT8_MAX) {
            entry->refs++;
        }

        if (entry->key != key) {
            /* the engine reused a hash for other tokens: re-key it */
            llmd_kvi_key_unlink(idx, e);

            entry->key = key;
            link = llmd_kvi_kbucket(idx, key);
            entry->knext = *link;
            *link = e;
        }

        llmd_index_region_touch(&idx->region, &llmd_kvi_layout, e);

    } else if (llmd_kvi_insert(idx, ep, key, hash, tier) == LLMD_INDEX_NONE) {
        return;
    }

    if (tier == LLMD_KVI_GPU && idx->spec[ep] != 0) {
        e = llmd_kvi_find_key(idx, ep, key, LLMD_KVI_SPEC);
        if (e != LLMD_INDEX_NONE) {
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

    e = llmd_index_region_alloc(&idx->region, &llmd_kvi_layout, ep,
                                llmd_kvi_unchain);
    if (e == LLMD_INDEX_NONE) {
        return LLMD_INDEX_NONE;
    }

    entry = llmd_kvi_entry(idx, e);
    entry->key = key;
    entry->hash = hash;
    entry->tier = (uint8_t) tier;
    entry->refs = 1;
    entry->hnext = LLMD_INDEX_NONE;

    bucket = llmd_kvi_kbucket(idx, key);
    entry->knext = *bucket;
    *bucket = e;

    if (tier == LLMD_KVI_SPEC) {
        idx->spec[ep]++;

    } else {
        bucket = llmd_kvi_hbucket(idx, ep, hash);
        entry->hnext = *bucket;
        *bucket = e;
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

    for (e = *llmd_kvi_hbucket(idx, ep, hash);
         e != LLMD_INDEX_NONE;
         e = entry->hnext)
    {
        entry = llmd_kvi_entry(idx, e);
        if (entry->hash == hash && entry->base.ep == ep
            && (tier < 0 || entry->tier == tier))
        {
            return e;
        }
    }

    return LLMD_INDEX_NONE;
}


static uint32_t
llmd_kvi_find_key(const llmd_kv_index_t *idx, uint32_t ep, uint64_t key,
    int tier)
{
    uint32_t           e;
    llmd_kvi_entry_t  *entry;

    for (e = *llmd_kvi_kbucket(idx, key);
         e != LLMD_INDEX_NONE;
         e = entry->knext)
    {
        entry = llmd_kvi_entry(idx, e);
        if (entry->key == key && entry->base.ep == ep
            && entry->tier == tier)
        {
            return e;
        }
    }

    return LLMD_INDEX_NONE;
}


/* Takes e out of the index and frees it. */
static void
llmd_kvi_remove(llmd_kv_index_t *idx, uint32_t e)
{
    llmd_kvi_unchain(&idx->region, e);
    llmd_index_region_free(&idx->region, &llmd_kvi_layout, e);
}


/* The region's unchain function: e leaves its bucket chains. */
static void
llmd_kvi_unchain(llmd_index_region_t *r, uint32_t e)
{
    llmd_kv_index_t   *idx;
    llmd_kvi_entry_t  *entry;

    idx = (llmd_kv_index_t *) r;
    entry = llmd_kvi_entry(idx, e);

    llmd_kvi_key_unlink(idx, e);

    if (entry->tier == LLMD_KVI_SPEC) {
        idx->spec[entry->base.ep]--;
        return;
    }

    llmd_index_chain_unlink(llmd_kvi_hbucket(idx, entry->base.ep,
                                             entry->hash),
                            llmd_kvi_entry(idx, 0), sizeof(llmd_kvi_entry_t),
                            offsetof(llmd_kvi_entry_t, hnext), e);
}


/* Takes e out of the chain of its request key. */
static void
llmd_kvi_key_unlink(llmd_kv_index_t *idx, uint32_t e)
{
    llmd_index_chain_unlink(llmd_kvi_kbucket(idx, llmd_kvi_entry(idx, e)->key),
                            llmd_kvi_entry(idx, 0), sizeof(llmd_kvi_entry_t),
                            offsetof(llmd_kvi_entry_t, knext), e);
}


static llmd_kvi_entry_t *
llmd_kvi_entry(const llmd_kv_index_t *idx, uint32_t e)
{
    llmd_kvi_entry_t  *entries;

    entries = llmd_index_region_entries(&idx->region, &llmd_kvi_layout);
    return &entries[e];
}


/*
 * Multiplicative mixing: engine hashes of old vLLM versions were Python
 * hash() values of small ints, whose low bits are anything but uniform.
 */
static uint32_t *
llmd_kvi_kbucket(const llmd_kv_index_t *idx, uint64_t key)
{
    uint32_t  slot;

    slot = (uint32_t) ((key * 0x9e3779b97f4a7c15ULL) >> 32)
           & (idx->region.nbuckets - 1);

    return &llmd_index_region_buckets(&idx->region, &llmd_kvi_layout,
                                      LLMD_KVI_KEYS)[slot];
}


static uint32_t *
llmd_kvi_hbucket(const llmd_kv_index_t *idx, uint32_t ep, uint64_t hash)
{
    uint32_t  slot;

    slot = (uint32_t) (((hash ^ ((uint64_t) ep << 48))
                        * 0x9e3779b97f4a7c15ULL) >> 32)
           & (idx->region.nbuckets - 1);

    return &llmd_index_region_buckets(&idx->region, &llmd_kvi_layout,
                                      LLMD_KVI_HASHES)[slot];
}
