/*
 * Fuzz target: endpoint discovery answers.  The input is parsed as a
 * file-discovery endpoints file (llmd_endpoints_file_parse,
 * core/llmd_endpoints_file.h), keeping at most 8 entries, and as a label
 * text (llmd_labels_parse, core/llmd_labels.h).  The labels of every entry
 * the file gives must parse back; every key of a label text that parses
 * must be found again with its value (llmd_labels_get).
 */
#include <string.h>

#include "core/llmd_endpoints_file.h"
#include "fuzz_common.h"


#define FUZZ_MAX_ENTRIES  8


static void fuzz_check_entry(const llmd_endpoint_entry_t *e);
static void fuzz_check_labels(const char *labels);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                     rc;
    char                    err[LLMD_ERRLEN], out[LLMD_LABELS_LEN];
    size_t                  i;
    llmd_endpoints_file_t  *ef;

    err[0] = '\0';
    ef = llmd_endpoints_file_parse((const char *) data, size, "fuzz.yaml",
                                   FUZZ_MAX_ENTRIES, err, sizeof(err));

    if (ef == NULL) {
        FUZZ_CHECK(err[0] != '\0');

    } else {
        FUZZ_CHECK(ef->n <= FUZZ_MAX_ENTRIES);
        FUZZ_CHECK(memchr(ef->warning, '\0', LLMD_ERRLEN) != NULL);

        for (i = 0; i < ef->n; i++) {
            fuzz_check_entry(&ef->entries[i]);
        }

        llmd_endpoints_file_free(ef);
    }

    err[0] = '\0';
    rc = llmd_labels_parse((const char *) data, size, out, err, sizeof(err));

    if (rc == 0) {
        FUZZ_CHECK(size < LLMD_LABELS_LEN);
        FUZZ_CHECK(memcmp(out, data, size) == 0 && out[size] == '\0');
        fuzz_check_labels(out);

    } else {
        FUZZ_CHECK(rc == -1 && err[0] != '\0');
    }

    return 0;
}


static void
fuzz_check_entry(const llmd_endpoint_entry_t *e)
{
    int   rc;
    char  err[LLMD_ERRLEN], out[LLMD_LABELS_LEN];

    FUZZ_CHECK(memchr(e->name, '\0', sizeof(e->name)) != NULL);
    FUZZ_CHECK(memchr(e->address, '\0', sizeof(e->address)) != NULL);
    FUZZ_CHECK(memchr(e->labels, '\0', sizeof(e->labels)) != NULL);
    FUZZ_CHECK(e->name[0] != '\0' && e->address[0] != '\0');

    rc = llmd_labels_parse(e->labels, strlen(e->labels), out, err,
                           sizeof(err));
    FUZZ_CHECK(rc == 0 && strcmp(out, e->labels) == 0);
    fuzz_check_labels(e->labels);
}


/* Each key=value item of valid labels is what llmd_labels_get finds. */
static void
fuzz_check_labels(const char *labels)
{
    char         key[LLMD_LABELS_LEN];
    size_t       klen, vlen, len;
    const char  *p, *eq, *end, *v;

    for (p = labels; *p != '\0'; p = end + (*end == ',')) {
        end = strchr(p, ',');
        if (end == NULL) {
            end = p + strlen(p);
        }

        eq = memchr(p, '=', end - p);
        FUZZ_CHECK(eq != NULL);

        klen = eq - p;
        vlen = end - eq - 1;
        memcpy(key, p, klen);
        key[klen] = '\0';

        v = llmd_labels_get(labels, key, &len);
        FUZZ_CHECK(v == eq + 1 && len == vlen);
    }
}
