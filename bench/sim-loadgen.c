/*
 * sim-loadgen: a closed-loop streaming client for bench/sim.sh.  Keeps C
 * keep-alive connections spread over the ports PORT..PORT+PODS-1, each
 * sending one streamed /v1/completions request after another, and counts
 * the token chunks received (one "finish_reason" key per token chunk) for
 * the given number of seconds.  One thread, epoll, no parsing beyond that.
 *
 *   sim-loadgen PORT PODS CONNS SECONDS MAX_TOKENS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>


#define LG_BUF  65536

typedef struct {
    int     fd;
    int     port;
    char    buf[LG_BUF];
    size_t  len;
} lg_conn_t;

static char    lg_req[1024];
static size_t  lg_req_len;


static double
lg_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}


static int
lg_connect(lg_conn_t *c, int ep)
{
    struct sockaddr_in  sin;
    struct epoll_event  ev;
    int                 one = 1;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) c->port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *) &sin, sizeof(sin))) {
        perror("sim-loadgen: connect");
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    ev.events = EPOLLIN;
    ev.data.ptr = c;
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}


static int
lg_send(lg_conn_t *c)
{
    return write(c->fd, lg_req, lg_req_len) == (ssize_t) lg_req_len ? 0 : -1;
}


int
main(int argc, char **argv)
{
    static const char   done[] = "[DONE]\n\n\r\n0\r\n\r\n";
    static const char   tok[] = "\"finish_reason\"";
    struct epoll_event  evs[256];
    lg_conn_t          *conns, *c;
    unsigned long long  tokens = 0, requests = 0;
    double              start, end, secs;
    char                body[512], *p, *scan;
    int                 port, pods, nconn, max_tokens, ep, i, n;
    ssize_t             r;

    if (argc != 6) {
        fprintf(stderr, "usage: sim-loadgen PORT PODS CONNS SECONDS "
                "MAX_TOKENS\n");
        return 2;
    }

    port = atoi(argv[1]);
    pods = atoi(argv[2]);
    nconn = atoi(argv[3]);
    secs = atof(argv[4]);
    max_tokens = atoi(argv[5]);
    if (port <= 0 || pods <= 0 || nconn <= 0 || secs <= 0
        || max_tokens <= 0)
    {
        fprintf(stderr, "sim-loadgen: bad arguments\n");
        return 2;
    }

    snprintf(body, sizeof(body), "{\"prompt\":\"The simulator streams "
             "tokens to many clients at once.\",\"max_tokens\":%d,"
             "\"ignore_eos\":true,\"stream\":true}", max_tokens);
    lg_req_len = (size_t) snprintf(lg_req, sizeof(lg_req),
                                   "POST /v1/completions HTTP/1.1\r\n"
                                   "Host: 127.0.0.1\r\n"
                                   "Content-Type: application/json\r\n"
                                   "Content-Length: %zu\r\n\r\n%s",
                                   strlen(body), body);

    ep = epoll_create1(0);
    conns = calloc((size_t) nconn, sizeof(lg_conn_t));
    if (ep < 0 || conns == NULL) {
        return 1;
    }

    for (i = 0; i < nconn; i++) {
        conns[i].port = port + i % pods;
        if (lg_connect(&conns[i], ep) != 0 || lg_send(&conns[i]) != 0) {
            return 1;
        }
    }

    start = lg_now();
    end = start + secs;

    while (lg_now() < end) {
        n = epoll_wait(ep, evs, 256, 100);
        for (i = 0; i < n; i++) {
            c = evs[i].data.ptr;
            r = read(c->fd, c->buf + c->len, LG_BUF - 1 - c->len);
            if (r <= 0) {
                fprintf(stderr, "sim-loadgen: connection lost\n");
                return 1;
            }
            c->len += (size_t) r;
            c->buf[c->len] = '\0';

            for (scan = c->buf; (p = strstr(scan, tok)) != NULL;
                 scan = p + sizeof(tok) - 1)
            {
                tokens++;
            }

            p = strstr(c->buf, done);
            if (p) {
                requests++;
                c->len = 0;
                if (lg_send(c) != 0) {
                    return 1;
                }
                continue;
            }

            /* keep a tail that may hold the start of a split pattern */
            if (c->len > 32) {
                memmove(c->buf, c->buf + c->len - 32, 32);
                c->len = 32;
                c->buf[32] = '\0';
                /* the kept tail was counted already if it held a token */
                if (strstr(c->buf, tok)) {
                    tokens--;
                }
            }
        }
    }

    secs = lg_now() - start;
    printf("tokens %llu requests %llu seconds %.2f tokens_per_s %.0f\n",
           tokens, requests, secs, tokens / secs);
    return 0;
}
