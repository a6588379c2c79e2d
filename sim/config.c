/*
 * Command-line options and their defaults (all listed in
 * docs/simulator.md).  The defaults play one pod like the seed report's:
 * Llama-3.1-70B-Instruct, TP=4 H100, 461,376 KV tokens in blocks of 16.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/stat.h>

#include "sim.h"


static int sim_hosts(sim_config_t *cf, const char *list);
static int sim_role(const char *s, size_t len, sim_role_t *role);
static int sim_roles(sim_config_t *cf, const char *list, int *n);
static int sim_tokenizer_files(sim_config_t *cf);


/*
 * Llama-3.1-70B's KV per token: 80 layers x 8 KV heads x head size 128 x
 * (K and V) x 2 bytes (bf16) = 327,680 bytes (docs/simulator.md).
 */
#define SIM_KV_BYTES_PER_TOKEN  (80.0 * 8 * 128 * 2 * 2)


/*
 * Profiles of the physical step model (docs/simulator.md, "Profiles"):
 * public model facts (parameters, layers, heads, head size; bf16 weights
 * and KV) and the GPU's data sheet (H100 SXM: 3.35 TB/s HBM3, 989 TFLOP/s
 * dense bf16); the achieved fractions and the overhead are the fitted
 * part.
 */
typedef struct {
    const char  *name;
    const char  *model;
    double       params;           /* parameters */
    int          layers;
    int          q_heads;
    int          kv_heads;
    int          head_dim;
    int          tp;
    long         kv_tokens;        /* KV cache per pod */
    uint32_t     vocab;
} sim_profile_t;

static const sim_profile_t  sim_profiles[] = {
    /* seed 000: 4 pods of TP=4; 461,376 KV tokens is the report's KV_cap */
    { "llama-3.1-70b-tp4-h100", "meta-llama/Llama-3.1-70B-Instruct",
      70.6e9, 80, 64, 8, 128, 4, 461376, 128256 },
    /* seeds 002/004: 8 pods of TP=2; KV: 2 x 80 GB x 0.9 (vLLM's
     * gpu_memory_utilization) - 65.6 GB weights - 8 GB activations and
     * CUDA graphs = 70.4 GB / 262,144 bytes per token */
    { "qwen3-32b-tp2-h100", "Qwen/Qwen3-32B",
      32.8e9, 64, 64, 8, 128, 2, 268544, 151936 },
    { NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0 }
};

/* the physical model's fitted part (docs/simulator.md) */
#define SIM_HBM_TBPS      3.35
#define SIM_PEAK_TFLOPS   989.0
#define SIM_MEM_EFF       0.8
#define SIM_MFU           0.5
#define SIM_OVERHEAD_US   4000.0


static const char  sim_usage[] =
"usage: vllm-sim [options]\n"
"  --pods N                     pods, on ports PORT..PORT+N-1 (1)\n"
"  --port PORT                  first HTTP port, every pod's with --hosts\n"
"                               (8000)\n"
"  --host ADDR                  IPv4 address to listen on (127.0.0.1)\n"
"  --hosts A,B,...              one pod per IPv4 address, all on PORT\n"
"                               (instead of --pods and --host)\n"
"  --model NAME                 served model name\n"
"                               (meta-llama/Llama-3.1-70B-Instruct)\n"
"  --block-size N               tokens per KV block (16)\n"
"  --num-blocks N               KV blocks per pod (28836)\n"
"  --kv-tokens N                KV tokens per pod, sets --num-blocks\n"
"  --max-num-seqs N             running requests per step (256)\n"
"  --max-num-batched-tokens N   token budget per step (8192)\n"
"  --max-model-len N            prompt + output limit (131072)\n"
"  --eos-after N                without ignore_eos, stop after N output\n"
"                               tokens; 0 = never (256)\n"
"  --time-scale X               run X times faster than real time (1)\n"
"  --request-latency-ms X       simulated ms from a request's arrival to\n"
"                               its engine queue: the serving stack (0)\n"
"  --max-lag-ms N               wall ms a late loop's steps keep their\n"
"                               deadlines; later, the clock slips (50)\n"
"  --step-base-us X             step time: fixed part (12000)\n"
"  --prefill-us-per-token X     step time: per prefill token (120)\n"
"  --decode-us-per-seq X        step time: per decoding request (50)\n"
"  --ctx-ns-per-token X         step time: per context token (10)\n"
"  --step-model linear|physical step time model (linear)\n"
"  --profile NAME               physical model, model name, KV size of\n"
"                               llama-3.1-70b-tp4-h100 or\n"
"                               qwen3-32b-tp2-h100 (later options win)\n"
"  --params X                   physical: model parameters (70.6e9)\n"
"  --weight-bytes X             physical: bytes read per step (2 x params)\n"
"  --attn-dim N                 physical: layers x query heads x head size\n"
"                               (655360)\n"
"  --tp N                       physical: GPUs per pod (4)\n"
"  --hbm-tbps X                 physical: HBM TB/s per GPU (3.35)\n"
"  --mem-eff X                  physical: achieved fraction of it (0.8)\n"
"  --peak-tflops X              physical: dense bf16 TFLOP/s per GPU (989)\n"
"  --mfu X                      physical: achieved fraction of it (0.5)\n"
"  --overhead-us X              physical: fixed time per step (4000)\n"
"  --hash-algo A                sha256_cbor | sha256_cbor_64bit\n"
"                               (sha256_cbor)\n"
"  --hash-seed S                NONE_HASH seed (vllm-none-hash)\n"
"  --tokenizer PATH             tokenizer.json, or a directory with it\n"
"                               (fallback tokenizer)\n"
"  --vocab-size N               fallback tokenizer ids (128256)\n"
"  --old-metrics                also vllm:gpu_cache_usage_perc and\n"
"                               vllm:time_per_output_token_seconds\n"
"  --no-prefix-caching          disable automatic prefix caching\n"
"  --kv-events ENDPOINT         ZMQ PUB endpoint, TCP port + pod index\n"
"                               (off; e.g. tcp://*:5557)\n"
"  --kv-replay ENDPOINT         replay ROUTER endpoint (off)\n"
"  --kv-topic T                 topic, {ip} {port} {model} expanded\n"
"                               (kv@{ip}:{port}@{model})\n"
"  --kv-encoding array|map      event encoding (array)\n"
"  --kv-replay-format new|old   replay reply frames (new)\n"
"  --kv-buffer-steps N          replay buffer, batches (10000)\n"
"  --kv-hwm N                   ZMQ send high-water mark (100000)\n"
"  --fault JSON                 fault switches applied to every pod\n"
"  --role prefill|decode|both   every pod's P/D role (both)\n"
"  --roles R,R,...              pod i's role, one per pod\n"
"  --kv-bytes-per-token N       KV bytes per token a decode pod pulls\n"
"                               (327680, Llama-3.1-70B bf16)\n"
"  --kv-transfer-gbps X         KV pull bandwidth, Gbit/s (800)\n"
"  --pd-connect-timeout-ms N    the sidecar's prefill leg: connect (1000)\n"
"  --pd-timeout-ms N            the sidecar's prefill leg: all (60000)\n"
"  --pd-fallback                a failed prefill leg is prefilled locally\n"
"                               (default: its error goes to the client)\n"
"  --quiet                      no log lines\n";


static int
sim_num(const char *s, double lo, double hi, double *v)
{
    char  *end;

    *v = strtod(s, &end);
    return (end == s || *end != '\0' || *v < lo || *v > hi) ? -1 : 0;
}


int
sim_config_parse(sim_config_t *cf, int argc, char **argv)
{
    static const struct option  opts[] = {
        { "pods", 1, NULL, 'n' },
        { "port", 1, NULL, 'p' },
        { "host", 1, NULL, 'H' },
        { "hosts", 1, NULL, 19 },
        { "model", 1, NULL, 'm' },
        { "block-size", 1, NULL, 'b' },
        { "num-blocks", 1, NULL, 'B' },
        { "kv-tokens", 1, NULL, 'K' },
        { "max-num-seqs", 1, NULL, 's' },
        { "max-num-batched-tokens", 1, NULL, 't' },
        { "max-model-len", 1, NULL, 'L' },
        { "eos-after", 1, NULL, 'e' },
        { "time-scale", 1, NULL, 'x' },
        { "step-base-us", 1, NULL, 1 },
        { "prefill-us-per-token", 1, NULL, 2 },
        { "decode-us-per-seq", 1, NULL, 3 },
        { "ctx-ns-per-token", 1, NULL, 4 },
        { "hash-algo", 1, NULL, 5 },
        { "hash-seed", 1, NULL, 6 },
        { "tokenizer", 1, NULL, 7 },
        { "vocab-size", 1, NULL, 8 },
        { "old-metrics", 0, NULL, 9 },
        { "no-prefix-caching", 0, NULL, 10 },
        { "kv-events", 1, NULL, 11 },
        { "kv-replay", 1, NULL, 12 },
        { "kv-topic", 1, NULL, 13 },
        { "kv-encoding", 1, NULL, 14 },
        { "kv-replay-format", 1, NULL, 15 },
        { "kv-buffer-steps", 1, NULL, 16 },
        { "kv-hwm", 1, NULL, 17 },
        { "fault", 1, NULL, 18 },
        { "role", 1, NULL, 20 },
        { "roles", 1, NULL, 21 },
        { "kv-bytes-per-token", 1, NULL, 22 },
        { "kv-transfer-gbps", 1, NULL, 23 },
        { "pd-connect-timeout-ms", 1, NULL, 24 },
        { "pd-timeout-ms", 1, NULL, 25 },
        { "pd-fallback", 0, NULL, 26 },
        { "step-model", 1, NULL, 27 },
        { "profile", 1, NULL, 28 },
        { "params", 1, NULL, 29 },
        { "weight-bytes", 1, NULL, 30 },
        { "attn-dim", 1, NULL, 31 },
        { "tp", 1, NULL, 32 },
        { "hbm-tbps", 1, NULL, 33 },
        { "mem-eff", 1, NULL, 34 },
        { "peak-tflops", 1, NULL, 35 },
        { "mfu", 1, NULL, 36 },
        { "overhead-us", 1, NULL, 37 },
        { "max-lag-ms", 1, NULL, 38 },
        { "request-latency-ms", 1, NULL, 39 },
        { "quiet", 0, NULL, 'q' },
        { "help", 0, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    sim_role_t  role = SIM_ROLE_BOTH;
    double      v;
    long        kv_tokens = 0;
    int         o, bad, i, pods_set = 0, host_set = 0, nroles = 0;
    int         weights_set = 0;

    memset(cf, 0, sizeof(sim_config_t));
    cf->pods = 1;
    cf->port = 8000;
    cf->host = "127.0.0.1";
    cf->model = "meta-llama/Llama-3.1-70B-Instruct";
    cf->block_size = 16;
    cf->num_blocks = 461376 / 16;
    cf->max_num_seqs = 256;
    cf->max_batched_tokens = 8192;
    cf->max_model_len = 131072;
    cf->eos_tokens = 256;
    cf->time_scale = 1.0;
    cf->max_lag_ms = 50;
    cf->step_base_us = 12000;
    cf->prefill_us_per_token = 120;
    cf->decode_us_per_seq = 50;
    cf->ctx_ns_per_token = 10;
    cf->hash_algo = SIM_HASH_SHA256_CBOR;
    cf->hash_seed = "vllm-none-hash";
    cf->vocab_size = 128256;
    cf->kv_topic = "kv@{ip}:{port}@{model}";
    cf->kv_buffer_steps = 10000;
    cf->kv_hwm = 100000;
    cf->kv_bytes_per_token = SIM_KV_BYTES_PER_TOKEN;
    cf->kv_transfer_gbps = 800;
    cf->pd_connect_timeout_ms = 1000;
    cf->pd_timeout_ms = 60000;
    cf->step_model = SIM_STEP_LINEAR;
    cf->hbm_tbps = SIM_HBM_TBPS;
    cf->mem_eff = SIM_MEM_EFF;
    cf->peak_tflops = SIM_PEAK_TFLOPS;
    cf->mfu = SIM_MFU;
    cf->overhead_us = SIM_OVERHEAD_US;
    (void) sim_step_profile(cf, sim_profiles[0].name);
    cf->step_model = SIM_STEP_LINEAR;
    cf->profile = NULL;

    /* a profile first, whatever its place: the other options refine it */
    for (i = 1; i < argc; i++) {
        const char  *name = NULL;

        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (strcmp(argv[i], "--profile") == 0 && i + 1 < argc) {
            name = argv[++i];
        } else if (strncmp(argv[i], "--profile=", 10) == 0) {
            name = argv[i] + 10;
        }
        if (name && sim_step_profile(cf, name) != 0) {
            fprintf(stderr, "vllm-sim: unknown profile \"%s\" (%s, %s)\n",
                    name, sim_profiles[0].name, sim_profiles[1].name);
            return -1;
        }
        if (name) {
            kv_tokens = cf->kv_tokens_profile;
        }
    }

    opterr = 0;
    bad = 0;

    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'n': bad = sim_num(optarg, 1, SIM_MAX_PODS, &v); cf->pods = v;
                  pods_set = 1; break;
        case 'p': bad = sim_num(optarg, 1, 65535, &v); cf->port = v; break;
        case 'H': cf->host = optarg; host_set = 1; break;
        case 19:
            if (sim_hosts(cf, optarg) != 0) {
                return -1;
            }
            break;
        case 'm': cf->model = optarg; break;
        case 'b': bad = sim_num(optarg, 1, SIM_MAX_BLOCK_SIZE, &v);
                  cf->block_size = v; break;
        case 'B': bad = sim_num(optarg, 1, 1 << 26, &v); cf->num_blocks = v;
                  break;
        case 'K': bad = sim_num(optarg, 1, 1e10, &v); kv_tokens = v; break;
        case 's': bad = sim_num(optarg, 1, 65536, &v); cf->max_num_seqs = v;
                  break;
        case 't': bad = sim_num(optarg, 1, 1 << 24, &v);
                  cf->max_batched_tokens = v; break;
        case 'L': bad = sim_num(optarg, 2, 1 << 24, &v);
                  cf->max_model_len = v; break;
        case 'e': bad = sim_num(optarg, 0, 1 << 24, &v); cf->eos_tokens = v;
                  break;
        case 'x': bad = sim_num(optarg, 1e-3, 1e6, &v); cf->time_scale = v;
                  break;
        case 1: bad = sim_num(optarg, 0, 1e9, &cf->step_base_us); break;
        case 2: bad = sim_num(optarg, 0, 1e9, &cf->prefill_us_per_token);
                break;
        case 3: bad = sim_num(optarg, 0, 1e9, &cf->decode_us_per_seq); break;
        case 4: bad = sim_num(optarg, 0, 1e9, &cf->ctx_ns_per_token); break;
        case 5:
            if (strcmp(optarg, "sha256_cbor") == 0) {
                cf->hash_algo = SIM_HASH_SHA256_CBOR;
            } else if (strcmp(optarg, "sha256_cbor_64bit") == 0) {
                cf->hash_algo = SIM_HASH_SHA256_CBOR_64;
            } else {
                bad = 1;
            }
            break;
        case 6: cf->hash_seed = optarg; bad = strlen(optarg) > SIM_MAX_SALT;
                break;
        case 7: cf->tokenizer = optarg; break;
        case 8: bad = sim_num(optarg, 1, 1 << 30, &v); cf->vocab_size = v;
                break;
        case 9: cf->old_metrics = 1; break;
        case 10: cf->no_prefix_caching = 1; break;
        case 11: cf->kv_endpoint = optarg; break;
        case 12: cf->kv_replay_endpoint = optarg; break;
        case 13: cf->kv_topic = optarg; break;
        case 14:
            bad = strcmp(optarg, "map") && strcmp(optarg, "array");
            cf->kv_map_encoding = strcmp(optarg, "map") == 0;
            break;
        case 15:
            bad = strcmp(optarg, "old") && strcmp(optarg, "new");
            cf->kv_replay_old = strcmp(optarg, "old") == 0;
            break;
        case 16: bad = sim_num(optarg, 1, 1e7, &v); cf->kv_buffer_steps = v;
                 break;
        case 17: bad = sim_num(optarg, 0, 1e9, &v); cf->kv_hwm = v; break;
        case 18: cf->fault_json = optarg; break;
        case 20: bad = sim_role(optarg, strlen(optarg), &role); break;
        case 21:
            if (sim_roles(cf, optarg, &nroles) != 0) {
                return -1;
            }
            break;
        case 22: bad = sim_num(optarg, 1, 1e9, &cf->kv_bytes_per_token);
                 break;
        case 23: bad = sim_num(optarg, 1e-6, 1e6, &cf->kv_transfer_gbps);
                 break;
        case 24: bad = sim_num(optarg, 1, 1e7, &v);
                 cf->pd_connect_timeout_ms = v; break;
        case 25: bad = sim_num(optarg, 1, 1e8, &v); cf->pd_timeout_ms = v;
                 break;
        case 26: cf->pd_fallback = 1; break;
        case 27:
            if (strcmp(optarg, "linear") == 0) {
                cf->step_model = SIM_STEP_LINEAR;
            } else if (strcmp(optarg, "physical") == 0) {
                cf->step_model = SIM_STEP_PHYSICAL;
            } else {
                bad = 1;
            }
            break;
        case 28: break;                   /* applied before the loop */
        case 29: bad = sim_num(optarg, 1e6, 1e14, &cf->params); break;
        case 30: bad = sim_num(optarg, 0, 1e15, &cf->weight_bytes);
                 weights_set = 1; break;
        case 31: bad = sim_num(optarg, 0, 1e12, &cf->attn_dim); break;
        case 32: bad = sim_num(optarg, 1, 1024, &v); cf->tp = v; break;
        case 33: bad = sim_num(optarg, 1e-3, 1e3, &cf->hbm_tbps); break;
        case 34: bad = sim_num(optarg, 1e-3, 1, &cf->mem_eff); break;
        case 35: bad = sim_num(optarg, 1e-3, 1e6, &cf->peak_tflops); break;
        case 36: bad = sim_num(optarg, 1e-3, 1, &cf->mfu); break;
        case 37: bad = sim_num(optarg, 0, 1e9, &cf->overhead_us); break;
        case 38: bad = sim_num(optarg, 0, 3600000, &v);
                 cf->max_lag_ms = (int) v; break;
        case 39: bad = sim_num(optarg, 0, 3600000, &cf->request_latency_ms);
                 break;
        case 'q': cf->quiet = 1; break;
        case 'h': fputs(sim_usage, stdout); exit(0);
        default:
            fprintf(stderr, "vllm-sim: unknown option %s\n%s",
                    argv[optind - 1], sim_usage);
            return -1;
        }

        if (bad) {
            fprintf(stderr, "vllm-sim: bad value \"%s\" for %s\n", optarg,
                    argv[optind - 1]);
            return -1;
        }
    }

    if (optind < argc) {
        fprintf(stderr, "vllm-sim: unexpected argument %s\n", argv[optind]);
        return -1;
    }

    if (!weights_set) {
        cf->weight_bytes = 2.0 * cf->params;     /* bf16 */
    }

    if (kv_tokens) {
        cf->num_blocks = (uint32_t) (kv_tokens / cf->block_size);
        if (cf->num_blocks == 0) {
            fprintf(stderr, "vllm-sim: --kv-tokens below one block\n");
            return -1;
        }
    }

    if (cf->nhosts) {
        /* the list is the pods: another count or address contradicts it */
        if (pods_set && cf->pods != cf->nhosts) {
            fprintf(stderr, "vllm-sim: --pods %d conflicts with --hosts "
                    "(%d addresses, one pod each)\n", cf->pods, cf->nhosts);
            return -1;
        }
        if (host_set) {
            fprintf(stderr, "vllm-sim: --host conflicts with --hosts\n");
            return -1;
        }
        cf->pods = cf->nhosts;

    } else if (cf->port + cf->pods - 1 > 65535) {
        fprintf(stderr, "vllm-sim: ports beyond 65535\n");
        return -1;
    }

    if (nroles) {
        /* one role per pod, in pod order */
        if (nroles != cf->pods) {
            fprintf(stderr, "vllm-sim: --roles names %d roles for %d "
                    "pods\n", nroles, cf->pods);
            return -1;
        }
    } else {
        for (i = 0; i < cf->pods; i++) {
            cf->roles[i] = (uint8_t) role;
        }
    }

    if (cf->tokenizer && sim_tokenizer_files(cf) != 0) {
        fprintf(stderr, "vllm-sim: --tokenizer path too long\n");
        return -1;
    }

    return 0;
}


int
sim_step_profile(sim_config_t *cf, const char *name)
{
    const sim_profile_t  *p;

    for (p = sim_profiles; p->name; p++) {
        if (strcmp(p->name, name) == 0) {
            break;
        }
    }

    if (p->name == NULL) {
        return -1;
    }

    cf->profile = p->name;
    cf->step_model = SIM_STEP_PHYSICAL;
    cf->model = p->model;
    cf->params = p->params;
    cf->weight_bytes = 2.0 * p->params;                      /* bf16 */
    cf->attn_dim = (double) p->layers * p->q_heads * p->head_dim;
    cf->kv_bytes_per_token = (double) p->layers * p->kv_heads * p->head_dim
                             * 2 * 2;                        /* K, V; bf16 */
    cf->tp = p->tp;
    cf->kv_tokens_profile = p->kv_tokens;
    cf->vocab_size = p->vocab;
    /*
     * vLLM's defaults on a GPU of 70 GiB or more (not an A100), for its
     * OpenAI server (EngineArgs' batch defaults): 1,024 requests, 8,192
     * tokens per step.
     */
    cf->max_num_seqs = 1024;
    cf->max_batched_tokens = 8192;

    return 0;
}


/*
 * --hosts A,B,C: pod i listens on the i-th address, every pod on --port,
 * as pods of a cluster each have their own address.  Checks every address
 * (IPv4, no repeats) and keeps it in canonical form.
 */
static int
sim_hosts(sim_config_t *cf, const char *list)
{
    struct in_addr  a;
    const char     *p, *comma;
    char            item[64];
    size_t          n;
    int             i;

    cf->nhosts = 0;

    for (p = list; /* void */; p = comma + 1) {
        comma = strchr(p, ',');
        n = comma ? (size_t) (comma - p) : strlen(p);

        if (n >= sizeof(item)) {
            n = sizeof(item) - 1;
        }
        memcpy(item, p, n);
        item[n] = '\0';

        if (inet_pton(AF_INET, item, &a) != 1) {
            fprintf(stderr, "vllm-sim: --hosts: \"%s\" is not an IPv4 "
                    "address\n", item);
            return -1;
        }

        if (cf->nhosts == SIM_MAX_PODS) {
            fprintf(stderr, "vllm-sim: --hosts: more than %d addresses\n",
                    SIM_MAX_PODS);
            return -1;
        }

        inet_ntop(AF_INET, &a, cf->hosts[cf->nhosts], SIM_MAX_HOST);

        for (i = 0; i < cf->nhosts; i++) {
            if (strcmp(cf->hosts[i], cf->hosts[cf->nhosts]) == 0) {
                fprintf(stderr, "vllm-sim: --hosts: %s given twice\n",
                        cf->hosts[i]);
                return -1;
            }
        }

        cf->nhosts++;

        if (comma == NULL) {
            return 0;
        }
    }
}


const char *
sim_role_name(sim_role_t role)
{
    switch (role) {
    case SIM_ROLE_PREFILL: return "prefill";
    case SIM_ROLE_DECODE:  return "decode";
    default:               return "both";
    }
}


/* llm-d's role label values; "prefill-decode" is llm-d's name of both. */
static int
sim_role(const char *s, size_t len, sim_role_t *role)
{
    static const struct {
        const char  *name;
        sim_role_t   role;
    } names[] = {
        { "prefill", SIM_ROLE_PREFILL }, { "decode", SIM_ROLE_DECODE },
        { "both", SIM_ROLE_BOTH }, { "prefill-decode", SIM_ROLE_BOTH }
    };
    size_t  i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strlen(names[i].name) == len
            && strncmp(s, names[i].name, len) == 0)
        {
            *role = names[i].role;
            return 0;
        }
    }

    return -1;
}


/* --roles R,R,...: pod i takes the i-th role. */
static int
sim_roles(sim_config_t *cf, const char *list, int *n)
{
    const char  *p, *comma;
    sim_role_t   role;
    size_t       len;

    *n = 0;

    for (p = list; /* void */; p = comma + 1) {
        comma = strchr(p, ',');
        len = comma ? (size_t) (comma - p) : strlen(p);

        if (sim_role(p, len, &role) != 0) {
            fprintf(stderr, "vllm-sim: --roles: \"%.*s\" is not prefill, "
                    "decode or both\n", (int) len, p);
            return -1;
        }

        if (*n == SIM_MAX_PODS) {
            fprintf(stderr, "vllm-sim: --roles: more than %d roles\n",
                    SIM_MAX_PODS);
            return -1;
        }

        cf->roles[(*n)++] = (uint8_t) role;

        if (comma == NULL) {
            return 0;
        }
    }
}


/*
 * --tokenizer names a tokenizer.json, with the tokenizer_config.json next
 * to it when there is one, or a directory holding both (as nginx's
 * llmd_tokenizer does).
 */
static int
sim_tokenizer_files(sim_config_t *cf)
{
    struct stat  st;
    const char  *path = cf->tokenizer, *slash;
    int          dir, n, m;

    dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    if (dir) {
        n = snprintf(cf->tokenizer_json, SIM_MAX_PATH, "%s/tokenizer.json",
                     path);
        m = snprintf(cf->tokenizer_config, SIM_MAX_PATH,
                     "%s/tokenizer_config.json", path);
    } else {
        slash = strrchr(path, '/');
        n = snprintf(cf->tokenizer_json, SIM_MAX_PATH, "%s", path);
        m = snprintf(cf->tokenizer_config, SIM_MAX_PATH,
                     "%.*stokenizer_config.json",
                     slash ? (int) (slash + 1 - path) : 0, path);
    }

    if (n >= SIM_MAX_PATH || m >= SIM_MAX_PATH) {
        return -1;
    }

    if (access(cf->tokenizer_config, R_OK) != 0) {
        cf->tokenizer_config[0] = '\0';
    }

    return 0;
}
