/*
 * The arrival schedule of llmd-loadgen: when each stage of the load starts
 * and ends and when its next request is due.  Open-loop stages send at
 * constant or Poisson arrivals whatever the server does; concurrent stages
 * keep N requests in flight.  Pure: the caller says what time it is (wall
 * seconds since the run started) and how many of the stage's requests are
 * in flight, and sends the requests.
 *
 * In the inference-perf-v0.2 mode (cf->mode) the stages are drained, as
 * inference-perf v0.2 runs them: a stage's arrivals come from its load
 * timers (lg_iptimer.h) starting 1 s after the stage began; once they are
 * all sent, the stage looks every second (from its beginning) whether all
 * its requests finished, and is over at the first look that finds none in
 * flight; the next stage begins load.interval (1 s) after that.  Times
 * in the config are simulated seconds: divided by the time scale here.
 */
#ifndef LG_ARRIVALS_H
#define LG_ARRIVALS_H

#include <stdint.h>

#include "lg.h"

typedef struct {
    const lg_config_t  *cf;
    uint64_t           *rng;         /* Poisson gaps; shared with the caller */
    int                 stage;       /* current, cf->nstages when all over */
    double              stage_start; /* wall s */
    double              stage_end;
    double              next_send;   /* open loop: the next arrival */
    long                stage_sent;  /* requests of this stage so far */

    /* drained stages (inference-perf mode) */
    double             *at;          /* the stage's arrivals, wall s */
    long                n_at;
    long                tick;        /* looks for the end so far */
} lg_arrivals_t;

/* Stage 0 begins at t; -1 when out of memory. */
int lg_arrivals_start(lg_arrivals_t *a, const lg_config_t *cf,
    uint64_t *rng, double t);
void lg_arrivals_free(lg_arrivals_t *a);

/* 1 when a request of the current stage is due at t; *at is the time it
 * was scheduled for.  Count it with lg_arrivals_sent() before asking
 * again. */
int lg_arrivals_due(const lg_arrivals_t *a, double t, long inflight,
    double *at);
void lg_arrivals_sent(lg_arrivals_t *a);

/* 1 when the current stage is over at t: the next one (if any) has begun
 * at a->stage_start. */
int lg_arrivals_next_stage(lg_arrivals_t *a, double t, long inflight);

/* When something is due next in the current stage. */
double lg_arrivals_wake(const lg_arrivals_t *a);

#endif /* LG_ARRIVALS_H */
