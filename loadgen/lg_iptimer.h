/*
 * The load timers of inference-perf v0.2 (the load generator of llm-d's
 * reports) as pure schedules, for llmd-loadgen's inference-perf-v0.2 mode.
 *
 * ConstantLoadTimer: a stage of RATE for DURATION seconds sends
 * N = int(RATE x DURATION) requests at the cumulative sums of N exponential
 * gaps of mean 1 / RATE rescaled so that they add up to DURATION exactly: the
 * last request falls on the stage's end, and the arrivals are as bursty as
 * Poisson ones, not evenly spaced.
 *
 * PoissonLoadTimer: for every second, a Poisson(RATE) count k; a second
 * with k = 0 sends nothing, otherwise its k requests follow a
 * ConstantLoadTimer of k per second for 1 s.  The stage still sends
 * int(RATE x DURATION) requests, however long they take.
 *
 * Offsets are seconds after the timer's start.
 */
#ifndef LG_IPTIMER_H
#define LG_IPTIMER_H

#include <stdint.h>

/* int(rate x duration): the requests of a stage (0 or more). */
long lg_iptimer_count(double rate, double duration);

/* The n = lg_iptimer_count(rate, duration) arrivals of a constant stage. */
void lg_iptimer_constant(double rate, double duration, uint64_t *rng,
    double *at, long n);

/* The first n arrivals of a Poisson timer of rate per second. */
void lg_iptimer_poisson(double rate, uint64_t *rng, double *at, long n);

#endif /* LG_IPTIMER_H */
