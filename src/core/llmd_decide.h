/*
 * The whole scheduling decision for one request, as llm-d's scheduler makes
 * it: the profile handler picks the profiles to run (single, disaggregated
 * decode/prefill/encode stages with their deciders, or the one a header
 * names); each profile filters the candidates, scores those left and
 * orders them best first (docs/scheduling.md).
 *
 * The nginx glue, per request:
 *
 *   1. fills llmd_decide_input_t: eps[] and info[] per candidate, the
 *      request facts, plugin_in[] per plugin (cf->plugins[i].index);
 *   2. calls llmd_decide() (holding the lock of any no-hit LRU state);
 *   3. routes to decision.decode.result.order[] (retries take the next);
 *      when decision.prefill.result.norder > 0 and cf->prefill_header, sends
 *      the prefill pick's host:port in x-prefiller-host-port (likewise the
 *      encode picks in x-encoder-hosts-ports when cf->encode_header);
 *   4. for each session-affinity plugin, answers with its header naming
 *      the pick of its profileName stage (default: decode);
 *   5. calls llmd_decide_record() with the endpoints used (under the lock).
 */
#ifndef LLMD_DECIDE_H
#define LLMD_DECIDE_H

#include "core/llmd_scheduler.h"
#include "core/llmd_nohit_lru.h"

/* What filters and some scorers know about a candidate beyond its load. */
typedef struct {
    const char  *labels;         /* "k=v,k=v" (llmd_labels.h), NULL: none
                                    (label filters) */
    const char  *lora_running;   /* vllm:lora_requests_info
                                    running_lora_adapters "a,b", NULL: none */
    const char  *lora_waiting;   /* waiting_lora_adapters */
    uint32_t     lora_max;       /* max_lora; 0: not reported */
    uint32_t     cached_tokens;  /* leading prompt tokens cached on this
                                    endpoint, unweighted by tier
                                    (prefix-based-pd-decider,
                                    matchLengthWeight) */
    uint64_t     id;             /* stable across requests and workers,
                                    e.g. a hash of the server's name
                                    (no-hit-lru-scorer) */
} llmd_endpoint_info_t;

/* Per plugin of the configuration, at cf->plugins[i].index. */
typedef struct {
    int32_t             session_endpoint; /* session-affinity-scorer, -filter:
                                             the candidate (index in eps)
                                             named by the plugin's header
                                             (base64 "namespace/name"),
                                             or -1 */
    llmd_nohit_lru_t   *nohit;            /* no-hit-lru-scorer: its state,
                                             NULL: nothing recorded yet */
} llmd_plugin_input_t;

typedef struct {
    const llmd_endpoint_state_t  *eps;           /* neps candidates */
    const llmd_endpoint_info_t   *info;          /* neps, or NULL: no labels,
                                                    LoRA, cache, ids */
    size_t                        neps;          /* <= LLMD_MAX_ENDPOINTS */
    uint32_t                      prefix_total;  /* blocks of the prompt;
                                                    0: no prompt to match */
    uint32_t                      prompt_tokens; /* estimated prompt length
                                                    (prefix-based-pd-decider) */
    uint32_t                      prompt_chars;  /* bytes of the prompt as
                                                    hashed (pd-profile-handler
                                                    threshold) */
    const char                   *model;         /* the request's model
                                                    (lora-affinity-scorer),
                                                    or NULL */
    int                           multimodal;    /* image, audio or video
                                                    content (always-disagg-
                                                    multimodal-decider) */
    const char                   *profile_header; /* header-profile-handler:
                                                    the value of its header,
                                                    or NULL */
    const llmd_plugin_input_t    *plugin_in;     /* cf->nplugins, or NULL */
    uint64_t                     *rng;           /* xorshift state */
} llmd_decide_input_t;

/* One profile run of a decision. */
typedef struct {
    const llmd_profile_t  *profile;    /* NULL: the stage did not run */
    /* order[]: the candidates that passed the profile's filters, best
       first; norder 0: none did. total[e], scores[s * neps + e] by
       candidate, 0 for one filtered out. The arrays are set (below neps)
       only when the stage runs (profile != NULL); llmd_decide() leaves
       them as they were otherwise. */
    llmd_sched_result_t    result;
    uint8_t                passed[LLMD_MAX_ENDPOINTS];
} llmd_stage_t;

typedef struct {
    double        *scores;     /* set by the caller before llmd_decide(): room
                                  for llmd_decide_scores_size() doubles, or
                                  NULL: scores are not kept */
    llmd_stage_t   decode;     /* the primary profile: routes the request */
    llmd_stage_t   prefill;    /* ran: P/D, the prefill pod */
    llmd_stage_t   encode;     /* ran: E/P/D, the encode pods */
    /* per plugin index: no-hit-lru-scorer saw a cold request */
    uint8_t        nohit_cold[LLMD_CONFIG_MAX_PLUGINS + 2];
} llmd_decision_t;

/* Doubles llmd_decide() may write to decision->scores for neps endpoints. */
size_t llmd_decide_scores_size(const llmd_config_t *cf, size_t neps);

/*
 * Runs the profile handler of cf over the candidates. Returns 0 when the
 * decode (primary) stage found an endpoint, -1 when it found none (no
 * candidates, every one filtered out, or header-profile-handler naming no
 * configured profile): llm-d answers such a request with an error.
 */
int llmd_decide(const llmd_config_t *cf, const llmd_decide_input_t *in,
    llmd_decision_t *d);

/*
 * After the decision: each no-hit-lru-scorer that saw a cold request moves
 * the endpoints used to the front of its LRU: decode_ep (index in eps),
 * then prefill_ep when the prefill stage ran in a profile named "prefill"
 * (as llm-d). -1: none. Needs in->info ids and plugin_in states.
 */
void llmd_decide_record(const llmd_config_t *cf,
    const llmd_decide_input_t *in, const llmd_decision_t *d, int decode_ep,
    int prefill_ep);

#endif /* LLMD_DECIDE_H */
