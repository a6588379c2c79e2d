/*
 * EndpointPickerConfig loader: libyaml document -> llmd_config_t, with the
 * validation and defaulting rules of GIE >= v1.0 (which load every seed-era
 * v0.5.1 config identically): plugins, profiles of filters, scorers and a
 * picker, exactly one profile handler. Parameters are read per plugin
 * family (llmd_config_params.h). Every error names the file and the line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/llmd_yaml.h"
#include "core/llmd_config.h"
#include "core/llmd_config_params.h"


typedef struct {
    const char          *name;
    llmd_plugin_type_t   type;
} llmd_type_name_t;

static const llmd_type_name_t  llmd_types[] = {
    { "queue-scorer", LLMD_PLUGIN_QUEUE_SCORER },
    { "kv-cache-scorer", LLMD_PLUGIN_KV_CACHE_SCORER },
    { "kv-cache-utilization-scorer", LLMD_PLUGIN_KV_CACHE_SCORER },
    { "prefix-cache-scorer", LLMD_PLUGIN_PREFIX_CACHE_SCORER },
    { "precise-prefix-cache-scorer", LLMD_PLUGIN_PREFIX_CACHE_SCORER },
    { "load-aware-scorer", LLMD_PLUGIN_LOAD_AWARE_SCORER },
    { "active-request-scorer", LLMD_PLUGIN_ACTIVE_REQUEST_SCORER },
    { "max-score-picker", LLMD_PLUGIN_MAX_SCORE_PICKER },
    { "random-picker", LLMD_PLUGIN_RANDOM_PICKER },
    { "weighted-random-picker", LLMD_PLUGIN_WEIGHTED_RANDOM_PICKER },
    { "single-profile-handler", LLMD_PLUGIN_SINGLE_PROFILE_HANDLER },
    { "file-discovery", LLMD_PLUGIN_FILE_DISCOVERY },
    { "running-requests-size-scorer", LLMD_PLUGIN_RUNNING_REQUESTS_SCORER },
    { "session-affinity-scorer", LLMD_PLUGIN_SESSION_AFFINITY_SCORER },
    { "lora-affinity-scorer", LLMD_PLUGIN_LORA_AFFINITY_SCORER },
    { "no-hit-lru-scorer", LLMD_PLUGIN_NO_HIT_LRU_SCORER },
    { "decode-filter", LLMD_PLUGIN_LABEL_FILTER },
    { "prefill-filter", LLMD_PLUGIN_LABEL_FILTER },
    { "encode-filter", LLMD_PLUGIN_LABEL_FILTER },
    { "by-label", LLMD_PLUGIN_LABEL_FILTER },
    { "label-selector-filter", LLMD_PLUGIN_LABEL_FILTER },
    { "by-label-selector", LLMD_PLUGIN_LABEL_FILTER },
    { "utilization-filter", LLMD_PLUGIN_UTILIZATION_FILTER },
    { "session-affinity-filter", LLMD_PLUGIN_SESSION_AFFINITY_FILTER },
    { "disagg-profile-handler", LLMD_PLUGIN_DISAGG_PROFILE_HANDLER },
    { "pd-profile-handler", LLMD_PLUGIN_PD_PROFILE_HANDLER },
    { "header-profile-handler", LLMD_PLUGIN_HEADER_PROFILE_HANDLER },
    { "prefix-based-pd-decider", LLMD_PLUGIN_PREFIX_PD_DECIDER },
    { "always-disagg-pd-decider", LLMD_PLUGIN_ALWAYS_PD_DECIDER },
    { "always-disagg-multimodal-decider", LLMD_PLUGIN_MULTIMODAL_DECIDER },
    { "prefill-header-handler", LLMD_PLUGIN_HEADERS_HANDLER },
    { "disagg-headers-handler", LLMD_PLUGIN_HEADERS_HANDLER },
    { "approx-prefix-cache-producer", LLMD_PLUGIN_PREFIX_PRODUCER },
    { "precise-prefix-cache-producer", LLMD_PLUGIN_PREFIX_PRODUCER },
    { "token-producer", LLMD_PLUGIN_DATA_LAYER },
    { "tokenizer", LLMD_PLUGIN_DATA_LAYER },
    { "metrics-data-source", LLMD_PLUGIN_DATA_LAYER },
    { "core-metrics-extractor", LLMD_PLUGIN_DATA_LAYER },
    { "endpoint-notification-source", LLMD_PLUGIN_DATA_LAYER },
    { "openai-parser", LLMD_PLUGIN_DATA_LAYER },
    { "vllmhttp-parser", LLMD_PLUGIN_DATA_LAYER },
    { "passthrough-parser", LLMD_PLUGIN_DATA_LAYER },
    { "token-load-scorer", LLMD_PLUGIN_TOKEN_LOAD_SCORER },
    { "prefix-cache-affinity-filter", LLMD_PLUGIN_PREFIX_AFFINITY_FILTER },
    { "inflight-load-producer", LLMD_PLUGIN_INFLIGHT_PRODUCER },
    { "utilization-detector", LLMD_PLUGIN_SATURATION_DETECTOR },
    { "concurrency-detector", LLMD_PLUGIN_SATURATION_DETECTOR },
    { "global-strict-fairness-policy", LLMD_PLUGIN_FAIRNESS_POLICY },
    { "round-robin-fairness-policy", LLMD_PLUGIN_FAIRNESS_POLICY },
    { "fcfs-ordering-policy", LLMD_PLUGIN_ORDERING_POLICY },
    { "edf-ordering-policy", LLMD_PLUGIN_ORDERING_POLICY },
    { "static-usage-limit-policy", LLMD_PLUGIN_USAGE_LIMIT_POLICY },
    { NULL, 0 }
};

/* llm-d plugins that exist upstream but that this module does not run. */
static const char *const  llmd_unsupported_types[] = {
    "low-queue-filter", "least-queue-filter", "least-kv-cache-filter",
    "lora-affinity-filter", "decision-tree-filter",
    "multicluster-file-discovery", "data-parallel-profile-handler",
    "context-length-aware", "latency-scorer",
    "endpoint-attribute-filter", "endpoint-attribute-scorer",
    "header-label-affinity-scorer", "topology-affinity-filter",
    "topology-affinity-scorer", "topology-extractor",
    "slo-headroom-tier-filter",
    "mm-embeddings-cache-producer", "mm-embeddings-cache-scorer",
    "burst-prefix-cache-producer",
    "multicluster-approx-prefix-cache-producer",
    "multicluster-prefix-cache-scorer", "multicluster-queue-scorer",
    "multicluster-kv-cache-utilization-scorer",
    "multicluster-session-affinity-filter", "predicted-latency-producer",
    "session-id-producer", "latency-slo-admitter", "probabilistic-admitter",
    "request-attribute-reporter", "disaggregatedset-rollout-screener",
    "anthropic-parser", "vertexai-parser", "sglanghttp-parser",
    "vllmgrpc-parser", "program-aware-fairness",
    "slo-deadline-ordering-policy",
    "priority-holdback-policy", "soft-reflective-ceiling-policy",
    "sheddable-eviction-filter", "priority-then-time-eviction-order-policy",
    "dcgm-data-source", "dcgm-extractor", "models-data-source",
    "models-data-extractor", "k8s-notification-source",
    "multicluster-metrics-data-source", "multicluster-metrics-extractor",
    NULL
};

/* Top-level keys GIE's strict decoder knows; others are errors. */
static const char *const  llmd_top_keys[] = {
    "apiVersion", "kind", "plugins", "schedulingProfiles", "featureGates",
    "saturationDetector", "data", "dataLayer", "flowControl",
    "requestHandler", "parser", NULL
};

/* llm-d's built-in configuration (GIE >= v1.4, Helm chart of v1.2). */
static const char  llmd_default_yaml[] =
    "apiVersion: inference.networking.x-k8s.io/v1alpha1\n"
    "kind: EndpointPickerConfig\n"
    "plugins:\n"
    "- type: queue-scorer\n"
    "- type: kv-cache-utilization-scorer\n"
    "- type: prefix-cache-scorer\n"
    "schedulingProfiles:\n"
    "- name: default\n"
    "  plugins:\n"
    "  - pluginRef: queue-scorer\n"
    "    weight: 2\n"
    "  - pluginRef: kv-cache-utilization-scorer\n"
    "    weight: 2\n"
    "  - pluginRef: prefix-cache-scorer\n"
    "    weight: 3\n";


static llmd_config_t *llmd_config_parse(const char *yaml, size_t len,
    const char *name, char *err, size_t errlen);
static int llmd_config_document(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc);
static int llmd_config_plugins(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *list);
static int llmd_config_profiles(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *list);
static int llmd_config_profile_ref(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *item, llmd_profile_t *prof);
static int llmd_config_defaults(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_node_t *root);
static int llmd_config_data_layer(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *root);
static int llmd_config_plugin_params(llmd_yaml_ctx_t *ctx,
    llmd_config_t *cf, yaml_document_t *doc, yaml_node_t *params,
    llmd_plugin_t *p);
static int llmd_config_handler(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_node_t *root);
static int llmd_config_producers(llmd_yaml_ctx_t *ctx, llmd_config_t *cf);


llmd_config_t *
llmd_config_load_file(const char *path, char *err, size_t errlen)
{
    char           *buf;
    size_t          n;
    llmd_config_t  *cf;

    if (llmd_yaml_read_file(path, LLMD_CONFIG_MAX_BYTES, &buf, &n, err,
                            errlen)
        != 0)
    {
        return NULL;
    }

    cf = llmd_config_parse(buf, n, path, err, errlen);

    free(buf);

    return cf;
}


llmd_config_t *
llmd_config_load_string(const char *yaml, size_t len, const char *name,
    char *err, size_t errlen)
{
    if (len > LLMD_CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes", name,
                 LLMD_CONFIG_MAX_BYTES);
        return NULL;
    }

    return llmd_config_parse(yaml, len, name, err, errlen);
}


llmd_config_t *
llmd_config_default(char *err, size_t errlen)
{
    return llmd_config_parse(llmd_default_yaml,
                             sizeof(llmd_default_yaml) - 1, "<default>",
                             err, errlen);
}


static llmd_config_t *
llmd_config_parse(const char *yaml, size_t len, const char *name, char *err,
    size_t errlen)
{
    int               rc;
    llmd_config_t    *cf;
    yaml_document_t   doc;
    llmd_yaml_ctx_t   ctx;

    ctx.file = name;
    ctx.err = err;
    ctx.errlen = errlen;

    cf = calloc(1, sizeof(llmd_config_t));
    if (cf == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }

    cf->file = strdup(name);
    cf->plugins = calloc(LLMD_CONFIG_MAX_PLUGINS + 2, sizeof(llmd_plugin_t));
    cf->profiles = calloc(LLMD_CONFIG_MAX_PROFILES + 1,
                          sizeof(llmd_profile_t));
    cf->warnings = calloc(LLMD_CONFIG_MAX_WARNINGS, sizeof(char *));

    if (cf->file == NULL || cf->plugins == NULL || cf->profiles == NULL
        || cf->warnings == NULL)
    {
        llmd_config_free(cf);
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }

    if (llmd_yaml_load(yaml, len, name, &doc, err, errlen) != 0) {
        llmd_config_free(cf);
        return NULL;
    }

    rc = llmd_config_document(&ctx, cf, &doc);

    yaml_document_delete(&doc);

    if (rc != 0) {
        llmd_config_free(cf);
        return NULL;
    }

    return cf;
}


static int
llmd_config_document(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc)
{
    size_t             i;
    const char        *key, *s;
    yaml_node_t       *root, *n, *kn;
    yaml_node_pair_t  *pair;

    root = yaml_document_get_root_node(doc);
    if (root == NULL) {
        snprintf(ctx->err, ctx->errlen, "%s:1: the file is empty", ctx->file);
        return -1;
    }

    if (root->type != YAML_MAPPING_NODE) {
        return llmd_yaml_error(ctx, root, "an EndpointPickerConfig must be "
                               "a mapping");
    }

    for (pair = root->data.mapping.pairs.start;
         pair < root->data.mapping.pairs.top;
         pair++)
    {
        kn = yaml_document_get_node(doc, pair->key);
        key = llmd_yaml_scalar(kn);
        if (key == NULL) {
            return llmd_yaml_error(ctx, kn, "keys must be strings");
        }

        for (i = 0; llmd_top_keys[i] != NULL; i++) {
            if (strcmp(key, llmd_top_keys[i]) == 0) {
                break;
            }
        }

        if (llmd_top_keys[i] == NULL) {
            return llmd_yaml_error(ctx, kn, "unknown field \"%s\"", key);
        }

        /* duplicate keys are errors in the strict Kubernetes decoder */
        if (llmd_yaml_get(doc, root, key) != yaml_document_get_node(doc,
                                                                pair->value))
        {
            return llmd_yaml_error(ctx, kn, "duplicate field \"%s\"", key);
        }
    }

    n = llmd_yaml_get(doc, root, "apiVersion");
    if (n == NULL) {
        return llmd_yaml_error(ctx, root, "apiVersion is missing");
    }

    if (llmd_yaml_string(ctx, n, "apiVersion", &s) != 0) {
        return -1;
    }

    if (strcmp(s, "inference.networking.x-k8s.io/v1alpha1") != 0
        && strcmp(s, "llm-d.ai/v1alpha1") != 0)
    {
        return llmd_yaml_error(ctx, n, "unsupported apiVersion \"%s\" "
                               "(expected inference.networking.x-k8s.io/"
                               "v1alpha1 or llm-d.ai/v1alpha1)", s);
    }

    n = llmd_yaml_get(doc, root, "kind");
    if (n == NULL) {
        return llmd_yaml_error(ctx, root, "kind is missing");
    }

    if (llmd_yaml_string(ctx, n, "kind", &s) != 0) {
        return -1;
    }

    if (strcmp(s, "EndpointPickerConfig") != 0) {
        return llmd_yaml_error(ctx, n, "kind must be EndpointPickerConfig, "
                               "not \"%s\"", s);
    }

    n = llmd_yaml_get(doc, root, "plugins");
    if (n == NULL || llmd_yaml_is_null(n)) {
        return llmd_yaml_error(ctx, root, "plugins are missing");
    }

    if (llmd_config_plugins(ctx, cf, doc, n) != 0) {
        return -1;
    }

    n = llmd_yaml_get(doc, root, "schedulingProfiles");
    if (n != NULL && !llmd_yaml_is_null(n)
        && llmd_config_profiles(ctx, cf, doc, n) != 0)
    {
        return -1;
    }

    if (llmd_config_data_layer(ctx, cf, doc, root) != 0) {
        return -1;
    }

    if (llmd_config_flow(ctx, cf, doc, root) != 0) {
        return -1;
    }

    return llmd_config_defaults(ctx, cf, root);
}


/*
 * dataLayer.discovery.pluginRef: the plugin that lists the endpoints
 * (file-discovery), in place of Kubernetes. The rest of dataLayer (metrics
 * sources and extractors) has no meaning here and is ignored.
 */
static int
llmd_config_data_layer(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *root)
{
    const char     *ref;
    yaml_node_t    *dl, *disc, *rn;
    llmd_plugin_t  *p;

    dl = llmd_yaml_get(doc, root, "dataLayer");
    disc = llmd_yaml_get(doc, dl, "discovery");

    if (disc == NULL || llmd_yaml_is_null(disc)) {
        return 0;
    }

    rn = llmd_yaml_get(doc, disc, "pluginRef");
    if (rn == NULL) {
        return llmd_yaml_error(ctx, disc, "dataLayer.discovery.pluginRef "
                               "is missing");
    }

    if (llmd_yaml_string(ctx, rn, "pluginRef", &ref) != 0) {
        return -1;
    }

    p = llmd_config_find_plugin(cf, ref);
    if (p == NULL) {
        return llmd_yaml_error(ctx, rn, "dataLayer.discovery.pluginRef "
                               "\"%s\" is a reference to an undefined "
                               "plugin", ref);
    }

    if (p->type != LLMD_PLUGIN_FILE_DISCOVERY) {
        return llmd_yaml_error(ctx, rn, "plugin \"%s\" (%s) does not "
                               "discover endpoints", p->name, p->type_name);
    }

    cf->discovery = p;

    return 0;
}


static int
llmd_config_plugins(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *list)
{
    size_t               i;
    const char          *type, *name;
    yaml_node_t         *item, *tn, *nn;
    yaml_node_item_t    *it;
    llmd_plugin_t       *p;

    if (list->type != YAML_SEQUENCE_NODE) {
        return llmd_yaml_error(ctx, list, "plugins must be a list");
    }

    for (it = list->data.sequence.items.start;
         it < list->data.sequence.items.top;
         it++)
    {
        item = yaml_document_get_node(doc, *it);
        if (item == NULL || item->type != YAML_MAPPING_NODE) {
            return llmd_yaml_error(ctx, item, "a plugin must be a mapping "
                                   "with a type");
        }

        if (cf->nplugins >= LLMD_CONFIG_MAX_PLUGINS) {
            return llmd_yaml_error(ctx, item, "more than %d plugins",
                                   LLMD_CONFIG_MAX_PLUGINS);
        }

        tn = llmd_yaml_get(doc, item, "type");
        if (tn == NULL) {
            return llmd_yaml_error(ctx, item, "plugin type is missing");
        }

        if (llmd_yaml_string(ctx, tn, "type", &type) != 0) {
            return -1;
        }

        for (i = 0; llmd_types[i].name != NULL; i++) {
            if (strcmp(llmd_types[i].name, type) == 0) {
                break;
            }
        }

        if (llmd_types[i].name == NULL) {
            for (i = 0; llmd_unsupported_types[i] != NULL; i++) {
                if (strcmp(llmd_unsupported_types[i], type) == 0) {
                    return llmd_yaml_error(ctx, tn, "plugin type \"%s\" is "
                                           "not supported by "
                                           "ngx_http_llmd_module", type);
                }
            }

            return llmd_yaml_error(ctx, tn, "plugin type \"%s\" is not "
                                   "found in registry", type);
        }

        p = llmd_config_add_plugin(cf, type, llmd_types[i].type);
        if (p == NULL) {
            return llmd_yaml_error(ctx, item, "out of memory");
        }

        p->line = llmd_yaml_line(item);

        nn = llmd_yaml_get(doc, item, "name");
        if (nn != NULL && !llmd_yaml_is_null(nn)) {
            if (llmd_yaml_string(ctx, nn, "name", &name) != 0) {
                return -1;
            }

            if (name[0] != '\0') {
                free(p->name);
                p->name = strdup(name);
                if (p->name == NULL) {
                    return llmd_yaml_error(ctx, item, "out of memory");
                }
            }
        }

        for (i = 0; i + 1 < cf->nplugins; i++) {
            if (strcmp(cf->plugins[i].name, p->name) == 0) {
                return llmd_yaml_error(ctx, nn ? nn : tn, "plugin name "
                                       "\"%s\" used more than once (line %d)",
                                       p->name, cf->plugins[i].line);
            }
        }

        if (llmd_config_plugin_params(ctx, cf, doc,
                                      llmd_yaml_get(doc, item, "parameters"),
                                      p)
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


/* Each plugin family reads its own parameters. */
static int
llmd_config_plugin_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    if (params != NULL && llmd_yaml_is_null(params)) {
        params = NULL;
    }

    if (params != NULL && params->type != YAML_MAPPING_NODE) {
        return llmd_yaml_error(ctx, params, "parameters of plugin \"%s\" "
                               "must be a mapping", p->name);
    }

    /* session-affinity-filter shares the scorer's parameters */
    if (p->type == LLMD_PLUGIN_LABEL_FILTER
        || p->type == LLMD_PLUGIN_UTILIZATION_FILTER
        || p->type == LLMD_PLUGIN_PREFIX_AFFINITY_FILTER)
    {
        return llmd_filter_params(ctx, cf, doc, params, p);
    }

    if (p->type >= LLMD_PLUGIN_SATURATION_DETECTOR) {
        return llmd_flow_plugin_params(ctx, cf, doc, params, p);
    }

    if (llmd_plugin_is_handler(p->type) || llmd_plugin_is_decider(p->type)
        || p->type == LLMD_PLUGIN_HEADERS_HANDLER)
    {
        return llmd_disagg_params(ctx, cf, doc, params, p);
    }

    return llmd_plugin_params(ctx, cf, doc, params, p);
}


static int
llmd_config_profiles(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *list)
{
    size_t             i;
    const char        *name;
    yaml_node_t       *item, *nn, *refs;
    llmd_profile_t    *prof;
    yaml_node_item_t  *it, *rit;

    if (list->type != YAML_SEQUENCE_NODE) {
        return llmd_yaml_error(ctx, list, "schedulingProfiles must be a "
                               "list");
    }

    for (it = list->data.sequence.items.start;
         it < list->data.sequence.items.top;
         it++)
    {
        item = yaml_document_get_node(doc, *it);
        if (item == NULL || item->type != YAML_MAPPING_NODE) {
            return llmd_yaml_error(ctx, item, "a scheduling profile must be "
                                   "a mapping with a name and plugins");
        }

        if (cf->nprofiles >= LLMD_CONFIG_MAX_PROFILES) {
            return llmd_yaml_error(ctx, item, "more than %d scheduling "
                                   "profiles", LLMD_CONFIG_MAX_PROFILES);
        }

        nn = llmd_yaml_get(doc, item, "name");
        if (nn == NULL) {
            return llmd_yaml_error(ctx, item, "scheduling profile name is "
                                   "missing");
        }

        if (llmd_yaml_string(ctx, nn, "name", &name) != 0) {
            return -1;
        }

        if (name[0] == '\0') {
            return llmd_yaml_error(ctx, nn, "scheduling profile name is "
                                   "empty");
        }

        for (i = 0; i < cf->nprofiles; i++) {
            if (strcmp(cf->profiles[i].name, name) == 0) {
                return llmd_yaml_error(ctx, nn, "scheduling profile name "
                                       "\"%s\" used more than once", name);
            }
        }

        prof = &cf->profiles[cf->nprofiles];
        prof->name = strdup(name);
        if (prof->name == NULL) {
            return llmd_yaml_error(ctx, nn, "out of memory");
        }

        cf->nprofiles++;

        refs = llmd_yaml_get(doc, item, "plugins");
        if (refs == NULL || llmd_yaml_is_null(refs)) {
            continue;
        }

        if (refs->type != YAML_SEQUENCE_NODE) {
            return llmd_yaml_error(ctx, refs, "plugins of scheduling profile "
                                   "\"%s\" must be a list", name);
        }

        for (rit = refs->data.sequence.items.start;
             rit < refs->data.sequence.items.top;
             rit++)
        {
            if (llmd_config_profile_ref(ctx, cf, doc,
                                        yaml_document_get_node(doc, *rit),
                                        prof)
                != 0)
            {
                return -1;
            }
        }
    }

    return 0;
}


static int
llmd_config_profile_ref(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *item, llmd_profile_t *prof)
{
    size_t          i;
    double          weight;
    const char     *ref;
    yaml_node_t    *rn, *wn;
    llmd_plugin_t  *p;

    if (item == NULL || item->type != YAML_MAPPING_NODE) {
        return llmd_yaml_error(ctx, item, "a profile plugin must be a "
                               "mapping with a pluginRef");
    }

    rn = llmd_yaml_get(doc, item, "pluginRef");
    if (rn == NULL) {
        return llmd_yaml_error(ctx, item, "pluginRef is missing");
    }

    if (llmd_yaml_string(ctx, rn, "pluginRef", &ref) != 0) {
        return -1;
    }

    p = llmd_config_find_plugin(cf, ref);
    if (p == NULL) {
        return llmd_yaml_error(ctx, rn, "pluginRef \"%s\" of scheduling "
                               "profile \"%s\" is a reference to an "
                               "undefined plugin", ref, prof->name);
    }

    wn = llmd_yaml_get(doc, item, "weight");

    if (llmd_plugin_is_picker(p->type)) {
        if (prof->picker != NULL) {
            return llmd_yaml_error(ctx, rn, "scheduling profile \"%s\" has "
                                   "more than one picker (\"%s\" and "
                                   "\"%s\")", prof->name, prof->picker->name,
                                   p->name);
        }

        prof->picker = p;
        return 0;
    }

    if (llmd_plugin_is_filter(p->type)) {
        /* filters run in the order the profile lists them */
        if (prof->nfilters >= LLMD_CONFIG_MAX_FILTERS) {
            return llmd_yaml_error(ctx, rn, "more than %d filters in "
                                   "scheduling profile \"%s\"",
                                   LLMD_CONFIG_MAX_FILTERS, prof->name);
        }

        prof->filters[prof->nfilters++] = p;
        return 0;
    }

    if (!llmd_plugin_is_scorer(p->type)) {
        return llmd_yaml_error(ctx, rn, "plugin \"%s\" (%s) cannot be used "
                               "in a scheduling profile", p->name,
                               p->type_name);
    }

    weight = 1;

    if (wn != NULL && !llmd_yaml_is_null(wn)) {
        if (llmd_yaml_number(ctx, wn, "weight", &weight) != 0) {
            return -1;
        }

        if (weight < 0 || weight > 1e6) {
            return llmd_yaml_error(ctx, wn, "weight of \"%s\" must be "
                                   "between 0 and 1000000, not %g", ref,
                                   weight);
        }
    }

    for (i = 0; i < prof->nscorers; i++) {
        if (prof->scorers[i].plugin == p) {
            return llmd_yaml_error(ctx, rn, "scorer \"%s\" is referenced "
                                   "twice in scheduling profile \"%s\"",
                                   ref, prof->name);
        }
    }

    if (prof->nscorers >= LLMD_MAX_SCORERS) {
        return llmd_yaml_error(ctx, rn, "more than %d scorers in scheduling "
                               "profile \"%s\"", LLMD_MAX_SCORERS,
                               prof->name);
    }

    prof->scorers[prof->nscorers].plugin = p;
    prof->scorers[prof->nscorers].weight = weight;
    prof->nscorers++;

    return 0;
}


/* GIE v1.0+ defaulting (spec section 1.2), then the handler's stages. */
static int
llmd_config_defaults(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_node_t *root)
{
    size_t           i, j;
    llmd_plugin_t   *p, *picker;
    llmd_profile_t  *prof;

    picker = NULL;

    for (i = 0; i < cf->nplugins; i++) {
        if (llmd_plugin_is_picker(cf->plugins[i].type)) {
            picker = &cf->plugins[i];
            break;
        }
    }

    if (cf->nprofiles == 0) {
        /* every declared filter, scorer (weight 1) and the picker */
        prof = &cf->profiles[0];
        prof->name = strdup("default");
        if (prof->name == NULL) {
            return llmd_yaml_error(ctx, root, "out of memory");
        }

        cf->nprofiles = 1;

        for (i = 0; i < cf->nplugins; i++) {
            p = &cf->plugins[i];

            if (llmd_plugin_is_scorer(p->type)
                && prof->nscorers < LLMD_MAX_SCORERS)
            {
                prof->scorers[prof->nscorers].plugin = p;
                prof->scorers[prof->nscorers].weight = 1;
                prof->nscorers++;

            } else if (llmd_plugin_is_filter(p->type)
                       && prof->nfilters < LLMD_CONFIG_MAX_FILTERS)
            {
                prof->filters[prof->nfilters++] = p;
            }
        }
    }

    if (llmd_config_handler(ctx, cf, root) != 0) {
        return -1;
    }

    for (j = 0; j < cf->nprofiles; j++) {
        prof = &cf->profiles[j];

        if (prof->picker != NULL) {
            continue;
        }

        if (picker == NULL) {
            picker = llmd_config_add_plugin(cf, "max-score-picker",
                                            LLMD_PLUGIN_MAX_SCORE_PICKER);
            if (picker == NULL) {
                return llmd_yaml_error(ctx, root, "out of memory");
            }

            picker->u.picker.max_endpoints = 1;
        }

        prof->picker = picker;
    }

    if (llmd_config_producers(ctx, cf) != 0) {
        return -1;
    }

    return llmd_config_stages(ctx, cf);
}


/*
 * Exactly one profile handler: single-profile-handler is added for one
 * profile; several profiles need one that runs several.
 */
static int
llmd_config_handler(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_node_t *root)
{
    size_t          i;
    llmd_plugin_t  *p, *handler;

    handler = NULL;

    for (i = 0; i < cf->nplugins; i++) {
        p = &cf->plugins[i];

        if (!llmd_plugin_is_handler(p->type)) {
            continue;
        }

        if (handler != NULL) {
            return llmd_yaml_error_at(ctx, p->line, "multiple profile "
                                      "handlers found (\"%s\", \"%s\"); "
                                      "only one is allowed", handler->name,
                                      p->name);
        }

        handler = p;
    }

    if (handler == NULL) {
        if (cf->nprofiles > 1) {
            return llmd_yaml_error(ctx, root, "%zu scheduling profiles need "
                                   "a profile handler (disagg-profile-"
                                   "handler, pd-profile-handler or "
                                   "header-profile-handler); none is "
                                   "configured", cf->nprofiles);
        }

        handler = llmd_config_add_plugin(cf, "single-profile-handler",
                                         LLMD_PLUGIN_SINGLE_PROFILE_HANDLER);
        if (handler == NULL) {
            return llmd_yaml_error(ctx, root, "out of memory");
        }
    }

    if (handler->type == LLMD_PLUGIN_SINGLE_PROFILE_HANDLER
        && cf->nprofiles > 1)
    {
        return llmd_yaml_error_at(ctx, handler->line ? handler->line : 1,
                                  "single-profile-handler cannot support "
                                  "multiple scheduling profiles (%zu); use "
                                  "disagg-profile-handler", cf->nprofiles);
    }

    cf->handler = handler;

    return 0;
}


/*
 * llm-d >= v0.7 keeps the index parameters on a producer: prefix-cache-
 * scorer takes them from the producer its prefixMatchInfoProducerName
 * names (precise-prefix-cache-producer: precise scoring), else from an
 * approx-prefix-cache-producer declared under its type name; without
 * either it keeps its own (llm-d < v0.7).
 */
static int
llmd_config_producers(llmd_yaml_ctx_t *ctx, llmd_config_t *cf)
{
    size_t                 i;
    llmd_plugin_t         *p, *producer;
    llmd_prefix_params_t  *pp, *from, precise;

    for (i = 0; i < cf->nplugins; i++) {
        p = &cf->plugins[i];

        if (p->type != LLMD_PLUGIN_PREFIX_CACHE_SCORER) {
            continue;
        }

        producer = llmd_config_find_plugin(cf, p->ref
                                               ? p->ref
                                               : "approx-prefix-cache-"
                                                 "producer");

        if (producer == NULL && p->ref == NULL) {
            continue;
        }

        if (producer == NULL || producer->type != LLMD_PLUGIN_PREFIX_PRODUCER)
        {
            return llmd_yaml_error_at(ctx, p->line, "%s: "
                                      "prefixMatchInfoProducerName \"%s\" "
                                      "is not a prefix cache producer of "
                                      "this configuration", p->name,
                                      p->ref);
        }

        pp = &p->u.prefix;
        from = &producer->u.prefix;

        if (from->mode == LLMD_PREFIX_PRECISE) {
            /* everything but the scorer's own score parameters */
            precise = *from;
            precise.match_length_weight = pp->match_length_weight;
            precise.match_length_scale_tokens = pp->match_length_scale_tokens;
            *pp = precise;

        } else if (pp->mode == LLMD_PREFIX_APPROXIMATE) {
            pp->block_size = from->block_size;
            pp->max_prefix_blocks = from->max_prefix_blocks;
            pp->lru_capacity_per_server = from->lru_capacity_per_server;
            pp->auto_tune = from->auto_tune;
        }
    }

    return 0;
}
