/*
 * EndpointPickerConfig loader: the seed configs resolve as llm-d resolves
 * them, defaults are applied, and every bad file names its line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "test_data.h"

#include "core/llmd_config.h"
#include "test_epp.h"

#define LOAD(s, err) \
    llmd_config_load_string(s, strlen(s), "t.yaml", err, sizeof(err))

#define HEAD \
    "apiVersion: inference.networking.x-k8s.io/v1alpha1\n" \
    "kind: EndpointPickerConfig\n"


static char  err[LLMD_ERRLEN];


static const llmd_scorer_ref_t *
scorer(const llmd_profile_t *p, const char *type)
{
    size_t  i;

    for (i = 0; i < p->nscorers; i++) {
        if (strcmp(p->scorers[i].plugin->type_name, type) == 0) {
            return &p->scorers[i];
        }
    }

    return NULL;
}


static void
expect_error(const char *yaml, const char *where, const char *what)
{
    char            err[LLMD_ERRLEN];
    llmd_config_t  *cf;

    err[0] = '\0';
    cf = llmd_config_load_string(yaml, strlen(yaml), "t.yaml", err,
                                 sizeof(err));
    if (cf != NULL) {
        llmd_config_free(cf);
        fail_msg("loaded although it should fail with \"%s\"", what);
    }

    if (strncmp(err, where, strlen(where)) != 0 || !strstr(err, what)) {
        fail_msg("error \"%s\" does not start with \"%s\" and contain "
                 "\"%s\"", err, where, what);
    }
}


static void
test_seed_default(void **state)
{
    char                   err[LLMD_ERRLEN];
    llmd_config_t         *cf;
    const llmd_profile_t  *p;
    const llmd_plugin_t   *pre;

    cf = llmd_config_load_file(test_path("conf-examples/epp-default.yaml"), err,
                               sizeof(err));
    assert_non_null(cf);
    assert_int_equal(cf->nwarnings, 0);

    p = llmd_config_primary_profile(cf);
    assert_string_equal(p->name, "default");
    assert_int_equal(p->nscorers, 3);
    assert_true(scorer(p, "queue-scorer")->weight == 1);
    assert_true(scorer(p, "kv-cache-scorer")->weight == 1);
    assert_int_equal(scorer(p, "kv-cache-scorer")->plugin->type,
                     LLMD_PLUGIN_KV_CACHE_SCORER);
    assert_true(scorer(p, "prefix-cache-scorer")->weight == 2);
    assert_int_equal(p->picker->type, LLMD_PLUGIN_MAX_SCORE_PICKER);
    assert_int_equal(p->picker->u.picker.max_endpoints, 1);
    assert_int_equal(cf->handler->type, LLMD_PLUGIN_SINGLE_PROFILE_HANDLER);

    pre = llmd_profile_prefix_scorer(p);
    assert_non_null(pre);
    assert_int_equal(pre->u.prefix.mode, LLMD_PREFIX_APPROXIMATE);
    assert_int_equal(pre->u.prefix.block_size, 64);
    assert_int_equal(pre->u.prefix.max_prefix_blocks, 256);
    assert_int_equal(pre->u.prefix.lru_capacity_per_server, 31250);

    llmd_config_free(cf);
}


static void
test_seed_load_and_random(void **state)
{
    char                   err[LLMD_ERRLEN];
    llmd_config_t         *cf;
    const llmd_profile_t  *p;

    cf = llmd_config_load_file(test_path("conf-examples/epp-load.yaml"), err,
                               sizeof(err));
    assert_non_null(cf);
    p = llmd_config_primary_profile(cf);
    assert_int_equal(p->nscorers, 2);
    assert_null(llmd_profile_prefix_scorer(p));
    llmd_config_free(cf);

    cf = llmd_config_load_file(test_path("conf-examples/epp-random.yaml"), err,
                               sizeof(err));
    assert_non_null(cf);
    p = llmd_config_primary_profile(cf);
    assert_int_equal(p->nscorers, 0);
    assert_int_equal(p->picker->type, LLMD_PLUGIN_RANDOM_PICKER);
    llmd_config_free(cf);
}


static void
test_seed_precise(void **state)
{
    char                   err[LLMD_ERRLEN];
    llmd_config_t         *cf;
    const llmd_profile_t  *p;
    const llmd_plugin_t   *pre;

    cf = llmd_config_load_file(test_path("conf-examples/epp-precise.yaml"), err,
                               sizeof(err));
    assert_non_null(cf);
    assert_int_equal(cf->nwarnings, 0);

    p = llmd_config_primary_profile(cf);
    assert_int_equal(p->nscorers, 3);
    assert_true(scorer(p, "prefix-cache-scorer")->weight == 2.0);

    pre = llmd_profile_prefix_scorer(p);
    assert_int_equal(pre->u.prefix.mode, LLMD_PREFIX_PRECISE);
    assert_int_equal(pre->u.prefix.block_size, 64);
    assert_string_equal(pre->u.prefix.hash_seed, "42");
    assert_string_equal(pre->u.prefix.zmq_endpoint, "tcp://*:5557");
    assert_string_equal(pre->u.prefix.topic_filter, "kv@");

    llmd_config_free(cf);
}


static void
test_builtin_default(void **state)
{
    char                   err[LLMD_ERRLEN];
    llmd_config_t         *cf;
    const llmd_profile_t  *p;

    cf = llmd_config_default(err, sizeof(err));
    assert_non_null(cf);

    p = llmd_config_primary_profile(cf);
    assert_int_equal(p->nscorers, 3);
    assert_true(scorer(p, "queue-scorer")->weight == 2);
    assert_true(scorer(p, "kv-cache-utilization-scorer")->weight == 2);
    assert_true(scorer(p, "prefix-cache-scorer")->weight == 3);
    assert_int_equal(p->picker->type, LLMD_PLUGIN_MAX_SCORE_PICKER);
    assert_string_equal(cf->file, "<default>");

    llmd_config_free(cf);
}


/* GIE v1 defaulting: no profiles, no picker, no weight, no handler. */
static void
test_defaulting(void **state)
{
    char                   err[LLMD_ERRLEN];
    llmd_config_t         *cf;
    const llmd_profile_t  *p;

    cf = LOAD(HEAD "plugins:\n- type: queue-scorer\n"
              "- name: lat\n  type: load-aware-scorer\n"
              "  parameters:\n    threshold: 0\n", err);
    assert_non_null(cf);

    p = llmd_config_primary_profile(cf);
    assert_string_equal(p->name, "default");
    assert_int_equal(p->nscorers, 2);
    assert_true(p->scorers[0].weight == 1);
    assert_string_equal(p->scorers[1].plugin->name, "lat");
    assert_true(p->scorers[1].plugin->u.load_aware.threshold == 128);
    assert_int_equal(p->picker->type, LLMD_PLUGIN_MAX_SCORE_PICKER);
    assert_non_null(cf->handler);
    llmd_config_free(cf);

    cf = LOAD(HEAD "plugins:\n- type: queue-scorer\n"
              "- type: active-request-scorer\n"
              "  parameters:\n    requestTimeout: 1m30s\n"
              "- type: weighted-random-picker\n"
              "schedulingProfiles:\n- name: p\n  plugins:\n"
              "  - pluginRef: active-request-scorer\n"
              "  - pluginRef: queue-scorer\n    weight: 0.5\n", err);
    assert_non_null(cf);
    p = llmd_config_primary_profile(cf);
    assert_int_equal(p->nscorers, 2);
    assert_int_equal(p->scorers[0].plugin->u.active_request
                     .request_timeout_ms, 90000);
    assert_true(p->scorers[1].weight == 0.5);
    /* the declared picker is used when the profile names none */
    assert_int_equal(p->picker->type, LLMD_PLUGIN_WEIGHTED_RANDOM_PICKER);
    llmd_config_free(cf);
}


static void
test_prefix_parameters(void **state)
{
    char                  err[LLMD_ERRLEN];
    llmd_config_t        *cf;
    const llmd_plugin_t  *pre;

    cf = LOAD(HEAD "plugins:\n- type: prefix-cache-scorer\n  parameters:\n"
              "    blockSizeTokens: 32\n    maxPrefixBlocksToMatch: 10\n"
              "    lruCapacityPerServer: 500\n    autoTune: true\n"
              "    surprise: 1\n", err);
    assert_non_null(cf);
    pre = llmd_profile_prefix_scorer(llmd_config_primary_profile(cf));
    assert_int_equal(pre->u.prefix.block_size, 128);
    assert_int_equal(pre->u.prefix.max_prefix_blocks, 10);
    assert_int_equal(pre->u.prefix.lru_capacity_per_server, 500);
    assert_int_equal(pre->u.prefix.auto_tune, 1);
    /* unknown keys are ignored, as GIE's non-strict decoder does, loudly */
    assert_int_equal(cf->nwarnings, 1);
    assert_non_null(strstr(cf->warnings[0], "t.yaml:10:"));
    assert_non_null(strstr(cf->warnings[0], "surprise"));
    llmd_config_free(cf);

    cf = LOAD(HEAD "plugins:\n- type: precise-prefix-cache-scorer\n"
              "  parameters:\n    kvEventsConfig:\n"
              "      zmqEndpoint: tcp://*:6000\n", err);
    assert_non_null(cf);
    pre = llmd_profile_prefix_scorer(llmd_config_primary_profile(cf));
    assert_int_equal(pre->u.prefix.mode, LLMD_PREFIX_PRECISE);
    assert_int_equal(pre->u.prefix.block_size, 16);
    assert_string_equal(pre->u.prefix.zmq_endpoint, "tcp://*:6000");
    llmd_config_free(cf);

    /* anchors and aliases are plain YAML */
    cf = LOAD(HEAD "plugins:\n- type: queue-scorer\n"
              "schedulingProfiles:\n- name: a\n  plugins:\n"
              "  - &q {pluginRef: queue-scorer, weight: 3}\n", err);
    assert_non_null(cf);
    assert_true(llmd_config_primary_profile(cf)->scorers[0].weight == 3);
    llmd_config_free(cf);
}


/* llm-d's file-discovery plugin named by dataLayer.discovery.pluginRef */
static void
test_file_discovery(void **state)
{
    char            err[LLMD_ERRLEN];
    llmd_config_t  *cf;

    cf = LOAD(HEAD "plugins:\n- type: queue-scorer\n"
              "- type: file-discovery\n  name: eps\n  parameters:\n"
              "    path: /etc/epp/endpoints.yaml\n    watchFile: true\n"
              "dataLayer:\n  discovery:\n    pluginRef: eps\n", err);
    assert_non_null(cf);
    assert_non_null(cf->discovery);
    assert_int_equal(cf->discovery->type, LLMD_PLUGIN_FILE_DISCOVERY);
    assert_string_equal(cf->discovery->u.discovery.path,
                        "/etc/epp/endpoints.yaml");
    assert_int_equal(cf->discovery->u.discovery.watch, 1);
    /* not a scorer: the default profile does not take it */
    assert_int_equal(llmd_config_primary_profile(cf)->nscorers, 1);
    llmd_config_free(cf);

    /* declared but not referenced: no discovery */
    cf = LOAD(HEAD "plugins:\n- type: queue-scorer\n"
              "- type: file-discovery\n  parameters:\n    path: /x\n", err);
    assert_non_null(cf);
    assert_null(cf->discovery);
    assert_int_equal(cf->plugins[1].u.discovery.watch, 0);
    llmd_config_free(cf);

    expect_error(HEAD "plugins:\n- type: queue-scorer\n"
                 "- type: file-discovery\n",
                 "t.yaml:5:", "'path' parameter is required");
    expect_error(HEAD "plugins:\n- type: queue-scorer\n"
                 "dataLayer:\n  discovery:\n    pluginRef: nope\n",
                 "t.yaml:7:", "undefined plugin");
    expect_error(HEAD "plugins:\n- type: queue-scorer\n"
                 "dataLayer:\n  discovery:\n    pluginRef: queue-scorer\n",
                 "t.yaml:7:", "does not discover endpoints");
    expect_error(HEAD "plugins:\n- type: multicluster-file-discovery\n",
                 "t.yaml:4:", "not supported");
}


static void
test_errors_name_file_and_line(void **state)
{
    expect_error(HEAD "plugins:\n- type: queue-scorer\n  - bad\n",
                 "t.yaml:5:", "YAML syntax error");
    expect_error(HEAD "plugins:\n- type: queue-scorer\n"
                 "- type: warp-drive-scorer\n",
                 "t.yaml:5:", "plugin type \"warp-drive-scorer\" is not "
                 "found");
    expect_error(HEAD "plugins:\n- type: latency-scorer\n",
                 "t.yaml:4:", "not supported");
    expect_error(HEAD "plugins:\n- type: queue-scorer\n"
                 "schedulingProfiles:\n- name: d\n  plugins:\n"
                 "  - pluginRef: queue-scorer\n"
                 "  - pluginRef: kv-cache-scorer\n",
                 "t.yaml:9:", "undefined plugin");
    expect_error(HEAD "plugins:\n- type: queue-scorer\n"
                 "schedulingProfiles:\n- name: d\n  plugins:\n"
                 "  - pluginRef: queue-scorer\n    weight: -1\n",
                 "t.yaml:9:", "weight");
    expect_error(HEAD "plugins:\n- type: queue-scorer\n"
                 "schedulingProfiles:\n- name: d\n  plugins:\n"
                 "  - pluginRef: queue-scorer\n    weight: heavy\n",
                 "t.yaml:9:", "weight must be a number");
    expect_error(HEAD "plugins:\n- type: queue-scorer\n- type: queue-scorer\n",
                 "t.yaml:5:", "used more than once");
    expect_error(HEAD "plugins:\n- type: queue-scorer\nplugin: []\n",
                 "t.yaml:5:", "unknown field \"plugin\"");
    expect_error("kind: EndpointPickerConfig\nplugins: []\n",
                 "t.yaml:1:", "apiVersion is missing");
    expect_error(HEAD "plugins:\n- type: random-picker\n"
                 "- type: max-score-picker\nschedulingProfiles:\n"
                 "- name: d\n  plugins:\n  - pluginRef: random-picker\n"
                 "  - pluginRef: max-score-picker\n",
                 "t.yaml:10:", "more than one picker");
    expect_error(HEAD "plugins:\n- type: prefix-cache-scorer\n"
                 "  parameters:\n    mode: telepathy\n",
                 "t.yaml:6:", "mode must be");
    expect_error(HEAD "plugins:\n- type: queue-scorer\n"
                 "schedulingProfiles:\n- name: a\n- name: b\n",
                 "t.yaml:1:", "need a profile handler");
    expect_error("", "t.yaml:1:", "empty");
    expect_error("- just\n- a list\n", "t.yaml:1:", "must be a mapping");
}


/*
 * Integer parameters beyond int64_t: a finite double whose cast to an
 * integer is undefined (found by fuzz/fuzz_config.c with UBSan).  Both signs
 * are out of range, with an error naming the key.
 */
static void
test_integer_out_of_range(void **state)
{
    expect_error(HEAD "plugins:\n- type: prefix-cache-scorer\n"
                 "  parameters:\n    maxPrefixBlocksToMatch: 3.3e100\n",
                 "t.yaml:6:", "maxPrefixBlocksToMatch is out of range");
    expect_error(HEAD "plugins:\n- type: prefix-cache-scorer\n"
                 "  parameters:\n    maxPrefixBlocksToMatch: 10.5\n",
                 "t.yaml:6:", "must be an integer");

    expect_error(HEAD "plugins:\n- type: prefix-cache-scorer\n"
                 "  parameters:\n    maxPrefixBlocksToMatch: -3.3e100\n",
                 "t.yaml:6:", "maxPrefixBlocksToMatch is out of range");
    expect_error(HEAD "plugins:\n- type: prefix-cache-scorer\n"
                 "  parameters:\n    maxPrefixBlocksToMatch: -1e300\n",
                 "t.yaml:6:", "is out of range");
}


/*
 * A duration given as a bare number of nanoseconds beyond what milliseconds
 * in uint64_t hold: the cast was undefined (found by fuzz/fuzz_config.c
 * with UBSan, "211e300").  Refused like a duration too long in Go units;
 * the largest accepted value still converts.
 */
static void
test_duration_out_of_range(void **state)
{
    char             err[LLMD_ERRLEN];
    llmd_config_t   *cf;

    expect_error(HEAD "plugins:\n- type: active-request-scorer\n"
                 "  parameters: {requestTimeout: \"211e300\"}\n",
                 "t.yaml:5:", "requestTimeout must be a duration");
    expect_error(HEAD "plugins:\n- type: active-request-scorer\n"
                 "  parameters: {requestTimeout: 1e40}\n",
                 "t.yaml:5:", "requestTimeout must be a duration");
    expect_error(HEAD "plugins:\n- type: active-request-scorer\n"
                 "  parameters: {requestTimeout: 1e300h}\n",
                 "t.yaml:5:", "requestTimeout must be a duration");

    cf = LOAD(HEAD "plugins:\n- type: active-request-scorer\n"
              "  parameters: {requestTimeout: 1e21}\n", err);
    assert_non_null(cf);
    assert_int_equal(llmd_config_primary_profile(cf)->scorers[0].plugin
                     ->u.active_request.request_timeout_ms, 1000000000000000);
    llmd_config_free(cf);
}


/* llm-d's P/D configurations of every era load unchanged. */
static void
test_pd_seed_era(void **state)
{
    llmd_config_t  *cf;

    /* prefill-header-handler, prefill-filter, decode-filter (seed 001) */
    cf = load_file("t/data/epp-pd-seed.yaml");
    assert_int_equal(cf->handler->type, LLMD_PLUGIN_PD_PROFILE_HANDLER);
    assert_string_equal(cf->decode->name, "decode");
    assert_string_equal(cf->prefill->name, "prefill");
    assert_null(cf->encode);
    assert_ptr_equal(llmd_config_primary_profile(cf), cf->decode);
    assert_int_equal(cf->decode->nfilters, 1);
    assert_string_equal(cf->decode->filters[0]->type_name, "decode-filter");
    assert_string_equal(cf->prefill->filters[0]->type_name,
                        "prefill-filter");
    assert_true(scorer(cf->decode, "prefix-cache-scorer")->weight == 2);
    /* no decider: the threshold rule of the time, 0 = always */
    assert_null(cf->handler->u.disagg.prefill_decider);
    assert_int_equal(cf->handler->u.disagg.threshold, 0);
    /* pd-profile-handler sets no header; prefill-header-handler does */
    assert_int_equal(cf->prefill_header, 1);
    assert_int_equal(cf->encode_header, 0);
    llmd_config_free(cf);

    cf = load_file("t/data/epp-pd-threshold.yaml");
    assert_int_equal(cf->handler->u.disagg.threshold, 10);
    assert_int_equal(cf->handler->u.disagg.hash_block_size, 5);
    assert_int_equal(cf->handler->u.disagg.primary_port, 8200);
    assert_int_equal(llmd_profile_prefix_scorer(cf->decode)
                     ->u.prefix.block_size, 5);
    llmd_config_free(cf);
}


static void
test_pd_guide(void **state)
{
    llmd_config_t        *cf;
    const llmd_plugin_t  *pre, *d;

    cf = load_file("t/data/epp-pd-guide.yaml");
    assert_int_equal(cf->nwarnings, 0);
    assert_int_equal(cf->handler->type, LLMD_PLUGIN_DISAGG_PROFILE_HANDLER);
    assert_string_equal(cf->decode->name, "decode");
    assert_string_equal(cf->prefill->name, "prefill");
    assert_int_equal(cf->prefill_header, 1);

    d = cf->handler->u.disagg.prefill_decider;
    assert_non_null(d);
    assert_int_equal(d->type, LLMD_PLUGIN_PREFIX_PD_DECIDER);
    assert_int_equal(d->u.pd_decider.non_cached_tokens, 16);
    assert_int_equal(d->u.pd_decider.prompt_tokens, 0);

    /* the index parameters come from approx-prefix-cache-producer:
       16-token blocks (64 characters), 16384 tokens = 1024 blocks */
    pre = llmd_profile_prefix_scorer(cf->decode);
    assert_int_equal(pre->u.prefix.mode, LLMD_PREFIX_APPROXIMATE);
    assert_int_equal(pre->u.prefix.block_size, 64);
    assert_int_equal(pre->u.prefix.max_prefix_blocks, 1024);
    assert_int_equal(pre->u.prefix.lru_capacity_per_server, 31250);
    assert_int_equal(pre->u.prefix.auto_tune, 1);
    llmd_config_free(cf);

    cf = load_file("t/data/epp-pd-labels.yaml");
    assert_string_equal(cf->decode->filters[0]->name, "decode-pods");
    assert_int_equal(cf->decode->filters[0]->u.selector.nreqs, 1);
    assert_int_equal(cf->decode->filters[0]->u.selector.reqs[0].op,
                     LLMD_LABEL_IN);
    assert_string_equal(cf->decode->filters[0]->u.selector.reqs[0].key,
                        "role");
    pre = llmd_profile_prefix_scorer(cf->prefill);
    assert_int_equal(pre->u.prefix.block_size, 20);
    assert_int_equal(pre->u.prefix.max_prefix_blocks, 256);
    assert_int_equal(pre->u.prefix.auto_tune, 0);
    llmd_config_free(cf);

    /* E/P/D: the encode stage and its multimodal decider */
    cf = load_file("t/data/epp-epd-labels.yaml");
    assert_string_equal(cf->encode->name, "encode");
    assert_int_equal(cf->encode->nscorers, 0);
    assert_int_equal(cf->handler->u.disagg.encode_decider->type,
                     LLMD_PLUGIN_MULTIMODAL_DECIDER);
    assert_int_equal(cf->encode_header, 1);
    llmd_config_free(cf);
}


/* llm-d >= v0.7's precise pipeline: token-producer, producer, scorer. */
static void
test_precise_producer(void **state)
{
    llmd_config_t        *cf;
    const llmd_plugin_t  *pre;

    cf = LOAD("apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\n"
              "plugins:\n- type: token-producer\n  parameters:\n"
              "    modelName: TinyLlama/TinyLlama-1.1B-Chat-v1.0\n"
              "- type: metrics-data-source\n- type: core-metrics-extractor\n"
              "- type: precise-prefix-cache-producer\n  parameters:\n"
              "    tokenProcessorConfig: {blockSizeTokens: 5, hashSeed: '7'}\n"
              "    kvEventsConfig: {zmqEndpoint: 'tcp://0.0.0.0:5557'}\n"
              "    indexerConfig: {kvBlockIndexConfig: {enableMetrics: no}}\n"
              "- type: prefix-cache-scorer\n  parameters:\n"
              "    prefixMatchInfoProducerName: precise-prefix-cache-producer\n"
              "    matchLengthWeight: 0.25\n"
              "- type: decode-filter\n- type: max-score-picker\n"
              "- type: single-profile-handler\n"
              "schedulingProfiles:\n- name: default\n  plugins:\n"
              "  - pluginRef: decode-filter\n"
              "  - pluginRef: max-score-picker\n"
              "  - pluginRef: prefix-cache-scorer\n    weight: 10\n", err);
    assert_non_null(cf);

    pre = llmd_profile_prefix_scorer(cf->decode);
    assert_int_equal(pre->u.prefix.mode, LLMD_PREFIX_PRECISE);
    assert_int_equal(pre->u.prefix.block_size, 5);
    assert_string_equal(pre->u.prefix.hash_seed, "7");
    assert_string_equal(pre->u.prefix.zmq_endpoint, "tcp://0.0.0.0:5557");
    assert_string_equal(pre->u.prefix.topic_filter, "kv@");
    assert_true(pre->u.prefix.match_length_weight == 0.25);
    /* the module tokenizes itself: token-producer's parameters unused */
    assert_int_equal(cf->nwarnings, 1);
    assert_non_null(strstr(cf->warnings[0], "modelName"));
    llmd_config_free(cf);

    expect_error(HEAD "plugins:\n- type: token-producer\n"
                 "schedulingProfiles:\n- name: d\n  plugins:\n"
                 "  - pluginRef: token-producer\n",
                 "t.yaml:8:", "cannot be used in a scheduling profile");
}


static void
test_filter_params(void **state)
{
    llmd_config_t           *cf;
    const llmd_label_req_t  *r;

    cf = LOAD(HEAD "plugins:\n- type: decode-filter\n"
              "- type: prefill-filter\n- type: encode-filter\n"
              "- type: by-label\n  parameters:\n    label: gpu\n"
              "    validValues: [a100, h100]\n"
              "- type: by-label\n  name: nolabel\n  parameters:\n"
              "    label: zone\n    allowsNoLabel: true\n", err);
    assert_non_null(cf);
    /* no profile: every filter goes into the default one, in order */
    assert_int_equal(cf->decode->nfilters, 5);

    r = &cf->plugins[0].u.selector.reqs[0];
    assert_string_equal(r->key, "llm-d.ai/role");
    assert_int_equal(r->op, LLMD_LABEL_ONE_OF);
    assert_int_equal(r->absent_ok, 1);
    assert_int_equal(r->nvalues, 4);
    assert_string_equal(r->values[1], "prefill-decode");

    r = &cf->plugins[1].u.selector.reqs[0];
    assert_int_equal(r->absent_ok, 0);
    assert_int_equal(r->nvalues, 5);
    r = &cf->plugins[2].u.selector.reqs[0];
    assert_int_equal(r->nvalues, 3);
    assert_string_equal(r->values[0], "encode");

    r = &cf->plugins[3].u.selector.reqs[0];
    assert_string_equal(r->key, "gpu");
    assert_int_equal(r->nvalues, 2);
    assert_int_equal(r->absent_ok, 0);
    r = &cf->plugins[4].u.selector.reqs[0];
    assert_int_equal(r->nvalues, 0);
    assert_int_equal(r->absent_ok, 1);
    llmd_config_free(cf);

    cf = LOAD(HEAD "plugins:\n- type: label-selector-filter\n"
              "  parameters:\n    matchLabels: {inference-role: decode}\n"
              "    matchExpressions:\n"
              "    - {key: llm-d.ai/gpu, operator: NotIn, values: [t4]}\n"
              "    - {key: spot, operator: DoesNotExist}\n"
              "- type: by-label-selector\n- type: utilization-filter\n"
              "  parameters:\n    conditions:\n"
              "    - {metric: running-requests, maxValue: 40}\n"
              "    - {metric: kv-cache-utilization, maxValue: 0.8}\n"
              "    fallbackOnEmpty: true\n", err);
    assert_non_null(cf);
    assert_int_equal(cf->plugins[0].u.selector.nreqs, 3);
    assert_int_equal(cf->plugins[0].u.selector.reqs[0].op, LLMD_LABEL_IN);
    assert_string_equal(cf->plugins[0].u.selector.reqs[0].values[0],
                        "decode");
    assert_int_equal(cf->plugins[0].u.selector.reqs[1].op,
                     LLMD_LABEL_NOT_IN);
    assert_int_equal(cf->plugins[0].u.selector.reqs[2].op,
                     LLMD_LABEL_NOT_EXISTS);
    /* an empty selector selects everything */
    assert_int_equal(cf->plugins[1].u.selector.nreqs, 0);
    assert_int_equal(cf->plugins[2].u.utilization.nconds, 2);
    assert_int_equal(cf->plugins[2].u.utilization.conds[1].metric,
                     LLMD_METRIC_KV_CACHE_UTILIZATION);
    assert_true(cf->plugins[2].u.utilization.conds[1].max_value == 0.8);
    assert_int_equal(cf->plugins[2].u.utilization.fallback_on_empty, 1);
    llmd_config_free(cf);

    expect_error(HEAD "plugins:\n- type: by-label\n  parameters:\n"
                 "    validValues: [a]\n",
                 "t.yaml:6:", "'label' must be specified");
    expect_error(HEAD "plugins:\n- type: by-label\n",
                 "t.yaml:4:", "'label' must be specified");
    expect_error(HEAD "plugins:\n- type: by-label\n  parameters:\n"
                 "    label: gpu\n",
                 "t.yaml:6:", "either 'validValues' must be non-empty");
    expect_error(HEAD "plugins:\n- type: label-selector-filter\n"
                 "  parameters:\n    matchExpressions:\n"
                 "    - {key: a, operator: Near, values: [b]}\n",
                 "t.yaml:7:", "not a valid label selector operator");
    expect_error(HEAD "plugins:\n- type: label-selector-filter\n"
                 "  parameters:\n    matchExpressions:\n"
                 "    - {key: a, operator: In}\n",
                 "t.yaml:7:", "values set can't be empty");
    expect_error(HEAD "plugins:\n- type: label-selector-filter\n"
                 "  parameters:\n    matchExpressions:\n"
                 "    - {key: a, operator: Exists, values: [b]}\n",
                 "t.yaml:7:", "may not be specified");
    expect_error(HEAD "plugins:\n- type: label-selector-filter\n"
                 "  parameters:\n    matchLabels: {\"bad key\": x}\n",
                 "t.yaml:6:", "not a valid label key");
    expect_error(HEAD "plugins:\n- type: label-selector-filter\n"
                 "  parameters:\n    matchLabels: {role: \"-x\"}\n",
                 "t.yaml:6:", "not a valid label value");
    expect_error(HEAD "plugins:\n- type: utilization-filter\n",
                 "t.yaml:4:", "requires at least one condition");
    expect_error(HEAD "plugins:\n- type: utilization-filter\n"
                 "  parameters:\n    conditions:\n"
                 "    - {metric: waiting-queue, maxValue: -1}\n",
                 "t.yaml:7:", "non-negative maxValue");
    expect_error(HEAD "plugins:\n- type: utilization-filter\n"
                 "  parameters:\n    conditions:\n"
                 "    - {metric: kv-cache-utilization, maxValue: 80}\n",
                 "t.yaml:7:", "must be at most 1");
    expect_error(HEAD "plugins:\n- type: utilization-filter\n"
                 "  parameters:\n    conditions:\n"
                 "    - {metric: gpu-temperature, maxValue: 80}\n",
                 "t.yaml:7:", "metric must be one of");
    expect_error(HEAD "plugins:\n- type: utilization-filter\n"
                 "  parameters:\n    conditions:\n"
                 "    - {metric: waiting-queue}\n",
                 "t.yaml:7:", "requires maxValue");
}


#define PD_PROFILES \
    "schedulingProfiles:\n- name: prefill\n  plugins:\n" \
    "  - pluginRef: prefill-filter\n- name: decode\n  plugins:\n" \
    "  - pluginRef: decode-filter\n"

#define PD_FILTERS "- type: prefill-filter\n- type: decode-filter\n"


static void
test_handler_params(void **state)
{
    llmd_config_t  *cf;

    /* the deprecated flat parameters, deciderPluginName the weaker alias */
    cf = LOAD(HEAD "plugins:\n" PD_FILTERS
              "- type: always-disagg-pd-decider\n  name: always\n"
              "- type: prefix-based-pd-decider\n"
              "- type: disagg-profile-handler\n  parameters:\n"
              "    decodeProfile: d\n    prefillProfile: p\n"
              "    deciderPluginName: prefix-based-pd-decider\n"
              "    prefillDeciderPluginName: always\n"
              "schedulingProfiles:\n- name: p\n- name: d\n", err);
    assert_non_null(cf);
    assert_string_equal(cf->decode->name, "d");
    assert_string_equal(cf->prefill->name, "p");
    assert_string_equal(cf->handler->u.disagg.prefill_decider->name,
                        "always");
    assert_int_equal(cf->nwarnings, 1);
    assert_non_null(strstr(cf->warnings[0], "deprecated"));
    llmd_config_free(cf);

    /* without a decider the prefill stage never runs (decode first) */
    cf = LOAD(HEAD "plugins:\n" PD_FILTERS
              "- type: disagg-profile-handler\n" PD_PROFILES, err);
    assert_non_null(cf);
    assert_null(cf->prefill);
    assert_ptr_equal(cf->decode, &cf->profiles[1]);
    llmd_config_free(cf);

    /* prefill first: prefill always runs, whatever the case and dashes */
    cf = LOAD(HEAD "plugins:\n" PD_FILTERS
              "- type: disagg-profile-handler\n  parameters:\n"
              "    stageOrder: Prefill_First\n" PD_PROFILES, err);
    assert_non_null(cf);
    assert_int_equal(cf->handler->u.disagg.prefill_first, 1);
    assert_string_equal(cf->prefill->name, "prefill");
    llmd_config_free(cf);

    /* pd-profile-handler takes a decider of the default name (>= v0.5) */
    cf = LOAD(HEAD "plugins:\n" PD_FILTERS
              "- type: pd-profile-handler\n  parameters:\n"
              "    threshold: 100\n"
              "- type: prefix-based-pd-decider\n"
              "  parameters: {nonCachedTokens: 8, promptTokens: 64}\n"
              PD_PROFILES, err);
    assert_non_null(cf);
    assert_string_equal(cf->handler->u.disagg.prefill_decider->type_name,
                        "prefix-based-pd-decider");
    assert_int_equal(cf->handler->u.disagg.prefill_decider
                     ->u.pd_decider.prompt_tokens, 64);
    /* deprecated handler, threshold unused with a decider */
    assert_int_equal(cf->nwarnings, 2);
    llmd_config_free(cf);

    cf = LOAD(HEAD "plugins:\n- type: header-profile-handler\n"
              "  parameters:\n    headerName: ' X-Stage '\n"
              "    defaultProfile: ' b '\n"
              "schedulingProfiles:\n- name: a\n- name: b\n", err);
    assert_non_null(cf);
    assert_string_equal(cf->handler->u.header_profile.header, "x-stage");
    assert_string_equal(cf->decode->name, "b");
    llmd_config_free(cf);

    expect_error(HEAD "plugins:\n" PD_FILTERS
                 "- type: disagg-profile-handler\n  parameters:\n"
                 "    profiles: {decode: dec}\n" PD_PROFILES,
                 "t.yaml:6:", "no scheduling profile \"dec\"");
    expect_error(HEAD "plugins:\n" PD_FILTERS
                 "- type: disagg-profile-handler\n  parameters:\n"
                 "    deciders: {prefill: nope}\n" PD_PROFILES,
                 "t.yaml:6:", "deciders.prefill plugin not found: nope");
    expect_error(HEAD "plugins:\n" PD_FILTERS
                 "- type: disagg-profile-handler\n  parameters:\n"
                 "    deciders: {prefill: decode-filter}\n" PD_PROFILES,
                 "t.yaml:6:", "is not a disaggregation decider");
    expect_error(HEAD "plugins:\n" PD_FILTERS
                 "- type: always-disagg-pd-decider\n"
                 "- type: disagg-profile-handler\n  parameters:\n"
                 "    stageOrder: prefill-first\n"
                 "    deciders: {prefill: always-disagg-pd-decider}\n"
                 PD_PROFILES,
                 "t.yaml:9:", "not supported in prefill-first");
    expect_error(HEAD "plugins:\n" PD_FILTERS
                 "- type: disagg-profile-handler\n  parameters:\n"
                 "    stageOrder: sideways\n" PD_PROFILES,
                 "t.yaml:8:", "invalid stage order");
    expect_error(HEAD "plugins:\n" PD_FILTERS
                 "- type: disagg-profile-handler\n  parameters:\n"
                 "    profiles: {decode: d}\n    prefillProfile: p\n"
                 PD_PROFILES,
                 "t.yaml:9:", "use one format exclusively");
    expect_error(HEAD "plugins:\n" PD_FILTERS
                 "- type: pd-profile-handler\n  parameters:\n"
                 "    threshold: -1\n" PD_PROFILES,
                 "t.yaml:8:", "invalid threshold");
    expect_error(HEAD "plugins:\n" PD_FILTERS
                 "- type: pd-profile-handler\n  parameters:\n"
                 "    hashBlockSize: 0\n" PD_PROFILES,
                 "t.yaml:8:", "invalid hashBlockSize");
    expect_error(HEAD "plugins:\n" PD_FILTERS
                 "- type: pd-profile-handler\n  parameters:\n"
                 "    primaryPort: 70000\n" PD_PROFILES,
                 "t.yaml:8:", "invalid primaryPort");
    expect_error(HEAD "plugins:\n" PD_FILTERS
                 "- type: pd-profile-handler\n  parameters:\n"
                 "    deciderPluginName: nope\n" PD_PROFILES,
                 "t.yaml:6:", "deciderPluginName plugin not found");
    expect_error(HEAD "plugins:\n- type: prefix-based-pd-decider\n"
                 "  parameters:\n    nonCachedTokens: -5\n",
                 "t.yaml:6:", "cannot be negative");
    expect_error(HEAD "plugins:\n- type: disagg-profile-handler\n"
                 "- type: pd-profile-handler\n" PD_FILTERS PD_PROFILES,
                 "t.yaml:5:", "multiple profile handlers");
    expect_error(HEAD "plugins:\n- type: single-profile-handler\n"
                 PD_FILTERS PD_PROFILES,
                 "t.yaml:4:", "cannot support multiple scheduling");
    expect_error(HEAD "plugins:\n" PD_FILTERS
                 "- type: disagg-profile-handler\n"
                 "schedulingProfiles:\n- name: decode\n  plugins:\n"
                 "  - pluginRef: disagg-profile-handler\n",
                 "t.yaml:10:", "cannot be used in a scheduling profile");
}


static void
test_scorer_params(void **state)
{
    llmd_config_t  *cf;

    cf = LOAD(HEAD "plugins:\n- type: session-affinity-scorer\n"
              "- type: session-affinity-scorer\n  name: sp\n"
              "  parameters:\n    profileName: prefill\n"
              "    encodedEndpointHeaderConfig: {header: X-Session-P}\n"
              "- type: session-affinity-filter\n"
              "- type: no-hit-lru-scorer\n  parameters: {lruSize: 2048}\n"
              "- type: lora-affinity-scorer\n"
              "- type: running-requests-size-scorer\n"
              "- type: prefix-cache-scorer\n"
              "  parameters: {matchLengthWeight: 0.5}\n", err);
    assert_non_null(cf);
    assert_string_equal(cf->plugins[0].u.session.header, "x-session-token");
    assert_null(cf->plugins[0].u.session.profile_name);
    assert_string_equal(cf->plugins[1].u.session.header, "x-session-p");
    assert_string_equal(cf->plugins[1].u.session.profile_name, "prefill");
    assert_int_equal(cf->plugins[3].u.nohit.lru_size, 2048);
    assert_true(cf->plugins[6].u.prefix.match_length_weight == 0.5);
    assert_int_equal(cf->plugins[6].u.prefix.match_length_scale_tokens,
                     8192);
    /* plugin indexes address llmd_decide()'s per-plugin inputs */
    assert_int_equal(cf->plugins[4].index, 4);
    assert_int_equal(cf->decode->nscorers, 6);
    assert_int_equal(cf->decode->nfilters, 1);
    assert_int_equal(cf->nwarnings, 0);
    llmd_config_free(cf);

    expect_error(HEAD "plugins:\n- type: session-affinity-scorer\n"
                 "  parameters:\n    strategy: session_id\n",
                 "t.yaml:6:", "not supported");
    expect_error(HEAD "plugins:\n- type: prefix-cache-scorer\n"
                 "  parameters:\n    matchLengthWeight: 2\n",
                 "t.yaml:6:", "between 0.0 and 1.0");
    expect_error(HEAD "plugins:\n- type: prefix-cache-scorer\n"
                 "  parameters:\n    prefixMatchInfoProducerName: p\n",
                 "t.yaml:4:", "is not a prefix cache producer");
    expect_error(HEAD "plugins:\n- type: burst-prefix-cache-producer\n",
                 "t.yaml:4:", "not supported");
}


static void
test_missing_file(void **state)
{
    char            err[LLMD_ERRLEN];
    llmd_config_t  *cf;

    cf = llmd_config_load_file("/nonexistent/epp.yaml", err, sizeof(err));
    assert_null(cf);
    assert_non_null(strstr(err, "/nonexistent/epp.yaml: cannot open"));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_seed_default),
        cmocka_unit_test(test_seed_load_and_random),
        cmocka_unit_test(test_seed_precise),
        cmocka_unit_test(test_builtin_default),
        cmocka_unit_test(test_defaulting),
        cmocka_unit_test(test_prefix_parameters),
        cmocka_unit_test(test_file_discovery),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_integer_out_of_range),
        cmocka_unit_test(test_duration_out_of_range),
        cmocka_unit_test(test_pd_seed_era),
        cmocka_unit_test(test_pd_guide),
        cmocka_unit_test(test_precise_producer),
        cmocka_unit_test(test_filter_params),
        cmocka_unit_test(test_handler_params),
        cmocka_unit_test(test_scorer_params),
        cmocka_unit_test(test_missing_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
