/*
 * Typed accessors over a libyaml document tree (see llmd_yaml.h).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/llmd_yaml.h"


static int llmd_yaml_verror(llmd_yaml_ctx_t *ctx, int line, const char *fmt,
    va_list ap);


int
llmd_yaml_line(const yaml_node_t *node)
{
    return node ? (int) node->start_mark.line + 1 : 0;
}


int
llmd_yaml_error(llmd_yaml_ctx_t *ctx, const yaml_node_t *node,
    const char *fmt, ...)
{
    int      rc;
    va_list  ap;

    va_start(ap, fmt);
    rc = llmd_yaml_verror(ctx, llmd_yaml_line(node), fmt, ap);
    va_end(ap);

    return rc;
}


int
llmd_yaml_error_at(llmd_yaml_ctx_t *ctx, int line, const char *fmt, ...)
{
    int      rc;
    va_list  ap;

    va_start(ap, fmt);
    rc = llmd_yaml_verror(ctx, line, fmt, ap);
    va_end(ap);

    return rc;
}


static int
llmd_yaml_verror(llmd_yaml_ctx_t *ctx, int line, const char *fmt,
    va_list ap)
{
    int  n;

    if (ctx->err == NULL || ctx->errlen == 0) {
        return -1;
    }

    n = snprintf(ctx->err, ctx->errlen, "%s:%d: ", ctx->file, line);
    if (n < 0 || (size_t) n >= ctx->errlen) {
        return -1;
    }

    vsnprintf(ctx->err + n, ctx->errlen - n, fmt, ap);

    return -1;
}


yaml_node_t *
llmd_yaml_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    const char         *k;
    yaml_node_t        *kn;
    yaml_node_pair_t   *pair;

    if (map == NULL || map->type != YAML_MAPPING_NODE) {
        return NULL;
    }

    for (pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top;
         pair++)
    {
        kn = yaml_document_get_node(doc, pair->key);
        k = llmd_yaml_scalar(kn);
        if (k != NULL && strcmp(k, key) == 0) {
            return yaml_document_get_node(doc, pair->value);
        }
    }

    return NULL;
}


const char *
llmd_yaml_scalar(const yaml_node_t *node)
{
    if (node == NULL || node->type != YAML_SCALAR_NODE) {
        return NULL;
    }

    /* libyaml NUL-terminates scalar values */
    return (const char *) node->data.scalar.value;
}


int
llmd_yaml_is_null(const yaml_node_t *node)
{
    const char  *v;

    v = llmd_yaml_scalar(node);
    if (v == NULL || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
        return 0;
    }

    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0
           || strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}


int
llmd_yaml_number(llmd_yaml_ctx_t *ctx, const yaml_node_t *node,
    const char *what, double *out)
{
    char        *end;
    double       v;
    const char  *s;

    s = llmd_yaml_scalar(node);
    if (s == NULL || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE
        || s[0] == '\0')
    {
        return llmd_yaml_error(ctx, node, "%s must be a number", what);
    }

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v)) {
        return llmd_yaml_error(ctx, node, "%s must be a number, not \"%s\"",
                               what, s);
    }

    *out = v;
    return 0;
}


int
llmd_yaml_bool(llmd_yaml_ctx_t *ctx, const yaml_node_t *node,
    const char *what, int *out)
{
    const char  *s;

    s = llmd_yaml_scalar(node);
    if (s != NULL && node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (strcasecmp(s, "true") == 0) {
            *out = 1;
            return 0;
        }

        if (strcasecmp(s, "false") == 0) {
            *out = 0;
            return 0;
        }
    }

    return llmd_yaml_error(ctx, node, "%s must be true or false", what);
}


int
llmd_yaml_string(llmd_yaml_ctx_t *ctx, const yaml_node_t *node,
    const char *what, const char **out)
{
    const char  *s;

    s = llmd_yaml_scalar(node);
    if (s == NULL) {
        return llmd_yaml_error(ctx, node, "%s must be a string", what);
    }

    *out = s;
    return 0;
}


int
llmd_yaml_duration_ms(llmd_yaml_ctx_t *ctx, const yaml_node_t *node,
    const char *what, uint64_t *out)
{
    char        *end;
    double       v, total, unit;
    const char  *s, *p;

    s = llmd_yaml_scalar(node);
    if (s == NULL || s[0] == '\0') {
        return llmd_yaml_error(ctx, node, "%s must be a duration", what);
    }

    /*
     * a bare number is nanoseconds, as Go's time.Duration in JSON; bounded
     * like a duration with units below, before the cast (a double beyond
     * uint64_t does not convert)
     */
    v = strtod(s, &end);
    if (*end == '\0' && end != s) {
        v /= 1e6;
        if (v < 0 || !isfinite(v) || v > 1e15) {
            goto invalid;
        }

        *out = (uint64_t) v;
        return 0;
    }

    total = 0;
    p = s;

    while (*p) {
        v = strtod(p, &end);
        if (end == p || v < 0 || !isfinite(v)) {
            goto invalid;
        }

        p = end;

        if (strncmp(p, "ns", 2) == 0) {
            unit = 1e-6;
            p += 2;
        } else if (strncmp(p, "us", 2) == 0) {
            unit = 1e-3;
            p += 2;
        } else if (strncmp(p, "ms", 2) == 0) {
            unit = 1;
            p += 2;
        } else if (*p == 's') {
            unit = 1e3;
            p++;
        } else if (*p == 'm') {
            unit = 60e3;
            p++;
        } else if (*p == 'h') {
            unit = 3600e3;
            p++;
        } else {
            goto invalid;
        }

        total += v * unit;
    }

    if (total > 1e15) {
        goto invalid;
    }

    *out = (uint64_t) total;
    return 0;

invalid:

    return llmd_yaml_error(ctx, node,
                           "%s must be a duration like \"2m\" or \"500ms\", "
                           "not \"%s\"", what, s);
}


int
llmd_yaml_read_file(const char *path, size_t max, char **buf, size_t *len,
    char *err, size_t errlen)
{
    FILE    *f;
    char    *p;
    size_t   n;

    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }

    p = malloc(max + 1);
    if (p == NULL) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }

    n = fread(p, 1, max + 1, f);

    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto failed;
    }

    if (n > max) {
        snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
        goto failed;
    }

    fclose(f);
    p[n] = '\0';
    *buf = p;
    *len = n;

    return 0;

failed:

    fclose(f);
    free(p);
    return -1;
}


int
llmd_yaml_load(const char *text, size_t len, const char *name,
    yaml_document_t *doc, char *err, size_t errlen)
{
    yaml_parser_t  parser;

    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory", name);
        return -1;
    }

    yaml_parser_set_input_string(&parser, (const unsigned char *) text, len);

    if (!yaml_parser_load(&parser, doc)) {
        snprintf(err, errlen, "%s:%zu: YAML syntax error: %s%s%s", name,
                 (parser.problem ? parser.problem_mark.line
                                 : parser.context_mark.line) + 1,
                 parser.problem ? parser.problem : "unknown problem",
                 parser.context ? " " : "",
                 parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return -1;
    }

    yaml_parser_delete(&parser);
    return 0;
}
