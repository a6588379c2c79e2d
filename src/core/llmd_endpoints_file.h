/*
 * llm-d's file-discovery endpoints file (YAML or JSON, at most 1 MiB):
 *
 *   endpoints:
 *   - name: vllm-0            # required, unique in the file
 *     namespace: default      # optional
 *     address: 10.0.0.1       # required: an IPv4 (or IPv6) literal
 *     port: "8000"            # required: 1..65535, string or number
 *     labels:                 # optional
 *       llm-d.ai/role: decode
 *
 * As llm-d does, an invalid entry is skipped with a warning and the rest
 * is used; a file that cannot be read or parsed is an error as a whole.
 */
#ifndef LLMD_ENDPOINTS_FILE_H
#define LLMD_ENDPOINTS_FILE_H

#include "core/llmd_common.h"
#include "core/llmd_labels.h"

#define LLMD_ENDPOINTS_FILE_MAX_BYTES  (1024 * 1024)
#define LLMD_ENDPOINT_NAME_LEN         128
#define LLMD_ENDPOINT_ADDR_LEN         64      /* "ip:port", IPv6 in [] */

typedef struct {
    char      name[LLMD_ENDPOINT_NAME_LEN];    /* namespace/name */
    char      address[LLMD_ENDPOINT_ADDR_LEN]; /* "10.0.0.1:8000" */
    char      labels[LLMD_LABELS_LEN];         /* "k=v,k=v" */
} llmd_endpoint_entry_t;

typedef struct {
    llmd_endpoint_entry_t  *entries;
    size_t                  n;
    size_t                  skipped;           /* invalid entries */
    char                    warning[LLMD_ERRLEN];  /* the first skip */
} llmd_endpoints_file_t;

/*
 * Loads path, keeping at most max entries (more are skipped and counted).
 * NULL with "PATH[:LINE]: message" in err when the file as a whole is
 * unusable (missing, too large, not YAML, no `endpoints` list).
 */
llmd_endpoints_file_t *llmd_endpoints_file_load(const char *path,
    size_t max, char *err, size_t errlen);

/* The same from text in memory; name stands for the path in messages. */
llmd_endpoints_file_t *llmd_endpoints_file_parse(const char *text,
    size_t len, const char *name, size_t max, char *err, size_t errlen);

void llmd_endpoints_file_free(llmd_endpoints_file_t *ef);

#endif /* LLMD_ENDPOINTS_FILE_H */
