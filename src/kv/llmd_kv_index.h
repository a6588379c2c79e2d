/*
 * The precise prefix index (llm-d dual-key design) in one caller-provided
 * region, with offsets only, so it lives in nginx shared memory and survives
 * a reload (attach), or in malloc'ed memory in tests and tools.
 *
 * One fixed-size entry per (endpoint, stored block): request key, engine
 * hash, endpoint, tier (gpu, cpu, speculative) and, for speculative
 * entries, an expiry.  Entries are chained in two hash tables (by request
 * key; by endpoint and engine hash) and in their endpoint's LRU list
 * (core/llmd_index_region.h): vLLM removes blocks itself with BlockRemoved,
 * eviction only happens when the region is full.  Not thread-safe: the
 * caller holds a lock.  See docs/kv-events.md.
 */
#ifndef LLMD_KV_INDEX_H
#define LLMD_KV_INDEX_H

#include "core/llmd_common.h"
#include "core/llmd_index_region.h"
#include "kv/llmd_kv_events.h"

typedef struct llmd_kv_index_s  llmd_kv_index_t;

/* Smallest region that holds an index with a few entries. */
size_t llmd_kv_index_min_size(void);

/* Bytes one (endpoint, block) entry costs, buckets included. */
size_t llmd_kv_index_entry_bytes(void);

/* Lay out a new, empty index in mem[0..size) (8-byte aligned). NULL if
   size is too small. */
llmd_kv_index_t *llmd_kv_index_create(void *mem, size_t size);

/* Reuse an index created earlier in the same region (after a reload).
   NULL if the region does not hold a compatible index. */
llmd_kv_index_t *llmd_kv_index_attach(void *mem, size_t size);

typedef struct {
    uint64_t  stored;                  /* blocks, cumulative (caller zeroes) */
    uint64_t  removed;
    uint64_t  cleared;
    uint64_t  dropped_unknown_parent;
    uint64_t  dropped_block_size;
    uint64_t  dropped_other;
} llmd_kv_apply_stats_t;

/*
 * Apply an event from endpoint ep (< LLMD_MAX_ENDPOINTS).
 * root = llmd_kv_root_key(seed, model of the event: lora_name if set, else
 * the topic model).  block_size = the configured request block size; a
 * BlockStored whose block_size is non-zero and differs is dropped
 * (dropped_block_size): only the 1:1 engine:request block mapping is
 * supported.  BlockStored: parent nil -> chain from root; parent known for
 * this ep (engine hash -> request key) -> chain from its request key;
 * unknown -> the event is dropped (llm-d behaviour).  tokens must be
 * nhashes * block_size, else the event is dropped (dropped_other); zero
 * tokens with known engine hashes = tier update.  BlockRemoved removes the
 * (ep, engine hash) entries.  AllBlocksCleared clears ep.  st may be NULL.
 */
void llmd_kv_index_apply(llmd_kv_index_t *idx, uint32_t ep, uint64_t root,
    uint32_t block_size, const llmd_kv_event_t *ev,
    llmd_kv_apply_stats_t *st);

/*
 * Starts loading what applying ev from endpoint ep will read first (the
 * buckets of its engine hashes and of its parent): the index is mostly
 * cache misses, so a caller that knows the next event (ev->next) calls
 * this before applying the current one. Reads nothing but the region's
 * geometry; harmless for any event.
 */
void llmd_kv_index_prefetch(const llmd_kv_index_t *idx, uint32_t ep,
    const llmd_kv_event_t *ev);

/* Forget every entry of endpoint ep. */
void llmd_kv_index_clear_endpoint(llmd_kv_index_t *idx, uint32_t ep);

/*
 * llm-d LongestPrefixScorer: per endpoint, the weighted length of the
 * consecutive run of request keys from key 0 it holds (weight per key = the
 * largest tier weight among its entries: gpu 1.0, cpu 0.8, speculative 1.0
 * while now_ms < expiry).  match has LLMD_MAX_ENDPOINTS elements; it is
 * zeroed first.
 */
void llmd_kv_index_match(const llmd_kv_index_t *idx, const uint64_t *keys,
    size_t n, uint64_t now_ms, double *match);

/* Speculative entries for the picked endpoint (no engine hash), expiring at
   now_ms + ttl_ms; a later real BlockStored for the same (ep, key)
   replaces it. */
void llmd_kv_index_speculate(llmd_kv_index_t *idx, uint32_t ep,
    const uint64_t *keys, size_t n, uint64_t now_ms, uint32_t ttl_ms);

/* Checks the index's tables against its entries (every bucket and entry,
   a malloc'ed count per bucket; for tests): 0 if consistent. */
int llmd_kv_index_check(const llmd_kv_index_t *idx);

/* entries: (endpoint, block) entries; capacity: the most the region holds */
typedef llmd_index_stats_t  llmd_kv_index_stats_t;

void llmd_kv_index_stats(const llmd_kv_index_t *idx,
    llmd_kv_index_stats_t *st);

#endif /* LLMD_KV_INDEX_H */
