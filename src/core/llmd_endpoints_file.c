/*
 * llm-d's file-discovery endpoints file -> a list of endpoints (see
 * llmd_endpoints_file.h).  libyaml reads it; JSON is YAML too.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/llmd_yaml.h"
#include "core/llmd_endpoints_file.h"


static int llmd_endpoint_entry(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *item, llmd_endpoint_entry_t *e);
static int llmd_endpoint_labels(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *map, char *labels);
static void llmd_endpoints_skip(llmd_endpoints_file_t *ef, const char *why);


llmd_endpoints_file_t *
llmd_endpoints_file_load(const char *path, size_t max, char *err,
    size_t errlen)
{
    char                   *buf;
    size_t                  len;
    llmd_endpoints_file_t  *ef;

    if (llmd_yaml_read_file(path, LLMD_ENDPOINTS_FILE_MAX_BYTES, &buf, &len,
                            err, errlen)
        != 0)
    {
        return NULL;
    }

    ef = llmd_endpoints_file_parse(buf, len, path, max, err, errlen);

    free(buf);

    return ef;
}


llmd_endpoints_file_t *
llmd_endpoints_file_parse(const char *text, size_t len, const char *name,
    size_t max, char *err, size_t errlen)
{
    char                    why[LLMD_ERRLEN];
    size_t                  i, n;
    yaml_node_t            *root, *list, *item;
    yaml_document_t         doc;
    llmd_yaml_ctx_t         ctx, ectx;
    yaml_node_item_t       *it;
    llmd_endpoints_file_t  *ef;

    if (len > LLMD_ENDPOINTS_FILE_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %d bytes", name,
                 LLMD_ENDPOINTS_FILE_MAX_BYTES);
        return NULL;
    }

    if (llmd_yaml_load(text, len, name, &doc, err, errlen) != 0) {
        return NULL;
    }

    ctx.file = name;
    ctx.err = err;
    ctx.errlen = errlen;

    ef = NULL;
    root = yaml_document_get_root_node(&doc);
    list = llmd_yaml_get(&doc, root, "endpoints");

    if (root == NULL) {
        /* most likely a file being written: keep what was known */
        snprintf(err, errlen, "%s: the file is empty", name);
        goto done;
    }

    if (root->type != YAML_MAPPING_NODE) {
        snprintf(err, errlen, "%s:1: an endpoints file is a mapping with "
                 "an \"endpoints\" list", name);
        goto done;
    }

    if (list == NULL || llmd_yaml_is_null(list)) {
        /* llm-d reads an absent list as no endpoints */
        n = 0;

    } else if (list->type != YAML_SEQUENCE_NODE) {
        (void) llmd_yaml_error(&ctx, list, "\"endpoints\" must be a list");
        goto done;

    } else {
        n = list->data.sequence.items.top - list->data.sequence.items.start;
    }

    ef = calloc(1, sizeof(llmd_endpoints_file_t));
    if (ef == NULL || (n && (ef->entries = calloc(n < max ? n : max,
                                 sizeof(llmd_endpoint_entry_t))) == NULL))
    {
        snprintf(err, errlen, "%s: out of memory", name);
        free(ef);
        ef = NULL;
        goto done;
    }

    if (n == 0) {
        goto done;
    }

    ectx.file = name;
    ectx.err = why;
    ectx.errlen = sizeof(why);

    for (it = list->data.sequence.items.start;
         it < list->data.sequence.items.top;
         it++)
    {
        item = yaml_document_get_node(&doc, *it);

        if (ef->n == max) {
            (void) llmd_yaml_error(&ectx, item, "more than %zu endpoints",
                                   max);
            llmd_endpoints_skip(ef, why);
            continue;
        }

        if (llmd_endpoint_entry(&ectx, &doc, item, &ef->entries[ef->n])
            != 0)
        {
            llmd_endpoints_skip(ef, why);
            continue;
        }

        for (i = 0; i < ef->n; i++) {
            if (strcmp(ef->entries[i].name, ef->entries[ef->n].name) == 0) {
                break;
            }
        }

        if (i < ef->n) {
            (void) llmd_yaml_error(&ectx, item, "endpoint \"%s\" is listed "
                                   "twice", ef->entries[i].name);
            llmd_endpoints_skip(ef, why);
            continue;
        }

        ef->n++;
    }

done:

    yaml_document_delete(&doc);
    return ef;
}


void
llmd_endpoints_file_free(llmd_endpoints_file_t *ef)
{
    if (ef) {
        free(ef->entries);
        free(ef);
    }
}


static int
llmd_endpoint_entry(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *item, llmd_endpoint_entry_t *e)
{
    char           *end;
    long            port;
    const char     *name, *ns, *addr, *p;
    unsigned char   ip[16];
    yaml_node_t    *n;

    memset(e, 0, sizeof(llmd_endpoint_entry_t));

    if (item == NULL || item->type != YAML_MAPPING_NODE) {
        return llmd_yaml_error(ctx, item, "an endpoint must be a mapping");
    }

    n = llmd_yaml_get(doc, item, "name");
    if (n == NULL || llmd_yaml_string(ctx, n, "name", &name) != 0
        || name[0] == '\0')
    {
        return llmd_yaml_error(ctx, n ? n : item, "endpoint name is "
                               "missing");
    }

    ns = "default";
    n = llmd_yaml_get(doc, item, "namespace");
    if (n != NULL && !llmd_yaml_is_null(n)
        && (llmd_yaml_string(ctx, n, "namespace", &ns) != 0 || ns[0] == 0))
    {
        ns = "default";
    }

    if ((size_t) snprintf(e->name, sizeof(e->name), "%s/%s", ns, name)
        >= sizeof(e->name))
    {
        return llmd_yaml_error(ctx, item, "endpoint name \"%s\" is too long",
                               name);
    }

    n = llmd_yaml_get(doc, item, "address");
    if (n == NULL || llmd_yaml_string(ctx, n, "address", &addr) != 0) {
        return llmd_yaml_error(ctx, n ? n : item, "endpoint \"%s\": address "
                               "is missing", name);
    }

    n = llmd_yaml_get(doc, item, "port");
    p = llmd_yaml_scalar(n);
    port = p ? strtol(p, &end, 10) : 0;

    if (p == NULL || p[0] == '\0' || *end != '\0' || port < 1
        || port > 65535)
    {
        return llmd_yaml_error(ctx, n ? n : item, "endpoint \"%s\": invalid "
                               "port \"%s\" (1-65535)", name, p ? p : "");
    }

    if (inet_pton(AF_INET, addr, ip) == 1) {
        snprintf(e->address, sizeof(e->address), "%s:%ld", addr, port);

    } else if (inet_pton(AF_INET6, addr, ip) == 1) {
        snprintf(e->address, sizeof(e->address), "[%s]:%ld", addr, port);

    } else {
        return llmd_yaml_error(ctx, item, "endpoint \"%s\": invalid IP "
                               "address \"%s\"", name, addr);
    }

    return llmd_endpoint_labels(ctx, doc, llmd_yaml_get(doc, item, "labels"),
                                e->labels);
}


static int
llmd_endpoint_labels(llmd_yaml_ctx_t *ctx, yaml_document_t *doc,
    yaml_node_t *map, char *labels)
{
    char               why[LLMD_ERRLEN];
    const char        *k, *v;
    yaml_node_pair_t  *pair;

    labels[0] = '\0';

    if (map == NULL || llmd_yaml_is_null(map)) {
        return 0;
    }

    if (map->type != YAML_MAPPING_NODE) {
        return llmd_yaml_error(ctx, map, "labels must be a mapping");
    }

    for (pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top;
         pair++)
    {
        k = llmd_yaml_scalar(yaml_document_get_node(doc, pair->key));
        v = llmd_yaml_scalar(yaml_document_get_node(doc, pair->value));

        if (k == NULL || v == NULL) {
            return llmd_yaml_error(ctx, map, "labels must map strings to "
                                   "strings");
        }

        if (llmd_labels_add(labels, k, v, why, sizeof(why)) != 0) {
            return llmd_yaml_error(ctx, map, "%s", why);
        }
    }

    return 0;
}


static void
llmd_endpoints_skip(llmd_endpoints_file_t *ef, const char *why)
{
    if (ef->skipped++ == 0) {
        snprintf(ef->warning, sizeof(ef->warning), "%s", why);
    }
}
