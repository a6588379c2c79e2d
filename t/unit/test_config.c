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

#define LOAD(s, err) \
    llmd_config_load_string(s, strlen(s), "t.yaml", err, sizeof(err))

#define HEAD \
    "apiVersion: inference.networking.x-k8s.io/v1alpha1\n" \
    "kind: EndpointPickerConfig\n"


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
    expect_error(HEAD "plugins:\n- type: session-affinity-scorer\n",
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
                 "t.yaml:1:", "multi-profile handler");
    expect_error("", "t.yaml:1:", "empty");
    expect_error("- just\n- a list\n", "t.yaml:1:", "must be a mapping");
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
        cmocka_unit_test(test_missing_file),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
