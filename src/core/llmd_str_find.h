/*
 * The bytes a JSON string scan stops at ('"', '\' and NUL), all three
 * found in one pass over the bytes (core/llmd_body_scan.c).
 */
#ifndef LLMD_STR_FIND_H
#define LLMD_STR_FIND_H

#include <stddef.h>

/* the implementations, by llmd_str_find_use() */
enum {
    LLMD_STR_FIND_AUTO = 0,     /* the best the CPU has */
    LLMD_STR_FIND_SCALAR,       /* a byte at a time */
    LLMD_STR_FIND_SSE2,         /* 16 bytes at a time (x86-64 baseline) */
    LLMD_STR_FIND_AVX2,         /* 32 bytes at a time */
    LLMD_STR_FIND_AVX512,       /* 64 bytes at a time (AVX-512BW) */
    LLMD_STR_FIND_N
};

/* The first byte of [p, e) that is '"', '\' or NUL, or e. Reads only
   [p, e); p <= e. */
const unsigned char *llmd_str_find(const unsigned char *p,
    const unsigned char *e);

/* Uses implementation impl from now on (tests compare them): 0, or -1
   when this build or CPU has none such (nothing changes then). */
int llmd_str_find_use(int impl);

#endif /* LLMD_STR_FIND_H */
