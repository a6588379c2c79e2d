/*
 * llmd-loadgen: an open-loop load generator for OpenAI-compatible servers
 * (the job inference-perf does in the llm-d reports).  One thread, one
 * epoll loop, non-blocking HTTP/1.1 with keepalive, SSE parsing.
 *
 * Times inside the program are wall-clock seconds since the run started;
 * the report multiplies durations by the time scale (and divides rates by
 * it), so a run against a simulator running S times faster than real time
 * reads as the simulated real run.
 */
#ifndef LG_H
#define LG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lg_lines.h"

#define LG_MAX_STAGES      64
#define LG_MAX_WORDS       4096
#define LG_MAX_HEADER      (64 * 1024)
#define LG_MAX_BODY        (4 * 1024 * 1024)
#define LG_MAX_EVENT       (1024 * 1024)
#define LG_MAX_ITL         (1024 * 1024)
#define LG_MAX_PROMPTS     (1024 * 1024)
#define LG_MAX_TOKENS_ARG  (1024 * 1024)

typedef enum {
    LG_LOAD_CONSTANT = 0,
    LG_LOAD_POISSON,
    LG_LOAD_CONCURRENT
} lg_load_type_e;

/*
 * How the run is measured: llmd-loadgen's own way, or as inference-perf
 * v0.2 measured llm-d's reports (docs/benchmark.md): drained stages with a
 * pause, ConstantLoadTimer arrivals, a 300 s request timeout, prompts of
 * random token ids, a connection per request, line-stamped streams.
 */
typedef enum {
    LG_MODE_DEFAULT = 0,
    LG_MODE_IP_V02
} lg_mode_e;

typedef enum {
    LG_DATA_SHARED_PREFIX = 0,
    LG_DATA_RANDOM
} lg_data_type_e;

typedef struct {
    double          rate;          /* requests/s (open loop) */
    double          duration;      /* seconds */
    long            concurrency;   /* concurrent mode: workers */
    long            num_requests;  /* concurrent mode: 0 = until duration */
} lg_stage_t;

typedef struct {
    double          min, max, mean, std;
} lg_dist_t;

typedef struct {
    /* server */
    char            host[256];
    int             port;
    char            path_prefix[256];
    char            model[256];
    int             chat;          /* api.type chat */
    int             stream;
    int             ignore_eos;

    /* workload */
    lg_data_type_e  data;
    long            num_groups;
    long            prompts_per_group;
    long            system_prompt_len;
    long            question_len;
    long            output_len;
    lg_dist_t       input_dist;
    lg_dist_t       output_dist;
    long            num_prompts;   /* random: distinct prompts */
    char            tokenizer[1024];
    long            pad_bytes;     /* extra JSON field of this size */
    uint64_t        seed;

    /* load */
    lg_mode_e       mode;
    lg_load_type_e  load;
    lg_stage_t      stages[LG_MAX_STAGES];
    int             nstages;
    double          time_scale;
    long            max_conns;
    double          drain_timeout; /* simulated seconds after last stage */
    double          request_timeout; /* simulated seconds, 0 = none */
    double          stage_interval; /* load.interval: simulated s between
                                     * drained stages (inference-perf) */
    int             group_bursts;  /* shared_prefix, open loop: every
                                    * arrival is a burst of one group's
                                    * prompts_per_group siblings at once */

    /* output */
    char            out_dir[1024];
    char            name[128];
    int             quiet;
} lg_config_t;

/* One prompt of the workload, with its ready request body. */
typedef struct {
    char           *body;
    size_t          body_len;
    long            input_tokens;  /* counted by the generator */
    long            output_tokens; /* max_tokens */
    int             group;
    int             index;
} lg_prompt_t;

typedef struct {
    lg_prompt_t    *prompts;
    size_t          n;
    int             counted;       /* input_tokens by the real tokenizer */
    char            tokenizer_note[1400];
    /* inference-perf mode: kept to count the output text's tokens */
    struct llmd_tokenizer_s  *tok;
    long            vocab;         /* ids drawn below this */
    int             clean_up_spaces;
} lg_workload_t;

/* One request's life. */
typedef struct {
    long            id;
    int             stage;
    int             prompt;
    double          scheduled;     /* wall s since start */
    double          sent;
    double          first_token;   /* 0: none */
    double          last_token;
    double          end;
    int             status;        /* HTTP status, 0 = none */
    int             ok;
    char            error[96];
    char            server[32];    /* x-sim-pod or x-upstream header */
    double          gw_queue;      /* x-llmd-queue-us header: wall s the
                                      gateway held the request */
    int             have_gw_queue;
    long            events;        /* SSE data events with content */
    long            usage_prompt;  /* -1 unknown */
    long            usage_completion;
    long            usage_cached;
    float          *itl;           /* wall s between token events */
    size_t          nitl, citl;
    /* inference-perf mode */
    lg_lines_t      lines;         /* the stream's line stamps */
    char           *text;          /* the output text until it is counted */
    size_t          text_len, text_cap;
    long            text_tokens;   /* its tokens with BOS, -1 unknown */
} lg_request_t;

typedef struct {
    lg_request_t   *v;
    size_t          n, cap;
} lg_requests_t;

typedef struct {
    double          wall;          /* s */
    double          cpu_user, cpu_sys;
    double         *lag;           /* send - scheduled, wall s */
    size_t          nlag;
    long            max_inflight;
    long            conns_opened;
    double          start_epoch;   /* CLOCK_REALTIME at t = 0 */
} lg_self_t;

/* config.c */
int lg_config_defaults(lg_config_t *cf);
int lg_config_load_yaml(lg_config_t *cf, const char *file, char *err,
    size_t errlen);
int lg_config_url(lg_config_t *cf, const char *url, char *err, size_t errlen);
int lg_config_stage_arg(lg_config_t *cf, const char *arg, char *err,
    size_t errlen);

/* workload.c */
int lg_workload_build(const lg_config_t *cf, lg_workload_t *wl, char *err,
    size_t errlen);
long lg_workload_count(const lg_workload_t *wl, const char *text,
    size_t len);
void lg_workload_free(lg_workload_t *wl);

/* lg_rng.c */
uint64_t lg_rng_next(uint64_t *s);
double lg_rng_uniform(uint64_t *s);

/* client.c */
int lg_run(const lg_config_t *cf, const lg_workload_t *wl,
    lg_requests_t *reqs, lg_self_t *self, char *err, size_t errlen);

/* report.c */
int lg_report_write(const lg_config_t *cf, const lg_workload_t *wl,
    const lg_requests_t *reqs, const lg_self_t *self, char *err,
    size_t errlen);
double lg_percentile(const double *sorted, size_t n, double p);

#endif /* LG_H */
