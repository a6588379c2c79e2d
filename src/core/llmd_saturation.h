/*
 * Saturation detectors (llm-d's utilization-detector and
 * concurrency-detector, docs/flow-control.md): how full the candidate pool
 * is, as one number where 1.0 means "at the ideal capacity", and which
 * endpoints are over their per-endpoint safety limit. Plain C over the
 * scheduler's endpoint states; the loader (llmd_config_flow.c) fills the
 * parameters from the EndpointPickerConfig.
 */

#ifndef LLMD_SATURATION_H
#define LLMD_SATURATION_H

#include "core/llmd_common.h"

typedef enum {
    LLMD_SAT_UTILIZATION = 0,          /* utilization-detector (default) */
    LLMD_SAT_CONCURRENCY               /* concurrency-detector */
} llmd_sat_type_t;

typedef enum {
    LLMD_SAT_MODE_REQUESTS = 0,        /* concurrencyMode: requests */
    LLMD_SAT_MODE_TOKENS,              /* accepted; counted as requests */
    LLMD_SAT_MODE_HYBRID               /* accepted; counted as requests */
} llmd_sat_mode_t;

/* llm-d's defaults */
#define LLMD_SAT_DEFAULT_QUEUE_DEPTH        5
#define LLMD_SAT_DEFAULT_KV_UTIL            0.8
#define LLMD_SAT_DEFAULT_STALENESS_MS       200
#define LLMD_SAT_DEFAULT_MAX_CONCURRENCY    100
#define LLMD_SAT_DEFAULT_MAX_TOKENS         1000000

typedef struct {
    llmd_sat_type_t  type;
    /* utilization-detector */
    uint32_t         queue_depth_threshold;   /* > 0; 5 */
    double           kv_cache_util_threshold; /* (0, 1]; 0.8 */
    uint64_t         staleness_ms;            /* > 0; 200 */
    /* concurrency-detector */
    llmd_sat_mode_t  mode;                    /* requests */
    uint64_t         max_concurrency;         /* > 0; 100 */
    uint64_t         max_token_concurrency;   /* > 0; 1000000 */
    /* both */
    double           headroom;                /* >= 0; 0 */
} llmd_sat_params_t;

/* What the detector knows of one candidate. */
typedef struct {
    int       have_metrics;    /* a scrape with a waiting queue exists */
    uint64_t  age_ms;          /* since that scrape */
    double    waiting;         /* vllm:num_requests_waiting */
    double    kv_usage;        /* fraction 0..1 */
    uint64_t  inflight;        /* requests in flight from this balancer */
} llmd_sat_endpoint_t;

/* The defaults of the given detector type. */
void llmd_sat_defaults(llmd_sat_params_t *p, llmd_sat_type_t type);

/*
 * Checks the parameters as llm-d does; 0, or -1 with a message in err.
 */
int llmd_sat_validate(const llmd_sat_params_t *p, char *err, size_t errlen);

/*
 * Pool saturation over the candidates: utilization: the mean of
 * max(waiting / queueDepthThreshold, kv / kvCacheUtilThreshold), an
 * endpoint with missing or stale metrics counting 1.0 (fail-closed);
 * concurrency: sum(inflight) / (n * maxConcurrency). No candidates: 1.0.
 * *stale (may be NULL) receives the number of stale endpoints.
 */
double llmd_sat_pool(const llmd_sat_params_t *p,
    const llmd_sat_endpoint_t *eps, size_t n, size_t *stale);

/*
 * Whether one endpoint is under its safety limit (threshold * (1 +
 * headroom)): the detector's scheduling filter. Stale endpoints are not.
 */
int llmd_sat_endpoint_ok(const llmd_sat_params_t *p,
    const llmd_sat_endpoint_t *ep);

#endif /* LLMD_SATURATION_H */
