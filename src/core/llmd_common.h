/*
 * Shared limits and the allocator interface of the scheduling core.
 * The core is plain C with no nginx dependency: the module, the helper
 * process, the tools and the unit tests all link the same code.
 */
#ifndef LLMD_COMMON_H
#define LLMD_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

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

/*
 * LE64(v) at p, as the block hashes of both prefix indexes chain their
 * parents: one store on little-endian hosts (byte stores followed by
 * XXH64's 8-byte load of them stall on store forwarding, on the chain's
 * critical path).
 */
static inline void
llmd_put_le64(unsigned char *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(p, &v, 8);
#else
    int  i;

    for (i = 0; i < 8; i++) {
        p[i] = (unsigned char) (v >> (8 * i));
    }
#endif
}

#endif /* LLMD_COMMON_H */
