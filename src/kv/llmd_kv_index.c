/*
 * Precise prefix index in one flat region (see llmd_kv_index.h).
 *
 * Laid out in an llmd_index_region_t with two open-addressed tables
 * (request keys; endpoint and engine hash).  One entry is one (endpoint,
 * block, tier): it has a slot in the table of request keys, one in the
 * table of (endpoint, engine hash) unless it is speculative, and, by the
 * region, a place in its endpoint's LRU list (head = most recently stored).
 *
 * A table is an array of 64-byte buckets (one cache line) of 10 slots:
 * an entry number and a 16-bit tag of the slot's hash, so a lookup reads
 * the bucket and only the entries whose tag matches; a miss (every new
 * block) reads one line and no entry, and taking an entry out reads the
 * bucket of each of its hashes, never a chain of other entries.  A full
 * bucket sends further entries to the next bucket and counts them in its
 * `over`: a lookup goes on to the next bucket only while `over` is not 0.
 * Each table has 1.875 slots per entry the region holds (3 words of 4
 * bytes), so it is at most 53 % full and few buckets overflow.
 *
 * The per-endpoint lists give AllBlocksCleared a cost proportional to the
 * endpoint's own entries.  When the region is full the oldest entry of the
 * endpoint holding the most entries is evicted, so one busy pod cannot push
 * the others out; vLLM's own BlockRemoved events keep the index in step
 * with the pods long before that.
 */
#include <stdlib.h>
#include <string.h>

#include "kv/llmd_kv_index.h"
#include "kv/llmd_kv_keys.h"

#define LLMD_KVI_MAGIC     0x316978766b646d6cULL      /* "lmdkvxi1" */
/* 3: the shared llmd_index_region_t header; 4: open-addressed tables */
#define LLMD_KVI_VERSION   4

/* Keys computed per slice of a BlockStored event. */
#define LLMD_KVI_SLICE     64

/* Slots per bucket; 4-byte words per entry and table (see above). */
#define LLMD_KVI_SLOTS     10
#define LLMD_KVI_WORDS     3

enum {
    LLMD_KVI_GPU = 0,
    LLMD_KVI_CPU,
    LLMD_KVI_SPEC
};

/* The two tables. */
enum {
    LLMD_KVI_KEYS = 0,
    LLMD_KVI_HASHES
};


typedef struct {
    llmd_index_entry_t  base;    /* endpoint and its LRU neighbours */
    uint8_t             tier;
    uint8_t             refs;    /* duplicate stores of the same block */
    uint16_t            reserved;
    uint64_t            key;     /* request key */
    uint64_t            hash;    /* engine hash, or expiry (ms) if
                                    speculative */
} llmd_kvi_entry_t;

/* One cache line: 16 words. */
typedef struct {
    uint32_t            ent[LLMD_KVI_SLOTS];     /* 0: free slot */
    uint16_t            tag[LLMD_KVI_SLOTS];
    uint32_t            over;    /* entries that passed this bucket, full,
                                    for a later one */
} llmd_kvi_bucket_t;

/* The entries of one table whose slot's tag matches a hash's. */
typedef struct {
    llmd_kvi_bucket_t  *b;
    int                 t;
    uint32_t            s;       /* next slot of b */
    uint32_t            left;    /* buckets left to look at */
    uint16_t            tag;
} llmd_kvi_iter_t;

struct llmd_kv_index_s {
    llmd_index_region_t  region;
    uint32_t             spec[LLMD_MAX_ENDPOINTS];   /* speculative entries */
};

/* The tables start on a 64-byte boundary of a 64-byte aligned region. */
#define LLMD_KVI_HEADER  ((sizeof(llmd_kv_index_t) + 63) & ~(size_t) 63)


static const llmd_index_layout_t  llmd_kvi_layout = {
    LLMD_KVI_MAGIC, LLMD_KVI_VERSION, LLMD_KVI_HEADER,
    sizeof(llmd_kvi_entry_t), 2
};


/* lookups run this many keys ahead of their bucket loads (prefetch) */
#define LLMD_KVI_AHEAD  8

static llmd_kvi_entry_t *llmd_kvi_entry(const llmd_kv_index_t *idx,
    uint32_t e);
static uint64_t llmd_kvi_kmix(uint64_t key);
static uint64_t llmd_kvi_hmix(uint32_t ep, uint64_t hash);
static llmd_kvi_bucket_t *llmd_kvi_bucket(const llmd_kv_index_t *idx,
    int t, uint64_t mix);
static llmd_kvi_bucket_t *llmd_kvi_next(const llmd_kv_index_t *idx, int t,
    llmd_kvi_bucket_t *b);
static uint32_t llmd_kvi_first(const llmd_kv_index_t *idx,
    llmd_kvi_iter_t *it, int t, uint64_t mix);
static uint32_t llmd_kvi_more(const llmd_kv_index_t *idx,
    llmd_kvi_iter_t *it);
static uint64_t llmd_kvi_spec_total(const llmd_kv_index_t *idx);
static void llmd_kvi_slot_add(llmd_kv_index_t *idx, int t, uint64_t mix,
    uint32_t e);
static void llmd_kvi_slot_del(llmd_kv_index_t *idx, int t, uint64_t mix,
    uint32_t e);
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
static void llmd_kvi_stored(llmd_kv_index_t *idx, uint32_t ep,
    uint64_t root, uint32_t block_size, const llmd_kv_event_t *ev,
    llmd_kv_apply_stats_t *st);


size_t
llmd_kv_index_min_size(void)
{
    return llmd_index_region_flat_min_size(&llmd_kvi_layout, LLMD_KVI_WORDS);
}


size_t
llmd_kv_index_entry_bytes(void)
{
    return llmd_index_region_flat_entry_bytes(&llmd_kvi_layout,
                                              LLMD_KVI_WORDS);
}


llmd_kv_index_t *
llmd_kv_index_create(void *mem, size_t size)
{
    return (llmd_kv_index_t *) llmd_index_region_create_flat(mem, size,
                                                  &llmd_kvi_layout,
                                                  LLMD_KVI_WORDS);
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
        __builtin_prefetch(llmd_kvi_bucket(idx, LLMD_KVI_HASHES,
                                           llmd_kvi_hmix(ep, ev->parent)));
    }

    n = ev->nhashes < LLMD_KVI_SLICE ? ev->nhashes : LLMD_KVI_SLICE;

    for (i = 0; i < n; i++) {
        __builtin_prefetch(llmd_kvi_bucket(idx, LLMD_KVI_HASHES,
                                           llmd_kvi_hmix(ep, ev->hashes[i])),
                           1);
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
    llmd_kvi_iter_t    it;
    uint16_t           active[LLMD_MAX_ENDPOINTS];
    uint32_t           seen[LLMD_MAX_ENDPOINTS];
    float              weight[LLMD_MAX_ENDPOINTS];
    llmd_kvi_entry_t  *entry;

    memset(match, 0, LLMD_MAX_ENDPOINTS * sizeof(double));
    memset(seen, 0, sizeof(seen));
    nactive = 0;

    /* the buckets of a large index are cache misses: the lookups run
       LLMD_KVI_AHEAD keys behind their bucket loads */
    for (i = 0; i < n && i < LLMD_KVI_AHEAD; i++) {
        __builtin_prefetch(llmd_kvi_bucket(idx, LLMD_KVI_KEYS,
                                           llmd_kvi_kmix(keys[i])));
    }

    for (i = 0; i < n; i++) {
        stamp = (uint32_t) i + 1;

        /* the bucket of a key further on */
        if (i + LLMD_KVI_AHEAD < n) {
            __builtin_prefetch(llmd_kvi_bucket(idx, LLMD_KVI_KEYS,
                               llmd_kvi_kmix(keys[i + LLMD_KVI_AHEAD])));
        }

        /* this key's endpoints and their best tier weight */
        for (e = llmd_kvi_first(idx, &it, LLMD_KVI_KEYS,
                                llmd_kvi_kmix(keys[i]));
             e != LLMD_INDEX_NONE;
             e = llmd_kvi_more(idx, &it))
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


/*
 * Recounts, for tests: every slot holds a live entry with the tag of its
 * hash, found from its home bucket; every `over` equals the entries that
 * went beyond the bucket; each live entry has its slots (one in the table
 * of keys, one in that of engine hashes unless speculative).
 */
int
llmd_kv_index_check(const llmd_kv_index_t *idx)
{
    int                 t;
    size_t              slots[2];
    uint32_t            ep, e, f, nb, i, s, *passed;
    uint64_t            mix, live;
    llmd_kvi_iter_t     it;
    llmd_kvi_entry_t   *entry;
    llmd_kvi_bucket_t  *table, *b;

    nb = idx->region.nbuckets / 16;
    live = 0;
    slots[0] = slots[1] = 0;

    for (ep = 0; ep < LLMD_MAX_ENDPOINTS; ep++) {
        for (e = idx->region.lru[ep].newest;
             e != LLMD_INDEX_NONE;
             e = entry->base.lru.older)
        {
            entry = llmd_kvi_entry(idx, e);
            if (entry->base.ep != ep || entry->refs == 0) {
                return -1;
            }
            live++;
        }
    }

    if (live != idx->region.used) {
        return -2;
    }

    passed = malloc(nb * sizeof(uint32_t));
    if (passed == NULL) {
        return -9;
    }

    for (t = 0; t < 2; t++) {
        table = (llmd_kvi_bucket_t *) llmd_index_region_buckets(
                    &idx->region, &llmd_kvi_layout, t);

        for (i = 0; i < nb; i++) {
            for (s = 0; s < LLMD_KVI_SLOTS; s++) {
                e = table[i].ent[s];
                if (e == LLMD_INDEX_NONE) {
                    continue;
                }

                if (e > idx->region.capacity) {
                    free(passed);
                    return -3;
                }

                entry = llmd_kvi_entry(idx, e);
                if (entry->refs == 0
                    || (t == LLMD_KVI_HASHES && entry->tier == LLMD_KVI_SPEC))
                {
                    free(passed);
                    return -4;
                }

                mix = t == LLMD_KVI_KEYS
                      ? llmd_kvi_kmix(entry->key)
                      : llmd_kvi_hmix(entry->base.ep, entry->hash);

                if (table[i].tag[s] != (uint16_t) (mix >> 16)) {
                    free(passed);
                    return -5;
                }

                /* a lookup from its home bucket gets to it */
                for (f = llmd_kvi_first(idx, &it, t, mix);
                     f != LLMD_INDEX_NONE && f != e;
                     f = llmd_kvi_more(idx, &it))
                { /* void */ }

                if (f != e) {
                    free(passed);
                    return -8;
                }

                slots[t]++;
            }

        }

        /* every entry passed the buckets from its home to its own */
        memset(passed, 0, nb * sizeof(uint32_t));

        for (i = 0; i < nb; i++) {
            for (s = 0; s < LLMD_KVI_SLOTS; s++) {
                e = table[i].ent[s];
                if (e == LLMD_INDEX_NONE) {
                    continue;
                }

                entry = llmd_kvi_entry(idx, e);
                mix = t == LLMD_KVI_KEYS
                      ? llmd_kvi_kmix(entry->key)
                      : llmd_kvi_hmix(entry->base.ep, entry->hash);

                for (b = llmd_kvi_bucket(idx, t, mix); b != &table[i];
                     b = llmd_kvi_next(idx, t, b))
                {
                    passed[b - table]++;
                }
            }
        }

        for (i = 0; i < nb; i++) {
            if (passed[i] != table[i].over) {
                free(passed);
                return -6;
            }
        }
    }

    free(passed);

    if (slots[LLMD_KVI_KEYS] != live
        || slots[LLMD_KVI_HASHES] != live - llmd_kvi_spec_total(idx))
    {
        return -7;
    }

    return 0;
}


/*
 * In a full region every new entry evicts the oldest entry of the victim
 * endpoint (llmd_index_region_evict), and unchaining it reads the entry
 * and the buckets of its request key and engine hash: cache misses. A
 * pipeline one store ahead, without a walk of dependent misses: before
 * each store, the entry after the oldest (its line loaded one store
 * earlier) gets its two buckets prefetched, and the entry after it its
 * line; the oldest itself was that entry one store earlier. The victim is
 * the region's choice or ep once ep holds more (llmd_index_victim, but for
 * its periodic refresh); a wrong guess costs a few loads.
 *
 * A macro, not a function: GCC finds a function of loads and prefetches
 * pure, and drops the call to a pure function returning nothing.
 */
#define llmd_kvi_victim_ahead(idx, ep)                                        \
    do {                                                                      \
        uint32_t           v_, e_;                                            \
        llmd_kvi_entry_t  *x_;                                                \
                                                                              \
        v_ = (idx)->region.victim;                                            \
        if (v_ >= LLMD_MAX_ENDPOINTS                                          \
            || (idx)->region.lru[ep].count > (idx)->region.lru[v_].count)     \
        {                                                                     \
            v_ = (ep);                                                        \
        }                                                                     \
        e_ = (idx)->region.lru[v_].oldest;                                    \
        if (e_ != LLMD_INDEX_NONE) {                                          \
            e_ = llmd_kvi_entry(idx, e_)->base.lru.newer;                     \
        }                                                                     \
        if (e_ != LLMD_INDEX_NONE) {                                          \
            x_ = llmd_kvi_entry(idx, e_);                                     \
            __builtin_prefetch(llmd_kvi_bucket(idx, LLMD_KVI_KEYS,            \
                                               llmd_kvi_kmix(x_->key)), 1);   \
            if (x_->tier != LLMD_KVI_SPEC) {                                  \
                __builtin_prefetch(llmd_kvi_bucket(idx, LLMD_KVI_HASHES,      \
                                   llmd_kvi_hmix(x_->base.ep, x_->hash)), 1); \
            }                                                                 \
            if (x_->base.lru.newer != LLMD_INDEX_NONE) {                      \
                __builtin_prefetch(llmd_kvi_entry(idx, x_->base.lru.newer),   \
                                   1);                                        \
            }                                                                 \
        }                                                                     \
    } while (0)


static void
llmd_kvi_stored(llmd_kv_index_t *idx, uint32_t ep, uint64_t root,
    uint32_t block_size, const llmd_kv_event_t *ev, llmd_kv_apply_stats_t *st)
{
    int        tier, full;
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

    /* in a full region every new entry evicts one */
    full = idx->region.free == LLMD_INDEX_NONE
           && idx->region.fresh > idx->region.capacity;

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
            __builtin_prefetch(llmd_kvi_bucket(idx, LLMD_KVI_HASHES,
                                   llmd_kvi_hmix(ep, ev->hashes[i + k])), 1);
            __builtin_prefetch(llmd_kvi_bucket(idx, LLMD_KVI_KEYS,
                                               llmd_kvi_kmix(keys[k])), 1);
        }

        for (k = 0; k < got; k++) {
            if (full) {
                llmd_kvi_victim_ahead(idx, ep);
            }
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
    uint32_t           e;
    llmd_kvi_entry_t  *entry;

    e = llmd_kvi_find_hash(idx, ep, hash, tier);

    if (e != LLMD_INDEX_NONE) {
        entry = llmd_kvi_entry(idx, e);

        if (entry->refs < UINT8_MAX) {
            entry->refs++;
        }

        if (entry->key != key) {
            /* the engine reused a hash for other tokens: re-key it */
            llmd_kvi_slot_del(idx, LLMD_KVI_KEYS, llmd_kvi_kmix(entry->key),
                              e);
            entry->key = key;
            llmd_kvi_slot_add(idx, LLMD_KVI_KEYS, llmd_kvi_kmix(key), e);
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
    uint32_t           e;
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

    llmd_kvi_slot_add(idx, LLMD_KVI_KEYS, llmd_kvi_kmix(key), e);

    if (tier == LLMD_KVI_SPEC) {
        idx->spec[ep]++;

    } else {
        llmd_kvi_slot_add(idx, LLMD_KVI_HASHES, llmd_kvi_hmix(ep, hash), e);
    }

    return e;
}


/* tier -1: any real (non-speculative) tier */
static uint32_t
llmd_kvi_find_hash(const llmd_kv_index_t *idx, uint32_t ep, uint64_t hash,
    int tier)
{
    uint32_t           e;
    llmd_kvi_iter_t    it;
    llmd_kvi_entry_t  *entry;

    for (e = llmd_kvi_first(idx, &it, LLMD_KVI_HASHES,
                            llmd_kvi_hmix(ep, hash));
         e != LLMD_INDEX_NONE;
         e = llmd_kvi_more(idx, &it))
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
    llmd_kvi_iter_t    it;
    llmd_kvi_entry_t  *entry;

    for (e = llmd_kvi_first(idx, &it, LLMD_KVI_KEYS, llmd_kvi_kmix(key));
         e != LLMD_INDEX_NONE;
         e = llmd_kvi_more(idx, &it))
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


/* The region's unchain function: e leaves its tables. */
static void
llmd_kvi_unchain(llmd_index_region_t *r, uint32_t e)
{
    llmd_kv_index_t   *idx;
    llmd_kvi_entry_t  *entry;

    idx = (llmd_kv_index_t *) r;
    entry = llmd_kvi_entry(idx, e);

    llmd_kvi_slot_del(idx, LLMD_KVI_KEYS, llmd_kvi_kmix(entry->key), e);

    if (entry->tier == LLMD_KVI_SPEC) {
        idx->spec[entry->base.ep]--;
        return;
    }

    llmd_kvi_slot_del(idx, LLMD_KVI_HASHES,
                      llmd_kvi_hmix(entry->base.ep, entry->hash), e);
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
 * The bucket comes from the high 32 bits of the mix, the tag from bits
 * 16..31.
 */
static uint64_t
llmd_kvi_kmix(uint64_t key)
{
    return key * 0x9e3779b97f4a7c15ULL;
}


/* The endpoint is spread over all bits: engine hashes that differ in a few
   high bits (or pods publishing the same hashes) must not cancel it. */
static uint64_t
llmd_kvi_hmix(uint32_t ep, uint64_t hash)
{
    return (hash ^ ((uint64_t) (ep + 1) * 0xc2b2ae3d27d4eb4fULL))
           * 0x9e3779b97f4a7c15ULL;
}


/* The home bucket of mix in table t. */
static llmd_kvi_bucket_t *
llmd_kvi_bucket(const llmd_kv_index_t *idx, int t, uint64_t mix)
{
    uint32_t            nb;
    llmd_kvi_bucket_t  *table;

    table = (llmd_kvi_bucket_t *) llmd_index_region_buckets(&idx->region,
                                                  &llmd_kvi_layout, t);
    nb = idx->region.nbuckets / 16;

    return &table[((mix >> 32) * nb) >> 32];
}


/* The bucket after b in table t (the last one is followed by the first). */
static llmd_kvi_bucket_t *
llmd_kvi_next(const llmd_kv_index_t *idx, int t, llmd_kvi_bucket_t *b)
{
    llmd_kvi_bucket_t  *table;

    table = (llmd_kvi_bucket_t *) llmd_index_region_buckets(&idx->region,
                                                  &llmd_kvi_layout, t);

    return b + 1 == table + idx->region.nbuckets / 16 ? table : b + 1;
}


/*
 * The first entry of table t whose tag is mix's (LLMD_INDEX_NONE: none);
 * llmd_kvi_more() gives the next ones.  The caller checks the entry: a tag
 * is 16 bits of the hash.
 */
static uint32_t
llmd_kvi_first(const llmd_kv_index_t *idx, llmd_kvi_iter_t *it, int t,
    uint64_t mix)
{
    it->b = llmd_kvi_bucket(idx, t, mix);
    it->t = t;
    it->s = 0;
    it->left = idx->region.nbuckets / 16;
    it->tag = (uint16_t) (mix >> 16);

    return llmd_kvi_more(idx, it);
}


static uint32_t
llmd_kvi_more(const llmd_kv_index_t *idx, llmd_kvi_iter_t *it)
{
    uint32_t            s, e;
    llmd_kvi_bucket_t  *b;

    b = it->b;

    for ( ;; ) {
        for (s = it->s; s < LLMD_KVI_SLOTS; s++) {
            e = b->ent[s];
            if (b->tag[s] == it->tag && e != LLMD_INDEX_NONE) {
                it->s = s + 1;
                return e;
            }
        }

        /* nothing for this hash went beyond b */
        if (b->over == 0 || --it->left == 0) {
            it->s = LLMD_KVI_SLOTS;
            return LLMD_INDEX_NONE;
        }

        b = llmd_kvi_next(idx, it->t, b);
        it->b = b;
        it->s = 0;
    }
}


/* Puts e in the first free slot from mix's home bucket on. */
static void
llmd_kvi_slot_add(llmd_kv_index_t *idx, int t, uint64_t mix, uint32_t e)
{
    uint32_t            s, n;
    llmd_kvi_bucket_t  *b;

    b = llmd_kvi_bucket(idx, t, mix);

    /* a table has more slots than the region entries: one is free */
    for (n = idx->region.nbuckets / 16; n; n--) {
        for (s = 0; s < LLMD_KVI_SLOTS; s++) {
            if (b->ent[s] == LLMD_INDEX_NONE) {
                b->ent[s] = e;
                b->tag[s] = (uint16_t) (mix >> 16);
                return;
            }
        }

        b->over++;
        b = llmd_kvi_next(idx, t, b);
    }
}


/* Frees e's slot, found from mix's home bucket on; the buckets passed
   count one entry less that went beyond them. */
static void
llmd_kvi_slot_del(llmd_kv_index_t *idx, int t, uint64_t mix, uint32_t e)
{
    uint32_t            s, n, passed;
    llmd_kvi_bucket_t  *b, *home;

    home = llmd_kvi_bucket(idx, t, mix);
    b = home;

    for (passed = 0; passed < idx->region.nbuckets / 16; passed++) {
        for (s = 0; s < LLMD_KVI_SLOTS; s++) {
            if (b->ent[s] == e) {
                b->ent[s] = LLMD_INDEX_NONE;

                for (n = 0, b = home; n < passed; n++) {
                    b->over--;
                    b = llmd_kvi_next(idx, t, b);
                }

                return;
            }
        }

        if (b->over == 0) {
            return;                           /* not in the table */
        }

        b = llmd_kvi_next(idx, t, b);
    }
}


static uint64_t
llmd_kvi_spec_total(const llmd_kv_index_t *idx)
{
    size_t    i;
    uint64_t  n;

    n = 0;
    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        n += idx->spec[i];
    }

    return n;
}
