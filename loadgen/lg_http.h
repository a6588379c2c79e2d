/*
 * The HTTP/1.1 response parser of llmd-loadgen: the status line, the header
 * fields, then the body as framed by Content-Length, the chunked transfer
 * coding or the end of the connection.  Pure (no sockets): the caller
 * feeds the bytes it received and gets one event per call, so a reply may
 * arrive split at any byte.
 */
#ifndef LG_HTTP_H
#define LG_HTTP_H

#include <stddef.h>

/* the longest chunk-size or trailer line */
#define LG_HTTP_MAX_LINE  1024

/* What lg_http_parse() found. */
enum {
    LG_HTTP_ERROR = -1,   /* not a reply we understand: give up on it */
    LG_HTTP_AGAIN = 0,    /* every byte given was used, none to report */
    LG_HTTP_STATUS,       /* the header is complete: status is known */
    LG_HTTP_FIELD,        /* one header field: name, value */
    LG_HTTP_BODY,         /* body bytes: body, body_len */
    LG_HTTP_DONE          /* the reply is complete; later bytes are not its */
};

typedef enum {
    LG_HTTP_IN_HEADER = 0,
    LG_HTTP_IN_FIELDS,     /* the header is complete, fields not all out */
    LG_HTTP_IN_LENGTH,     /* a Content-Length body */
    LG_HTTP_IN_CHUNK_SIZE,
    LG_HTTP_IN_CHUNK_DATA,
    LG_HTTP_IN_CHUNK_CRLF,
    LG_HTTP_IN_TRAILER,
    LG_HTTP_IN_UNTIL_EOF,  /* no framing: the body ends with the connection */
    LG_HTTP_COMPLETE,
    LG_HTTP_FAILED
} lg_http_state_e;

typedef struct {
    lg_http_state_e  state;
    char            *buf;        /* the header, then one chunk-size line */
    size_t           size;       /* of buf: a header has size - 1 bytes */
    size_t           len;        /* bytes in buf */
    size_t           field;      /* the CRLF before the next header line */
    long long        remaining;  /* body or chunk bytes still to come */
    int              status;     /* 0 until LG_HTTP_STATUS */
    int              chunked;
    int              have_length;
    int              close;      /* the server closes after this reply */

    const char      *name;       /* LG_HTTP_FIELD, NUL-terminated, in buf */
    const char      *value;
    const char      *body;       /* LG_HTTP_BODY, in the bytes given */
    size_t           body_len;
} lg_http_t;

/* Starts a parser on buf (at least LG_HTTP_MAX_LINE + 1 bytes). */
void lg_http_init(lg_http_t *h, char *buf, size_t size);

/* Gets ready for the next reply; buf is kept. */
void lg_http_reset(lg_http_t *h);

/* Parses what it can of p[0, n): one event per call, *used says how many
 * bytes it took.  Call again with the rest until LG_HTTP_AGAIN, then with
 * the next bytes received; LG_HTTP_DONE may come with no bytes left
 * (Content-Length: 0). */
int lg_http_parse(lg_http_t *h, const char *p, size_t n, size_t *used);

/* The connection ended: LG_HTTP_DONE when that ends the reply. */
int lg_http_eof(lg_http_t *h);

#endif /* LG_HTTP_H */
