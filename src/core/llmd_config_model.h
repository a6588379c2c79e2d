/*
 * The llm-d EndpointPickerConfig model: plugin types and their parameters,
 * scheduling profiles (filters, scorers, picker), the profile handler and
 * the stages it runs, and the operations on a loaded configuration. The
 * YAML loader (llmd_config.h) builds it; the scheduler, llmd_decide() and
 * the nginx glue read it.
 */
#ifndef LLMD_CONFIG_MODEL_H
#define LLMD_CONFIG_MODEL_H

#include "core/llmd_common.h"
#include "core/llmd_saturation.h"
#include "core/llmd_flowq.h"

/* Bounds that keep a hostile file from growing the model without limit. */
#define LLMD_CONFIG_MAX_PLUGINS    64
#define LLMD_CONFIG_MAX_PROFILES   16
#define LLMD_CONFIG_MAX_WARNINGS   64
#define LLMD_CONFIG_MAX_FILTERS    16      /* per profile */
#define LLMD_CONFIG_MAX_VALUES     64      /* per label requirement */
#define LLMD_CONFIG_MAX_REQS       32      /* per label selector */
#define LLMD_CONFIG_MAX_BYTES      (1024 * 1024)

/* llm-d's approximate prefix-cache scorer defaults. */
#define LLMD_PREFIX_DEFAULT_BLOCK_SIZE      64      /* characters */
#define LLMD_PREFIX_DEFAULT_MAX_BLOCKS      256
#define LLMD_PREFIX_DEFAULT_LRU_CAPACITY    31250   /* blocks per server */
/* The most blocks of a prompt matched, whatever the configuration asks. */
#define LLMD_PREFIX_MAX_BLOCKS              32768

typedef enum {
    LLMD_PLUGIN_QUEUE_SCORER = 1,
    /* alias kv-cache-utilization-scorer */
    LLMD_PLUGIN_KV_CACHE_SCORER,
    LLMD_PLUGIN_PREFIX_CACHE_SCORER,      /* approximate or precise: see mode */
    LLMD_PLUGIN_LOAD_AWARE_SCORER,
    LLMD_PLUGIN_ACTIVE_REQUEST_SCORER,
    LLMD_PLUGIN_MAX_SCORE_PICKER,
    LLMD_PLUGIN_RANDOM_PICKER,
    LLMD_PLUGIN_WEIGHTED_RANDOM_PICKER,
    LLMD_PLUGIN_SINGLE_PROFILE_HANDLER,
    LLMD_PLUGIN_FILE_DISCOVERY,           /* dataLayer.discovery */
    /* scorers */
    LLMD_PLUGIN_RUNNING_REQUESTS_SCORER,  /* running-requests-size-scorer */
    LLMD_PLUGIN_SESSION_AFFINITY_SCORER,
    LLMD_PLUGIN_LORA_AFFINITY_SCORER,
    LLMD_PLUGIN_NO_HIT_LRU_SCORER,
    /* filters */
    LLMD_PLUGIN_LABEL_FILTER,             /* decode-, prefill-, encode-filter,
                                             by-label, label-selector-filter,
                                             by-label-selector */
    LLMD_PLUGIN_UTILIZATION_FILTER,
    LLMD_PLUGIN_SESSION_AFFINITY_FILTER,
    /* profile handlers */
    LLMD_PLUGIN_DISAGG_PROFILE_HANDLER,
    LLMD_PLUGIN_PD_PROFILE_HANDLER,       /* deprecated */
    LLMD_PLUGIN_HEADER_PROFILE_HANDLER,
    /* deciders of the disaggregation handlers */
    LLMD_PLUGIN_PREFIX_PD_DECIDER,        /* prefix-based-pd-decider */
    LLMD_PLUGIN_ALWAYS_PD_DECIDER,        /* always-disagg-pd-decider */
    LLMD_PLUGIN_MULTIMODAL_DECIDER,       /* always-disagg-multimodal-decider */
    /* others */
    LLMD_PLUGIN_HEADERS_HANDLER,          /* prefill-header-handler,
                                             disagg-headers-handler
                                             (deprecated PreRequest) */
    LLMD_PLUGIN_PREFIX_PRODUCER,          /* approx- and
                                             precise-prefix-cache-producer */
    LLMD_PLUGIN_DATA_LAYER,               /* token-producer, metrics sources
                                             and extractors: the module
                                             does their work itself */
    /* in-flight load (llmd_inflight.h) */
    LLMD_PLUGIN_TOKEN_LOAD_SCORER,        /* token-load-scorer */
    LLMD_PLUGIN_PREFIX_AFFINITY_FILTER,   /* prefix-cache-affinity-filter */
    LLMD_PLUGIN_INFLIGHT_PRODUCER,        /* inflight-load-producer: how
                                             in-flight tokens are counted */
    /* flow control (llmd_config_flow.c) */
    LLMD_PLUGIN_SATURATION_DETECTOR,      /* utilization-, concurrency-
                                             detector */
    LLMD_PLUGIN_FAIRNESS_POLICY,          /* global-strict-, round-robin-
                                             fairness-policy */
    LLMD_PLUGIN_ORDERING_POLICY,          /* fcfs-, edf-ordering-policy */
    LLMD_PLUGIN_USAGE_LIMIT_POLICY        /* static-usage-limit-policy */
} llmd_plugin_type_t;

typedef enum {
    LLMD_PREFIX_APPROXIMATE = 0,          /* learned from routed traffic */
    /* vLLM KV events (mode: cache_tracking, precise-prefix-cache-scorer) */
    LLMD_PREFIX_PRECISE
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
    /* kvEventsConfig.topicFilter "kv@" */
    char                topic_filter[64];
    int                 speculative;       /* speculativeIndexing (false) */
    uint64_t            speculative_ttl_ms; /* speculativeTTL (2s) */
    /* prefix-cache-scorer: score = w * min(1, tokens / scale)^2
       + (1 - w) * matched / total */
    double              match_length_weight;       /* 0 */
    uint32_t            match_length_scale_tokens; /* 8192 */
} llmd_prefix_params_t;

/* One requirement of a Kubernetes label selector, on the key's value. */
typedef enum {
    LLMD_LABEL_IN = 0,                 /* present, value in values */
    LLMD_LABEL_NOT_IN,                 /* absent, or value not in values */
    LLMD_LABEL_EXISTS,
    LLMD_LABEL_NOT_EXISTS,
    LLMD_LABEL_ONE_OF                  /* by-label: the value (absent = "")
                                          is in values, or absent_ok and
                                          the label is absent */
} llmd_label_op_t;

typedef struct {
    char             *key;
    llmd_label_op_t   op;
    int               absent_ok;       /* LLMD_LABEL_ONE_OF: allowsNoLabel */
    char            **values;
    size_t            nvalues;
} llmd_label_req_t;

/* Every requirement must hold; none: every endpoint passes. */
typedef struct {
    llmd_label_req_t  *reqs;
    size_t             nreqs;
} llmd_selector_t;

typedef enum {
    LLMD_METRIC_ACTIVE_REQUESTS = 0,   /* in flight from this balancer */
    LLMD_METRIC_RUNNING_REQUESTS,
    LLMD_METRIC_WAITING_QUEUE,
    LLMD_METRIC_KV_CACHE_UTILIZATION
} llmd_metric_t;

typedef struct {
    llmd_metric_t  metric;
    double         max_value;
} llmd_util_cond_t;

/* session-affinity-scorer and -filter (strategy encoded_endpoint_header) */
typedef struct {
    char   header[64];       /* lowercase; "x-session-token" */
    char  *profile_name;     /* profileName: the stage whose pick the
                                response header names; NULL = primary */
} llmd_session_params_t;

/* disagg-profile-handler and the deprecated pd-profile-handler */
typedef struct {
    char            *decode;           /* profile names: "decode" */
    char            *prefill;          /* "prefill" */
    char            *encode;           /* "encode" (disagg only) */
    char            *prefill_decider_name;
    char            *encode_decider_name;
    struct llmd_plugin_s  *prefill_decider;  /* resolved, or NULL: the
                                                stage never runs (disagg)
                                                or legacy rule (pd) */
    struct llmd_plugin_s  *encode_decider;
    int              prefill_first;    /* stageOrder: prefill-first */
    /* pd-profile-handler without a decider (llm-d <= v0.4): prefill runs
       unless the uncached prompt is shorter than threshold characters */
    uint32_t         threshold;        /* 0: always */
    uint32_t         hash_block_size;  /* 64 */
    uint32_t         primary_port;     /* accepted, not used */
} llmd_disagg_params_t;

typedef struct llmd_plugin_s {
    char                  *name;       /* unique; defaults to the type */
    char                  *type_name;  /* as written in the file */
    llmd_plugin_type_t     type;
    int                    line;       /* 1-based line in the file */
    uint32_t               index;      /* position in cf->plugins: the
                                          index of llmd_decide()'s
                                          per-plugin inputs */
    char                  *ref;        /* prefix-cache-scorer:
                                          prefixMatchInfoProducerName */
    union {
        llmd_prefix_params_t  prefix;  /* and the prefix producers */
        struct { double threshold; } load_aware;          /* 128 */
        struct { uint64_t request_timeout_ms; } active_request; /* 120000 */
        struct { char *path; int watch; } discovery;      /* file-discovery */
        struct { uint32_t max_endpoints; } picker;        /* 1 */
        llmd_selector_t        selector;                  /* label filters */
        struct {
            llmd_util_cond_t  *conds;
            size_t             nconds;
            int                fallback_on_empty;
        } utilization;
        llmd_session_params_t  session;
        struct { uint32_t lru_size; } nohit;              /* 1024 */
        llmd_disagg_params_t   disagg;
        struct { char *prefill; char *encode; } headers;  /* profile names */
        struct { char header[64]; char *default_profile; } header_profile;
        struct {
            uint32_t  non_cached_tokens;                  /* 0: never */
            uint32_t  prompt_tokens;                      /* 0: no gate */
        } pd_decider;
        struct { double threshold_tokens; } token_load;   /* 4194304 */
        struct {
            double    affinity_threshold;                 /* 0.80 */
            double    exploration;                        /* 0 */
            double    max_ttft_penalty_ms;                /* 18000 */
            double    peak_prefill_throughput;            /* 15928 tok/s */
        } affinity;
        struct {
            int       add_output;       /* addEstimatedOutputTokens 0 */
            double    output_ratio;     /* 1.5 */
            int64_t   max_output;       /* maxEstimatedOutputTokens, -1 */
        } inflight;
        llmd_sat_params_t      saturation;
        llmd_fairness_t        fairness;
    } u;
} llmd_plugin_t;

typedef struct {
    llmd_plugin_t  *plugin;
    double          weight;            /* >= 0; defaults to 1 */
} llmd_scorer_ref_t;

typedef struct {
    char               *name;
    llmd_plugin_t      *filters[LLMD_CONFIG_MAX_FILTERS]; /* in order */
    size_t              nfilters;
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
    /* the stages the handler runs (disagg-, pd-profile-handler); decode is
       the primary profile, whose result routes the request */
    llmd_profile_t  *decode;           /* never NULL after loading */
    llmd_profile_t  *prefill;          /* NULL: no prefill stage */
    llmd_profile_t  *encode;           /* NULL: no encode stage */
    int              prefill_header;   /* a prefill pick goes into the
                                          x-prefiller-host-port header */
    int              encode_header;    /* encode picks go into
                                          x-encoder-hosts-ports */
    llmd_plugin_t   *discovery;        /* dataLayer.discovery, or NULL */
    /* flow control: featureGates, flowControl, saturationDetector */
    llmd_sat_params_t  saturation;     /* the detector in force */
    const char      *detector_name;    /* its plugin, or NULL: built-in */
    llmd_flow_params_t  flow;
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

/* Whether the type is a scorer / a picker / a filter / a profile handler /
   a decider of the disaggregation handlers. */
int llmd_plugin_is_scorer(llmd_plugin_type_t type);
int llmd_plugin_is_picker(llmd_plugin_type_t type);
int llmd_plugin_is_filter(llmd_plugin_type_t type);
int llmd_plugin_is_handler(llmd_plugin_type_t type);
int llmd_plugin_is_decider(llmd_plugin_type_t type);

/* llm-d's approximate prefix-cache scorer with its default parameters. */
void llmd_prefix_params_approximate(llmd_prefix_params_t *pp);

/* The profile with this name, or NULL. */
llmd_profile_t *llmd_config_find_profile(llmd_config_t *cf, const char *name);

/*
 * The profile whose result routes the request: the one profile, the decode
 * profile of a disaggregation handler, or header-profile-handler's default.
 */
const llmd_profile_t *llmd_config_primary_profile(const llmd_config_t *cf);

/* The first prefix-cache scorer referenced by the profile, or NULL. */
const llmd_plugin_t *llmd_profile_prefix_scorer(const llmd_profile_t *p);

/*
 * Whose prefix parameters the profile's prefix match uses: its first
 * prefix-cache scorer; else, when it has a prefix-cache-affinity-filter,
 * the configuration's first prefix cache producer, or a built-in one with
 * llm-d's approximate defaults; else NULL (no prefix match).
 */
const llmd_plugin_t *llmd_profile_prefix_plugin(const llmd_config_t *cf,
    const llmd_profile_t *p);

/* The configuration's inflight-load-producer, or NULL. */
const llmd_plugin_t *llmd_config_inflight_producer(const llmd_config_t *cf);

void llmd_config_free(llmd_config_t *cf);

#endif /* LLMD_CONFIG_MODEL_H */
