/*
 * Loading an EndpointPickerConfig in a cmocka test: from a string (named
 * t.yaml in messages) or a file; a load error fails the test with it.
 */
#ifndef TEST_EPP_H
#define TEST_EPP_H

#include <string.h>

#include "core/llmd_config.h"


static inline llmd_config_t *
load(const char *yaml)
{
    char            err[LLMD_ERRLEN];
    llmd_config_t  *cf;

    cf = llmd_config_load_string(yaml, strlen(yaml), "t.yaml", err,
                                 sizeof(err));
    if (cf == NULL) {
        fail_msg("%s", err);
    }

    return cf;
}


static inline llmd_config_t *
load_file(const char *path)
{
    char            err[LLMD_ERRLEN];
    llmd_config_t  *cf;

    cf = llmd_config_load_file(path, err, sizeof(err));
    if (cf == NULL) {
        fail_msg("%s", err);
    }

    return cf;
}

#endif /* TEST_EPP_H */
