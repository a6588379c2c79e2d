/*
 * Endpoint labels (Kubernetes-style key=value pairs, e.g.
 * llm-d.ai/role=decode) kept as one bounded text "k=v,k=v", so they fit in
 * a shared-memory endpoint slot as they are and print as they are.
 */
#ifndef LLMD_LABELS_H
#define LLMD_LABELS_H

#include "core/llmd_common.h"

/* Bytes of a label text, NUL included. */
#define LLMD_LABELS_LEN  256

/*
 * Checks "k=v,k=v" (keys: letters, digits, '.', '-', '_', '/', at most one
 * '/'; values: letters, digits, '.', '-', '_', may be empty; no duplicate
 * key) and copies it to out[LLMD_LABELS_LEN].  Returns 0, or -1 with a
 * message in err.
 */
int llmd_labels_parse(const char *text, size_t len, char *out, char *err,
    size_t errlen);

/* Appends key=value to labels[LLMD_LABELS_LEN]; -1 with err if either is
   not a valid label or the text would be too long. */
int llmd_labels_add(char *labels, const char *key, const char *value,
    char *err, size_t errlen);

/* The value of key in labels, or NULL; *len is its length. */
const char *llmd_labels_get(const char *labels, const char *key,
    size_t *len);

#endif /* LLMD_LABELS_H */
