/*
 * llmd-bench-kv-drain: a subscriber that reads the simulated pods' KV
 * events and throws them away.
 *
 *   llmd-bench-kv-drain ENDPOINT [MAX_SECONDS]
 *
 * The simulator's pods always publish KV events (--kv-events), but only an
 * experiment with `llmd_kv_events` has a subscriber; without one, libzmq
 * drops the events at the pods' PUB sockets and the simulator's I/O thread
 * writes nothing.  On a shared machine that makes the precise experiments'
 * pods do more work than the others' (docs/benchmark.md, "Issue 15,
 * sixteenth session").  bench/scheduling.sh binds this drain at the KV
 * port for every experiment without a subscriber of its own, so every
 * experiment's pods write the same events to a socket.
 *
 * Binds ENDPOINT (tcp://127.x.x.x:PORT only), subscribes to every topic,
 * reads until SIGTERM or SIGINT, MAX_SECONDS (default 7200) or its parent's
 * exit, and prints "messages M frames F bytes B" to stdout then; SIGUSR1
 * prints the same line while it runs.  Exit 0, 1 when the endpoint cannot
 * be bound, 2 on bad arguments.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>

#include <zmq.h>

#include "kv_bench_util.h"

/* how long one receive waits: the stop flag and the deadline are checked
   this often */
#define POLL_MS  100


static volatile sig_atomic_t  stop;
static volatile sig_atomic_t  report;


static void
on_stop(int sig)
{
    (void) sig;
    stop = 1;
}


static void
on_report(int sig)
{
    (void) sig;
    report = 1;
}


static void
print_counts(unsigned long long msgs, unsigned long long frames,
    unsigned long long bytes)
{
    printf("messages %llu frames %llu bytes %llu\n", msgs, frames, bytes);
    fflush(stdout);
}


int
main(int argc, char **argv)
{
    int                  rc, more, timeout = POLL_MS, linger = 0;
    char                *end;
    void                *ctx, *sock;
    size_t               more_len;
    double               max_seconds = 7200, deadline;
    zmq_msg_t            msg;
    struct sigaction     sa;
    unsigned long long   msgs = 0, frames = 0, bytes = 0;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s ENDPOINT [MAX_SECONDS]\n", argv[0]);
        return 2;
    }
    if (strncmp(argv[1], "tcp://127.", 10) != 0) {
        fprintf(stderr, "llmd-bench-kv-drain: endpoint \"%s\" is not "
                "tcp://127.x.x.x:PORT (loopback only)\n", argv[1]);
        return 2;
    }
    if (argc == 3) {
        errno = 0;
        max_seconds = strtod(argv[2], &end);
        if (errno || end == argv[2] || *end || !(max_seconds > 0)
            || !isfinite(max_seconds))
        {
            fprintf(stderr, "llmd-bench-kv-drain: MAX_SECONDS \"%s\" is "
                    "not a positive finite number\n", argv[2]);
            return 2;
        }
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_report;
    sigaction(SIGUSR1, &sa, NULL);
    /* a benchmark killed without its cleanup leaves no drain behind */
    prctl(PR_SET_PDEATHSIG, SIGTERM);

    ctx = zmq_ctx_new();
    sock = ctx ? zmq_socket(ctx, ZMQ_SUB) : NULL;
    if (sock == NULL) {
        fprintf(stderr, "llmd-bench-kv-drain: zmq: %s\n",
                zmq_strerror(zmq_errno()));
        return 1;
    }
    zmq_setsockopt(sock, ZMQ_SUBSCRIBE, "", 0);
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_bind(sock, argv[1]) != 0) {
        fprintf(stderr, "llmd-bench-kv-drain: bind %s: %s\n", argv[1],
                zmq_strerror(zmq_errno()));
        zmq_close(sock);
        zmq_ctx_term(ctx);
        return 1;
    }

    deadline = kv_bench_now() + max_seconds;
    zmq_msg_init(&msg);

    while (!stop && kv_bench_now() < deadline) {
        if (report) {
            report = 0;
            print_counts(msgs, frames, bytes);
        }
        rc = zmq_msg_recv(&msg, sock, 0);
        if (rc < 0) {
            if (zmq_errno() == EAGAIN || zmq_errno() == EINTR) {
                continue;
            }
            fprintf(stderr, "llmd-bench-kv-drain: recv: %s\n",
                    zmq_strerror(zmq_errno()));
            break;
        }
        frames++;
        bytes += (unsigned long long) rc;
        more = 0;
        more_len = sizeof(more);
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &more_len);
        if (!more) {
            msgs++;
        }
    }

    zmq_msg_close(&msg);
    print_counts(msgs, frames, bytes);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    return 0;
}
