/*
 * llmd-loadgen's arrival schedule (loadgen/lg_arrivals.c): constant
 * arrivals at k / rate, the time scale, Poisson arrivals, concurrent
 * stages by count and by time, and the moves from stage to stage.
 */

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../loadgen/lg_arrivals.h"


#define assert_near(got, want, eps)                                          \
    assert_near_at((got), (want), (eps), __FILE__, __LINE__)


static void
assert_near_at(double got, double want, double eps, const char *file,
    int line)
{
    if (fabs(got - want) > eps) {
        fail_msg("%s:%d: %.12g is not %.12g", file, line, got, want);
    }
}


static void
config(lg_config_t *cf, lg_load_type_e load, double time_scale)
{
    memset(cf, 0, sizeof(*cf));
    cf->load = load;
    cf->time_scale = time_scale;
}


static void
add_stage(lg_config_t *cf, double rate, double duration, long concurrency,
    long num_requests)
{
    lg_stage_t  *st = &cf->stages[cf->nstages++];

    st->rate = rate;
    st->duration = duration;
    st->concurrency = concurrency;
    st->num_requests = num_requests;
}


/* Sends what is due at t (nothing stays in flight); returns how many. */
static long
send_due(lg_arrivals_t *a, double t, double *times, long max)
{
    double  at;
    long    n = 0;

    while (lg_arrivals_due(a, t, 0, &at)) {
        assert_true(n < max);
        times[n++] = at;
        lg_arrivals_sent(a);
    }
    return n;
}


static void
test_constant(void **state)
{
    lg_config_t    cf;
    lg_arrivals_t  a;
    uint64_t       rng = 1;
    double         times[32];
    long           n, k;

    config(&cf, LG_LOAD_CONSTANT, 1);
    add_stage(&cf, 10, 1, 0, 0);
    add_stage(&cf, 4, 1, 0, 0);
    lg_arrivals_start(&a, &cf, &rng, 0);

    n = send_due(&a, 0.35, times, 32);
    assert_int_equal(n, 4);
    for (k = 0; k < n; k++) {
        assert_near(times[k], k / 10.0, 1e-12);
    }
    assert_false(lg_arrivals_next_stage(&a, 0.35, 0));
    assert_near(lg_arrivals_wake(&a), 0.4, 1e-12);

    /* k / rate == duration is the next stage's */
    n = send_due(&a, 1.5, times, 32);
    assert_int_equal(n, 6);
    assert_near(times[5], 0.9, 1e-12);
    assert_true(lg_arrivals_next_stage(&a, 1.5, 0));
    assert_int_equal(a.stage, 1);
    assert_near(a.stage_start, 1.0, 1e-12);

    n = send_due(&a, 1.5, times, 32);
    assert_int_equal(n, 3);
    assert_near(times[2], 1.5, 1e-12);

    /* no arrival left before the end: wake at the end */
    n = send_due(&a, 1.9, times, 32);
    assert_int_equal(n, 1);
    assert_false(lg_arrivals_next_stage(&a, 1.9, 0));
    assert_near(lg_arrivals_wake(&a), 2.0, 1e-12);
    assert_true(lg_arrivals_next_stage(&a, 2.0, 0));
    assert_int_equal(a.stage, 2);
}


static void
test_time_scale(void **state)
{
    lg_config_t    cf;
    lg_arrivals_t  a;
    uint64_t       rng = 1;
    double         times[128];

    /* 10 s at 5/s, 10 times faster: 1 s of 50/s */
    config(&cf, LG_LOAD_CONSTANT, 10);
    add_stage(&cf, 5, 10, 0, 0);
    lg_arrivals_start(&a, &cf, &rng, 2);
    assert_near(a.stage_end, 3, 1e-12);
    assert_int_equal(send_due(&a, 3, times, 128), 50);
    assert_near(times[49], 2.98, 1e-9);
}


static void
test_poisson(void **state)
{
    lg_config_t    cf;
    lg_arrivals_t  a;
    uint64_t       rng = 42;
    double        *times, at;
    long           n, k;

    /* 100/s for 100 s: 10000 +- 100 arrivals, gaps of 10 ms on average */
    config(&cf, LG_LOAD_POISSON, 1);
    add_stage(&cf, 100, 100, 0, 0);
    lg_arrivals_start(&a, &cf, &rng, 0);
    /* the first arrival is a gap after the start too */
    assert_true(lg_arrivals_wake(&a) > 0);

    times = malloc(20000 * sizeof(double));
    assert_non_null(times);
    n = send_due(&a, 100, times, 20000);
    assert_in_range(n, 9500, 10500);
    for (k = 1; k < n; k++) {
        assert_true(times[k] > times[k - 1]);
    }
    assert_true(times[n - 1] < 100);
    assert_false(lg_arrivals_due(&a, 100, 0, &at));
    free(times);

    /* the same seed, the same arrivals */
    rng = 42;
    lg_arrivals_start(&a, &cf, &rng, 0);
    at = lg_arrivals_wake(&a);
    rng = 42;
    lg_arrivals_start(&a, &cf, &rng, 0);
    assert_near(lg_arrivals_wake(&a), at, 0);
}


static void
test_concurrent_count(void **state)
{
    lg_config_t    cf;
    lg_arrivals_t  a;
    uint64_t       rng = 1;
    double         at;
    long           inflight = 0, sent = 0;

    /* 3 at a time, 5 in all, then a rate stage */
    config(&cf, LG_LOAD_CONSTANT, 1);
    add_stage(&cf, 0, 60, 3, 5);
    add_stage(&cf, 1, 10, 0, 0);
    lg_arrivals_start(&a, &cf, &rng, 0);
    assert_near(lg_arrivals_wake(&a), 60, 1e-12);

    while (lg_arrivals_due(&a, 1, inflight, &at)) {
        assert_near(at, 1, 0);
        lg_arrivals_sent(&a);
        inflight++;
        sent++;
    }
    assert_int_equal(sent, 3);
    assert_false(lg_arrivals_next_stage(&a, 1, inflight));

    inflight = 0;
    while (lg_arrivals_due(&a, 2, inflight, &at)) {
        lg_arrivals_sent(&a);
        inflight++;
        sent++;
    }
    assert_int_equal(sent, 5);

    /* all sent, not all back */
    assert_false(lg_arrivals_next_stage(&a, 3, 1));
    assert_true(lg_arrivals_next_stage(&a, 4, 0));
    assert_int_equal(a.stage, 1);
    assert_near(a.stage_start, 4, 1e-12);
    assert_near(lg_arrivals_wake(&a), 4, 1e-12);
}


static void
test_concurrent_time(void **state)
{
    lg_config_t    cf;
    lg_arrivals_t  a;
    uint64_t       rng = 1;
    double         at;

    config(&cf, LG_LOAD_CONSTANT, 2);
    add_stage(&cf, 0, 10, 2, 0);
    add_stage(&cf, 0, 10, 2, 0);
    lg_arrivals_start(&a, &cf, &rng, 0);
    assert_true(lg_arrivals_due(&a, 4.9, 1, &at));
    assert_false(lg_arrivals_due(&a, 5, 1, &at));
    assert_false(lg_arrivals_next_stage(&a, 4.9, 2));

    /* over at its end, in flight or not; late checks start the next stage
     * at the end all the same */
    assert_true(lg_arrivals_next_stage(&a, 7, 2));
    assert_int_equal(a.stage, 1);
    assert_near(a.stage_start, 5, 1e-12);
    assert_near(a.stage_end, 10, 1e-12);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_constant),
        cmocka_unit_test(test_time_scale),
        cmocka_unit_test(test_poisson),
        cmocka_unit_test(test_concurrent_count),
        cmocka_unit_test(test_concurrent_time),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
