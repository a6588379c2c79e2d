/*
 * Operations on the EndpointPickerConfig model (llmd_config_model.h):
 * building it (plugins, warnings), looking things up in it, freeing it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/llmd_config_model.h"


static void llmd_plugin_free_params(llmd_plugin_t *p);
static void llmd_selector_free(llmd_selector_t *sel);


int
llmd_plugin_is_scorer(llmd_plugin_type_t type)
{
    switch (type) {
    case LLMD_PLUGIN_QUEUE_SCORER:
    case LLMD_PLUGIN_KV_CACHE_SCORER:
    case LLMD_PLUGIN_PREFIX_CACHE_SCORER:
    case LLMD_PLUGIN_LOAD_AWARE_SCORER:
    case LLMD_PLUGIN_ACTIVE_REQUEST_SCORER:
    case LLMD_PLUGIN_RUNNING_REQUESTS_SCORER:
    case LLMD_PLUGIN_SESSION_AFFINITY_SCORER:
    case LLMD_PLUGIN_LORA_AFFINITY_SCORER:
    case LLMD_PLUGIN_NO_HIT_LRU_SCORER:
    case LLMD_PLUGIN_TOKEN_LOAD_SCORER:
        return 1;
    default:
        return 0;
    }
}


int
llmd_plugin_is_filter(llmd_plugin_type_t type)
{
    return type == LLMD_PLUGIN_LABEL_FILTER
           || type == LLMD_PLUGIN_UTILIZATION_FILTER
           || type == LLMD_PLUGIN_SESSION_AFFINITY_FILTER
           || type == LLMD_PLUGIN_PREFIX_AFFINITY_FILTER
           || type == LLMD_PLUGIN_SATURATION_DETECTOR;
}


int
llmd_plugin_is_handler(llmd_plugin_type_t type)
{
    return type == LLMD_PLUGIN_SINGLE_PROFILE_HANDLER
           || type == LLMD_PLUGIN_DISAGG_PROFILE_HANDLER
           || type == LLMD_PLUGIN_PD_PROFILE_HANDLER
           || type == LLMD_PLUGIN_HEADER_PROFILE_HANDLER;
}


int
llmd_plugin_is_decider(llmd_plugin_type_t type)
{
    return type == LLMD_PLUGIN_PREFIX_PD_DECIDER
           || type == LLMD_PLUGIN_ALWAYS_PD_DECIDER
           || type == LLMD_PLUGIN_MULTIMODAL_DECIDER;
}


int
llmd_plugin_is_picker(llmd_plugin_type_t type)
{
    return type == LLMD_PLUGIN_MAX_SCORE_PICKER
           || type == LLMD_PLUGIN_RANDOM_PICKER
           || type == LLMD_PLUGIN_WEIGHTED_RANDOM_PICKER;
}


void
llmd_prefix_params_approximate(llmd_prefix_params_t *pp)
{
    memset(pp, 0, sizeof(llmd_prefix_params_t));

    pp->mode = LLMD_PREFIX_APPROXIMATE;
    pp->block_size = LLMD_PREFIX_DEFAULT_BLOCK_SIZE;
    pp->max_prefix_blocks = LLMD_PREFIX_DEFAULT_MAX_BLOCKS;
    pp->lru_capacity_per_server = LLMD_PREFIX_DEFAULT_LRU_CAPACITY;
}


llmd_plugin_t *
llmd_config_add_plugin(llmd_config_t *cf, const char *type_name,
    llmd_plugin_type_t type)
{
    llmd_plugin_t  *p;

    if (cf->nplugins >= LLMD_CONFIG_MAX_PLUGINS + 2) {
        return NULL;
    }

    p = &cf->plugins[cf->nplugins];
    memset(p, 0, sizeof(llmd_plugin_t));

    p->type = type;
    p->index = (uint32_t) cf->nplugins;
    p->type_name = strdup(type_name);
    p->name = strdup(type_name);
    cf->nplugins++;

    if (p->type_name == NULL || p->name == NULL) {
        return NULL;
    }

    return p;
}


llmd_plugin_t *
llmd_config_find_plugin(llmd_config_t *cf, const char *name)
{
    size_t  i;

    for (i = 0; i < cf->nplugins; i++) {
        if (strcmp(cf->plugins[i].name, name) == 0) {
            return &cf->plugins[i];
        }
    }

    return NULL;
}


llmd_profile_t *
llmd_config_find_profile(llmd_config_t *cf, const char *name)
{
    size_t  i;

    for (i = 0; i < cf->nprofiles; i++) {
        if (strcmp(cf->profiles[i].name, name) == 0) {
            return &cf->profiles[i];
        }
    }

    return NULL;
}


const llmd_profile_t *
llmd_config_primary_profile(const llmd_config_t *cf)
{
    if (cf->decode != NULL) {
        return cf->decode;
    }

    return cf->nprofiles ? &cf->profiles[0] : NULL;
}


const llmd_plugin_t *
llmd_profile_prefix_scorer(const llmd_profile_t *p)
{
    size_t  i;

    for (i = 0; i < p->nscorers; i++) {
        if (p->scorers[i].plugin->type == LLMD_PLUGIN_PREFIX_CACHE_SCORER) {
            return p->scorers[i].plugin;
        }
    }

    return NULL;
}


const llmd_plugin_t *
llmd_profile_prefix_plugin(const llmd_config_t *cf, const llmd_profile_t *p)
{
    size_t                      i;
    const llmd_plugin_t        *scorer;
    static llmd_plugin_t        dflt;
    static const char           name[] = "approx-prefix-cache-producer";

    scorer = llmd_profile_prefix_scorer(p);
    if (scorer != NULL) {
        return scorer;
    }

    for (i = 0; i < p->nfilters; i++) {
        if (p->filters[i]->type == LLMD_PLUGIN_PREFIX_AFFINITY_FILTER) {
            break;
        }
    }

    if (i == p->nfilters) {
        return NULL;
    }

    for (i = 0; i < cf->nplugins; i++) {
        if (cf->plugins[i].type == LLMD_PLUGIN_PREFIX_PRODUCER) {
            return &cf->plugins[i];
        }
    }

    /* the same every time: llm-d's approximate defaults */
    if (dflt.type == 0) {
        dflt.name = (char *) name;
        dflt.type_name = (char *) name;
        llmd_prefix_params_approximate(&dflt.u.prefix);
        dflt.type = LLMD_PLUGIN_PREFIX_PRODUCER;
    }

    return &dflt;
}


const llmd_plugin_t *
llmd_config_inflight_producer(const llmd_config_t *cf)
{
    size_t  i;

    for (i = 0; i < cf->nplugins; i++) {
        if (cf->plugins[i].type == LLMD_PLUGIN_INFLIGHT_PRODUCER) {
            return &cf->plugins[i];
        }
    }

    return NULL;
}


void
llmd_config_free(llmd_config_t *cf)
{
    size_t  i;

    if (cf == NULL) {
        return;
    }

    for (i = 0; i < cf->nplugins; i++) {
        free(cf->plugins[i].name);
        free(cf->plugins[i].type_name);
        free(cf->plugins[i].ref);
        llmd_plugin_free_params(&cf->plugins[i]);
    }

    for (i = 0; i < cf->nprofiles; i++) {
        free(cf->profiles[i].name);
    }

    for (i = 0; i < cf->nwarnings; i++) {
        free(cf->warnings[i]);
    }

    free(cf->plugins);
    free(cf->profiles);
    free(cf->warnings);
    free(cf->file);
    free(cf);
}


int
llmd_config_warn(llmd_config_t *cf, int line, const char *fmt, ...)
{
    int      n;
    char     buf[LLMD_ERRLEN];
    va_list  ap;

    if (cf->nwarnings >= LLMD_CONFIG_MAX_WARNINGS) {
        return 0;
    }

    n = snprintf(buf, sizeof(buf), "%s:%d: ", cf->file, line);
    if (n < 0 || (size_t) n >= sizeof(buf)) {
        n = 0;
    }

    va_start(ap, fmt);
    vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    va_end(ap);

    cf->warnings[cf->nwarnings] = strdup(buf);
    if (cf->warnings[cf->nwarnings] == NULL) {
        return -1;
    }

    cf->nwarnings++;
    return 0;
}


/* What the parameters of a plugin allocated (llmd_config_params.c). */
static void
llmd_plugin_free_params(llmd_plugin_t *p)
{
    switch (p->type) {

    case LLMD_PLUGIN_FILE_DISCOVERY:
        free(p->u.discovery.path);
        break;

    case LLMD_PLUGIN_LABEL_FILTER:
        llmd_selector_free(&p->u.selector);
        break;

    case LLMD_PLUGIN_UTILIZATION_FILTER:
        free(p->u.utilization.conds);
        break;

    case LLMD_PLUGIN_SESSION_AFFINITY_SCORER:
    case LLMD_PLUGIN_SESSION_AFFINITY_FILTER:
        free(p->u.session.profile_name);
        break;

    case LLMD_PLUGIN_DISAGG_PROFILE_HANDLER:
    case LLMD_PLUGIN_PD_PROFILE_HANDLER:
        free(p->u.disagg.decode);
        free(p->u.disagg.prefill);
        free(p->u.disagg.encode);
        free(p->u.disagg.prefill_decider_name);
        free(p->u.disagg.encode_decider_name);
        break;

    case LLMD_PLUGIN_HEADERS_HANDLER:
        free(p->u.headers.prefill);
        free(p->u.headers.encode);
        break;

    case LLMD_PLUGIN_HEADER_PROFILE_HANDLER:
        free(p->u.header_profile.default_profile);
        break;

    default:
        break;
    }
}


static void
llmd_selector_free(llmd_selector_t *sel)
{
    size_t             i, j;
    llmd_label_req_t  *r;

    for (i = 0; i < sel->nreqs; i++) {
        r = &sel->reqs[i];

        for (j = 0; j < r->nvalues; j++) {
            free(r->values[j]);
        }

        free(r->values);
        free(r->key);
    }

    free(sel->reqs);
}
