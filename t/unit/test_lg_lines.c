/*
 * Line stamps of a streamed reply (loadgen/lg_lines.c), the seed's ITL:
 * every line of the body is stamped, blank lines and [DONE] included, so
 * an event's data line and its blank line give a gap of 0; compared on
 * crafted streams with the inter-token latency of llmd-loadgen (a gap per
 * server-sent event with a token, lg_sse.c).  And percentiles over the
 * gaps of 0 and the others.
 */

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../loadgen/lg_lines.h"
#include "../../loadgen/lg_sse.h"
#include "lg_assert.h"


/* Both measures over the same reads. */
typedef struct {
    lg_lines_t  lines;
    lg_sse_t    sse;
    double      token[4096];   /* times of the events with a token */
    long        ntoken;
} both_t;


static void
feed(both_t *b, const char *p, double t)
{
    const char  *data;
    size_t       len;
    int          rc;

    assert_int_equal(lg_lines_feed(&b->lines, p, strlen(p), t), 0);
    assert_int_equal(lg_sse_feed(&b->sse, p, strlen(p)), 0);
    while ((rc = lg_sse_next(&b->sse, &data, &len)) != LG_SSE_AGAIN) {
        if (rc == LG_SSE_DATA) {
            b->token[b->ntoken++] = t;
        }
    }
}


static double
gaps_sum(const lg_lines_t *l)
{
    double  s = 0;
    size_t  i;

    for (i = 0; i < l->n; i++) {
        s += l->gap[i];
    }
    return s;
}


static void
test_crafted_stream(void **state)
{
    both_t  b;

    memset(&b, 0, sizeof(b));
    lg_sse_init(&b.sse, 65536);

    /* three tokens, one split before its blank line, [DONE] in the read
     * of a line that the end of the body finishes */
    feed(&b, "data: {\"t\":\"a\"}\n\n", 1.0);
    feed(&b, "data: {\"t\":\"b\"}\n\n", 1.5);
    feed(&b, "data: {\"t\":\"c\"}\n", 2.0);
    feed(&b, "\n", 2.25);
    feed(&b, "data: [DONE]\n\n: tail", 3.0);
    assert_int_equal(lg_lines_eof(&b.lines, 3.5), 0);

    /* lines at 1, 1, 1.5, 1.5, 2, 2.25, 3, 3, 3.5 */
    assert_int_equal(b.lines.lines, 9);
    assert_near(b.lines.first, 1.0, 1e-12);
    assert_near(b.lines.last, 3.5, 1e-12);
    assert_int_equal(b.lines.zeros, 3);
    assert_int_equal(b.lines.n, 5);
    assert_near(gaps_sum(&b.lines), 2.5, 1e-6);

    /* the tokens: an event counts when its blank line has come */
    assert_int_equal(b.ntoken, 3);
    assert_near(b.token[1] - b.token[0], 0.5, 1e-12);
    assert_near(b.token[2] - b.token[1], 0.75, 1e-12);

    /* by lines: 2.5 s over 8 gaps; by tokens: 1.25 s over 2 */
    assert_near(gaps_sum(&b.lines) / (b.lines.n + b.lines.zeros), 0.3125,
                1e-6);
    assert_int_equal(lg_lines_eof(&b.lines, 4.0), 0);
    assert_int_equal(b.lines.lines, 9);

    lg_lines_free(&b.lines);
    lg_sse_free(&b.sse);
}


static void
test_half_the_interval(void **state)
{
    both_t   b;
    char     ev[64];
    double  *v, lines_mean, tokens_mean, dt = 0.04;
    long     i, n = 1000;

    memset(&b, 0, sizeof(b));
    lg_sse_init(&b.sse, 65536);

    /* 1000 tokens every 40 ms, each event in its own read, as vLLM sends */
    for (i = 0; i < n; i++) {
        snprintf(ev, sizeof(ev), "data: {\"t\":\"w%ld\"}\n\n", i);
        feed(&b, ev, 1 + i * dt);
    }
    feed(&b, "data: [DONE]\n\n", 1 + (n - 1) * dt + 0.001);

    tokens_mean = (b.token[n - 1] - b.token[0]) / (n - 1);
    lines_mean = gaps_sum(&b.lines) / (b.lines.n + b.lines.zeros);
    assert_near(tokens_mean, dt, 1e-9);
    assert_int_equal(b.lines.lines, 2 * (n + 1));
    assert_int_equal(b.lines.zeros, n + 1);
    /* (999 x 40 ms + 1 ms) / 2001 gaps: half the token interval */
    assert_near(lines_mean, (999 * dt + 0.001) / 2001, 1e-6);
    assert_near(lines_mean / tokens_mean, 0.5, 0.01);

    /* and the median gap is 0: the seed's "ITL p50 0.0000" */
    v = malloc(b.lines.n * sizeof(double));
    assert_non_null(v);
    for (i = 0; i < (long) b.lines.n; i++) {
        v[i] = b.lines.gap[i];
    }
    /* the gaps are all 40 ms but the one to [DONE]: sorted already but
     * for the last, which is the smallest */
    v[b.lines.n - 1] = v[0];
    v[0] = 0.001;
    assert_near(lg_lines_percentile(v, b.lines.n, b.lines.zeros, 50), 0,
                1e-12);
    assert_near(lg_lines_percentile(v, b.lines.n, b.lines.zeros, 90), dt,
                1e-6);
    free(v);
    lg_lines_free(&b.lines);
    lg_sse_free(&b.sse);
}


static void
test_percentile_with_zeros(void **state)
{
    double  v[] = { 1, 2, 3 };

    /* 0, 0, 1, 2, 3 */
    assert_near(lg_lines_percentile(v, 3, 2, 0), 0, 1e-12);
    assert_near(lg_lines_percentile(v, 3, 2, 25), 0, 1e-12);
    assert_near(lg_lines_percentile(v, 3, 2, 30), 0.2, 1e-12);
    assert_near(lg_lines_percentile(v, 3, 2, 50), 1, 1e-12);
    assert_near(lg_lines_percentile(v, 3, 2, 90), 2.6, 1e-12);
    assert_near(lg_lines_percentile(v, 3, 2, 100), 3, 1e-12);
    /* no zeros: numpy's linear interpolation */
    assert_near(lg_lines_percentile(v, 3, 0, 50), 2, 1e-12);
    assert_near(lg_lines_percentile(v, 3, 0, 75), 2.5, 1e-12);
    /* only zeros, nothing */
    assert_near(lg_lines_percentile(v, 0, 4, 90), 0, 1e-12);
    assert_true(isnan(lg_lines_percentile(v, 0, 0, 50)));
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_crafted_stream),
        cmocka_unit_test(test_half_the_interval),
        cmocka_unit_test(test_percentile_with_zeros),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
