/*
 * GET /metrics in the Prometheus text format as vLLM v1 prints it
 * (vllm/v1/metrics/loggers.py, spec vllm-interop.md section 5.1): labels
 * sorted by name, values as floats, counters with _total.  Latencies are in
 * simulated seconds (wall time multiplied by the time scale).  Pods with a
 * P/D role add vLLM's NIXL-connector metrics and the simulator's own
 * llmd_sim_pd_* counters; every pod names its role in llmd_sim_pod_info.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"


static const double  sim_ttft_bounds[] = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0
};

static const double  sim_itl_bounds[] = {
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0,
    2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0
};

static const double  sim_e2e_bounds[] = {
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
    50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0
};

/* vLLM's NixlPromMetrics buckets */
static const double  sim_xfer_time_bounds[] = {
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 5.0
};

static const double  sim_xfer_bytes_bounds[] = {
    2048.0, 8192.0, 32768.0, 131072.0, 524288.0, 2097152.0, 8388608.0,
    33554432.0, 134217728.0, 536870912.0, 2147483648.0, 8589934592.0
};

#define SIM_N(a)  (int) (sizeof(a) / sizeof((a)[0]))


static const char *sim_shortest(double v, char *buf, size_t len);
static void sim_pd_metrics(sim_buf_t *o, sim_pod_t *pod, const char *labels);


void
sim_stats_init(sim_stats_t *st)
{
    memset(st, 0, sizeof(sim_stats_t));
    st->ttft.bounds = sim_ttft_bounds;
    st->ttft.n = SIM_N(sim_ttft_bounds);
    st->itl.bounds = sim_itl_bounds;
    st->itl.n = SIM_N(sim_itl_bounds);
    st->e2e.bounds = sim_e2e_bounds;
    st->e2e.n = SIM_N(sim_e2e_bounds);
    st->xfer_time.bounds = sim_xfer_time_bounds;
    st->xfer_time.n = SIM_N(sim_xfer_time_bounds);
    st->xfer_bytes.bounds = sim_xfer_bytes_bounds;
    st->xfer_bytes.n = SIM_N(sim_xfer_bytes_bounds);
}


void
sim_hist_observe(sim_hist_t *h, double v)
{
    int  i;

    for (i = 0; i < h->n && v > h->bounds[i]; i++) {
        /* find the first bucket holding v */
    }

    h->counts[i]++;
    h->sum += v;
    h->count++;
}


/* The shortest %g that reads back as v. */
static const char *
sim_shortest(double v, char *buf, size_t len)
{
    int  p;

    for (p = 1; p < 17; p++) {
        snprintf(buf, len, "%.*g", p, v);
        if (strtod(buf, NULL) == v) {
            return buf;
        }
    }

    snprintf(buf, len, "%.17g", v);
    return buf;
}


/* A float as Python's repr prints it: shortest round trip, "3.0". */
static const char *
sim_float(double v, char *buf, size_t len)
{
    if (v == (double) (long long) v && v < 1e15 && v > -1e15) {
        snprintf(buf, len, "%.1f", v);
        return buf;
    }

    return sim_shortest(v, buf, len);
}


static void
sim_head(sim_buf_t *o, const char *name, const char *type, const char *help)
{
    sim_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}


static void
sim_gauge(sim_buf_t *o, const char *labels, const char *name,
    const char *help, double v)
{
    char  f[32];

    sim_head(o, name, "gauge", help);
    sim_buf_printf(o, "%s{%s} %s\n", name, labels, sim_float(v, f, sizeof(f)));
}


static void
sim_counter(sim_buf_t *o, const char *labels, const char *name,
    const char *help, uint64_t v)
{
    sim_head(o, name, "counter", help);
    sim_buf_printf(o, "%s_total{%s} %llu.0\n", name, labels,
                   (unsigned long long) v);
}


static void
sim_hist(sim_buf_t *o, const char *labels, const char *name,
    const char *help, const sim_hist_t *h)
{
    uint64_t  cum;
    char      f[32];
    int       i;

    sim_head(o, name, "histogram", help);

    cum = 0;
    for (i = 0; i < h->n; i++) {
        cum += h->counts[i];
        sim_buf_printf(o, "%s_bucket{%s,le=\"%s\"} %llu.0\n", name, labels,
                       sim_shortest(h->bounds[i], f, sizeof(f)),
                       (unsigned long long) cum);
    }
    cum += h->counts[h->n];
    sim_buf_printf(o, "%s_bucket{%s,le=\"+Inf\"} %llu.0\n", name, labels,
                   (unsigned long long) cum);
    sim_buf_printf(o, "%s_count{%s} %llu.0\n%s_sum{%s} %s\n", name,
                   labels, (unsigned long long) h->count, name, labels,
                   sim_float(h->sum, f, sizeof(f)));
}


int
sim_metrics_render(sim_pod_t *pod, sim_buf_t *o)
{
    const sim_config_t  *cf = pod->cf;
    sim_stats_t         *st = &pod->stats;
    char                 labels[512];
    double               usage;
    uint32_t             nb;

    snprintf(labels, sizeof(labels), "engine=\"0\",model_name=\"%s\"",
             cf->model);

    nb = sim_kv_num_blocks(pod->kv);
    usage = 1.0 - (double) sim_kv_num_free(pod->kv) / nb;

    sim_gauge(o, labels, "vllm:num_requests_running",
              "Number of requests in model execution batches.",
              pod->eng.running.n);
    sim_gauge(o, labels, "vllm:num_requests_waiting",
              "Number of requests waiting to be processed.",
              pod->eng.waiting.n + pod->eng.loading.n);
    sim_gauge(o, labels, "vllm:kv_cache_usage_perc",
              "KV-cache usage. 1 means 100 percent usage.", usage);
    if (cf->old_metrics) {
        sim_gauge(o, labels, "vllm:gpu_cache_usage_perc",
                  "GPU KV-cache usage. 1 means 100 percent usage.", usage);
    }

    sim_counter(o, labels, "vllm:prefix_cache_queries",
                "Prefix cache queries, in terms of number of queried "
                "tokens.", st->prefix_queries);
    sim_counter(o, labels, "vllm:prefix_cache_hits",
                "Prefix cache hits, in terms of number of cached tokens.",
                st->prefix_hits);
    sim_counter(o, labels, "vllm:num_preemptions",
                "Cumulative number of preemption from the engine.",
                st->preemptions);
    sim_counter(o, labels, "vllm:prompt_tokens",
                "Number of prefill tokens processed.", st->prompt_tokens);
    sim_counter(o, labels, "vllm:generation_tokens",
                "Number of generation tokens processed.",
                st->generation_tokens);

    sim_head(o, "vllm:request_success", "counter",
             "Count of successfully processed requests.");
    sim_buf_printf(o, "vllm:request_success_total{engine=\"0\","
                   "finished_reason=\"length\",model_name=\"%s\"} %llu.0\n",
                   cf->model, (unsigned long long) st->success_length);
    sim_buf_printf(o, "vllm:request_success_total{engine=\"0\","
                   "finished_reason=\"stop\",model_name=\"%s\"} %llu.0\n",
                   cf->model, (unsigned long long) st->success_stop);

    sim_hist(o, labels, "vllm:time_to_first_token_seconds",
             "Histogram of time to first token in seconds.", &st->ttft);
    sim_hist(o, labels, "vllm:inter_token_latency_seconds",
             "Histogram of inter-token latency in seconds.", &st->itl);
    if (cf->old_metrics) {
        sim_hist(o, labels, "vllm:time_per_output_token_seconds",
                 "Histogram of time per output token in seconds.", &st->itl);
    }
    sim_hist(o, labels, "vllm:e2e_request_latency_seconds",
             "Histogram of e2e request latency in seconds.", &st->e2e);

    sim_head(o, "vllm:cache_config_info", "gauge",
             "Information of the LLMEngine CacheConfig");
    sim_buf_printf(o, "vllm:cache_config_info{block_size=\"%d\","
                   "cache_dtype=\"auto\",calculate_kv_scales=\"False\","
                   "cpu_offload_gb=\"0\",enable_prefix_caching=\"%s\","
                   "engine=\"0\",gpu_memory_utilization=\"0.9\","
                   "num_cpu_blocks=\"None\",num_gpu_blocks=\"%u\","
                   "prefix_caching_hash_algo=\"%s\",sliding_window=\"None\","
                   "swap_space=\"4\"} 1.0\n",
                   cf->block_size, cf->no_prefix_caching ? "False" : "True",
                   nb, cf->hash_algo == SIM_HASH_SHA256_CBOR_64
                       ? "sha256_cbor_64bit" : "sha256_cbor");

    /* vLLM has no metric of a pod's role: it is llm-d's pod label */
    sim_head(o, "llmd_sim_pod_info", "gauge",
             "The simulated pod's llm-d.ai/role.");
    sim_buf_printf(o, "llmd_sim_pod_info{%s,role=\"%s\"} 1.0\n", labels,
                   sim_role_name(pod->role));

    if (pod->role != SIM_ROLE_BOTH) {
        sim_pd_metrics(o, pod, labels);
    }

    return o->data ? 0 : -1;
}


static void
sim_pd_metrics(sim_buf_t *o, sim_pod_t *pod, const char *labels)
{
    sim_stats_t  *st = &pod->stats;
    size_t        i;
    const struct {
        const char      *name;
        const char      *help;
        const uint64_t  *value;
    } counters[] = {
        { "llmd_sim_pd_prefill_legs",
          "Prefill legs answered with kv_transfer_params.",
          &st->prefill_legs },
        { "llmd_sim_pd_remote_prefills",
          "Requests that came with remote KV (do_remote_prefill).",
          &st->remote_prefills },
        { "llmd_sim_pd_kv_pulls", "KV pulls from a prefill pod.",
          &st->kv_pulls },
        { "llmd_sim_pd_kv_pull_bytes", "Bytes of KV pulled from prefill pods.",
          &st->kv_pull_bytes },
        { "llmd_sim_pd_sidecar_prefills",
          "Prefill legs the decode sidecar sent.", &st->sidecar_legs },
        { "llmd_sim_pd_sidecar_failures", "Prefill legs that failed.",
          &st->sidecar_failures },
        { "llmd_sim_pd_sidecar_fallbacks",
          "Failed prefill legs prefilled locally (--pd-fallback).",
          &st->sidecar_fallbacks }
    };

    sim_counter(o, labels, "vllm:external_prefix_cache_queries",
                "External prefix cache queries from KV connector "
                "cross-instance cache sharing, in terms of number of "
                "queried tokens.", st->external_queries);
    sim_counter(o, labels, "vllm:external_prefix_cache_hits",
                "External prefix cache hits from KV connector cross-instance "
                "cache sharing, in terms of number of cached tokens.",
                st->external_hits);
    sim_hist(o, labels, "vllm:nixl_xfer_time_seconds",
             "Histogram of transfer duration for NIXL KV Cache transfers.",
             &st->xfer_time);
    sim_hist(o, labels, "vllm:nixl_bytes_transferred",
             "Histogram of bytes transferred per NIXL KV Cache transfers.",
             &st->xfer_bytes);
    sim_counter(o, labels, "vllm:nixl_num_failed_transfers",
                "Number of failed NIXL KV Cache transfers.", 0);

    for (i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
        sim_counter(o, labels, counters[i].name, counters[i].help,
                    *counters[i].value);
    }
}
