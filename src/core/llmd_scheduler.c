/*
 * One scheduling cycle of a profile: stale-metrics rule, every scorer,
 * clamp, weighted sum, picker (docs/scheduling.md, "The cycle").
 */
#include "core/llmd_plugins.h"


static void llmd_apply_staleness(const llmd_sched_input_t *in,
    llmd_endpoint_state_t *eps);


int
llmd_schedule(const llmd_profile_t *profile, const llmd_sched_input_t *in,
    llmd_sched_result_t *out)
{
    size_t                  s, e, n;
    double                  v, *scores;
    llmd_endpoint_state_t   eps[LLMD_MAX_ENDPOINTS];

    n = in->neps;
    if (n == 0 || n > LLMD_MAX_ENDPOINTS || profile->picker == NULL) {
        out->norder = 0;
        return -1;
    }

    for (e = 0; e < n; e++) {
        eps[e] = in->eps[e];
        out->total[e] = 0;
    }

    llmd_apply_staleness(in, eps);

    out->nscorers = profile->nscorers;

    for (s = 0; s < profile->nscorers; s++) {
        scores = &out->scores[s * n];

        llmd_scorer_run(profile->scorers[s].plugin, in, eps, scores);

        for (e = 0; e < n; e++) {
            /* GIE >= v1.0 enforces the score range, NaN included */
            v = scores[e];
            v = v > 0 ? (v < 1 ? v : 1) : 0;
            scores[e] = v;
            out->total[e] += profile->scorers[s].weight * v;
        }
    }

    llmd_picker_run(profile->picker, out->total, n, in->rng, out->order);
    out->norder = n;

    return 0;
}


/*
 * An endpoint without fresh metrics is assumed as busy as the worst fresh
 * one, so a silent pod does not attract traffic by reporting nothing; when
 * no endpoint is fresh, every endpoint looks idle and the remaining signals
 * (prefix affinity, in-flight counts, the picker's shuffle) decide.
 */
static void
llmd_apply_staleness(const llmd_sched_input_t *in, llmd_endpoint_state_t *eps)
{
    size_t  e, fresh;
    double  worst_waiting, worst_kv, worst_running;

    fresh = 0;
    worst_waiting = worst_kv = worst_running = 0;

    for (e = 0; e < in->neps; e++) {
        if (!eps[e].fresh) {
            continue;
        }

        fresh++;

        if (eps[e].waiting > worst_waiting) {
            worst_waiting = eps[e].waiting;
        }

        if (eps[e].kv_usage > worst_kv) {
            worst_kv = eps[e].kv_usage;
        }

        if (eps[e].running > worst_running) {
            worst_running = eps[e].running;
        }
    }

    for (e = 0; e < in->neps; e++) {
        if (eps[e].fresh) {
            continue;
        }

        eps[e].waiting = fresh ? worst_waiting : 0;
        eps[e].kv_usage = fresh ? worst_kv : 0;
        eps[e].running = fresh ? worst_running : 0;
    }
}
