/*
 * The server-sent events parser of llmd-loadgen (lg_sse.h).  Bytes wait in
 * one buffer until an event's blank line has come; what was split out is
 * moved away once no complete event is left.
 */
#include <stdlib.h>
#include <string.h>

#include "lg_sse.h"


static int lg_sse_event(lg_sse_t *s);


void
lg_sse_init(lg_sse_t *s, size_t max)
{
    memset(s, 0, sizeof(*s));
    s->max = max;
}


void
lg_sse_reset(lg_sse_t *s)
{
    s->len = 0;
    s->pos = 0;
    s->in_event = 0;
}


void
lg_sse_free(lg_sse_t *s)
{
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
    lg_sse_reset(s);
}


int
lg_sse_feed(lg_sse_t *s, const char *p, size_t n)
{
    char  *nb;

    if (s->len + n > s->max) {
        return -1;
    }
    /* one byte more for the NUL that the event search stops at */
    if (s->len + n + 1 > s->cap) {
        nb = realloc(s->buf, s->len + n + 4096);
        if (nb == NULL) {
            return -1;
        }
        s->buf = nb;
        s->cap = s->len + n + 4096;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
    s->buf[s->len] = '\0';
    return 0;
}


int
lg_sse_next(lg_sse_t *s, const char **data, size_t *len)
{
    char    *line, *nl;
    size_t   ll;

    if (s->buf == NULL) {
        return LG_SSE_AGAIN;
    }

    for ( ;; ) {
        if (!s->in_event && !lg_sse_event(s)) {
            /* keep only the unfinished event */
            memmove(s->buf, s->buf + s->pos, s->len - s->pos);
            s->len -= s->pos;
            s->buf[s->len] = '\0';
            s->pos = 0;
            return LG_SSE_AGAIN;
        }

        while (s->pos < s->end) {
            line = s->buf + s->pos;
            nl = memchr(line, '\n', s->end - s->pos);
            if (nl == NULL) {
                nl = s->buf + s->end;
            }
            ll = nl - line;
            s->pos = nl - s->buf + 1;
            if (ll > 0 && line[ll - 1] == '\r') {
                ll--;
            }
            if (ll < 5 || memcmp(line, "data:", 5) != 0) {
                continue;
            }
            line += 5;
            ll -= 5;
            if (ll > 0 && *line == ' ') {
                line++;
                ll--;
            }
            *data = line;
            *len = ll;
            if (ll == 6 && memcmp(line, "[DONE]", 6) == 0) {
                return LG_SSE_DONE;
            }
            return LG_SSE_DATA;
        }

        s->pos = s->next;
        s->in_event = 0;
    }
}


/* Finds the blank line ending the event at pos: 0 when it has not come. */
static int
lg_sse_event(lg_sse_t *s)
{
    char  *lf, *crlf;

    lf = strstr(s->buf + s->pos, "\n\n");
    crlf = strstr(s->buf + s->pos, "\r\n\r\n");
    if (lf == NULL || (crlf != NULL && crlf < lf)) {
        lf = crlf;
    }
    if (lf == NULL) {
        return 0;
    }
    s->end = lf - s->buf;
    s->next = s->end + (*lf == '\r' ? 4 : 2);
    s->in_event = 1;
    return 1;
}
