/*
 * Saturation detectors: see llmd_saturation.h and docs/flow-control.md.
 */

#include <stdio.h>

#include "core/llmd_saturation.h"


void
llmd_sat_defaults(llmd_sat_params_t *p, llmd_sat_type_t type)
{
    p->type = type;
    p->queue_depth_threshold = LLMD_SAT_DEFAULT_QUEUE_DEPTH;
    p->kv_cache_util_threshold = LLMD_SAT_DEFAULT_KV_UTIL;
    p->staleness_ms = LLMD_SAT_DEFAULT_STALENESS_MS;
    p->mode = LLMD_SAT_MODE_REQUESTS;
    p->max_concurrency = LLMD_SAT_DEFAULT_MAX_CONCURRENCY;
    p->max_token_concurrency = LLMD_SAT_DEFAULT_MAX_TOKENS;
    p->headroom = 0.0;
}


int
llmd_sat_validate(const llmd_sat_params_t *p, char *err, size_t errlen)
{
    if (p->type == LLMD_SAT_UTILIZATION) {
        if (p->queue_depth_threshold == 0) {
            snprintf(err, errlen, "queueDepthThreshold must be strictly "
                     "positive");
            return -1;
        }

        if (!(p->kv_cache_util_threshold > 0.0
              && p->kv_cache_util_threshold <= 1.0))
        {
            snprintf(err, errlen, "kvCacheUtilThreshold must be in "
                     "(0.0, 1.0], got %f", p->kv_cache_util_threshold);
            return -1;
        }

        if (p->staleness_ms == 0) {
            snprintf(err, errlen, "metricsStalenessThreshold must be "
                     "strictly positive");
            return -1;
        }

    } else {
        if (p->max_concurrency == 0) {
            snprintf(err, errlen, "maxConcurrency must be strictly "
                     "positive");
            return -1;
        }

        if (p->max_token_concurrency == 0) {
            snprintf(err, errlen, "maxTokenConcurrency must be strictly "
                     "positive");
            return -1;
        }
    }

    if (!(p->headroom >= 0.0)) {
        snprintf(err, errlen, "headroom must be a non-negative value, "
                 "got %f", p->headroom);
        return -1;
    }

    return 0;
}


static int
llmd_sat_stale(const llmd_sat_params_t *p, const llmd_sat_endpoint_t *ep)
{
    return !ep->have_metrics || ep->age_ms > p->staleness_ms;
}


double
llmd_sat_pool(const llmd_sat_params_t *p, const llmd_sat_endpoint_t *eps,
    size_t n, size_t *stale)
{
    size_t  i, nstale;
    double  total, q, kv;

    if (stale != NULL) {
        *stale = 0;
    }

    if (n == 0) {
        return 1.0;
    }

    total = 0.0;
    nstale = 0;

    if (p->type == LLMD_SAT_CONCURRENCY) {
        for (i = 0; i < n; i++) {
            total += (double) eps[i].inflight;
        }

        return total / ((double) n * (double) p->max_concurrency);
    }

    for (i = 0; i < n; i++) {
        if (llmd_sat_stale(p, &eps[i])) {
            total += 1.0;
            nstale++;
            continue;
        }

        q = eps[i].waiting / (double) p->queue_depth_threshold;
        kv = eps[i].kv_usage / p->kv_cache_util_threshold;
        total += q > kv ? q : kv;
    }

    if (stale != NULL) {
        *stale = nstale;
    }

    return total / (double) n;
}


int
llmd_sat_endpoint_ok(const llmd_sat_params_t *p,
    const llmd_sat_endpoint_t *ep)
{
    double  qlimit, kvlimit;

    if (p->type == LLMD_SAT_CONCURRENCY) {
        /* llm-d: int64(maxConcurrency * (1 + headroom)) */
        return ep->inflight
               < (uint64_t) ((double) p->max_concurrency
                             * (1.0 + p->headroom));
    }

    if (llmd_sat_stale(p, ep)) {
        return 0;
    }

    qlimit = (double) p->queue_depth_threshold * (1.0 + p->headroom);
    kvlimit = p->kv_cache_util_threshold * (1.0 + p->headroom);

    return ep->waiting < qlimit && ep->kv_usage < kvlimit;
}
