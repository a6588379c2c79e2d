/*
 * The HTTP/1.1 response parser of llmd-loadgen (lg_http.h): the header is
 * gathered whole, then its fields go out one at a time, then the body as
 * its framing says.  Chunk extensions and trailer fields are skipped.
 */
#define _GNU_SOURCE  /* strcasestr */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lg_http.h"


static int lg_http_header(lg_http_t *h, const char *p, size_t n,
    size_t *used);
static int lg_http_field(lg_http_t *h);
static int lg_http_framing_field(lg_http_t *h, const char *name,
    const char *value);
static void lg_http_framing(lg_http_t *h);
static int lg_http_body(lg_http_t *h, const char *p, size_t n, size_t *used);
static int lg_http_fail(lg_http_t *h);


void
lg_http_init(lg_http_t *h, char *buf, size_t size)
{
    h->buf = buf;
    h->size = size;
    lg_http_reset(h);
}


void
lg_http_reset(lg_http_t *h)
{
    char    *buf = h->buf;
    size_t   size = h->size;

    /* LG_HTTP_IN_HEADER, nothing known */
    memset(h, 0, sizeof(*h));
    h->buf = buf;
    h->size = size;
}


int
lg_http_parse(lg_http_t *h, const char *p, size_t n, size_t *used)
{
    int  rc;

    *used = 0;

    switch (h->state) {

    case LG_HTTP_IN_HEADER:
        return lg_http_header(h, p, n, used);

    case LG_HTTP_IN_FIELDS:
        rc = lg_http_field(h);
        if (rc != LG_HTTP_AGAIN) {
            return rc;
        }
        /* the fields are over: the body may be in the same bytes */
        return lg_http_body(h, p, n, used);

    case LG_HTTP_COMPLETE:
        return LG_HTTP_DONE;

    case LG_HTTP_FAILED:
        return LG_HTTP_ERROR;

    default:
        return lg_http_body(h, p, n, used);
    }
}


int
lg_http_eof(lg_http_t *h)
{
    if (h->state == LG_HTTP_IN_UNTIL_EOF) {
        h->state = LG_HTTP_COMPLETE;
        return LG_HTTP_DONE;
    }
    return lg_http_fail(h);
}


/* Gathers the header up to its blank line; then parses the status line. */
static int
lg_http_header(lg_http_t *h, const char *p, size_t n, size_t *used)
{
    size_t   take, hdr_end;
    char    *end;
    int      major, minor, status;

    take = n;
    if (h->len + take > h->size - 1) {
        take = h->size - 1 - h->len;
        if (take == 0) {
            return lg_http_fail(h);
        }
    }
    memcpy(h->buf + h->len, p, take);
    h->len += take;
    h->buf[h->len] = '\0';
    end = strstr(h->buf, "\r\n\r\n");
    if (end == NULL) {
        if (take < n) {
            /* the buffer is full and more header is coming */
            return lg_http_fail(h);
        }
        *used = take;
        return LG_HTTP_AGAIN;
    }
    hdr_end = end - h->buf + 4;
    /* bytes given past the header are the body's */
    *used = take - (h->len - hdr_end);

    /* the last field line keeps its CRLF: every line ends with one */
    h->buf[hdr_end - 2] = '\0';
    if (sscanf(h->buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3
        || status < 100 || status > 599)
    {
        return lg_http_fail(h);
    }
    h->status = status;
    h->close = (major == 1 && minor == 0);
    h->field = strstr(h->buf, "\r\n") - h->buf;
    h->state = LG_HTTP_IN_FIELDS;
    return LG_HTTP_STATUS;
}


/* The next header field, split in place into name and value; a line with
 * no colon is skipped.  LG_HTTP_AGAIN when the fields are over. */
static int
lg_http_field(lg_http_t *h)
{
    char  *line, *nl, *v;

    for ( ;; ) {
        line = h->buf + h->field + 2;
        if (*line == '\0') {
            lg_http_framing(h);
            return LG_HTTP_AGAIN;
        }
        nl = strstr(line, "\r\n");
        if (nl == NULL) {
            /* cannot be: the header was cut after a CRLF */
            return lg_http_fail(h);
        }
        *nl = '\0';
        h->field = nl - h->buf;
        v = strchr(line, ':');
        if (v == NULL) {
            continue;
        }
        *v++ = '\0';
        while (*v == ' ' || *v == '\t') {
            v++;
        }
        if (lg_http_framing_field(h, line, v) != 0) {
            return lg_http_fail(h);
        }
        h->name = line;
        h->value = v;
        return LG_HTTP_FIELD;
    }
}


/* The fields that say how the body ends and whether the connection stays:
 * -1 when one cannot be used. */
static int
lg_http_framing_field(lg_http_t *h, const char *name, const char *value)
{
    long long  len;

    if (strcasecmp(name, "content-length") == 0) {
        len = strtoll(value, NULL, 10);
        if (len < 0) {
            return -1;
        }
        h->remaining = len;
        h->have_length = 1;

    } else if (strcasecmp(name, "transfer-encoding") == 0
               && strcasestr(value, "chunked") != NULL)
    {
        h->chunked = 1;

    } else if (strcasecmp(name, "connection") == 0) {
        if (strcasestr(value, "close") != NULL) {
            h->close = 1;
        } else if (strcasestr(value, "keep-alive") != NULL) {
            h->close = 0;
        }
    }
    return 0;
}


static void
lg_http_framing(lg_http_t *h)
{
    /* buf is line scratch from now on */
    h->len = 0;
    if (h->chunked) {
        h->state = LG_HTTP_IN_CHUNK_SIZE;
    } else if (h->have_length) {
        h->state = LG_HTTP_IN_LENGTH;
    } else {
        h->state = LG_HTTP_IN_UNTIL_EOF;
        h->close = 1;
    }
}


/* Body states: the chunk framing is taken a byte at a time, body bytes
 * go out as one event per call. */
static int
lg_http_body(lg_http_t *h, const char *p, size_t n, size_t *used)
{
    size_t      i, take;
    long long   sz;
    char       *end;

    i = 0;

    for ( ;; ) {

        switch (h->state) {

        case LG_HTTP_IN_LENGTH:
            if (h->remaining == 0) {
                h->state = LG_HTTP_COMPLETE;
                *used = i;
                return LG_HTTP_DONE;
            }
            /* fall through */

        case LG_HTTP_IN_CHUNK_DATA:
            if (i == n) {
                *used = n;
                return LG_HTTP_AGAIN;
            }
            take = (size_t) h->remaining < n - i ? (size_t) h->remaining
                                                 : n - i;
            h->remaining -= take;
            if (h->remaining == 0 && h->state == LG_HTTP_IN_CHUNK_DATA) {
                h->state = LG_HTTP_IN_CHUNK_CRLF;
            }
            h->body = p + i;
            h->body_len = take;
            *used = i + take;
            return LG_HTTP_BODY;

        case LG_HTTP_IN_UNTIL_EOF:
            if (i == n) {
                *used = n;
                return LG_HTTP_AGAIN;
            }
            h->body = p + i;
            h->body_len = n - i;
            *used = n;
            return LG_HTTP_BODY;

        case LG_HTTP_IN_CHUNK_SIZE:
        case LG_HTTP_IN_TRAILER:
            /* one line at a time in buf */
            if (i == n) {
                *used = n;
                return LG_HTTP_AGAIN;
            }
            if (h->len >= LG_HTTP_MAX_LINE || h->len + 1 >= h->size) {
                return lg_http_fail(h);
            }
            h->buf[h->len++] = p[i++];
            if (h->len < 2 || h->buf[h->len - 1] != '\n') {
                break;
            }
            h->buf[h->len] = '\0';
            if (h->state == LG_HTTP_IN_TRAILER) {
                if (h->len == 2) {
                    /* a two-byte line: the CRLF after the trailer fields */
                    h->state = LG_HTTP_COMPLETE;
                    *used = i;
                    return LG_HTTP_DONE;
                }
                h->len = 0;
                break;
            }
            /* strtoll stops at a chunk extension's ';' */
            sz = strtoll(h->buf, &end, 16);
            if (end == h->buf || sz < 0 || sz > (1LL << 40)) {
                return lg_http_fail(h);
            }
            h->len = 0;
            if (sz == 0) {
                h->state = LG_HTTP_IN_TRAILER;
            } else {
                h->remaining = sz;
                h->state = LG_HTTP_IN_CHUNK_DATA;
            }
            break;

        case LG_HTTP_IN_CHUNK_CRLF:
            if (i == n) {
                *used = n;
                return LG_HTTP_AGAIN;
            }
            if (p[i] == '\n') {
                h->state = LG_HTTP_IN_CHUNK_SIZE;
                h->len = 0;
            } else if (p[i] != '\r') {
                return lg_http_fail(h);
            }
            i++;
            break;

        default:
            return lg_http_fail(h);
        }
    }
}


static int
lg_http_fail(lg_http_t *h)
{
    h->state = LG_HTTP_FAILED;
    return LG_HTTP_ERROR;
}
