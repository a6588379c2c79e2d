/*
 * The state of a no-hit-lru-scorer across requests: which endpoints served
 * the latest cold requests (no prefix cache hit on any candidate), oldest
 * first, at most lruSize of them. Plain memory with entry numbers, no
 * pointers, so the nginx glue can keep it in shared memory (any address,
 * any worker, under its own lock): size it with llmd_nohit_lru_size(), set
 * it up once with llmd_nohit_lru_init().
 */
#ifndef LLMD_NOHIT_LRU_H
#define LLMD_NOHIT_LRU_H

#include "core/llmd_common.h"
#include "core/llmd_lru.h"

typedef struct {
    uint32_t    capacity;       /* lruSize */
    uint32_t    used;           /* entries ever taken, <= capacity */
    llmd_lru_t  lru;
    uint64_t    records;        /* cold requests recorded; also aligns
                                   the entries that follow */
    /* followed by capacity + 1 llmd_nohit_entry_t (entry 0 unused) */
} llmd_nohit_lru_t;

/* Bytes for a state of capacity endpoints. */
size_t llmd_nohit_lru_size(uint32_t capacity);

/* An empty state in mem of llmd_nohit_lru_size(capacity) bytes. */
void llmd_nohit_lru_init(llmd_nohit_lru_t *s, uint32_t capacity);

/*
 * The endpoint id served a cold request: it becomes the most recently
 * used; a new id past capacity evicts the least recently used one.
 */
void llmd_nohit_lru_record(llmd_nohit_lru_t *s, uint64_t id);

/*
 * For each of the n ids, its position in the whole LRU from the least
 * recently used (0) on, or -1 when it is not tracked.
 */
void llmd_nohit_lru_positions(const llmd_nohit_lru_t *s, const uint64_t *ids,
    size_t n, int32_t *pos);

#endif /* LLMD_NOHIT_LRU_H */
