/*
 * Growable byte buffers (HTTP I/O, JSON bodies, msgpack batches), writing
 * one to a non-blocking socket, and the clocks and log of the simulator.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"


int
sim_buf_reserve(sim_buf_t *b, size_t extra)
{
    size_t  need, cap;
    char   *p;

    if (extra > ((size_t) 1 << 40) - b->len) {
        return -1;
    }

    need = b->len + extra;
    if (need <= b->cap) {
        return 0;
    }

    cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        return -1;
    }

    b->data = p;
    b->cap = cap;
    return 0;
}


int
sim_buf_append(sim_buf_t *b, const void *p, size_t n)
{
    if (sim_buf_reserve(b, n + 1) != 0) {
        return -1;
    }

    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}


int
sim_buf_puts(sim_buf_t *b, const char *s)
{
    return sim_buf_append(b, s, strlen(s));
}


int
sim_buf_printf(sim_buf_t *b, const char *fmt, ...)
{
    va_list  ap;
    int      n;

    if (sim_buf_reserve(b, 128) != 0) {
        return -1;
    }

    va_start(ap, fmt);
    n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);

    if (n < 0) {
        return -1;
    }

    if ((size_t) n >= b->cap - b->len) {
        if (sim_buf_reserve(b, (size_t) n + 1) != 0) {
            return -1;
        }

        va_start(ap, fmt);
        n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }

    b->len += (size_t) n;
    return 0;
}


int
sim_buf_json_str(sim_buf_t *b, const char *s, size_t n)
{
    static const char  hex[] = "0123456789abcdef";
    unsigned char      c;
    char               esc[6];
    size_t             i;

    if (sim_buf_reserve(b, n * 6 + 3) != 0) {
        return -1;
    }

    b->data[b->len++] = '"';

    for (i = 0; i < n; i++) {
        c = (unsigned char) s[i];

        if (c == '"' || c == '\\') {
            b->data[b->len++] = '\\';
            b->data[b->len++] = (char) c;

        } else if (c == '\n') {
            b->data[b->len++] = '\\';
            b->data[b->len++] = 'n';

        } else if (c < 0x20) {
            esc[0] = '\\'; esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            memcpy(b->data + b->len, esc, 6);
            b->len += 6;

        } else {
            b->data[b->len++] = (char) c;
        }
    }

    b->data[b->len++] = '"';
    b->data[b->len] = '\0';
    return 0;
}


void
sim_buf_consume(sim_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }

    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}


int
sim_buf_write(int fd, const sim_buf_t *b, size_t *off)
{
    ssize_t  n;

    while (*off < b->len) {
        n = write(fd, b->data + *off, b->len - *off);
        if (n > 0) {
            *off += (size_t) n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return (n < 0 && errno == EAGAIN) ? 1 : -1;
    }

    return 0;
}


void
sim_buf_free(sim_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}


int64_t  sim_clock_ns;


int64_t
sim_now_ns(void)
{
    struct timespec  ts;

    if (sim_clock_ns) {
        return sim_clock_ns;
    }

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * SIM_NS + ts.tv_nsec;
}


double
sim_wall_time(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


int  sim_log_quiet;


void
sim_log(const char *fmt, ...)
{
    va_list  ap;

    if (sim_log_quiet) {
        return;
    }

    va_start(ap, fmt);
    fputs("vllm-sim: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
