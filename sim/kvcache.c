/*
 * The KV cache of one pod: a fixed pool of blocks with vLLM's automatic
 * prefix caching (vllm/v1/core/block_pool.py).  A full block is registered
 * under its chained hash and stays cached after its requests finish; free
 * blocks (cached or not) form an LRU queue, and a cached block is evicted
 * only when the allocator takes it from the head of that queue.
 */
#include <stdlib.h>

#include "sim.h"


typedef struct {
    uint64_t  hash;
    int32_t   ref;
    int32_t   prev, next;       /* free queue links, -1 = none */
    int32_t   chain;            /* next block in the hash bucket */
    uint8_t   cached;
    uint8_t   in_free;
} sim_block_t;

struct sim_kv_s {
    sim_block_t        *blocks;
    uint32_t            n;
    int32_t            *buckets;
    uint32_t            mask;
    int32_t             head, tail;
    uint32_t            nfree;
    uint32_t            ncached;
    uint64_t            ops;            /* lookups, allocs, releases... */
    sim_kv_removed_pt   removed;
    void               *ctx;
};


static void
sim_kv_free_append(sim_kv_t *kv, int32_t b)
{
    sim_block_t  *blk = &kv->blocks[b];

    blk->prev = kv->tail;
    blk->next = -1;
    if (kv->tail >= 0) {
        kv->blocks[kv->tail].next = b;
    } else {
        kv->head = b;
    }
    kv->tail = b;
    blk->in_free = 1;
    kv->nfree++;
}


static void
sim_kv_free_remove(sim_kv_t *kv, int32_t b)
{
    sim_block_t  *blk = &kv->blocks[b];

    if (blk->prev >= 0) {
        kv->blocks[blk->prev].next = blk->next;
    } else {
        kv->head = blk->next;
    }
    if (blk->next >= 0) {
        kv->blocks[blk->next].prev = blk->prev;
    } else {
        kv->tail = blk->prev;
    }
    blk->prev = blk->next = -1;
    blk->in_free = 0;
    kv->nfree--;
}


sim_kv_t *
sim_kv_create(uint32_t num_blocks, sim_kv_removed_pt removed, void *ctx)
{
    sim_kv_t  *kv;
    uint32_t   nb, i;

    if (num_blocks == 0 || num_blocks > (1u << 28)) {
        return NULL;
    }

    kv = calloc(1, sizeof(sim_kv_t));
    if (kv == NULL) {
        return NULL;
    }

    nb = 1;
    while (nb < num_blocks * 2) {
        nb <<= 1;
    }

    kv->blocks = calloc(num_blocks, sizeof(sim_block_t));
    kv->buckets = malloc(nb * sizeof(int32_t));
    if (kv->blocks == NULL || kv->buckets == NULL) {
        sim_kv_destroy(kv);
        return NULL;
    }

    for (i = 0; i < nb; i++) {
        kv->buckets[i] = -1;
    }

    kv->n = num_blocks;
    kv->mask = nb - 1;
    kv->head = kv->tail = -1;
    kv->removed = removed;
    kv->ctx = ctx;

    for (i = 0; i < num_blocks; i++) {
        kv->blocks[i].chain = -1;
        sim_kv_free_append(kv, (int32_t) i);
    }

    return kv;
}


void
sim_kv_destroy(sim_kv_t *kv)
{
    if (kv == NULL) {
        return;
    }

    free(kv->blocks);
    free(kv->buckets);
    free(kv);
}


static uint32_t
sim_kv_bucket(const sim_kv_t *kv, uint64_t hash)
{
    /* the hash is already a SHA-256 slice: its low bits are uniform */
    return (uint32_t) (hash ^ (hash >> 32)) & kv->mask;
}


int32_t
sim_kv_lookup(sim_kv_t *kv, uint64_t hash)
{
    int32_t  b;

    kv->ops++;
    for (b = kv->buckets[sim_kv_bucket(kv, hash)]; b >= 0;
         b = kv->blocks[b].chain)
    {
        if (kv->blocks[b].hash == hash) {
            return b;
        }
    }

    return -1;
}


static void
sim_kv_uncache(sim_kv_t *kv, int32_t b)
{
    int32_t  *pp;

    pp = &kv->buckets[sim_kv_bucket(kv, kv->blocks[b].hash)];
    while (*pp >= 0) {
        if (*pp == b) {
            *pp = kv->blocks[b].chain;
            break;
        }
        pp = &kv->blocks[*pp].chain;
    }

    kv->blocks[b].chain = -1;
    kv->blocks[b].cached = 0;
    kv->ncached--;
}


void
sim_kv_touch(sim_kv_t *kv, int32_t b)
{
    kv->ops++;
    if (kv->blocks[b].in_free) {
        sim_kv_free_remove(kv, b);
    }
    kv->blocks[b].ref++;
}


int32_t
sim_kv_alloc(sim_kv_t *kv)
{
    int32_t   b;
    uint64_t  hash;

    kv->ops++;
    b = kv->head;
    if (b < 0) {
        return -1;
    }

    sim_kv_free_remove(kv, b);

    if (kv->blocks[b].cached) {
        hash = kv->blocks[b].hash;
        sim_kv_uncache(kv, b);
        if (kv->removed) {
            kv->removed(kv->ctx, hash);
        }
    }

    kv->blocks[b].ref = 1;
    return b;
}


void
sim_kv_release(sim_kv_t *kv, int32_t b)
{
    kv->ops++;
    if (--kv->blocks[b].ref == 0) {
        sim_kv_free_append(kv, b);
    }
}


int
sim_kv_cache(sim_kv_t *kv, int32_t b, uint64_t hash)
{
    uint32_t  k;

    kv->ops++;
    if (kv->blocks[b].cached || sim_kv_lookup(kv, hash) >= 0) {
        return -1;
    }

    k = sim_kv_bucket(kv, hash);
    kv->blocks[b].hash = hash;
    kv->blocks[b].cached = 1;
    kv->blocks[b].chain = kv->buckets[k];
    kv->buckets[k] = b;
    kv->ncached++;
    return 0;
}


uint32_t
sim_kv_num_free(const sim_kv_t *kv)
{
    return kv->nfree;
}


int
sim_kv_is_free(const sim_kv_t *kv, int32_t b)
{
    return kv->blocks[b].in_free;
}


uint32_t
sim_kv_num_cached(const sim_kv_t *kv)
{
    return kv->ncached;
}


uint32_t
sim_kv_num_blocks(const sim_kv_t *kv)
{
    return kv->n;
}


int
sim_kv_reset(sim_kv_t *kv)
{
    uint32_t  i;

    if (kv->nfree != kv->n) {
        return -1;
    }

    for (i = 0; i < kv->n; i++) {
        if (kv->blocks[i].cached) {
            sim_kv_uncache(kv, (int32_t) i);
        }
    }

    return 0;
}


uint64_t
sim_kv_ops(const sim_kv_t *kv)
{
    return kv->ops;
}
