/*
 * Helpers of the fuzz targets (fuzz_common.h).
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"

#ifndef FUZZ_DATA_DIR
#error "FUZZ_DATA_DIR (the tree's t/data) must be defined"
#endif


/* where fuzz_touch() puts what it read, so that the reads are not dropped */
static volatile unsigned  fuzz_sink;


void
fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    abort();
}


void
fuzz_touch(const void *p, size_t n)
{
    size_t          i;
    const uint8_t  *b;

    b = p;

    for (i = 0; i < n; i++) {
        fuzz_sink += b[i];
    }
}


unsigned
fuzz_byte(fuzz_input_t *in)
{
    if (in->n == 0) {
        return 0;
    }

    in->n--;
    return *in->p++;
}


unsigned
fuzz_u16(fuzz_input_t *in)
{
    unsigned  lo;

    lo = fuzz_byte(in);
    return lo | fuzz_byte(in) << 8;
}


const uint8_t *
fuzz_bytes(fuzz_input_t *in, size_t want, size_t *got)
{
    const uint8_t  *p;

    p = in->p;
    *got = want < in->n ? want : in->n;
    in->p += *got;
    in->n -= *got;

    return p;
}


const char *
fuzz_data_path(const char *name)
{
    static char  path[4096];
    const char  *dir;

    dir = getenv("LLMD_FUZZ_DATA");
    if (dir == NULL || dir[0] == '\0') {
        dir = FUZZ_DATA_DIR;
    }

    if ((size_t) snprintf(path, sizeof(path), "%s/%s", dir, name)
        >= sizeof(path))
    {
        fuzz_fail(__FILE__, __LINE__, "data path too long");
    }

    return path;
}
