/*
 * Loading an EndpointPickerConfig in a cmocka test: from a string (named
 * t.yaml in messages) or a checkout file (test_data.h finds it from any
 * working directory); a load error fails the test with it.
 */
#ifndef TEST_EPP_H
#define TEST_EPP_H

#include <string.h>

#include "core/llmd_config.h"
#include "test_data.h"


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

    /* a relative path is the checkout's */
    cf = llmd_config_load_file(path[0] == '/' ? path : test_path(path), err,
                               sizeof(err));
    if (cf == NULL) {
        fail_msg("%s", err);
    }

    return cf;
}

#endif /* TEST_EPP_H */
