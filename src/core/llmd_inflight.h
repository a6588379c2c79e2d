/*
 * In-flight load of an endpoint between two scrapes of its metrics
 * (docs/scheduling.md, "In-flight load"). A pod's /metrics is read every
 * llmd_metrics_interval; every decision in between would see the same
 * queue and KV usage, so a burst lands on the pod that looked best at the
 * last scrape. The balancer counts, per endpoint, the requests (and their
 * uncached prompt tokens) it sent and that finished since the scrape; the
 * estimate below turns the scraped values and these counts into the
 * present, which the metric scorers and filters then see.
 *
 * llm-d's inflight-load-producer keeps the same counts (requests, and
 * prompt tokens not cached on the endpoint) for token-load-scorer,
 * active-request-scorer and prefix-cache-affinity-filter; the adjustment
 * of the scraped queue, running and KV values is this module's.
 */
#ifndef LLMD_INFLIGHT_H
#define LLMD_INFLIGHT_H

#include "core/llmd_scheduler.h"

/* What happened at an endpoint since its metrics were scraped. */
typedef struct {
    uint64_t  sent;          /* requests dispatched to it */
    uint64_t  sent_tokens;   /* their prompt tokens not cached on it */
    uint64_t  done;          /* requests that finished (also those sent
                                before the scrape) */
    uint64_t  done_tokens;   /* their prompt tokens not cached on it */
} llmd_inflight_t;

/*
 * Adjusts a scraped state by what happened since the scrape, with
 * net = sent - done:
 *
 *   waiting  = max(0, waiting + net)         sent requests queue first,
 *                                            finished ones let the queue
 *                                            move up
 *   running  = max(0, waiting + running + net - new waiting)
 *   kv_usage = clamp(kv_usage + (sent_tokens - done_tokens)
 *                    / (num_gpu_blocks * block_size), 0, 1)
 *
 * The KV usage is left alone when the pod's capacity is unknown
 * (num_gpu_blocks or block_size 0). Only fresh states are adjusted: a
 * stale one is replaced by the staleness rule anyway.
 */
void llmd_inflight_adjust(llmd_endpoint_state_t *st,
    const llmd_inflight_t *d, uint32_t block_size, uint32_t num_gpu_blocks);

/*
 * The prompt tokens a request makes an endpoint compute (llm-d's
 * uncachedInputTokens): the blocks it does not hold times the tokens per
 * block, plus the tail of the prompt beyond the blocks looked up.
 * prompt_tokens: the whole prompt; matched, total: blocks held by the
 * endpoint and looked up (total 0: nothing looked up, all uncached);
 * block_tokens: tokens per block (> 0).
 */
uint64_t llmd_inflight_uncached(uint64_t prompt_tokens, double matched,
    uint32_t total, double block_tokens);

/*
 * inflight-load-producer with addEstimatedOutputTokens: the output tokens
 * a request is expected to add, min(round(input * ratio), client_max,
 * max_estimated); client_max and max_estimated < 0: no cap.
 */
uint64_t llmd_inflight_output(uint64_t input_tokens, double ratio,
    int64_t client_max, int64_t max_estimated);

#endif /* LLMD_INFLIGHT_H */
