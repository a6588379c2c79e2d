/*
 * Line stamps of a streamed reply, the way inference-perf v0.2 times a
 * stream: it reads the body line by line and takes the time of every line,
 * the blank line that ends each server-sent event and the "data: [DONE]"
 * event included.  Its TTFT ends at the first line, its "inter-token
 * latency" is every gap between consecutive lines: an event's data line
 * and its blank line come in the same read, so about half of those gaps
 * are 0 and their mean is about half the real interval between tokens.
 *
 * Pure: the caller feeds the body bytes (after the transfer coding) with
 * the time they were read; every line ended by those bytes gets that time.
 * Gaps of 0 are only counted, so a stream of N tokens keeps about N
 * numbers, not 2N.
 */
#ifndef LG_LINES_H
#define LG_LINES_H

#include <stddef.h>

typedef struct {
    float   *gap;        /* gaps > 0 between consecutive lines, s */
    size_t   n, cap;
    long     zeros;      /* gaps of 0: lines ended by the same read */
    long     lines;
    double   first;      /* the first line's time */
    double   last;
    int      partial;    /* bytes of an unfinished line are waiting */
} lg_lines_t;

/* -1: no memory for one more gap. */
int lg_lines_feed(lg_lines_t *l, const char *p, size_t n, double t);

/* The end of the body: an unfinished last line is a line too. */
int lg_lines_eof(lg_lines_t *l, double t);

void lg_lines_free(lg_lines_t *l);

/*
 * Percentile p (0-100, linear interpolation between closest ranks as
 * numpy's default) of zeros values of 0 followed by the n sorted values
 * (all > 0); NAN when there are none.
 */
double lg_lines_percentile(const double *sorted, size_t n, long zeros,
    double p);

#endif /* LG_LINES_H */
