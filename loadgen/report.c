/*
 * The report, in inference-perf's field names (per stage and in total):
 *   metrics.latency.{inter_token_latency, normalized_time_per_output_token,
 *     request_latency, time_per_output_token, time_to_first_token}
 *     each {max, mean, min, p0p1, p1, p5, p10, p25, p50, p75, p90, p95, p99,
 *     p99p9, units}
 *   metrics.requests.{total, failures, input_length, output_length}
 *   metrics.throughput.{input_tokens_per_sec, output_tokens_per_sec,
 *     requests_per_sec, total_tokens_per_sec}
 *   metrics.time.duration
 * Files in the output directory: summary_lifecycle_metrics.json,
 * stage_N_lifecycle_metrics.json, per_request_lifecycle_metrics.jsonl, and
 * report.json / report.yaml holding all of it plus the generator's own
 * figures (CPU, send lag).  Every time is in simulated seconds: wall time
 * multiplied by the time scale.
 *
 * In the inference-perf-v0.2 mode every stage and the summary also carry
 * "inference_perf": the figures inference-perf v0.2 writes, computed its
 * way (summarize_requests() of its reportgen: TTFT to the first line of
 * the stream, ITL between all lines, tokens counted on the text, rates over
 * first send to last end, failures' ends included), with its field names
 * ("median", "p0.1"); they are also written in its own files under
 * inference-perf/ (stage_N_lifecycle_metrics.json,
 * summary_lifecycle_metrics.json), which llm-d's aggregator reads.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "lg.h"
#include "lg_lines.h"


typedef struct {
    double  *v;
    size_t   n, cap;
} lg_vec_t;


static int lg_cmp_double(const void *a, const void *b);
static int lg_vec_push(lg_vec_t *v, double x);
static void lg_add_num(cJSON *o, const char *k, double v);
static cJSON *lg_dist_json(lg_vec_t *v, const char *units);
static long lg_in_tokens(const lg_workload_t *wl, const lg_request_t *q);
static long lg_out_tokens(const lg_request_t *q);
static cJSON *lg_metrics_json(const lg_config_t *cf, const lg_workload_t *wl,
    const lg_requests_t *reqs, int stage);
static cJSON *lg_ip_summarize(lg_vec_t *v, long zeros);
static long lg_ip_out_tokens(const lg_request_t *q);
static cJSON *lg_ip_json(const lg_config_t *cf, const lg_workload_t *wl,
    const lg_requests_t *reqs, int stage);
static int lg_ip_write(const lg_config_t *cf, const cJSON *all);
static cJSON *lg_stage_json(const lg_config_t *cf, int i);
static cJSON *lg_self_json(const lg_config_t *cf, const lg_workload_t *wl,
    const lg_self_t *self);
static void lg_yaml_emit(FILE *f, const cJSON *n, int indent, int in_seq);
static int lg_write_json(const char *dir, const char *name, const cJSON *o);
static int lg_write_requests(const lg_config_t *cf, const lg_workload_t *wl,
    const lg_requests_t *reqs);


static int
lg_cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}


/* Linear interpolation between closest ranks (numpy's default). */
double
lg_percentile(const double *sorted, size_t n, double p)
{
    double  pos, frac;
    size_t  i;

    if (n == 0) {
        return NAN;
    }
    pos = p / 100.0 * (double) (n - 1);
    i = (size_t) pos;
    if (i >= n - 1) {
        return sorted[n - 1];
    }
    frac = pos - (double) i;
    return sorted[i] + (sorted[i + 1] - sorted[i]) * frac;
}


static int
lg_vec_push(lg_vec_t *v, double x)
{
    double  *nv;
    size_t   cap;

    if (v->n == v->cap) {
        cap = v->cap ? v->cap * 2 : 1024;
        nv = realloc(v->v, cap * sizeof(double));
        if (nv == NULL) {
            return -1;
        }
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}


static void
lg_add_num(cJSON *o, const char *k, double v)
{
    if (isfinite(v)) {
        cJSON_AddNumberToObject(o, k, v);
    } else {
        cJSON_AddNullToObject(o, k);
    }
}


static cJSON *
lg_dist_json(lg_vec_t *v, const char *units)
{
    static const struct { const char *k; double p; } ps[] = {
        { "p0p1", 0.1 }, { "p1", 1 }, { "p5", 5 }, { "p10", 10 },
        { "p25", 25 }, { "p50", 50 }, { "p75", 75 }, { "p90", 90 },
        { "p95", 95 }, { "p99", 99 }, { "p99p9", 99.9 },
    };
    cJSON   *o;
    double   sum = 0;
    size_t   i;

    o = cJSON_CreateObject();
    if (v->n > 0) {
        qsort(v->v, v->n, sizeof(double), lg_cmp_double);
    }
    for (i = 0; i < v->n; i++) {
        sum += v->v[i];
    }
    lg_add_num(o, "max", v->n ? v->v[v->n - 1] : NAN);
    lg_add_num(o, "mean", v->n ? sum / v->n : NAN);
    lg_add_num(o, "min", v->n ? v->v[0] : NAN);
    for (i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        lg_add_num(o, ps[i].k, lg_percentile(v->v, v->n, ps[i].p));
    }
    cJSON_AddStringToObject(o, "units", units);
    return o;
}


static long
lg_in_tokens(const lg_workload_t *wl, const lg_request_t *q)
{
    return q->usage_prompt >= 0 ? q->usage_prompt
                                : wl->prompts[q->prompt].input_tokens;
}


static long
lg_out_tokens(const lg_request_t *q)
{
    return q->usage_completion >= 0 ? q->usage_completion : q->events;
}


/* metrics of the requests of one stage (stage < 0: all). */
static cJSON *
lg_metrics_json(const lg_config_t *cf, const lg_workload_t *wl,
    const lg_requests_t *reqs, int stage)
{
    lg_vec_t       itl = {0}, ntpot = {0}, e2e = {0}, tpot = {0},
                   ttft = {0}, inl = {0}, outl = {0};
    const lg_request_t  *q;
    cJSON         *m, *lat, *rq, *tp, *tm;
    double         S = cf->time_scale, first_send = INFINITY,
                   last_send = -INFINITY, last_end = -INFINITY,
                   in_sum = 0, out_sum = 0, span, send_span;
    long           total = 0, failures = 0, o, in;
    size_t         i, j;
    int            oom = 0;

    for (i = 0; i < reqs->n; i++) {
        q = &reqs->v[i];
        if (stage >= 0 && q->stage != stage) {
            continue;
        }
        total++;
        if (q->scheduled < first_send) {
            first_send = q->scheduled;
        }
        if (q->scheduled > last_send) {
            last_send = q->scheduled;
        }
        if (!q->ok) {
            failures++;
            continue;
        }
        if (q->end > last_end) {
            last_end = q->end;
        }
        o = lg_out_tokens(q);
        in = lg_in_tokens(wl, q);
        in_sum += in;
        out_sum += o;
        oom |= lg_vec_push(&inl, in) | lg_vec_push(&outl, o);
        oom |= lg_vec_push(&e2e, (q->end - q->sent) * S);
        oom |= lg_vec_push(&ttft, (q->first_token - q->sent) * S);
        if (o > 0) {
            oom |= lg_vec_push(&ntpot, (q->end - q->sent) * S / o);
        }
        if (o > 1) {
            oom |= lg_vec_push(&tpot, (q->last_token - q->first_token) * S
                                      / (o - 1));
        }
        for (j = 0; j < q->nitl; j++) {
            oom |= lg_vec_push(&itl, q->itl[j] * S);
        }
    }

    m = cJSON_CreateObject();
    lat = cJSON_AddObjectToObject(m, "latency");
    cJSON_AddItemToObject(lat, "inter_token_latency",
                          lg_dist_json(&itl, "s/token"));
    cJSON_AddItemToObject(lat, "normalized_time_per_output_token",
                          lg_dist_json(&ntpot, "s/token"));
    cJSON_AddItemToObject(lat, "request_latency", lg_dist_json(&e2e, "s"));
    cJSON_AddItemToObject(lat, "time_per_output_token",
                          lg_dist_json(&tpot, "s/token"));
    cJSON_AddItemToObject(lat, "time_to_first_token", lg_dist_json(&ttft, "s"));

    rq = cJSON_AddObjectToObject(m, "requests");
    cJSON_AddNumberToObject(rq, "failures", failures);
    cJSON_AddItemToObject(rq, "input_length", lg_dist_json(&inl, "count"));
    cJSON_AddItemToObject(rq, "output_length", lg_dist_json(&outl, "count"));
    cJSON_AddNumberToObject(rq, "total", total);

    /*
     * Requests per second over the stage's send window (so it reads as the
     * offered rate when every request succeeds); tokens per second over
     * first send to last completion, so queueing that delays completions
     * shows as lost throughput.
     */
    span = (last_end - first_send) * S;
    send_span = (last_send - first_send) * S;
    if (stage >= 0 && cf->stages[stage].concurrency == 0) {
        send_span = cf->stages[stage].duration;
    } else if (total > 1 && send_span > 0) {
        send_span = send_span * total / (total - 1);
    }
    tp = cJSON_AddObjectToObject(m, "throughput");
    lg_add_num(tp, "input_tokens_per_sec", span > 0 ? in_sum / span : NAN);
    lg_add_num(tp, "output_tokens_per_sec", span > 0 ? out_sum / span : NAN);
    lg_add_num(tp, "requests_per_sec",
               send_span > 0 ? (total - failures) / send_span : NAN);
    lg_add_num(tp, "total_tokens_per_sec",
               span > 0 ? (in_sum + out_sum) / span : NAN);
    tm = cJSON_AddObjectToObject(m, "time");
    lg_add_num(tm, "duration", span > 0 ? span : 0);
    cJSON_AddNumberToObject(m, "success_rate",
                            total ? (double) (total - failures) / total : 0);
    if (oom) {
        cJSON_AddStringToObject(m, "warning", "out of memory: partial data");
    }

    free(itl.v);
    free(ntpot.v);
    free(e2e.v);
    free(tpot.v);
    free(ttft.v);
    free(inl.v);
    free(outl.v);
    return m;
}


/*
 * inference-perf's summarize(): its keys, null without values.  zeros more
 * values of 0 come before the (unsorted) values of v.
 */
static cJSON *
lg_ip_summarize(lg_vec_t *v, long zeros)
{
    static const struct { const char *k; double p; } ps[] = {
        { "p0.1", 0.1 }, { "p1", 1 }, { "p5", 5 }, { "p10", 10 },
        { "p25", 25 }, { "median", 50 }, { "p75", 75 }, { "p90", 90 },
        { "p95", 95 }, { "p99", 99 }, { "p99.9", 99.9 },
    };
    cJSON   *o;
    double   sum = 0;
    size_t   i;

    if (v->n + zeros == 0) {
        return cJSON_CreateNull();
    }
    qsort(v->v, v->n, sizeof(double), lg_cmp_double);
    for (i = 0; i < v->n; i++) {
        sum += v->v[i];
    }
    o = cJSON_CreateObject();
    lg_add_num(o, "mean", sum / (double) (v->n + zeros));
    lg_add_num(o, "min", zeros ? 0 : v->v[0]);
    for (i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        lg_add_num(o, ps[i].k, lg_lines_percentile(v->v, v->n, zeros,
                                                   ps[i].p));
    }
    lg_add_num(o, "max", v->n ? v->v[v->n - 1] : 0);
    return o;
}


/* The output tokens inference-perf counts: those of the text, with BOS. */
static long
lg_ip_out_tokens(const lg_request_t *q)
{
    return q->text_tokens >= 0 ? q->text_tokens : lg_out_tokens(q);
}


/* inference-perf v0.2's summarize_requests() of one stage (< 0: all). */
static cJSON *
lg_ip_json(const lg_config_t *cf, const lg_workload_t *wl,
    const lg_requests_t *reqs, int stage)
{
    lg_vec_t             delay = {0}, e2e = {0}, ntpot = {0}, tpot = {0},
                         ttft = {0}, itl = {0}, inl = {0}, outl = {0},
                         fe2e = {0}, finl = {0};
    const lg_request_t  *q;
    cJSON               *m, *ls, *su, *lat, *tp, *fa;
    double               S = cf->time_scale, first = INFINITY,
                         last = -INFINITY, end = -INFINITY, in_sum = 0,
                         out_sum = 0, total_time, send;
    long                 count = 0, ok = 0, zeros = 0, in, out;
    size_t               i, j;
    int                  oom = 0;

    for (i = 0; i < reqs->n; i++) {
        q = &reqs->v[i];
        if (stage >= 0 && q->stage != stage) {
            continue;
        }
        count++;
        first = q->sent < first ? q->sent : first;
        last = q->sent > last ? q->sent : last;
        end = q->end > end ? q->end : end;
        oom |= lg_vec_push(&delay, (q->sent - q->scheduled) * S);
        in = wl->prompts[q->prompt].input_tokens;
        if (!q->ok) {
            oom |= lg_vec_push(&fe2e, (q->end - q->sent) * S);
            /* an exception (timeout, connection) leaves no token counts;
             * an error status is a complete response */
            oom |= lg_vec_push(&finl, q->status != 0 && q->status != 200
                                      ? in : 0);
            continue;
        }
        ok++;
        out = lg_ip_out_tokens(q);
        in_sum += in;
        out_sum += out;
        oom |= lg_vec_push(&inl, in) | lg_vec_push(&outl, out);
        oom |= lg_vec_push(&e2e, (q->end - q->sent) * S);
        oom |= lg_vec_push(&ntpot, out ? (q->end - q->sent) * S / out : 0);
        if (q->lines.lines > 1) {
            oom |= lg_vec_push(&ttft, (q->lines.first - q->sent) * S);
            oom |= lg_vec_push(&tpot, (q->lines.last - q->lines.first) * S
                                      / (q->lines.lines - 1));
            for (j = 0; j < q->lines.n; j++) {
                oom |= lg_vec_push(&itl, q->lines.gap[j] * S);
            }
            zeros += q->lines.zeros;
        }
    }

    m = cJSON_CreateObject();
    ls = cJSON_AddObjectToObject(m, "load_summary");
    cJSON_AddNumberToObject(ls, "count", count);
    cJSON_AddItemToObject(ls, "schedule_delay", lg_ip_summarize(&delay, 0));
    if (stage >= 0) {
        send = count ? (last - first) * S : 0;
        cJSON_AddNumberToObject(ls, "send_duration", send);
        cJSON_AddNumberToObject(ls, "requested_rate", cf->stages[stage].rate);
        lg_add_num(ls, "achieved_rate", send > 0 ? count / send : NAN);
    }

    total_time = count ? (end - first) * S : 0;
    su = cJSON_AddObjectToObject(m, "successes");
    cJSON_AddNumberToObject(su, "count", ok);
    lat = cJSON_AddObjectToObject(su, "latency");
    cJSON_AddItemToObject(lat, "request_latency", lg_ip_summarize(&e2e, 0));
    cJSON_AddItemToObject(lat, "normalized_time_per_output_token",
                          lg_ip_summarize(&ntpot, 0));
    cJSON_AddItemToObject(lat, "time_per_output_token",
                          lg_ip_summarize(&tpot, 0));
    cJSON_AddItemToObject(lat, "time_to_first_token",
                          lg_ip_summarize(&ttft, 0));
    cJSON_AddItemToObject(lat, "inter_token_latency",
                          lg_ip_summarize(&itl, zeros));
    tp = cJSON_AddObjectToObject(su, "throughput");
    lg_add_num(tp, "input_tokens_per_sec",
               total_time > 0 ? in_sum / total_time : NAN);
    lg_add_num(tp, "output_tokens_per_sec",
               total_time > 0 ? out_sum / total_time : NAN);
    lg_add_num(tp, "total_tokens_per_sec",
               total_time > 0 ? (in_sum + out_sum) / total_time : NAN);
    lg_add_num(tp, "requests_per_sec",
               total_time > 0 ? ok / total_time : NAN);
    cJSON_AddItemToObject(su, "prompt_len", lg_ip_summarize(&inl, 0));
    cJSON_AddItemToObject(su, "output_len", lg_ip_summarize(&outl, 0));

    fa = cJSON_AddObjectToObject(m, "failures");
    cJSON_AddNumberToObject(fa, "count", count - ok);
    cJSON_AddItemToObject(fa, "request_latency", lg_ip_summarize(&fe2e, 0));
    cJSON_AddItemToObject(fa, "prompt_len", lg_ip_summarize(&finl, 0));
    if (oom) {
        cJSON_AddStringToObject(m, "warning", "out of memory: partial data");
    }

    free(delay.v);
    free(e2e.v);
    free(ntpot.v);
    free(tpot.v);
    free(ttft.v);
    free(itl.v);
    free(inl.v);
    free(outl.v);
    free(fe2e.v);
    free(finl.v);
    return m;
}


/* The report in inference-perf's own files, under inference-perf/. */
static int
lg_ip_write(const lg_config_t *cf, const cJSON *all)
{
    char          dir[1200], name[64];
    const cJSON  *st, *ip;
    int           i = 0;

    snprintf(dir, sizeof(dir), "%s/inference-perf", cf->out_dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        return -1;
    }
    ip = cJSON_GetObjectItemCaseSensitive(
             cJSON_GetObjectItemCaseSensitive(all, "summary"),
             "inference_perf");
    if (lg_write_json(dir, "summary_lifecycle_metrics.json", ip) != 0) {
        return -1;
    }
    cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(all, "stages")) {
        ip = cJSON_GetObjectItemCaseSensitive(st, "inference_perf");
        snprintf(name, sizeof(name), "stage_%d_lifecycle_metrics.json", i++);
        if (lg_write_json(dir, name, ip) != 0) {
            return -1;
        }
    }
    return 0;
}


static cJSON *
lg_stage_json(const lg_config_t *cf, int i)
{
    cJSON             *o = cJSON_CreateObject();
    const lg_stage_t  *st = &cf->stages[i];

    cJSON_AddNumberToObject(o, "stage", i);
    if (st->concurrency) {
        cJSON_AddNumberToObject(o, "concurrency_level",
                                (double) st->concurrency);
        cJSON_AddNumberToObject(o, "num_requests",
                                (double) st->num_requests);
    } else {
        cJSON_AddNumberToObject(o, "rate", st->rate);
    }
    cJSON_AddNumberToObject(o, "duration", st->duration);
    return o;
}


static cJSON *
lg_self_json(const lg_config_t *cf, const lg_workload_t *wl,
    const lg_self_t *self)
{
    cJSON   *o, *lag;
    double  *v, sum = 0;
    size_t   i;
    char     url[600];

    o = cJSON_CreateObject();
    snprintf(url, sizeof(url), "http://%s:%d%s", cf->host, cf->port,
             cf->path_prefix);
    cJSON_AddStringToObject(o, "url", url);
    cJSON_AddStringToObject(o, "api", cf->chat ? "chat" : "completion");
    cJSON_AddStringToObject(o, "mode", cf->mode == LG_MODE_IP_V02
                                       ? "inference-perf-v0.2" : "default");
    cJSON_AddNumberToObject(o, "request_timeout", cf->request_timeout);
    if (cf->mode == LG_MODE_IP_V02) {
        cJSON_AddNumberToObject(o, "stage_interval", cf->stage_interval);
    }
    cJSON_AddStringToObject(o, "load_type",
                            cf->load == LG_LOAD_POISSON ? "poisson"
                            : cf->load == LG_LOAD_CONSTANT ? "constant"
                            : "concurrent");
    cJSON_AddNumberToObject(o, "time_scale", cf->time_scale);
    cJSON_AddNumberToObject(o, "start_epoch", self->start_epoch);
    cJSON_AddNumberToObject(o, "wall_seconds", self->wall);
    cJSON_AddNumberToObject(o, "cpu_user_seconds", self->cpu_user);
    cJSON_AddNumberToObject(o, "cpu_system_seconds", self->cpu_sys);
    lg_add_num(o, "cpu_percent_of_one_core", self->wall > 0
               ? 100 * (self->cpu_user + self->cpu_sys) / self->wall : NAN);
    cJSON_AddNumberToObject(o, "max_in_flight", (double) self->max_inflight);
    cJSON_AddNumberToObject(o, "connections_opened",
                            (double) self->conns_opened);
    cJSON_AddNumberToObject(o, "prompts", (double) wl->n);
    cJSON_AddStringToObject(o, "tokenizer", wl->tokenizer_note);

    /* wall milliseconds between the scheduled and the actual send */
    lag = cJSON_AddObjectToObject(o, "send_lag_ms");
    v = malloc((self->nlag + 1) * sizeof(double));
    if (v != NULL) {
        for (i = 0; i < self->nlag; i++) {
            v[i] = self->lag[i] * 1000;
            sum += v[i];
        }
        qsort(v, self->nlag, sizeof(double), lg_cmp_double);
        cJSON_AddNumberToObject(lag, "count", (double) self->nlag);
        lg_add_num(lag, "mean", self->nlag ? sum / self->nlag : NAN);
        lg_add_num(lag, "p50", lg_percentile(v, self->nlag, 50));
        lg_add_num(lag, "p90", lg_percentile(v, self->nlag, 90));
        lg_add_num(lag, "p99", lg_percentile(v, self->nlag, 99));
        lg_add_num(lag, "max", self->nlag ? v[self->nlag - 1] : NAN);
        free(v);
    }
    return o;
}


/* YAML from the JSON tree: block style, strings double-quoted. */
static void
lg_yaml_emit(FILE *f, const cJSON *n, int indent, int in_seq)
{
    const cJSON  *c;
    char         *s;
    int           first = 1;

    if (cJSON_IsObject(n) || cJSON_IsArray(n)) {
        if (n->child == NULL) {
            fprintf(f, cJSON_IsObject(n) ? " {}\n" : " []\n");
            return;
        }
        if (!in_seq) {
            fputc('\n', f);
        }
        for (c = n->child; c != NULL; c = c->next) {
            if (!(in_seq && first)) {
                fprintf(f, "%*s", indent, "");
            }
            first = 0;
            if (cJSON_IsObject(n)) {
                fprintf(f, "%s:", c->string);
                lg_yaml_emit(f, c, indent + 2, 0);
            } else {
                /* a mapping item starts on the dash's line */
                fprintf(f, "- ");
                lg_yaml_emit(f, c, indent + 2, 1);
            }
        }
        return;
    }
    s = cJSON_PrintUnformatted(n);
    fprintf(f, "%s%s\n", in_seq ? "" : " ", s ? s : "null");
    free(s);
}


static int
lg_write_json(const char *dir, const char *name, const cJSON *o)
{
    char   path[1400], *s;
    FILE  *f;
    int    rc;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    s = cJSON_Print(o);
    f = fopen(path, "w");
    if (s == NULL || f == NULL) {
        free(s);
        if (f) {
            fclose(f);
        }
        return -1;
    }
    fputs(s, f);
    fputc('\n', f);
    free(s);
    rc = fclose(f);
    return rc == 0 ? 0 : -1;
}


static int
lg_write_requests(const lg_config_t *cf, const lg_workload_t *wl,
    const lg_requests_t *reqs)
{
    char                 path[1400], *s;
    FILE                *f;
    const lg_request_t  *q;
    const lg_prompt_t   *p;
    cJSON               *o;
    double               S = cf->time_scale, sum;
    size_t               i, j;
    long                 out;

    snprintf(path, sizeof(path), "%s/per_request_lifecycle_metrics.jsonl",
             cf->out_dir);
    f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    for (i = 0; i < reqs->n; i++) {
        q = &reqs->v[i];
        p = &wl->prompts[q->prompt];
        out = lg_out_tokens(q);
        o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double) q->id);
        cJSON_AddNumberToObject(o, "stage", q->stage);
        cJSON_AddNumberToObject(o, "group", p->group);
        cJSON_AddNumberToObject(o, "prompt", p->index);
        cJSON_AddNumberToObject(o, "scheduled", q->scheduled * S);
        lg_add_num(o, "sent", q->sent > 0 ? q->sent * S : NAN);
        lg_add_num(o, "send_lag_ms", q->sent > 0
                   ? (q->sent - q->scheduled) * 1000 : NAN);
        lg_add_num(o, "time_to_first_token", q->ok && q->first_token > 0
                   ? (q->first_token - q->sent) * S : NAN);
        lg_add_num(o, "request_latency", q->end > 0 && q->sent > 0
                   ? (q->end - q->sent) * S : NAN);
        lg_add_num(o, "time_per_output_token", q->ok && out > 1
                   ? (q->last_token - q->first_token) * S / (out - 1) : NAN);
        sum = 0;
        for (j = 0; j < q->nitl; j++) {
            sum += q->itl[j];
        }
        lg_add_num(o, "inter_token_latency_mean",
                   q->nitl ? sum * S / q->nitl : NAN);
        cJSON_AddNumberToObject(o, "input_tokens",
                                (double) lg_in_tokens(wl, q));
        cJSON_AddNumberToObject(o, "output_tokens", (double) out);
        cJSON_AddNumberToObject(o, "cached_tokens", (double) q->usage_cached);
        cJSON_AddNumberToObject(o, "stream_events", (double) q->events);
        if (cf->mode == LG_MODE_IP_V02) {
            /* inference-perf's view: its TTFT, its tokens, the lines */
            lg_add_num(o, "ttft_first_line", q->ok && q->lines.lines > 1
                       ? (q->lines.first - q->sent) * S : NAN);
            cJSON_AddNumberToObject(o, "stream_lines",
                                    (double) q->lines.lines);
            cJSON_AddNumberToObject(o, "output_tokens_counted",
                                    (double) q->text_tokens);
        }
        cJSON_AddNumberToObject(o, "status", q->status);
        cJSON_AddBoolToObject(o, "ok", q->ok);
        if (q->error[0]) {
            cJSON_AddStringToObject(o, "error", q->error);
        }
        if (q->server[0]) {
            cJSON_AddStringToObject(o, "server", q->server);
        }
        if (q->have_gw_queue) {
            /* time the gateway held it (flow control), in the request's
               TTFT and latency */
            cJSON_AddNumberToObject(o, "gateway_queue", q->gw_queue * S);
        }
        s = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (s == NULL) {
            fclose(f);
            return -1;
        }
        fprintf(f, "%s\n", s);
        free(s);
    }
    return fclose(f) == 0 ? 0 : -1;
}


int
lg_report_write(const lg_config_t *cf, const lg_workload_t *wl,
    const lg_requests_t *reqs, const lg_self_t *self, char *err,
    size_t errlen)
{
    cJSON  *all, *stages, *one, *sum;
    char    name[64], path[1400];
    FILE   *f;
    int     i;

    if (mkdir(cf->out_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", cf->out_dir, strerror(errno));
        return -1;
    }

    all = cJSON_CreateObject();
    cJSON_AddStringToObject(all, "name", cf->name);
    sum = cJSON_AddObjectToObject(all, "summary");
    cJSON_AddItemToObject(sum, "metrics", lg_metrics_json(cf, wl, reqs, -1));
    if (cf->mode == LG_MODE_IP_V02) {
        cJSON_AddItemToObject(sum, "inference_perf",
                              lg_ip_json(cf, wl, reqs, -1));
    }
    stages = cJSON_AddArrayToObject(all, "stages");
    for (i = 0; i < cf->nstages; i++) {
        one = lg_stage_json(cf, i);
        cJSON_AddItemToObject(one, "metrics", lg_metrics_json(cf, wl, reqs, i));
        if (cf->mode == LG_MODE_IP_V02) {
            cJSON_AddItemToObject(one, "inference_perf",
                                  lg_ip_json(cf, wl, reqs, i));
        }
        cJSON_AddItemToArray(stages, one);
        snprintf(name, sizeof(name), "stage_%d_lifecycle_metrics.json", i);
        if (lg_write_json(cf->out_dir, name, one) != 0) {
            goto fail;
        }
    }
    cJSON_AddItemToObject(all, "loadgen", lg_self_json(cf, wl, self));

    if (lg_write_json(cf->out_dir, "summary_lifecycle_metrics.json", sum) != 0
        || lg_write_json(cf->out_dir, "report.json", all) != 0
        || lg_write_requests(cf, wl, reqs) != 0
        || (cf->mode == LG_MODE_IP_V02 && lg_ip_write(cf, all) != 0))
    {
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/report.yaml", cf->out_dir);
    f = fopen(path, "w");
    if (f == NULL) {
        goto fail;
    }
    fprintf(f, "# llmd-loadgen report; times in simulated seconds"
            " (wall x time_scale)\n");
    for (one = all->child; one != NULL; one = one->next) {
        fprintf(f, "%s:", one->string);
        lg_yaml_emit(f, one, 2, 0);
    }
    if (fclose(f) != 0) {
        goto fail;
    }
    cJSON_Delete(all);
    return 0;

fail:
    snprintf(err, errlen, "writing the report in %s: %s", cf->out_dir,
             strerror(errno));
    cJSON_Delete(all);
    return -1;
}
