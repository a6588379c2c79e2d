/*
 * inference-perf v0.2's load timers as schedules (lg_iptimer.h).
 */
#include <math.h>

#include "lg.h"
#include "lg_iptimer.h"


static void lg_iptimer_spread(double rate, double duration, long k,
    uint64_t *rng, double *at, long m);
static double lg_iptimer_exp(uint64_t *rng, double rate);
static long lg_iptimer_poisson_count(double rate, uint64_t *rng);


long
lg_iptimer_count(double rate, double duration)
{
    double  n = rate * duration;

    /* Python's int() truncates the product, as here */
    return n >= 1 ? (long) n : 0;
}


void
lg_iptimer_constant(double rate, double duration, uint64_t *rng, double *at,
    long n)
{
    lg_iptimer_spread(rate, duration, n, rng, at, n);
}


void
lg_iptimer_poisson(double rate, uint64_t *rng, double *at, long n)
{
    double  second = 0;
    long    i = 0, k, m, j;

    while (i < n) {
        k = lg_iptimer_poisson_count(rate, rng);
        if (k < 1) {
            second += 1;
            continue;
        }
        /* a constant timer of k per second for this second; its last
         * arrival ends the second, and the next one starts from there */
        m = k < n - i ? k : n - i;
        lg_iptimer_spread(k, 1.0, k, rng, at + i, m);
        for (j = 0; j < m; j++) {
            at[i + j] += second;
        }
        i += m;
        second += 1.0;
    }
}


/*
 * k exponential gaps of mean 1 / rate rescaled to add up to duration: the
 * first m of their cumulative sums go to at (the rest are drawn, so that
 * the rescaling is the same, but not kept).
 */
static void
lg_iptimer_spread(double rate, double duration, long k, uint64_t *rng,
    double *at, long m)
{
    double  sum = 0, g, t = 0;
    long    i;

    for (i = 0; i < k; i++) {
        g = lg_iptimer_exp(rng, rate);
        if (i < m) {
            at[i] = g;
        }
        sum += g;
    }
    for (i = 0; i < m; i++) {
        t += at[i] * duration / sum;
        at[i] = t;
    }
}


static double
lg_iptimer_exp(uint64_t *rng, double rate)
{
    return -log(lg_rng_uniform(rng)) / rate;
}


/* Poisson(rate): exponential gaps of mean 1 / rate that fit in 1 s. */
static long
lg_iptimer_poisson_count(double rate, uint64_t *rng)
{
    double  t = lg_iptimer_exp(rng, rate);
    long    k = 0;

    while (t <= 1.0) {
        k++;
        t += lg_iptimer_exp(rng, rate);
    }
    return k;
}
