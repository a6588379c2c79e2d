/*
 * Where a unit test finds the checkout's files (t/data/, conf-examples/):
 * under $LLMD_TEST_ROOT (t/unit.t sets it), else under the checkout the
 * test binary was built in (build/unit/test_x or build-san/unit/test_x:
 * three levels up from the binary), so a binary runs from any working
 * directory.
 */

#ifndef TEST_DATA_H
#define TEST_DATA_H

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#define TEST_DATA_MAX  32

/* t/data/<name> */
#define test_data(name)  test_path("t/data/" name)


/*
 * The path of <checkout>/<name>. The same name always gives the same
 * pointer (static storage: nothing to free, and arrays of paths stay
 * valid).
 */
static inline const char *
test_path(const char *name)
{
    static char   names[TEST_DATA_MAX][128];
    static char   paths[TEST_DATA_MAX][PATH_MAX];
    static int    n;
    char          dir[PATH_MAX], *slash;
    const char   *env;
    ssize_t       len;
    int           i, up;

    for (i = 0; i < n; i++) {
        if (strcmp(names[i], name) == 0) {
            return paths[i];
        }
    }

    if (n == TEST_DATA_MAX || strlen(name) >= sizeof(names[0])) {
        fprintf(stderr, "test_path(\"%s\"): too many or too long\n", name);
        abort();
    }

    env = getenv("LLMD_TEST_ROOT");

    if (env != NULL && *env) {
        snprintf(dir, sizeof(dir), "%s", env);

    } else {
        len = readlink("/proc/self/exe", dir, sizeof(dir) - 1);
        dir[len > 0 ? len : 0] = '\0';

        /* <root>/build/unit/test_x -> <root> */
        for (up = 0; up < 3; up++) {
            slash = strrchr(dir, '/');
            if (slash == NULL) {
                break;
            }
            *slash = '\0';
        }

        if (up < 3) {
            snprintf(dir, sizeof(dir), ".");
        }
    }

    if ((size_t) snprintf(paths[n], sizeof(paths[n]), "%s/%s", dir, name)
        >= sizeof(paths[n]))
    {
        fprintf(stderr, "test_path(\"%s\"): path too long\n", name);
        abort();
    }

    snprintf(names[n], sizeof(names[n]), "%s", name);

    return paths[n++];
}

#endif /* TEST_DATA_H */
