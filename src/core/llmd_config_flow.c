/*
 * Flow control in an EndpointPickerConfig (docs/flow-control.md), read as
 * llm-d reads it:
 *
 *   featureGates: [flowControl]        "name", "name=true", "name=false"
 *   flowControl:                       only with the gate, except
 *     maxBytes, maxRequests            saturationDetector (Kubernetes
 *     defaultRequestTTL                quantities and Go durations)
 *     noEndpointRequestTTL
 *     defaultPriorityBand, defaultNegativePriorityBand, priorityBands
 *     usageLimitPolicyPluginRef, saturationDetector, enableEviction
 *   saturationDetector: {pluginRef}    deprecated; flowControl's wins
 *
 * and the parameters of the saturation detector and policy plugins.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/llmd_config_params.h"
#include "core/llmd_param.h"


static int llmd_flow_quantity(llmd_yaml_ctx_t *ctx, yaml_node_t *n,
    const char *what, uint64_t *out);
static int llmd_flow_band(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *n, const char *what, int need_prio,
    llmd_flow_band_t *band);
static int llmd_flow_gates(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *list);
static int llmd_flow_detector(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *root, yaml_node_t *fc);
static int llmd_flow_check_keys(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *map, const char *what, const char *const *known);


int
llmd_flow_plugin_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    double                    v;
    uint64_t                  ms;
    const char               *s;
    yaml_node_t              *n;
    llmd_sat_params_t        *sp;
    char                      err[LLMD_ERRLEN];
    static const char *const  none[] = { NULL };
    static const char *const  util[] = {
        "queueDepthThreshold", "kvCacheUtilThreshold",
        "metricsStalenessThreshold", "headroom", NULL
    };
    static const char *const  conc[] = {
        "concurrencyMode", "maxConcurrency", "maxTokenConcurrency",
        "headroom", "inFlightLoadProducerName", NULL
    };

    if (p->type == LLMD_PLUGIN_FAIRNESS_POLICY) {
        p->u.fairness = strcmp(p->type_name, "round-robin-fairness-policy")
                        == 0 ? LLMD_FAIR_ROUND_ROBIN
                             : LLMD_FAIR_GLOBAL_STRICT;
        return llmd_param_warn_unknown(cf, doc, params, p, none);
    }

    if (p->type != LLMD_PLUGIN_SATURATION_DETECTOR) {
        /* ordering and usage-limit policies run with their defaults */
        if (params != NULL
            && llmd_config_warn(cf, p->line, "parameters of plugin \"%s\" "
                                "(%s) are not used; ignored", p->name,
                                p->type_name)
               != 0)
        {
            return -1;
        }

        return 0;
    }

    sp = &p->u.saturation;

    if (strcmp(p->type_name, "concurrency-detector") == 0) {
        llmd_sat_defaults(sp, LLMD_SAT_CONCURRENCY);

        n = llmd_yaml_get(doc, params, "concurrencyMode");
        if (n != NULL && !llmd_yaml_is_null(n)) {
            if (llmd_yaml_string(ctx, n, "concurrencyMode", &s) != 0) {
                return -1;
            }

            if (strcmp(s, "requests") == 0) {
                sp->mode = LLMD_SAT_MODE_REQUESTS;

            } else if (strcmp(s, "tokens") == 0
                       || strcmp(s, "hybrid") == 0)
            {
                sp->mode = s[0] == 't' ? LLMD_SAT_MODE_TOKENS
                                       : LLMD_SAT_MODE_HYBRID;
                if (llmd_config_warn(cf, llmd_yaml_line(n), "plugin \"%s\": "
                                     "concurrencyMode \"%s\" counts "
                                     "requests here (no token estimates)",
                                     p->name, s)
                    != 0)
                {
                    return -1;
                }

            } else {
                return llmd_yaml_error(ctx, n, "unsupported concurrencyMode: "
                                       "\"%s\"", s);
            }
        }

        n = llmd_yaml_get(doc, params, "maxConcurrency");
        if (n != NULL && !llmd_yaml_is_null(n)) {
            if (llmd_yaml_number(ctx, n, "maxConcurrency", &v) != 0) {
                return -1;
            }

            if (v != floor(v) || v <= 0 || v > 1e15) {
                return llmd_yaml_error(ctx, n, "maxConcurrency must be "
                                       "strictly positive");
            }

            sp->max_concurrency = (uint64_t) v;
        }

        n = llmd_yaml_get(doc, params, "maxTokenConcurrency");
        if (n != NULL && !llmd_yaml_is_null(n)) {
            if (llmd_yaml_number(ctx, n, "maxTokenConcurrency", &v) != 0) {
                return -1;
            }

            if (v != floor(v) || v <= 0 || v > 1e15) {
                return llmd_yaml_error(ctx, n, "maxTokenConcurrency must "
                                       "be strictly positive");
            }

            sp->max_token_concurrency = (uint64_t) v;
        }

        if (llmd_param_warn_unknown(cf, doc, params, p, conc) != 0) {
            return -1;
        }

    } else {
        llmd_sat_defaults(sp, LLMD_SAT_UTILIZATION);

        n = llmd_yaml_get(doc, params, "queueDepthThreshold");
        if (n != NULL && !llmd_yaml_is_null(n)) {
            if (llmd_yaml_number(ctx, n, "queueDepthThreshold", &v) != 0) {
                return -1;
            }

            if (v != floor(v) || v <= 0 || v > 1e9) {
                return llmd_yaml_error(ctx, n, "queueDepthThreshold must be "
                                       "strictly positive");
            }

            sp->queue_depth_threshold = (uint32_t) v;
        }

        n = llmd_yaml_get(doc, params, "kvCacheUtilThreshold");
        if (n != NULL && !llmd_yaml_is_null(n)) {
            if (llmd_yaml_number(ctx, n, "kvCacheUtilThreshold", &v) != 0) {
                return -1;
            }

            sp->kv_cache_util_threshold = v;
        }

        n = llmd_yaml_get(doc, params, "metricsStalenessThreshold");
        if (n != NULL && !llmd_yaml_is_null(n)) {
            if (llmd_yaml_duration_ms(ctx, n, "metricsStalenessThreshold",
                                      &ms)
                != 0)
            {
                return -1;
            }

            sp->staleness_ms = ms;
        }

        if (llmd_param_warn_unknown(cf, doc, params, p, util) != 0) {
            return -1;
        }
    }

    n = llmd_yaml_get(doc, params, "headroom");
    if (n != NULL && !llmd_yaml_is_null(n)) {
        if (llmd_yaml_number(ctx, n, "headroom", &v) != 0) {
            return -1;
        }

        sp->headroom = v;
    }

    if (llmd_sat_validate(sp, err, sizeof(err)) != 0) {
        return llmd_yaml_error_at(ctx, p->line, "invalid %s configuration "
                                  "of plugin \"%s\": %s", p->type_name,
                                  p->name, err);
    }

    return 0;
}


int
llmd_config_flow(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *root)
{
    uint64_t                  ms;
    yaml_node_t              *fc, *n, *item;
    yaml_node_item_t         *it;
    size_t                    i;
    int                       have_ttl;
    static const char *const  keys[] = {
        "maxBytes", "maxRequests", "defaultRequestTTL",
        "noEndpointRequestTTL", "defaultPriorityBand",
        "defaultNegativePriorityBand", "priorityBands",
        "usageLimitPolicyPluginRef", "saturationDetector", "enableEviction",
        NULL
    };

    llmd_flow_defaults(&cf->flow);
    llmd_sat_defaults(&cf->saturation, LLMD_SAT_UTILIZATION);

    n = llmd_yaml_get(doc, root, "featureGates");
    if (n != NULL && !llmd_yaml_is_null(n)
        && llmd_flow_gates(ctx, cf, doc, n) != 0)
    {
        return -1;
    }

    fc = llmd_yaml_get(doc, root, "flowControl");
    if (fc != NULL && llmd_yaml_is_null(fc)) {
        fc = NULL;
    }

    if (fc != NULL) {
        if (fc->type != YAML_MAPPING_NODE) {
            return llmd_yaml_error(ctx, fc, "flowControl must be a mapping");
        }

        if (llmd_flow_check_keys(ctx, doc, fc, "flowControl", keys) != 0) {
            return -1;
        }
    }

    /* the detector serves the legacy admission path too, gate or not */
    if (llmd_flow_detector(ctx, cf, doc, root, fc) != 0) {
        return -1;
    }

    if (fc == NULL) {
        return 0;
    }

    if (!cf->flow.enabled) {
        for (i = 0; keys[i] != NULL; i++) {
            if (strcmp(keys[i], "saturationDetector") != 0
                && llmd_yaml_get(doc, fc, keys[i]) != NULL)
            {
                return llmd_config_warn(cf, llmd_yaml_line(fc),
                                        "the flowControl config section is "
                                        "set but the flowControl feature "
                                        "gate is disabled; its settings "
                                        "(other than saturationDetector) "
                                        "are ignored");
            }
        }

        return 0;
    }

    if (llmd_flow_quantity(ctx, llmd_yaml_get(doc, fc, "maxBytes"),
                           "global MaxBytes", &cf->flow.max_bytes)
        != 0
        || llmd_flow_quantity(ctx, llmd_yaml_get(doc, fc, "maxRequests"),
                              "global MaxRequests", &cf->flow.max_requests)
           != 0)
    {
        return -1;
    }

    have_ttl = 0;

    n = llmd_yaml_get(doc, fc, "defaultRequestTTL");
    if (n != NULL && !llmd_yaml_is_null(n)) {
        if (llmd_yaml_duration_ms(ctx, n, "defaultRequestTTL", &ms) != 0) {
            return -1;
        }

        cf->flow.ttl_ms = ms;
        cf->flow.no_endpoint_ttl_ms = ms;  /* follows unless set */
        have_ttl = 1;
    }

    n = llmd_yaml_get(doc, fc, "noEndpointRequestTTL");
    if (n != NULL && !llmd_yaml_is_null(n)) {
        if (llmd_yaml_duration_ms(ctx, n, "noEndpointRequestTTL", &ms) != 0) {
            return -1;
        }

        cf->flow.no_endpoint_ttl_ms = ms;
    }

    (void) have_ttl;

    n = llmd_yaml_get(doc, fc, "defaultPriorityBand");
    if (n != NULL && !llmd_yaml_is_null(n)
        && llmd_flow_band(ctx, cf, doc, n, "default priority band", 0,
                          &cf->flow.default_band)
           != 0)
    {
        return -1;
    }

    n = llmd_yaml_get(doc, fc, "defaultNegativePriorityBand");
    if (n != NULL && !llmd_yaml_is_null(n)) {
        cf->flow.negative_band = cf->flow.default_band;

        if (llmd_flow_band(ctx, cf, doc, n, "default negative priority band",
                           0, &cf->flow.negative_band)
            != 0)
        {
            return -1;
        }

        cf->flow.has_negative_band = 1;
    }

    n = llmd_yaml_get(doc, fc, "priorityBands");
    if (n != NULL && !llmd_yaml_is_null(n)) {
        if (n->type != YAML_SEQUENCE_NODE) {
            return llmd_yaml_error(ctx, n, "flowControl.priorityBands must "
                                   "be a list");
        }

        for (it = n->data.sequence.items.start;
             it < n->data.sequence.items.top;
             it++)
        {
            item = yaml_document_get_node(doc, *it);

            if (cf->flow.nbands >= LLMD_FLOW_MAX_BANDS) {
                return llmd_yaml_error(ctx, item, "more than %d priority "
                                       "bands", LLMD_FLOW_MAX_BANDS);
            }

            /* a band's unset fields take the system defaults, not the
               defaultPriorityBand template (llm-d's registry) */
            memset(&cf->flow.bands[cf->flow.nbands], 0,
                   sizeof(llmd_flow_band_t));

            if (llmd_flow_band(ctx, cf, doc, item, "priority band", 1,
                               &cf->flow.bands[cf->flow.nbands])
                != 0)
            {
                return -1;
            }

            for (i = 0; i < cf->flow.nbands; i++) {
                if (cf->flow.bands[i].priority
                    == cf->flow.bands[cf->flow.nbands].priority)
                {
                    return llmd_yaml_error(ctx, item, "duplicate priority "
                                           "level %d",
                                           (int) cf->flow.bands[i].priority);
                }
            }

            cf->flow.nbands++;
        }
    }

    n = llmd_yaml_get(doc, fc, "usageLimitPolicyPluginRef");
    if (n != NULL && !llmd_yaml_is_null(n)) {
        const char     *ref;
        llmd_plugin_t  *p;

        if (llmd_yaml_string(ctx, n, "usageLimitPolicyPluginRef", &ref)
            != 0)
        {
            return -1;
        }

        p = ref[0] ? llmd_config_find_plugin(cf, ref) : NULL;
        if (ref[0] && (p == NULL
                       || p->type != LLMD_PLUGIN_USAGE_LIMIT_POLICY))
        {
            return llmd_yaml_error(ctx, n, "failed to resolve usage limit "
                                   "policy: plugin \"%s\" not found", ref);
        }
    }

    n = llmd_yaml_get(doc, fc, "enableEviction");
    if (n != NULL && !llmd_yaml_is_null(n)) {
        int  on;

        if (llmd_yaml_bool(ctx, n, "enableEviction", &on) != 0) {
            return -1;
        }

        if (on && llmd_config_warn(cf, llmd_yaml_line(n), "flowControl."
                                   "enableEviction is not supported; "
                                   "in-flight requests are never evicted")
                  != 0)
        {
            return -1;
        }
    }

    return 0;
}


static int
llmd_flow_gates(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *list)
{
    int                on;
    size_t             nlen;
    const char        *s, *eq, *v;
    yaml_node_t       *item;
    yaml_node_item_t  *it;
    char               val[16];

    if (list->type != YAML_SEQUENCE_NODE) {
        return llmd_yaml_error(ctx, list, "featureGates must be a list of "
                               "strings");
    }

    for (it = list->data.sequence.items.start;
         it < list->data.sequence.items.top;
         it++)
    {
        item = yaml_document_get_node(doc, *it);

        if (llmd_yaml_string(ctx, item, "featureGates", &s) != 0) {
            return -1;
        }

        eq = strchr(s, '=');
        nlen = eq ? (size_t) (eq - s) : strlen(s);
        on = 1;

        if (eq != NULL) {
            /* Go's strconv.ParseBool, trimmed and lowercased */
            v = eq + 1;
            while (isspace((unsigned char) *v)) {
                v++;
            }

            snprintf(val, sizeof(val), "%s", v);
            while (val[0] && isspace((unsigned char) val[strlen(val) - 1])) {
                val[strlen(val) - 1] = '\0';
            }

            if (strcasecmp(val, "1") == 0 || strcasecmp(val, "t") == 0
                || strcasecmp(val, "true") == 0)
            {
                on = 1;

            } else if (strcasecmp(val, "0") == 0 || strcasecmp(val, "f") == 0
                       || strcasecmp(val, "false") == 0)
            {
                on = 0;

            } else {
                return llmd_yaml_error(ctx, item, "%s is not a valid value "
                                       "for the feature gate %.*s", eq + 1,
                                       (int) nlen, s);
            }
        }

        if (nlen == sizeof("flowControl") - 1
            && strncmp(s, "flowControl", nlen) == 0)
        {
            cf->flow.enabled = on;
            continue;
        }

        if (llmd_config_warn(cf, llmd_yaml_line(item), "feature gate "
                             "\"%.*s\" has no meaning here; ignored",
                             (int) nlen, s)
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


/*
 * flowControl.saturationDetector.pluginRef, else the deprecated top-level
 * saturationDetector.pluginRef, else the plugin named utilization-detector
 * if the file declares it, else a utilization-detector with its defaults.
 */
static int
llmd_flow_detector(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *root, yaml_node_t *fc)
{
    const char               *ref;
    yaml_node_t              *sd, *rn;
    llmd_plugin_t            *p;
    static const char *const  keys[] = { "pluginRef", NULL };

    sd = llmd_yaml_get(doc, fc, "saturationDetector");
    if (sd == NULL || llmd_yaml_is_null(sd)) {
        sd = llmd_yaml_get(doc, root, "saturationDetector");
    }

    ref = "";
    rn = NULL;

    if (sd != NULL && !llmd_yaml_is_null(sd)) {
        if (sd->type != YAML_MAPPING_NODE) {
            return llmd_yaml_error(ctx, sd, "saturationDetector must be a "
                                   "mapping");
        }

        if (llmd_flow_check_keys(ctx, doc, sd, "saturationDetector", keys)
            != 0)
        {
            return -1;
        }

        rn = llmd_yaml_get(doc, sd, "pluginRef");
        if (rn != NULL && !llmd_yaml_is_null(rn)
            && llmd_yaml_string(ctx, rn, "pluginRef", &ref) != 0)
        {
            return -1;
        }
    }

    if (ref[0] == '\0') {
        ref = "utilization-detector";
        p = llmd_config_find_plugin(cf, ref);

        if (p == NULL) {
            llmd_sat_defaults(&cf->saturation, LLMD_SAT_UTILIZATION);
            cf->detector_name = NULL;
            return 0;
        }

    } else {
        p = llmd_config_find_plugin(cf, ref);
    }

    if (p == NULL) {
        return llmd_yaml_error(ctx, rn ? rn : root, "saturation detector "
                               "plugin '%s' not found", ref);
    }

    if (p->type != LLMD_PLUGIN_SATURATION_DETECTOR) {
        return llmd_yaml_error(ctx, rn ? rn : root, "plugin '%s' is not a "
                               "saturation detector", ref);
    }

    cf->saturation = p->u.saturation;
    cf->detector_name = p->name;

    return 0;
}


static int
llmd_flow_check_keys(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *map, const char *what, const char *const *known)
{
    size_t             i;
    const char        *key;
    yaml_node_t       *kn;
    yaml_node_pair_t  *pair;

    for (pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top;
         pair++)
    {
        kn = yaml_document_get_node(doc, pair->key);
        key = llmd_yaml_scalar(kn);

        for (i = 0; key != NULL && known[i] != NULL; i++) {
            if (strcmp(key, known[i]) == 0) {
                break;
            }
        }

        if (key == NULL || known[i] == NULL) {
            return llmd_yaml_error(ctx, kn, "unknown field \"%s\" in %s",
                                   key ? key : "?", what);
        }
    }

    return 0;
}


static int
llmd_flow_band(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *n, const char *what, int need_prio,
    llmd_flow_band_t *band)
{
    double                    v;
    const char               *ref;
    yaml_node_t              *pn, *rn;
    llmd_plugin_t            *p;
    char                      label[64];
    static const char *const  keys[] = {
        "priority", "maxBytes", "maxRequests", "orderingPolicyRef",
        "fairnessPolicyRef", NULL
    };

    if (n->type != YAML_MAPPING_NODE) {
        return llmd_yaml_error(ctx, n, "%s must be a mapping", what);
    }

    if (llmd_flow_check_keys(ctx, doc, n, what, keys) != 0) {
        return -1;
    }

    pn = llmd_yaml_get(doc, n, "priority");
    if (pn != NULL && !llmd_yaml_is_null(pn)) {
        if (llmd_yaml_number(ctx, pn, "priority", &v) != 0) {
            return -1;
        }

        if (v != floor(v) || fabs(v) > 2147483647.0) {
            return llmd_yaml_error(ctx, pn, "priority must be an integer");
        }

        band->priority = (int32_t) v;

    } else if (need_prio) {
        band->priority = 0;     /* Go's zero value */
    }

    if (need_prio) {
        snprintf(label, sizeof(label), "priority band %d",
                 (int) band->priority);
        what = label;
    }

    if (llmd_flow_quantity(ctx, llmd_yaml_get(doc, n, "maxBytes"), what,
                           &band->max_bytes)
        != 0
        || llmd_flow_quantity(ctx, llmd_yaml_get(doc, n, "maxRequests"),
                              what, &band->max_requests)
           != 0)
    {
        return -1;
    }

    rn = llmd_yaml_get(doc, n, "orderingPolicyRef");
    if (rn != NULL && !llmd_yaml_is_null(rn)) {
        if (llmd_yaml_string(ctx, rn, "orderingPolicyRef", &ref) != 0) {
            return -1;
        }

        p = ref[0] ? llmd_config_find_plugin(cf, ref) : NULL;
        if (ref[0] && (p == NULL || p->type != LLMD_PLUGIN_ORDERING_POLICY))
        {
            return llmd_yaml_error(ctx, rn, "plugin \"%s\" not found or not "
                                   "an ordering policy", ref);
        }
    }

    rn = llmd_yaml_get(doc, n, "fairnessPolicyRef");
    if (rn != NULL && !llmd_yaml_is_null(rn)) {
        if (llmd_yaml_string(ctx, rn, "fairnessPolicyRef", &ref) != 0) {
            return -1;
        }

        p = ref[0] ? llmd_config_find_plugin(cf, ref) : NULL;
        if (ref[0] && (p == NULL || p->type != LLMD_PLUGIN_FAIRNESS_POLICY))
        {
            return llmd_yaml_error(ctx, rn, "plugin \"%s\" not found or not "
                                   "a fairness policy", ref);
        }

        if (p != NULL) {
            band->fairness = p->u.fairness;
        }
    }

    return 0;
}


/*
 * A Kubernetes resource quantity ("100", "1k", "500M", "1Gi", "1e3"),
 * rounded up to an integer as Quantity.Value(); absent: 0.
 */
static int
llmd_flow_quantity(llmd_yaml_ctx_t *ctx, yaml_node_t *n, const char *what,
    uint64_t *out)
{
    char         *end;
    double        v, mul;
    const char   *s;
    size_t        i;
    static const struct { const char *sfx; double mul; }  units[] = {
        { "Ki", 1024.0 }, { "Mi", 1048576.0 }, { "Gi", 1073741824.0 },
        { "Ti", 1099511627776.0 }, { "Pi", 1125899906842624.0 },
        { "Ei", 1152921504606846976.0 },
        { "n", 1e-9 }, { "u", 1e-6 }, { "m", 1e-3 }, { "k", 1e3 },
        { "M", 1e6 }, { "G", 1e9 }, { "T", 1e12 }, { "P", 1e15 },
        { "E", 1e18 }, { "", 1.0 }
    };

    *out = 0;

    if (n == NULL || llmd_yaml_is_null(n)) {
        return 0;
    }

    s = llmd_yaml_scalar(n);
    if (s == NULL) {
        return llmd_yaml_error(ctx, n, "%s must be a quantity", what);
    }

    v = strtod(s, &end);
    if (end == s || !isfinite(v)) {
        return llmd_yaml_error(ctx, n, "%s: quantities must match the "
                               "regular expression "
                               "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?"
                               "[0-9]*)$', got \"%s\"", what, s);
    }

    mul = 0;

    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].sfx) == 0) {
            mul = units[i].mul;
            break;
        }
    }

    if (mul == 0) {
        return llmd_yaml_error(ctx, n, "%s: unable to parse quantity's "
                               "suffix in \"%s\"", what, s);
    }

    v *= mul;

    if (v < 0) {
        return llmd_yaml_error(ctx, n, "%s must be non-negative, got %s",
                               what, s);
    }

    if (v > 1.8e19) {
        v = 1.8e19;
    }

    *out = (uint64_t) ceil(v);

    return 0;
}
