/*
 * llmd-loadgen's arrival schedule (loadgen/lg_arrivals.c): constant
 * arrivals at k / rate, the time scale, Poisson arrivals, concurrent
 * stages by count and by time, and the moves from stage to stage; the
 * drained stages of the inference-perf-v0.2 mode.
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
#include "lg_assert.h"


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


/*
 * The inference-perf-v0.2 mode's drained stages: arrivals from 1 s after
 * the stage began, the last one on the stage's end; once all are sent the
 * stage looks every second from its beginning for requests in flight and
 * is over at the first look that finds none; the next stage begins
 * load.interval later.
 */
static void
drained(lg_config_t *cf, lg_load_type_e load, double time_scale)
{
    config(cf, load, time_scale);
    cf->mode = LG_MODE_IP_V02;
    cf->stage_interval = 1;
}


static void
test_drained(void **state)
{
    lg_config_t    cf;
    lg_arrivals_t  a;
    uint64_t       rng = 9;
    double         t[16], at;
    long           i;

    drained(&cf, LG_LOAD_CONSTANT, 1);
    add_stage(&cf, 2, 3, 0, 0);
    add_stage(&cf, 4, 1, 0, 0);
    add_stage(&cf, 1, 1, 0, 0);
    assert_int_equal(lg_arrivals_start(&a, &cf, &rng, 0), 0);

    /* nothing in the first second */
    assert_false(lg_arrivals_due(&a, 0.999, 0, &at));
    assert_true(lg_arrivals_wake(&a) > 1.0);

    /* 6 arrivals from 1 s on, the last on 1 + 3 s */
    assert_int_equal(send_due(&a, 10, t, 16), 6);
    for (i = 1; i < 6; i++) {
        assert_true(t[i] > t[i - 1]);
    }
    assert_true(t[0] > 1.0);
    assert_near(t[5], 4.0, 1e-9);

    /* with requests in flight the stage waits, whatever the time; it
     * looks at whole seconds from its beginning, after its last arrival */
    assert_false(lg_arrivals_next_stage(&a, 4.5, 6));
    assert_near(lg_arrivals_wake(&a), 5.0, 1e-12);
    for (i = 5; i <= 11; i++) {
        assert_false(lg_arrivals_next_stage(&a, i, 6 - i / 2));
    }
    /* the last one ends at 11.3: the next look, at 12, ends the stage */
    assert_false(lg_arrivals_next_stage(&a, 11.3, 0));
    assert_near(lg_arrivals_wake(&a), 12.0, 1e-12);
    assert_true(lg_arrivals_next_stage(&a, 12.0004, 0));
    assert_int_equal(a.stage, 1);

    /* the next stage begins 1 s later and sends from 1 s after that */
    assert_near(a.stage_start, 13.0, 1e-12);
    assert_false(lg_arrivals_due(&a, 13.99, 0, &at));
    assert_int_equal(send_due(&a, 20, t, 16), 4);
    assert_true(t[0] > 14.0);
    assert_near(t[3], 15.0, 1e-9);

    /* every request failed at once: the first look after the last
     * arrival (15, on it, found it unfinished) */
    assert_true(lg_arrivals_next_stage(&a, 20, 0));
    assert_int_equal(a.stage, 2);
    assert_near(a.stage_start, 17.0, 1e-12);
    lg_arrivals_free(&a);
}


static void
test_time_scale_and_interval(void **state)
{
    lg_config_t    cf;
    lg_arrivals_t  a;
    uint64_t       rng = 2;
    double         t[64];

    /* 10 times faster, load.interval 5 s */
    drained(&cf, LG_LOAD_CONSTANT, 10);
    cf.stage_interval = 5;
    add_stage(&cf, 3, 10, 0, 0);
    add_stage(&cf, 3, 10, 0, 0);
    assert_int_equal(lg_arrivals_start(&a, &cf, &rng, 2), 0);
    assert_int_equal(send_due(&a, 10, t, 64), 30);
    assert_true(t[0] > 2.1);
    assert_near(t[29], 2 + 0.1 + 1.0, 1e-9);

    /* looks every 0.1 s: the first after 3.1 is 3.2 */
    assert_false(lg_arrivals_next_stage(&a, 3.15, 1));
    assert_near(lg_arrivals_wake(&a), 3.2, 1e-9);
    assert_true(lg_arrivals_next_stage(&a, 3.25, 0));
    assert_int_equal(a.stage, 1);
    assert_near(a.stage_start, 3.2 + 0.5, 1e-9);
    lg_arrivals_free(&a);
}


static void
test_empty_stage(void **state)
{
    lg_config_t    cf;
    lg_arrivals_t  a;
    uint64_t       rng = 2;
    double         at;

    /* 0.2/s for 2 s is int(0.4) = 0 requests: over at once */
    drained(&cf, LG_LOAD_CONSTANT, 1);
    add_stage(&cf, 0.2, 2, 0, 0);
    add_stage(&cf, 1, 1, 0, 0);
    assert_int_equal(lg_arrivals_start(&a, &cf, &rng, 0), 0);
    assert_false(lg_arrivals_due(&a, 100, 0, &at));
    assert_true(lg_arrivals_next_stage(&a, 0, 0));
    assert_int_equal(a.stage, 1);
    assert_near(a.stage_start, 1.0, 1e-12);
    /* its one arrival: 1 s after it began, then its 1 s */
    assert_false(lg_arrivals_due(&a, 2.99, 0, &at));
    assert_true(lg_arrivals_due(&a, 3.0, 0, &at));
    assert_near(at, 3.0, 1e-12);
    lg_arrivals_free(&a);
}


static void
test_poisson_count(void **state)
{
    lg_config_t    cf;
    lg_arrivals_t  a;
    uint64_t       rng = 8;
    double         t[64];

    /* the Poisson timer too sends int(rate x duration), however long */
    drained(&cf, LG_LOAD_POISSON, 1);
    add_stage(&cf, 5, 6, 0, 0);
    assert_int_equal(lg_arrivals_start(&a, &cf, &rng, 0), 0);
    assert_int_equal(send_due(&a, 1000, t, 64), 30);
    assert_true(t[0] > 1.0);
    lg_arrivals_free(&a);
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
        cmocka_unit_test(test_drained),
        cmocka_unit_test(test_time_scale_and_interval),
        cmocka_unit_test(test_empty_stage),
        cmocka_unit_test(test_poisson_count),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
