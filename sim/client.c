/*
 * A small HTTP/1.1 client on the loop's epoll, for the decode pod's
 * sidecar (pd.c): one POST per connection (Connection: close), a
 * non-blocking connect, deadlines for connecting and for the whole
 * exchange, and a response body delimited by Content-Length or by the
 * close.  Every outcome, an immediate failure included, reaches the
 * caller's callback from the loop, never from inside sim_client_post().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "sim.h"


struct sim_client_s {
    sim_handle_t         h;
    sim_client_t        *prev, *next;       /* every exchange, for timers */
    int                  fd;
    int                  connected;
    const char          *err;               /* failed before the loop saw it */
    sim_buf_t            out;
    size_t               out_off;
    sim_buf_t            in;
    size_t               head_len;          /* 0 until the head is in */
    long long            content_length;    /* -1: until the close */
    int                  status;
    int64_t              connect_deadline_ns;
    int64_t              deadline_ns;
    sim_client_done_pt   done;
    void                *ctx;
};


static void sim_client_finish(sim_client_t *cl, int status, const char *err);
static int sim_client_open(sim_client_t *cl, const char *src,
    const char *host, int port);
static void sim_client_write(sim_client_t *cl);
static void sim_client_read(sim_client_t *cl);
static int sim_client_head(sim_client_t *cl);


static sim_client_t  *sim_clients;


sim_client_t *
sim_client_post(const char *src, const char *host, int port,
    const char *path, const char *headers, const char *body, size_t len,
    int connect_ms, int timeout_ms, sim_client_done_pt done, void *ctx)
{
    sim_client_t  *cl;
    int64_t        now = sim_now_ns();

    cl = calloc(1, sizeof(sim_client_t));
    if (cl == NULL) {
        return NULL;
    }

    cl->h.tag = SIM_TAG_CLIENT;
    cl->h.obj = cl;
    cl->fd = -1;
    cl->content_length = -1;
    cl->done = done;
    cl->ctx = ctx;
    cl->connect_deadline_ns = now + (int64_t) connect_ms * 1000000;
    cl->deadline_ns = now + (int64_t) timeout_ms * 1000000;

    if (sim_buf_printf(&cl->out, "POST %s HTTP/1.1\r\nHost: %s:%d\r\n"
                       "Content-Type: application/json\r\n"
                       "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
                       path, host, port, len, headers ? headers : "") != 0
        || sim_buf_append(&cl->out, body, len) != 0)
    {
        sim_buf_free(&cl->out);
        free(cl);
        return NULL;
    }

    cl->next = sim_clients;
    if (sim_clients) {
        sim_clients->prev = cl;
    }
    sim_clients = cl;

    if (sim_client_open(cl, src, host, port) != 0) {
        /* reported at once by the timers, from the loop */
        cl->err = strerror(errno);
        cl->deadline_ns = now;
    }

    return cl;
}


static int
sim_client_open(sim_client_t *cl, const char *src, const char *host,
    int port)
{
    struct epoll_event  ev;
    struct sockaddr_in  sin;
    int                 one = 1;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }

    cl->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (cl->fd < 0) {
        return -1;
    }

    setsockopt(cl->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    if (src) {
        /* leave from the pod's own address, as a pod's connection does */
        if (inet_pton(AF_INET, src, &sin.sin_addr) != 1
            || bind(cl->fd, (struct sockaddr *) &sin, sizeof(sin)) != 0)
        {
            return -1;
        }
        inet_pton(AF_INET, host, &sin.sin_addr);
    }

    sin.sin_port = htons((uint16_t) port);
    if (connect(cl->fd, (struct sockaddr *) &sin, sizeof(sin)) != 0
        && errno != EINPROGRESS)
    {
        return -1;
    }

    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = &cl->h;
    return epoll_ctl(sim_http_epoll_fd(), EPOLL_CTL_ADD, cl->fd, &ev);
}


void
sim_client_event(sim_client_t *cl, uint32_t events)
{
    socklen_t  len = sizeof(int);
    int        err = 0;

    if (!cl->connected) {
        if (getsockopt(cl->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
            err = errno;
        }
        if (err) {
            sim_client_finish(cl, 0, strerror(err));
            return;
        }
        if (!(events & EPOLLOUT)) {
            return;
        }
        cl->connected = 1;
    }

    if (cl->out_off < cl->out.len) {
        sim_client_write(cl);
        return;                 /* the answer's EPOLLIN comes after */
    }

    sim_client_read(cl);
}


static void
sim_client_write(sim_client_t *cl)
{
    int  rc;

    rc = sim_buf_write(cl->fd, &cl->out, &cl->out_off);
    if (rc > 0) {
        return;                 /* EPOLLOUT (edge) resumes */
    }
    if (rc < 0) {
        sim_client_finish(cl, 0, "write failed");
        return;
    }

    /* an answer that came early waits in the socket: edge-triggered */
    sim_client_read(cl);
}


/* Reads until EAGAIN; finishes when the whole answer is in. */
static void
sim_client_read(sim_client_t *cl)
{
    ssize_t  n;
    int      rc;

    for ( ;; ) {
        if (sim_buf_reserve(&cl->in, 16384 + 1) != 0) {
            sim_client_finish(cl, 0, "out of memory");
            return;
        }

        n = read(cl->fd, cl->in.data + cl->in.len,
                 cl->in.cap - cl->in.len - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            return;
        }
        if (n < 0) {
            sim_client_finish(cl, 0, strerror(errno));
            return;
        }

        cl->in.len += (size_t) n;
        cl->in.data[cl->in.len] = '\0';

        if (cl->head_len == 0) {
            rc = sim_client_head(cl);
            if (rc < 0) {
                sim_client_finish(cl, 0, "malformed HTTP response");
                return;
            }
        }

        if (cl->head_len && cl->content_length >= 0
            && cl->in.len - cl->head_len >= (size_t) cl->content_length)
        {
            cl->in.len = cl->head_len + (size_t) cl->content_length;
            sim_client_finish(cl, cl->status, NULL);
            return;
        }

        if (n == 0) {
            /* the close ends a body without Content-Length */
            if (cl->head_len && cl->content_length < 0) {
                sim_client_finish(cl, cl->status, NULL);
            } else {
                sim_client_finish(cl, 0, "connection closed early");
            }
            return;
        }

        if (cl->in.len > SIM_MAX_BODY + SIM_MAX_HEADER) {
            sim_client_finish(cl, 0, "response too large");
            return;
        }
    }
}


/* Parses the status line and headers: 0 (more to come), 1, or -1. */
static int
sim_client_head(sim_client_t *cl)
{
    char        *end, *line, *eol, *e;
    const char  *name = "content-length:";

    end = memmem(cl->in.data, cl->in.len, "\r\n\r\n", 4);
    if (end == NULL) {
        return cl->in.len > SIM_MAX_HEADER ? -1 : 0;
    }

    if (strncmp(cl->in.data, "HTTP/1.", 7) != 0
        || cl->in.len < 12 || cl->in.data[8] != ' ')
    {
        return -1;
    }

    cl->status = (int) strtol(cl->in.data + 9, &e, 10);
    if (e != cl->in.data + 12 || cl->status < 100) {
        return -1;
    }

    for (line = strstr(cl->in.data, "\r\n") + 2; line < end;
         line = eol + 2)
    {
        eol = strstr(line, "\r\n");

        if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
            return -1;          /* not needed: vLLM answers with a length */
        }

        if (strncasecmp(line, name, strlen(name)) == 0) {
            cl->content_length = strtoll(line + strlen(name), &e, 10);
            if (cl->content_length < 0 || cl->content_length > SIM_MAX_BODY)
            {
                return -1;
            }
        }
    }

    cl->head_len = (size_t) (end - cl->in.data) + 4;
    return 1;
}


static void
sim_client_finish(sim_client_t *cl, int status, const char *err)
{
    const char  *body = "";
    size_t       len = 0;

    if (cl->prev) {
        cl->prev->next = cl->next;
    } else {
        sim_clients = cl->next;
    }
    if (cl->next) {
        cl->next->prev = cl->prev;
    }

    if (cl->fd >= 0) {
        close(cl->fd);              /* also leaves the epoll set */
    }

    if (status && cl->in.data) {
        body = cl->in.data + cl->head_len;
        len = cl->in.len - cl->head_len;
    }

    cl->done(cl->ctx, status, body, len, err);

    sim_buf_free(&cl->in);
    sim_buf_free(&cl->out);
    free(cl);
}


static int64_t
sim_client_deadline(const sim_client_t *cl)
{
    if (!cl->connected && cl->connect_deadline_ns < cl->deadline_ns) {
        return cl->connect_deadline_ns;
    }
    return cl->deadline_ns;
}


int64_t
sim_client_next_timer(void)
{
    sim_client_t  *cl;
    int64_t        t = 0, d;

    for (cl = sim_clients; cl; cl = cl->next) {
        d = sim_client_deadline(cl);
        if (t == 0 || d < t) {
            t = d;
        }
    }

    return t;
}


void
sim_client_run_timers(int64_t now)
{
    sim_client_t  *cl, *next;

    /* a callback may start exchanges: they go to the head, not seen here */
    for (cl = sim_clients; cl; cl = next) {
        next = cl->next;
        if (sim_client_deadline(cl) <= now) {
            sim_client_finish(cl, 0, cl->err ? cl->err
                                     : cl->connected ? "timed out"
                                     : "connect timed out");
        }
    }
}
