/*
 * Fuzz target: llmd-loadgen's reply parsers as its client drives them.
 * HTTP mode: the HTTP/1.1 reply parser (loadgen/lg_http.h) over replies
 * one after another on a connection (reset after each), the body bytes of
 * each into the SSE parser (loadgen/lg_sse.h), then the end of the
 * connection.  SSE mode: the bytes are a streamed body, into the SSE
 * parser alone.
 *
 * Input: one byte, the mode (bit 0: SSE) and, in HTTP mode, the header
 * buffer (1025 + 8 * (b >> 1) bytes); two bytes, where the rest is split
 * in two reads (mod its length + 1); the rest is what the server sent.
 */
#include <stdlib.h>
#include <string.h>

#include "../loadgen/lg_http.h"
#include "../loadgen/lg_sse.h"
#include "fuzz_common.h"


/* the longest unfinished SSE event: small, so that the limit is hit */
#define FUZZ_SSE_MAX  4096


typedef struct {
    lg_http_t  h;
    lg_sse_t   sse;
    int        failed;
} fuzz_conn_t;


static void fuzz_http_read(fuzz_conn_t *c, const char *p, size_t n);
static void fuzz_sse_feed(lg_sse_t *s, const char *p, size_t n);
static void fuzz_sse_drain(lg_sse_t *s);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char          *buf;
    size_t         split, bsize;
    unsigned       mode;
    const char    *p;
    fuzz_input_t   in;
    fuzz_conn_t    c;

    in.p = data;
    in.n = size;
    mode = fuzz_byte(&in);
    split = fuzz_u16(&in) % (in.n + 1);
    p = (const char *) in.p;

    lg_sse_init(&c.sse, FUZZ_SSE_MAX);

    if (mode & 1) {
        fuzz_sse_feed(&c.sse, p, split);
        fuzz_sse_feed(&c.sse, p + split, in.n - split);
        lg_sse_free(&c.sse);
        return 0;
    }

    /* a heap block of its exact size: ASan sees a write past it */
    bsize = LG_HTTP_MAX_LINE + 1 + 8 * (mode >> 1);
    buf = malloc(bsize);
    FUZZ_CHECK(buf != NULL);

    lg_http_init(&c.h, buf, bsize);
    c.failed = 0;

    fuzz_http_read(&c, p, split);
    fuzz_http_read(&c, p + split, in.n - split);

    if (!c.failed) {
        (void) lg_http_eof(&c.h);
    }

    lg_sse_free(&c.sse);
    free(buf);

    return 0;
}


/* One read from the socket: every event it gives, as the client takes
 * them. */
static void
fuzz_http_read(fuzz_conn_t *c, const char *p, size_t n)
{
    int     rc;
    size_t  used, events;

    events = 0;

    while (!c->failed) {
        rc = lg_http_parse(&c->h, p, n, &used);
        FUZZ_CHECK(used <= n);

        /* each event takes a byte or a header line: no endless loop */
        FUZZ_CHECK(++events <= 2 * (n + c->h.size) + 8);

        switch (rc) {

        case LG_HTTP_AGAIN:
            FUZZ_CHECK(used == n);
            return;

        case LG_HTTP_STATUS:
            FUZZ_CHECK(c->h.status >= 100 && c->h.status <= 599);
            break;

        case LG_HTTP_FIELD:
            FUZZ_CHECK(c->h.name >= c->h.buf
                       && c->h.name < c->h.buf + c->h.size);
            fuzz_touch(c->h.name, strlen(c->h.name));
            fuzz_touch(c->h.value, strlen(c->h.value));
            break;

        case LG_HTTP_BODY:
            /* the body is the last bytes taken */
            FUZZ_CHECK(c->h.body >= p
                       && c->h.body + c->h.body_len == p + used);
            fuzz_sse_feed(&c->sse, c->h.body, c->h.body_len);
            break;

        case LG_HTTP_DONE:
            /* the next reply on the same connection */
            lg_http_reset(&c->h);
            lg_sse_reset(&c->sse);
            if (used == n) {
                return;
            }
            break;

        default:
            FUZZ_CHECK(rc == LG_HTTP_ERROR);
            c->failed = 1;
            return;
        }

        p += used;
        n -= used;
    }
}


static void
fuzz_sse_feed(lg_sse_t *s, const char *p, size_t n)
{
    if (lg_sse_feed(s, p, n) != 0) {
        /* an event past the limit: the client gives the stream up */
        lg_sse_reset(s);
        return;
    }

    fuzz_sse_drain(s);
}


/* Takes every data line out; none holds a line break. */
static void
fuzz_sse_drain(lg_sse_t *s)
{
    int          rc;
    size_t       len;
    const char  *data;

    while ((rc = lg_sse_next(s, &data, &len)) != LG_SSE_AGAIN) {
        FUZZ_CHECK(rc == LG_SSE_DATA || rc == LG_SSE_DONE);
        FUZZ_CHECK(data >= s->buf && data + len <= s->buf + s->len);
        FUZZ_CHECK(memchr(data, '\n', len) == NULL);
        FUZZ_CHECK(rc != LG_SSE_DONE || len == 6);
    }
}
