/*
 * llmd-loadgen's HTTP/1.1 reply parser (loadgen/lg_http.c): the status
 * line, header fields, Content-Length, chunked and until-close bodies,
 * chunk extensions and trailers, replies split at every byte, and
 * malformed replies.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../loadgen/lg_http.h"


#define BUF_SIZE  (64 * 1024)

/* a string literal and its length */
#define S(lit)  lit, sizeof(lit) - 1

#define assert_body(rp, lit)                                                 \
    do {                                                                     \
        assert_int_equal((rp).body_len, sizeof(lit) - 1);                    \
        assert_memory_equal((rp).body, lit, sizeof(lit) - 1);                \
    } while (0)

/* What the parser said about one reply. */
typedef struct {
    int     status;
    char    fields[1024];     /* "name=value\n" per field */
    char    body[4096];
    size_t  body_len;
    int     done;
    int     error;
    int     close;
    size_t  rest;             /* bytes given after the reply ended */
} reply_t;


static char  buf[BUF_SIZE];
static char  big[BUF_SIZE * 2];


/* A fresh parser on b and nothing said yet. */
static void
start(lg_http_t *h, reply_t *rp, char *b, size_t size)
{
    memset(rp, 0, sizeof(*rp));
    lg_http_init(h, b, size);
}


static void
feed(lg_http_t *h, reply_t *rp, const char *p, size_t n)
{
    size_t  used, len;
    int     rc;

    if (rp->done || rp->error) {
        rp->rest += n;
        return;
    }

    for ( ;; ) {
        rc = lg_http_parse(h, p, n, &used);
        assert_true(used <= n);
        p += used;
        n -= used;

        switch (rc) {

        case LG_HTTP_AGAIN:
            assert_int_equal(n, 0);
            return;

        case LG_HTTP_STATUS:
            assert_int_equal(rp->status, 0);
            rp->status = h->status;
            break;

        case LG_HTTP_FIELD:
            len = strlen(rp->fields);
            snprintf(rp->fields + len, sizeof(rp->fields) - len, "%s=%s\n",
                     h->name, h->value);
            break;

        case LG_HTTP_BODY:
            /* body events take bytes: the loop cannot spin */
            assert_true(h->body_len > 0);
            assert_true(h->body + h->body_len == p);
            assert_true(rp->body_len + h->body_len <= sizeof(rp->body));
            memcpy(rp->body + rp->body_len, h->body, h->body_len);
            rp->body_len += h->body_len;
            break;

        case LG_HTTP_DONE:
            rp->done = 1;
            rp->close = h->close;
            rp->rest = n;
            return;

        case LG_HTTP_ERROR:
            rp->error = 1;
            return;

        default:
            fail_msg("unknown event %d", rc);
        }
    }
}


/* The whole reply in one read. */
static void
parse_whole(const char *in, size_t len, reply_t *rp)
{
    lg_http_t  h;

    start(&h, rp, buf, sizeof(buf));
    feed(&h, rp, in, len);
}


static void
assert_same_reply(const reply_t *a, const reply_t *b)
{
    assert_int_equal(a->status, b->status);
    assert_string_equal(a->fields, b->fields);
    assert_int_equal(a->body_len, b->body_len);
    assert_memory_equal(a->body, b->body, a->body_len);
    assert_int_equal(a->done, b->done);
    assert_int_equal(a->error, b->error);
    assert_int_equal(a->close, b->close);
    assert_int_equal(a->rest, b->rest);
}


/* Every split into three reads (two cut points, empty reads included)
 * gives what one read gives. */
static void
assert_any_split(const char *in)
{
    lg_http_t  h;
    reply_t    whole, split;
    size_t     len = strlen(in), i, j;

    parse_whole(in, len, &whole);

    for (i = 0; i <= len; i++) {
        for (j = i; j <= len; j++) {
            start(&h, &split, buf, sizeof(buf));
            feed(&h, &split, in, i);
            feed(&h, &split, in + i, j - i);
            feed(&h, &split, in + j, len - j);
            assert_same_reply(&whole, &split);
        }
    }

    /* and a byte at a time */
    start(&h, &split, buf, sizeof(buf));
    for (i = 0; i < len; i++) {
        feed(&h, &split, in + i, 1);
    }
    assert_same_reply(&whole, &split);
}


static void
test_status_and_fields(void **state)
{
    static const char  in[] =
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json\r\n"
        "x-sim-pod:\t 1\r\n"
        "no colon here\r\n"
        "X-Empty:\r\n"
        "Content-Length: 5\r\n"
        "\r\n"
        "hello";
    reply_t            rp;

    parse_whole(in, sizeof(in) - 1, &rp);
    assert_int_equal(rp.status, 200);
    assert_string_equal(rp.fields,
                        "Content-Type=application/json\n"
                        "x-sim-pod=1\n"
                        "X-Empty=\n"
                        "Content-Length=5\n");
    assert_body(rp, "hello");
    assert_true(rp.done);
    assert_false(rp.close);
    assert_int_equal(rp.rest, 0);
}


static void
test_content_length(void **state)
{
    static const char  in[] =
        "HTTP/1.1 503 Service Unavailable\r\n"
        "content-length: 11\r\n\r\n"
        "{\"a\":\"b\"}\r\nHTTP/1.1";
    static const char  empty[] =
        "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
    reply_t            rp;

    /* bytes past the body are not this reply's */
    parse_whole(in, sizeof(in) - 1, &rp);
    assert_int_equal(rp.status, 503);
    assert_body(rp, "{\"a\":\"b\"}\r\n");
    assert_true(rp.done);
    assert_int_equal(rp.rest, 8);

    /* an empty body ends the reply with no bytes left to give */
    parse_whole(empty, sizeof(empty) - 1, &rp);
    assert_int_equal(rp.status, 204);
    assert_int_equal(rp.body_len, 0);
    assert_true(rp.done);

    assert_any_split(in);
    assert_any_split(empty);
}


static void
test_connection(void **state)
{
    reply_t  rp;

    parse_whole(S("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), &rp);
    assert_true(rp.done);
    assert_true(rp.close);

    parse_whole(S("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n"
                  "Content-Length: 0\r\n\r\n"), &rp);
    assert_true(rp.done);
    assert_false(rp.close);

    parse_whole(S("HTTP/1.1 200 OK\r\nConnection: close\r\n"
                  "Content-Length: 0\r\n\r\n"), &rp);
    assert_true(rp.done);
    assert_true(rp.close);
}


static void
test_until_eof(void **state)
{
    static const char  in[] = "HTTP/1.1 200 OK\r\nX-A: b\r\n\r\nsome body";
    lg_http_t          h;
    reply_t            rp;

    start(&h, &rp, buf, sizeof(buf));
    feed(&h, &rp, in, sizeof(in) - 1);
    assert_false(rp.done);
    assert_body(rp, "some body");
    feed(&h, &rp, S(" more"));
    assert_int_equal(rp.body_len, 14);
    assert_int_equal(lg_http_eof(&h), LG_HTTP_DONE);
    /* the server closes: the connection cannot be kept */
    assert_true(h.close);

    /* the end of the connection before a framed body is complete */
    start(&h, &rp, buf, sizeof(buf));
    feed(&h, &rp, S("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsome"));
    assert_false(rp.done);
    assert_int_equal(lg_http_eof(&h), LG_HTTP_ERROR);

    /* and before the header is */
    lg_http_init(&h, buf, sizeof(buf));
    assert_int_equal(lg_http_eof(&h), LG_HTTP_ERROR);
}


static void
test_chunked(void **state)
{
    static const char  in[] =
        "HTTP/1.1 200 OK\r\n"
        "Transfer-Encoding: chunked\r\n"
        "\r\n"
        "5;name=value\r\nhello\r\n"
        "6 ; ext\r\n world\r\n"
        "A\r\n from SSE\n\r\n"
        "0\r\n"
        "X-Trailer: 1\r\n"
        "\r\n"
        "next";
    reply_t            rp;

    parse_whole(in, sizeof(in) - 1, &rp);
    assert_int_equal(rp.status, 200);
    assert_string_equal(rp.fields, "Transfer-Encoding=chunked\n");
    assert_body(rp, "hello world from SSE\n");
    assert_true(rp.done);
    assert_false(rp.close);
    assert_int_equal(rp.rest, 4);

    assert_any_split(in);
}


static void
test_chunked_lf_only(void **state)
{
    /* bare LF line ends, as the parser has always taken them */
    static const char  in[] =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\nabc\n0\n\r\n";
    reply_t            rp;

    parse_whole(in, sizeof(in) - 1, &rp);
    assert_true(rp.done);
    assert_body(rp, "abc");

    assert_any_split(in);
}


static void
assert_error(const char *in, size_t len)
{
    lg_http_t  h;
    reply_t    rp;
    size_t     used;

    start(&h, &rp, buf, sizeof(buf));
    feed(&h, &rp, in, len);
    assert_true(rp.error);
    assert_false(rp.done);
    /* and it stays failed */
    assert_int_equal(lg_http_parse(&h, "\r\n", 2, &used), LG_HTTP_ERROR);
}


static void
test_malformed(void **state)
{
    size_t  n;

    assert_error(S("HTTX/1.1 200 OK\r\n\r\n"));
    assert_error(S("HTTP/1.1 OK\r\n\r\n"));
    assert_error(S("HTTP/1.1 99 Low\r\n\r\n"));
    assert_error(S("HTTP/1.1 600 High\r\n\r\n"));
    assert_error(S("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"));

    /* chunk size not hex, over 2^40, chunk data longer than said */
    assert_error(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "zz\r\n"));
    assert_error(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "-5\r\n"));
    assert_error(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "20000000000\r\n"));
    assert_error(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhelloX\r\n"));

    /* a chunk-size line longer than LG_HTTP_MAX_LINE */
    n = sprintf(big, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5;");
    memset(big + n, 'x', LG_HTTP_MAX_LINE);
    n += LG_HTTP_MAX_LINE;
    assert_error(big, n);

    /* a header that does not fit the buffer */
    n = sprintf(big, "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(big + n, 'x', BUF_SIZE);
    n += BUF_SIZE;
    memcpy(big + n, S("\r\n\r\n"));
    assert_error(big, n + 4);
}


static void
test_header_limit(void **state)
{
    lg_http_t  h;
    reply_t    rp;
    char       small[LG_HTTP_MAX_LINE + 1];
    char       in[sizeof(small)];

    /* a header of size - 1 bytes fits */
    memset(in, 'x', sizeof(in));
    memcpy(in, "HTTP/1.1 200 OK\r\nX-Pad: ", 24);
    memcpy(in + sizeof(in) - 5, "\r\n\r\n", 4);
    start(&h, &rp, small, sizeof(small));
    feed(&h, &rp, in, sizeof(in) - 1);
    assert_int_equal(rp.status, 200);
    assert_false(rp.error);

    /* one byte more does not, in one read */
    memcpy(in + sizeof(in) - 5, "x\r\n\r\n", 5);
    start(&h, &rp, small, sizeof(small));
    feed(&h, &rp, in, sizeof(in));
    assert_true(rp.error);

    /* or in two */
    start(&h, &rp, small, sizeof(small));
    feed(&h, &rp, in, sizeof(in) - 1);
    assert_false(rp.error);
    feed(&h, &rp, in + sizeof(in) - 1, 1);
    assert_true(rp.error);
}


static void
test_reset(void **state)
{
    static const char  in[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab";
    lg_http_t          h;
    reply_t            rp;

    start(&h, &rp, buf, sizeof(buf));
    feed(&h, &rp, in, sizeof(in) - 1);
    assert_true(rp.done);

    /* the next reply on the connection */
    lg_http_reset(&h);
    memset(&rp, 0, sizeof(rp));
    feed(&h, &rp, in, sizeof(in) - 1);
    assert_true(rp.done);
    assert_int_equal(rp.body_len, 2);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_status_and_fields),
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_connection),
        cmocka_unit_test(test_until_eof),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_chunked_lf_only),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_reset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
