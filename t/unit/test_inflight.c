/*
 * In-flight load: the estimate between scrapes (llmd_inflight.h),
 * token-load-scorer, prefix-cache-affinity-filter and the parameters of
 * these and of inflight-load-producer as llm-d reads them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "test_data.h"

#include "core/llmd_inflight.h"
#include "core/llmd_decide.h"
#include "test_epp.h"

#define HEAD \
    "apiVersion: llm-d.ai/v1alpha1\n" \
    "kind: EndpointPickerConfig\n"

#define NEPS  4


static int
near(double a, double b)
{
    return fabs(a - b) < 1e-9;
}


/* Sent requests queue; finished ones leave; nothing happened: unchanged. */
static void
test_adjust_queue_and_running(void **state)
{
    llmd_inflight_t        d;
    llmd_endpoint_state_t  st;

    memset(&d, 0, sizeof(d));
    memset(&st, 0, sizeof(st));
    st.fresh = 1;
    st.waiting = 2;
    st.running = 5;
    st.kv_usage = 0.25;

    llmd_inflight_adjust(&st, &d, 16, 1000);
    assert_true(near(st.waiting, 2) && near(st.running, 5));
    assert_true(near(st.kv_usage, 0.25));

    /* three sent, one finished: two more waiting, running unchanged */
    d.sent = 3;
    d.done = 1;
    llmd_inflight_adjust(&st, &d, 0, 0);
    assert_true(near(st.waiting, 4) && near(st.running, 5));

    /* more finished than sent: the queue moves up into running */
    st.waiting = 2;
    st.running = 5;
    d.sent = 1;
    d.done = 4;
    llmd_inflight_adjust(&st, &d, 0, 0);
    assert_true(near(st.waiting, 0) && near(st.running, 4));

    /* never below zero */
    st.waiting = 0;
    st.running = 1;
    d.sent = 0;
    d.done = 9;
    llmd_inflight_adjust(&st, &d, 0, 0);
    assert_true(near(st.waiting, 0) && near(st.running, 0));
}


/* KV usage moves by the uncached tokens over the pod's capacity. */
static void
test_adjust_kv(void **state)
{
    llmd_inflight_t        d;
    llmd_endpoint_state_t  st;

    memset(&d, 0, sizeof(d));
    memset(&st, 0, sizeof(st));
    st.fresh = 1;
    st.kv_usage = 0.5;

    /* 1000 blocks of 16 tokens: 1600 tokens are 10% */
    d.sent_tokens = 2000;
    d.done_tokens = 400;
    llmd_inflight_adjust(&st, &d, 16, 1000);
    assert_true(near(st.kv_usage, 0.6));

    d.sent_tokens = 0;
    d.done_tokens = 16000;
    llmd_inflight_adjust(&st, &d, 16, 1000);
    assert_true(near(st.kv_usage, 0));

    st.kv_usage = 0.9;
    d.sent_tokens = 16000;
    d.done_tokens = 0;
    llmd_inflight_adjust(&st, &d, 16, 1000);
    assert_true(near(st.kv_usage, 1));

    /* capacity unknown: KV left alone */
    st.kv_usage = 0.3;
    llmd_inflight_adjust(&st, &d, 16, 0);
    assert_true(near(st.kv_usage, 0.3));

    /* a stale state is not touched */
    st.fresh = 0;
    st.waiting = 1;
    d.sent = 5;
    llmd_inflight_adjust(&st, &d, 16, 1000);
    assert_true(near(st.waiting, 1) && near(st.kv_usage, 0.3));
}


static void
test_uncached_and_output(void **state)
{
    /* nothing looked up: the whole prompt */
    assert_int_equal(llmd_inflight_uncached(1000, 0, 0, 16), 1000);
    /* 10 of 40 blocks of 16 held: 30 blocks, plus the tail past 640 */
    assert_int_equal(llmd_inflight_uncached(700, 10, 40, 16), 30 * 16 + 60);
    /* all held */
    assert_int_equal(llmd_inflight_uncached(640, 40, 40, 16), 0);
    /* blocks rounding past the prompt: at most the prompt */
    assert_int_equal(llmd_inflight_uncached(10, 0, 1, 16), 10);
    /* fractional (precise, tier-weighted) matches */
    assert_int_equal(llmd_inflight_uncached(64, 2.5, 4, 16), 24);

    assert_int_equal(llmd_inflight_output(100, 1.5, -1, -1), 150);
    assert_int_equal(llmd_inflight_output(100, 1.5, 20, -1), 20);
    assert_int_equal(llmd_inflight_output(100, 1.5, -1, 7), 7);
    assert_int_equal(llmd_inflight_output(0, 1.5, -1, -1), 0);
    assert_int_equal(llmd_inflight_output(3, 0.5, -1, -1), 2);
}


/* One decision over n endpoints. */
static int
decide(const llmd_config_t *cf, llmd_endpoint_state_t *eps, size_t n,
    uint32_t total, uint64_t *rng, llmd_decision_t *d, double *scores)
{
    llmd_decide_input_t  in;

    memset(&in, 0, sizeof(in));
    in.eps = eps;
    in.neps = n;
    in.prefix_total = total;
    in.rng = rng;
    d->scores = scores;

    return llmd_decide(cf, &in, d);
}


/* token-load-scorer: 1 - min(1, (in flight + this request) / threshold). */
static void
test_token_load_scorer(void **state)
{
    size_t                  i;
    double                  scores[64];
    uint64_t                rng = 3;
    llmd_config_t          *cf;
    llmd_decision_t         d;
    llmd_endpoint_state_t   eps[NEPS];

    cf = load(HEAD "plugins:\n"
              "- type: token-load-scorer\n"
              "  parameters:\n    queueThresholdTokens: 1000\n");

    memset(eps, 0, sizeof(eps));

    for (i = 0; i < NEPS; i++) {
        eps[i].fresh = 1;
    }

    eps[0].inflight_tokens = 500;
    eps[1].inflight_tokens = 100;
    eps[1].request_tokens = 100;
    eps[2].inflight_tokens = 5000;
    eps[3].request_tokens = 0;

    assert_int_equal(decide(cf, eps, NEPS, 0, &rng, &d, scores), 0);
    assert_true(near(d.decode.result.total[0], 0.5));
    assert_true(near(d.decode.result.total[1], 0.8));
    assert_true(near(d.decode.result.total[2], 0));
    assert_true(near(d.decode.result.total[3], 1));
    assert_int_equal(d.decode.result.order[0], 3);
    assert_int_equal(d.decode.result.order[1], 1);

    llmd_config_free(cf);

    /* <= 0 falls back to llm-d's default, 4194304 */
    cf = load(HEAD "plugins:\n"
              "- type: token-load-scorer\n"
              "  parameters:\n    queueThresholdTokens: 0\n"
              "    inFlightLoadProducerName: inflight\n");
    assert_true(near(cf->plugins[0].u.token_load.threshold_tokens,
                     4194304));
    assert_int_equal(cf->nwarnings, 0);
    llmd_config_free(cf);
}


#define STICKY_CONF(params) \
    HEAD "plugins:\n" \
    "- type: inflight-load-producer\n" \
    "- type: prefix-cache-affinity-filter\n" params \
    "- type: token-load-scorer\n" \
    "- type: max-score-picker\n" \
    "schedulingProfiles:\n" \
    "- name: default\n" \
    "  plugins:\n" \
    "  - pluginRef: prefix-cache-affinity-filter\n" \
    "  - pluginRef: token-load-scorer\n" \
    "  - pluginRef: max-score-picker\n"


/* Sticky until saturated: the cached pod keeps the request until its
   prefill backlog costs more than maxTTFTPenaltyMs over the others. */
static void
test_affinity_filter(void **state)
{
    size_t                  i;
    double                  scores[64];
    uint64_t                rng = 5;
    llmd_config_t          *cf;
    llmd_decision_t         d;
    llmd_endpoint_state_t   eps[NEPS];

    /* 1000 tokens/s: 1000 tokens in flight are 1 s of TTFT */
    cf = load(STICKY_CONF("  parameters:\n"
                          "    maxTTFTPenaltyMs: 2000\n"
                          "    peakPrefillThroughput: 1000\n"));

    memset(eps, 0, sizeof(eps));

    for (i = 0; i < NEPS; i++) {
        eps[i].fresh = 1;
    }

    /* pod 2 holds 9 of 10 blocks (>= 0.8), pod 1 holds 7 (< 0.8) */
    eps[2].prefix_match = 9;
    eps[1].prefix_match = 7;
    eps[2].inflight_tokens = 1500;

    assert_int_equal(decide(cf, eps, NEPS, 10, &rng, &d, scores), 0);
    assert_int_equal(d.decode.result.norder, 1);
    assert_int_equal(d.decode.result.order[0], 2);

    /* the penalty exceeded (3.5 s - 1 s > 2 s): everyone, least load */
    eps[2].inflight_tokens = 3500;
    eps[0].inflight_tokens = 1000;
    eps[1].inflight_tokens = 1200;
    eps[3].inflight_tokens = 1100;
    assert_int_equal(decide(cf, eps, NEPS, 10, &rng, &d, scores), 0);
    assert_int_equal(d.decode.result.norder, NEPS);
    assert_int_equal(d.decode.result.order[0], 0);

    /* just at the penalty: still sticky */
    eps[2].inflight_tokens = 3000;
    assert_int_equal(decide(cf, eps, NEPS, 10, &rng, &d, scores), 0);
    assert_int_equal(d.decode.result.norder, 1);

    /* no sticky pod: all */
    eps[2].prefix_match = 0;
    assert_int_equal(decide(cf, eps, NEPS, 10, &rng, &d, scores), 0);
    assert_int_equal(d.decode.result.norder, NEPS);

    /* no prompt: all */
    eps[2].prefix_match = 9;
    assert_int_equal(decide(cf, eps, NEPS, 0, &rng, &d, scores), 0);
    assert_int_equal(d.decode.result.norder, NEPS);

    llmd_config_free(cf);

    /* maxTTFTPenaltyMs 0: always stick */
    cf = load(STICKY_CONF("  parameters:\n    maxTTFTPenaltyMs: 0\n"));
    eps[2].inflight_tokens = 1e9;
    assert_int_equal(decide(cf, eps, NEPS, 10, &rng, &d, scores), 0);
    assert_int_equal(d.decode.result.norder, 1);
    assert_int_equal(d.decode.result.order[0], 2);
    llmd_config_free(cf);

    /* explorationProbability 1: the gate is always skipped */
    cf = load(STICKY_CONF("  parameters:\n    explorationProbability: 1\n"));
    assert_int_equal(decide(cf, eps, NEPS, 10, &rng, &d, scores), 0);
    assert_int_equal(d.decode.result.norder, NEPS);
    llmd_config_free(cf);

    /* affinityThreshold 0: a no-op */
    cf = load(STICKY_CONF("  parameters:\n    affinityThreshold: 0\n"));
    assert_int_equal(decide(cf, eps, NEPS, 10, &rng, &d, scores), 0);
    assert_int_equal(d.decode.result.norder, NEPS);
    llmd_config_free(cf);
}


/* llm-d's defaults, and its validation errors. */
static void
test_params(void **state)
{
    char            err[LLMD_ERRLEN];
    llmd_config_t  *cf;
    size_t          i;
    static const char *const  bad[][2] = {
        { "    affinityThreshold: 1.5\n", "affinityThreshold must be" },
        { "    explorationProbability: -0.1\n",
          "explorationProbability must be" },
        { "    maxTTFTPenaltyMs: -1\n", "maxTTFTPenaltyMs must be" },
        { "    peakPrefillThroughput: -1\n", "peakPrefillThroughput must" },
        { "    peakPrefillThroughput: 0\n", "must be > 0" },
        { "    ttftSource: latencyPredictor\n", "not supported" },
        { "    ttftSource: \"\"\n", "ttftSource must be" },
    };
    char            yaml[1024];

    cf = load(STICKY_CONF(""));
    assert_int_equal(cf->nwarnings, 0);
    assert_int_equal(cf->plugins[0].type, LLMD_PLUGIN_INFLIGHT_PRODUCER);
    assert_int_equal(cf->plugins[0].u.inflight.add_output, 0);
    assert_true(near(cf->plugins[0].u.inflight.output_ratio, 1.5));
    assert_true(cf->plugins[0].u.inflight.max_output < 0);
    assert_true(near(cf->plugins[1].u.affinity.affinity_threshold, 0.8));
    assert_true(near(cf->plugins[1].u.affinity.exploration, 0));
    assert_true(near(cf->plugins[1].u.affinity.max_ttft_penalty_ms, 18000));
    assert_true(near(cf->plugins[1].u.affinity.peak_prefill_throughput,
                     15928));
    assert_true(near(cf->plugins[2].u.token_load.threshold_tokens,
                     4194304));
    assert_int_equal(cf->decode->nfilters, 1);
    llmd_config_free(cf);

    /* a ttftSource of prefillThroughput and producer names are accepted */
    cf = load(STICKY_CONF("  parameters:\n"
                          "    ttftSource: prefillThroughput\n"
                          "    prefixMatchInfoProducerName: p\n"
                          "    inFlightLoadProducerName: i\n"
                          "    latencyPredictionInfoProducerName: l\n"
                          "    peakPrefillThroughput: 0\n"
                          "    maxTTFTPenaltyMs: 0\n"));
    assert_int_equal(cf->nwarnings, 0);
    llmd_config_free(cf);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(yaml, sizeof(yaml), STICKY_CONF("  parameters:\n%s"),
                 bad[i][0]);
        cf = llmd_config_load_string(yaml, strlen(yaml), "t.yaml", err,
                                     sizeof(err));
        if (cf != NULL) {
            llmd_config_free(cf);
            fail_msg("loaded with %s", bad[i][0]);
        }

        if (strstr(err, bad[i][1]) == NULL) {
            fail_msg("error \"%s\" lacks \"%s\"", err, bad[i][1]);
        }
    }

    cf = load(HEAD "plugins:\n- type: inflight-load-producer\n"
              "  parameters:\n"
              "    addEstimatedOutputTokens: true\n"
              "    outputRatio: 0.5\n"
              "    maxEstimatedOutputTokens: 256\n"
              "    syncCrossReplicaState: false\n"
              "- type: queue-scorer\n");
    assert_int_equal(cf->nwarnings, 0);
    assert_int_equal(cf->plugins[0].u.inflight.add_output, 1);
    assert_true(near(cf->plugins[0].u.inflight.output_ratio, 0.5));
    assert_int_equal(cf->plugins[0].u.inflight.max_output, 256);
    llmd_config_free(cf);

    snprintf(yaml, sizeof(yaml), HEAD "plugins:\n"
             "- type: inflight-load-producer\n"
             "  parameters:\n    outputRatio: -1\n");
    cf = llmd_config_load_string(yaml, strlen(yaml), "t.yaml", err,
                                 sizeof(err));
    assert_null(cf);
    assert_non_null(strstr(err, "outputRatio must be non-negative"));
}


/* llm-d's prefill EPP config and the example of this checkout load. */
static void
test_examples_load(void **state)
{
    char            err[LLMD_ERRLEN];
    llmd_config_t  *cf;

    cf = load_file("conf-examples/epp-sticky.yaml");
    assert_int_equal(cf->decode->nfilters, 1);
    assert_int_equal(cf->decode->filters[0]->type,
                     LLMD_PLUGIN_PREFIX_AFFINITY_FILTER);
    assert_int_equal(cf->decode->nscorers, 1);
    assert_int_equal(cf->decode->scorers[0].plugin->type,
                     LLMD_PLUGIN_TOKEN_LOAD_SCORER);
    llmd_config_free(cf);

    /* llm-d's current default: the producer's block caps reach the scorer */
    cf = load_file("conf-examples/epp-default-current.yaml");
    assert_int_equal(cf->decode->nscorers, 3);
    assert_true(near(cf->decode->scorers[2].weight, 3));
    assert_int_equal(cf->decode->scorers[2].plugin->u.prefix.block_size, 64);
    assert_int_equal(cf->decode->scorers[2].plugin->u.prefix.max_prefix_blocks,
                     131072 / 16);
    llmd_config_free(cf);

    /* the built-in one keeps the scorer's older defaults */
    cf = llmd_config_default(err, sizeof(err));
    assert_non_null(cf);
    assert_int_equal(cf->decode->scorers[2].plugin->u.prefix.max_prefix_blocks,
                     256);
    llmd_config_free(cf);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_adjust_queue_and_running),
        cmocka_unit_test(test_adjust_kv),
        cmocka_unit_test(test_uncached_and_output),
        cmocka_unit_test(test_token_load_scorer),
        cmocka_unit_test(test_affinity_filter),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_examples_load),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
