/*
 * Scorer and picker plugins run by llmd_schedule() (llmd_scheduler.c).
 * Formulas: docs/scheduling.md.
 */
#ifndef LLMD_PLUGINS_H
#define LLMD_PLUGINS_H

#include "core/llmd_scheduler.h"

/*
 * Scores every candidate of in->eps into out[0..neps), unclamped.  eps are
 * the states after the stale-metrics rule of llmd_schedule().
 */
void llmd_scorer_run(const llmd_plugin_t *scorer,
    const llmd_sched_input_t *in, const llmd_endpoint_state_t *eps,
    double *out);

/*
 * Orders all n candidates best first into order[] from their total scores
 * (n <= LLMD_MAX_ENDPOINTS).
 */
void llmd_picker_run(const llmd_plugin_t *picker, const double *total,
    size_t n, uint64_t *rng, uint16_t *order);

#endif /* LLMD_PLUGINS_H */
