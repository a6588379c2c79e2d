/*
 * vllm-sim: one process that plays N vLLM pods (docs/simulator.md), on
 * consecutive ports of one address or on one port of several loopback
 * addresses.  Every pod has its own HTTP listener, engine (scheduler + KV
 * cache), metrics and ZMQ KV-event sockets; one single-threaded epoll loop
 * drives them all.
 */
#ifndef SIM_H
#define SIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <sys/types.h>

#define SIM_MAX_PODS        256
#define SIM_MAX_BODY        (16 * 1024 * 1024)  /* request body bytes */
#define SIM_MAX_HEADER      (64 * 1024)         /* request head bytes */
#define SIM_MAX_SALT        1024
#define SIM_MAX_BLOCK_SIZE  256
#define SIM_MAX_PATH        4096
#define SIM_MAX_HOST        16                  /* "255.255.255.255" */
#define SIM_NS              1000000000LL

typedef struct sim_pod_s   sim_pod_t;
typedef struct sim_conn_s  sim_conn_t;
typedef struct sim_req_s   sim_req_t;
typedef struct sim_kv_s    sim_kv_t;
typedef struct sim_pub_s   sim_pub_t;
typedef struct sim_client_s  sim_client_t;
struct cJSON;

/* What an epoll event's data.ptr points to. */
#define SIM_TAG_LISTEN  1
#define SIM_TAG_CONN    2
#define SIM_TAG_REPLAY  3
#define SIM_TAG_TIMER   4
#define SIM_TAG_SIGNAL  5
#define SIM_TAG_CLIENT  6

typedef struct {
    int    tag;
    void  *obj;
} sim_handle_t;


/* buf.c: a growable byte buffer */
typedef struct {
    char    *data;
    size_t   len;
    size_t   cap;
} sim_buf_t;

int sim_buf_reserve(sim_buf_t *b, size_t extra);
int sim_buf_append(sim_buf_t *b, const void *p, size_t n);
int sim_buf_puts(sim_buf_t *b, const char *s);
int sim_buf_printf(sim_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s as a JSON string literal (quotes included). */
int sim_buf_json_str(sim_buf_t *b, const char *s, size_t n);
void sim_buf_consume(sim_buf_t *b, size_t n);
/*
 * Writes b from *off on to the non-blocking fd, moving *off: 0 when all is
 * written, 1 when the socket is full (EPOLLOUT resumes), -1 on an error.
 */
int sim_buf_write(int fd, const sim_buf_t *b, size_t *off);
void sim_buf_free(sim_buf_t *b);

int64_t sim_now_ns(void);
/* Unit tests: when non-zero, sim_now_ns() returns it (a simulated clock). */
extern int64_t  sim_clock_ns;
double sim_wall_time(void);


/* Everything the command line sets (defaults in config.c). */
typedef enum { SIM_HASH_SHA256_CBOR = 0, SIM_HASH_SHA256_CBOR_64 } sim_algo_t;

/*
 * A pod's part in prefill/decode disaggregation (llm-d's llm-d.ai/role):
 * both serves everything itself, as a vLLM without a KV connector; prefill
 * and decode pods run vLLM's NIXL connector, and a decode pod also the
 * routing sidecar (pd.c).
 */
typedef enum {
    SIM_ROLE_BOTH = 0,
    SIM_ROLE_PREFILL,
    SIM_ROLE_DECODE
} sim_role_t;

/* The cost of an engine step (docs/simulator.md, "Step time"). */
typedef enum {
    SIM_STEP_LINEAR = 0,                  /* fitted coefficients */
    SIM_STEP_PHYSICAL                     /* max(memory, compute) + overhead */
} sim_step_model_t;

typedef struct {
    int          pods;
    int          port;
    const char  *host;
    int          nhosts;                  /* --hosts: pod i on hosts[i] */
    char         hosts[SIM_MAX_PODS][SIM_MAX_HOST];
    const char  *model;
    int          block_size;
    uint32_t     num_blocks;
    int          max_num_seqs;
    int          max_batched_tokens;
    int          max_model_len;
    int          eos_tokens;              /* natural output length */
    double       time_scale;
    int          max_lag_ms;              /* see sim_engine_tick() */
    double       request_latency_ms;      /* arrival to the engine, sim. */
    double       step_base_us;
    double       prefill_us_per_token;
    double       decode_us_per_seq;
    double       ctx_ns_per_token;
    int          step_model;              /* sim_step_model_t */
    const char  *profile;                 /* --profile name, NULL: none */
    double       params;                  /* physical: model parameters */
    double       weight_bytes;            /* read once per step, all ranks */
    double       attn_dim;                /* layers x query heads x head dim */
    int          tp;                      /* GPUs per pod */
    double       hbm_tbps;                /* per GPU, TB/s */
    double       mem_eff;                 /* achieved fraction of it */
    double       peak_tflops;             /* per GPU, dense bf16 */
    double       mfu;                     /* achieved fraction of it */
    double       overhead_us;             /* per step */
    long         kv_tokens_profile;       /* the profile's KV per pod */
    sim_algo_t   hash_algo;
    const char  *hash_seed;
    const char  *tokenizer;               /* --tokenizer as given */
    char         tokenizer_json[SIM_MAX_PATH];
    char         tokenizer_config[SIM_MAX_PATH];  /* "": none */
    uint32_t     vocab_size;
    int          old_metrics;             /* also vllm:gpu_cache_usage_perc */
    int          no_prefix_caching;
    const char  *kv_endpoint;             /* NULL: no KV events */
    const char  *kv_replay_endpoint;
    const char  *kv_topic;                /* template: {ip} {port} {model} */
    int          kv_map_encoding;
    int          kv_replay_old;
    int          kv_buffer_steps;
    int          kv_hwm;
    const char  *fault_json;              /* applied to every pod at start */
    int          quiet;
    uint8_t      roles[SIM_MAX_PODS];     /* sim_role_t of pod i */
    double       kv_bytes_per_token;      /* KV a decode pod pulls */
    double       kv_transfer_gbps;        /* pull bandwidth, Gbit/s */
    int          pd_connect_timeout_ms;   /* the sidecar's prefill leg */
    int          pd_timeout_ms;
    int          pd_fallback;             /* failed leg: prefill locally */
} sim_config_t;

int sim_config_parse(sim_config_t *cf, int argc, char **argv);
/* "prefill", "decode" or "both". */
const char *sim_role_name(sim_role_t role);


/* tokenize.c: the project tokenizer or the deterministic fallback */
int sim_tok_init(const sim_config_t *cf, char *err, size_t errlen);
/* Returns the number of ids (<= cap), or -1 when text has more than cap. */
long sim_tok_encode(const char *text, size_t len, int add_special,
    uint32_t *ids, size_t cap);
/* Output token i of a generation: an id and its text. */
uint32_t sim_tok_output(uint64_t i, const char **text, size_t *len);
int sim_tok_is_real(void);


/* chat.c: chat messages to prompt text with the project's chat templates */
#define SIM_CHAT_BAD_REQUEST  -1        /* vLLM answers 400 */
#define SIM_CHAT_NO_MEMORY    -2

/* config_path: the tokenizer_config.json ("" or NULL: none). */
int sim_chat_init(const char *config_path, char *err, size_t errlen);
const char *sim_chat_template_name(void);
/*
 * Renders a chat request's messages (with its add_generation_prompt,
 * default true, chat_template_kwargs and tools) into out, replacing its
 * contents.  Returns 0, or an error above with a message in err.
 */
int sim_chat_render(const struct cJSON *request, sim_buf_t *out, char *err,
    size_t errlen);


/* blockhash.c: vLLM sha256_cbor / sha256_cbor_64bit prefix-cache hashes */
typedef struct {
    sim_algo_t     algo;
    unsigned char  none[32];
} sim_hasher_t;

int sim_hasher_init(sim_hasher_t *h, sim_algo_t algo, const char *seed);
/*
 * Hash of one full block.  parent: the previous block's digest or NULL for
 * the first block; salt (may be NULL) becomes the block's extra keys.
 * Writes the digest to out and returns the 64-bit wire value.
 */
uint64_t sim_hash_block(const sim_hasher_t *h, const unsigned char *parent,
    const uint32_t *toks, size_t n, const char *salt, size_t salt_len,
    unsigned char out[32]);
/* The canonical CBOR the digest is taken of (for tests); returns length. */
size_t sim_hash_cbor(const sim_hasher_t *h, const unsigned char *parent,
    const uint32_t *toks, size_t n, const char *salt, size_t salt_len,
    unsigned char *buf, size_t cap);
uint64_t sim_low64(const unsigned char d[32]);


/* kvcache.c: blocks with automatic prefix caching */
typedef void (*sim_kv_removed_pt)(void *ctx, uint64_t hash);

sim_kv_t *sim_kv_create(uint32_t num_blocks, sim_kv_removed_pt removed,
    void *ctx);
void sim_kv_destroy(sim_kv_t *kv);
int32_t sim_kv_lookup(sim_kv_t *kv, uint64_t hash);
void sim_kv_touch(sim_kv_t *kv, int32_t blk);
int32_t sim_kv_alloc(sim_kv_t *kv);
void sim_kv_release(sim_kv_t *kv, int32_t blk);
/* Registers a full block under hash; returns 0, or -1 if already cached. */
int sim_kv_cache(sim_kv_t *kv, int32_t blk, uint64_t hash);
uint32_t sim_kv_num_free(const sim_kv_t *kv);
int sim_kv_is_free(const sim_kv_t *kv, int32_t blk);
uint32_t sim_kv_num_cached(const sim_kv_t *kv);
uint32_t sim_kv_num_blocks(const sim_kv_t *kv);
/* Operations on the cache so far (lookups, allocs, releases, caching). */
uint64_t sim_kv_ops(const sim_kv_t *kv);
/* Drops every cached hash; -1 (and nothing done) while blocks are in use. */
int sim_kv_reset(sim_kv_t *kv);


/* kvevents.c: ZMQ PUB of KV-event batches, replay ROUTER */
typedef struct {
    int       drop;             /* drop the next N batches, -1: all */
    int       reorder;          /* swap each pair of batches */
} sim_pub_faults_t;

int sim_events_global_init(void);
void sim_events_global_done(void);
/* host: the pod's own address with --hosts, else NULL. */
sim_pub_t *sim_pub_create(const sim_config_t *cf, int pod_index,
    const char *host, const char *topic, char *err, size_t errlen);
void sim_pub_destroy(sim_pub_t *pub);
void sim_pub_block_stored(sim_pub_t *pub, const uint64_t *hashes, size_t n,
    int has_parent, uint64_t parent, const uint32_t *toks, size_t ntok,
    int block_size, const char *salt, size_t salt_len);
void sim_pub_block_removed(sim_pub_t *pub, uint64_t hash);
void sim_pub_all_cleared(sim_pub_t *pub);
/* Sends the pending events as one batch (if any). */
void sim_pub_flush(sim_pub_t *pub, double ts);
void sim_pub_restart_sequence(sim_pub_t *pub);
sim_pub_faults_t *sim_pub_faults(sim_pub_t *pub);
uint64_t sim_pub_next_seq(const sim_pub_t *pub);
/* The replay ROUTER's fd for epoll (-1 without replay) and its handler. */
int sim_pub_replay_fd(sim_pub_t *pub);
void sim_pub_replay_poll(sim_pub_t *pub);
/*
 * The endpoint pod_index's socket uses for the template tmpl (bind: it is
 * bound, else connected); exposed, as the encoders, for the unit test.
 */
int sim_events_endpoint(const char *tmpl, int pod_index, const char *host,
    int bind, char *out, size_t cap);
/* Encoders, exposed for the unit test. */
int sim_events_encode_batch(sim_buf_t *out, double ts, const sim_buf_t *ev,
    size_t nev);
int sim_events_encode_stored(sim_buf_t *out, int map, const uint64_t *hashes,
    size_t n, int has_parent, uint64_t parent, const uint32_t *toks,
    size_t ntok, int block_size, const char *salt, size_t salt_len);
int sim_events_encode_removed(sim_buf_t *out, int map, uint64_t hash);
int sim_events_encode_cleared(sim_buf_t *out, int map);


/* metrics.c */
#define SIM_HIST_MAX 24

typedef struct {
    const double  *bounds;
    int            n;
    uint64_t       counts[SIM_HIST_MAX + 1];
    double         sum;
    uint64_t       count;
} sim_hist_t;

typedef struct {
    uint64_t    prefix_queries;
    uint64_t    prefix_hits;
    uint64_t    prompt_tokens;
    uint64_t    generation_tokens;
    uint64_t    preemptions;
    uint64_t    success_length;
    uint64_t    success_stop;
    uint64_t    success_abort;
    sim_hist_t  ttft;
    sim_hist_t  itl;
    sim_hist_t  e2e;
    /* prefill/decode disaggregation (pods with a KV connector) */
    uint64_t    external_queries;       /* vllm:external_prefix_cache_* */
    uint64_t    external_hits;
    uint64_t    prefill_legs;           /* kv_transfer_params answered */
    uint64_t    remote_prefills;        /* requests offering remote KV */
    uint64_t    kv_pulls;
    uint64_t    kv_pull_bytes;
    sim_hist_t  xfer_time;              /* vllm:nixl_xfer_time_seconds */
    sim_hist_t  xfer_bytes;             /* vllm:nixl_bytes_transferred */
    uint64_t    sidecar_legs;           /* prefill legs the sidecar sent */
    uint64_t    sidecar_failures;
    uint64_t    sidecar_fallbacks;
} sim_stats_t;

void sim_stats_init(sim_stats_t *st);
void sim_hist_observe(sim_hist_t *h, double v);
int sim_metrics_render(sim_pod_t *pod, sim_buf_t *out);


/* engine.c: the vLLM-v1-like continuous-batching scheduler */
typedef enum {
    SIM_REQ_WAITING = 0,
    SIM_REQ_RUNNING,
    SIM_REQ_DONE,
    SIM_REQ_LOADING,                    /* pulling its KV from a prefill pod */
    SIM_REQ_SIDECAR,                    /* the sidecar's prefill leg runs */
    SIM_REQ_ARRIVING                    /* --request-latency-ms */
} sim_req_state_t;

typedef enum { SIM_API_COMPLETIONS = 0, SIM_API_CHAT } sim_api_t;

/*
 * How the engine reports a request's output (set by whoever made the
 * request, openai.c): one token with its text; last: the request is done.
 */
typedef void (*sim_token_pt)(sim_req_t *r, uint32_t id, const char *text,
    size_t len, int last);

struct sim_req_s {
    sim_req_t        *prev, *next;      /* waiting queue / running list */
    sim_pod_t        *pod;
    sim_conn_t       *conn;             /* NULL once the client is gone */
    sim_token_pt      on_token;
    char              id[64];
    sim_api_t         api;
    int               stream;
    int               include_usage;
    int               max_tokens;       /* output tokens to generate */
    const char       *finish_reason;    /* at max_tokens */
    char             *salt;             /* cache_salt or NULL */
    size_t            salt_len;
    uint32_t         *tokens;           /* prompt then output */
    size_t            n_prompt;
    size_t            n_tokens;
    size_t            cap_tokens;
    size_t            n_output;
    uint64_t         *hashes;           /* wire hash of each full block */
    size_t            n_hashes;
    size_t            cap_hashes;
    unsigned char     last_digest[32];  /* digest of block n_hashes-1 */
    int32_t          *blocks;           /* block table */
    size_t            n_blocks;
    size_t            cap_blocks;
    size_t            n_cached_blocks;  /* blocks registered in the cache */
    size_t            num_computed;     /* tokens whose KV exists */
    size_t            cached_prompt;    /* prefix-cache hit tokens */
    long              prefill_cached;   /* the prefiller's cached tokens,
                                           reported instead (-1: none) */
    size_t            remote_blocks;    /* full prompt blocks a prefill pod
                                           holds (do_remote_prefill) */
    int               kv_producer;      /* a prefill leg (do_remote_decode) */
    uint64_t          pull_bytes;
    int64_t           load_end_ns;
    int64_t           ready_ns;         /* reaches the engine (arriving) */
    int               scheduled;        /* tokens in the in-flight step */
    int               in_step;
    int               aborted;
    int               counted;          /* prefix stats recorded */
    sim_req_state_t   state;
    int64_t           arrival_ns;
    int64_t           first_token_ns;
    int64_t           last_token_ns;
    long              created;          /* unix seconds */
    sim_buf_t         text;             /* non-streaming output */
};

typedef struct {
    sim_req_t    *head, *tail;
    int           n;
} sim_queue_t;

typedef struct {
    sim_queue_t   waiting;
    sim_queue_t   running;
    sim_queue_t   loading;              /* KV pulls under way */
    int64_t       pull_due_ns;          /* the first to end, 0: none */
    sim_queue_t   arriving;             /* not yet in the engine */
    sim_req_t   **step;                 /* requests in the in-flight step */
    int           n_step;
    int           step_cap;
    int           busy;
    int64_t       step_end_ns;
    uint64_t      steps;
    uint64_t      next_req_id;
    /* how the simulator keeps up (/sim/state "lag") */
    double        model_us;             /* simulated time of all steps */
    uint64_t      late_steps;           /* steps the loop ended late */
    int64_t       lag_sum_ns;           /* wall ns past their deadlines */
    int64_t       lag_max_ns;
    int64_t       lost_ns;              /* lag the next step could not
                                           absorb (beyond the limit) */
    int64_t       cpu_ns;               /* CPU time of the engine code */
} sim_engine_t;

sim_req_t *sim_req_new(sim_pod_t *pod, sim_token_pt on_token);
void sim_req_free(sim_req_t *r);
/* Hashes the prompt's full blocks and queues the request. */
int sim_engine_add(sim_pod_t *pod, sim_req_t *r);
/* The client went away: the request ends at the next chance. */
void sim_engine_abort(sim_pod_t *pod, sim_req_t *r);
/* Called by the loop when now >= step_end_ns (or to start an idle engine). */
void sim_engine_tick(sim_pod_t *pod, int64_t now);
/* Ends the KV pulls due by now (the loop's timer: eng.pull_due_ns). */
void sim_engine_pulls(sim_pod_t *pod, int64_t now);
/* Queues the arriving requests due by now; returns the next due (0: none). */
int64_t sim_engine_arrivals(sim_pod_t *pod, int64_t now);
void sim_engine_kick(sim_pod_t *pod);
/* Drops every request (pod stop). */
void sim_engine_clear(sim_pod_t *pod);
/*
 * What one engine step computes: prompt tokens (prefill chunks), decoding
 * requests (one token each), the context tokens whose KV the step reads
 * (each scheduled request's tokens computed before the step) and the
 * attention pairs (per scheduled token, the tokens it attends to).
 */
typedef struct {
    long    prefill_tokens;
    long    decode_seqs;
    long    ctx_tokens;
    double  attn_pairs;
} sim_step_load_t;

/*
 * Simulated microseconds of a step with cf's step model; *mem_us and
 * *compute_us (either may be NULL) get the physical model's two terms
 * (0 with the linear model).
 */
double sim_step_cost_us(const sim_config_t *cf, const sim_step_load_t *ld,
    double *mem_us, double *compute_us);
/* Sets the physical parameters (and model, KV size) of a named profile. */
int sim_step_profile(sim_config_t *cf, const char *name);
/* Simulated seconds a KV pull of bytes takes at gbps (Gbit/s). */
double sim_engine_transfer_s(double bytes, double gbps);


/* http.c: epoll HTTP/1.1 server */

/*
 * What the server calls up to (registered by main.c): request() when a
 * whole request is in c->req; error() for one that cannot be served
 * (status 400, 411, 413 or 431 and its reason phrase), after which the
 * connection closes.
 */
typedef void (*sim_http_handler_pt)(sim_conn_t *c);

typedef struct {
    sim_http_handler_pt  request;
    void                 (*error)(sim_conn_t *c, int status,
                                  const char *reason);
} sim_http_handlers_t;

typedef struct {
    char        *method;
    char        *path;
    size_t       path_off;      /* the input buffer may move while the body
                                   is read: pointers are set when complete */
    char        *body;
    size_t       body_len;
    char        *prefiller;     /* x-prefiller-host-port value or NULL */
    size_t       prefiller_off;
    size_t       prefiller_len;
    int          keepalive;
    int          http10;
} sim_http_req_t;

struct sim_conn_s {
    sim_handle_t         h;
    sim_conn_t          *prev, *next;    /* the pod's connections */
    sim_pod_t           *pod;
    int                  fd;
    sim_buf_t            in;
    sim_buf_t            out;
    size_t               head_len;       /* parsed request: head bytes */
    size_t               req_len;        /* head + body */
    sim_http_req_t       req;
    int                  busy;           /* a response is being produced */
    int                  streaming;      /* chunked response open */
    int                  keepalive;
    int                  http10;
    int                  closing;        /* close after out is written */
    int                  dead;           /* closed at the next loop turn */
    int                  continued;      /* 100 Continue sent */
    int                  in_todo;
    sim_conn_t          *todo_next;
    size_t               out_off;        /* bytes of out already written */
    int64_t              delay_until_ns; /* slow /metrics fault */
    sim_http_handler_pt  delay_due;      /* called at delay_until_ns */
    sim_req_t           *sreq;           /* engine request being served */
};

int sim_http_listen(const char *host, int port);
int sim_http_loop_init(const sim_http_handlers_t *handlers);
int sim_http_epoll_fd(void);
void sim_http_accept(sim_pod_t *pod);
void sim_http_event(sim_conn_t *c, uint32_t events);
/* Closes at the next loop turn (never frees under a caller's feet). */
void sim_http_close(sim_conn_t *c);
/* Runs the deferred work: flushes, next pipelined requests, closes. */
void sim_http_run_todo(void);
/* Slow /metrics: sim_http_run_timers() calls due(c) at the deadline. */
int sim_http_delay(sim_conn_t *c, int64_t until, sim_http_handler_pt due);
int64_t sim_http_next_timer(void);
void sim_http_run_timers(int64_t now);
/* Responses. */
void sim_http_respond(sim_conn_t *c, int status, const char *ctype,
    const char *body, size_t len);
void sim_http_stream_start(sim_conn_t *c, const char *ctype);
void sim_http_stream_chunk(sim_conn_t *c, const char *data, size_t len);
void sim_http_stream_end(sim_conn_t *c);
/* Finishes a deferred response: continue with the next request. */
void sim_http_done(sim_conn_t *c);
void sim_http_flush(sim_conn_t *c);


/* openai.c */
void sim_openai_handle(sim_conn_t *c, sim_api_t api);
void sim_openai_error(sim_conn_t *c, int status, const char *type,
    const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void sim_openai_models(sim_conn_t *c);
/* The error body of a request the HTTP server cannot parse. */
void sim_openai_bad_request(sim_conn_t *c, int status, const char *reason);


/* client.c: a non-blocking HTTP/1.1 client on the loop's epoll */

/*
 * The end of an exchange: status is the HTTP status with the body, or 0
 * with err (refused, reset, timed out, unparsable).  Never called before
 * sim_client_post() returns.
 */
typedef void (*sim_client_done_pt)(void *ctx, int status, const char *body,
    size_t len, const char *err);

/*
 * POSTs body to host:port (IPv4) from the address src (NULL: any), with
 * one connection that closes after the answer.  The whole exchange has
 * timeout_ms, connecting connect_ms of it.  Returns NULL only when out of
 * memory.
 */
sim_client_t *sim_client_post(const char *src, const char *host, int port,
    const char *path, const char *headers, const char *body, size_t len,
    int connect_ms, int timeout_ms, sim_client_done_pt done, void *ctx);
void sim_client_event(sim_client_t *cl, uint32_t events);
int64_t sim_client_next_timer(void);
void sim_client_run_timers(int64_t now);


/* pd.c: prefill/decode disaggregation as llm-d runs it */

/* vLLM's NIXL side-channel port (VLLM_NIXL_SIDE_CHANNEL_PORT default). */
#define SIM_NIXL_SIDE_CHANNEL_PORT  5600

/* Remote blocks a request's kv_transfer_params offers (do_remote_prefill). */
size_t sim_pd_remote_blocks(const struct cJSON *params);
/* Whether kv_transfer_params asks for a prefill leg (do_remote_decode). */
int sim_pd_is_prefill_leg(const struct cJSON *params);
/* The kv_transfer_params object a prefill pod answers, naming r's blocks. */
int sim_pd_params_json(sim_buf_t *b, const sim_pod_t *pod,
    const sim_req_t *r);
/* The prefill leg's body: the request, stream off, 1 token, remote decode. */
char *sim_pd_prefill_body(const struct cJSON *request);
/* x-prefiller-host-port: the first "[http://]IPv4:port" of the list. */
int sim_pd_target(const char *value, size_t len, char *host, size_t hostlen,
    int *port);

/*
 * The end of the sidecar's prefill leg: status 0 to serve r here (its
 * remote_blocks set by the prefiller's answer, or 0 after a fallback), else
 * the status (and body, len 0: none; err says why) to answer the client.
 * r->conn is NULL when the client has gone.
 */
typedef void (*sim_pd_done_pt)(sim_req_t *r, int status, const char *body,
    size_t len, const char *err);

/*
 * The decode pod's routing sidecar: sends the prefill leg of request (the
 * client's JSON) for r to the prefiller named by target, then calls done
 * (possibly before returning, for a target that cannot be reached).
 */
void sim_pd_sidecar(sim_req_t *r, const struct cJSON *request,
    const char *target, size_t target_len, sim_pd_done_pt done);


/* pod.c: routing, faults, life cycle */
typedef struct {
    int       metrics_delay_ms;
    int       metrics_garbage;
    int64_t   stop_at_ns;               /* 0: none */
    int64_t   restart_at_ns;            /* 0: none */
} sim_pod_faults_t;

struct sim_pod_s {
    int                  index;
    sim_role_t           role;
    char                 engine_id[40]; /* remote_engine_id, new per start */
    const char          *host;          /* listen address, {ip} of the topic */
    int                  port;
    char                 name[32];      /* x-sim-pod: port, or host:port
                                           with --hosts */
    int                  up;
    int                  lfd;
    sim_handle_t         lh;            /* listener */
    sim_handle_t         rh;            /* replay socket */
    const sim_config_t  *cf;
    sim_hasher_t         hasher;
    sim_kv_t            *kv;
    sim_engine_t         eng;
    sim_stats_t          stats;
    sim_pub_t           *pub;
    char                 topic[512];
    sim_pod_faults_t     faults;
    sim_conn_t          *conns;
    uint64_t             requests;
};

extern sim_pod_t  *sim_pods;
extern int         sim_npods;

int sim_pod_init(sim_pod_t *pod, const sim_config_t *cf, int index,
    char *err, size_t errlen);
int sim_pod_start(sim_pod_t *pod, char *err, size_t errlen);
void sim_pod_stop(sim_pod_t *pod);
/* Due stops/restarts; returns the next such deadline (0: none). */
int64_t sim_pod_timers(sim_pod_t *pod, int64_t now);
/* The request handler of every pod's connections. */
void sim_pod_route(sim_conn_t *c);
/* Applies a fault JSON object to pod (returns -1 with err on bad input). */
int sim_pod_fault(sim_pod_t *pod, const char *json, size_t len, char *err,
    size_t errlen);

extern int  sim_log_quiet;
void sim_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* SIM_H */
