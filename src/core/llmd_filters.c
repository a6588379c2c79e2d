/*
 * Filters: each keeps the candidates a profile may pick from
 * (docs/scheduling.md, "Filters"). Label filters match the endpoint's
 * labels against a Kubernetes-style selector; utilization-filter caps load
 * metrics; session-affinity-filter pins a session's endpoint.
 */
#include <string.h>

#include "core/llmd_labels.h"
#include "core/llmd_plugins.h"
#include "core/llmd_rand.h"


static int llmd_selector_matches(const llmd_selector_t *sel,
    const char *labels);
static int llmd_value_in(const llmd_label_req_t *r, const char *v,
    size_t len);
static size_t llmd_utilization_filter(const llmd_plugin_t *f,
    const llmd_cycle_t *cy, uint8_t *keep);
static size_t llmd_session_filter(const llmd_plugin_t *f,
    const llmd_cycle_t *cy, uint8_t *keep);
static size_t llmd_affinity_filter(const llmd_plugin_t *f,
    const llmd_cycle_t *cy, uint8_t *keep);
static size_t llmd_detector_filter(const llmd_plugin_t *f,
    const llmd_cycle_t *cy, uint8_t *keep);


size_t
llmd_filter_run(const llmd_plugin_t *filter, const llmd_cycle_t *cy,
    uint8_t *keep)
{
    size_t                       i, kept;
    const llmd_endpoint_info_t  *info;

    switch (filter->type) {

    case LLMD_PLUGIN_UTILIZATION_FILTER:
        return llmd_utilization_filter(filter, cy, keep);

    case LLMD_PLUGIN_SESSION_AFFINITY_FILTER:
        return llmd_session_filter(filter, cy, keep);

    case LLMD_PLUGIN_PREFIX_AFFINITY_FILTER:
        return llmd_affinity_filter(filter, cy, keep);

    case LLMD_PLUGIN_SATURATION_DETECTOR:
        return llmd_detector_filter(filter, cy, keep);

    case LLMD_PLUGIN_LABEL_FILTER:
        kept = 0;

        for (i = 0; i < cy->n; i++) {
            info = llmd_cycle_info(cy, i);
            keep[i] = (uint8_t) llmd_selector_matches(&filter->u.selector,
                                                      info && info->labels
                                                      ? info->labels : "");
            kept += keep[i];
        }

        return kept;

    default:
        memset(keep, 1, cy->n);
        return cy->n;
    }
}


/*
 * A saturation detector listed in a profile (or declared in a file without
 * profiles): llm-d's detectors are scheduling filters too. Keeps the
 * endpoints under threshold * (1 + headroom) (llmd_sat_endpoint_ok);
 * utilization-detector drops stale endpoints, and when none is left keeps
 * them all (fail-open); concurrency-detector has no such fallback.
 */
static size_t
llmd_detector_filter(const llmd_plugin_t *f, const llmd_cycle_t *cy,
    uint8_t *keep)
{
    size_t               i, kept;
    llmd_sat_endpoint_t  ep;

    kept = 0;

    for (i = 0; i < cy->n; i++) {
        ep.have_metrics = cy->eps[i].fresh;
        ep.age_ms = 0;
        ep.waiting = cy->eps[i].waiting;
        ep.kv_usage = cy->eps[i].kv_usage;
        ep.inflight = cy->eps[i].active;

        keep[i] = (uint8_t) llmd_sat_endpoint_ok(&f->u.saturation, &ep);
        kept += keep[i];
    }

    if (kept == 0 && f->u.saturation.type == LLMD_SAT_UTILIZATION) {
        memset(keep, 1, cy->n);
        return cy->n;
    }

    return kept;
}


/* Every requirement holds (Kubernetes labels.Selector.Matches). */
static int
llmd_selector_matches(const llmd_selector_t *sel, const char *labels)
{
    size_t                   i, len;
    const char              *v;
    const llmd_label_req_t  *r;

    for (i = 0; i < sel->nreqs; i++) {
        r = &sel->reqs[i];
        v = llmd_labels_get(labels, r->key, &len);

        switch (r->op) {

        case LLMD_LABEL_IN:
            if (v == NULL || !llmd_value_in(r, v, len)) {
                return 0;
            }

            break;

        case LLMD_LABEL_NOT_IN:
            if (v != NULL && llmd_value_in(r, v, len)) {
                return 0;
            }

            break;

        case LLMD_LABEL_EXISTS:
            if (v == NULL) {
                return 0;
            }

            break;

        case LLMD_LABEL_NOT_EXISTS:
            if (v != NULL) {
                return 0;
            }

            break;

        case LLMD_LABEL_ONE_OF:
            /* by-label: a missing label reads as "", as a Go map does */
            if (!((v == NULL && r->absent_ok)
                  || llmd_value_in(r, v ? v : "", v ? len : 0)))
            {
                return 0;
            }

            break;
        }
    }

    return 1;
}


static int
llmd_value_in(const llmd_label_req_t *r, const char *v, size_t len)
{
    size_t  i;

    for (i = 0; i < r->nvalues; i++) {
        if (strlen(r->values[i]) == len && memcmp(r->values[i], v, len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* Keeps the candidates within every cap; none left and fallbackOnEmpty:
   all of them. */
static size_t
llmd_utilization_filter(const llmd_plugin_t *f, const llmd_cycle_t *cy,
    uint8_t *keep)
{
    size_t                         i, c, kept;
    double                         v;
    const llmd_util_cond_t        *cond;
    const llmd_endpoint_state_t   *ep;

    kept = 0;

    for (i = 0; i < cy->n; i++) {
        ep = &cy->eps[i];
        keep[i] = 1;

        for (c = 0; c < f->u.utilization.nconds; c++) {
            cond = &f->u.utilization.conds[c];

            switch (cond->metric) {
            case LLMD_METRIC_ACTIVE_REQUESTS:
                v = ep->active;
                break;
            case LLMD_METRIC_RUNNING_REQUESTS:
                v = ep->running;
                break;
            case LLMD_METRIC_WAITING_QUEUE:
                v = ep->waiting;
                break;
            default:
                v = ep->kv_usage;
            }

            if (v > cond->max_value) {
                keep[i] = 0;
                break;
            }
        }

        kept += keep[i];
    }

    if (kept == 0 && f->u.utilization.fallback_on_empty) {
        memset(keep, 1, cy->n);
        return cy->n;
    }

    return kept;
}


/* The session's endpoint alone when it is a candidate, else all. */
static size_t
llmd_session_filter(const llmd_plugin_t *f, const llmd_cycle_t *cy,
    uint8_t *keep)
{
    size_t   i, kept;
    int32_t  target;

    target = cy->in->plugin_in
             ? cy->in->plugin_in[f->index].session_endpoint : -1;

    kept = 0;

    for (i = 0; i < cy->n; i++) {
        keep[i] = (target >= 0 && cy->cand[i] == (uint16_t) target);
        kept += keep[i];
    }

    if (kept == 0) {
        memset(keep, 1, cy->n);
        return cy->n;
    }

    return kept;
}


/*
 * prefix-cache-affinity-filter, "sticky until saturated": only the
 * candidates whose prefix score (matched / looked-up blocks) reaches
 * affinityThreshold, unless none does, or the exploration draw skips the
 * gate, or the best sticky candidate's estimated TTFT (in-flight uncached
 * prompt tokens / peakPrefillThroughput) exceeds the best other's by more
 * than maxTTFTPenaltyMs (0: always stick): then all.
 */
static size_t
llmd_affinity_filter(const llmd_plugin_t *f, const llmd_cycle_t *cy,
    uint8_t *keep)
{
    size_t   i, n, sticky;
    double   score, ttft, best_sticky, best_other, peak;
    uint8_t  is_sticky[LLMD_MAX_ENDPOINTS];

    n = cy->n;
    memset(keep, 1, n);

    if (n <= 1 || f->u.affinity.affinity_threshold <= 0) {
        return n;
    }

    if (f->u.affinity.exploration > 0 && cy->in->rng != NULL
        && llmd_rand_uniform(cy->in->rng) < f->u.affinity.exploration)
    {
        return n;
    }

    sticky = 0;
    best_sticky = best_other = -1;
    peak = f->u.affinity.peak_prefill_throughput;

    for (i = 0; i < n; i++) {
        score = cy->in->prefix_total
                ? cy->eps[i].prefix_match / cy->in->prefix_total : 0;
        is_sticky[i] = (uint8_t) (score >= f->u.affinity.affinity_threshold);

        ttft = peak > 0 ? cy->eps[i].inflight_tokens / peak * 1000 : 0;

        if (is_sticky[i]) {
            sticky++;
            if (best_sticky < 0 || ttft < best_sticky) {
                best_sticky = ttft;
            }

        } else if (best_other < 0 || ttft < best_other) {
            best_other = ttft;
        }
    }

    if (sticky == 0) {
        return n;
    }

    if (f->u.affinity.max_ttft_penalty_ms > 0 && sticky < n
        && best_sticky - best_other > f->u.affinity.max_ttft_penalty_ms)
    {
        return n;
    }

    memcpy(keep, is_sticky, n);

    return sticky;
}
