/*
 * The generator's random numbers: splitmix64, seeded from the config, so a
 * run's prompts, their order and its Poisson arrivals repeat with the seed.
 */
#include <stdint.h>

#include "lg.h"


uint64_t
lg_rng_next(uint64_t *s)
{
    /* splitmix64: full period, good enough for text and arrivals */
    uint64_t  z;

    z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}


double
lg_rng_uniform(uint64_t *s)
{
    /* in (0, 1]: safe under log() */
    return ((lg_rng_next(s) >> 11) + 1) * (1.0 / 9007199254740992.0);
}
