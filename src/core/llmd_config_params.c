/*
 * Plugin `parameters` of an EndpointPickerConfig: defaults per type and the
 * keys each type reads (docs/scheduling.md).
 * As in GIE, keys a plugin does not know are ignored, with a warning here.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/llmd_config_params.h"


static int llmd_prefix_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
static int llmd_precise_params(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *params, llmd_prefix_params_t *pp);
static int llmd_positive_uint(llmd_yaml_ctx_t *ctx, yaml_node_t *node,
    const char *what, uint32_t dflt, uint32_t *out);
static int llmd_copy_string(llmd_yaml_ctx_t *ctx, yaml_node_t *node,
    const char *what, char *dst, size_t size);
static int llmd_warn_unknown(llmd_config_t *cf, yaml_document_t *doc,
    yaml_node_t *params, const llmd_plugin_t *p, const char *const *known);


int
llmd_plugin_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    double                     v;
    const char                *s;
    yaml_node_t               *n;
    static const char *const   none[] = { NULL };
    static const char *const   load_aware[] = { "threshold", NULL };
    static const char *const   active[] = { "requestTimeout", NULL };
    static const char *const   picker[] = { "maxNumOfEndpoints", NULL };
    static const char *const   discovery[] = { "path", "watchFile", NULL };

    if (params != NULL && llmd_yaml_is_null(params)) {
        params = NULL;
    }

    if (params != NULL && params->type != YAML_MAPPING_NODE) {
        return llmd_yaml_error(ctx, params,
                               "parameters of plugin \"%s\" must be a mapping",
                               p->name);
    }

    switch (p->type) {

    case LLMD_PLUGIN_PREFIX_CACHE_SCORER:
        return llmd_prefix_params(ctx, cf, doc, params, p);

    case LLMD_PLUGIN_LOAD_AWARE_SCORER:
        p->u.load_aware.threshold = 128;
        n = llmd_yaml_get(doc, params, "threshold");
        if (n != NULL) {
            if (llmd_yaml_number(ctx, n, "threshold", &v) != 0) {
                return -1;
            }

            /* upstream: a threshold <= 0 falls back to the default */
            if (v > 0) {
                p->u.load_aware.threshold = v;
            }
        }

        return llmd_warn_unknown(cf, doc, params, p, load_aware);

    case LLMD_PLUGIN_ACTIVE_REQUEST_SCORER:
        p->u.active_request.request_timeout_ms = 120000;
        n = llmd_yaml_get(doc, params, "requestTimeout");
        if (n != NULL
            && llmd_yaml_duration_ms(ctx, n, "requestTimeout",
                                     &p->u.active_request.request_timeout_ms)
               != 0)
        {
            return -1;
        }

        if (p->u.active_request.request_timeout_ms == 0) {
            p->u.active_request.request_timeout_ms = 120000;
        }

        return llmd_warn_unknown(cf, doc, params, p, active);

    case LLMD_PLUGIN_FILE_DISCOVERY:
        n = llmd_yaml_get(doc, params, "path");
        if (n == NULL || llmd_yaml_is_null(n)) {
            snprintf(ctx->err, ctx->errlen, "%s:%d: file-discovery: 'path' "
                     "parameter is required", ctx->file, p->line);
            return -1;
        }

        if (llmd_yaml_string(ctx, n, "path", &s) != 0) {
            return -1;
        }

        if (s[0] == '\0') {
            return llmd_yaml_error(ctx, n, "file-discovery: 'path' "
                                   "parameter is required");
        }

        p->u.discovery.path = strdup(s);
        if (p->u.discovery.path == NULL) {
            return llmd_yaml_error(ctx, n, "out of memory");
        }

        n = llmd_yaml_get(doc, params, "watchFile");
        if (n != NULL && !llmd_yaml_is_null(n)
            && llmd_yaml_bool(ctx, n, "watchFile", &p->u.discovery.watch)
               != 0)
        {
            return -1;
        }

        return llmd_warn_unknown(cf, doc, params, p, discovery);

    case LLMD_PLUGIN_MAX_SCORE_PICKER:
    case LLMD_PLUGIN_RANDOM_PICKER:
    case LLMD_PLUGIN_WEIGHTED_RANDOM_PICKER:
        if (llmd_positive_uint(ctx,
                               llmd_yaml_get(doc, params, "maxNumOfEndpoints"),
                               "maxNumOfEndpoints", 1,
                               &p->u.picker.max_endpoints)
            != 0)
        {
            return -1;
        }

        return llmd_warn_unknown(cf, doc, params, p, picker);

    default:
        return llmd_warn_unknown(cf, doc, params, p, none);
    }
}


static int
llmd_prefix_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    uint32_t                   tokens;
    const char                *mode;
    yaml_node_t               *n;
    llmd_prefix_params_t      *pp;
    static const char *const   known[] = {
        "mode", "blockSize", "hashBlockSize", "blockSizeTokens",
        "maxPrefixBlocksToMatch", "maxPrefixTokensToMatch",
        "lruCapacityPerServer", "autoTune",
        "indexerConfig", "kvEventsConfig", "tokenizersPoolConfig",
        "prefixStoreConfig", NULL
    };

    pp = &p->u.prefix;
    llmd_prefix_params_approximate(pp);

    if (strcmp(p->type_name, "precise-prefix-cache-scorer") == 0) {
        pp->mode = LLMD_PREFIX_PRECISE;
    }

    n = llmd_yaml_get(doc, params, "mode");
    if (n != NULL) {
        if (llmd_yaml_string(ctx, n, "mode", &mode) != 0) {
            return -1;
        }

        if (strcmp(mode, "cache_tracking") == 0) {
            pp->mode = LLMD_PREFIX_PRECISE;

        } else if (strcmp(mode, "estimate") != 0) {
            return llmd_yaml_error(ctx, n, "mode must be \"estimate\" or "
                                   "\"cache_tracking\", not \"%s\"", mode);
        }
    }

    if (pp->mode == LLMD_PREFIX_PRECISE) {
        if (llmd_precise_params(ctx, doc, params, pp) != 0) {
            return -1;
        }

    } else {
        /* characters per block: blockSize, its old name, or tokens x 4 */
        if (llmd_positive_uint(ctx, llmd_yaml_get(doc, params, "blockSize"),
                               "blockSize", LLMD_PREFIX_DEFAULT_BLOCK_SIZE,
                               &pp->block_size)
            != 0
            || llmd_positive_uint(ctx,
                                  llmd_yaml_get(doc, params, "hashBlockSize"),
                                  "hashBlockSize", pp->block_size,
                                  &pp->block_size)
               != 0)
        {
            return -1;
        }

        n = llmd_yaml_get(doc, params, "blockSizeTokens");
        if (n != NULL) {
            if (llmd_positive_uint(ctx, n, "blockSizeTokens", 16, &tokens)
                != 0)
            {
                return -1;
            }

            if (tokens > (1u << 20)) {
                return llmd_yaml_error(ctx, n, "blockSizeTokens is too "
                                       "large");
            }

            pp->block_size = tokens * 4;
        }
    }

    if (llmd_positive_uint(ctx,
                           llmd_yaml_get(doc, params, "maxPrefixBlocksToMatch"),
                           "maxPrefixBlocksToMatch",
                           LLMD_PREFIX_DEFAULT_MAX_BLOCKS,
                           &pp->max_prefix_blocks)
        != 0
        || llmd_positive_uint(ctx,
                              llmd_yaml_get(doc, params,
                                            "lruCapacityPerServer"),
                              "lruCapacityPerServer",
                              LLMD_PREFIX_DEFAULT_LRU_CAPACITY,
                              &pp->lru_capacity_per_server)
           != 0)
    {
        return -1;
    }

    n = llmd_yaml_get(doc, params, "autoTune");
    if (n != NULL && llmd_yaml_bool(ctx, n, "autoTune", &pp->auto_tune) != 0) {
        return -1;
    }

    if (pp->block_size > (1u << 24)) {
        return llmd_yaml_error(ctx, params, "blockSize is too large");
    }

    return llmd_warn_unknown(cf, doc, params, p, known);
}


static int
llmd_precise_params(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *params, llmd_prefix_params_t *pp)
{
    yaml_node_t  *indexer, *tokens, *events, *n;

    /* KVCM defaults: 16-token blocks, empty seed, pods connect to us */
    pp->block_size = 16;
    strcpy(pp->zmq_endpoint, "tcp://*:5557");
    strcpy(pp->topic_filter, "kv@");

    indexer = llmd_yaml_get(doc, params, "indexerConfig");
    tokens = llmd_yaml_get(doc, indexer, "tokenProcessorConfig");

    if (llmd_positive_uint(ctx, llmd_yaml_get(doc, tokens, "blockSize"),
                           "tokenProcessorConfig.blockSize", 16,
                           &pp->block_size)
        != 0)
    {
        return -1;
    }

    if (pp->block_size > 4096) {
        return llmd_yaml_error(ctx, tokens, "tokenProcessorConfig.blockSize "
                               "must be at most 4096 tokens");
    }

    n = llmd_yaml_get(doc, tokens, "hashSeed");
    if (n != NULL
        && llmd_copy_string(ctx, n, "hashSeed", pp->hash_seed,
                            sizeof(pp->hash_seed))
           != 0)
    {
        return -1;
    }

    events = llmd_yaml_get(doc, params, "kvEventsConfig");

    n = llmd_yaml_get(doc, events, "zmqEndpoint");
    if (n != NULL
        && llmd_copy_string(ctx, n, "zmqEndpoint", pp->zmq_endpoint,
                            sizeof(pp->zmq_endpoint))
           != 0)
    {
        return -1;
    }

    n = llmd_yaml_get(doc, events, "topicFilter");
    if (n != NULL
        && llmd_copy_string(ctx, n, "topicFilter", pp->topic_filter,
                            sizeof(pp->topic_filter))
           != 0)
    {
        return -1;
    }

    return 0;
}


/* Absent, null or <= 0 gives the default, as upstream's integer params. */
static int
llmd_positive_uint(llmd_yaml_ctx_t *ctx, yaml_node_t *node, const char *what,
    uint32_t dflt, uint32_t *out)
{
    double  v;

    if (node == NULL || llmd_yaml_is_null(node)) {
        *out = dflt;
        return 0;
    }

    if (llmd_yaml_number(ctx, node, what, &v) != 0) {
        return -1;
    }

    /* trunc, not a cast: a double beyond int64_t does not cast */
    if (v != trunc(v)) {
        return llmd_yaml_error(ctx, node, "%s must be an integer", what);
    }

    if (v > 1e9) {
        return llmd_yaml_error(ctx, node, "%s is too large", what);
    }

    *out = v > 0 ? (uint32_t) v : dflt;
    return 0;
}


static int
llmd_copy_string(llmd_yaml_ctx_t *ctx, yaml_node_t *node, const char *what,
    char *dst, size_t size)
{
    size_t       len;
    const char  *s;

    if (llmd_yaml_string(ctx, node, what, &s) != 0) {
        return -1;
    }

    len = strlen(s);
    if (len >= size) {
        return llmd_yaml_error(ctx, node, "%s is longer than %zu bytes",
                               what, size - 1);
    }

    memcpy(dst, s, len + 1);
    return 0;
}


static int
llmd_warn_unknown(llmd_config_t *cf, yaml_document_t *doc,
    yaml_node_t *params, const llmd_plugin_t *p, const char *const *known)
{
    size_t             i;
    const char        *key;
    yaml_node_t       *kn;
    yaml_node_pair_t  *pair;

    if (params == NULL) {
        return 0;
    }

    for (pair = params->data.mapping.pairs.start;
         pair < params->data.mapping.pairs.top;
         pair++)
    {
        kn = yaml_document_get_node(doc, pair->key);
        key = llmd_yaml_scalar(kn);
        if (key == NULL) {
            continue;
        }

        for (i = 0; known[i] != NULL; i++) {
            if (strcmp(known[i], key) == 0) {
                break;
            }
        }

        if (known[i] == NULL
            && llmd_config_warn(cf, llmd_yaml_line(kn), "parameter \"%s\" of plugin \"%s\" "
                                "(%s) is not used; ignored", key, p->name,
                                p->type_name)
               != 0)
        {
            return -1;
        }
    }

    return 0;
}
