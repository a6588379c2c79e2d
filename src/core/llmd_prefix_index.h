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
 * Also refreshes nothing (lookups do not change LRU order).
 */
void llmd_prefix_index_match(const llmd_prefix_index_t *idx,
    const uint64_t *hashes, size_t n, uint32_t *match);

/* How many entries endpoint ep holds: 0 means its match is 0 for every
   prompt, so a caller that needs only some endpoints' matches may skip
   llmd_prefix_index_match when none of them holds any. */
uint32_t llmd_prefix_index_holds(const llmd_prefix_index_t *idx,
    uint32_t ep);

/* Record that endpoint ep holds these hashes (moved to MRU), evicting its
   oldest entries beyond capacity. */
void llmd_prefix_index_add(llmd_prefix_index_t *idx, uint32_t ep,
    const uint64_t *hashes, size_t n, uint32_t capacity);

/* Forget every entry of endpoint ep. */
void llmd_prefix_index_clear_endpoint(llmd_prefix_index_t *idx, uint32_t ep);

/* entries: (hash, endpoint) pairs; capacity: the most the region holds */
typedef llmd_index_stats_t  llmd_prefix_index_stats_t;

void llmd_prefix_index_stats(const llmd_prefix_index_t *idx,
    llmd_prefix_index_stats_t *st);

#endif /* LLMD_PREFIX_INDEX_H */
