/*
 * The EndpointPickerConfig YAML loader (libyaml): accepts both apiVersions
 * (inference.networking.x-k8s.io/v1alpha1 and llm-d.ai/v1alpha1), old and
 * new plugin names, and applies the GIE >= v1.0 defaulting rules
 * (docs/scheduling.md). The model it builds: llmd_config_model.h.
 */
#ifndef LLMD_CONFIG_H
#define LLMD_CONFIG_H

#include "core/llmd_config_model.h"

/*
 * Load a file. On error returns NULL and writes "FILE:LINE: message" into
 * err (errlen >= LLMD_ERRLEN recommended).
 */
llmd_config_t *llmd_config_load_file(const char *path, char *err,
    size_t errlen);

/* Same, from memory; name is used in messages in place of a path. */
llmd_config_t *llmd_config_load_string(const char *yaml, size_t len,
    const char *name, char *err, size_t errlen);

/*
 * llm-d's built-in default (GIE >= v1.4): queue-scorer 2,
 * kv-cache-utilization-scorer 2, prefix-cache-scorer 3, max-score-picker,
 * single-profile-handler.
 */
llmd_config_t *llmd_config_default(char *err, size_t errlen);

#endif /* LLMD_CONFIG_H */
