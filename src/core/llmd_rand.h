/*
 * The scheduling core's pseudo-random numbers: xorshift64*, one state word
 * per caller (a worker process), used for tie-break shuffles and the random
 * pickers. Not for anything that needs unpredictability.
 */
#ifndef LLMD_RAND_H
#define LLMD_RAND_H

#include <stdint.h>


/* Next value of the generator; a zero state is replaced by a constant. */
static inline uint64_t
llmd_rand_next(uint64_t *state)
{
    uint64_t  x;

    x = *state ? *state : 0x9e3779b97f4a7c15ULL;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;

    return x * 0x2545f4914f6cdd1dULL;
}


/* Uniform double in [0, 1). */
static inline double
llmd_rand_uniform(uint64_t *state)
{
    return (double) (llmd_rand_next(state) >> 11)
           * (1.0 / 9007199254740992.0);
}

#endif /* LLMD_RAND_H */
