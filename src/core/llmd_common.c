/*
 * The malloc-backed region allocator for tools and tests: a process that
 * parses a bounded number of requests and then exits, so nothing is freed.
 */

#include <stdlib.h>

#include "core/llmd_common.h"


static void *
llmd_malloc_alloc(void *ctx, size_t size)
{
    /* malloc(0) may return NULL, which would read as out of memory */
    return malloc(size ? size : 1);
}


const llmd_alloc_t  llmd_malloc_allocator = {
    llmd_malloc_alloc,
    NULL
};
