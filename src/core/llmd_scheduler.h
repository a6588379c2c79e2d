/*
 * One scheduling cycle: every scorer of a profile scores every candidate,
 * scores are clamped to [0,1] and summed with their weights (no division by
 * the weight sum), and the picker orders the candidates best first
 * (docs/scheduling.md). llmd_decide() (llmd_decide.h) runs whole
 * decisions: filters, several profiles, profile handlers.
 */
#ifndef LLMD_SCHEDULER_H
#define LLMD_SCHEDULER_H

#include "core/llmd_config.h"

/* What the scheduler knows about one candidate at decision time. */
typedef struct {
    double    waiting;        /* vllm:num_requests_waiting */
    double    running;        /* vllm:num_requests_running */
    double    kv_usage;       /* KV-cache usage, fraction 0..1 */
    int       fresh;          /* metrics above are present and not stale */
    uint32_t  active;         /* in-flight requests sent by this balancer */
    double    prefix_match;   /* prompt blocks found for this endpoint
                                 (precise: tier-weighted) */
    double    inflight_tokens; /* prompt tokens in flight to it, not
                                 cached there (llmd_inflight.h) */
    double    request_tokens; /* this request's prompt tokens it would
                                 compute (not cached there) */
} llmd_endpoint_state_t;

typedef struct {
    const llmd_endpoint_state_t  *eps;
    size_t                        neps;          /* <= LLMD_MAX_ENDPOINTS */
    uint32_t                      prefix_total;  /* blocks of the prompt; 0 =
                                                    no prompt to match */
    uint64_t                     *rng;           /* xorshift state, != 0 */
} llmd_sched_input_t;

typedef struct {
    /* candidates best first; a retry takes the next one */
    uint16_t  order[LLMD_MAX_ENDPOINTS];
    size_t    norder;
    double    total[LLMD_MAX_ENDPOINTS];
    /* raw (unweighted, clamped) score of scorer s for endpoint e:
       scores[s * neps + e]; s indexes profile->scorers */
    double   *scores;          /* caller-provided, nscorers * neps doubles */
    size_t    nscorers;
} llmd_sched_result_t;

/*
 * The profile's scorers and picker over every candidate; its filters do
 * not run (the input has no labels: llmd_decide() runs them).
 *
 * Stale or missing metrics: an endpoint with fresh == 0 is scored as if it
 * reported the worst waiting queue and KV usage among fresh endpoints; when
 * no endpoint is fresh, metric scorers see every endpoint as idle (all
 * equal), so prefix affinity and in-flight counts decide.
 *
 * Returns 0, or -1 when the profile cannot run (no candidates).
 */
int llmd_schedule(const llmd_profile_t *profile,
    const llmd_sched_input_t *in, llmd_sched_result_t *out);

#endif /* LLMD_SCHEDULER_H */
