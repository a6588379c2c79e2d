/*
 * Filter, scorer and picker plugins, and the run of one profile over the
 * candidates, shared by llmd_schedule() (llmd_scheduler.c) and
 * llmd_decide() (llmd_decide.c). Formulas: docs/scheduling.md.
 */
#ifndef LLMD_PLUGINS_H
#define LLMD_PLUGINS_H

#include "core/llmd_decide.h"

/* The candidates a plugin of a profile sees. */
typedef struct {
    const llmd_decide_input_t    *in;    /* request facts; info[] and
                                            plugin_in[] by input index */
    const llmd_endpoint_state_t  *eps;   /* n states, stale rule applied */
    const uint16_t               *cand;  /* input index of each */
    size_t                        n;
    uint8_t                      *nohit_cold; /* by plugin index, or NULL */
} llmd_cycle_t;

/* The candidate's info, or NULL when the input has none. */
#define llmd_cycle_info(cy, i)                                               \
    ((cy)->in->info ? &(cy)->in->info[(cy)->cand[i]] : NULL)

/* Sets keep[0..n) for the candidates the filter keeps; returns how many. */
size_t llmd_filter_run(const llmd_plugin_t *filter, const llmd_cycle_t *cy,
    uint8_t *keep);

/* Scores every candidate into out[0..n), unclamped. */
void llmd_scorer_run(const llmd_plugin_t *scorer, const llmd_cycle_t *cy,
    double *out);

/*
 * Orders all n candidates best first into order[] from their total scores
 * (n <= LLMD_MAX_ENDPOINTS).
 */
void llmd_picker_run(const llmd_plugin_t *picker, const double *total,
    size_t n, uint64_t *rng, uint16_t *order);

/*
 * The stale-metrics rule of llmd_schedule() (llmd_scheduler.h) over n
 * states, from in[] into out[].
 */
void llmd_apply_staleness(const llmd_endpoint_state_t *in, size_t n,
    llmd_endpoint_state_t *out);

/*
 * One profile over all in->neps candidates (eps: their states, stale rule
 * applied): its filters when filters != 0, then scorers and the picker over
 * those left. out->order gets input indexes best first, out->total and
 * out->scores (when not NULL) input-indexed, 0 for those filtered out;
 * passed[] (may be NULL) which passed. Returns how many passed.
 */
size_t llmd_profile_run(const llmd_profile_t *profile,
    const llmd_decide_input_t *in, const llmd_endpoint_state_t *eps,
    int filters, uint8_t *nohit_cold, llmd_sched_result_t *out,
    uint8_t *passed);

#endif /* LLMD_PLUGINS_H */
