/*
 * Scheduling cycle: scorer formulas, weighted sum, pickers, stale metrics.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "test_data.h"

#include "core/llmd_scheduler.h"
#include "test_epp.h"

#define HEAD \
    "apiVersion: inference.networking.x-k8s.io/v1alpha1\n" \
    "kind: EndpointPickerConfig\n"


static void
run(const llmd_config_t *cf, llmd_endpoint_state_t *eps, size_t n,
    uint32_t total, uint64_t *rng, llmd_sched_result_t *res, double *scores)
{
    llmd_sched_input_t  in;

    in.eps = eps;
    in.neps = n;
    in.prefix_total = total;
    in.rng = rng;
    res->scores = scores;

    assert_int_equal(llmd_schedule(llmd_config_primary_profile(cf), &in, res),
                     0);
    assert_int_equal(res->norder, n);
}


/* The worked example of the spec, section 2: A = 3.9, B = 1.0, C = 0.1. */
static void
test_seed_default_worked_example(void **state)
{
    double                  scores[3 * 3];
    uint64_t                rng = 7;
    llmd_config_t          *cf;
    llmd_sched_result_t     res;
    llmd_endpoint_state_t   eps[3] = {
        { .waiting = 0, .kv_usage = 0.1, .fresh = 1, .prefix_match = 2 },
        { .waiting = 2, .kv_usage = 0.5, .fresh = 1 },
        { .waiting = 4, .kv_usage = 0.9, .fresh = 1 },
    };

    cf = load_file(test_path("conf-examples/epp-default.yaml"));
    run(cf, eps, 3, 2, &rng, &res, scores);

    assert_true(fabs(res.total[0] - 3.9) < 1e-9);
    assert_true(fabs(res.total[1] - 1.0) < 1e-9);
    assert_true(fabs(res.total[2] - 0.1) < 1e-9);
    assert_int_equal(res.order[0], 0);
    assert_int_equal(res.order[1], 1);
    assert_int_equal(res.order[2], 2);

    /* raw scores per scorer, in profile order: queue, kv, prefix */
    assert_true(fabs(scores[0 * 3 + 1] - 0.5) < 1e-9);
    assert_true(fabs(scores[1 * 3 + 2] - 0.1) < 1e-9);
    assert_true(fabs(scores[2 * 3 + 0] - 1.0) < 1e-9);

    llmd_config_free(cf);
}


/* Weights change the decision: prefix affinity vs a long queue. */
static void
test_weights_change_decision(void **state)
{
    double                  scores[2 * 2];
    uint64_t                rng = 3;
    llmd_config_t          *cf;
    llmd_sched_result_t     res;
    llmd_endpoint_state_t   eps[2] = {
        { .waiting = 10, .fresh = 1, .prefix_match = 4 },
        { .waiting = 0, .fresh = 1 },
    };
    static const char      *fmt =
        HEAD "plugins:\n- type: queue-scorer\n- type: prefix-cache-scorer\n"
        "schedulingProfiles:\n- name: d\n  plugins:\n"
        "  - pluginRef: queue-scorer\n    weight: %d\n"
        "  - pluginRef: prefix-cache-scorer\n    weight: %d\n";
    char                    yaml[1024];

    snprintf(yaml, sizeof(yaml), fmt, 1, 3);
    cf = load(yaml);
    run(cf, eps, 2, 4, &rng, &res, scores);
    assert_int_equal(res.order[0], 0);
    llmd_config_free(cf);

    snprintf(yaml, sizeof(yaml), fmt, 3, 1);
    cf = load(yaml);
    run(cf, eps, 2, 4, &rng, &res, scores);
    assert_int_equal(res.order[0], 1);
    llmd_config_free(cf);
}


static void
test_scorer_formulas(void **state)
{
    double                  scores[3 * 3];
    uint64_t                rng = 11;
    llmd_config_t          *cf;
    llmd_sched_result_t     res;
    llmd_endpoint_state_t   eps[3] = {
        { .waiting = 0, .fresh = 1, .active = 0 },
        { .waiting = 64, .fresh = 1, .active = 2 },
        { .waiting = 500, .kv_usage = 1.7, .fresh = 1, .active = 4 },
    };

    cf = load(HEAD "plugins:\n- type: load-aware-scorer\n"
              "- type: active-request-scorer\n- type: kv-cache-scorer\n");
    run(cf, eps, 3, 0, &rng, &res, scores);

    /* load-aware: 0.5 idle, 0.5 * (1 - 64/128), 0 beyond the threshold */
    assert_true(fabs(scores[0] - 0.5) < 1e-9);
    assert_true(fabs(scores[1] - 0.25) < 1e-9);
    assert_true(fabs(scores[2] - 0) < 1e-9);
    /* active-request: (max - n) / max, idle 1 */
    assert_true(fabs(scores[3] - 1) < 1e-9);
    assert_true(fabs(scores[4] - 0.5) < 1e-9);
    assert_true(fabs(scores[5] - 0) < 1e-9);
    /* kv-cache: 1 - usage, clamped into [0,1] */
    assert_true(fabs(scores[6] - 1) < 1e-9);
    assert_true(fabs(scores[8] - 0) < 1e-9);

    llmd_config_free(cf);
}


/* Equal queues score 1 everywhere; ties are broken uniformly at random. */
static void
test_ties_break_at_random(void **state)
{
    int                     i, wins[4] = { 0 };
    double                  scores[4];
    uint64_t                rng = 12345;
    llmd_config_t          *cf;
    llmd_sched_result_t     res;
    llmd_endpoint_state_t   eps[4] = {
        { .waiting = 3, .fresh = 1 }, { .waiting = 3, .fresh = 1 },
        { .waiting = 3, .fresh = 1 }, { .waiting = 3, .fresh = 1 },
    };

    cf = load(HEAD "plugins:\n- type: queue-scorer\n");

    for (i = 0; i < 4000; i++) {
        run(cf, eps, 4, 0, &rng, &res, scores);
        assert_true(scores[0] == 1.0);
        wins[res.order[0]]++;
    }

    for (i = 0; i < 4; i++) {
        assert_in_range(wins[i], 850, 1150);
    }

    llmd_config_free(cf);
}


static void
test_random_and_weighted_pickers(void **state)
{
    int                     i, wins[3] = { 0 };
    double                  scores[3];
    uint64_t                rng = 99;
    llmd_config_t          *cf;
    llmd_sched_result_t     res;
    llmd_endpoint_state_t   eps[3] = {
        { .kv_usage = 0.0, .fresh = 1 }, { .kv_usage = 0.75, .fresh = 1 },
        { .kv_usage = 1.0, .fresh = 1 },
    };

    cf = load_file(test_path("conf-examples/epp-random.yaml"));
    for (i = 0; i < 3000; i++) {
        run(cf, eps, 3, 0, &rng, &res, scores);
        wins[res.order[0]]++;
    }

    for (i = 0; i < 3; i++) {
        assert_in_range(wins[i], 850, 1150);
    }

    llmd_config_free(cf);

    /* weighted: kv scores 1, 0.25, 0 -> P = 0.8, 0.2, 0 */
    memset(wins, 0, sizeof(wins));
    cf = load(HEAD "plugins:\n- type: kv-cache-scorer\n"
              "- type: weighted-random-picker\n");
    for (i = 0; i < 5000; i++) {
        run(cf, eps, 3, 0, &rng, &res, scores);
        wins[res.order[0]]++;
        /* every candidate is still ranked, for retries */
        assert_int_not_equal(res.order[1], res.order[2]);
    }

    assert_in_range(wins[0], 3800, 4200);
    assert_in_range(wins[1], 800, 1200);
    assert_int_equal(wins[2], 0);
    llmd_config_free(cf);
}


/* A pod without fresh metrics looks like the worst fresh one. */
static void
test_stale_metrics(void **state)
{
    double                  scores[2 * 3];
    uint64_t                rng = 5;
    llmd_config_t          *cf;
    llmd_sched_result_t     res;
    llmd_endpoint_state_t   eps[3] = {
        { .waiting = 1, .kv_usage = 0.2, .fresh = 1 },
        { .waiting = 5, .kv_usage = 0.6, .fresh = 1 },
        { .waiting = 0, .kv_usage = 0.0, .fresh = 0 },
    };

    cf = load_file(test_path("conf-examples/epp-load.yaml"));
    run(cf, eps, 3, 0, &rng, &res, scores);
    assert_int_equal(res.order[0], 0);
    assert_true(fabs(res.total[2] - res.total[1]) < 1e-9);

    /* nothing fresh: all look idle and equal */
    eps[0].fresh = eps[1].fresh = 0;
    run(cf, eps, 3, 0, &rng, &res, scores);
    assert_true(res.total[0] == 2.0 && res.total[1] == 2.0
                && res.total[2] == 2.0);

    llmd_config_free(cf);
}


static void
test_no_candidates(void **state)
{
    double               scores[1];
    uint64_t             rng = 1;
    llmd_config_t       *cf;
    llmd_sched_input_t   in = { NULL, 0, 0, &rng };
    llmd_sched_result_t  res;

    cf = load_file(test_path("conf-examples/epp-default.yaml"));
    res.scores = scores;
    assert_int_equal(llmd_schedule(llmd_config_primary_profile(cf), &in,
                                   &res), -1);
    llmd_config_free(cf);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_seed_default_worked_example),
        cmocka_unit_test(test_weights_change_decision),
        cmocka_unit_test(test_scorer_formulas),
        cmocka_unit_test(test_ties_break_at_random),
        cmocka_unit_test(test_random_and_weighted_pickers),
        cmocka_unit_test(test_stale_metrics),
        cmocka_unit_test(test_no_candidates),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
