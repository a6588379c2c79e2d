/*
 * The present load of an endpoint from its last scrape and what was sent
 * and finished since (llmd_inflight.h).
 */
#include <math.h>

#include "core/llmd_inflight.h"


void
llmd_inflight_adjust(llmd_endpoint_state_t *st, const llmd_inflight_t *d,
    uint32_t block_size, uint32_t num_gpu_blocks)
{
    double  net, total, waiting, tokens, kv;

    if (!st->fresh) {
        return;
    }

    net = (double) d->sent - (double) d->done;

    total = st->waiting + st->running + net;
    if (total < 0) {
        total = 0;
    }

    waiting = st->waiting + net;
    if (waiting < 0) {
        waiting = 0;
    }

    if (waiting > total) {
        waiting = total;
    }

    st->waiting = waiting;
    st->running = total - waiting;

    if (block_size == 0 || num_gpu_blocks == 0) {
        return;
    }

    tokens = (double) d->sent_tokens - (double) d->done_tokens;
    kv = st->kv_usage + tokens / ((double) num_gpu_blocks * block_size);

    st->kv_usage = kv < 0 ? 0 : (kv > 1 ? 1 : kv);
}


uint64_t
llmd_inflight_uncached(uint64_t prompt_tokens, double matched,
    uint32_t total, double block_tokens)
{
    double  indexed, uncached, tail;

    if (total == 0 || block_tokens <= 0) {
        return prompt_tokens;
    }

    if (matched < 0) {
        matched = 0;
    }

    if (matched > total) {
        matched = total;
    }

    indexed = total * block_tokens;
    uncached = (total - matched) * block_tokens;
    tail = (double) prompt_tokens - indexed;

    if (tail > 0) {
        uncached += tail;
    }

    /* blocks are whole: never more than the prompt itself */
    if (uncached > (double) prompt_tokens) {
        uncached = (double) prompt_tokens;
    }

    return (uint64_t) llround(uncached);
}


uint64_t
llmd_inflight_output(uint64_t input_tokens, double ratio, int64_t client_max,
    int64_t max_estimated)
{
    uint64_t  est;

    if (input_tokens == 0 || ratio <= 0) {
        return 0;
    }

    est = (uint64_t) llround((double) input_tokens * ratio);

    if (client_max >= 0 && (uint64_t) client_max < est) {
        est = (uint64_t) client_max;
    }

    if (max_estimated >= 0 && (uint64_t) max_estimated < est) {
        est = (uint64_t) max_estimated;
    }

    return est;
}
