/*
 * Scorers: each maps what is known about a candidate to a score, nominally
 * in [0,1] (the scheduler clamps).  Formulas as in llm-d / GIE
 * (docs/scheduling.md, "Scorers").
 */
#include "core/llmd_plugins.h"


static void llmd_score_queue(const llmd_endpoint_state_t *eps, size_t n,
    double *out);
static void llmd_score_active(const llmd_endpoint_state_t *eps, size_t n,
    double *out);


void
llmd_scorer_run(const llmd_plugin_t *scorer, const llmd_sched_input_t *in,
    const llmd_endpoint_state_t *eps, double *out)
{
    size_t  i, n;
    double  q, t;

    n = in->neps;

    switch (scorer->type) {

    case LLMD_PLUGIN_QUEUE_SCORER:
        llmd_score_queue(eps, n, out);
        break;

    case LLMD_PLUGIN_KV_CACHE_SCORER:
        for (i = 0; i < n; i++) {
            out[i] = 1.0 - eps[i].kv_usage;
        }

        break;

    case LLMD_PLUGIN_PREFIX_CACHE_SCORER:
        /* longest matched prefix in blocks / blocks of the prompt */
        for (i = 0; i < n; i++) {
            out[i] = in->prefix_total
                     ? (double) eps[i].prefix_match / in->prefix_total : 0;
        }

        break;

    case LLMD_PLUGIN_LOAD_AWARE_SCORER:
        t = scorer->u.load_aware.threshold > 0
            ? scorer->u.load_aware.threshold : 128;

        /* 0.5 when idle, falling linearly to 0 at the threshold */
        for (i = 0; i < n; i++) {
            q = eps[i].waiting;
            out[i] = q <= 0 ? 0.5 : 0.5 * (1.0 - (q < t ? q : t) / t);
        }

        break;

    case LLMD_PLUGIN_ACTIVE_REQUEST_SCORER:
        llmd_score_active(eps, n, out);
        break;

    default:
        for (i = 0; i < n; i++) {
            out[i] = 0;
        }
    }
}


/* Min-max normalised waiting queue: the shortest queue scores 1. */
static void
llmd_score_queue(const llmd_endpoint_state_t *eps, size_t n, double *out)
{
    size_t  i;
    double  min, max;

    min = max = n ? eps[0].waiting : 0;

    for (i = 1; i < n; i++) {
        if (eps[i].waiting < min) {
            min = eps[i].waiting;
        }

        if (eps[i].waiting > max) {
            max = eps[i].waiting;
        }
    }

    for (i = 0; i < n; i++) {
        out[i] = max == min ? 1.0 : (max - eps[i].waiting) / (max - min);
    }
}


/* In-flight requests relative to the busiest candidate; idle scores 1. */
static void
llmd_score_active(const llmd_endpoint_state_t *eps, size_t n, double *out)
{
    size_t    i;
    uint32_t  max;

    max = 0;

    for (i = 0; i < n; i++) {
        if (eps[i].active > max) {
            max = eps[i].active;
        }
    }

    for (i = 0; i < n; i++) {
        out[i] = eps[i].active == 0
                 ? 1.0 : (double) (max - eps[i].active) / max;
    }
}
