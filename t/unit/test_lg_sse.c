/*
 * llmd-loadgen's server-sent events parser (loadgen/lg_sse.c): data lines,
 * several data lines in one event, comments and other fields, CRLF and LF
 * line ends, events split at every byte, the [DONE] marker, and the limit
 * on an unfinished event.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../loadgen/lg_sse.h"


/* What the parser handed out: "data\n" per data line, "<DONE>\n" for the
 * end marker. */
typedef struct {
    char    out[4096];
    size_t  len;
} lines_t;


static void
take_lines(lg_sse_t *s, lines_t *l)
{
    const char  *data;
    size_t       len;
    int          rc;

    while ((rc = lg_sse_next(s, &data, &len)) != LG_SSE_AGAIN) {
        if (rc == LG_SSE_DONE) {
            assert_int_equal(len, 6);
            data = "<DONE>";
        } else {
            assert_int_equal(rc, LG_SSE_DATA);
        }
        assert_true(l->len + len + 1 < sizeof(l->out));
        memcpy(l->out + l->len, data, len);
        l->len += len;
        l->out[l->len++] = '\n';
        l->out[l->len] = '\0';
    }
}


static void
feed(lg_sse_t *s, lines_t *l, const char *p, size_t n)
{
    assert_int_equal(lg_sse_feed(s, p, n), 0);
    take_lines(s, l);
}


/* The lines of a whole stream fed in one piece. */
static void
assert_lines(const char *in, const char *want)
{
    lg_sse_t  s;
    lines_t   l;

    memset(&l, 0, sizeof(l));
    lg_sse_init(&s, 1 << 20);
    feed(&s, &l, in, strlen(in));
    assert_string_equal(l.out, want);
    lg_sse_free(&s);
}


/* Every split into three pieces (two cut points) gives the same lines. */
static void
assert_any_split(const char *in, const char *want)
{
    lg_sse_t  s;
    lines_t   l;
    size_t    len = strlen(in), i, j;

    lg_sse_init(&s, 1 << 20);
    for (i = 0; i <= len; i++) {
        for (j = i; j <= len; j++) {
            memset(&l, 0, sizeof(l));
            lg_sse_reset(&s);
            feed(&s, &l, in, i);
            feed(&s, &l, in + i, j - i);
            feed(&s, &l, in + j, len - j);
            assert_string_equal(l.out, want);
        }
    }
    lg_sse_free(&s);
}


static void
test_data_lines(void **state)
{
    assert_lines("data: {\"a\":1}\n\n", "{\"a\":1}\n");
    /* one space after the colon goes, the rest stays */
    assert_lines("data:x\n\ndata:  y\n\n", "x\n y\n");
    assert_lines("data:\n\n", "\n");
    /* not a data field */
    assert_lines("datum: x\n\ndata x\n\n", "");
    /* an event without its blank line is not out yet */
    assert_lines("data: a\n\ndata: b\n", "a\n");
}


static void
test_multi_line_data(void **state)
{
    /* each data line goes out on its own (the OpenAI streams send one per
     * event) */
    assert_lines("data: a\ndata: b\n\ndata: c\n\n", "a\nb\nc\n");
}


static void
test_comments_and_fields(void **state)
{
    assert_lines(": keepalive\n\n", "");
    assert_lines(": comment\nevent: message\nid: 7\nretry: 10\n"
                 "data: z\n\n", "z\n");
}


static void
test_line_ends(void **state)
{
    assert_lines("data: a\r\n\r\ndata: b\r\n\r\n", "a\nb\n");
    /* CR before LF is not the data's */
    assert_lines("data: a\r\ndata: b\r\n\r\n", "a\nb\n");
    /* LF and CRLF events in one stream */
    assert_lines("data: a\n\ndata: b\r\n\r\ndata: c\n\n", "a\nb\nc\n");
}


static void
test_split_everywhere(void **state)
{
    assert_any_split("data: {\"choices\":[{\"text\":\"hi\"}]}\n\n"
                     ": ping\n\n"
                     "data: {\"choices\":[{\"text\":\" there\"}]}\n\n"
                     "data: [DONE]\n\n",
                     "{\"choices\":[{\"text\":\"hi\"}]}\n"
                     "{\"choices\":[{\"text\":\" there\"}]}\n"
                     "<DONE>\n");
    assert_any_split("data: a\r\n\r\ndata: b\r\ndata: c\r\n\r\n",
                     "a\nb\nc\n");
}


static void
test_done(void **state)
{
    assert_lines("data: [DONE]\n\n", "<DONE>\n");
    assert_lines("data:[DONE]\r\n\r\n", "<DONE>\n");
    /* only the whole marker */
    assert_lines("data: [DONE] \n\ndata: [DONE\n\n", "[DONE] \n[DONE\n");
}


static void
test_limit(void **state)
{
    lg_sse_t  s;
    lines_t   l;

    memset(&l, 0, sizeof(l));
    lg_sse_init(&s, 16);
    assert_int_equal(lg_sse_feed(&s, "data: 0123456789", 16), 0);
    take_lines(&s, &l);
    assert_int_equal(lg_sse_feed(&s, "\n", 1), -1);
    lg_sse_free(&s);

    /* complete events leave room for the next ones */
    memset(&l, 0, sizeof(l));
    lg_sse_init(&s, 16);
    feed(&s, &l, "data: 01234567\n\n", 16);
    feed(&s, &l, "data: 89abcdef\n\n", 16);
    assert_string_equal(l.out, "01234567\n89abcdef\n");
    lg_sse_free(&s);
}


static void
test_reset(void **state)
{
    lg_sse_t  s;
    lines_t   l;

    memset(&l, 0, sizeof(l));
    lg_sse_init(&s, 1 << 20);
    /* nothing fed yet */
    take_lines(&s, &l);
    assert_int_equal(l.len, 0);

    feed(&s, &l, "data: a\n\ndata: half", 19);
    lg_sse_reset(&s);
    feed(&s, &l, "data: b\n\n", 9);
    assert_string_equal(l.out, "a\nb\n");
    lg_sse_free(&s);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_data_lines),
        cmocka_unit_test(test_multi_line_data),
        cmocka_unit_test(test_comments_and_fields),
        cmocka_unit_test(test_line_ends),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_done),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_reset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
