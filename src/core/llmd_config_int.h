/*
 * Internals shared by the config loader (llmd_config.c) and the plugin
 * parameter readers (llmd_config_params.c).
 */
#ifndef LLMD_CONFIG_INT_H
#define LLMD_CONFIG_INT_H

#include "core/llmd_config.h"
#include "core/llmd_yaml.h"

/* Bounds that keep a hostile file from growing the model without limit. */
#define LLMD_CONFIG_MAX_PLUGINS    64
#define LLMD_CONFIG_MAX_PROFILES   16
#define LLMD_CONFIG_MAX_WARNINGS   64
#define LLMD_CONFIG_MAX_BYTES      (1024 * 1024)

/* Appends a warning "FILE:LINE: message" to cf; -1 only when out of memory. */
int llmd_config_warn(llmd_config_t *cf, const yaml_node_t *node,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Sets the defaults of p->type, then reads its `parameters` mapping
   (params may be NULL). */
int llmd_plugin_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);

/* Whether the type is a scorer / a picker / a profile handler. */
int llmd_plugin_is_scorer(llmd_plugin_type_t type);
int llmd_plugin_is_picker(llmd_plugin_type_t type);

#endif /* LLMD_CONFIG_INT_H */
