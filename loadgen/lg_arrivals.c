/*
 * The arrival schedule of llmd-loadgen (lg_arrivals.h).  Constant arrivals
 * are k / rate from the stage start, so no rounding error piles up; Poisson
 * arrivals add exponential gaps.
 */
#include <math.h>

#include "lg_arrivals.h"


static void lg_arrivals_begin(lg_arrivals_t *a, double t);
static double lg_arrivals_next(const lg_arrivals_t *a);


void
lg_arrivals_start(lg_arrivals_t *a, const lg_config_t *cf, uint64_t *rng,
    double t)
{
    a->cf = cf;
    a->rng = rng;
    a->stage = 0;
    a->stage_start = a->stage_end = a->next_send = 0;
    a->stage_sent = 0;
    lg_arrivals_begin(a, t);
}


int
lg_arrivals_due(const lg_arrivals_t *a, double t, long inflight, double *at)
{
    const lg_stage_t  *st = &a->cf->stages[a->stage];

    if (st->concurrency > 0) {
        *at = t;
        return t < a->stage_end && inflight < st->concurrency
               && (st->num_requests == 0
                   || a->stage_sent < st->num_requests);
    }
    /* the margin keeps k / rate == duration out of the stage */
    *at = a->next_send;
    return a->next_send <= t && a->next_send < a->stage_end - 1e-9;
}


void
lg_arrivals_sent(lg_arrivals_t *a)
{
    a->stage_sent++;
    if (a->cf->stages[a->stage].concurrency == 0) {
        a->next_send = lg_arrivals_next(a);
    }
}


int
lg_arrivals_next_stage(lg_arrivals_t *a, double t, long inflight)
{
    const lg_stage_t  *st = &a->cf->stages[a->stage];

    if (st->concurrency > 0) {
        if (t >= a->stage_end
            || (st->num_requests > 0 && a->stage_sent >= st->num_requests
                && inflight == 0))
        {
            a->stage++;
            lg_arrivals_begin(a, t < a->stage_end ? t : a->stage_end);
            return 1;
        }
        return 0;
    }
    if (a->next_send < a->stage_end - 1e-9) {
        return 0;
    }
    if (t < a->stage_end) {
        /* no arrival left: wake at the stage end */
        a->next_send = a->stage_end;
        return 0;
    }
    a->stage++;
    lg_arrivals_begin(a, a->stage_end);
    return 1;
}


double
lg_arrivals_wake(const lg_arrivals_t *a)
{
    if (a->cf->stages[a->stage].concurrency > 0) {
        return a->stage_end;
    }
    return a->next_send;
}


static void
lg_arrivals_begin(lg_arrivals_t *a, double t)
{
    const lg_stage_t  *st;

    if (a->stage >= a->cf->nstages) {
        return;
    }
    st = &a->cf->stages[a->stage];
    a->stage_start = t;
    a->stage_end = t + st->duration / a->cf->time_scale;
    a->stage_sent = 0;
    a->next_send = t;
    if (st->concurrency == 0 && a->cf->load == LG_LOAD_POISSON) {
        a->next_send = lg_arrivals_next(a);
    }
}


/* The arrival after next_send, stage_sent requests into the stage. */
static double
lg_arrivals_next(const lg_arrivals_t *a)
{
    double  rate = a->cf->stages[a->stage].rate * a->cf->time_scale;

    if (a->cf->load == LG_LOAD_POISSON) {
        return a->next_send - log(lg_rng_uniform(a->rng)) / rate;
    }
    return a->stage_start + (double) a->stage_sent / rate;
}
