/*
 * The arrival schedule of llmd-loadgen (lg_arrivals.h).  Constant arrivals
 * are k / rate from the stage start, so no rounding error piles up; Poisson
 * arrivals add exponential gaps.  Drained stages take their whole
 * schedule from lg_iptimer.h when they begin.
 */
#include <math.h>
#include <stdlib.h>

#include "lg_arrivals.h"
#include "lg_iptimer.h"


/* inference-perf v0.2: the first arrival is timed from 1 s after the
 * stage began (to let its queue fill), and a stage looks for its end once
 * a second (simulated seconds) */
#define LG_IP_START_DELAY  1.0
#define LG_IP_POLL         1.0


static void lg_arrivals_begin(lg_arrivals_t *a, double t);
static void lg_arrivals_begin_drained(lg_arrivals_t *a, double t);
static double lg_arrivals_tick(const lg_arrivals_t *a);
static int lg_arrivals_next_drained(lg_arrivals_t *a, double t,
    long inflight);
static double lg_arrivals_next(const lg_arrivals_t *a);


int
lg_arrivals_start(lg_arrivals_t *a, const lg_config_t *cf, uint64_t *rng,
    double t)
{
    long  n, most = 1;
    int   i;

    a->cf = cf;
    a->rng = rng;
    a->stage = 0;
    a->stage_start = a->stage_end = a->next_send = 0;
    a->stage_sent = 0;
    a->at = NULL;
    a->n_at = a->tick = 0;
    if (cf->mode == LG_MODE_IP_V02) {
        for (i = 0; i < cf->nstages; i++) {
            n = lg_iptimer_count(cf->stages[i].rate, cf->stages[i].duration);
            most = n > most ? n : most;
        }
        a->at = malloc(most * sizeof(double));
        if (a->at == NULL) {
            return -1;
        }
    }
    lg_arrivals_begin(a, t);
    return 0;
}


void
lg_arrivals_free(lg_arrivals_t *a)
{
    free(a->at);
    a->at = NULL;
}


int
lg_arrivals_due(const lg_arrivals_t *a, double t, long inflight, double *at)
{
    const lg_stage_t  *st = &a->cf->stages[a->stage];

    if (a->cf->mode == LG_MODE_IP_V02) {
        if (a->stage_sent >= a->n_at) {
            return 0;
        }
        *at = a->at[a->stage_sent];
        return *at <= t;
    }
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
    if (a->cf->mode == LG_MODE_IP_V02) {
        /* the looks up to the last arrival all found it unfinished (one
         * on it too: a rounding error must not make that one the end) */
        while (a->stage_sent == a->n_at
               && lg_arrivals_tick(a) <= a->at[a->n_at - 1] + 1e-9)
        {
            a->tick++;
        }
        return;
    }
    if (a->cf->stages[a->stage].concurrency == 0) {
        a->next_send = lg_arrivals_next(a);
    }
}


int
lg_arrivals_next_stage(lg_arrivals_t *a, double t, long inflight)
{
    const lg_stage_t  *st = &a->cf->stages[a->stage];

    if (a->cf->mode == LG_MODE_IP_V02) {
        return lg_arrivals_next_drained(a, t, inflight);
    }
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
    if (a->cf->mode == LG_MODE_IP_V02) {
        return a->stage_sent < a->n_at ? a->at[a->stage_sent]
                                       : lg_arrivals_tick(a);
    }
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
    if (a->cf->mode == LG_MODE_IP_V02) {
        lg_arrivals_begin_drained(a, t);
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


static void
lg_arrivals_begin_drained(lg_arrivals_t *a, double t)
{
    const lg_stage_t  *st = &a->cf->stages[a->stage];
    double             scale = a->cf->time_scale, first;
    long               i;

    a->stage_start = t;
    a->stage_sent = 0;
    a->tick = 0;
    a->n_at = lg_iptimer_count(st->rate, st->duration);
    if (a->cf->load == LG_LOAD_POISSON) {
        lg_iptimer_poisson(st->rate, a->rng, a->at, a->n_at);
    } else {
        lg_iptimer_constant(st->rate, st->duration, a->rng, a->at, a->n_at);
    }
    first = t + LG_IP_START_DELAY / scale;
    for (i = 0; i < a->n_at; i++) {
        a->at[i] = first + a->at[i] / scale;
    }
    a->stage_end = a->n_at ? a->at[a->n_at - 1] : t;
    a->next_send = a->n_at ? a->at[0] : t;
}


/* The stage's next look for its end. */
static double
lg_arrivals_tick(const lg_arrivals_t *a)
{
    return a->stage_start + a->tick * LG_IP_POLL / a->cf->time_scale;
}


static int
lg_arrivals_next_drained(lg_arrivals_t *a, double t, long inflight)
{
    double  end;

    if (a->stage_sent < a->n_at) {
        return 0;
    }
    /* once all are sent, what is in flight only decreases: a look that
     * finds some finds some at every earlier look too */
    while (lg_arrivals_tick(a) <= t) {
        if (inflight == 0) {
            end = lg_arrivals_tick(a);
            a->stage++;
            lg_arrivals_begin(a, end + a->cf->stage_interval
                                       / a->cf->time_scale);
            return 1;
        }
        a->tick++;
    }
    return 0;
}


/* The arrival after next_send, stage_sent requests into the stage. */
static double
lg_arrivals_next(const lg_arrivals_t *a)
{
    double  rate = a->cf->stages[a->stage].rate * a->cf->time_scale;
    long    n = a->stage_sent, burst = a->cf->prompts_per_group;

    if (a->cf->group_bursts && burst > 1) {
        /* a burst's siblings at one instant; bursts at rate / burst */
        if (n % burst != 0) {
            return a->next_send;
        }
        rate /= (double) burst;
        n /= burst;
    }

    if (a->cf->load == LG_LOAD_POISSON) {
        return a->next_send - log(lg_rng_uniform(a->rng)) / rate;
    }
    return a->stage_start + (double) n / rate;
}
