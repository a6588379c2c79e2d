/*
 * Shared limits and the allocator interface of the scheduling core.
 * The core is plain C with no nginx dependency: the module, the helper
 * process, the tools and the unit tests all link the same code.
 */
#ifndef LLMD_COMMON_H
#define LLMD_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Endpoints (upstream servers) one balancer schedules over. */
#define LLMD_MAX_ENDPOINTS   256
/* Scorers referenced by one scheduling profile. */
#define LLMD_MAX_SCORERS     16
/* Length of an error message returned by the core. */
#define LLMD_ERRLEN          512

/*
 * A region allocator: memory is released all at once by its owner (an nginx
 * request pool, or an arena in tests), never piecemeal. alloc returns NULL
 * when out of memory.
 */
typedef struct {
    void  *(*alloc)(void *ctx, size_t size);
    void   *ctx;
} llmd_alloc_t;

/* The malloc-backed allocator used by tools and tests (never freed). */
extern const llmd_alloc_t  llmd_malloc_allocator;

#endif /* LLMD_COMMON_H */
