/*
 * The approximate prefix index: block hash -> endpoints that served it, with
 * one LRU of hashes per endpoint (capacity lruCapacityPerServer), laid out in
 * one caller-provided memory region with offsets only, so it can live in
 * nginx shared memory and survive a reload, or in malloc'ed memory in tests.
 * Bounded: the region size fixes the number of entries; when it is full the
 * least recently used entry of the endpoint holding the most entries is
 * evicted (llmd_index_region.h). Not thread-safe: the caller holds a lock.
 */
#ifndef LLMD_PREFIX_INDEX_H
#define LLMD_PREFIX_INDEX_H

#include "core/llmd_common.h"
#include "core/llmd_index_region.h"

typedef struct llmd_prefix_index_s  llmd_prefix_index_t;

/*
 * What a lookup saw, for the record after the pick
 * (llmd_prefix_index_add_held): the index's change count at the lookup,
 * and of one endpoint (ep: the first found holding block 0) block 0's
 * entry and, when it held the whole prompt, the last block's entry (else
 * LLMD_INDEX_NONE).  Whether the blocks between are one run of its LRU is
 * checked by the record.
 */
typedef struct {
    uint64_t  changes;
    uint32_t  ep;
    uint32_t  first;
    uint32_t  last;
} llmd_prefix_held_t;

/* Smallest region that holds an index with a few entries. */
size_t llmd_prefix_index_min_size(void);

/* Bytes one (hash, endpoint) entry costs, buckets included. */
size_t llmd_prefix_index_entry_bytes(void);

/* Lay out a new, empty index in mem[0..size). NULL if size is too small. */
llmd_prefix_index_t *llmd_prefix_index_create(void *mem, size_t size);

/* Reuse an index created earlier in the same region (after a reload).
   NULL if the region does not hold a compatible index. */
llmd_prefix_index_t *llmd_prefix_index_attach(void *mem, size_t size);

/*
 * llm-d matching: for each hash in order, the set of endpoints holding it;
 * stop at the first hash no endpoint holds; every endpoint in the set gets
 * +1. match must have LLMD_MAX_ENDPOINTS elements; it is zeroed first.
 * Also refreshes nothing (lookups do not change LRU order).  Because every
 * record is of a prompt's hashes from block 0 (llmd_prefix_index_add), an
 * endpoint holding a block holds every block before it, and the lookup
 * finds each endpoint's match from a few of the blocks
 * (llmd_prefix_index.c).
 */
void llmd_prefix_index_match(const llmd_prefix_index_t *idx,
    const uint64_t *hashes, size_t n, uint32_t *match);

/* As llmd_prefix_index_match, and fills held (see above). */
void llmd_prefix_index_match_held(const llmd_prefix_index_t *idx,
    const uint64_t *hashes, size_t n, uint32_t *match,
    llmd_prefix_held_t *held);

/* How many entries endpoint ep holds: 0 means its match is 0 for every
   prompt, so a caller that needs only some endpoints' matches may skip
   llmd_prefix_index_match when none of them holds any. */
uint32_t llmd_prefix_index_holds(const llmd_prefix_index_t *idx,
    uint32_t ep);

/* Record that endpoint ep holds these hashes (moved to MRU), evicting its
   oldest entries beyond capacity.  hashes: a prompt's chain from block 0
   (llmd_prefix_hashes()), the lookup counts on it.  The blocks ep holds
   as one run of its LRU from block 0 on (a prompt sent again, a chat's
   earlier turns, a shared head) are moved at once, not searched for; the
   LRU order is that of touching every block, last first (save an entry
   whose hash a later block repeats, a collision: it may stay behind). */
void llmd_prefix_index_add(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t n, uint32_t capacity);

/*
 * As llmd_prefix_index_add, given what the lookup of the same hashes saw
 * (held, or NULL): when the index has not changed since, the lookup saw
 * ep hold the whole prompt and its blocks are one run of ep's LRU, the
 * run is moved in front of ep's LRU without even the search for block 0.
 * The result is the same in every case; 1 if the lookup's view was
 * taken, 0 if not.
 */
int llmd_prefix_index_add_held(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t n, uint32_t capacity,
    const llmd_prefix_held_t *held);

/* Forget every entry of endpoint ep. */
void llmd_prefix_index_clear_endpoint(llmd_prefix_index_t *idx, uint32_t ep);

/* entries: (hash, endpoint) pairs; capacity: the most the region holds */
typedef llmd_index_stats_t  llmd_prefix_index_stats_t;

void llmd_prefix_index_stats(const llmd_prefix_index_t *idx,
    llmd_prefix_index_stats_t *st);

#endif /* LLMD_PREFIX_INDEX_H */
