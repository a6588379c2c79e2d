/*
 * inference-perf v0.2's load timers (loadgen/lg_iptimer.c): the request
 * count int(rate x duration), ConstantLoadTimer's N exponential gaps
 * rescaled to end on the duration, PoissonLoadTimer's seconds of a Poisson
 * count each.
 */

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../loadgen/lg_iptimer.h"
#include "lg_assert.h"


static void
test_count(void **state)
{
    /* the seed's stages */
    assert_int_equal(lg_iptimer_count(9, 30), 270);
    assert_int_equal(lg_iptimer_count(3, 210), 630);
    assert_int_equal(lg_iptimer_count(20, 50), 1000);
    /* truncated, as Python's int() */
    assert_int_equal(lg_iptimer_count(2.5, 3), 7);
    assert_int_equal(lg_iptimer_count(0.1, 30), 3);
    assert_int_equal(lg_iptimer_count(0.5, 1), 0);
    assert_int_equal(lg_iptimer_count(0, 10), 0);
}


static void
test_constant_sums_to_duration(void **state)
{
    double    at[270];
    uint64_t  rng = 5;
    long      i;

    /* the seed's warm-up: 270 arrivals, the last one on the end, 30 s */
    lg_iptimer_constant(9, 30, &rng, at, 270);
    assert_true(at[0] > 0);
    for (i = 1; i < 270; i++) {
        assert_true(at[i] > at[i - 1]);
    }
    assert_near(at[269], 30, 1e-9);

    /* one arrival: on the end */
    lg_iptimer_constant(0.5, 2, &rng, at, 1);
    assert_near(at[0], 2, 1e-12);
}


static void
test_constant_is_bursty(void **state)
{
    long      n = 20000, i, below;
    double   *at, *gap, mean = 0, var = 0;
    uint64_t  rng = 11;

    at = malloc(n * sizeof(double));
    gap = malloc(n * sizeof(double));
    assert_non_null(at);
    assert_non_null(gap);
    lg_iptimer_constant(10, 2000, &rng, at, n);
    for (i = 0; i < n; i++) {
        gap[i] = at[i] - (i ? at[i - 1] : 0);
        mean += gap[i];
    }
    mean /= n;
    for (i = 0; i < n; i++) {
        var += (gap[i] - mean) * (gap[i] - mean);
    }
    var /= n;

    /* exactly the mean of k / rate spacing, but exponential: the
     * coefficient of variation is 1 (0 for evenly spaced arrivals) and
     * 1 - 1/e of the gaps are shorter than the mean */
    assert_near(mean, 0.1, 1e-9);
    assert_near(sqrt(var) / mean, 1, 0.05);
    for (i = 0, below = 0; i < n; i++) {
        below += gap[i] < mean;
    }
    assert_near((double) below / n, 1 - exp(-1), 0.02);

    /* the same seed, the same schedule */
    rng = 11;
    lg_iptimer_constant(10, 2000, &rng, gap, n);
    assert_memory_equal(at, gap, n * sizeof(double));
    free(at);
    free(gap);
}


static void
test_poisson_seconds(void **state)
{
    long      n = 5000, i, sec, in_sec, seconds, k;
    double   *at;
    uint64_t  rng = 3;

    at = malloc(n * sizeof(double));
    assert_non_null(at);

    /* 20 per second: every second has arrivals, about 20, and a second's
     * last arrival is its end (each second is a constant timer of its own) */
    lg_iptimer_poisson(20, &rng, at, n);
    for (i = 1; i < n; i++) {
        assert_true(at[i] > at[i - 1]);
    }
    seconds = (long) ceil(at[n - 1]);
    assert_near((double) n / seconds, 20, 1.5);
    for (i = 0; i < n - 1; i++) {
        sec = (long) ceil(at[i] - 1e-9);
        if ((long) ceil(at[i + 1] - 1e-9) != sec) {
            assert_near(at[i], sec, 1e-9);
        }
    }

    /* 0.5 per second: a second is empty with probability e^-0.5 */
    rng = 4;
    lg_iptimer_poisson(0.5, &rng, at, n);
    seconds = (long) ceil(at[n - 1] - 1e-9);
    for (i = 0, sec = -1, in_sec = 0; i < n; i++) {
        k = (long) ceil(at[i] - 1e-9);
        if (k != sec) {
            in_sec++;
            sec = k;
        }
    }
    assert_near((double) in_sec / seconds, 1 - exp(-0.5), 0.03);
    free(at);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_constant_sums_to_duration),
        cmocka_unit_test(test_constant_is_bursty),
        cmocka_unit_test(test_poisson_seconds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
