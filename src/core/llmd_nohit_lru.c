/*
 * The no-hit-lru-scorer's LRU of endpoints (llmd_nohit_lru.h), on the
 * intrusive list of llmd_lru.h.
 */
#include <stdlib.h>
#include <string.h>

#include "core/llmd_nohit_lru.h"


typedef struct {
    uint64_t         id;
    llmd_lru_link_t  link;
} llmd_nohit_entry_t;

typedef struct {
    uint64_t  id;
    uint32_t  i;
} llmd_id_pos_t;


#define LLMD_NOHIT_STRIDE  sizeof(llmd_nohit_entry_t)
#define LLMD_NOHIT_LINK    offsetof(llmd_nohit_entry_t, link)


static llmd_nohit_entry_t *llmd_nohit_entries(const llmd_nohit_lru_t *s);
static int llmd_id_cmp(const void *a, const void *b);


size_t
llmd_nohit_lru_size(uint32_t capacity)
{
    return sizeof(llmd_nohit_lru_t)
           + ((size_t) capacity + 1) * sizeof(llmd_nohit_entry_t);
}


void
llmd_nohit_lru_init(llmd_nohit_lru_t *s, uint32_t capacity)
{
    memset(s, 0, llmd_nohit_lru_size(capacity));
    s->capacity = capacity;
}


void
llmd_nohit_lru_record(llmd_nohit_lru_t *s, uint64_t id)
{
    uint32_t             e;
    llmd_nohit_entry_t  *ent;

    if (s->capacity == 0) {
        return;
    }

    s->records++;
    ent = llmd_nohit_entries(s);

    /* lruSize is small (1024): a scan is cheaper than an index to keep */
    for (e = 1; e <= s->used; e++) {
        if (ent[e].id == id) {
            llmd_lru_unlink(&s->lru, ent, LLMD_NOHIT_STRIDE, LLMD_NOHIT_LINK,
                            e);
            llmd_lru_push(&s->lru, ent, LLMD_NOHIT_STRIDE, LLMD_NOHIT_LINK, e);
            return;
        }
    }

    if (s->used < s->capacity) {
        e = ++s->used;

    } else {
        e = s->lru.oldest;
        llmd_lru_unlink(&s->lru, ent, LLMD_NOHIT_STRIDE, LLMD_NOHIT_LINK, e);
    }

    ent[e].id = id;
    llmd_lru_push(&s->lru, ent, LLMD_NOHIT_STRIDE, LLMD_NOHIT_LINK, e);
}


void
llmd_nohit_lru_positions(const llmd_nohit_lru_t *s, const uint64_t *ids,
    size_t n, int32_t *pos)
{
    size_t               i;
    int32_t              p;
    uint32_t             e;
    llmd_id_pos_t        key, *hit, sorted[LLMD_MAX_ENDPOINTS];
    llmd_nohit_entry_t  *ent;

    n = n < LLMD_MAX_ENDPOINTS ? n : LLMD_MAX_ENDPOINTS;

    for (i = 0; i < n; i++) {
        pos[i] = -1;
        sorted[i].id = ids[i];
        sorted[i].i = (uint32_t) i;
    }

    qsort(sorted, n, sizeof(llmd_id_pos_t), llmd_id_cmp);

    ent = llmd_nohit_entries(s);
    p = 0;

    /* oldest first; several candidates may share an id */
    for (e = s->lru.oldest; e != LLMD_LRU_NONE; e = ent[e].link.newer) {
        key.id = ent[e].id;

        hit = bsearch(&key, sorted, n, sizeof(llmd_id_pos_t), llmd_id_cmp);

        if (hit != NULL) {
            while (hit > sorted && hit[-1].id == key.id) {
                hit--;
            }

            for ( /* void */ ; hit < sorted + n && hit->id == key.id; hit++) {
                pos[hit->i] = p;
            }
        }

        p++;
    }
}


static llmd_nohit_entry_t *
llmd_nohit_entries(const llmd_nohit_lru_t *s)
{
    return (llmd_nohit_entry_t *) ((char *) s + sizeof(llmd_nohit_lru_t));
}


static int
llmd_id_cmp(const void *a, const void *b)
{
    const llmd_id_pos_t  *x = a, *y = b;

    return x->id < y->id ? -1 : x->id > y->id;
}
