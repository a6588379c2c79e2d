/*
 * The llm-d EndpointPickerConfig model and its YAML loader (libyaml).
 * Accepts both apiVersions (inference.networking.x-k8s.io/v1alpha1 and
 * llm-d.ai/v1alpha1), old and new plugin names, and applies the GIE >= v1.0
 * defaulting rules (../shared/spec/llmd-scheduling.md sections 1.1-1.4).
 */
#ifndef LLMD_CONFIG_H
#define LLMD_CONFIG_H

#include "core/llmd_common.h"

typedef enum {
    LLMD_PLUGIN_QUEUE_SCORER = 1,
    LLMD_PLUGIN_KV_CACHE_SCORER,          /* alias kv-cache-utilization-scorer */
    LLMD_PLUGIN_PREFIX_CACHE_SCORER,      /* approximate or precise: see mode */
    LLMD_PLUGIN_LOAD_AWARE_SCORER,
    LLMD_PLUGIN_ACTIVE_REQUEST_SCORER,
    LLMD_PLUGIN_MAX_SCORE_PICKER,
    LLMD_PLUGIN_RANDOM_PICKER,
    LLMD_PLUGIN_WEIGHTED_RANDOM_PICKER,
    LLMD_PLUGIN_SINGLE_PROFILE_HANDLER
} llmd_plugin_type_t;

typedef enum {
    LLMD_PREFIX_APPROXIMATE = 0,          /* learned from routed traffic */
    LLMD_PREFIX_PRECISE                   /* vLLM KV events (mode: cache_tracking,
                                             precise-prefix-cache-scorer) */
} llmd_prefix_mode_t;

typedef struct {
    llmd_prefix_mode_t  mode;
    uint32_t            block_size;        /* approximate: characters (64);
                                              precise: tokens (16) */
    uint32_t            max_prefix_blocks; /* 256 */
    uint32_t            lru_capacity_per_server; /* 31250 */
    int                 auto_tune;         /* 0 unless set true */
    /* precise mode (indexerConfig / kvEventsConfig) */
    char                hash_seed[64];     /* tokenProcessorConfig.hashSeed */
    char                zmq_endpoint[256]; /* kvEventsConfig.zmqEndpoint */
    char                topic_filter[64];  /* kvEventsConfig.topicFilter "kv@" */
} llmd_prefix_params_t;

typedef struct {
    char                  *name;       /* unique; defaults to the type */
    char                  *type_name;  /* as written in the file */
    llmd_plugin_type_t     type;
    int                    line;       /* 1-based line in the file */
    union {
        llmd_prefix_params_t  prefix;
        struct { double threshold; } load_aware;          /* 128 */
        struct { uint64_t request_timeout_ms; } active_request; /* 120000 */
        struct { uint32_t max_endpoints; } picker;        /* 1 */
    } u;
} llmd_plugin_t;

typedef struct {
    llmd_plugin_t  *plugin;
    double          weight;            /* >= 0; defaults to 1 */
} llmd_scorer_ref_t;

typedef struct {
    char               *name;
    llmd_scorer_ref_t   scorers[LLMD_MAX_SCORERS];
    size_t              nscorers;
    llmd_plugin_t      *picker;        /* never NULL after loading */
} llmd_profile_t;

typedef struct {
    char            *file;             /* path, or "<default>" */
    llmd_plugin_t   *plugins;
    size_t           nplugins;
    llmd_profile_t  *profiles;
    size_t           nprofiles;
    llmd_plugin_t   *handler;          /* never NULL after loading */
    char           **warnings;         /* e.g. unsupported parameters ignored */
    size_t           nwarnings;
} llmd_config_t;

/*
 * Load a file. On error returns NULL and writes "FILE:LINE: message" into
 * err (errlen >= LLMD_ERRLEN recommended).
 */
llmd_config_t *llmd_config_load_file(const char *path, char *err,
    size_t errlen);

/* Same, from memory; name is used in messages in place of a path. */
llmd_config_t *llmd_config_load_string(const char *yaml, size_t len,
    const char *name, char *err, size_t errlen);

/*
 * llm-d's built-in default (GIE >= v1.4): queue-scorer 2,
 * kv-cache-utilization-scorer 2, prefix-cache-scorer 3, max-score-picker,
 * single-profile-handler.
 */
llmd_config_t *llmd_config_default(char *err, size_t errlen);

/* The profile whose result routes the request (single-profile-handler). */
const llmd_profile_t *llmd_config_primary_profile(const llmd_config_t *cf);

/* The first prefix-cache scorer referenced by the profile, or NULL. */
const llmd_plugin_t *llmd_profile_prefix_scorer(const llmd_profile_t *p);

void llmd_config_free(llmd_config_t *cf);

#endif /* LLMD_CONFIG_H */
