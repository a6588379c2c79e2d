/*
 * Typed readers of plugin parameters: integers with upstream's defaulting,
 * strings, header names, and the warning for keys a plugin does not read.
 * Errors are "FILE:LINE: message" in ctx->err, as every loader error.
 */
#ifndef LLMD_PARAM_H
#define LLMD_PARAM_H

#include "core/llmd_config_model.h"
#include "core/llmd_yaml.h"

/* An integer parameter (absent: 0); a fraction or beyond 1e9 is an error. */
int llmd_param_int(llmd_yaml_ctx_t *ctx, yaml_node_t *node,
    const char *what, int64_t *out);

/*
 * An integer parameter: absent, null or <= 0 gives dflt, as upstream's
 * integer parameters; a fraction or more than 1e9 is an error.
 */
int llmd_param_uint(llmd_yaml_ctx_t *ctx, yaml_node_t *node,
    const char *what, uint32_t dflt, uint32_t *out);

/* An integer parameter that must not be negative (absent: dflt). */
int llmd_param_count(llmd_yaml_ctx_t *ctx, yaml_node_t *node,
    const char *what, uint32_t dflt, uint32_t *out);

/* A string parameter copied into dst[size]; too long is an error. */
int llmd_param_copy(llmd_yaml_ctx_t *ctx, yaml_node_t *node,
    const char *what, char *dst, size_t size);

/*
 * A string parameter: *out is a malloc'ed copy, or dflt copied when the
 * node is absent, null or empty (dflt NULL: *out stays NULL).
 */
int llmd_param_strdup(llmd_yaml_ctx_t *ctx, yaml_node_t *node,
    const char *what, const char *dflt, char **out);

/*
 * A header name parameter: trimmed and lowercased into dst[size]; absent or
 * blank gives dflt.
 */
int llmd_param_header(llmd_yaml_ctx_t *ctx, yaml_node_t *node,
    const char *what, const char *dflt, char *dst, size_t size);

/* Warns once per key of params that is not in known (NULL-terminated). */
int llmd_param_warn_unknown(llmd_config_t *cf, yaml_document_t *doc,
    yaml_node_t *params, const llmd_plugin_t *p, const char *const *known);

#endif /* LLMD_PARAM_H */
