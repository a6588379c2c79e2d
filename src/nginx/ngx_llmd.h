/*
 * nginx glue of ngx_http_llmd_module: the types shared by the directive
 * handlers, the balancer, the helper process and the status page. The
 * scheduling itself lives in the plain-C layers below (src/core, src/kv,
 * src/tokenizer); this folder is the only code that includes ngx_*.h.
 */
#ifndef NGX_LLMD_H
#define NGX_LLMD_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "core/llmd_common.h"
#include "core/llmd_config.h"
#include "core/llmd_scheduler.h"
#include "core/llmd_decide.h"
#include "core/llmd_inflight.h"
#include "core/llmd_prefix_index.h"
#include "core/llmd_prompt.h"
#include "core/llmd_labels.h"
#include "core/llmd_prom.h"
#include "kv/llmd_kv_events.h"
#include "kv/llmd_kv_keys.h"
#include "kv/llmd_kv_index.h"
#include "tokenizer/llmd_tokenizer.h"
#include "tokenizer/llmd_chat_template.h"


#define NGX_LLMD_SHM_MAGIC        0x6c6c6d64
/* 4: kv_connected; the approximate hashes' XXH3 links */
#define NGX_LLMD_SHM_VERSION      4
#define NGX_LLMD_NAME_LEN         64
#define NGX_LLMD_ERROR_LEN        120
/* decision-time histogram upper bounds, microseconds (+Inf implied) */
#define NGX_LLMD_HIST_BUCKETS     12
#define NGX_LLMD_DEFAULT_ZONE_SIZE  (16 * 1024 * 1024)
#define NGX_LLMD_MAX_SOURCES      8
/* no-hit-lru-scorer states kept in an upstream's zone */
#define NGX_LLMD_MAX_NOHIT        8


/* Last scrape of one endpoint; written by the helper under a seqlock. */
typedef struct {
    ngx_atomic_t                  seq;        /* odd while being written */
    double                        waiting;
    double                        running;
    double                        kv_usage;
    uint32_t                      block_size;
    uint32_t                      num_gpu_blocks;
    unsigned                      have_waiting:1;
    unsigned                      have_kv:1;
    ngx_msec_t                    updated;    /* ngx_current_msec; 0 = never */
    ngx_msec_t                    error_time; /* last failed scrape */
    u_char                        last_error[NGX_LLMD_ERROR_LEN];
    /* the endpoint's in-flight counters when this scrape was sent */
    ngx_atomic_uint_t             base_sent;
    ngx_atomic_uint_t             base_sent_tokens;
    ngx_atomic_uint_t             base_done;
    ngx_atomic_uint_t             base_done_tokens;
} ngx_llmd_metrics_sh_t;


/*
 * vllm:lora_requests_info of one endpoint slot, written by the helper
 * under a seqlock; kept apart from the slots, in the zone only when a
 * lora-affinity-scorer is configured.
 */
typedef struct {
    ngx_atomic_t                  seq;        /* odd while being written */
    uint32_t                      max;        /* max_lora */
    ngx_uint_t                    have;
    u_char                        running[LLMD_LORA_LEN];
    u_char                        waiting[LLMD_LORA_LEN];
} ngx_llmd_lora_sh_t;


/*
 * Life of an endpoint slot. A static `server` is ACTIVE from the start. A
 * discovered endpoint is PENDING until its first metrics arrive (so a pod
 * that is still loading its model gets no traffic), then ACTIVE; when its
 * source no longer lists it, it is DRAINING: no new picks, its in-flight
 * requests finish, then the slot is FREE again.
 */
#define NGX_LLMD_EP_FREE      0
#define NGX_LLMD_EP_PENDING   1
#define NGX_LLMD_EP_ACTIVE    2
#define NGX_LLMD_EP_DRAINING  3

/* Endpoint sources: a static server line, DNS, a file (ngx_llmd_source_t). */
#define NGX_LLMD_SOURCE_STATIC  0
#define NGX_LLMD_SOURCE_DNS     1
#define NGX_LLMD_SOURCE_FILE    2


/*
 * One endpoint slot in shared memory, keyed by its address. The helper
 * process and the configuration write the identity (address, source,
 * labels) under the zone's mutex; every change bumps `incarnation`, so a
 * request that ranked the slot can tell that it now holds another endpoint.
 */
typedef struct {
    u_char                        name[NGX_LLMD_NAME_LEN];  /* ip:port */
    size_t                        name_len;
    ngx_atomic_t                  state;      /* NGX_LLMD_EP_* */
    ngx_atomic_t                  incarnation;
    u_char                        sockaddr[NGX_SOCKADDRLEN];
    socklen_t                     socklen;
    uint32_t                      source_key; /* 0: a static server */
    ngx_uint_t                    source_type;
    u_char                        labels[LLMD_LABELS_LEN];
    ngx_msec_t                    changed;    /* entered its state */

    /* server parameters: max_fails, fail_timeout, max_conns, down */
    ngx_uint_t                    max_fails;
    time_t                        fail_timeout;
    ngx_uint_t                    max_conns;
    ngx_uint_t                    down;

    /* passive health, shared by all workers (nginx's max_fails) */
    ngx_atomic_t                  fails;
    ngx_atomic_t                  checked;    /* time_t of the last failure */

    ngx_llmd_metrics_sh_t         metrics;
    ngx_atomic_t                  active;     /* in-flight requests */
    /* in-flight load (core/llmd_inflight.h): uncached prompt tokens in
       flight; requests and their tokens sent and finished, ever (minus
       metrics.base_*: since the scrape) */
    ngx_atomic_t                  inflight_tokens;
    ngx_atomic_t                  sent;
    ngx_atomic_t                  sent_tokens;
    ngx_atomic_t                  done;
    ngx_atomic_t                  done_tokens;
    ngx_atomic_t                  picks;
    ngx_atomic_t                  scrapes;
    ngx_atomic_t                  scrape_errors;

    /* KV events of this endpoint (precise mode), written by the helper */
    ngx_atomic_t                  kv_live;    /* events seen since clear */
    /* the subscriber is connected to the pod's publisher (connect mode)
       and neither a clear nor a failed scrape came since */
    ngx_atomic_t                  kv_connected;
    ngx_atomic_t                  kv_batches;
    ngx_atomic_t                  kv_blocks_stored;
    ngx_atomic_t                  kv_blocks_removed;
    ngx_atomic_t                  kv_dropped;   /* blocks not indexed */
    ngx_atomic_t                  kv_clears;    /* cleared: restart, ... */
    ngx_atomic_t                  kv_gaps;
    ngx_atomic_t                  kv_replays;
    ngx_atomic_t                  kv_last_seq;
    ngx_msec_t                    kv_last_event;
} ngx_llmd_endpoint_sh_t;


/* What a discovery source last said, for status and for logging once. */
typedef struct {
    uint32_t                      key;
    ngx_atomic_t                  updates;    /* answers applied */
    ngx_atomic_t                  errors;
    ngx_uint_t                    endpoints;  /* in the last answer */
    ngx_uint_t                    over_limit; /* left out: no free slot */
    ngx_msec_t                    updated;
    ngx_msec_t                    error_time;
    u_char                        last_error[NGX_LLMD_ERROR_LEN];
} ngx_llmd_source_sh_t;


/* The LRU of one no-hit-lru-scorer, shared by all workers (under the
   zone's mutex); found again after a reload by plugin name and size. */
typedef struct {
    u_char                        name[NGX_LLMD_NAME_LEN];
    uint32_t                      capacity;
    llmd_nohit_lru_t             *lru;
} ngx_llmd_nohit_sh_t;


/* Header of an upstream's zone; the prefix index follows in the zone. */
typedef struct {
    uint32_t                      magic;
    uint32_t                      version;
    ngx_pid_t                     writer_pid; /* helper owning the metrics */
    ngx_atomic_t                  decisions;
    ngx_atomic_t                  rejected_bad_request;
    ngx_atomic_t                  rejected_no_endpoint;
    ngx_atomic_t                  load_only;  /* no prompt to match */
    ngx_atomic_t                  decision_ns_sum;
    ngx_atomic_t                  decision_hist[NGX_LLMD_HIST_BUCKETS + 1];
    ngx_atomic_t                  prefix_blocks_total;
    ngx_atomic_t                  prefix_blocks_hit;

    /*
     * The candidates: slots of ACTIVE endpoints, rewritten under the mutex
     * and read without it by every request (seqlock: odd while written).
     */
    ngx_atomic_t                  members_seq;
    ngx_uint_t                    nmembers;
    uint16_t                      members[LLMD_MAX_ENDPOINTS];

    ngx_llmd_endpoint_sh_t        endpoints[LLMD_MAX_ENDPOINTS];
    ngx_llmd_source_sh_t          sources[NGX_LLMD_MAX_SOURCES];
    void                         *index_mem;
    size_t                        index_size;
    void                         *kv_index_mem;    /* precise mode only */
    size_t                        kv_index_size;
    ngx_atomic_t                  kv_unknown_pod;  /* messages dropped */
    ngx_atomic_t                  kv_malformed;    /* batches dropped */
    ngx_atomic_t                  kv_spoofed;      /* a pod's name, from
                                                      another address */
    ngx_atomic_t                  kv_holds;        /* index lock holds
                                                      of the helper */
    ngx_atomic_t                  kv_hold_ns_sum;
    ngx_atomic_t                  kv_hold_ns_max;  /* longest hold */
    ngx_atomic_t                  precise_decisions;
    ngx_atomic_t                  precise_fallbacks; /* endpoint scored
                                                      approximately */
    ngx_atomic_t                  precise_approx_hashes; /* decisions
                                                      that hashed the
                                                      approximate blocks */
    ngx_atomic_t                  pd_decisions;    /* a prefill pod was
                                                      picked */
    ngx_llmd_nohit_sh_t           nohit[NGX_LLMD_MAX_NOHIT];
    ngx_llmd_lora_sh_t           *lora;       /* LLMD_MAX_ENDPOINTS, or
                                                 NULL */
} ngx_llmd_shctx_t;


/* A `server` line's address, at config time. */
typedef struct {
    ngx_addr_t                    addr;
    ngx_uint_t                    max_fails;
    time_t                        fail_timeout;
    ngx_uint_t                    max_conns;
    ngx_uint_t                    down;
    ngx_uint_t                    slot;       /* index in sh->endpoints */
    u_char                       *labels;     /* llmd_server_labels, or
                                                 NULL */
} ngx_llmd_static_t;


/* llmd_server_labels ADDRESS k=v ...: labels of a `server` address. */
typedef struct {
    ngx_str_t                     address;    /* as written */
    u_char                        labels[LLMD_LABELS_LEN];
    ngx_uint_t                    line;
    ngx_uint_t                    used;
} ngx_llmd_server_labels_t;


/* llmd_endpoints dns NAME port=N | file PATH: where endpoints come from. */
typedef struct {
    ngx_uint_t                    type;       /* NGX_LLMD_SOURCE_* */
    ngx_str_t                     name;       /* DNS name or file path */
    in_port_t                     port;       /* DNS */
    ngx_msec_t                    interval;
    u_char                        labels[LLMD_LABELS_LEN];
    uint32_t                      key;        /* identity across reloads */
    ngx_uint_t                    index;      /* in sh->sources */
} ngx_llmd_source_t;


/* Admission and flow control (ngx_llmd_flow.c). */
typedef struct ngx_llmd_flow_conf_s  ngx_llmd_flow_conf_t;
typedef struct ngx_llmd_flow_loc_s   ngx_llmd_flow_loc_t;

/* Per-upstream configuration (the module's srv conf inside upstream {}). */
typedef struct {
    ngx_flag_t                    enabled;
    ngx_str_t                     config_file;
    llmd_config_t                *cf;
    const llmd_profile_t         *profile;
    llmd_prefix_params_t          prefix;     /* used when has_prefix */
    llmd_prefix_params_t          approx;     /* the approximate index */
    ngx_uint_t                    has_prefix;

    ngx_shm_zone_t               *shm_zone;
    ssize_t                       zone_size;
    ngx_llmd_shctx_t             *sh;
    ngx_slab_pool_t              *shpool;
    llmd_prefix_index_t          *index;

    ngx_flag_t                    metrics;
    ngx_str_t                     metrics_uri;
    ngx_msec_t                    metrics_interval;
    ngx_msec_t                    metrics_timeout;
    ngx_msec_t                    metrics_stale;
    size_t                        metrics_buffer;
    size_t                        body_limit;
    size_t                        tokenize_limit;
    size_t                        tokenizer_cache; /* bytes per worker */
    ngx_uint_t                    tokenizer_cache_stride;
    ngx_flag_t                    inflight;   /* llmd_inflight: adjust the
                                                 scraped metrics */
    const llmd_plugin_t          *inflight_producer; /* or NULL */

    ngx_array_t                   statics;    /* ngx_llmd_static_t */
    ngx_array_t                  *server_labels; /* ngx_llmd_server_labels_t */
    llmd_nohit_lru_t            **nohit;      /* by plugin index, or NULL */
    ngx_uint_t                    has_nohit;
    ngx_uint_t                    has_labels; /* filters read labels */
    ngx_uint_t                    has_lora;   /* lora-affinity-scorer */
    ngx_uint_t                    has_session; /* session-affinity-* */
    ngx_array_t                   sources;    /* ngx_llmd_source_t */
    ngx_http_upstream_srv_conf_t *upstream;
    ngx_resolver_t               *resolver;   /* http{}'s, for dns */
    ngx_msec_t                    resolver_timeout;

    /* precise prefix-cache scoring: tokenizer and KV events */
    ngx_str_t                     tokenizer_path;
    llmd_tokenizer_t             *tokenizer;
    llmd_chat_template_t         *chat_template;
    llmd_tok_cache_t             *tok_cache;  /* this worker's, or NULL */
    ngx_uint_t                    tok_cache_failed;
    ngx_uint_t                    precise;    /* precise scoring runs */
    ngx_uint_t                    kv_mode;    /* NGX_LLMD_KV_* */
    ngx_str_t                     kv_endpoint;
    ngx_flag_t                    kv_peer_check;  /* bind: peers=pods */
    ngx_uint_t                    kv_port;
    ngx_uint_t                    kv_port_relative;
    ngx_uint_t                    kv_replay_port;
    ngx_uint_t                    kv_replay_relative;
    ngx_msec_t                    kv_speculative;
    llmd_kv_index_t              *kv_index;
    ngx_llmd_flow_conf_t         *flow;       /* queue zone, objectives */
} ngx_llmd_srv_conf_t;


#define NGX_LLMD_KV_UNSET    0
#define NGX_LLMD_KV_OFF      1
#define NGX_LLMD_KV_BIND     2    /* pods connect to the helper */
#define NGX_LLMD_KV_CONNECT  3    /* the helper connects to every pod */


typedef struct {
    ngx_array_t                   upstreams;  /* ngx_llmd_srv_conf_t * */
    ngx_path_t                   *helper_path;
} ngx_llmd_main_conf_t;


typedef struct {
    ngx_uint_t                    status_format;  /* 0 json, 1 prometheus */
    ngx_str_t                     health_upstream; /* llmd_health NAME */
    ngx_flag_t                    json_errors;     /* llmd_json_errors */
    ngx_llmd_flow_loc_t          *flow;            /* llmd_admission */
} ngx_llmd_loc_conf_t;


/* A slot a request ranked, and which endpoint it held then. */
typedef struct {
    uint16_t                      slot;
    ngx_atomic_uint_t             incarnation;
} ngx_llmd_cand_t;


/* What one request's decision left behind, for variables and filters. */
typedef struct {
    ngx_llmd_srv_conf_t          *lcf;
    ngx_pool_t                   *pool;           /* the request's */
    llmd_api_t                    api;
    ngx_uint_t                    reject_status;  /* 400, 503 or 0 */
    ngx_str_t                     reject_message;
    ngx_str_t                     reject_type;

    ngx_uint_t                    neps;
    ngx_llmd_cand_t              *cands;          /* the ranked endpoints */
    llmd_sched_result_t          *result;         /* the decode stage's */
    llmd_decision_t              *decision;
    llmd_decide_input_t          *decide_in;
    ngx_int_t                     prefill;        /* candidate or -1 */
    ngx_str_t                     prefill_name;   /* its ip:port */
    double                       *match;          /* per candidate, blocks */
    uint32_t                      prefix_total;   /* blocks of the prompt */
    uint64_t                     *hashes;         /* approximate blocks */
    size_t                        nhashes;
    llmd_prefix_held_t            held;           /* what the approximate
                                                     lookup saw, for the
                                                     record */
    const llmd_request_t         *unhashed;       /* precise: what they
                                                     are hashed from, when
                                                     needed; NULL: done */
    ngx_uint_t                    unhashed_scan;  /* its scan */
    uint64_t                     *keys;           /* precise blocks */
    size_t                        nkeys;
    unsigned                      precise:1;
    ngx_int_t                     chosen;         /* candidate or -1 */
    ngx_int_t                     active_slot;    /* slot counted active */
    ngx_atomic_uint_t             active_incarnation;
    uint64_t                      prompt_tokens;  /* estimated */
    uint64_t                     *req_tokens;     /* per candidate: tokens
                                                     it would compute */
    uint64_t                      charged_tokens; /* counted in flight on
                                                     active_slot */
    ngx_str_t                     peer_name;      /* of the last pick */
    uintptr_t                     tried[LLMD_MAX_ENDPOINTS
                                        / (8 * sizeof(uintptr_t))];
    ngx_uint_t                    indexed;
    uint64_t                      decision_ns;
    unsigned                      scheduled:1;
    unsigned                      recorded:1;     /* llmd_decide_record */
    unsigned                      keepalive:1;    /* before an error */
    unsigned                      reject_armed:1;
    unsigned                      reject_done:1;
    unsigned                      sse:1;          /* text/event-stream */
    unsigned                      prompt_released:1; /* charged_tokens
                                                     left inflight_tokens */
} ngx_llmd_ctx_t;


extern ngx_module_t  ngx_http_llmd_module;


/* ngx_llmd_balancer.c: peer selection, one decision per request */
ngx_int_t ngx_llmd_balancer_init(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us, ngx_llmd_srv_conf_t *lcf);

/* ngx_llmd_decide.c: the decision (llmd_decide) and what it asks of the
   request: P/D header, session header, no-hit LRU state */
ngx_int_t ngx_llmd_decide_init(ngx_conf_t *cf);
ngx_int_t ngx_llmd_decide_conf(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf);
ngx_int_t ngx_llmd_decide_zone(ngx_llmd_srv_conf_t *lcf,
    ngx_slab_pool_t *shpool, ngx_uint_t reload, ngx_log_t *log);
void ngx_llmd_lora_write(ngx_llmd_shctx_t *sh, ngx_uint_t slot,
    const llmd_vllm_metrics_t *vm);
ngx_int_t ngx_llmd_decide(ngx_http_request_t *r, ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx, const llmd_request_t *req,
    llmd_endpoint_state_t *eps, uint64_t *rng);
void ngx_llmd_decide_record(ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx);
ngx_int_t ngx_llmd_pd_headers(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx);

/* ngx_llmd_body.c: a body nginx reads into one buffer */
ngx_int_t ngx_llmd_body_init(ngx_conf_t *cf);

/* ngx_llmd_module_file.c: the file the code was loaded from */
ngx_int_t ngx_llmd_module_file_check(ngx_conf_t *cf);

/* ngx_llmd_request.c: body -> parsed request, or a 400 */
ngx_int_t ngx_llmd_request_read(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx, llmd_request_t *req);
/* bodies scanned by this worker: a precise request's text and messages
   are in its buffers until the next */
extern ngx_uint_t  ngx_llmd_request_scans;

/* ngx_llmd_request.c: a worker's reused buffer (joined bodies, tokens) */
typedef struct {
    void    *data;
    size_t   size;
} ngx_llmd_wbuf_t;

void *ngx_llmd_wbuf(ngx_llmd_wbuf_t *b, size_t size, ngx_log_t *log);

/* ngx_llmd_prefix.c: approximate and precise prefix match, record */
ngx_int_t ngx_llmd_prefix_match(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx, const llmd_request_t *req,
    llmd_endpoint_state_t *eps);
void ngx_llmd_prefix_record(ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx,
    ngx_uint_t peer, ngx_uint_t slot);

/* ngx_llmd_precise.c: tokenizer and chat template, request block keys */
char *ngx_llmd_tokenizer_cache_conf(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_llmd_precise_init(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf);
ngx_int_t ngx_llmd_precise_init_process(ngx_cycle_t *cycle);
ngx_int_t ngx_llmd_precise_keys(ngx_http_request_t *r,
    ngx_llmd_srv_conf_t *lcf, ngx_llmd_ctx_t *ctx, const llmd_request_t *req);

/* ngx_llmd_shm.c: the zone, metrics seqlock, counters */
ngx_int_t ngx_llmd_shm_add(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf);
/*
 * Age of metrics written at `updated` by another process: its clock may be
 * ahead of this process's cached ngx_current_msec, so never negative.
 */
static ngx_inline ngx_msec_t
ngx_llmd_metrics_age(ngx_msec_t now, ngx_msec_t updated)
{
    return (ngx_msec_int_t) (now - updated) > 0 ? now - updated : 0;
}

void ngx_llmd_metrics_read(ngx_llmd_endpoint_sh_t *ep,
    ngx_llmd_metrics_sh_t *out);
void ngx_llmd_metrics_write(ngx_llmd_endpoint_sh_t *ep,
    ngx_llmd_metrics_sh_t *in);
void ngx_llmd_record_decision(ngx_llmd_shctx_t *sh, uint64_t ns);
/* in-flight load: a candidate's state now, a request sent and finished */
ngx_int_t ngx_llmd_inflight_state(ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_ctx_t *ctx, ngx_uint_t i, ngx_llmd_metrics_sh_t *m,
    llmd_endpoint_state_t *st);
void ngx_llmd_inflight_sent(ngx_llmd_ctx_t *ctx, ngx_uint_t i,
    ngx_llmd_endpoint_sh_t *ep);
void ngx_llmd_inflight_done(ngx_llmd_ctx_t *ctx, ngx_llmd_endpoint_sh_t *ep);
ngx_int_t ngx_llmd_inflight_filter_init(ngx_conf_t *cf);
void ngx_llmd_inflight_since(ngx_llmd_endpoint_sh_t *ep,
    ngx_llmd_metrics_sh_t *m, llmd_inflight_t *d);
extern const double  ngx_llmd_hist_bounds_us[NGX_LLMD_HIST_BUCKETS];

/* ngx_llmd_endpoints.c: endpoint slots and the candidate list */
typedef struct {
    ngx_str_t                     name;       /* ip:port */
    struct sockaddr              *sockaddr;
    socklen_t                     socklen;
    u_char                       *labels;     /* "k=v,k=v" */
} ngx_llmd_found_t;

ngx_int_t ngx_llmd_statics_init(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf);
ngx_int_t ngx_llmd_endpoints_map(ngx_llmd_srv_conf_t *lcf, ngx_log_t *log);
ngx_uint_t ngx_llmd_endpoints_sync(ngx_llmd_srv_conf_t *lcf,
    ngx_llmd_source_t *src, ngx_llmd_found_t *found, ngx_uint_t n,
    u_char *added, u_char *removed);
void ngx_llmd_endpoint_activate(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot);
ngx_uint_t ngx_llmd_endpoints_reap(ngx_llmd_srv_conf_t *lcf,
    ngx_msec_t limit);
ngx_uint_t ngx_llmd_members_read(ngx_llmd_shctx_t *sh,
    ngx_llmd_cand_t *cands);
ngx_int_t ngx_llmd_endpoint_address(ngx_llmd_shctx_t *sh,
    ngx_llmd_cand_t *cand, ngx_pool_t *pool, ngx_addr_t *addr);

/* ngx_llmd_discovery.c (helper process): DNS and file sources */
ngx_int_t ngx_llmd_discovery_start(ngx_cycle_t *cycle,
    ngx_llmd_srv_conf_t *lcf);
void ngx_llmd_discovery_stop_all(void);

/* ngx_llmd_health.c: llmd_health */
char *ngx_llmd_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_llmd_helper.c: the supervised helper process */
ngx_int_t ngx_llmd_helper_add_path(ngx_conf_t *cf,
    ngx_llmd_main_conf_t *lmcf);
ngx_int_t ngx_llmd_helper_init_process(ngx_cycle_t *cycle);
void ngx_llmd_helper_exit_process(ngx_cycle_t *cycle);

/* ngx_llmd_scrape.c (helper process): pods' /metrics */
ngx_int_t ngx_llmd_scrape_add(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot);
void ngx_llmd_scrape_remove(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot);
void ngx_llmd_scrape_stop_all(void);

/* ngx_llmd_kv.c (helper process): KV events over ZeroMQ */
ngx_int_t ngx_llmd_kv_start(ngx_cycle_t *cycle, ngx_llmd_srv_conf_t *lcf);
void ngx_llmd_kv_index_map(ngx_cycle_t *cycle, ngx_llmd_srv_conf_t *lcf,
    ngx_uint_t write_each);
void ngx_llmd_kv_add(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot);
void ngx_llmd_kv_remove(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot);
void ngx_llmd_kv_stop_all(void);
void ngx_llmd_kv_clear(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot,
    const char *why);

/* ngx_llmd_status.c: llmd_status (JSON, Prometheus) */
char *ngx_llmd_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_llmd_reject.c: OpenAI-style JSON errors */
ngx_int_t ngx_llmd_reject_init(ngx_conf_t *cf);
void ngx_llmd_reject(ngx_http_request_t *r, ngx_llmd_ctx_t *ctx,
    ngx_uint_t status, const char *type, const char *message, size_t len);

/* ngx_llmd_flow.c: llmd_admission, llmd_objective, the queue */
char *ngx_llmd_admission(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_llmd_objective(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_llmd_flow_init(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf);
ngx_int_t ngx_llmd_flow_postconfiguration(ngx_conf_t *cf);
size_t ngx_llmd_flow_status_size(ngx_llmd_srv_conf_t *lcf);
u_char *ngx_llmd_flow_status_json(u_char *p, ngx_llmd_srv_conf_t *lcf);
u_char *ngx_llmd_flow_status_prom(u_char *p, ngx_llmd_srv_conf_t *lcf);

/* ngx_llmd_variables.c: $llmd_* */
ngx_int_t ngx_llmd_add_variables(ngx_conf_t *cf);

#endif /* NGX_LLMD_H */
