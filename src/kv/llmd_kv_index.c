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
/* 3: the shared llmd_index_region_t header; 4: open-addressed tables;
   5: the eviction ring */
#define LLMD_KVI_VERSION   5

/* Bytes of eviction ring per entry: 6 / 5 records of 5 bytes. */
#define LLMD_KVI_RING_BYTES  6

/* Eviction look-ahead: the buckets of the entry this many records of the
   victim ahead of its oldest are prefetched, the line of the entry
   LLMD_KVI_FAR ahead; records read per cursor and store at most. */
#define LLMD_KVI_MID     4
#define LLMD_KVI_FAR     12
#define LLMD_KVI_SCAN    64

#if (LLMD_MAX_ENDPOINTS > 256)
#error "the eviction ring keeps endpoints in one byte"
#endif

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
    uint16_t            stamp;   /* low 16 bits of the position of its
                                    latest ring record (+1 once freed) */
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

/* A position in the eviction ring: records pushed before it, and where. */
typedef struct {
    uint64_t            seq;
    uint32_t            at;      /* seq % nring */
    uint32_t            gap;     /* records of the endpoint from `cur` on,
                                    before this one (mid, far) */
} llmd_kvi_pos_t;

/* An endpoint's cursors: the record of its oldest entry, the record whose
   buckets are prefetched next and the one whose entry line is. */
typedef struct {
    llmd_kvi_pos_t      cur;
    llmd_kvi_pos_t      mid;
    llmd_kvi_pos_t      far;
} llmd_kvi_ahead_t;

struct llmd_kv_index_s {
    llmd_index_region_t  region;
    uint32_t             spec[LLMD_MAX_ENDPOINTS];   /* speculative entries */
    /* the eviction ring: entry numbers (uint32) then endpoints (uint8) */
    uint64_t             ring_off;   /* from the index's start */
    uint64_t             ring_ep_off;
    uint32_t             nring;      /* records */
    uint32_t             reserved;
    llmd_kvi_pos_t       ring;       /* the next record */
    llmd_kvi_ahead_t     ahead[LLMD_MAX_ENDPOINTS];
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
static void llmd_kvi_ring_push(llmd_kv_index_t *idx, uint32_t ep,
    uint32_t e);
static int llmd_kvi_ring_verify(const llmd_kv_index_t *idx, uint32_t ep,
    size_t *known);
static void llmd_kvi_step(const llmd_kv_index_t *idx, llmd_kvi_pos_t *p);
static int llmd_kvi_latest(const llmd_kv_index_t *idx, uint32_t ep,
    const llmd_kvi_pos_t *p);
static llmd_kvi_pos_t llmd_kvi_ring_tail(const llmd_kv_index_t *idx);


size_t
llmd_kv_index_min_size(void)
{
    /* the flat region's minimum and its share of ring, with room for the
       rounding of the two ring arrays and of the ring's start */
    return llmd_index_region_flat_min_size(&llmd_kvi_layout, LLMD_KVI_WORDS)
           / llmd_index_region_flat_entry_bytes(&llmd_kvi_layout,
                                                LLMD_KVI_WORDS)
           * llmd_kv_index_entry_bytes() + 1024;
}


size_t
llmd_kv_index_entry_bytes(void)
{
    return llmd_index_region_flat_entry_bytes(&llmd_kvi_layout,
                                              LLMD_KVI_WORDS)
           + LLMD_KVI_RING_BYTES;
}


/* Records of the eviction ring of an index of size bytes: 1.2 per entry
   it can hold. */
static size_t
llmd_kvi_ring_records(size_t size)
{
    return size / llmd_kv_index_entry_bytes() * LLMD_KVI_RING_BYTES / 5;
}


/* The bytes before the ring (the region), a multiple of 64; 0 if size has
   no room. */
static size_t
llmd_kvi_ring_start(size_t size, size_t nring)
{
    size_t  ring;

    ring = ((nring * 4 + 63) & ~(size_t) 63) + ((nring + 63) & ~(size_t) 63);

    return size > ring ? (size - ring) & ~(size_t) 63 : 0;
}


llmd_kv_index_t *
llmd_kv_index_create(void *mem, size_t size)
{
    size_t            n, start;
    llmd_kv_index_t  *idx;

    if (size < llmd_kv_index_min_size()) {
        return NULL;
    }

    n = llmd_kvi_ring_records(size);
    start = llmd_kvi_ring_start(size, n);

    idx = (llmd_kv_index_t *) llmd_index_region_create_flat(mem, start,
                                                  &llmd_kvi_layout,
                                                  LLMD_KVI_WORDS);
    if (idx == NULL) {
        return NULL;
    }

    /* the header is zeroed: the ring is empty, every cursor at its start */
    idx->ring_off = start;
    idx->ring_ep_off = start + ((n * 4 + 63) & ~(size_t) 63);
    idx->nring = (uint32_t) n;

    return idx;
}


llmd_kv_index_t *
llmd_kv_index_attach(void *mem, size_t size)
{
    size_t            n, start;
    llmd_kv_index_t  *idx;

    if (size < llmd_kv_index_min_size()) {
        return NULL;
    }

    n = llmd_kvi_ring_records(size);
    start = llmd_kvi_ring_start(size, n);

    idx = (llmd_kv_index_t *) llmd_index_region_attach(mem, start,
                                                       &llmd_kvi_layout);
    if (idx == NULL || idx->nring != n || idx->ring_off != start) {
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

    /* every record of ep so far is stale */
    if (ep < LLMD_MAX_ENDPOINTS) {
        idx->ahead[ep].cur = idx->ring;
        idx->ahead[ep].cur.gap = 0;
        idx->ahead[ep].mid = idx->ahead[ep].cur;
        idx->ahead[ep].far = idx->ahead[ep].cur;
    }
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
            llmd_kvi_ring_push(idx, ep, e);
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
    size_t              known;
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

    for (ep = 0; ep < LLMD_MAX_ENDPOINTS; ep++) {
        if (llmd_kvi_ring_verify(idx, ep, &known) != 0) {
            return -9;
        }
    }

    return 0;
}


size_t
llmd_kv_index_ring_known(const llmd_kv_index_t *idx, uint32_t ep)
{
    size_t  known;

    if (ep >= LLMD_MAX_ENDPOINTS
        || llmd_kvi_ring_verify(idx, ep, &known) != 0)
    {
        return (size_t) -1;
    }

    return known;
}


/*
 * ep's latest ring records from its `cur` cursor (or the oldest record
 * kept) on are its LRU list's newest entries, in the list's order: 0, and
 * how many (all of its entries unless records were overwritten); -1 if
 * not.
 */
static int
llmd_kvi_ring_verify(const llmd_kv_index_t *idx, uint32_t ep,
    size_t *known)
{
    size_t              n, k, skip;
    uint32_t            e, *seen, *ents;
    llmd_kvi_pos_t      p, tail;
    const llmd_lru_t   *lru;

    lru = &idx->region.lru[ep];
    ents = (uint32_t *) ((char *) idx + idx->ring_off);

    p = idx->ahead[ep].cur;
    tail = llmd_kvi_ring_tail(idx);
    if (p.seq < tail.seq) {
        p = tail;
    }

    seen = malloc((idx->nring + 1) * sizeof(uint32_t));
    if (seen == NULL) {
        return -1;
    }

    for (n = 0; p.seq < idx->ring.seq; llmd_kvi_step(idx, &p)) {
        if (llmd_kvi_latest(idx, ep, &p)) {
            seen[n++] = ents[p.at];
        }
    }

    if (n > lru->count) {
        free(seen);
        return -1;
    }

    /* the list from its oldest entry: skip those the ring lost */
    skip = lru->count - n;
    e = lru->oldest;
    for (k = 0; e != LLMD_INDEX_NONE; k++) {
        if (k >= skip && seen[k - skip] != e) {
            free(seen);
            return -1;
        }
        e = llmd_kvi_entry(idx, e)->base.lru.newer;
    }

    free(seen);

    if (k != lru->count) {
        return -1;
    }

    *known = n;
    return 0;
}


/*
 * The eviction ring: one record (entry number, endpoint) per push of an
 * entry to the newest end of its endpoint's LRU list (a new entry, a
 * refresh), in push order, in a circular array of 1.2 records per entry
 * the region holds; the oldest records are overwritten.  A record is the
 * latest of its entry while the entry's stamp is the record's position
 * (low 16 bits): a refresh pushes a new record, freeing an entry moves its
 * stamp on.  So an endpoint's latest records, in ring order, are its LRU
 * list from the oldest entry on (llmd_kv_index_check verifies it): the
 * endpoints' next victims, read from an array instead of by following
 * each entry's `newer` link, one dependent cache miss per entry.  The ring
 * only says what to prefetch: eviction itself stays the region's (the
 * oldest entry of the LRU list), so a ring that lost records (overwritten
 * after many refreshes) costs prefetches, never a wrong eviction.
 */
static void
llmd_kvi_ring_push(llmd_kv_index_t *idx, uint32_t ep, uint32_t e)
{
    uint8_t   *eps;
    uint32_t  *ents;

    ents = (uint32_t *) ((char *) idx + idx->ring_off);
    eps = (uint8_t *) idx + idx->ring_ep_off;

    ents[idx->ring.at] = e;
    eps[idx->ring.at] = (uint8_t) ep;
    llmd_kvi_entry(idx, e)->stamp = (uint16_t) idx->ring.seq;

    idx->ring.seq++;
    if (++idx->ring.at == idx->nring) {
        idx->ring.at = 0;
    }
}


static void
llmd_kvi_step(const llmd_kv_index_t *idx, llmd_kvi_pos_t *p)
{
    p->seq++;
    if (++p->at == idx->nring) {
        p->at = 0;
    }
}


/* The record at p is its entry's latest, and the entry is ep's. */
static int
llmd_kvi_latest(const llmd_kv_index_t *idx, uint32_t ep,
    const llmd_kvi_pos_t *p)
{
    uint32_t           e;
    llmd_kvi_entry_t  *x;

    if (((uint8_t *) idx + idx->ring_ep_off)[p->at] != ep) {
        return 0;
    }

    e = ((uint32_t *) ((char *) idx + idx->ring_off))[p->at];
    x = llmd_kvi_entry(idx, e);

    return x->base.ep == ep && x->stamp == (uint16_t) p->seq;
}


/* The oldest record the ring still holds. */
static llmd_kvi_pos_t
llmd_kvi_ring_tail(const llmd_kv_index_t *idx)
{
    llmd_kvi_pos_t  p;

    p.gap = 0;

    if (idx->ring.seq <= idx->nring) {
        p.seq = 0;
        p.at = 0;

    } else {
        p.seq = idx->ring.seq - idx->nring;
        p.at = idx->ring.at;
    }

    return p;
}


/*
 * Before a store into a full region: the victim's cursors move on.  `cur`
 * goes to the record of the victim's oldest entry (the next eviction),
 * `mid` to the LLMD_KVI_MID-th record of the victim from there, and
 * each record it passes gets its entry's buckets prefetched (the entry's
 * line was prefetched by `far`), `far` to the LLMD_KVI_FAR-th, prefetching
 * the entry lines.  Every load but the victim's oldest entry's is of the
 * ring, read in order: no chain of misses.  The victim is the region's
 * choice or ep once ep holds more (llmd_index_victim, but for its periodic
 * refresh); a wrong guess costs a few loads.  Each cursor reads at most
 * LLMD_KVI_SCAN records per store.
 */
static void
llmd_kvi_victims_ahead(llmd_kv_index_t *idx, uint32_t ep)
{
    uint8_t            *eps;
    uint32_t            v, e, passed, n, *ents;
    llmd_kvi_pos_t      tail;
    llmd_kvi_entry_t   *x;
    llmd_kvi_ahead_t   *a;

    v = idx->region.victim;
    if (v >= LLMD_MAX_ENDPOINTS
        || idx->region.lru[ep].count > idx->region.lru[v].count)
    {
        v = ep;
    }

    if (idx->region.lru[v].count == 0) {
        return;
    }

    ents = (uint32_t *) ((char *) idx + idx->ring_off);
    eps = (uint8_t *) idx + idx->ring_ep_off;
    a = &idx->ahead[v];

    /* records overwritten since: start over from the oldest one kept */
    tail = llmd_kvi_ring_tail(idx);
    if (a->cur.seq < tail.seq) {
        a->cur = tail;
    }

    /* cur: the first latest record of v, the oldest entry's unless the
       ring lost it (then the oldest entry the ring still knows) */
    passed = 0;
    for (n = 0; n < LLMD_KVI_SCAN && a->cur.seq < idx->ring.seq; n++) {
        if (eps[a->cur.at] == v) {
            if (llmd_kvi_latest(idx, v, &a->cur)) {
                break;
            }
            passed++;
        }
        llmd_kvi_step(idx, &a->cur);
    }

    if (a->mid.seq < a->cur.seq || a->mid.gap < passed) {
        a->mid = a->cur;
    } else {
        a->mid.gap -= passed;
    }

    if (a->far.seq < a->cur.seq || a->far.gap < passed) {
        a->far = a->cur;
    } else {
        a->far.gap -= passed;
    }

    /* mid: the buckets of the next victims (their lines loaded by far) */
    for (n = 0;
         n < LLMD_KVI_SCAN && a->mid.gap < LLMD_KVI_MID
         && a->mid.seq < idx->ring.seq;
         n++)
    {
        if (eps[a->mid.at] == v) {
            e = ents[a->mid.at];
            x = llmd_kvi_entry(idx, e);
            if (x->base.ep == v && x->stamp == (uint16_t) a->mid.seq) {
                __builtin_prefetch(llmd_kvi_bucket(idx, LLMD_KVI_KEYS,
                                                   llmd_kvi_kmix(x->key)), 1);
                if (x->tier != LLMD_KVI_SPEC) {
                    __builtin_prefetch(llmd_kvi_bucket(idx, LLMD_KVI_HASHES,
                                           llmd_kvi_hmix(v, x->hash)), 1);
                }
            }
            a->mid.gap++;
        }
        llmd_kvi_step(idx, &a->mid);
    }

    /* far: the lines of the victims after them (the ring alone: a stale
       record costs a useless prefetch) */
    for (n = 0;
         n < LLMD_KVI_SCAN && a->far.gap < LLMD_KVI_FAR
         && a->far.seq < idx->ring.seq;
         n++)
    {
        if (eps[a->far.at] == v) {
            __builtin_prefetch(llmd_kvi_entry(idx, ents[a->far.at]), 1);
            a->far.gap++;
        }
        llmd_kvi_step(idx, &a->far);
    }
}


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
                llmd_kvi_victims_ahead(idx, ep);
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
        llmd_kvi_ring_push(idx, ep, e);

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

    llmd_kvi_ring_push(idx, ep, e);

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

    /* its ring records are stale from now on */
    entry->stamp++;

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
