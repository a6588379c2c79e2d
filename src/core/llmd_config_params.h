/*
 * Plugin `parameters` of an EndpointPickerConfig: the defaults of every
 * plugin type and the keys each type reads, for the YAML loader.
 */
#ifndef LLMD_CONFIG_PARAMS_H
#define LLMD_CONFIG_PARAMS_H

#include "core/llmd_config_model.h"
#include "core/llmd_yaml.h"

/*
 * Sets the defaults of p->type, then reads its `parameters` mapping (params
 * may be NULL); unknown keys are warnings in cf, as GIE ignores them.
 * Returns -1 with "FILE:LINE: message" in ctx->err on a bad value.
 */
int llmd_plugin_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);

#endif /* LLMD_CONFIG_PARAMS_H */
