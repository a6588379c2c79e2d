/*
 * An intrusive LRU list whose links are entry numbers, not pointers, so it
 * works in a region that may be mapped at another address (shared memory
 * after a reload). Entries are numbered from 1 (0 = none) and live in an
 * array at `base` with `stride` bytes per entry; each holds an
 * llmd_lru_link_t at offset `off`. Used by llmd_index_region (both indexes).
 */
#ifndef LLMD_LRU_H
#define LLMD_LRU_H

#include <stddef.h>
#include <stdint.h>

#define LLMD_LRU_NONE  0

typedef struct {
    uint32_t  newest;
    uint32_t  oldest;
    uint32_t  count;
} llmd_lru_t;

typedef struct {
    uint32_t  newer;
    uint32_t  older;
} llmd_lru_link_t;


static inline llmd_lru_link_t *
llmd_lru_link(void *base, size_t stride, size_t off, uint32_t e)
{
    return (llmd_lru_link_t *) ((char *) base + (size_t) e * stride + off);
}


static inline void
llmd_lru_unlink(llmd_lru_t *lru, void *base, size_t stride, size_t off,
    uint32_t e)
{
    llmd_lru_link_t  *l;

    l = llmd_lru_link(base, stride, off, e);

    if (l->newer != LLMD_LRU_NONE) {
        llmd_lru_link(base, stride, off, l->newer)->older = l->older;
    } else {
        lru->newest = l->older;
    }

    if (l->older != LLMD_LRU_NONE) {
        llmd_lru_link(base, stride, off, l->older)->newer = l->newer;
    } else {
        lru->oldest = l->newer;
    }

    l->newer = l->older = LLMD_LRU_NONE;
    lru->count--;
}


/* Makes e the most recently used entry of lru. */
static inline void
llmd_lru_push(llmd_lru_t *lru, void *base, size_t stride, size_t off,
    uint32_t e)
{
    llmd_lru_link_t  *l;

    l = llmd_lru_link(base, stride, off, e);
    l->newer = LLMD_LRU_NONE;
    l->older = lru->newest;

    if (lru->newest != LLMD_LRU_NONE) {
        llmd_lru_link(base, stride, off, lru->newest)->newer = e;
    } else {
        lru->oldest = e;
    }

    lru->newest = e;
    lru->count++;
}


/*
 * Makes the run first..last (first the newest of it, each entry's older
 * link leading to the next, last the oldest) the most recently used
 * entries of lru, in the same order: what pushing last, ..., first one
 * by one does, with four links changed instead of four per entry.
 */
static inline void
llmd_lru_raise_run(llmd_lru_t *lru, void *base, size_t stride, size_t off,
    uint32_t first, uint32_t last)
{
    uint32_t          newer, older;
    llmd_lru_link_t  *f, *l;

    f = llmd_lru_link(base, stride, off, first);

    if (f->newer == LLMD_LRU_NONE) {
        return;                       /* already the newest */
    }

    l = llmd_lru_link(base, stride, off, last);
    newer = f->newer;
    older = l->older;

    /* out of its place */
    llmd_lru_link(base, stride, off, newer)->older = older;

    if (older != LLMD_LRU_NONE) {
        llmd_lru_link(base, stride, off, older)->newer = newer;
    } else {
        lru->oldest = newer;
    }

    /* in front of the newest */
    l->older = lru->newest;
    llmd_lru_link(base, stride, off, lru->newest)->newer = last;
    f->newer = LLMD_LRU_NONE;
    lru->newest = first;
}

#endif /* LLMD_LRU_H */
