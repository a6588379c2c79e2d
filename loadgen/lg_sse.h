/*
 * The server-sent events parser of llmd-loadgen: a streamed reply's body is
 * split into events at blank lines (LF LF or CRLF CRLF) and every "data:"
 * line of an event goes out on its own (the OpenAI streams have one per
 * event); comments and other fields are skipped.  Pure: the caller feeds
 * the body bytes as they come, split anywhere.
 */
#ifndef LG_SSE_H
#define LG_SSE_H

#include <stddef.h>

/* What lg_sse_next() found. */
enum {
    LG_SSE_AGAIN = 0,     /* no complete event left: feed more */
    LG_SSE_DATA,          /* one data line */
    LG_SSE_DONE           /* the data line "[DONE]" that ends a stream */
};

typedef struct {
    char    *buf;         /* bytes not yet split into events */
    size_t   len, cap;
    size_t   max;         /* the most bytes an unfinished event may have */
    size_t   pos;         /* the next line of the current event */
    size_t   end;         /* the current event's blank line */
    size_t   next;        /* where the event after it starts */
    int      in_event;
} lg_sse_t;

void lg_sse_init(lg_sse_t *s, size_t max);

/* Drops what is buffered, for the next reply; the memory is kept. */
void lg_sse_reset(lg_sse_t *s);
void lg_sse_free(lg_sse_t *s);

/* Adds body bytes: -1 when the unfinished event grows past max, or no
 * memory.  Take every line out with lg_sse_next() before feeding more. */
int lg_sse_feed(lg_sse_t *s, const char *p, size_t n);

/* The next data line of the complete events, without "data:" and one
 * space: valid until the next lg_sse_feed(). */
int lg_sse_next(lg_sse_t *s, const char **data, size_t *len);

#endif /* LG_SSE_H */
