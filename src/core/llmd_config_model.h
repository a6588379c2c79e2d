/*
 * The llm-d EndpointPickerConfig model: plugin types and their parameters,
 * scheduling profiles, and the operations on a loaded configuration. The
 * YAML loader (llmd_config.h) builds it; the scheduler and the nginx glue
 * read it.
 */
#ifndef LLMD_CONFIG_MODEL_H
#define LLMD_CONFIG_MODEL_H

#include "core/llmd_common.h"

/* Bounds that keep a hostile file from growing the model without limit. */
#define LLMD_CONFIG_MAX_PLUGINS    64
#define LLMD_CONFIG_MAX_PROFILES   16
#define LLMD_CONFIG_MAX_WARNINGS   64
#define LLMD_CONFIG_MAX_BYTES      (1024 * 1024)

/* llm-d's approximate prefix-cache scorer defaults. */
#define LLMD_PREFIX_DEFAULT_BLOCK_SIZE      64      /* characters */
#define LLMD_PREFIX_DEFAULT_MAX_BLOCKS      256
#define LLMD_PREFIX_DEFAULT_LRU_CAPACITY    31250   /* blocks per server */

typedef enum {
    LLMD_PLUGIN_QUEUE_SCORER = 1,
    LLMD_PLUGIN_KV_CACHE_SCORER,          /* alias kv-cache-utilization-scorer */
    LLMD_PLUGIN_PREFIX_CACHE_SCORER,      /* approximate or precise: see mode */
    LLMD_PLUGIN_LOAD_AWARE_SCORER,
    LLMD_PLUGIN_ACTIVE_REQUEST_SCORER,
    LLMD_PLUGIN_MAX_SCORE_PICKER,
    LLMD_PLUGIN_RANDOM_PICKER,
    LLMD_PLUGIN_WEIGHTED_RANDOM_PICKER,
    LLMD_PLUGIN_SINGLE_PROFILE_HANDLER,
    LLMD_PLUGIN_FILE_DISCOVERY            /* dataLayer.discovery */
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
        struct { char *path; int watch; } discovery;      /* file-discovery */
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
    llmd_plugin_t   *discovery;        /* dataLayer.discovery, or NULL */
    char           **warnings;         /* e.g. unsupported parameters ignored */
    size_t           nwarnings;
} llmd_config_t;

/*
 * Appends a warning "FILE:LINE: message" to cf; returns -1 only when out of
 * memory.  Warnings beyond LLMD_CONFIG_MAX_WARNINGS are dropped.
 */
int llmd_config_warn(llmd_config_t *cf, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A new plugin of the given type, named after it, appended to cf (room for
 * two injected plugins is reserved beyond LLMD_CONFIG_MAX_PLUGINS); NULL
 * when out of room or memory.
 */
llmd_plugin_t *llmd_config_add_plugin(llmd_config_t *cf,
    const char *type_name, llmd_plugin_type_t type);

/* The plugin with this name, or NULL. */
llmd_plugin_t *llmd_config_find_plugin(llmd_config_t *cf, const char *name);

/* Whether the type is a scorer / a picker. */
int llmd_plugin_is_scorer(llmd_plugin_type_t type);
int llmd_plugin_is_picker(llmd_plugin_type_t type);

/* llm-d's approximate prefix-cache scorer with its default parameters. */
void llmd_prefix_params_approximate(llmd_prefix_params_t *pp);

/* The profile whose result routes the request (single-profile-handler). */
const llmd_profile_t *llmd_config_primary_profile(const llmd_config_t *cf);

/* The first prefix-cache scorer referenced by the profile, or NULL. */
const llmd_plugin_t *llmd_profile_prefix_scorer(const llmd_profile_t *p);

void llmd_config_free(llmd_config_t *cf);

#endif /* LLMD_CONFIG_MODEL_H */
