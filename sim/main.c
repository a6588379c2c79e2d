/*
 * vllm-sim: the command line and the event loop.  One thread, one epoll
 * set for every pod's listener, connections and replay socket, and one
 * timerfd armed at the earliest deadline (engine step ends, KV pulls,
 * delayed /metrics answers, the sidecar's prefill legs, pod stops and
 * restarts).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include "sim.h"


static void
sim_arm(int tfd, int64_t when, int64_t *armed)
{
    struct itimerspec  its;

    if (when == *armed) {
        return;
    }

    memset(&its, 0, sizeof(its));
    if (when > 0) {
        its.it_value.tv_sec = when / SIM_NS;
        its.it_value.tv_nsec = when % SIM_NS;
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) {
            its.it_value.tv_nsec = 1;
        }
    }

    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    *armed = when;
}


static int64_t
sim_min(int64_t a, int64_t b)
{
    if (a == 0) {
        return b;
    }
    return (b != 0 && b < a) ? b : a;
}


/* The earliest deadline of the timers and the pods (0: none). */
static int64_t
sim_next_due(void)
{
    sim_pod_t  *pod;
    int64_t     next;
    int         i;

    next = sim_min(sim_http_next_timer(), sim_client_next_timer());
    for (i = 0; i < sim_npods; i++) {
        pod = &sim_pods[i];
        if (pod->up && pod->eng.busy) {
            next = sim_min(next, pod->eng.step_end_ns);
        }
        if (pod->up && pod->eng.loading.n) {
            next = sim_min(next, pod->eng.pull_due_ns);
        }
        if (pod->up && pod->eng.arriving.head) {
            next = sim_min(next, pod->eng.arriving.head->ready_ns);
        }
        next = sim_min(next, pod->faults.stop_at_ns);
        next = sim_min(next, pod->faults.restart_at_ns);
    }

    return next;
}


/*
 * Runs what is due by now: with all, the timers (which may stop pods and
 * close connections: only between batches of events), then the engines'
 * arrivals, KV pulls and the steps that ended.
 */
static void
sim_run_due(int64_t now, int all)
{
    sim_pod_t  *pod;
    int         i;

    if (all) {
        sim_http_run_timers(now);
        sim_client_run_timers(now);
    }

    for (i = 0; i < sim_npods; i++) {
        pod = &sim_pods[i];
        if (all) {
            sim_pod_timers(pod, now);
        }
        if (pod->up && pod->eng.loading.n && now >= pod->eng.pull_due_ns) {
            sim_engine_pulls(pod, now);
        }
        if (pod->up && pod->eng.arriving.head
            && now >= pod->eng.arriving.head->ready_ns)
        {
            sim_engine_arrivals(pod, now);
        }
        if (pod->up && pod->eng.busy && now >= pod->eng.step_end_ns) {
            sim_engine_tick(pod, now);
        }
    }
}


int
main(int argc, char **argv)
{
    static sim_config_t  cf;
    static const sim_http_handlers_t  handlers = {
        sim_pod_route, sim_openai_bad_request
    };
    struct epoll_event   evs[256], ev;
    sim_handle_t         th = { SIM_TAG_TIMER, NULL };
    sim_handle_t         sh = { SIM_TAG_SIGNAL, NULL };
    sim_handle_t        *h;
    sim_pod_t           *pod;
    sim_buf_t            where = { NULL, 0, 0 };
    sigset_t             mask;
    uint64_t             exp;
    int64_t              next, armed = -1;
    char                 err[512];
    int                  ep, tfd, sfd, n, i, running;

    if (sim_config_parse(&cf, argc, argv) != 0) {
        return 2;
    }
    sim_log_quiet = cf.quiet;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    if (sim_tok_init(&cf, err, sizeof(err)) != 0) {
        fprintf(stderr, "vllm-sim: tokenizer: %s\n", err);
        return 1;
    }

    if (sim_chat_init(cf.tokenizer_config, err, sizeof(err)) != 0) {
        fprintf(stderr, "vllm-sim: chat template: %s\n", err);
        return 1;
    }

    if (sim_http_loop_init(&handlers) != 0) {
        perror("vllm-sim: epoll_create1");
        return 1;
    }
    ep = sim_http_epoll_fd();

    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (tfd < 0 || sfd < 0) {
        perror("vllm-sim: timerfd/signalfd");
        return 1;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = &th;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    ev.data.ptr = &sh;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

    sim_pods = calloc((size_t) cf.pods, sizeof(sim_pod_t));
    if (sim_pods == NULL) {
        return 1;
    }
    sim_npods = cf.pods;

    for (i = 0; i < cf.pods; i++) {
        if (sim_pod_init(&sim_pods[i], &cf, i, err, sizeof(err)) != 0
            || sim_pod_start(&sim_pods[i], err, sizeof(err)) != 0)
        {
            fprintf(stderr, "vllm-sim: pod %d: %s\n", i, err);
            return 1;
        }
    }

    if (cf.nhosts) {
        for (i = 0; i < cf.nhosts; i++) {
            sim_buf_printf(&where, "%s%s", i ? "," : "{", cf.hosts[i]);
        }
        sim_buf_printf(&where, "}:%d", cf.port);
    } else if (cf.pods > 1) {
        sim_buf_printf(&where, "%s:%d..%d", cf.host, cf.port,
                       cf.port + cf.pods - 1);
    } else {
        sim_buf_printf(&where, "%s:%d", cf.host, cf.port);
    }
    sim_log("%d pod%s on http://%s, model %s, %u blocks of %d, "
            "tokenizer %s, chat template %s, time scale %g", cf.pods,
            cf.pods > 1 ? "s" : "", where.data ? where.data : "", cf.model,
            cf.num_blocks, cf.block_size,
            sim_tok_is_real() ? cf.tokenizer : "fallback",
            sim_chat_template_name(), cf.time_scale);
    if (cf.step_model == SIM_STEP_PHYSICAL) {
        sim_log("physical step model%s%s: %g params, %g weight bytes, "
                "%g KV bytes per token, TP %d, %g TB/s x %g, "
                "%g TFLOP/s x %g, overhead %g us",
                cf.profile ? " " : "", cf.profile ? cf.profile : "",
                cf.params, cf.weight_bytes, cf.kv_bytes_per_token, cf.tp,
                cf.hbm_tbps, cf.mem_eff, cf.peak_tflops, cf.mfu,
                cf.overhead_us);
    }
    /* with P/D roles: each pod's and the transfer model */
    where.len = 0;
    for (i = 0; i < cf.pods; i++) {
        sim_buf_printf(&where, "%s%s", i ? "," : "",
                       sim_role_name((sim_role_t) cf.roles[i]));
    }
    if (strspn(where.data, "both,") != where.len) {
        sim_log("P/D roles %s; KV pulls of %g bytes per token at %g Gbit/s, "
                "prefill legs %s on failure", where.data,
                cf.kv_bytes_per_token, cf.kv_transfer_gbps,
                cf.pd_fallback ? "prefilled locally" : "passed to the client");
    }
    sim_buf_free(&where);

    running = 1;

    while (running) {
        next = sim_next_due();
        sim_arm(tfd, next, &armed);

        n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno != EINTR) {
            perror("vllm-sim: epoll_wait");
            break;
        }

        for (i = 0; i < n; i++) {
            h = evs[i].data.ptr;

            switch (h->tag) {
            case SIM_TAG_LISTEN:
                sim_http_accept(h->obj);
                break;
            case SIM_TAG_CONN:
                sim_http_event(h->obj, evs[i].events);
                break;
            case SIM_TAG_CLIENT:
                sim_client_event(h->obj, evs[i].events);
                break;
            case SIM_TAG_REPLAY:
                sim_pub_replay_poll(((sim_pod_t *) h->obj)->pub);
                break;
            case SIM_TAG_TIMER:
                if (read(tfd, &exp, sizeof(exp)) < 0) {
                    /* spurious: the deadlines below are checked anyway */
                }
                armed = -1;
                break;
            case SIM_TAG_SIGNAL:
                running = 0;
                break;
            }

            /*
             * A batch of events (a burst of requests to tokenize) must not
             * hold up the steps that end meanwhile: every step ended late
             * is time its pod's clients see late.
             */
            if (next && sim_now_ns() >= next) {
                sim_run_due(sim_now_ns(), 0);
                next = sim_next_due();
            }
        }

        sim_run_due(sim_now_ns(), 1);
        for (i = 0; i < sim_npods; i++) {
            pod = &sim_pods[i];
            if (pod->up) {
                /* ZMQ_FD is edge-like: poll the replay sockets every turn */
                sim_pub_replay_poll(pod->pub);
            }
        }

        sim_http_run_todo();
    }

    for (i = 0; i < sim_npods; i++) {
        sim_pod_stop(&sim_pods[i]);
    }
    sim_http_run_todo();
    sim_events_global_done();
    sim_log("stopped");
    return 0;
}
