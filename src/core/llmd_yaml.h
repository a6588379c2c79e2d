/*
 * Small typed accessors over a libyaml document tree, for the config
 * loader: every failure names the line of the offending node.
 */
#ifndef LLMD_YAML_H
#define LLMD_YAML_H

#include <yaml.h>
#include "core/llmd_common.h"

/* Where errors go: "FILE:LINE: message". */
typedef struct {
    const char  *file;
    char        *err;
    size_t       errlen;
} llmd_yaml_ctx_t;

/* 1-based line of a node. */
int llmd_yaml_line(const yaml_node_t *node);

/* Formats "FILE:LINE: message" into ctx->err; always returns -1. */
int llmd_yaml_error(llmd_yaml_ctx_t *ctx, const yaml_node_t *node,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The same at a given line (e.g. a plugin's). */
int llmd_yaml_error_at(llmd_yaml_ctx_t *ctx, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Value of key in a mapping node, or NULL (also when node is no mapping). */
yaml_node_t *llmd_yaml_get(yaml_document_t *doc, yaml_node_t *map,
    const char *key);

/* NUL-terminated text of a scalar node, or NULL for other node kinds. */
const char *llmd_yaml_scalar(const yaml_node_t *node);

/* Whether a scalar is YAML's null ("", "~", "null"). */
int llmd_yaml_is_null(const yaml_node_t *node);

/* Typed reads; -1 with an error naming what was expected. */
int llmd_yaml_number(llmd_yaml_ctx_t *ctx, const yaml_node_t *node,
    const char *what, double *out);
int llmd_yaml_bool(llmd_yaml_ctx_t *ctx, const yaml_node_t *node,
    const char *what, int *out);
int llmd_yaml_string(llmd_yaml_ctx_t *ctx, const yaml_node_t *node,
    const char *what, const char **out);

/*
 * Go duration ("2m", "1.5s", "300ms", "1h30m") or a plain number of
 * nanoseconds, converted to milliseconds.
 */
int llmd_yaml_duration_ms(llmd_yaml_ctx_t *ctx, const yaml_node_t *node,
    const char *what, uint64_t *out);

/*
 * Reads a whole file of at most max bytes into a malloc'ed, NUL-terminated
 * buffer; -1 with "PATH: why" in err (cannot open, larger than max, ...).
 */
int llmd_yaml_read_file(const char *path, size_t max, char **buf,
    size_t *len, char *err, size_t errlen);

/*
 * Parses the first document of text into doc (yaml_document_delete() it);
 * -1 with "NAME:LINE: YAML syntax error: ..." in err.
 */
int llmd_yaml_load(const char *text, size_t len, const char *name,
    yaml_document_t *doc, char *err, size_t errlen);

#endif /* LLMD_YAML_H */
