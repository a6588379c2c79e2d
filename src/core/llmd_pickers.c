/*
 * Pickers: order every candidate best first, so that a retry after an
 * upstream failure takes the next one (docs/scheduling.md, "Pickers").
 * The first maxNumOfEndpoints of the order are what llm-d
 * would return.
 */
#include <math.h>
#include <stdlib.h>

#include "core/llmd_plugins.h"
#include "core/llmd_rand.h"


typedef struct {
    double    key;
    uint16_t  pos;        /* position after the shuffle: the tie-break */
    uint16_t  ep;
} llmd_rank_t;


static void llmd_shuffle(uint16_t *order, size_t n, uint64_t *rng);
static int llmd_rank_cmp(const void *a, const void *b);


void
llmd_picker_run(const llmd_plugin_t *picker, const double *total, size_t n,
    uint64_t *rng, uint16_t *order)
{
    size_t       i;
    double       u;
    int          positive;
    llmd_rank_t  rank[LLMD_MAX_ENDPOINTS];

    for (i = 0; i < n; i++) {
        order[i] = (uint16_t) i;
    }

    /* every picker starts from a uniform shuffle: ties break at random */
    llmd_shuffle(order, n, rng);

    if (picker->type == LLMD_PLUGIN_RANDOM_PICKER) {
        return;
    }

    positive = 0;

    for (i = 0; i < n; i++) {
        rank[i].pos = (uint16_t) i;
        rank[i].ep = order[i];

        if (picker->type == LLMD_PLUGIN_WEIGHTED_RANDOM_PICKER) {
            /* A-Res: key = U^(1/score); a score <= 0 never wins */
            if (total[order[i]] > 0) {
                u = llmd_rand_uniform(rng);
                rank[i].key = pow(u > 0 ? u : 1e-10, 1.0 / total[order[i]]);
                positive = 1;

            } else {
                rank[i].key = 0;
            }

        } else {
            rank[i].key = total[order[i]];
        }
    }

    if (picker->type == LLMD_PLUGIN_WEIGHTED_RANDOM_PICKER && !positive) {
        return;                 /* no positive score: as random-picker */
    }

    qsort(rank, n, sizeof(llmd_rank_t), llmd_rank_cmp);

    for (i = 0; i < n; i++) {
        order[i] = rank[i].ep;
    }
}


/* Fisher-Yates. */
static void
llmd_shuffle(uint16_t *order, size_t n, uint64_t *rng)
{
    size_t    i, j;
    uint16_t  t;

    for (i = n; i > 1; i--) {
        j = llmd_rand_next(rng) % i;
        t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}


/* Uniform in [0,1) from the top 53 bits. */
/* Key descending, then shuffle position: a stable sort of the shuffle. */
static int
llmd_rank_cmp(const void *a, const void *b)
{
    const llmd_rank_t  *x = a, *y = b;

    if (x->key != y->key) {
        return x->key > y->key ? -1 : 1;
    }

    return (int) x->pos - (int) y->pos;
}
