/*
 * The vLLM gauges a scheduler reads, from a Prometheus text exposition
 * (format 0.0.4; docs/parsers.md, "Metrics").
 *
 * One pass over the text, no allocation, work linear in its length. A line
 * is "name[{labels}] value [timestamp]"; '#' lines (HELP, TYPE, comments)
 * and lines that do not parse are skipped, so garbage costs nothing but
 * the scan. The first usable series of each metric in exposition order
 * wins: vLLM exposes no timestamps, and llm-d takes the newest sample,
 * which is then the first one. NaN, infinite and negative gauges are not
 * usable (the next series may be).
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/llmd_prom.h"


/* longest sample value we parse ("-1.7976931348623157e+308" is 24) */
#define LLMD_PROM_VALUE_MAX  64


typedef struct {
    const char  *p;
    const char  *last;
} llmd_span_t;


/* the label values of vllm:cache_config_info that matter */
typedef struct {
    llmd_span_t  block_size;
    llmd_span_t  num_gpu_blocks;
    unsigned     have_block_size:1;
    unsigned     have_num_gpu_blocks:1;
    /* vllm:lora_requests_info */
    llmd_span_t  running;
    llmd_span_t  waiting;
    llmd_span_t  max_lora;
    unsigned     have_running:1;
    unsigned     have_waiting:1;
    unsigned     have_max_lora:1;
} llmd_prom_labels_t;


typedef enum {
    LLMD_PROM_OTHER = 0,
    LLMD_PROM_WAITING,
    LLMD_PROM_RUNNING,
    LLMD_PROM_KV,
    LLMD_PROM_GPU,
    LLMD_PROM_CACHE_INFO,
    LLMD_PROM_LORA
} llmd_prom_metric_t;


static int llmd_prom_line(const char *p, const char *last,
    llmd_prom_metric_t *metric, llmd_prom_labels_t *labels, double *value);
static llmd_prom_metric_t llmd_prom_metric(const char *name, size_t len);
static const char *llmd_prom_labels(const char *p, const char *last,
    llmd_prom_labels_t *labels);
static int llmd_prom_value(const char *p, const char *last, double *value);
static int llmd_prom_uint32(llmd_span_t *s, uint32_t *value);
static void llmd_prom_list(const llmd_span_t *s, char *out);


int
llmd_prom_parse_vllm(const char *text, size_t len,
    llmd_vllm_metrics_t *out, char *err, size_t errlen)
{
    int                  have_gpu;
    double               value, gpu, lora_time;
    size_t               samples, comments;
    uint32_t             n;
    const char          *p, *eol, *last, *q;
    llmd_prom_metric_t   metric;
    llmd_prom_labels_t   labels;

    memset(out, 0, sizeof(llmd_vllm_metrics_t));

    if (errlen) {
        err[0] = '\0';
    }

    if (text == NULL || len == 0) {
        snprintf(err, errlen, "empty metrics body");
        return -1;
    }

    have_gpu = 0;
    gpu = 0;
    lora_time = 0;
    samples = 0;
    comments = 0;

    last = text + len;

    for (p = text; p < last; p = eol + 1) {

        eol = memchr(p, '\n', last - p);
        if (eol == NULL) {
            eol = last;
        }

        /* CRLF, and blanks around the line */

        q = eol;

        while (q > p && (q[-1] == '\r' || q[-1] == ' ' || q[-1] == '\t')) {
            q--;
        }

        while (p < q && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == q) {
            continue;
        }

        if (*p == '#') {
            comments++;
            continue;
        }

        if (llmd_prom_line(p, q, &metric, &labels, &value) != 0) {
            continue;
        }

        samples++;

        switch (metric) {

        case LLMD_PROM_WAITING:
            if (!out->have_waiting && value >= 0 && isfinite(value)) {
                out->waiting = value;
                out->have_waiting = 1;
            }
            break;

        case LLMD_PROM_RUNNING:
            if (!out->have_running && value >= 0 && isfinite(value)) {
                out->running = value;
                out->have_running = 1;
            }
            break;

        case LLMD_PROM_KV:
            if (!out->have_kv && value >= 0 && isfinite(value)) {
                out->kv_usage = value;
                out->have_kv = 1;
            }
            break;

        case LLMD_PROM_GPU:
            if (!have_gpu && value >= 0 && isfinite(value)) {
                gpu = value;
                have_gpu = 1;
            }
            break;

        case LLMD_PROM_CACHE_INFO:
            if (out->have_cache_info) {
                break;
            }

            /* "None" before the engine is initialised: not usable */

            if (labels.have_block_size
                && llmd_prom_uint32(&labels.block_size, &n) == 0 && n > 0)
            {
                out->block_size = n;
                out->have_cache_info = 1;
            }

            if (labels.have_num_gpu_blocks
                && llmd_prom_uint32(&labels.num_gpu_blocks, &n) == 0
                && n > 0)
            {
                out->num_gpu_blocks = n;
                out->have_cache_info = 1;
            }

            break;

        case LLMD_PROM_LORA:
            /* one series per adapter state, valued by when it was set */
            if (!isfinite(value) || (out->have_lora && value <= lora_time)
                || !labels.have_max_lora
                || llmd_prom_uint32(&labels.max_lora, &n) != 0)
            {
                break;
            }

            out->have_lora = 1;
            out->lora_max = n;
            lora_time = value;
            llmd_prom_list(labels.have_running ? &labels.running : NULL,
                           out->lora_running);
            llmd_prom_list(labels.have_waiting ? &labels.waiting : NULL,
                           out->lora_waiting);
            break;

        default:
            break;
        }
    }

    /* the old name only when the new one is absent from the whole text */
    if (!out->have_kv && have_gpu) {
        out->kv_usage = gpu;
        out->have_kv = 1;
    }

    if (out->have_kv && out->kv_usage > 1) {
        out->kv_usage = 1;
    }

    if (out->have_waiting || out->have_running || out->have_kv) {
        return 0;
    }

    if (samples == 0 && comments == 0) {
        snprintf(err, errlen, "not Prometheus text exposition");

    } else {
        snprintf(err, errlen, "no vLLM metrics (vllm:num_requests_waiting, "
                 "vllm:num_requests_running, vllm:kv_cache_usage_perc)");
    }

    return -1;
}


/*
 * One sample line p..last (no newline, blanks trimmed): returns 0 with the
 * metric, its interesting labels and its value, or -1 when it does not
 * parse.
 */
static int
llmd_prom_line(const char *p, const char *last, llmd_prom_metric_t *metric,
    llmd_prom_labels_t *labels, double *value)
{
    char         c;
    const char  *name, *v;

    memset(labels, 0, sizeof(llmd_prom_labels_t));

    /* metric name: [a-zA-Z_:][a-zA-Z0-9_:]* */

    name = p;

    for ( /* void */ ; p < last; p++) {
        c = *p;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
            || c == ':' || (c >= '0' && c <= '9' && p != name))
        {
            continue;
        }

        break;
    }

    if (p == name) {
        return -1;
    }

    /* the name ends at blanks or labels: "vllm:x-y 1" is no sample */
    if (p < last && *p != ' ' && *p != '\t' && *p != '{') {
        return -1;
    }

    *metric = llmd_prom_metric(name, p - name);

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (p < last && *p == '{') {
        p = llmd_prom_labels(p + 1, last, labels);
        if (p == NULL) {
            return -1;
        }

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }
    }

    /* value, then an optional timestamp which is ignored */

    v = p;

    while (p < last && *p != ' ' && *p != '\t') {
        p++;
    }

    if (llmd_prom_value(v, p, value) != 0) {
        return -1;
    }

    return 0;
}


static llmd_prom_metric_t
llmd_prom_metric(const char *name, size_t len)
{
    static const struct {
        const char          *name;
        size_t               len;
        llmd_prom_metric_t   metric;
    } metrics[] = {
#define LLMD_PROM_NAME(s, m)  { s, sizeof(s) - 1, m }
        LLMD_PROM_NAME("vllm:num_requests_waiting", LLMD_PROM_WAITING),
        LLMD_PROM_NAME("vllm:num_requests_running", LLMD_PROM_RUNNING),
        LLMD_PROM_NAME("vllm:kv_cache_usage_perc", LLMD_PROM_KV),
        LLMD_PROM_NAME("vllm:gpu_cache_usage_perc", LLMD_PROM_GPU),
        LLMD_PROM_NAME("vllm:cache_config_info", LLMD_PROM_CACHE_INFO),
        LLMD_PROM_NAME("vllm:lora_requests_info", LLMD_PROM_LORA),
#undef LLMD_PROM_NAME
    };
    size_t  i;

    if (len < 5 || memcmp(name, "vllm:", 5) != 0) {
        return LLMD_PROM_OTHER;
    }

    for (i = 0; i < sizeof(metrics) / sizeof(metrics[0]); i++) {
        if (len == metrics[i].len && memcmp(name, metrics[i].name, len) == 0)
        {
            return metrics[i].metric;
        }
    }

    return LLMD_PROM_OTHER;
}


/*
 * Labels after '{': name="value" pairs separated by ',' (a trailing comma
 * is allowed), values with \\ \" \n escapes, so ',' and '}' inside quotes
 * are part of the value. Returns the position after '}' or NULL.
 */
static const char *
llmd_prom_labels(const char *p, const char *last, llmd_prom_labels_t *labels)
{
    char          c;
    const char   *name, *value;
    size_t        len;

    for ( ;; ) {
        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == last) {
            return NULL;
        }

        if (*p == '}') {
            return p + 1;
        }

        /* label name: [a-zA-Z_][a-zA-Z0-9_]* */

        name = p;

        for ( /* void */ ; p < last; p++) {
            c = *p;

            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'
                || (c >= '0' && c <= '9' && p != name))
            {
                continue;
            }

            break;
        }

        len = p - name;

        if (len == 0) {
            return NULL;
        }

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == last || *p != '=') {
            return NULL;
        }

        p++;

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == last || *p != '"') {
            return NULL;
        }

        value = ++p;

        while (p < last && *p != '"') {
            if (*p == '\\') {
                if (p + 1 == last) {
                    return NULL;
                }

                p++;
            }

            p++;
        }

        if (p == last) {
            return NULL;
        }

        if (len == sizeof("block_size") - 1
            && memcmp(name, "block_size", len) == 0
            && !labels->have_block_size)
        {
            labels->block_size.p = value;
            labels->block_size.last = p;
            labels->have_block_size = 1;

        } else if (len == sizeof("num_gpu_blocks") - 1
                   && memcmp(name, "num_gpu_blocks", len) == 0
                   && !labels->have_num_gpu_blocks)
        {
            labels->num_gpu_blocks.p = value;
            labels->num_gpu_blocks.last = p;
            labels->have_num_gpu_blocks = 1;

        } else if (len == sizeof("running_lora_adapters") - 1
                   && memcmp(name, "running_lora_adapters", len) == 0)
        {
            labels->running.p = value;
            labels->running.last = p;
            labels->have_running = 1;

        } else if (len == sizeof("waiting_lora_adapters") - 1
                   && memcmp(name, "waiting_lora_adapters", len) == 0)
        {
            labels->waiting.p = value;
            labels->waiting.last = p;
            labels->have_waiting = 1;

        } else if (len == sizeof("max_lora") - 1
                   && memcmp(name, "max_lora", len) == 0)
        {
            labels->max_lora.p = value;
            labels->max_lora.last = p;
            labels->have_max_lora = 1;
        }

        p++;    /* closing quote */

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        if (p == last) {
            return NULL;
        }

        if (*p == ',') {
            p++;
            continue;
        }

        if (*p != '}') {
            return NULL;
        }
    }
}


/*
 * A sample value: a Go/Python float, "NaN", "+Inf", "-Inf". strtod()
 * needs a terminated string, so the value is copied; longer values are
 * rejected. Hexadecimal forms are rejected as Prometheus does not write
 * them.
 */
static int
llmd_prom_value(const char *p, const char *last, double *value)
{
    char    buf[LLMD_PROM_VALUE_MAX + 1], *end;
    size_t  len, i;

    len = last - p;

    if (len == 0 || len > LLMD_PROM_VALUE_MAX) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (p[i] == 'x' || p[i] == 'X' || p[i] == '\0') {
            return -1;
        }
    }

    memcpy(buf, p, len);
    buf[len] = '\0';

    *value = strtod(buf, &end);

    if (end != buf + len) {
        return -1;
    }

    return 0;
}


/* a label value of decimal digits only, at most 2^32 - 1 */
static int
llmd_prom_uint32(llmd_span_t *s, uint32_t *value)
{
    uint64_t     n;
    const char  *p;

    if (s->p == s->last) {
        return -1;
    }

    n = 0;

    for (p = s->p; p < s->last; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        n = n * 10 + (*p - '0');

        if (n > UINT32_MAX) {
            return -1;
        }
    }

    *value = (uint32_t) n;
    return 0;
}


/*
 * An adapter list label value into out[LLMD_LORA_LEN]: as exposed, cut
 * after the last whole name that fits; escapes and quotes are dropped (no
 * adapter name holds them). s NULL: empty.
 */
static void
llmd_prom_list(const llmd_span_t *s, char *out)
{
    size_t       n, comma;
    const char  *p;

    n = 0;
    comma = 0;

    for (p = s ? s->p : NULL; s && p < s->last; p++) {
        if (*p == '\\' || *p == '"') {
            continue;
        }

        if (n == LLMD_LORA_LEN - 1) {
            n = comma;
            break;
        }

        if (*p == ',') {
            comma = n;
        }

        out[n++] = *p;
    }

    out[n] = '\0';
}
