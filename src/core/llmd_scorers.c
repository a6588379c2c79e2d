/*
 * Scorers: each maps what is known about a candidate to a score, nominally
 * in [0,1] (the scheduler clamps).  Formulas as in llm-d / GIE
 * (docs/scheduling.md, "Scorers").
 */
#include <string.h>

#include "core/llmd_plugins.h"


static void llmd_score_min_max(const double *v, size_t n, double *out);
static void llmd_score_active(const llmd_endpoint_state_t *eps, size_t n,
    double *out);
static void llmd_score_prefix(const llmd_plugin_t *scorer,
    const llmd_cycle_t *cy, double *out);
static void llmd_score_session(const llmd_plugin_t *scorer,
    const llmd_cycle_t *cy, double *out);
static double llmd_score_lora(const llmd_endpoint_info_t *info,
    const char *model);
static size_t llmd_adapters(const char *list, const char *model, int *has);
static const char *llmd_list_item(const char *p, const char **next,
    size_t *len);
static void llmd_score_no_hit_lru(const llmd_plugin_t *scorer,
    const llmd_cycle_t *cy, double *out);


void
llmd_scorer_run(const llmd_plugin_t *scorer, const llmd_cycle_t *cy,
    double *out)
{
    size_t                        i, n;
    double                        q, t, v[LLMD_MAX_ENDPOINTS];
    const llmd_endpoint_state_t  *eps;

    n = cy->n;
    eps = cy->eps;

    switch (scorer->type) {

    case LLMD_PLUGIN_QUEUE_SCORER:
        for (i = 0; i < n; i++) {
            v[i] = eps[i].waiting;
        }

        llmd_score_min_max(v, n, out);
        break;

    case LLMD_PLUGIN_RUNNING_REQUESTS_SCORER:
        for (i = 0; i < n; i++) {
            v[i] = eps[i].running;
        }

        llmd_score_min_max(v, n, out);
        break;

    case LLMD_PLUGIN_KV_CACHE_SCORER:
        for (i = 0; i < n; i++) {
            out[i] = 1.0 - eps[i].kv_usage;
        }

        break;

    case LLMD_PLUGIN_PREFIX_CACHE_SCORER:
        llmd_score_prefix(scorer, cy, out);
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

    case LLMD_PLUGIN_SESSION_AFFINITY_SCORER:
        llmd_score_session(scorer, cy, out);
        break;

    case LLMD_PLUGIN_LORA_AFFINITY_SCORER:
        for (i = 0; i < n; i++) {
            out[i] = llmd_score_lora(llmd_cycle_info(cy, i), cy->in->model);
        }

        break;

    case LLMD_PLUGIN_NO_HIT_LRU_SCORER:
        llmd_score_no_hit_lru(scorer, cy, out);
        break;

    case LLMD_PLUGIN_TOKEN_LOAD_SCORER:
        /* in-flight tokens and this request's, up to the threshold */
        t = scorer->u.token_load.threshold_tokens;

        for (i = 0; i < n; i++) {
            q = eps[i].inflight_tokens + eps[i].request_tokens;
            out[i] = q <= 0 ? 1.0 : 1.0 - (q < t ? q : t) / t;
        }

        break;

    default:
        for (i = 0; i < n; i++) {
            out[i] = 0;
        }
    }
}


/* Min-max normalised: the smallest value scores 1, all equal score 1. */
static void
llmd_score_min_max(const double *v, size_t n, double *out)
{
    size_t  i;
    double  min, max;

    min = max = n ? v[0] : 0;

    for (i = 1; i < n; i++) {
        if (v[i] < min) {
            min = v[i];
        }

        if (v[i] > max) {
            max = v[i];
        }
    }

    for (i = 0; i < n; i++) {
        out[i] = max == min ? 1.0 : (max - v[i]) / (max - min);
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


/*
 * Longest matched prefix in blocks / blocks of the prompt, mixed with the
 * matched length when matchLengthWeight is set: w * min(1, cached tokens /
 * matchLengthScaleTokens)^2 + (1 - w) * ratio.
 */
static void
llmd_score_prefix(const llmd_plugin_t *scorer, const llmd_cycle_t *cy,
    double *out)
{
    size_t                       i;
    double                       w, ratio, len;
    uint32_t                     total;
    const llmd_endpoint_info_t  *info;

    total = cy->in->prefix_total;
    w = scorer->u.prefix.match_length_weight;

    for (i = 0; i < cy->n; i++) {
        if (total == 0) {
            out[i] = 0;
            continue;
        }

        ratio = cy->eps[i].prefix_match / total;

        if (w == 0) {
            out[i] = ratio;
            continue;
        }

        info = llmd_cycle_info(cy, i);
        len = info ? (double) info->cached_tokens
                     / scorer->u.prefix.match_length_scale_tokens : 0;
        len = len < 1 ? len : 1;

        out[i] = w * len * len + (1 - w) * ratio;
    }
}


/* The endpoint the request's session header names scores 1, others 0. */
static void
llmd_score_session(const llmd_plugin_t *scorer, const llmd_cycle_t *cy,
    double *out)
{
    size_t   i;
    int32_t  target;

    target = cy->in->plugin_in
             ? cy->in->plugin_in[scorer->index].session_endpoint : -1;

    for (i = 0; i < cy->n; i++) {
        out[i] = (target >= 0 && cy->cand[i] == (uint16_t) target) ? 1 : 0;
    }
}


/*
 * The request's model as a LoRA adapter: running on the endpoint 1, room
 * to load one more 0.8, waiting to load 0.6, else 0.
 */
static double
llmd_score_lora(const llmd_endpoint_info_t *info, const char *model)
{
    int     active, waiting;
    size_t  loaded;

    if (info == NULL) {
        return 0;
    }

    if (model == NULL) {
        model = "";
    }

    loaded = llmd_adapters(info->lora_running, model, &active)
             + llmd_adapters(info->lora_waiting, model, &waiting);

    if (active) {
        return 1.0;
    }

    if (loaded < info->lora_max) {
        return 0.8;
    }

    return waiting ? 0.6 : 0;
}


/*
 * Distinct non-empty names of a comma-separated adapter list, spaces
 * trimmed; *has: model is one of them.
 */
static size_t
llmd_adapters(const char *list, const char *model, int *has)
{
    size_t       n, len, qlen;
    const char  *p, *next, *name, *q, *qnext, *qname;

    *has = 0;
    n = 0;

    if (list == NULL) {
        return 0;
    }

    for (p = list; *p; p = next) {
        name = llmd_list_item(p, &next, &len);
        if (len == 0) {
            continue;
        }

        if (strlen(model) == len && memcmp(name, model, len) == 0) {
            *has = 1;
        }

        /* a name met earlier in the list is the same adapter */
        for (q = list; q < p; q = qnext) {
            qname = llmd_list_item(q, &qnext, &qlen);
            if (qlen == len && memcmp(qname, name, len) == 0) {
                break;
            }
        }

        n += (q >= p);
    }

    return n;
}


/* The item of a comma-separated list at p, spaces trimmed. */
static const char *
llmd_list_item(const char *p, const char **next, size_t *len)
{
    const char  *end;

    end = strchr(p, ',');
    if (end == NULL) {
        end = p + strlen(p);
        *next = end;

    } else {
        *next = end + 1;
    }

    while (p < end && *p == ' ') {
        p++;
    }

    while (end > p && end[-1] == ' ') {
        end--;
    }

    *len = end - p;
    return p;
}


/*
 * Cold request (no candidate holds a prefix block): never used endpoints
 * first, 1 - i / (n - 1) in candidate order, then the used ones by their
 * position in the whole LRU, least recently used first; a warm request
 * scores 0.5 everywhere. The pick is recorded by llmd_decide_record().
 */
static void
llmd_score_no_hit_lru(const llmd_plugin_t *scorer, const llmd_cycle_t *cy,
    double *out)
{
    int                          cold;
    size_t                       i, n, never;
    double                       s;
    int32_t                      pos[LLMD_MAX_ENDPOINTS];
    uint64_t                     ids[LLMD_MAX_ENDPOINTS];
    llmd_nohit_lru_t            *lru;
    const llmd_endpoint_info_t  *info;

    n = cy->n;
    cold = 1;

    for (i = 0; i < n; i++) {
        if (cy->eps[i].prefix_match > 0) {
            cold = 0;
        }
    }

    if (cy->nohit_cold != NULL) {
        cy->nohit_cold[scorer->index] = (uint8_t) cold;
    }

    if (!cold) {
        for (i = 0; i < n; i++) {
            out[i] = 0.5;
        }

        return;
    }

    if (n == 1) {
        out[0] = 1.0;
        return;
    }

    lru = cy->in->plugin_in ? cy->in->plugin_in[scorer->index].nohit : NULL;

    for (i = 0; i < n; i++) {
        info = llmd_cycle_info(cy, i);
        ids[i] = info ? info->id : 0;
        pos[i] = -1;
    }

    /* without ids no endpoint is known to the LRU */
    if (lru != NULL && cy->in->info != NULL) {
        llmd_nohit_lru_positions(lru, ids, n, pos);
    }

    never = 0;

    for (i = 0; i < n; i++) {
        if (pos[i] < 0) {
            out[i] = 1.0 - (double) never / (n - 1);
            never++;
        }
    }

    for (i = 0; i < n; i++) {
        if (pos[i] >= 0) {
            s = 1.0 - (double) (never + pos[i]) / (n - 1);
            out[i] = s > 0 ? s : 0;
        }
    }
}
