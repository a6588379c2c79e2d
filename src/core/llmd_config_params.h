/*
 * Plugin `parameters` of an EndpointPickerConfig: the defaults of every
 * plugin type and the keys each type reads, for the YAML loader
 * (llmd_config_params.c for scorers, pickers and discovery,
 * llmd_config_filters.c for filters, llmd_config_disagg.c for profile
 * handlers and deciders).
 */
#ifndef LLMD_CONFIG_PARAMS_H
#define LLMD_CONFIG_PARAMS_H

#include "core/llmd_config_model.h"
#include "core/llmd_yaml.h"

/*
 * Sets the defaults of p->type, a scorer, picker, producer or discovery
 * plugin, then reads its `parameters` mapping (params: a mapping or NULL);
 * unknown keys are warnings in cf, as GIE ignores them. Returns -1 with
 * "FILE:LINE: message" in ctx->err on a bad value.
 */
int llmd_plugin_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);

/* The parameters of filters, and of handlers and deciders (same contract;
   llmd_disagg_params() also takes prefill-header-handler). */
int llmd_filter_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
int llmd_disagg_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);

/*
 * Flow control (llmd_config_flow.c): the parameters of saturation
 * detectors and flow-control policies, and once every plugin is read the
 * featureGates, flowControl and saturationDetector fields of root.
 */
int llmd_flow_plugin_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
int llmd_config_flow(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *root);

/*
 * Once every plugin and profile is read: the stages the profile handler
 * runs (cf->decode, cf->prefill, cf->encode), its deciders resolved, and
 * which stage picks go into headers (llmd_config_disagg.c).
 */
int llmd_config_stages(llmd_yaml_ctx_t *ctx, llmd_config_t *cf);

#endif /* LLMD_CONFIG_PARAMS_H */
