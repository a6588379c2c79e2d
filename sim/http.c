/*
 * A small HTTP/1.1 server on one edge-triggered epoll: keep-alive,
 * pipelining, Content-Length bodies, 100-continue, and chunked responses for
 * SSE streams.  Work that must not run inside a caller (closing a
 * connection, the next pipelined request, coalesced writes of one engine
 * step) goes through a to-do list drained once per loop turn.
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


#define SIM_MAX_DELAYED  4096

static int                   sim_ep = -1;
static sim_http_handlers_t   sim_handlers;
static sim_conn_t           *sim_todo;
static sim_conn_t           *sim_delayed[SIM_MAX_DELAYED];
static int                   sim_ndelayed;


int
sim_http_loop_init(const sim_http_handlers_t *handlers)
{
    sim_handlers = *handlers;
    sim_ep = epoll_create1(EPOLL_CLOEXEC);
    return sim_ep < 0 ? -1 : 0;
}


int
sim_http_epoll_fd(void)
{
    return sim_ep;
}


int
sim_http_listen(const char *host, int port)
{
    struct sockaddr_in  sin;
    int                 fd, one = 1;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t) port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
        errno = EINVAL;
        return -1;
    }

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }

    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));

    if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) != 0
        || listen(fd, 4096) != 0)
    {
        close(fd);
        return -1;
    }

    return fd;
}


static void
sim_todo_add(sim_conn_t *c)
{
    if (!c->in_todo) {
        c->in_todo = 1;
        c->todo_next = sim_todo;
        sim_todo = c;
    }
}


void
sim_http_accept(sim_pod_t *pod)
{
    struct epoll_event  ev;
    sim_conn_t         *c;
    int                 fd, one = 1;

    for ( ;; ) {
        fd = accept4(pod->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }

        c = calloc(1, sizeof(sim_conn_t));
        if (c == NULL) {
            close(fd);
            continue;
        }

        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        c->h.tag = SIM_TAG_CONN;
        c->h.obj = c;
        c->fd = fd;
        c->pod = pod;
        c->next = pod->conns;
        if (pod->conns) {
            pod->conns->prev = c;
        }
        pod->conns = c;

        ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        ev.data.ptr = &c->h;
        if (epoll_ctl(sim_ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            sim_http_close(c);
            continue;
        }

        /* data may have arrived with the connection */
        sim_todo_add(c);
    }
}


void
sim_http_close(sim_conn_t *c)
{
    if (!c->dead) {
        c->dead = 1;
        if (c->fd >= 0) {
            shutdown(c->fd, SHUT_RDWR);
        }
    }
    sim_todo_add(c);
}


static void
sim_conn_free(sim_conn_t *c)
{
    sim_pod_t  *pod = c->pod;
    int         i;

    if (c->sreq) {
        sim_engine_abort(pod, c->sreq);
        c->sreq = NULL;
    }

    if (c->delay_until_ns) {
        for (i = 0; i < sim_ndelayed; i++) {
            if (sim_delayed[i] == c) {
                sim_delayed[i] = sim_delayed[--sim_ndelayed];
                break;
            }
        }
    }

    if (c->prev) {
        c->prev->next = c->next;
    } else {
        pod->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }

    if (c->fd >= 0) {
        close(c->fd);               /* also leaves the epoll set */
    }

    sim_buf_free(&c->in);
    sim_buf_free(&c->out);
    free(c);
}


void
sim_http_flush(sim_conn_t *c)
{
    int  rc;

    if (!c->dead) {
        rc = sim_buf_write(c->fd, &c->out, &c->out_off);
        if (rc > 0) {
            return;                 /* EPOLLOUT (edge) resumes */
        }
        if (rc < 0) {
            sim_http_close(c);
            return;
        }
    }

    if (c->out_off == c->out.len) {
        c->out.len = 0;
        c->out_off = 0;
        if (c->closing && !c->busy) {
            sim_http_close(c);
        }
    }
}


static const char *
sim_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default:  return "Unknown";
    }
}


void
sim_http_respond(sim_conn_t *c, int status, const char *ctype,
    const char *body, size_t len)
{
    if (!c->keepalive) {
        c->closing = 1;
    }

    sim_buf_printf(&c->out, "HTTP/1.1 %d %s\r\nserver: vllm-sim\r\n"
                   "content-type: %s\r\ncontent-length: %zu\r\n"
                   "x-sim-pod: %s\r\n%s\r\n",
                   status, sim_status_text(status), ctype, len,
                   c->pod->name,
                   c->keepalive ? "" : "connection: close\r\n");
    sim_buf_append(&c->out, body, len);
    sim_todo_add(c);
}


void
sim_http_stream_start(sim_conn_t *c, const char *ctype)
{
    c->streaming = 1;
    if (c->http10) {
        /* no chunked encoding in HTTP/1.0: the close ends the body */
        c->keepalive = 0;
        c->closing = 1;
        sim_buf_printf(&c->out, "HTTP/1.1 200 OK\r\nserver: vllm-sim\r\n"
                       "content-type: %s\r\nx-sim-pod: %s\r\n"
                       "connection: close\r\n\r\n", ctype, c->pod->name);
    } else {
        sim_buf_printf(&c->out, "HTTP/1.1 200 OK\r\nserver: vllm-sim\r\n"
                       "content-type: %s\r\ncache-control: no-cache\r\n"
                       "x-sim-pod: %s\r\ntransfer-encoding: chunked\r\n%s\r\n",
                       ctype, c->pod->name,
                       c->keepalive ? "" : "connection: close\r\n");
    }
    sim_todo_add(c);
}


void
sim_http_stream_chunk(sim_conn_t *c, const char *data, size_t len)
{
    if (len == 0) {
        return;
    }

    if (c->http10) {
        sim_buf_append(&c->out, data, len);
    } else {
        sim_buf_printf(&c->out, "%zx\r\n", len);
        sim_buf_append(&c->out, data, len);
        sim_buf_append(&c->out, "\r\n", 2);
    }
    sim_todo_add(c);
}


void
sim_http_stream_end(sim_conn_t *c)
{
    if (!c->http10) {
        sim_buf_append(&c->out, "0\r\n\r\n", 5);
    }
    c->streaming = 0;
    sim_todo_add(c);
}


void
sim_http_done(sim_conn_t *c)
{
    c->busy = 0;
    c->sreq = NULL;
    sim_todo_add(c);
}


int
sim_http_delay(sim_conn_t *c, int64_t until, sim_http_handler_pt due)
{
    if (sim_ndelayed == SIM_MAX_DELAYED) {
        return -1;
    }

    c->busy = 1;
    c->delay_until_ns = until;
    c->delay_due = due;
    sim_delayed[sim_ndelayed++] = c;
    return 0;
}


int64_t
sim_http_next_timer(void)
{
    int64_t  t = 0;
    int      i;

    for (i = 0; i < sim_ndelayed; i++) {
        if (t == 0 || sim_delayed[i]->delay_until_ns < t) {
            t = sim_delayed[i]->delay_until_ns;
        }
    }

    return t;
}


void
sim_http_run_timers(int64_t now)
{
    sim_conn_t  *c;
    int          i;

    for (i = 0; i < sim_ndelayed; /* void */) {
        c = sim_delayed[i];
        if (c->delay_until_ns > now) {
            i++;
            continue;
        }

        sim_delayed[i] = sim_delayed[--sim_ndelayed];
        c->delay_until_ns = 0;
        if (!c->dead) {
            c->busy = 0;
            c->delay_due(c);
        }
    }
}


static int
sim_header_is(const char *line, size_t len, const char *name,
    const char **value)
{
    size_t  n = strlen(name);

    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0) {
        return 0;
    }

    line += n + 1;
    while (*line == ' ' || *line == '\t') {
        line++;
    }

    *value = line;
    return 1;
}


/*
 * Parses the request head at the start of c->in.  Returns 1 when a whole
 * request (head and body) is buffered, 0 when more is needed, or an HTTP
 * error status after which the connection is closed.
 */
static int
sim_parse(sim_conn_t *c)
{
    char        *p, *end, *line, *eol, *sp1, *sp2;
    const char  *v;
    long long    clen;
    int          chunked, close_hdr, keep_hdr, expect;

    if (c->head_len == 0) {
        end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
        if (end == NULL) {
            return c->in.len > SIM_MAX_HEADER ? 431 : 0;
        }

        c->head_len = (size_t) (end - c->in.data) + 4;
        p = c->in.data;
        *end = '\0';

        eol = strstr(p, "\r\n");
        if (eol) {
            *eol = '\0';
        }

        sp1 = strchr(p, ' ');
        sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (sp1 == NULL || sp2 == NULL || strncmp(sp2 + 1, "HTTP/1.", 7))
        {
            return 400;
        }

        *sp1 = '\0';
        *sp2 = '\0';
        c->req.path_off = (size_t) (sp1 + 1 - c->in.data);
        c->http10 = strcmp(sp2 + 1, "HTTP/1.0") == 0;

        clen = 0;
        chunked = close_hdr = keep_hdr = expect = 0;

        for (line = eol ? eol + 2 : end; line < end; line = eol + 2) {
            eol = strstr(line, "\r\n");
            if (eol == NULL) {
                eol = end;
            }
            *eol = '\0';

            if (sim_header_is(line, (size_t) (eol - line), "content-length",
                              &v))
            {
                char  *e;

                clen = strtoll(v, &e, 10);
                if (e == v || clen < 0) {
                    return 400;
                }

            } else if (sim_header_is(line, (size_t) (eol - line),
                                     "transfer-encoding", &v))
            {
                chunked = strcasestr(v, "chunked") != NULL;

            } else if (sim_header_is(line, (size_t) (eol - line),
                                     "connection", &v))
            {
                close_hdr = strcasestr(v, "close") != NULL;
                keep_hdr = strcasestr(v, "keep-alive") != NULL;

            } else if (sim_header_is(line, (size_t) (eol - line), "expect",
                                     &v))
            {
                expect = strcasecmp(v, "100-continue") == 0;

            } else if (c->req.prefiller_len == 0
                       && sim_header_is(line, (size_t) (eol - line),
                                        "x-prefiller-host-port", &v))
            {
                /* llm-d's P/D header, for the decode pod's sidecar */
                c->req.prefiller_off = (size_t) (v - c->in.data);
                c->req.prefiller_len = (size_t) (eol - v);
            }

            if (eol == end) {
                break;
            }
        }

        if (chunked) {
            return 411;
        }
        if (clen > SIM_MAX_BODY) {
            return 413;
        }

        c->req.body_len = (size_t) clen;
        c->keepalive = c->http10 ? keep_hdr : !close_hdr;
        c->req_len = c->head_len + c->req.body_len;

        if (expect && !c->continued && c->in.len < c->req_len) {
            c->continued = 1;
            sim_buf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
            sim_http_flush(c);
        }
    }

    if (c->in.len < c->req_len) {
        return 0;
    }

    /* the method starts the buffer; the buffer may have moved */
    c->req.method = c->in.data;
    c->req.path = c->in.data + c->req.path_off;
    c->req.body = c->in.data + c->head_len;
    c->req.prefiller = c->req.prefiller_len
                       ? c->in.data + c->req.prefiller_off : NULL;
    return 1;
}


/* Reads and serves requests until one is in progress or input runs dry. */
static void
sim_process(sim_conn_t *c)
{
    ssize_t  n;
    int      rc;

    while (!c->dead && !c->busy && !c->closing) {
        if (c->in.len) {
            rc = sim_parse(c);
            if (rc == 1) {
                /* the body stays NUL-terminated for the JSON parser */
                char  saved = c->in.data[c->req_len];

                c->in.data[c->req_len] = '\0';
                sim_handlers.request(c);
                c->in.data[c->req_len] = saved;

                sim_buf_consume(&c->in, c->req_len);
                c->head_len = 0;
                c->req_len = 0;
                c->continued = 0;
                memset(&c->req, 0, sizeof(c->req));
                continue;
            }

            if (rc > 1) {
                c->keepalive = 0;
                sim_handlers.error(c, rc, sim_status_text(rc));
                c->in.len = 0;
                break;
            }
        }

        if (sim_buf_reserve(&c->in, 16384 + 1) != 0) {
            sim_http_close(c);
            return;
        }

        n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1);
        if (n > 0) {
            c->in.len += (size_t) n;
            c->in.data[c->in.len] = '\0';
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            break;
        }

        /* EOF or error: nothing more will come */
        if (c->out_off == c->out.len) {
            sim_http_close(c);
        } else {
            c->closing = 1;
        }
        return;
    }
}


void
sim_http_event(sim_conn_t *c, uint32_t events)
{
    if (c->dead) {
        return;
    }

    if (events & (EPOLLERR | EPOLLHUP)) {
        sim_http_close(c);
        return;
    }

    if (events & EPOLLRDHUP) {
        /* a client that leaves mid-response aborts its request */
        if (c->busy) {
            sim_http_close(c);
            return;
        }
    }

    if (events & EPOLLOUT) {
        sim_http_flush(c);
    }

    if (events & (EPOLLIN | EPOLLRDHUP)) {
        sim_todo_add(c);
    }
}


void
sim_http_run_todo(void)
{
    sim_conn_t  *c;

    while ((c = sim_todo) != NULL) {
        sim_todo = c->todo_next;
        c->in_todo = 0;
        c->todo_next = NULL;

        if (c->dead) {
            sim_conn_free(c);
            continue;
        }

        sim_http_flush(c);
        if (!c->dead) {
            sim_process(c);
            sim_http_flush(c);
        }

        if (c->dead && !c->in_todo) {
            sim_conn_free(c);
        }
    }
}
