/*
 * Endpoint labels as one "k=v,k=v" text (see llmd_labels.h).
 */
#include <stdio.h>
#include <string.h>

#include "core/llmd_labels.h"


static int llmd_label_char(int c);
static int llmd_label_part(const char *s, size_t len, int key, char *err,
    size_t errlen);


int
llmd_labels_parse(const char *text, size_t len, char *out, char *err,
    size_t errlen)
{
    size_t       klen, vlen;
    const char  *p, *end, *item, *eq, *comma;

    if (len >= LLMD_LABELS_LEN) {
        snprintf(err, errlen, "labels are longer than %d bytes",
                 LLMD_LABELS_LEN - 1);
        return -1;
    }

    p = text;
    end = text + len;

    while (p < end) {
        item = p;
        comma = memchr(p, ',', end - p);
        if (comma == NULL) {
            comma = end;
        }

        eq = memchr(item, '=', comma - item);
        if (eq == NULL) {
            snprintf(err, errlen, "label \"%.*s\" is not key=value",
                     (int) (comma - item), item);
            return -1;
        }

        klen = eq - item;
        vlen = comma - eq - 1;

        if (llmd_label_part(item, klen, 1, err, errlen) != 0
            || llmd_label_part(eq + 1, vlen, 0, err, errlen) != 0)
        {
            return -1;
        }

        /* a key given twice: the earlier items are all valid, look there */
        for (p = text; p < item; p++) {
            if ((p == text || p[-1] == ',')
                && (size_t) (item - p) > klen && p[klen] == '='
                && memcmp(p, item, klen) == 0)
            {
                snprintf(err, errlen, "label \"%.*s\" is given twice",
                         (int) klen, item);
                return -1;
            }
        }

        p = comma + 1;

        if (comma + 1 == end) {
            snprintf(err, errlen, "labels end with \",\"");
            return -1;
        }
    }

    memcpy(out, text, len);
    out[len] = '\0';

    return 0;
}


int
llmd_labels_add(char *labels, const char *key, const char *value, char *err,
    size_t errlen)
{
    size_t  used, klen, vlen;

    klen = strlen(key);
    vlen = strlen(value);

    if (llmd_label_part(key, klen, 1, err, errlen) != 0
        || llmd_label_part(value, vlen, 0, err, errlen) != 0)
    {
        return -1;
    }

    if (llmd_labels_get(labels, key, &used) != NULL) {
        snprintf(err, errlen, "label \"%s\" is given twice", key);
        return -1;
    }

    used = strlen(labels);

    if (used + (used ? 1 : 0) + klen + 1 + vlen >= LLMD_LABELS_LEN) {
        snprintf(err, errlen, "labels are longer than %d bytes",
                 LLMD_LABELS_LEN - 1);
        return -1;
    }

    snprintf(labels + used, LLMD_LABELS_LEN - used, "%s%s=%s",
             used ? "," : "", key, value);

    return 0;
}


const char *
llmd_labels_get(const char *labels, const char *key, size_t *len)
{
    size_t       klen;
    const char  *p, *end;

    klen = strlen(key);

    for (p = labels; *p; p = end + (*end == ',')) {
        end = strchr(p, ',');
        if (end == NULL) {
            end = p + strlen(p);
        }

        if ((size_t) (end - p) > klen && p[klen] == '='
            && memcmp(p, key, klen) == 0)
        {
            *len = end - p - klen - 1;
            return p + klen + 1;
        }
    }

    return NULL;
}


static int
llmd_label_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}


/* A key (prefix/name, name not empty) or a value (may be empty). */
static int
llmd_label_part(const char *s, size_t len, int key, char *err,
    size_t errlen)
{
    size_t  i, slashes;

    if (key && len == 0) {
        snprintf(err, errlen, "a label has an empty key");
        return -1;
    }

    slashes = 0;

    for (i = 0; i < len; i++) {
        if (key && s[i] == '/' && ++slashes == 1 && i > 0 && i + 1 < len) {
            continue;
        }

        if (!llmd_label_char((unsigned char) s[i])) {
            snprintf(err, errlen, "label %s \"%.*s\" may only hold letters, "
                     "digits, '.', '-', '_'%s", key ? "key" : "value",
                     (int) len, s, key ? " and one '/'" : "");
            return -1;
        }
    }

    return 0;
}
