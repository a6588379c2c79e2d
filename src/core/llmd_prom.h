/*
 * Prometheus text exposition (format 0.0.4) parser for the vLLM metrics a
 * scheduler reads (docs/parsers.md, "Metrics"). The first
 * matching series in exposition order wins.
 */
#ifndef LLMD_PROM_H
#define LLMD_PROM_H

#include "core/llmd_common.h"

/* Bytes of a LoRA adapter list "a,b", NUL included. */
#define LLMD_LORA_LEN  128

typedef struct {
    double     waiting;          /* vllm:num_requests_waiting */
    double     running;          /* vllm:num_requests_running */
    double     kv_usage;         /* vllm:kv_cache_usage_perc, else
                                    vllm:gpu_cache_usage_perc; clamped 0..1 */
    uint32_t   block_size;       /* vllm:cache_config_info{block_size} */
    uint32_t   num_gpu_blocks;   /* vllm:cache_config_info{num_gpu_blocks} */
    unsigned   have_waiting:1;
    unsigned   have_running:1;
    unsigned   have_kv:1;
    unsigned   have_cache_info:1;
    /* vllm:lora_requests_info, the series with the latest value (its
       timestamp), as llm-d reads it: adapter lists as exposed ("a,b",
       cut at the last whole name that fits), max_lora */
    unsigned   have_lora:1;
    uint32_t   lora_max;
    char       lora_running[LLMD_LORA_LEN];
    char       lora_waiting[LLMD_LORA_LEN];
} llmd_vllm_metrics_t;

/*
 * Returns 0 when at least one of waiting/running/kv was found, -1 otherwise
 * (err says why: empty body, not Prometheus text, no vLLM metrics). Lines
 * that do not parse are skipped; NaN and negative gauges are ignored.
 */
int llmd_prom_parse_vllm(const char *text, size_t len,
    llmd_vllm_metrics_t *out, char *err, size_t errlen);

#endif /* LLMD_PROM_H */
