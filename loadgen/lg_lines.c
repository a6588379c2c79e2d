/*
 * Line stamps of a streamed reply (lg_lines.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lg_lines.h"


static int lg_lines_stamp(lg_lines_t *l, double t);


int
lg_lines_feed(lg_lines_t *l, const char *p, size_t n, double t)
{
    const char  *nl, *end = p + n;

    if (n == 0) {
        return 0;
    }
    for (nl = memchr(p, '\n', n); nl != NULL;
         nl = memchr(nl + 1, '\n', end - nl - 1))
    {
        if (lg_lines_stamp(l, t) != 0) {
            return -1;
        }
    }
    l->partial = end[-1] != '\n';
    return 0;
}


int
lg_lines_eof(lg_lines_t *l, double t)
{
    if (!l->partial) {
        return 0;
    }
    l->partial = 0;
    return lg_lines_stamp(l, t);
}


void
lg_lines_free(lg_lines_t *l)
{
    free(l->gap);
    memset(l, 0, sizeof(*l));
}


double
lg_lines_percentile(const double *sorted, size_t n, long zeros, double p)
{
    size_t  total = n + (size_t) zeros, i;
    double  pos, frac, a, b;

    if (total == 0) {
        return NAN;
    }
    pos = p / 100.0 * (double) (total - 1);
    i = (size_t) pos;
    if (i >= total - 1) {
        return n ? sorted[n - 1] : 0;
    }
    frac = pos - (double) i;
    a = i < (size_t) zeros ? 0 : sorted[i - zeros];
    b = i + 1 < (size_t) zeros ? 0 : sorted[i + 1 - zeros];
    return a + (b - a) * frac;
}


static int
lg_lines_stamp(lg_lines_t *l, double t)
{
    float   *g;
    size_t   cap;

    if (l->lines++ == 0) {
        l->first = l->last = t;
        return 0;
    }
    if (t - l->last <= 0) {
        l->zeros++;
        return 0;
    }
    if (l->n == l->cap) {
        cap = l->cap ? l->cap * 2 : 256;
        g = realloc(l->gap, cap * sizeof(float));
        if (g == NULL) {
            return -1;
        }
        l->gap = g;
        l->cap = cap;
    }
    l->gap[l->n++] = (float) (t - l->last);
    l->last = t;
    return 0;
}
