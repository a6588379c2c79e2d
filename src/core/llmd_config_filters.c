/*
 * Parameters of the filter plugins (docs/scheduling.md, "Filters"): the
 * llm-d.ai/role filters, by-label, the Kubernetes label selector of
 * label-selector-filter (alias by-label-selector) and utilization-filter.
 * A label filter becomes a list of label requirements (llmd_selector_t),
 * run by llmd_filters.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/llmd_config_params.h"
#include "core/llmd_param.h"


typedef struct {
    const char          *type;
    int                  absent_ok;
    const char *const   *values;
} llmd_role_filter_t;


static int llmd_role_filter(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
static int llmd_by_label(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
static int llmd_label_selector(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
static int llmd_match_expression(llmd_yaml_ctx_t *ctx,
    yaml_document_t *doc, yaml_node_t *item, llmd_selector_t *sel);
static int llmd_utilization(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
static int llmd_affinity(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
static int llmd_opt_number(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *params, const char *key, double *out);
static llmd_label_req_t *llmd_selector_add(llmd_yaml_ctx_t *ctx,
    yaml_node_t *node, llmd_selector_t *sel, const char *key,
    llmd_label_op_t op);
static int llmd_req_add_value(llmd_yaml_ctx_t *ctx, yaml_node_t *node,
    llmd_label_req_t *r, const char *value);
static int llmd_label_values(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *list, const char *what, llmd_label_req_t *r, int check);
static int llmd_check_label(llmd_yaml_ctx_t *ctx, yaml_node_t *node,
    const char *s, int key);
static int llmd_label_name(const char *s, size_t len);
static int llmd_alnum(int c);


/* llm-d.ai/role values each role filter keeps (llm-d's bylabel/roles.go) */
static const char *const  llmd_decode_roles[] = {
    "decode", "prefill-decode", "both", "encode-prefill-decode", NULL
};
static const char *const  llmd_prefill_roles[] = {
    "prefill", "encode-prefill", "prefill-decode", "both",
    "encode-prefill-decode", NULL
};
static const char *const  llmd_encode_roles[] = {
    "encode", "encode-prefill", "encode-prefill-decode", NULL
};

static const llmd_role_filter_t  llmd_role_filters[] = {
    /* decode-filter also keeps endpoints without the role label */
    { "decode-filter", 1, llmd_decode_roles },
    { "prefill-filter", 0, llmd_prefill_roles },
    { "encode-filter", 0, llmd_encode_roles },
    { NULL, 0, NULL }
};


int
llmd_filter_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    if (p->type == LLMD_PLUGIN_UTILIZATION_FILTER) {
        return llmd_utilization(ctx, cf, doc, params, p);
    }

    if (p->type == LLMD_PLUGIN_PREFIX_AFFINITY_FILTER) {
        return llmd_affinity(ctx, cf, doc, params, p);
    }

    if (strcmp(p->type_name, "by-label") == 0) {
        return llmd_by_label(ctx, cf, doc, params, p);
    }

    if (strcmp(p->type_name, "label-selector-filter") == 0
        || strcmp(p->type_name, "by-label-selector") == 0)
    {
        return llmd_label_selector(ctx, cf, doc, params, p);
    }

    return llmd_role_filter(ctx, cf, doc, params, p);
}


static int
llmd_role_filter(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    size_t                     i;
    llmd_label_req_t          *r;
    const llmd_role_filter_t  *rf;
    static const char *const   none[] = { NULL };

    for (rf = llmd_role_filters; rf->type != NULL; rf++) {
        if (strcmp(rf->type, p->type_name) == 0) {
            break;
        }
    }

    if (rf->type == NULL) {
        return llmd_yaml_error(ctx, params, "%s: no such role filter",
                               p->type_name);
    }

    r = llmd_selector_add(ctx, params, &p->u.selector, "llm-d.ai/role",
                          LLMD_LABEL_ONE_OF);
    if (r == NULL) {
        return -1;
    }

    r->absent_ok = rf->absent_ok;

    for (i = 0; rf->values[i] != NULL; i++) {
        if (llmd_req_add_value(ctx, params, r, rf->values[i]) != 0) {
            return -1;
        }
    }

    return llmd_param_warn_unknown(cf, doc, params, p, none);
}


/* by-label (deprecated): label, validValues, allowsNoLabel. */
static int
llmd_by_label(llmd_yaml_ctx_t *ctx, llmd_config_t *cf, yaml_document_t *doc,
    yaml_node_t *params, llmd_plugin_t *p)
{
    const char                *label;
    yaml_node_t               *n, *where;
    llmd_label_req_t          *r;
    static const char *const   known[] = {
        "label", "validValues", "allowsNoLabel", NULL
    };

    where = params;
    label = "";

    n = llmd_yaml_get(doc, params, "label");
    if (n != NULL && !llmd_yaml_is_null(n)) {
        if (llmd_yaml_string(ctx, n, "label", &label) != 0) {
            return -1;
        }

        where = n;
    }

    if (label[0] == '\0') {
        if (where == NULL) {
            snprintf(ctx->err, ctx->errlen, "%s:%d: invalid configuration "
                     "for 'by-label' filter: 'label' must be specified",
                     ctx->file, p->line);
            return -1;
        }

        return llmd_yaml_error(ctx, where, "invalid configuration for "
                               "'by-label' filter: 'label' must be "
                               "specified");
    }

    r = llmd_selector_add(ctx, where, &p->u.selector, label,
                          LLMD_LABEL_ONE_OF);
    if (r == NULL) {
        return -1;
    }

    n = llmd_yaml_get(doc, params, "allowsNoLabel");
    if (n != NULL && !llmd_yaml_is_null(n)
        && llmd_yaml_bool(ctx, n, "allowsNoLabel", &r->absent_ok) != 0)
    {
        return -1;
    }

    if (llmd_label_values(ctx, doc, llmd_yaml_get(doc, params, "validValues"),
                          "validValues", r, 0)
        != 0)
    {
        return -1;
    }

    if (r->nvalues == 0 && !r->absent_ok) {
        return llmd_yaml_error(ctx, where, "invalid configuration for "
                               "'by-label' filter: either 'validValues' "
                               "must be non-empty or 'allowsNoLabel' must "
                               "be true");
    }

    return llmd_param_warn_unknown(cf, doc, params, p, known);
}


/*
 * A Kubernetes LabelSelector: matchLabels (key: value, all must match) and
 * matchExpressions ({key, operator In|NotIn|Exists|DoesNotExist, values}).
 * No requirement at all selects every endpoint.
 */
static int
llmd_label_selector(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    const char                *key, *value;
    yaml_node_t               *ml, *me, *kn, *vn;
    llmd_label_req_t          *r;
    yaml_node_item_t          *it;
    yaml_node_pair_t          *pair;
    static const char *const   known[] = {
        "matchLabels", "matchExpressions", NULL
    };

    ml = llmd_yaml_get(doc, params, "matchLabels");
    if (ml != NULL && !llmd_yaml_is_null(ml)) {
        if (ml->type != YAML_MAPPING_NODE) {
            return llmd_yaml_error(ctx, ml, "matchLabels must be a mapping "
                                   "of label keys to values");
        }

        for (pair = ml->data.mapping.pairs.start;
             pair < ml->data.mapping.pairs.top;
             pair++)
        {
            kn = yaml_document_get_node(doc, pair->key);
            vn = yaml_document_get_node(doc, pair->value);

            if (llmd_yaml_string(ctx, kn, "a matchLabels key", &key) != 0
                || llmd_yaml_string(ctx, vn, "a matchLabels value", &value)
                   != 0
                || llmd_check_label(ctx, kn, key, 1) != 0
                || llmd_check_label(ctx, vn, value, 0) != 0)
            {
                return -1;
            }

            r = llmd_selector_add(ctx, kn, &p->u.selector, key,
                                  LLMD_LABEL_IN);
            if (r == NULL || llmd_req_add_value(ctx, vn, r, value) != 0) {
                return -1;
            }
        }
    }

    me = llmd_yaml_get(doc, params, "matchExpressions");
    if (me != NULL && !llmd_yaml_is_null(me)) {
        if (me->type != YAML_SEQUENCE_NODE) {
            return llmd_yaml_error(ctx, me, "matchExpressions must be a "
                                   "list");
        }

        for (it = me->data.sequence.items.start;
             it < me->data.sequence.items.top;
             it++)
        {
            if (llmd_match_expression(ctx, doc,
                                      yaml_document_get_node(doc, *it),
                                      &p->u.selector)
                != 0)
            {
                return -1;
            }
        }
    }

    return llmd_param_warn_unknown(cf, doc, params, p, known);
}


static int
llmd_match_expression(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *item, llmd_selector_t *sel)
{
    size_t             i;
    const char        *key, *op;
    yaml_node_t       *kn, *on, *vn;
    llmd_label_req_t  *r;
    static const struct {
        const char       *name;
        llmd_label_op_t   op;
    } ops[] = {
        { "In", LLMD_LABEL_IN },
        { "NotIn", LLMD_LABEL_NOT_IN },
        { "Exists", LLMD_LABEL_EXISTS },
        { "DoesNotExist", LLMD_LABEL_NOT_EXISTS },
    };

    if (item == NULL || item->type != YAML_MAPPING_NODE) {
        return llmd_yaml_error(ctx, item, "a match expression must be a "
                               "mapping with key, operator and values");
    }

    kn = llmd_yaml_get(doc, item, "key");
    on = llmd_yaml_get(doc, item, "operator");
    vn = llmd_yaml_get(doc, item, "values");

    key = "";
    op = "";

    if ((kn != NULL && llmd_yaml_string(ctx, kn, "key", &key) != 0)
        || (on != NULL && llmd_yaml_string(ctx, on, "operator", &op) != 0))
    {
        return -1;
    }

    if (llmd_check_label(ctx, kn ? kn : item, key, 1) != 0) {
        return -1;
    }

    for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        if (strcmp(ops[i].name, op) == 0) {
            break;
        }
    }

    if (i == sizeof(ops) / sizeof(ops[0])) {
        return llmd_yaml_error(ctx, on ? on : item, "\"%s\" is not a valid "
                               "label selector operator (In, NotIn, "
                               "Exists, DoesNotExist)", op);
    }

    r = llmd_selector_add(ctx, item, sel, key, ops[i].op);
    if (r == NULL
        || llmd_label_values(ctx, doc, vn, "values", r, 1) != 0)
    {
        return -1;
    }

    /* as Kubernetes' labels.NewRequirement */
    if ((r->op == LLMD_LABEL_IN || r->op == LLMD_LABEL_NOT_IN)
        && r->nvalues == 0)
    {
        return llmd_yaml_error(ctx, item, "values: Required value: for 'in', "
                               "'notin' operators, values set can't be "
                               "empty");
    }

    if ((r->op == LLMD_LABEL_EXISTS || r->op == LLMD_LABEL_NOT_EXISTS)
        && r->nvalues != 0)
    {
        return llmd_yaml_error(ctx, vn, "values: Forbidden: may not be "
                               "specified when `operator` is 'Exists' or "
                               "'DoesNotExist'");
    }

    return 0;
}


/* utilization-filter: conditions[{metric, maxValue}], fallbackOnEmpty. */
static int
llmd_utilization(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    size_t                     i, n;
    double                     max;
    const char                *metric;
    yaml_node_t               *list, *item, *mn, *vn, *fn;
    llmd_util_cond_t          *c;
    yaml_node_item_t          *it;
    static const char *const   names[] = {
        "active-requests", "running-requests", "waiting-queue",
        "kv-cache-utilization"
    };
    static const char *const   known[] = {
        "conditions", "fallbackOnEmpty", "inFlightLoadProducerName", NULL
    };

    list = llmd_yaml_get(doc, params, "conditions");

    n = 0;
    if (list != NULL && list->type == YAML_SEQUENCE_NODE) {
        n = list->data.sequence.items.top - list->data.sequence.items.start;

    } else if (list != NULL && !llmd_yaml_is_null(list)) {
        return llmd_yaml_error(ctx, list, "conditions must be a list");
    }

    if (n == 0) {
        snprintf(ctx->err, ctx->errlen, "%s:%d: utilization filter requires "
                 "at least one condition", ctx->file,
                 list ? llmd_yaml_line(list) : p->line);
        return -1;
    }

    if (n > LLMD_CONFIG_MAX_REQS) {
        return llmd_yaml_error(ctx, list, "more than %d conditions",
                               LLMD_CONFIG_MAX_REQS);
    }

    p->u.utilization.conds = calloc(n, sizeof(llmd_util_cond_t));
    if (p->u.utilization.conds == NULL) {
        return llmd_yaml_error(ctx, list, "out of memory");
    }

    for (it = list->data.sequence.items.start;
         it < list->data.sequence.items.top;
         it++)
    {
        item = yaml_document_get_node(doc, *it);
        mn = llmd_yaml_get(doc, item, "metric");
        vn = llmd_yaml_get(doc, item, "maxValue");

        metric = "";
        if (mn != NULL && llmd_yaml_string(ctx, mn, "metric", &metric) != 0)
        {
            return -1;
        }

        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            if (strcmp(names[i], metric) == 0) {
                break;
            }
        }

        if (i == sizeof(names) / sizeof(names[0])) {
            return llmd_yaml_error(ctx, mn ? mn : item, "utilization filter "
                                   "condition metric must be one of "
                                   "\"active-requests\", "
                                   "\"running-requests\", "
                                   "\"waiting-queue\", "
                                   "\"kv-cache-utilization\", got \"%s\"",
                                   metric);
        }

        if (vn == NULL || llmd_yaml_is_null(vn)) {
            return llmd_yaml_error(ctx, item, "utilization filter condition "
                                   "for \"%s\" requires maxValue", metric);
        }

        if (llmd_yaml_number(ctx, vn, "maxValue", &max) != 0) {
            return -1;
        }

        if (!(max >= 0)) {
            return llmd_yaml_error(ctx, vn, "utilization filter condition "
                                   "for \"%s\" requires a non-negative "
                                   "maxValue, got %g", metric, max);
        }

        if (i == LLMD_METRIC_KV_CACHE_UTILIZATION && max > 1) {
            return llmd_yaml_error(ctx, vn, "utilization filter maxValue "
                                   "for \"kv-cache-utilization\" is a "
                                   "fraction and must be at most 1, got %g",
                                   max);
        }

        c = &p->u.utilization.conds[p->u.utilization.nconds++];
        c->metric = (llmd_metric_t) i;
        c->max_value = max;
    }

    fn = llmd_yaml_get(doc, params, "fallbackOnEmpty");
    if (fn != NULL && !llmd_yaml_is_null(fn)
        && llmd_yaml_bool(ctx, fn, "fallbackOnEmpty",
                          &p->u.utilization.fallback_on_empty)
           != 0)
    {
        return -1;
    }

    return llmd_param_warn_unknown(cf, doc, params, p, known);
}


/* A new requirement at the end of sel; NULL with an error. */
static llmd_label_req_t *
llmd_selector_add(llmd_yaml_ctx_t *ctx, yaml_node_t *node,
    llmd_selector_t *sel, const char *key, llmd_label_op_t op)
{
    llmd_label_req_t  *r;

    if (sel->reqs == NULL) {
        sel->reqs = calloc(LLMD_CONFIG_MAX_REQS, sizeof(llmd_label_req_t));
        if (sel->reqs == NULL) {
            llmd_yaml_error(ctx, node, "out of memory");
            return NULL;
        }
    }

    if (sel->nreqs >= LLMD_CONFIG_MAX_REQS) {
        llmd_yaml_error(ctx, node, "more than %d label requirements",
                        LLMD_CONFIG_MAX_REQS);
        return NULL;
    }

    r = &sel->reqs[sel->nreqs++];
    r->op = op;
    r->key = strdup(key);
    r->values = calloc(LLMD_CONFIG_MAX_VALUES, sizeof(char *));

    if (r->key == NULL || r->values == NULL) {
        llmd_yaml_error(ctx, node, "out of memory");
        return NULL;
    }

    return r;
}


static int
llmd_req_add_value(llmd_yaml_ctx_t *ctx, yaml_node_t *node,
    llmd_label_req_t *r, const char *value)
{
    if (r->nvalues >= LLMD_CONFIG_MAX_VALUES) {
        return llmd_yaml_error(ctx, node, "more than %d label values",
                               LLMD_CONFIG_MAX_VALUES);
    }

    r->values[r->nvalues] = strdup(value);
    if (r->values[r->nvalues] == NULL) {
        return llmd_yaml_error(ctx, node, "out of memory");
    }

    r->nvalues++;
    return 0;
}


/* A list of strings into r's values; check: as Kubernetes label values. */
static int
llmd_label_values(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *list, const char *what, llmd_label_req_t *r, int check)
{
    const char        *s;
    yaml_node_t       *vn;
    yaml_node_item_t  *it;

    if (list == NULL || llmd_yaml_is_null(list)) {
        return 0;
    }

    if (list->type != YAML_SEQUENCE_NODE) {
        return llmd_yaml_error(ctx, list, "%s must be a list of strings",
                               what);
    }

    for (it = list->data.sequence.items.start;
         it < list->data.sequence.items.top;
         it++)
    {
        vn = yaml_document_get_node(doc, *it);

        if (llmd_yaml_string(ctx, vn, what, &s) != 0
            || (check && llmd_check_label(ctx, vn, s, 0) != 0)
            || llmd_req_add_value(ctx, vn, r, s) != 0)
        {
            return -1;
        }
    }

    return 0;
}


/*
 * Kubernetes label syntax: a key is [DNS-subdomain prefix "/"] name, a name
 * or a value at most 63 characters of [A-Za-z0-9._-] starting and ending
 * alphanumeric; a value may be empty.
 */
static int
llmd_check_label(llmd_yaml_ctx_t *ctx, yaml_node_t *node, const char *s,
    int key)
{
    size_t       len;
    const char  *slash, *c;

    len = strlen(s);

    if (!key) {
        if (len == 0 || llmd_label_name(s, len)) {
            return 0;
        }

        return llmd_yaml_error(ctx, node, "\"%s\" is not a valid label "
                               "value: at most 63 characters, "
                               "alphanumeric, '-', '_' or '.', starting and "
                               "ending alphanumeric", s);
    }

    slash = strchr(s, '/');

    if (slash != NULL) {
        for (c = s; c < slash; c++) {
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')
                  || *c == '-' || *c == '.'))
            {
                break;
            }
        }

        if (slash == s || c != slash || slash - s > 253) {
            return llmd_yaml_error(ctx, node, "\"%s\" is not a valid label "
                                   "key: the prefix must be a DNS "
                                   "subdomain", s);
        }

        s = slash + 1;
        len = strlen(s);
    }

    if (len == 0 || !llmd_label_name(s, len)) {
        return llmd_yaml_error(ctx, node, "\"%s\" is not a valid label key: "
                               "the name must be at most 63 characters, "
                               "alphanumeric, '-', '_' or '.', starting and "
                               "ending alphanumeric", s);
    }

    return 0;
}


static int
llmd_label_name(const char *s, size_t len)
{
    size_t  i;

    if (len > 63 || !llmd_alnum(s[0]) || !llmd_alnum(s[len - 1])) {
        return 0;
    }

    for (i = 1; i + 1 < len; i++) {
        if (!llmd_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
        {
            return 0;
        }
    }

    return 1;
}


static int
llmd_alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9');
}


/*
 * prefix-cache-affinity-filter: affinityThreshold (0.80, at most 1),
 * explorationProbability (0, in [0, 1]), maxTTFTPenaltyMs (18000, not
 * negative), ttftSource (prefillThroughput; latencyPredictor is refused:
 * no latency predictor here), peakPrefillThroughput (15928 tokens/s, not
 * negative, > 0 when the load gate is on). As llm-d validates them.
 */
static int
llmd_affinity(llmd_yaml_ctx_t *ctx, llmd_config_t *cf, yaml_document_t *doc,
    yaml_node_t *params, llmd_plugin_t *p)
{
    const char                *s;
    yaml_node_t               *n;
    static const char *const   known[] = {
        "affinityThreshold", "explorationProbability", "maxTTFTPenaltyMs",
        "ttftSource", "peakPrefillThroughput", "prefixMatchInfoProducerName",
        "latencyPredictionInfoProducerName", "inFlightLoadProducerName",
        NULL
    };

    p->u.affinity.affinity_threshold = 0.80;
    p->u.affinity.exploration = 0;
    p->u.affinity.max_ttft_penalty_ms = 18000;
    p->u.affinity.peak_prefill_throughput = 15928;

    if (llmd_opt_number(ctx, doc, params, "affinityThreshold",
                        &p->u.affinity.affinity_threshold) != 0
        || llmd_opt_number(ctx, doc, params, "explorationProbability",
                           &p->u.affinity.exploration) != 0
        || llmd_opt_number(ctx, doc, params, "maxTTFTPenaltyMs",
                           &p->u.affinity.max_ttft_penalty_ms) != 0
        || llmd_opt_number(ctx, doc, params, "peakPrefillThroughput",
                           &p->u.affinity.peak_prefill_throughput) != 0)
    {
        return -1;
    }

    if (p->u.affinity.affinity_threshold > 1.0) {
        return llmd_yaml_error(ctx, llmd_yaml_get(doc, params,
                                                  "affinityThreshold"),
                               "affinityThreshold must be <= 1.0, got %f",
                               p->u.affinity.affinity_threshold);
    }

    if (p->u.affinity.exploration < 0 || p->u.affinity.exploration > 1.0) {
        return llmd_yaml_error(ctx, llmd_yaml_get(doc, params,
                                                  "explorationProbability"),
                               "explorationProbability must be in [0, 1], "
                               "got %f", p->u.affinity.exploration);
    }

    if (p->u.affinity.max_ttft_penalty_ms < 0) {
        return llmd_yaml_error(ctx, llmd_yaml_get(doc, params,
                                                  "maxTTFTPenaltyMs"),
                               "maxTTFTPenaltyMs must be >= 0, got %f",
                               p->u.affinity.max_ttft_penalty_ms);
    }

    if (p->u.affinity.peak_prefill_throughput < 0) {
        return llmd_yaml_error(ctx, llmd_yaml_get(doc, params,
                                                  "peakPrefillThroughput"),
                               "peakPrefillThroughput must be >= 0, got %f",
                               p->u.affinity.peak_prefill_throughput);
    }

    n = llmd_yaml_get(doc, params, "ttftSource");
    if (n != NULL && !llmd_yaml_is_null(n)) {
        if (llmd_yaml_string(ctx, n, "ttftSource", &s) != 0) {
            return -1;
        }

        if (strcmp(s, "latencyPredictor") == 0) {
            return llmd_yaml_error(ctx, n, "ttftSource \"latencyPredictor\" "
                                   "is not supported by "
                                   "ngx_http_llmd_module (no latency "
                                   "predictor): use \"prefillThroughput\"");
        }

        if (strcmp(s, "prefillThroughput") != 0) {
            return llmd_yaml_error(ctx, n, "ttftSource must be "
                                   "\"latencyPredictor\" or "
                                   "\"prefillThroughput\", got \"%s\"", s);
        }
    }

    if (p->u.affinity.max_ttft_penalty_ms > 0
        && p->u.affinity.peak_prefill_throughput == 0)
    {
        return llmd_yaml_error(ctx, params, "peakPrefillThroughput must be "
                               "> 0 when ttftSource is prefillThroughput");
    }

    return llmd_param_warn_unknown(cf, doc, params, p, known);
}


/* A number parameter; absent or null leaves *out. */
static int
llmd_opt_number(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *params, const char *key, double *out)
{
    yaml_node_t  *n;

    n = llmd_yaml_get(doc, params, key);
    if (n == NULL || llmd_yaml_is_null(n)) {
        return 0;
    }

    return llmd_yaml_number(ctx, n, key, out);
}
