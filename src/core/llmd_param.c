/*
 * Typed readers of plugin parameters, shared by the parameter parsers of
 * every plugin family (llmd_param.h).
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/llmd_param.h"


int
llmd_param_int(llmd_yaml_ctx_t *ctx, yaml_node_t *node, const char *what,
    int64_t *out)
{
    double  v;

    *out = 0;

    if (node == NULL || llmd_yaml_is_null(node)) {
        return 0;
    }

    if (llmd_yaml_number(ctx, node, what, &v) != 0) {
        return -1;
    }

    /* trunc, not a cast: a double beyond int64_t does not cast */
    if (v != trunc(v)) {
        return llmd_yaml_error(ctx, node, "%s must be an integer", what);
    }

    if (v > 1e9 || v < -1e9) {
        return llmd_yaml_error(ctx, node, "%s is out of range", what);
    }

    *out = (int64_t) v;
    return 0;
}


int
llmd_param_uint(llmd_yaml_ctx_t *ctx, yaml_node_t *node, const char *what,
    uint32_t dflt, uint32_t *out)
{
    int64_t  v;

    if (llmd_param_int(ctx, node, what, &v) != 0) {
        return -1;
    }

    *out = v > 0 ? (uint32_t) v : dflt;
    return 0;
}


int
llmd_param_count(llmd_yaml_ctx_t *ctx, yaml_node_t *node, const char *what,
    uint32_t dflt, uint32_t *out)
{
    int64_t  v;

    if (llmd_param_int(ctx, node, what, &v) != 0) {
        return -1;
    }

    if (v < 0) {
        return llmd_yaml_error(ctx, node, "%s cannot be negative", what);
    }

    *out = (node == NULL || llmd_yaml_is_null(node)) ? dflt : (uint32_t) v;
    return 0;
}


int
llmd_param_copy(llmd_yaml_ctx_t *ctx, yaml_node_t *node, const char *what,
    char *dst, size_t size)
{
    size_t       len;
    const char  *s;

    if (llmd_yaml_string(ctx, node, what, &s) != 0) {
        return -1;
    }

    len = strlen(s);
    if (len >= size) {
        return llmd_yaml_error(ctx, node, "%s is longer than %zu bytes",
                               what, size - 1);
    }

    memcpy(dst, s, len + 1);
    return 0;
}


int
llmd_param_strdup(llmd_yaml_ctx_t *ctx, yaml_node_t *node, const char *what,
    const char *dflt, char **out)
{
    const char  *s;

    s = dflt;

    if (node != NULL && !llmd_yaml_is_null(node)) {
        if (llmd_yaml_string(ctx, node, what, &s) != 0) {
            return -1;
        }

        if (s[0] == '\0') {
            s = dflt;
        }
    }

    if (s == NULL) {
        return 0;
    }

    *out = strdup(s);
    if (*out == NULL) {
        return llmd_yaml_error(ctx, node, "out of memory");
    }

    return 0;
}


int
llmd_param_header(llmd_yaml_ctx_t *ctx, yaml_node_t *node, const char *what,
    const char *dflt, char *dst, size_t size)
{
    size_t       len, i;
    const char  *s;

    s = "";

    if (node != NULL && !llmd_yaml_is_null(node)
        && llmd_yaml_string(ctx, node, what, &s) != 0)
    {
        return -1;
    }

    while (isspace((unsigned char) *s)) {
        s++;
    }

    len = strlen(s);
    while (len > 0 && isspace((unsigned char) s[len - 1])) {
        len--;
    }

    if (len == 0) {
        s = dflt;
        len = strlen(s);
    }

    if (len >= size) {
        return llmd_yaml_error(ctx, node, "%s is longer than %zu bytes",
                               what, size - 1);
    }

    /* request header names are compared in lower case */
    for (i = 0; i < len; i++) {
        dst[i] = (char) tolower((unsigned char) s[i]);
    }

    dst[len] = '\0';
    return 0;
}


int
llmd_param_warn_unknown(llmd_config_t *cf, yaml_document_t *doc,
    yaml_node_t *params, const llmd_plugin_t *p, const char *const *known)
{
    size_t             i;
    const char        *key;
    yaml_node_t       *kn;
    yaml_node_pair_t  *pair;

    if (params == NULL) {
        return 0;
    }

    for (pair = params->data.mapping.pairs.start;
         pair < params->data.mapping.pairs.top;
         pair++)
    {
        kn = yaml_document_get_node(doc, pair->key);
        key = llmd_yaml_scalar(kn);
        if (key == NULL) {
            continue;
        }

        for (i = 0; known[i] != NULL; i++) {
            if (strcmp(known[i], key) == 0) {
                break;
            }
        }

        if (known[i] == NULL
            && llmd_config_warn(cf, llmd_yaml_line(kn), "parameter \"%s\" "
                                "of plugin \"%s\" (%s) is not used; ignored",
                                key, p->name, p->type_name)
               != 0)
        {
            return -1;
        }
    }

    return 0;
}
