/*
 * Plugin `parameters` of an EndpointPickerConfig: defaults per type and the
 * keys each type reads (docs/scheduling.md), for scorers, pickers, the
 * prefix producer and discovery.
 * As in GIE, keys a plugin does not know are ignored, with a warning here.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/llmd_config_params.h"
#include "core/llmd_param.h"


static int llmd_prefix_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
static int llmd_precise_params(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *tokens, yaml_node_t *events, llmd_prefix_params_t *pp);
static int llmd_speculative_params(llmd_yaml_ctx_t *ctx,
    yaml_document_t *doc, yaml_node_t *params, llmd_prefix_params_t *pp);
static int llmd_match_length_params(llmd_yaml_ctx_t *ctx,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
static int llmd_producer_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
static int llmd_session_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
static int llmd_inflight_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);


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
    static const char *const   precise[] = {
        "tokenProcessorConfig", "indexerConfig", "kvEventsConfig",
        "speculativeIndexing", "speculativeTTL", NULL
    };
    static const char *const   nohit[] = {
        "lruSize", "prefixPluginType", "prefixPluginName",
        "prefixMatchInfoProducerName", NULL
    };
    static const char *const   token_load[] = {
        "queueThresholdTokens", "inFlightLoadProducerName", NULL
    };
    int64_t                    iv;

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

        return llmd_param_warn_unknown(cf, doc, params, p, load_aware);

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

        return llmd_param_warn_unknown(cf, doc, params, p, active);

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

        return llmd_param_warn_unknown(cf, doc, params, p, discovery);

    case LLMD_PLUGIN_MAX_SCORE_PICKER:
    case LLMD_PLUGIN_RANDOM_PICKER:
    case LLMD_PLUGIN_WEIGHTED_RANDOM_PICKER:
        if (llmd_param_uint(ctx,
                            llmd_yaml_get(doc, params, "maxNumOfEndpoints"),
                            "maxNumOfEndpoints", 1,
                            &p->u.picker.max_endpoints)
            != 0)
        {
            return -1;
        }

        return llmd_param_warn_unknown(cf, doc, params, p, picker);

    case LLMD_PLUGIN_PREFIX_PRODUCER:
        if (strcmp(p->type_name, "precise-prefix-cache-producer") == 0) {
            llmd_prefix_params_approximate(&p->u.prefix);
            p->u.prefix.mode = LLMD_PREFIX_PRECISE;

            if (llmd_precise_params(ctx, doc,
                                    llmd_yaml_get(doc, params,
                                                  "tokenProcessorConfig"),
                                    llmd_yaml_get(doc, params,
                                                  "kvEventsConfig"),
                                    &p->u.prefix)
                    != 0
                || llmd_speculative_params(ctx, doc, params, &p->u.prefix)
                   != 0)
            {
                return -1;
            }

            return llmd_param_warn_unknown(cf, doc, params, p, precise);
        }

        return llmd_producer_params(ctx, cf, doc, params, p);

    case LLMD_PLUGIN_SESSION_AFFINITY_SCORER:
    case LLMD_PLUGIN_SESSION_AFFINITY_FILTER:
        return llmd_session_params(ctx, cf, doc, params, p);

    case LLMD_PLUGIN_NO_HIT_LRU_SCORER:
        /* the prefix plugin it reads is the request's prefix match here */
        if (llmd_param_uint(ctx, llmd_yaml_get(doc, params, "lruSize"),
                            "lruSize", 1024, &p->u.nohit.lru_size)
            != 0)
        {
            return -1;
        }

        if (p->u.nohit.lru_size > 65536) {
            return llmd_yaml_error(ctx, llmd_yaml_get(doc, params, "lruSize"),
                                   "lruSize must be at most 65536");
        }

        return llmd_param_warn_unknown(cf, doc, params, p, nohit);

    case LLMD_PLUGIN_TOKEN_LOAD_SCORER:
        /* upstream: a threshold <= 0 falls back to the default */
        p->u.token_load.threshold_tokens = 4194304;
        if (llmd_param_int(ctx,
                           llmd_yaml_get(doc, params, "queueThresholdTokens"),
                           "queueThresholdTokens", &iv)
            != 0)
        {
            return -1;
        }

        if (iv > 0) {
            p->u.token_load.threshold_tokens = (double) iv;
        }

        return llmd_param_warn_unknown(cf, doc, params, p, token_load);

    case LLMD_PLUGIN_INFLIGHT_PRODUCER:
        return llmd_inflight_params(ctx, cf, doc, params, p);

    default:
        return llmd_param_warn_unknown(cf, doc, params, p, none);
    }
}


/*
 * inflight-load-producer: addEstimatedOutputTokens (false), outputRatio
 * (1.5, not negative), maxEstimatedOutputTokens (none, not negative).
 */
static int
llmd_inflight_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    double                     v;
    int64_t                    iv;
    yaml_node_t               *n;
    static const char *const   known[] = {
        "addEstimatedOutputTokens", "outputRatio",
        "maxEstimatedOutputTokens", "prefixMatchInfoProducerName",
        "syncCrossReplicaState", NULL
    };

    p->u.inflight.add_output = 0;
    p->u.inflight.output_ratio = 1.5;
    p->u.inflight.max_output = -1;

    n = llmd_yaml_get(doc, params, "addEstimatedOutputTokens");
    if (n != NULL && !llmd_yaml_is_null(n)
        && llmd_yaml_bool(ctx, n, "addEstimatedOutputTokens",
                          &p->u.inflight.add_output)
           != 0)
    {
        return -1;
    }

    n = llmd_yaml_get(doc, params, "outputRatio");
    if (n != NULL && !llmd_yaml_is_null(n)) {
        if (llmd_yaml_number(ctx, n, "outputRatio", &v) != 0) {
            return -1;
        }

        if (v < 0) {
            return llmd_yaml_error(ctx, n, "outputRatio must be "
                                   "non-negative, got %g", v);
        }

        p->u.inflight.output_ratio = v;
    }

    n = llmd_yaml_get(doc, params, "maxEstimatedOutputTokens");
    if (n != NULL && !llmd_yaml_is_null(n)) {
        if (llmd_param_int(ctx, n, "maxEstimatedOutputTokens", &iv) != 0) {
            return -1;
        }

        if (iv < 0) {
            return llmd_yaml_error(ctx, n, "maxEstimatedOutputTokens must "
                                   "be non-negative, got %lld",
                                   (long long) iv);
        }

        p->u.inflight.max_output = iv;
    }

    return llmd_param_warn_unknown(cf, doc, params, p, known);
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
        "speculativeIndexing", "speculativeTTL",
        "prefixStoreConfig", "matchLengthWeight", "matchLengthScaleTokens",
        "prefixMatchInfoProducerName", NULL
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
        n = llmd_yaml_get(doc, params, "indexerConfig");

        if (llmd_precise_params(ctx, doc,
                                llmd_yaml_get(doc, n, "tokenProcessorConfig"),
                                llmd_yaml_get(doc, params, "kvEventsConfig"),
                                pp)
                != 0
            || llmd_speculative_params(ctx, doc, params, pp) != 0)
        {
            return -1;
        }

    } else {
        /* characters per block: blockSize, its old name, or tokens x 4 */
        if (llmd_param_uint(ctx, llmd_yaml_get(doc, params, "blockSize"),
                            "blockSize", LLMD_PREFIX_DEFAULT_BLOCK_SIZE,
                            &pp->block_size)
            != 0
            || llmd_param_uint(ctx,
                               llmd_yaml_get(doc, params, "hashBlockSize"),
                               "hashBlockSize", pp->block_size,
                               &pp->block_size)
               != 0)
        {
            return -1;
        }

        n = llmd_yaml_get(doc, params, "blockSizeTokens");
        if (n != NULL) {
            if (llmd_param_uint(ctx, n, "blockSizeTokens", 16, &tokens)
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

    if (llmd_param_uint(ctx,
                        llmd_yaml_get(doc, params, "maxPrefixBlocksToMatch"),
                        "maxPrefixBlocksToMatch",
                        LLMD_PREFIX_DEFAULT_MAX_BLOCKS,
                        &pp->max_prefix_blocks)
        != 0
        || llmd_param_uint(ctx,
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

    if (llmd_match_length_params(ctx, doc, params, p) != 0) {
        return -1;
    }

    /* the producer whose index this scorer reads (llmd_config.c) */
    if (llmd_param_strdup(ctx,
                          llmd_yaml_get(doc, params,
                                        "prefixMatchInfoProducerName"),
                          "prefixMatchInfoProducerName", NULL, &p->ref)
        != 0)
    {
        return -1;
    }

    return llmd_param_warn_unknown(cf, doc, params, p, known);
}


/* The absolute match length share of the prefix score (llm-d >= v0.7). */
static int
llmd_match_length_params(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *params, llmd_plugin_t *p)
{
    double        w;
    yaml_node_t  *n;

    p->u.prefix.match_length_weight = 0;

    n = llmd_yaml_get(doc, params, "matchLengthWeight");
    if (n != NULL && !llmd_yaml_is_null(n)) {
        if (llmd_yaml_number(ctx, n, "matchLengthWeight", &w) != 0) {
            return -1;
        }

        if (!(w >= 0 && w <= 1)) {
            return llmd_yaml_error(ctx, n, "matchLengthWeight must be "
                                   "between 0.0 and 1.0, not %g", w);
        }

        p->u.prefix.match_length_weight = w;
    }

    return llmd_param_uint(ctx,
                           llmd_yaml_get(doc, params,
                                         "matchLengthScaleTokens"),
                           "matchLengthScaleTokens", 8192,
                           &p->u.prefix.match_length_scale_tokens);
}


/*
 * approx-prefix-cache-producer (llm-d >= v0.7 moved the approximate index
 * out of prefix-cache-scorer): its index parameters, in the scorer's units
 * (characters per block, 4 per token), with the producer's defaults.
 */
static int
llmd_producer_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    uint32_t                   tokens, max_tokens, max_blocks;
    yaml_node_t               *n;
    llmd_prefix_params_t      *pp;
    static const char *const   known[] = {
        "autoTune", "blockSizeTokens", "maxPrefixBlocksToMatch",
        "maxPrefixTokensToMatch", "lruCapacityPerServer", "blockSize", NULL
    };

    pp = &p->u.prefix;
    llmd_prefix_params_approximate(pp);
    pp->auto_tune = 1;

    if (llmd_param_count(ctx, llmd_yaml_get(doc, params, "blockSizeTokens"),
                         "blockSizeTokens", 16, &tokens)
        != 0
        || llmd_param_count(ctx,
                            llmd_yaml_get(doc, params,
                                          "maxPrefixTokensToMatch"),
                            "maxPrefixTokensToMatch", 131072, &max_tokens)
           != 0
        || llmd_param_count(ctx,
                            llmd_yaml_get(doc, params,
                                          "maxPrefixBlocksToMatch"),
                            "maxPrefixBlocksToMatch", 2048, &max_blocks)
           != 0
        || llmd_param_uint(ctx,
                           llmd_yaml_get(doc, params, "lruCapacityPerServer"),
                           "lruCapacityPerServer",
                           LLMD_PREFIX_DEFAULT_LRU_CAPACITY,
                           &pp->lru_capacity_per_server)
           != 0)
    {
        return -1;
    }

    if (tokens == 0) {
        tokens = 16;
    }

    if (tokens > (1u << 20)) {
        return llmd_yaml_error(ctx, params, "blockSizeTokens is too large");
    }

    pp->block_size = tokens * 4;

    /* the deprecated character block size wins when given */
    n = llmd_yaml_get(doc, params, "blockSize");
    if (n != NULL
        && llmd_param_uint(ctx, n, "blockSize", pp->block_size,
                           &pp->block_size)
           != 0)
    {
        return -1;
    }

    /* a token cap takes precedence; both 0 match the whole prompt, which
       here is bounded by LLMD_PREFIX_MAX_BLOCKS */
    if (max_tokens > 0) {
        max_blocks = max_tokens / tokens;
    }

    if (max_blocks == 0 || max_blocks > LLMD_PREFIX_MAX_BLOCKS) {
        max_blocks = LLMD_PREFIX_MAX_BLOCKS;
    }

    pp->max_prefix_blocks = max_blocks;

    n = llmd_yaml_get(doc, params, "autoTune");
    if (n != NULL && !llmd_yaml_is_null(n)
        && llmd_yaml_bool(ctx, n, "autoTune", &pp->auto_tune) != 0)
    {
        return -1;
    }

    return llmd_param_warn_unknown(cf, doc, params, p, known);
}


/*
 * session-affinity-scorer and -filter: the encoded_endpoint_header strategy
 * (the glue decodes the header to a candidate); session_id keeps bindings
 * on the server, which this module does not.
 */
static int
llmd_session_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    const char                *s;
    yaml_node_t               *n, *hn;
    static const char *const   known[] = {
        "strategy", "profileName", "encodedEndpointHeaderConfig",
        "sessionIdConfig", NULL
    };

    n = llmd_yaml_get(doc, params, "strategy");
    if (n != NULL && !llmd_yaml_is_null(n)) {
        if (llmd_yaml_string(ctx, n, "strategy", &s) != 0) {
            return -1;
        }

        if (strcmp(s, "session_id") == 0) {
            return llmd_yaml_error(ctx, n, "%s: strategy \"session_id\" is "
                                   "not supported by ngx_http_llmd_module "
                                   "(use encoded_endpoint_header)",
                                   p->type_name);
        }

        if (s[0] != '\0' && strcmp(s, "encoded_endpoint_header") != 0) {
            return llmd_yaml_error(ctx, n, "strategy must be "
                                   "\"encoded_endpoint_header\" or "
                                   "\"session_id\", got \"%s\"", s);
        }
    }

    hn = llmd_yaml_get(doc,
                       llmd_yaml_get(doc, params,
                                     "encodedEndpointHeaderConfig"),
                       "header");

    if (llmd_param_header(ctx, hn, "header", "x-session-token",
                          p->u.session.header, sizeof(p->u.session.header))
        != 0)
    {
        return -1;
    }

    if (llmd_param_strdup(ctx, llmd_yaml_get(doc, params, "profileName"),
                          "profileName", NULL, &p->u.session.profile_name)
        != 0)
    {
        return -1;
    }

    return llmd_param_warn_unknown(cf, doc, params, p, known);
}


/*
 * precise-prefix-cache-producer's speculativeIndexing (false: no speculative
 * entries) and speculativeTTL (2s): after a pick, the request's blocks count
 * as cached on the picked pod for that long.
 */
static int
llmd_speculative_params(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *params, llmd_prefix_params_t *pp)
{
    yaml_node_t  *n;

    pp->speculative = 0;
    pp->speculative_ttl_ms = 2000;

    n = llmd_yaml_get(doc, params, "speculativeIndexing");
    if (n != NULL
        && llmd_yaml_bool(ctx, n, "speculativeIndexing", &pp->speculative)
           != 0)
    {
        return -1;
    }

    n = llmd_yaml_get(doc, params, "speculativeTTL");
    if (n != NULL
        && llmd_yaml_duration_ms(ctx, n, "speculativeTTL",
                                 &pp->speculative_ttl_ms)
           != 0)
    {
        return -1;
    }

    if (pp->speculative_ttl_ms > 3600 * 1000) {
        return llmd_yaml_error(ctx, n, "speculativeTTL must be at most 1h");
    }

    return 0;
}


/*
 * Precise scoring's tokenProcessorConfig (blockSize, alias blockSizeTokens;
 * hashSeed) and kvEventsConfig (zmqEndpoint, topicFilter).
 */
static int
llmd_precise_params(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *tokens, yaml_node_t *events, llmd_prefix_params_t *pp)
{
    yaml_node_t  *n;

    /* KVCM defaults: 16-token blocks, empty seed, pods connect to us */
    pp->block_size = 16;
    strcpy(pp->zmq_endpoint, "tcp://*:5557");
    strcpy(pp->topic_filter, "kv@");

    n = llmd_yaml_get(doc, tokens, "blockSize");
    if (n == NULL) {
        n = llmd_yaml_get(doc, tokens, "blockSizeTokens");
    }

    if (llmd_param_uint(ctx, n, "tokenProcessorConfig.blockSize", 16,
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
        && llmd_param_copy(ctx, n, "hashSeed", pp->hash_seed,
                           sizeof(pp->hash_seed))
           != 0)
    {
        return -1;
    }

    n = llmd_yaml_get(doc, events, "zmqEndpoint");
    if (n != NULL
        && llmd_param_copy(ctx, n, "zmqEndpoint", pp->zmq_endpoint,
                           sizeof(pp->zmq_endpoint))
           != 0)
    {
        return -1;
    }

    n = llmd_yaml_get(doc, events, "topicFilter");
    if (n != NULL
        && llmd_param_copy(ctx, n, "topicFilter", pp->topic_filter,
                           sizeof(pp->topic_filter))
           != 0)
    {
        return -1;
    }

    return 0;
}
