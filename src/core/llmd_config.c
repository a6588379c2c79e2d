/*
 * EndpointPickerConfig loader: libyaml document -> llmd_config_t, with the
 * validation and defaulting rules of GIE >= v1.0 (which load every seed-era
 * v0.5.1 config identically).  Every error names the file and the line.
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
    { NULL, 0 }
};

/* llm-d plugins that exist upstream but that this module does not run. */
static const char *const  llmd_unsupported_types[] = {
    "session-affinity-scorer", "lora-affinity-scorer", "no-hit-lru-scorer",
    "decode-filter", "prefill-filter", "by-label", "by-label-selector",
    "label-selector-filter", "prefill-header-handler", "pd-profile-handler",
    "disagg-profile-handler", "header-profile-handler", "low-queue-filter",
    "least-queue-filter", "least-kv-cache-filter", "lora-affinity-filter",
    "decision-tree-filter", "multicluster-file-discovery", NULL
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

        if (llmd_plugin_params(ctx, cf, doc,
                               llmd_yaml_get(doc, item, "parameters"), p)
            != 0)
        {
            return -1;
        }
    }

    return 0;
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


/* GIE v1.0+ defaulting (spec section 1.2). */
static int
llmd_config_defaults(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_node_t *root)
{
    size_t           i, j, handlers;
    llmd_plugin_t   *p, *picker, *handler;
    llmd_profile_t  *prof;

    picker = NULL;
    handler = NULL;
    handlers = 0;

    for (i = 0; i < cf->nplugins; i++) {
        p = &cf->plugins[i];

        if (picker == NULL && llmd_plugin_is_picker(p->type)) {
            picker = p;
        }

        if (p->type == LLMD_PLUGIN_SINGLE_PROFILE_HANDLER) {
            handler = p;
            handlers++;
        }
    }

    if (cf->nprofiles == 0) {
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
            }
        }
    }

    if (handlers > 1) {
        return llmd_yaml_error(ctx, root, "more than one profile handler "
                               "was specified");
    }

    if (cf->nprofiles > 1) {
        return llmd_yaml_error(ctx, root, "%zu scheduling profiles need a "
                               "multi-profile handler, which "
                               "ngx_http_llmd_module does not support; "
                               "single-profile-handler runs exactly one",
                               cf->nprofiles);
    }

    if (handler == NULL) {
        handler = llmd_config_add_plugin(cf, "single-profile-handler",
                                         LLMD_PLUGIN_SINGLE_PROFILE_HANDLER);
        if (handler == NULL) {
            return llmd_yaml_error(ctx, root, "out of memory");
        }
    }

    cf->handler = handler;

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

    return 0;
}
