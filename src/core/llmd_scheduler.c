/*
 * One scheduling cycle of a profile: stale-metrics rule, filters, every
 * scorer, clamp, weighted sum, picker (docs/scheduling.md, "The cycle").
 */
#include <string.h>

#include "core/llmd_plugins.h"


int
llmd_schedule(const llmd_profile_t *profile, const llmd_sched_input_t *in,
    llmd_sched_result_t *out)
{
    llmd_decide_input_t     din;
    llmd_endpoint_state_t   eps[LLMD_MAX_ENDPOINTS];

    if (in->neps == 0 || in->neps > LLMD_MAX_ENDPOINTS
        || profile->picker == NULL)
    {
        out->norder = 0;
        return -1;
    }

    memset(&din, 0, sizeof(llmd_decide_input_t));
    din.eps = in->eps;
    din.neps = in->neps;
    din.prefix_total = in->prefix_total;
    din.rng = in->rng;

    llmd_apply_staleness(in->eps, in->neps, eps);

    /* no labels here: the profile's filters are llmd_decide()'s */
    llmd_profile_run(profile, &din, eps, 0, NULL, out, NULL);

    return 0;
}


size_t
llmd_profile_run(const llmd_profile_t *profile, const llmd_decide_input_t *in,
    const llmd_endpoint_state_t *eps, int filters, uint8_t *nohit_cold,
    llmd_sched_result_t *out, uint8_t *passed)
{
    size_t                  f, s, e, i, n, neps;
    double                  v, *scores;
    uint8_t                 keep[LLMD_MAX_ENDPOINTS];
    uint16_t                cand[LLMD_MAX_ENDPOINTS], order[LLMD_MAX_ENDPOINTS];
    llmd_cycle_t            cy;
    double                  raw[LLMD_MAX_ENDPOINTS];
    double                  total[LLMD_MAX_ENDPOINTS];
    llmd_endpoint_state_t   sub[LLMD_MAX_ENDPOINTS];

    neps = in->neps;
    n = neps;

    for (e = 0; e < neps; e++) {
        cand[e] = (uint16_t) e;
        sub[e] = eps[e];
        out->total[e] = 0;
    }

    cy.in = in;
    cy.eps = sub;
    cy.cand = cand;
    cy.nohit_cold = nohit_cold;

    /* each filter sees what the previous ones left; none left ends it */
    for (f = 0; filters && f < profile->nfilters && n > 0; f++) {
        cy.n = n;
        llmd_filter_run(profile->filters[f], &cy, keep);

        for (i = 0, e = 0; i < n; i++) {
            if (keep[i]) {
                cand[e] = cand[i];
                sub[e] = sub[i];
                e++;
            }
        }

        n = e;
    }

    cy.n = n;

    if (passed != NULL) {
        memset(passed, 0, neps);

        for (i = 0; i < n; i++) {
            passed[cand[i]] = 1;
        }
    }

    out->nscorers = profile->nscorers;

    if (out->scores != NULL) {
        memset(out->scores, 0, sizeof(double) * profile->nscorers * neps);
    }

    for (i = 0; i < n; i++) {
        total[i] = 0;
    }

    for (s = 0; s < profile->nscorers && n > 0; s++) {
        llmd_scorer_run(profile->scorers[s].plugin, &cy, raw);

        scores = out->scores ? &out->scores[s * neps] : NULL;

        for (i = 0; i < n; i++) {
            /* GIE >= v1.0 enforces the score range, NaN included */
            v = raw[i];
            v = v > 0 ? (v < 1 ? v : 1) : 0;
            total[i] += profile->scorers[s].weight * v;

            if (scores != NULL) {
                scores[cand[i]] = v;
            }
        }
    }

    if (n > 0) {
        llmd_picker_run(profile->picker, total, n, in->rng, order);
    }

    for (i = 0; i < n; i++) {
        out->order[i] = cand[order[i]];
        out->total[cand[i]] = total[i];
    }

    out->norder = n;

    return n;
}


/*
 * An endpoint without fresh metrics is assumed as busy as the worst fresh
 * one, so a silent pod does not attract traffic by reporting nothing; when
 * no endpoint is fresh, every endpoint looks idle and the remaining signals
 * (prefix affinity, in-flight counts, the picker's shuffle) decide.
 */
void
llmd_apply_staleness(const llmd_endpoint_state_t *in, size_t n,
    llmd_endpoint_state_t *out)
{
    size_t  e, fresh;
    double  worst_waiting, worst_kv, worst_running;

    fresh = 0;
    worst_waiting = worst_kv = worst_running = 0;

    for (e = 0; e < n; e++) {
        out[e] = in[e];

        if (!in[e].fresh) {
            continue;
        }

        fresh++;

        if (in[e].waiting > worst_waiting) {
            worst_waiting = in[e].waiting;
        }

        if (in[e].kv_usage > worst_kv) {
            worst_kv = in[e].kv_usage;
        }

        if (in[e].running > worst_running) {
            worst_running = in[e].running;
        }
    }

    for (e = 0; e < n; e++) {
        if (out[e].fresh) {
            continue;
        }

        out[e].waiting = fresh ? worst_waiting : 0;
        out[e].kv_usage = fresh ? worst_kv : 0;
        out[e].running = fresh ? worst_running : 0;
    }
}
