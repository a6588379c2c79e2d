/*
 * Configuration: defaults, the --url and --stage arguments, and the
 * inference-perf YAML form (load, api, server, data, tokenizer sections;
 * unknown keys are ignored, as a file written for inference-perf has
 * sections this program has no use for).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lg.h"
#include "core/llmd_yaml.h"


static int lg_yaml_long(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *map, const char *key, long min, long max, long *out);
static int lg_yaml_double(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *map, const char *key, double min, double max, double *out);
static int lg_yaml_dist(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *map, lg_dist_t *d);
static int lg_load_section(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *load, lg_config_t *cf);


int
lg_config_defaults(lg_config_t *cf)
{
    memset(cf, 0, sizeof(*cf));
    snprintf(cf->host, sizeof(cf->host), "127.0.0.1");
    cf->port = 8000;
    snprintf(cf->model, sizeof(cf->model),
             "meta-llama/Llama-3.1-70B-Instruct");
    cf->stream = 1;
    cf->ignore_eos = 1;
    cf->data = LG_DATA_SHARED_PREFIX;
    cf->num_groups = 83;
    cf->prompts_per_group = 3;
    cf->system_prompt_len = 8000;
    cf->question_len = 1000;
    cf->output_len = 1000;
    cf->input_dist = (lg_dist_t) { 100, 1000, 500, 200 };
    cf->output_dist = (lg_dist_t) { 10, 200, 100, 50 };
    cf->num_prompts = 1000;
    cf->seed = 42;
    cf->load = LG_LOAD_CONSTANT;
    cf->time_scale = 1;
    cf->max_conns = 10000;
    cf->drain_timeout = 600;
    cf->stage_interval = 1;
    snprintf(cf->name, sizeof(cf->name), "llmd-loadgen");
    return 0;
}


/* http://HOST[:PORT][/PREFIX]: plain HTTP only, IPv4 literal or name. */
int
lg_config_url(lg_config_t *cf, const char *url, char *err, size_t errlen)
{
    const char  *p, *slash, *colon;
    size_t       hlen;
    long         port;
    char        *end;

    if (strncmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "--url: only http:// URLs: %s", url);
        return -1;
    }
    p = url + 7;
    slash = strchr(p, '/');
    if (slash == NULL) {
        slash = p + strlen(p);
    }
    colon = memchr(p, ':', slash - p);
    hlen = (colon ? colon : slash) - p;
    if (hlen == 0 || hlen >= sizeof(cf->host)) {
        snprintf(err, errlen, "--url: bad host: %s", url);
        return -1;
    }
    memcpy(cf->host, p, hlen);
    cf->host[hlen] = '\0';
    cf->port = 80;
    if (colon) {
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        if (errno || end != slash || port < 1 || port > 65535) {
            snprintf(err, errlen, "--url: bad port: %s", url);
            return -1;
        }
        cf->port = (int) port;
    }
    /* the API paths are appended; a trailing slash would double */
    hlen = strlen(slash);
    while (hlen > 0 && slash[hlen - 1] == '/') {
        hlen--;
    }
    if (hlen >= sizeof(cf->path_prefix)) {
        snprintf(err, errlen, "--url: path too long");
        return -1;
    }
    memcpy(cf->path_prefix, slash, hlen);
    cf->path_prefix[hlen] = '\0';
    return 0;
}


/* RATE:DURATION, or cN:DURATION[:NUM] for a concurrency stage. */
int
lg_config_stage_arg(lg_config_t *cf, const char *arg, char *err,
    size_t errlen)
{
    lg_stage_t  *st;
    char        *end;
    const char  *p = arg;
    int          conc = 0;

    if (cf->nstages >= LG_MAX_STAGES) {
        snprintf(err, errlen, "at most %d stages", LG_MAX_STAGES);
        return -1;
    }
    st = &cf->stages[cf->nstages];
    memset(st, 0, sizeof(*st));
    if (*p == 'c') {
        conc = 1;
        p++;
    }
    errno = 0;
    if (conc) {
        st->concurrency = strtol(p, &end, 10);
    } else {
        st->rate = strtod(p, &end);
    }
    if (errno || *end != ':') {
        goto bad;
    }
    st->duration = strtod(end + 1, &end);
    if (errno || (*end != '\0' && !(conc && *end == ':'))) {
        goto bad;
    }
    if (*end == ':') {
        st->num_requests = strtol(end + 1, &end, 10);
        if (errno || *end != '\0' || st->num_requests < 0) {
            goto bad;
        }
    }
    if (st->duration <= 0 || st->duration > 1e7
        || (conc && (st->concurrency < 1 || st->concurrency > 100000))
        || (!conc && (st->rate <= 0 || st->rate > 1e6)))
    {
        goto bad;
    }
    if (conc) {
        cf->load = LG_LOAD_CONCURRENT;
    }
    cf->nstages++;
    return 0;

bad:
    snprintf(err, errlen, "--stage: want RATE:SECONDS or cN:SECONDS[:NUM],"
             " got \"%s\"", arg);
    return -1;
}


static int
lg_yaml_long(llmd_yaml_ctx_t *ctx, yaml_document_t *doc, yaml_node_t *map,
    const char *key, long min, long max, long *out)
{
    yaml_node_t  *n;
    double        v;

    n = llmd_yaml_get(doc, map, key);
    if (n == NULL || llmd_yaml_is_null(n)) {
        return 0;
    }
    if (llmd_yaml_number(ctx, n, key, &v) != 0) {
        return -1;
    }
    if (v < min || v > max || v != (double) (long) v) {
        return llmd_yaml_error(ctx, n, "%s: an integer in [%ld, %ld]", key,
                               min, max);
    }
    *out = (long) v;
    return 0;
}


static int
lg_yaml_double(llmd_yaml_ctx_t *ctx, yaml_document_t *doc, yaml_node_t *map,
    const char *key, double min, double max, double *out)
{
    yaml_node_t  *n;
    double        v;

    n = llmd_yaml_get(doc, map, key);
    if (n == NULL || llmd_yaml_is_null(n)) {
        return 0;
    }
    if (llmd_yaml_number(ctx, n, key, &v) != 0) {
        return -1;
    }
    if (!(v >= min && v <= max)) {
        return llmd_yaml_error(ctx, n, "%s: a number in [%g, %g]", key,
                               min, max);
    }
    *out = v;
    return 0;
}


static int
lg_yaml_dist(llmd_yaml_ctx_t *ctx, yaml_document_t *doc, yaml_node_t *map,
    lg_dist_t *d)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE) {
        return 0;
    }
    if (lg_yaml_double(ctx, doc, map, "min", 1, LG_MAX_TOKENS_ARG, &d->min)
        || lg_yaml_double(ctx, doc, map, "max", 1, LG_MAX_TOKENS_ARG, &d->max)
        || lg_yaml_double(ctx, doc, map, "mean", 1, LG_MAX_TOKENS_ARG, &d->mean)
        || lg_yaml_double(ctx, doc, map, "std", 0, LG_MAX_TOKENS_ARG, &d->std))
    {
        return -1;
    }
    if (d->min > d->max) {
        return llmd_yaml_error(ctx, map, "min > max");
    }
    return 0;
}


static int
lg_load_section(llmd_yaml_ctx_t *ctx, yaml_document_t *doc, yaml_node_t *load,
    lg_config_t *cf)
{
    yaml_node_t       *n, *stages, *st;
    yaml_node_item_t  *it;
    const char        *s;
    lg_stage_t        *stage;

    n = llmd_yaml_get(doc, load, "type");
    if (n != NULL) {
        if (llmd_yaml_string(ctx, n, "load.type", &s) != 0) {
            return -1;
        }
        if (strcmp(s, "constant") == 0) {
            cf->load = LG_LOAD_CONSTANT;
        } else if (strcmp(s, "poisson") == 0) {
            cf->load = LG_LOAD_POISSON;
        } else if (strcmp(s, "concurrent") == 0) {
            cf->load = LG_LOAD_CONCURRENT;
        } else {
            return llmd_yaml_error(ctx, n, "load.type: constant, poisson or"
                                   " concurrent, not \"%s\"", s);
        }
    }

    if (lg_yaml_double(ctx, doc, load, "interval", 0, 1e6,
                       &cf->stage_interval) != 0)
    {
        return -1;
    }

    stages = llmd_yaml_get(doc, load, "stages");
    if (stages == NULL) {
        return 0;
    }
    if (stages->type != YAML_SEQUENCE_NODE) {
        return llmd_yaml_error(ctx, stages, "load.stages: a list");
    }
    cf->nstages = 0;
    for (it = stages->data.sequence.items.start;
         it < stages->data.sequence.items.top; it++)
    {
        st = yaml_document_get_node(doc, *it);
        if (st == NULL || st->type != YAML_MAPPING_NODE) {
            return llmd_yaml_error(ctx, st, "a stage is a mapping");
        }
        if (cf->nstages >= LG_MAX_STAGES) {
            return llmd_yaml_error(ctx, st, "at most %d stages",
                                   LG_MAX_STAGES);
        }
        stage = &cf->stages[cf->nstages];
        memset(stage, 0, sizeof(*stage));
        if (lg_yaml_double(ctx, doc, st, "rate", 0, 1e6, &stage->rate)
            || lg_yaml_double(ctx, doc, st, "duration", 0, 1e7,
                              &stage->duration)
            || lg_yaml_long(ctx, doc, st, "concurrency_level", 0, 100000,
                            &stage->concurrency)
            || lg_yaml_long(ctx, doc, st, "num_requests", 0, 100000000,
                            &stage->num_requests))
        {
            return -1;
        }
        if (stage->concurrency > 0) {
            cf->load = LG_LOAD_CONCURRENT;
        }
        if (stage->duration <= 0 && stage->num_requests <= 0) {
            return llmd_yaml_error(ctx, st, "a stage needs a duration");
        }
        if (stage->concurrency == 0 && stage->rate <= 0) {
            return llmd_yaml_error(ctx, st, "a stage needs a rate or a"
                                   " concurrency_level");
        }
        if (stage->duration <= 0) {
            stage->duration = 1e7;
        }
        cf->nstages++;
    }
    return 0;
}


int
lg_config_load_yaml(lg_config_t *cf, const char *file, char *err,
    size_t errlen)
{
    FILE             *f;
    yaml_parser_t     parser;
    yaml_document_t   doc;
    yaml_node_t      *root, *sec, *n, *sp;
    llmd_yaml_ctx_t   ctx = { file, err, errlen };
    const char       *s;
    int               rc = -1, v;
    struct stat       sb;

    f = fopen(file, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", file, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &sb) != 0 || sb.st_size > 4 * 1024 * 1024) {
        snprintf(err, errlen, "%s: not a regular file of at most 4 MB", file);
        fclose(f);
        return -1;
    }
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s:%zu: %s", file,
                 parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "YAML error");
        yaml_parser_delete(&parser);
        fclose(f);
        return -1;
    }

    root = yaml_document_get_root_node(&doc);
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "%s: not a YAML mapping", file);
        goto done;
    }

    sec = llmd_yaml_get(&doc, root, "load");
    if (sec != NULL && lg_load_section(&ctx, &doc, sec, cf) != 0) {
        goto done;
    }

    sec = llmd_yaml_get(&doc, root, "api");
    if (sec != NULL) {
        n = llmd_yaml_get(&doc, sec, "type");
        if (n != NULL) {
            if (llmd_yaml_string(&ctx, n, "api.type", &s) != 0) {
                goto done;
            }
            if (strcmp(s, "chat") == 0) {
                cf->chat = 1;
            } else if (strcmp(s, "completion") == 0) {
                cf->chat = 0;
            } else {
                llmd_yaml_error(&ctx, n, "api.type: completion or chat");
                goto done;
            }
        }
        n = llmd_yaml_get(&doc, sec, "streaming");
        if (n != NULL && !llmd_yaml_is_null(n)) {
            if (llmd_yaml_bool(&ctx, n, "api.streaming", &v) != 0) {
                goto done;
            }
            cf->stream = v;
        }
    }

    sec = llmd_yaml_get(&doc, root, "server");
    if (sec != NULL) {
        n = llmd_yaml_get(&doc, sec, "model_name");
        if (n != NULL && !llmd_yaml_is_null(n)) {
            if (llmd_yaml_string(&ctx, n, "server.model_name", &s) != 0) {
                goto done;
            }
            snprintf(cf->model, sizeof(cf->model), "%s", s);
        }
        n = llmd_yaml_get(&doc, sec, "ignore_eos");
        if (n != NULL && !llmd_yaml_is_null(n)) {
            if (llmd_yaml_bool(&ctx, n, "server.ignore_eos", &v) != 0) {
                goto done;
            }
            cf->ignore_eos = v;
        }
        /* "<endpoint>" in the seed: a placeholder, --url gives the real one */
        n = llmd_yaml_get(&doc, sec, "base_url");
        s = n ? llmd_yaml_scalar(n) : NULL;
        if (s != NULL && strncmp(s, "http://", 7) == 0
            && lg_config_url(cf, s, err, errlen) != 0)
        {
            goto done;
        }
    }

    sec = llmd_yaml_get(&doc, root, "data");
    if (sec != NULL) {
        n = llmd_yaml_get(&doc, sec, "type");
        if (n != NULL) {
            if (llmd_yaml_string(&ctx, n, "data.type", &s) != 0) {
                goto done;
            }
            if (strcmp(s, "shared_prefix") == 0) {
                cf->data = LG_DATA_SHARED_PREFIX;
            } else if (strcmp(s, "random") == 0
                       || strcmp(s, "synthetic") == 0)
            {
                cf->data = LG_DATA_RANDOM;
            } else {
                llmd_yaml_error(&ctx, n, "data.type: shared_prefix, random"
                                " or synthetic, not \"%s\"", s);
                goto done;
            }
        }
        sp = llmd_yaml_get(&doc, sec, "shared_prefix");
        if (sp != NULL && sp->type == YAML_MAPPING_NODE
            && (lg_yaml_long(&ctx, &doc, sp, "num_groups", 1, 100000,
                             &cf->num_groups)
                || lg_yaml_long(&ctx, &doc, sp, "num_prompts_per_group", 1,
                                100000, &cf->prompts_per_group)
                || lg_yaml_long(&ctx, &doc, sp, "system_prompt_len", 0,
                                LG_MAX_TOKENS_ARG, &cf->system_prompt_len)
                || lg_yaml_long(&ctx, &doc, sp, "question_len", 1,
                                LG_MAX_TOKENS_ARG, &cf->question_len)
                || lg_yaml_long(&ctx, &doc, sp, "output_len", 1,
                                LG_MAX_TOKENS_ARG, &cf->output_len)))
        {
            goto done;
        }
        if (lg_yaml_dist(&ctx, &doc, llmd_yaml_get(&doc, sec,
                                                   "input_distribution"),
                         &cf->input_dist)
            || lg_yaml_dist(&ctx, &doc, llmd_yaml_get(&doc, sec,
                                                      "output_distribution"),
                            &cf->output_dist))
        {
            goto done;
        }
    }

    /* a local tokenizer.json (or its directory) may be named here */
    sec = llmd_yaml_get(&doc, root, "tokenizer");
    if (sec != NULL && cf->tokenizer[0] == '\0') {
        n = llmd_yaml_get(&doc, sec, "pretrained_model_name_or_path");
        s = n ? llmd_yaml_scalar(n) : NULL;
        if (s != NULL && stat(s, &sb) == 0) {
            snprintf(cf->tokenizer, sizeof(cf->tokenizer), "%s", s);
        }
    }
    rc = 0;

done:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}
