/*
 * llmd-stamp-server: a test server that records when each HTTP request
 * arrived, taking the kernel's receive timestamp of its first bytes
 * (SO_TIMESTAMPNS) rather than reading the clock when the server gets to
 * run.  On a loaded machine a server may read its socket milliseconds
 * late; the kernel stamps the segment when the loopback delivers it, that
 * is when the client sent it.  t/070-loadgen.t checks llmd-loadgen's
 * arrival process with it.
 *
 *   llmd-stamp-server LOG [SECONDS]
 *
 * Accepts on the listening socket passed as descriptor 0 (turning on
 * receive timestamps there, which the accepted sockets inherit, before it
 * creates LOG: a caller waits for LOG to exist), writes one line
 * per request to LOG (wall-clock seconds, 6 decimals, in the order the
 * requests completed), answers each with a one-token SSE stream on a
 * keep-alive connection, and exits after SECONDS (default 60) or on
 * SIGTERM.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define BUF_SIZE (256 * 1024)

typedef struct {
    int fd;
    size_t len;
    int have_first;             /* first bytes of a request seen */
    struct timespec first;      /* their receive time */
    struct timespec last;       /* receive time of the last read */
    char *buf;
} conn_t;

static volatile sig_atomic_t stop_requested;

static void
on_term(int sig)
{
    (void) sig;
    stop_requested = 1;
}

static const char reply_body[] =
    "data: {\"choices\":[{\"index\":0,\"text\":\" w\"}]}\n\n";

static char reply[512];
static size_t reply_len;

static void
build_reply(void)
{
    int n;

    n = snprintf(reply, sizeof(reply),
                 "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n"
                 "%zx\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n",
                 sizeof(reply_body) - 1, reply_body,
                 14, "data: [DONE]\n\n");
    reply_len = (size_t) n;
}

/* The Content-Length of the header block buf[0 .. hlen), 0 if none. */
static size_t
content_length(const char *buf, size_t hlen)
{
    const char *p = buf, *end = buf + hlen, *nl;
    static const char name[] = "content-length:";

    while (p < end) {
        nl = memchr(p, '\n', (size_t) (end - p));
        if (nl == NULL) {
            nl = end;
        }
        if ((size_t) (nl - p) > sizeof(name) - 1
            && strncasecmp(p, name, sizeof(name) - 1) == 0)
        {
            return strtoul(p + sizeof(name) - 1, NULL, 10);
        }
        p = nl + 1;
    }
    return 0;
}

/* Reads what is there; returns 0 at EOF or on error. */
static int
read_conn(conn_t *c)
{
    char cbuf[CMSG_SPACE(sizeof(struct timespec))];
    struct msghdr msg;
    struct iovec iov;
    struct cmsghdr *cm;
    struct timespec ts;
    ssize_t n;
    int stamped = 0;

    if (c->len == BUF_SIZE) {
        return 0;               /* a request larger than the test sends */
    }
    iov.iov_base = c->buf + c->len;
    iov.iov_len = BUF_SIZE - c->len;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof(cbuf);

    n = recvmsg(c->fd, &msg, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return 1;
    }
    if (n <= 0) {
        return 0;
    }
    for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            stamped = 1;
        }
    }
    if (!stamped) {
        clock_gettime(CLOCK_REALTIME, &ts);
    }
    c->last = ts;
    if (!c->have_first) {
        c->have_first = 1;
        c->first = ts;
    }
    c->len += (size_t) n;
    return 1;
}

/* Answers every complete request in the buffer; returns 0 on error. */
static int
serve_conn(conn_t *c, FILE *log)
{
    char *h;
    size_t hlen, total;

    for ( ;; ) {
        h = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (h == NULL) {
            return 1;
        }
        hlen = (size_t) (h - c->buf);
        total = hlen + 4 + content_length(c->buf, hlen);
        if (c->len < total) {
            return 1;
        }
        fprintf(log, "%ld.%06ld\n", (long) c->first.tv_sec,
                c->first.tv_nsec / 1000);
        fflush(log);
        memmove(c->buf, c->buf + total, c->len - total);
        c->len -= total;
        /* bytes of the next request came with the last read */
        c->have_first = c->len > 0;
        c->first = c->last;
        if (write(c->fd, reply, reply_len) != (ssize_t) reply_len) {
            return 0;
        }
    }
}

int
main(int argc, char **argv)
{
    static conn_t conns[MAX_CONNS];
    struct pollfd pfd[MAX_CONNS + 1];
    struct sigaction sa;
    struct timespec now;
    FILE *log;
    double end;
    int nconns = 0, i, fd, one = 1, secs;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s LOG [SECONDS] (listening socket on fd 0)\n",
                argv[0]);
        return 2;
    }
    secs = argc == 3 ? atoi(argv[2]) : 60;
    if (setsockopt(0, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) != 0) {
        perror("SO_TIMESTAMPNS on descriptor 0");
        return 1;
    }
    log = fopen(argv[1], "w");
    if (log == NULL) {
        perror(argv[1]);
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    build_reply();
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);

    clock_gettime(CLOCK_MONOTONIC, &now);
    end = now.tv_sec + now.tv_nsec / 1e9 + secs;

    while (!stop_requested) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec + now.tv_nsec / 1e9 >= end) {
            break;
        }
        pfd[0].fd = 0;
        pfd[0].events = POLLIN;
        for (i = 0; i < nconns; i++) {
            pfd[i + 1].fd = conns[i].fd;
            pfd[i + 1].events = POLLIN;
        }
        if (poll(pfd, (nfds_t) nconns + 1, 500) < 0) {
            if (errno == EINTR) {
                continue;
            }
            perror("poll");
            return 1;
        }
        for (i = nconns - 1; i >= 0; i--) {
            if (pfd[i + 1].revents == 0) {
                continue;
            }
            if (!read_conn(&conns[i]) || !serve_conn(&conns[i], log)) {
                close(conns[i].fd);
                free(conns[i].buf);
                conns[i] = conns[--nconns];
            }
        }
        if (pfd[0].revents & POLLIN) {
            while (nconns < MAX_CONNS
                   && (fd = accept4(0, NULL, NULL, SOCK_NONBLOCK)) >= 0)
            {
                conns[nconns].fd = fd;
                conns[nconns].len = 0;
                conns[nconns].have_first = 0;
                conns[nconns].buf = malloc(BUF_SIZE);
                if (conns[nconns].buf == NULL) {
                    close(fd);
                    break;
                }
                nconns++;
            }
        }
    }
    for (i = 0; i < nconns; i++) {
        close(conns[i].fd);
        free(conns[i].buf);
    }
    fclose(log);
    return 0;
}
