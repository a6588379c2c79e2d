/*
 * llmd-loadgen command line.  See docs/benchmark.md.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lg.h"


static void lg_usage(FILE *f);
static int lg_parse_dist(const char *s, lg_dist_t *d);
static int lg_parse_long(const char *s, long min, long max, long *out);
static int lg_parse_double(const char *s, double min, double max, double *out);
static int lg_check_mode(lg_config_t *cf, int timeout_given, char *err,
    size_t errlen);


static void
lg_usage(FILE *f)
{
    fprintf(f,
"usage: llmd-loadgen --url http://HOST:PORT --out DIR [options]\n"
"  --config FILE          inference-perf YAML (load, api, server, data);\n"
"                         options given after it override it\n"
"  --api completion|chat  --model NAME  --no-stream  --no-ignore-eos\n"
"  --data shared_prefix|random\n"
"  --num-groups N --prompts-per-group N --system-prompt-len TOKENS\n"
"  --question-len TOKENS --output-len TOKENS       (shared_prefix)\n"
"  --input MIN:MAX:MEAN:STD --output MIN:MAX:MEAN:STD --num-prompts N\n"
"                                                  (random)\n"
"  --tokenizer PATH       tokenizer.json or its directory: count tokens\n"
"  --load constant|poisson\n"
"  --stage RATE:SECONDS   open-loop stage (repeat for more stages)\n"
"  --stage cN:SECONDS[:NUM]  keep N requests in flight (concurrent)\n"
"  --time-scale S         divide durations, multiply rates by S; report\n"
"                         times multiplied by S (simulated seconds)\n"
"  --seed N  --max-conns N  --drain-timeout SECONDS  --timeout SECONDS\n"
"  --mode default|inference-perf-v0.2\n"
"                         measure as inference-perf v0.2 did for llm-d's\n"
"                         reports: drained stages, its arrival timers, a\n"
"                         300 s timeout, random-id prompts, line-stamped\n"
"                         streams (needs --tokenizer; docs/benchmark.md)\n"
"  --pad-bytes N          add an ignored JSON field of N bytes to bodies\n"
"  --group-bursts         shared_prefix, open loop: requests come in bursts\n"
"                         of all the siblings of one group at one instant;\n"
"                         bursts arrive at the stage's rate / prompts per\n"
"                         group, groups in random order\n"
"  --name NAME  --quiet\n");
}


static int
lg_parse_dist(const char *s, lg_dist_t *d)
{
    if (sscanf(s, "%lf:%lf:%lf:%lf", &d->min, &d->max, &d->mean, &d->std)
        != 4 || d->min < 1 || d->max < d->min || d->max > LG_MAX_TOKENS_ARG
        || d->std < 0)
    {
        return -1;
    }
    return 0;
}


static int
lg_parse_long(const char *s, long min, long max, long *out)
{
    char  *end;
    long   v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}


static int
lg_parse_double(const char *s, double min, double max, double *out)
{
    char    *end;
    double   v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || *end != '\0' || !(v >= min && v <= max)) {
        return -1;
    }
    *out = v;
    return 0;
}


/*
 * What inference-perf v0.2 can do is what the mode accepts: its
 * shared-prefix generator (the one llm-d's reports use) sends completions
 * only and needs a tokenizer; it has no concurrency stages; aiohttp's
 * default total timeout of 300 s fails longer requests.
 */
static int
lg_check_mode(lg_config_t *cf, int timeout_given, char *err, size_t errlen)
{
    int  i;

    if (cf->mode != LG_MODE_IP_V02) {
        return 0;
    }
    if (cf->data != LG_DATA_SHARED_PREFIX) {
        snprintf(err, errlen, "--mode inference-perf-v0.2: shared_prefix"
                 " data only (its random data draws new tokens for every"
                 " request, which this program does not do)");
        return -1;
    }
    if (cf->chat) {
        snprintf(err, errlen, "--mode inference-perf-v0.2: completion API"
                 " only (as its shared_prefix generator)");
        return -1;
    }
    if (cf->tokenizer[0] == '\0') {
        snprintf(err, errlen, "--mode inference-perf-v0.2 needs --tokenizer"
                 " (prompts are random token ids, decoded)");
        return -1;
    }
    for (i = 0; i < cf->nstages; i++) {
        if (cf->stages[i].concurrency > 0) {
            snprintf(err, errlen, "--mode inference-perf-v0.2: rate stages"
                     " only (no concurrency)");
            return -1;
        }
    }
    if (!timeout_given) {
        cf->request_timeout = 300;
    }
    return 0;
}


enum {
    O_CONFIG = 256, O_API, O_MODEL, O_NOSTREAM, O_NOEOS, O_DATA, O_GROUPS,
    O_PPG, O_SYSLEN, O_QLEN, O_OLEN, O_INPUT, O_OUTPUT, O_NPROMPTS,
    O_TOKENIZER, O_LOAD, O_STAGE, O_SCALE, O_SEED, O_MAXCONNS, O_DRAIN,
    O_TIMEOUT, O_NAME, O_QUIET, O_URL, O_OUT, O_HELP, O_PAD, O_MODE,
    O_BURSTS
};

static const struct option  options[] = {
    { "config", required_argument, NULL, O_CONFIG },
    { "url", required_argument, NULL, O_URL },
    { "out", required_argument, NULL, O_OUT },
    { "api", required_argument, NULL, O_API },
    { "model", required_argument, NULL, O_MODEL },
    { "no-stream", no_argument, NULL, O_NOSTREAM },
    { "no-ignore-eos", no_argument, NULL, O_NOEOS },
    { "data", required_argument, NULL, O_DATA },
    { "num-groups", required_argument, NULL, O_GROUPS },
    { "prompts-per-group", required_argument, NULL, O_PPG },
    { "system-prompt-len", required_argument, NULL, O_SYSLEN },
    { "question-len", required_argument, NULL, O_QLEN },
    { "output-len", required_argument, NULL, O_OLEN },
    { "input", required_argument, NULL, O_INPUT },
    { "output", required_argument, NULL, O_OUTPUT },
    { "num-prompts", required_argument, NULL, O_NPROMPTS },
    { "tokenizer", required_argument, NULL, O_TOKENIZER },
    { "load", required_argument, NULL, O_LOAD },
    { "stage", required_argument, NULL, O_STAGE },
    { "time-scale", required_argument, NULL, O_SCALE },
    { "seed", required_argument, NULL, O_SEED },
    { "max-conns", required_argument, NULL, O_MAXCONNS },
    { "drain-timeout", required_argument, NULL, O_DRAIN },
    { "timeout", required_argument, NULL, O_TIMEOUT },
    { "name", required_argument, NULL, O_NAME },
    { "quiet", no_argument, NULL, O_QUIET },
    { "pad-bytes", required_argument, NULL, O_PAD },
    { "group-bursts", no_argument, NULL, O_BURSTS },
    { "mode", required_argument, NULL, O_MODE },
    { "help", no_argument, NULL, O_HELP },
    { NULL, 0, NULL, 0 }
};


int
main(int argc, char **argv)
{
    lg_config_t    cf;
    lg_workload_t  wl;
    lg_requests_t  reqs;
    lg_self_t      self;
    char           err[1024];
    int            opt, cli_stages = 0, i, timeout_given = 0;
    long           v;
    double         expected = 0;
    size_t         j;

    lg_config_defaults(&cf);
    memset(&reqs, 0, sizeof(reqs));
    memset(&self, 0, sizeof(self));

    /* the config file first, so that every other option overrides it */
    for (i = 1; i < argc - 1; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (lg_config_load_yaml(&cf, argv[i + 1], err, sizeof(err))
                != 0)
            {
                fprintf(stderr, "llmd-loadgen: %s\n", err);
                return 2;
            }
        }
    }

    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        err[0] = '\0';
        switch (opt) {
        case O_CONFIG:
            break;
        case O_URL:
            if (lg_config_url(&cf, optarg, err, sizeof(err)) != 0) {
                goto bad;
            }
            break;
        case O_OUT:
            snprintf(cf.out_dir, sizeof(cf.out_dir), "%s", optarg);
            break;
        case O_API:
            if (strcmp(optarg, "chat") == 0) {
                cf.chat = 1;
            } else if (strcmp(optarg, "completion") == 0) {
                cf.chat = 0;
            } else {
                goto bad;
            }
            break;
        case O_MODEL:
            snprintf(cf.model, sizeof(cf.model), "%s", optarg);
            break;
        case O_NOSTREAM:
            cf.stream = 0;
            break;
        case O_NOEOS:
            cf.ignore_eos = 0;
            break;
        case O_DATA:
            if (strcmp(optarg, "shared_prefix") == 0) {
                cf.data = LG_DATA_SHARED_PREFIX;
            } else if (strcmp(optarg, "random") == 0) {
                cf.data = LG_DATA_RANDOM;
            } else {
                goto bad;
            }
            break;
        case O_GROUPS:
            if (lg_parse_long(optarg, 1, 100000, &cf.num_groups) != 0) {
                goto bad;
            }
            break;
        case O_PPG:
            if (lg_parse_long(optarg, 1, 100000, &cf.prompts_per_group) != 0) {
                goto bad;
            }
            break;
        case O_SYSLEN:
            if (lg_parse_long(optarg, 0, LG_MAX_TOKENS_ARG,
                              &cf.system_prompt_len) != 0)
            {
                goto bad;
            }
            break;
        case O_QLEN:
            if (lg_parse_long(optarg, 1, LG_MAX_TOKENS_ARG, &cf.question_len)
                != 0)
            {
                goto bad;
            }
            break;
        case O_OLEN:
            if (lg_parse_long(optarg, 1, LG_MAX_TOKENS_ARG, &cf.output_len)
                != 0)
            {
                goto bad;
            }
            break;
        case O_INPUT:
            if (lg_parse_dist(optarg, &cf.input_dist) != 0) {
                goto bad;
            }
            break;
        case O_OUTPUT:
            if (lg_parse_dist(optarg, &cf.output_dist) != 0) {
                goto bad;
            }
            break;
        case O_NPROMPTS:
            if (lg_parse_long(optarg, 1, LG_MAX_PROMPTS, &cf.num_prompts)
                != 0)
            {
                goto bad;
            }
            break;
        case O_TOKENIZER:
            snprintf(cf.tokenizer, sizeof(cf.tokenizer), "%s", optarg);
            break;
        case O_LOAD:
            if (strcmp(optarg, "poisson") == 0) {
                cf.load = LG_LOAD_POISSON;
            } else if (strcmp(optarg, "constant") == 0) {
                cf.load = LG_LOAD_CONSTANT;
            } else {
                goto bad;
            }
            break;
        case O_STAGE:
            /* stages on the command line replace the file's */
            if (cli_stages++ == 0) {
                cf.nstages = 0;
            }
            if (lg_config_stage_arg(&cf, optarg, err, sizeof(err)) != 0) {
                goto bad;
            }
            break;
        case O_SCALE:
            if (lg_parse_double(optarg, 0.001, 10000, &cf.time_scale) != 0) {
                goto bad;
            }
            break;
        case O_SEED:
            if (lg_parse_long(optarg, 0, 0x7fffffffL, &v) != 0) {
                goto bad;
            }
            cf.seed = (uint64_t) v;
            break;
        case O_MAXCONNS:
            if (lg_parse_long(optarg, 1, 1000000, &cf.max_conns) != 0) {
                goto bad;
            }
            break;
        case O_DRAIN:
            if (lg_parse_double(optarg, 0, 1e7, &cf.drain_timeout) != 0) {
                goto bad;
            }
            break;
        case O_TIMEOUT:
            if (lg_parse_double(optarg, 0, 1e7, &cf.request_timeout) != 0) {
                goto bad;
            }
            timeout_given = 1;
            break;
        case O_MODE:
            if (strcmp(optarg, "inference-perf-v0.2") == 0) {
                cf.mode = LG_MODE_IP_V02;
            } else if (strcmp(optarg, "default") == 0) {
                cf.mode = LG_MODE_DEFAULT;
            } else {
                goto bad;
            }
            break;
        case O_NAME:
            snprintf(cf.name, sizeof(cf.name), "%s", optarg);
            break;
        case O_PAD:
            if (lg_parse_long(optarg, 0, 1024 * 1024, &cf.pad_bytes) != 0) {
                goto bad;
            }
            break;
        case O_QUIET:
            cf.quiet = 1;
            break;
        case O_BURSTS:
            cf.group_bursts = 1;
            break;
        case O_HELP:
            lg_usage(stdout);
            return 0;
        default:
            lg_usage(stderr);
            return 2;
        }
        continue;
    bad:
        for (i = 0; options[i].name != NULL && options[i].val != opt; i++) {
            /* the option's name for the message */
        }
        fprintf(stderr, "llmd-loadgen: --%s %s: %s\n",
                options[i].name ? options[i].name : "?",
                optarg ? optarg : "",
                err[0] ? err : "invalid value");
        return 2;
    }
    if (optind != argc || cf.out_dir[0] == '\0' || cf.nstages == 0) {
        fprintf(stderr, "llmd-loadgen: need --out DIR and at least one"
                " stage (--stage or the config's load.stages)\n");
        lg_usage(stderr);
        return 2;
    }
    if (lg_check_mode(&cf, timeout_given, err, sizeof(err)) != 0) {
        fprintf(stderr, "llmd-loadgen: %s\n", err);
        return 2;
    }
    if (cf.group_bursts) {
        for (i = 0; i < cf.nstages; i++) {
            if (cf.stages[i].concurrency) {
                break;
            }
        }
        if (cf.data != LG_DATA_SHARED_PREFIX || cf.mode != LG_MODE_DEFAULT
            || i < cf.nstages)
        {
            fprintf(stderr, "llmd-loadgen: --group-bursts needs"
                    " shared_prefix data, open-loop stages and the default"
                    " mode\n");
            return 2;
        }
    }
    /* a concurrency stage makes the whole run closed-loop per stage */
    for (i = 0; i < cf.nstages; i++) {
        expected += cf.stages[i].concurrency ? 0
                    : cf.stages[i].rate * cf.stages[i].duration;
    }
    if (expected > 5e6) {
        fprintf(stderr, "llmd-loadgen: %.0f requests is more than this"
                " program keeps in memory\n", expected);
        return 2;
    }

    /* a server closing a connection must not kill the generator */
    signal(SIGPIPE, SIG_IGN);

    if (lg_workload_build(&cf, &wl, err, sizeof(err)) != 0) {
        fprintf(stderr, "llmd-loadgen: %s\n", err);
        return 1;
    }
    if (!cf.quiet) {
        fprintf(stderr, "llmd-loadgen: %zu prompts, tokenizer %s\n", wl.n,
                wl.tokenizer_note);
    }
    if (lg_run(&cf, &wl, &reqs, &self, err, sizeof(err)) != 0) {
        fprintf(stderr, "llmd-loadgen: %s\n", err);
        return 1;
    }
    if (lg_report_write(&cf, &wl, &reqs, &self, err, sizeof(err)) != 0) {
        fprintf(stderr, "llmd-loadgen: %s\n", err);
        return 1;
    }
    if (!cf.quiet) {
        long  ok = 0;

        for (j = 0; j < reqs.n; j++) {
            ok += reqs.v[j].ok;
        }
        fprintf(stderr, "llmd-loadgen: %zu requests, %ld ok, %.1f s wall,"
                " CPU %.1f%% of one core; report in %s\n", reqs.n, ok,
                self.wall, self.wall > 0 ? 100 * (self.cpu_user
                + self.cpu_sys) / self.wall : 0.0, cf.out_dir);
    }
    for (j = 0; j < reqs.n; j++) {
        free(reqs.v[j].itl);
        free(reqs.v[j].text);
        lg_lines_free(&reqs.v[j].lines);
    }
    free(reqs.v);
    free(self.lag);
    lg_workload_free(&wl);
    return 0;
}
