/*
 * llmd_status [json|prometheus]: what every llmd upstream knows right now.
 * json (default): each endpoint's last metrics and their age, in-flight
 * requests, picks, scrape counters, the prefix index size and the decision
 * counters. prometheus: the balancer's own counters in text exposition
 * format, with llm-d's metric names where one exists.
 */

#include "nginx/ngx_llmd.h"


static ngx_int_t ngx_llmd_status_handler(ngx_http_request_t *r);
static size_t ngx_llmd_status_bound(ngx_llmd_main_conf_t *lmcf,
    ngx_uint_t *max);
static u_char *ngx_llmd_status_json(u_char *p, ngx_llmd_srv_conf_t *lcf,
    ngx_uint_t max);
static u_char *ngx_llmd_status_prom(u_char *p, ngx_llmd_srv_conf_t *lcf,
    ngx_uint_t max);
static u_char *ngx_llmd_status_sources(u_char *p, ngx_llmd_srv_conf_t *lcf);
static ngx_uint_t ngx_llmd_status_endpoints(ngx_llmd_srv_conf_t *lcf);
static u_char *ngx_llmd_status_labels(u_char *p, u_char *labels);
static void ngx_llmd_status_estimate(ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_endpoint_sh_t *ep, ngx_llmd_metrics_sh_t *m,
    llmd_inflight_t *d, llmd_endpoint_state_t *est);


/*
 * Slots listed by the status page: every endpoint that is not free, at
 * most as many as were counted for the buffer (the helper may add some
 * while the page is written).
 */
#define ngx_llmd_listed(ep, n, max)                                          \
    ((ep)->state != NGX_LLMD_EP_FREE && (n)++ < (max))

static const char  *ngx_llmd_state_names[] = {
    "free", "pending", "active", "draining"
};

static const char  *ngx_llmd_source_names[] = {
    "static", "dns", "file"
};


char *
ngx_llmd_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_llmd_loc_conf_t  *llcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_llmd_status_handler) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2) {
        if (ngx_strcmp(value[1].data, "prometheus") == 0) {
            llcf->status_format = 1;

        } else if (ngx_strcmp(value[1].data, "json") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid format \"%V\", "
                               "use \"json\" or \"prometheus\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    clcf->handler = ngx_llmd_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_llmd_status_handler(ngx_http_request_t *r)
{
    u_char                *p;
    size_t                 size;
    ngx_int_t              rc;
    ngx_buf_t             *b;
    ngx_uint_t             i;
    ngx_uint_t            *max;
    ngx_chain_t            out;
    ngx_llmd_loc_conf_t   *llcf;
    ngx_llmd_srv_conf_t  **lcfp;
    ngx_llmd_main_conf_t  *lmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmd_module);
    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llmd_module);
    lcfp = lmcf->upstreams.elts;

    max = ngx_palloc(r->pool, (lmcf->upstreams.nelts + 1)
                              * sizeof(ngx_uint_t));
    if (max == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = ngx_llmd_status_bound(lmcf, max);

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

    if (llcf->status_format == 1) {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4");

        for (i = 0; i < lmcf->upstreams.nelts; i++) {
            p = ngx_llmd_status_prom(p, lcfp[i], max[i]);
            p = ngx_llmd_flow_status_prom(p, lcfp[i]);
        }

    } else {
        ngx_str_set(&r->headers_out.content_type, "application/json");

        p = ngx_cpymem(p, "{\"upstreams\":[", sizeof("{\"upstreams\":[") - 1);

        for (i = 0; i < lmcf->upstreams.nelts; i++) {
            if (i) {
                *p++ = ',';
            }

            p = ngx_llmd_status_json(p, lcfp[i], max[i]);
        }

        p = ngx_cpymem(p, "]}\n", 3);
    }

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* An upper bound of the output size, so that one buffer holds it. */
static size_t
ngx_llmd_status_bound(ngx_llmd_main_conf_t *lmcf, ngx_uint_t *max)
{
    size_t                 size;
    ngx_uint_t             i;
    ngx_llmd_srv_conf_t  **lcfp;

    size = 64;
    lcfp = lmcf->upstreams.elts;

    for (i = 0; i < lmcf->upstreams.nelts; i++) {
        max[i] = ngx_llmd_status_endpoints(lcfp[i]);

        size += 6784 + 9 * lcfp[i]->upstream->host.len
                + lcfp[i]->config_file.len
                + NGX_LLMD_HIST_BUCKETS * (128 + lcfp[i]->upstream->host.len)
                + lcfp[i]->sources.nelts
                  * (512 + 6 * NGX_MAX_PATH + 6 * NGX_LLMD_ERROR_LEN)
                + max[i] * (5120 + 16 * NGX_LLMD_NAME_LEN
                     + 6 * NGX_LLMD_ERROR_LEN
                     + 24 * lcfp[i]->upstream->host.len
                     + 4 * LLMD_LABELS_LEN)
                + ngx_llmd_flow_status_size(lcfp[i]);
    }

    return size;
}


static u_char *
ngx_llmd_status_json(u_char *p, ngx_llmd_srv_conf_t *lcf, ngx_uint_t max)
{
    size_t                      len;
    ngx_uint_t                  i, n;
    ngx_msec_t                  now;
    ngx_llmd_shctx_t           *sh;
    llmd_inflight_t             d;
    ngx_llmd_metrics_sh_t       m;
    llmd_endpoint_state_t       est;
    ngx_llmd_endpoint_sh_t     *ep;
    llmd_prefix_index_stats_t   st;
    llmd_kv_index_stats_t       kst;
    llmd_tok_cache_stats_t      tst;

    sh = lcf->sh;
    now = ngx_current_msec;
    ngx_memzero(&kst, sizeof(kst));

    ngx_shmtx_lock(&lcf->shpool->mutex);
    llmd_prefix_index_stats(lcf->index, &st);
    ngx_shmtx_unlock(&lcf->shpool->mutex);

    p = ngx_sprintf(p, "{\"name\":\"");
    p = (u_char *) ngx_escape_json(p, lcf->upstream->host.data,
                                   lcf->upstream->host.len);
    p = ngx_sprintf(p, "\",\"config\":\"");

    if (lcf->config_file.len) {
        p = (u_char *) ngx_escape_json(p, lcf->config_file.data,
                                       lcf->config_file.len);
    } else {
        p = ngx_cpymem(p, "<default>", sizeof("<default>") - 1);
    }

    p = ngx_sprintf(p, "\",\"profile\":\"%s\",\"prefix_scorer\":%s,"
                    "\"decisions\":%uA,\"rejected_bad_request\":%uA,"
                    "\"rejected_no_endpoint\":%uA,\"load_only\":%uA,"
                    "\"pd_decisions\":%uA,\"decision_us_mean\":%.1f,"
                    "\"prefix_index\":{\"entries\":%uL,\"capacity\":%uL,"
                    "\"evictions\":%uL,\"bytes\":%uz,"
                    "\"bytes_per_entry\":%uz,\"blocks_looked_up\":%uA,"
                    "\"blocks_hit\":%uA},"
                    "\"metrics\":{\"enabled\":%s,\"uri\":\"%V\","
                    "\"interval_ms\":%M,\"stale_ms\":%M,"
                    "\"helper_pid\":%P},",
                    lcf->profile->name,
                    !lcf->has_prefix ? "null"
                    : lcf->precise ? "\"precise\"" : "\"approximate\"",
                    sh->decisions, sh->rejected_bad_request,
                    sh->rejected_no_endpoint, sh->load_only,
                    sh->pd_decisions,
                    sh->decisions
                        ? (double) sh->decision_ns_sum / sh->decisions / 1000
                        : 0.0,
                    st.entries, st.capacity, st.evictions, sh->index_size,
                    llmd_prefix_index_entry_bytes(),
                    sh->prefix_blocks_total, sh->prefix_blocks_hit,
                    lcf->metrics ? "true" : "false", &lcf->metrics_uri,
                    lcf->metrics_interval, lcf->metrics_stale,
                    sh->writer_pid);

    if (lcf->precise) {
        ngx_shmtx_lock(&lcf->shpool->mutex);
        llmd_kv_index_stats(lcf->kv_index, &kst);
        ngx_shmtx_unlock(&lcf->shpool->mutex);

        p = ngx_sprintf(p, "\"kv_events\":{\"mode\":\"%s\","
                        "\"block_size\":%uD,\"hash_seed\":\"",
                        lcf->kv_mode == NGX_LLMD_KV_BIND ? "bind" : "connect",
                        lcf->prefix.block_size);
        p = (u_char *) ngx_escape_json(p, (u_char *) lcf->prefix.hash_seed,
                                       ngx_strlen(lcf->prefix.hash_seed));
        p = ngx_sprintf(p, "\",\"unknown_pod_messages\":%uA,"
                        "\"spoofed_messages\":%uA,"
                        "\"malformed\":%uA,\"precise_decisions\":%uA,"
                        "\"approximate_fallbacks\":%uA,"
                        "\"approximate_hashes\":%uA,"
                        "\"lock_holds\":%uA,\"lock_hold_us_mean\":%.1f,"
                        "\"lock_hold_us_max\":%.1f,"
                        "\"index\":{\"entries\":%uL,\"capacity\":%uL,"
                        "\"evictions\":%uL,\"bytes\":%uz,"
                        "\"bytes_per_entry\":%uz}},",
                        sh->kv_unknown_pod, sh->kv_spoofed, sh->kv_malformed,
                        sh->precise_decisions, sh->precise_fallbacks,
                        sh->precise_approx_hashes, sh->kv_holds,
                        sh->kv_holds
                            ? (double) sh->kv_hold_ns_sum / sh->kv_holds
                              / 1000
                            : 0.0,
                        (double) sh->kv_hold_ns_max / 1000,
                        kst.entries, kst.capacity, kst.evictions,
                        sh->kv_index_size, llmd_kv_index_entry_bytes());

        /* the prefix cache of the tokenizer in the worker answering */
        llmd_tok_cache_stats(lcf->tok_cache, &tst);
        p = ngx_sprintf(p, "\"tokenizer_cache\":{\"size\":%uz,"
                        "\"bytes\":%uL,\"lookups\":%uL,\"hits\":%uL,"
                        "\"reused_ids\":%uL,\"encoded_ids\":%uL,"
                        "\"stored\":%uL},",
                        lcf->tokenizer_cache, tst.bytes, tst.lookups,
                        tst.hits, tst.reused_ids, tst.encoded_ids,
                        tst.stored);
    }

    p = ngx_llmd_status_sources(p, lcf);
    p = ngx_llmd_flow_status_json(p, lcf);

    p = ngx_sprintf(p, "\"endpoints\":[");

    n = 0;

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        ep = &sh->endpoints[i];

        if (!ngx_llmd_listed(ep, n, max)) {
            continue;
        }

        ngx_llmd_metrics_read(ep, &m);

        if (n > 1) {
            *p++ = ',';
        }

        p = ngx_sprintf(p, "{\"name\":\"");
        p = (u_char *) ngx_escape_json(p, ep->name,
                                       ngx_min(ep->name_len,
                                               NGX_LLMD_NAME_LEN));
        p = ngx_sprintf(p, "\",\"state\":\"%s\",\"source\":\"%s\","
                        "\"labels\":{",
                        ngx_llmd_state_names[ep->state & 3],
                        ngx_llmd_source_names[ep->source_type % 3]);
        p = ngx_llmd_status_labels(p, ep->labels);
        p = ngx_sprintf(p, "},\"slot\":%ui,\"active\":%uA,\"picks\":%uA,"
                        "\"fails\":%uA,"
                        "\"prefix_entries\":%uD,\"scrapes\":%uA,"
                        "\"scrape_errors\":%uA,",
                        i, ep->active, ep->picks, ep->fails,
                        st.per_endpoint[i], ep->scrapes,
                        ep->scrape_errors);

        if (m.updated) {
            p = ngx_sprintf(p, "\"fresh\":%s,\"metrics_age_ms\":%M,"
                            "\"waiting\":%.0f,\"running\":%.0f,"
                            "\"kv_cache_usage\":%.4f,\"block_size\":%uD,"
                            "\"num_gpu_blocks\":%uD,",
                            (ngx_llmd_metrics_age(now, m.updated)
                             <= lcf->metrics_stale) ? "true" : "false",
                            ngx_llmd_metrics_age(now, m.updated),
                            m.waiting, m.running,
                            m.kv_usage, m.block_size, m.num_gpu_blocks);

        } else {
            p = ngx_sprintf(p, "\"fresh\":false,\"metrics_age_ms\":null,");
        }

        /* what the metric scorers see: llmd_inflight.h */
        ngx_llmd_status_estimate(lcf, ep, &m, &d, &est);

        p = ngx_sprintf(p, "\"inflight\":{\"tokens\":%.0f,"
                        "\"since_scrape\":{\"sent\":%uL,"
                        "\"sent_tokens\":%uL,\"done\":%uL,"
                        "\"done_tokens\":%uL}},",
                        est.inflight_tokens, d.sent, d.sent_tokens, d.done,
                        d.done_tokens);

        if (m.updated) {
            p = ngx_sprintf(p, "\"estimate\":{\"waiting\":%.1f,"
                            "\"running\":%.1f,\"kv_cache_usage\":%.4f},",
                            est.waiting, est.running, est.kv_usage);
        }

        if (lcf->precise) {
            p = ngx_sprintf(p, "\"kv\":{\"live\":%s,\"connected\":%s,"
                            "\"entries\":%uD,"
                            "\"batches\":%uA,\"blocks_stored\":%uA,"
                            "\"blocks_removed\":%uA,\"blocks_dropped\":%uA,"
                            "\"clears\":%uA,\"gaps\":%uA,\"replays\":%uA,"
                            "\"last_seq\":%uA},",
                            ep->kv_live ? "true" : "false",
                            ep->kv_connected ? "true" : "false",
                            kst.per_endpoint[i], ep->kv_batches,
                            ep->kv_blocks_stored, ep->kv_blocks_removed,
                            ep->kv_dropped, ep->kv_clears, ep->kv_gaps,
                            ep->kv_replays, ep->kv_last_seq);
        }

        if (m.error_time && m.error_time >= m.updated) {
            len = ngx_strlen(m.last_error);
            p = ngx_sprintf(p, "\"last_error\":\"");
            p = (u_char *) ngx_escape_json(p, m.last_error, len);
            p = ngx_sprintf(p, "\",\"error_age_ms\":%M}",
                            now - m.error_time);

        } else {
            p = ngx_sprintf(p, "\"last_error\":null}");
        }
    }

    return ngx_sprintf(p, "]}");
}


static u_char *
ngx_llmd_status_prom(u_char *p, ngx_llmd_srv_conf_t *lcf, ngx_uint_t max)
{
    double                      sum_kv, sum_q;
    uint64_t                    cum;
    ngx_uint_t                  i, n, fresh;
    ngx_str_t                  *u;
    ngx_msec_t                  now;
    ngx_llmd_shctx_t           *sh;
    llmd_inflight_t             d;
    ngx_llmd_metrics_sh_t       m;
    llmd_endpoint_state_t       est;
    ngx_llmd_endpoint_sh_t     *ep;
    llmd_prefix_index_stats_t   st;

    sh = lcf->sh;
    u = &lcf->upstream->host;
    now = ngx_current_msec;

    ngx_shmtx_lock(&lcf->shpool->mutex);
    llmd_prefix_index_stats(lcf->index, &st);
    ngx_shmtx_unlock(&lcf->shpool->mutex);

    p = ngx_sprintf(p,
        "# HELP llmd_decisions_total Scheduling decisions made.\n"
        "# TYPE llmd_decisions_total counter\n"
        "llmd_decisions_total{upstream=\"%V\"} %uA\n"
        "# HELP llmd_rejected_requests_total Requests the balancer "
        "answered itself.\n"
        "# TYPE llmd_rejected_requests_total counter\n"
        "llmd_rejected_requests_total{upstream=\"%V\","
        "reason=\"bad_request\"} %uA\n"
        "llmd_rejected_requests_total{upstream=\"%V\","
        "reason=\"no_endpoint\"} %uA\n"
        "# HELP llmd_pd_decisions_total Decisions that picked a prefill "
        "pod (prefill/decode disaggregation).\n"
        "# TYPE llmd_pd_decisions_total counter\n"
        "llmd_pd_decisions_total{upstream=\"%V\"} %uA\n",
        u, sh->decisions, u, sh->rejected_bad_request,
        u, sh->rejected_no_endpoint, u, sh->pd_decisions);

    p = ngx_sprintf(p,
        "# HELP inference_extension_scheduler_e2e_duration_seconds "
        "End-to-end scheduling latency (body parse, scoring, pick).\n"
        "# TYPE inference_extension_scheduler_e2e_duration_seconds "
        "histogram\n");

    cum = 0;

    for (i = 0; i <= NGX_LLMD_HIST_BUCKETS; i++) {
        cum += sh->decision_hist[i];

        if (i < NGX_LLMD_HIST_BUCKETS) {
            p = ngx_sprintf(p, "inference_extension_scheduler_e2e_duration_"
                            "seconds_bucket{upstream=\"%V\",le=\"%.6f\"} "
                            "%uL\n", u, ngx_llmd_hist_bounds_us[i] / 1e6,
                            cum);
        } else {
            p = ngx_sprintf(p, "inference_extension_scheduler_e2e_duration_"
                            "seconds_bucket{upstream=\"%V\",le=\"+Inf\"} "
                            "%uL\n", u, cum);
        }
    }

    p = ngx_sprintf(p,
        "inference_extension_scheduler_e2e_duration_seconds_sum"
        "{upstream=\"%V\"} %.9f\n"
        "inference_extension_scheduler_e2e_duration_seconds_count"
        "{upstream=\"%V\"} %uL\n"
        "# HELP inference_extension_prefix_indexer_size Entries in the "
        "approximate prefix index.\n"
        "# TYPE inference_extension_prefix_indexer_size gauge\n"
        "inference_extension_prefix_indexer_size{upstream=\"%V\"} %uL\n"
        "# HELP llmd_prefix_index_evictions_total Prefix index entries "
        "evicted.\n"
        "# TYPE llmd_prefix_index_evictions_total counter\n"
        "llmd_prefix_index_evictions_total{upstream=\"%V\"} %uL\n"
        "# HELP llmd_prefix_blocks_total Prompt blocks looked up / found "
        "on the picked endpoint.\n"
        "# TYPE llmd_prefix_blocks_total counter\n"
        "llmd_prefix_blocks_total{upstream=\"%V\",result=\"looked_up\"} "
        "%uA\n"
        "llmd_prefix_blocks_total{upstream=\"%V\",result=\"hit\"} %uA\n",
        u, (double) sh->decision_ns_sum / 1e9, u, cum,
        u, st.entries, u, st.evictions,
        u, sh->prefix_blocks_total, u, sh->prefix_blocks_hit);

    p = ngx_sprintf(p,
        "# HELP llmd_endpoint_info Endpoints of the upstream, where they "
        "come from, their state and labels.\n"
        "# TYPE llmd_endpoint_info gauge\n");

    for (i = 0, n = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        ep = &sh->endpoints[i];
        if (ngx_llmd_listed(ep, n, max)) {
            p = ngx_sprintf(p, "llmd_endpoint_info{upstream=\"%V\","
                            "endpoint=\"%*s\",source=\"%s\","
                            "state=\"%s\",labels=\"%s\"} 1\n", u,
                            ep->name_len, ep->name,
                            ngx_llmd_source_names[ep->source_type % 3],
                            ngx_llmd_state_names[ep->state & 3],
                            ep->labels);
        }
    }

    p = ngx_sprintf(p,
        "# HELP llmd_endpoint_picks_total Requests sent to each endpoint.\n"
        "# TYPE llmd_endpoint_picks_total counter\n");

    for (i = 0, n = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        ep = &sh->endpoints[i];
        if (ngx_llmd_listed(ep, n, max)) {
            p = ngx_sprintf(p, "llmd_endpoint_picks_total{upstream=\"%V\","
                            "endpoint=\"%*s\"} %uA\n", u, ep->name_len,
                            ep->name, ep->picks);
        }
    }

    p = ngx_sprintf(p,
        "# HELP llmd_endpoint_active_requests In-flight requests sent by "
        "this balancer.\n"
        "# TYPE llmd_endpoint_active_requests gauge\n");

    for (i = 0, n = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        ep = &sh->endpoints[i];
        if (ngx_llmd_listed(ep, n, max)) {
            p = ngx_sprintf(p, "llmd_endpoint_active_requests{upstream="
                            "\"%V\",endpoint=\"%*s\"} %uA\n", u,
                            ep->name_len, ep->name, ep->active);
        }
    }

    p = ngx_sprintf(p,
        "# HELP llmd_endpoint_inflight_tokens Prompt tokens in flight to "
        "each endpoint, not cached there.\n"
        "# TYPE llmd_endpoint_inflight_tokens gauge\n");

    for (i = 0, n = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        ep = &sh->endpoints[i];
        if (ngx_llmd_listed(ep, n, max)) {
            ngx_llmd_metrics_read(ep, &m);
            ngx_llmd_status_estimate(lcf, ep, &m, &d, &est);
            p = ngx_sprintf(p, "llmd_endpoint_inflight_tokens{upstream="
                            "\"%V\",endpoint=\"%*s\"} %.0f\n", u,
                            ep->name_len, ep->name, est.inflight_tokens);
        }
    }

    p = ngx_sprintf(p,
        "# HELP llmd_endpoint_since_scrape_requests Requests sent to each "
        "endpoint and finished since its last scrape.\n"
        "# TYPE llmd_endpoint_since_scrape_requests gauge\n"
        "# HELP llmd_endpoint_since_scrape_tokens Their prompt tokens not "
        "cached on the endpoint.\n"
        "# TYPE llmd_endpoint_since_scrape_tokens gauge\n"
        "# HELP llmd_endpoint_estimate What the metric scorers see: the "
        "last scrape moved to the present by the in-flight load.\n"
        "# TYPE llmd_endpoint_estimate gauge\n");

    for (i = 0, n = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        ep = &sh->endpoints[i];
        if (!ngx_llmd_listed(ep, n, max)) {
            continue;
        }

        ngx_llmd_metrics_read(ep, &m);
        ngx_llmd_status_estimate(lcf, ep, &m, &d, &est);

        p = ngx_sprintf(p,
            "llmd_endpoint_since_scrape_requests{upstream=\"%V\","
            "endpoint=\"%*s\",event=\"sent\"} %uL\n"
            "llmd_endpoint_since_scrape_requests{upstream=\"%V\","
            "endpoint=\"%*s\",event=\"done\"} %uL\n"
            "llmd_endpoint_since_scrape_tokens{upstream=\"%V\","
            "endpoint=\"%*s\",event=\"sent\"} %uL\n"
            "llmd_endpoint_since_scrape_tokens{upstream=\"%V\","
            "endpoint=\"%*s\",event=\"done\"} %uL\n",
            u, ep->name_len, ep->name, d.sent,
            u, ep->name_len, ep->name, d.done,
            u, ep->name_len, ep->name, d.sent_tokens,
            u, ep->name_len, ep->name, d.done_tokens);

        if (m.updated) {
            p = ngx_sprintf(p,
                "llmd_endpoint_estimate{upstream=\"%V\",endpoint=\"%*s\","
                "metric=\"waiting\"} %.1f\n"
                "llmd_endpoint_estimate{upstream=\"%V\",endpoint=\"%*s\","
                "metric=\"running\"} %.1f\n"
                "llmd_endpoint_estimate{upstream=\"%V\",endpoint=\"%*s\","
                "metric=\"kv_cache_usage\"} %.4f\n",
                u, ep->name_len, ep->name, est.waiting,
                u, ep->name_len, ep->name, est.running,
                u, ep->name_len, ep->name, est.kv_usage);
        }
    }

    p = ngx_sprintf(p,
        "# HELP llmd_scrape_errors_total Failed /metrics scrapes.\n"
        "# TYPE llmd_scrape_errors_total counter\n");

    for (i = 0, n = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        ep = &sh->endpoints[i];
        if (ngx_llmd_listed(ep, n, max)) {
            p = ngx_sprintf(p, "llmd_scrape_errors_total{upstream=\"%V\","
                            "endpoint=\"%*s\"} %uA\n", u, ep->name_len,
                            ep->name, ep->scrape_errors);
        }
    }

    sum_kv = 0;
    sum_q = 0;
    fresh = 0;

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        if (sh->endpoints[i].state != NGX_LLMD_EP_ACTIVE) {
            continue;
        }

        ngx_llmd_metrics_read(&sh->endpoints[i], &m);

        if (m.updated
            && ngx_llmd_metrics_age(now, m.updated) <= lcf->metrics_stale)
        {
            sum_kv += m.kv_usage;
            sum_q += m.waiting;
            fresh++;
        }
    }

    return ngx_sprintf(p,
        "# HELP inference_pool_average_kv_cache_utilization Mean KV-cache "
        "usage of endpoints with fresh metrics.\n"
        "# TYPE inference_pool_average_kv_cache_utilization gauge\n"
        "inference_pool_average_kv_cache_utilization{name=\"%V\"} %.4f\n"
        "# HELP inference_pool_average_queue_size Mean waiting queue of "
        "endpoints with fresh metrics.\n"
        "# TYPE inference_pool_average_queue_size gauge\n"
        "inference_pool_average_queue_size{name=\"%V\"} %.4f\n"
        "# HELP inference_pool_ready_pods Endpoints with fresh metrics.\n"
        "# TYPE inference_pool_ready_pods gauge\n"
        "inference_pool_ready_pods{name=\"%V\"} %ui\n",
        u, fresh ? sum_kv / fresh : 0.0, u, fresh ? sum_q / fresh : 0.0,
        u, fresh);
}


/* "sources":[...], what each llmd_endpoints source last said. */
static u_char *
ngx_llmd_status_sources(u_char *p, ngx_llmd_srv_conf_t *lcf)
{
    ngx_uint_t             i;
    ngx_msec_t             now;
    ngx_llmd_source_t     *src;
    ngx_llmd_source_sh_t  *ss;

    now = ngx_current_msec;
    src = lcf->sources.elts;

    p = ngx_sprintf(p, "\"sources\":[");

    for (i = 0; i < lcf->sources.nelts; i++) {
        ss = &lcf->sh->sources[src[i].index];

        if (i) {
            *p++ = ',';
        }

        p = ngx_sprintf(p, "{\"type\":\"%s\",\"name\":\"",
                        ngx_llmd_source_names[src[i].type % 3]);
        p = (u_char *) ngx_escape_json(p, src[i].name.data, src[i].name.len);
        p = ngx_sprintf(p, "\",\"port\":%d,\"interval_ms\":%M,"
                        "\"endpoints\":%ui,\"left_out\":%ui,"
                        "\"updates\":%uA,\"errors\":%uA,",
                        (int) src[i].port, src[i].interval, ss->endpoints,
                        ss->over_limit, ss->updates, ss->errors);

        if (ss->updated) {
            p = ngx_sprintf(p, "\"update_age_ms\":%M,",
                            ngx_llmd_metrics_age(now, ss->updated));
        } else {
            p = ngx_sprintf(p, "\"update_age_ms\":null,");
        }

        if (ss->error_time && ss->error_time >= ss->updated) {
            p = ngx_sprintf(p, "\"last_error\":\"");
            p = (u_char *) ngx_escape_json(p, ss->last_error,
                                           ngx_strlen(ss->last_error));
            p = ngx_sprintf(p, "\"}");

        } else {
            p = ngx_sprintf(p, "\"last_error\":null}");
        }
    }

    return ngx_sprintf(p, "],");
}


/* Labels "k=v,k=v" as JSON members "k":"v","k":"v" (all safe chars). */
static u_char *
ngx_llmd_status_labels(u_char *p, u_char *labels)
{
    u_char  *s;

    if (*labels == '\0') {
        return p;
    }

    *p++ = '"';

    for (s = labels; *s && s < labels + LLMD_LABELS_LEN; s++) {
        if (*s == '=') {
            p = ngx_cpymem(p, "\":\"", 3);

        } else if (*s == ',') {
            p = ngx_cpymem(p, "\",\"", 3);

        } else {
            *p++ = *s;
        }
    }

    *p++ = '"';

    return p;
}


static ngx_uint_t
ngx_llmd_status_endpoints(ngx_llmd_srv_conf_t *lcf)
{
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        if (lcf->sh->endpoints[i].state != NGX_LLMD_EP_FREE) {
            n++;
        }
    }

    return n;
}


/*
 * An endpoint's in-flight load since its scrape in m, and the queue,
 * running and KV values the metric scorers see (the scraped ones, moved
 * to the present with llmd_inflight on).
 */
static void
ngx_llmd_status_estimate(ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_endpoint_sh_t *ep, ngx_llmd_metrics_sh_t *m,
    llmd_inflight_t *d, llmd_endpoint_state_t *est)
{
    ngx_memzero(est, sizeof(llmd_endpoint_state_t));

    ngx_llmd_inflight_since(ep, m, d);

    est->waiting = m->waiting;
    est->running = m->running;
    est->kv_usage = m->have_kv ? m->kv_usage : 0;
    est->fresh = 1;
    est->inflight_tokens = (double) (ngx_atomic_int_t) ep->inflight_tokens;

    if (est->inflight_tokens < 0) {
        est->inflight_tokens = 0;
    }

    if (lcf->inflight) {
        llmd_inflight_adjust(est, d, m->block_size, m->num_gpu_blocks);
    }
}
