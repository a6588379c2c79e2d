/*
 * One pass for the three bytes a JSON string scan stops at (llmd_str_find.h):
 * the body scanner looked for the closing quote, then for a '\' before it,
 * then for a NUL, each with memchr() over the whole string.
 *
 * Each vector of bytes x becomes a mask of the bytes equal to '"', '\' or
 * 0: min(x ^ '"', x ^ '\', x) is 0 exactly there (SSE2, AVX-512BW), or
 * x == table[x & 15], a table holding '"', '\' and 0 at their low nibbles
 * and, at every other nibble, a byte of another low nibble (AVX2, one
 * shuffle).  Loads stay inside [p, e): whole vectors while they fit, then
 * a masked load (AVX-512) or a byte loop; after the first vector they
 * start on the vector size's boundary (an unaligned 64-byte load crosses
 * a cache line every time and halved the loop's speed).  The
 * implementation is chosen on the first call from what the CPU has;
 * glibc's memchr() uses 32-byte vectors on such CPUs, and a 16-byte pass
 * for all three bytes is slower than its three passes there
 * (docs/benchmark.md).
 */
#include <stdint.h>

#include "core/llmd_str_find.h"

#if (defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)))
#define LLMD_STR_FIND_X86  1
#include <immintrin.h>
#elif (defined(__SSE2__))
#include <emmintrin.h>
#endif


typedef const unsigned char *(*llmd_str_find_pt)(const unsigned char *p,
    const unsigned char *e);


static const unsigned char *llmd_str_find_auto(const unsigned char *p,
    const unsigned char *e);
static const unsigned char *llmd_str_find_scalar(const unsigned char *p,
    const unsigned char *e);


static llmd_str_find_pt  llmd_str_find_impl = llmd_str_find_auto;


#define llmd_str_stop(c)  ((c) == '"' || (c) == '\\' || (c) == '\0')


const unsigned char *
llmd_str_find(const unsigned char *p, const unsigned char *e)
{
    return llmd_str_find_impl(p, e);
}


static const unsigned char *
llmd_str_find_scalar(const unsigned char *p, const unsigned char *e)
{
    while (p < e && !llmd_str_stop(*p)) {
        p++;
    }

    return p;
}


#ifdef __SSE2__

#define llmd_sse2_hits(x)                                                   \
    _mm_min_epu8(_mm_min_epu8(_mm_xor_si128(x, q), _mm_xor_si128(x, b)), x)

#define llmd_sse2_load(p)  _mm_loadu_si128((const __m128i *) (p))


static const unsigned char *
llmd_str_find_sse2(const unsigned char *p, const unsigned char *e)
{
    unsigned  m;
    __m128i   q, b, z, v0, v1, v2, v3, t;

    q = _mm_set1_epi8('"');
    b = _mm_set1_epi8('\\');
    z = _mm_setzero_si128();

    while (e - p >= 64) {
        v0 = llmd_sse2_hits(llmd_sse2_load(p));
        v1 = llmd_sse2_hits(llmd_sse2_load(p + 16));
        v2 = llmd_sse2_hits(llmd_sse2_load(p + 32));
        v3 = llmd_sse2_hits(llmd_sse2_load(p + 48));
        t = _mm_min_epu8(_mm_min_epu8(v0, v1), _mm_min_epu8(v2, v3));

        if (_mm_movemask_epi8(_mm_cmpeq_epi8(t, z)) != 0) {
            break;
        }

        p += 64;
    }

    while (e - p >= 16) {
        t = llmd_sse2_hits(llmd_sse2_load(p));
        m = (unsigned) _mm_movemask_epi8(_mm_cmpeq_epi8(t, z));

        if (m != 0) {
            return p + __builtin_ctz(m);
        }

        p += 16;
    }

    return llmd_str_find_scalar(p, e);
}

#endif


#ifdef LLMD_STR_FIND_X86

/* x == table[x & 15] */
#define llmd_avx2_hits(x)                                                   \
    _mm256_cmpeq_epi8(_mm256_shuffle_epi8(tab, _mm256_and_si256(x, lo)), x)

#define llmd_avx2_load(p)  _mm256_loadu_si256((const __m256i *) (p))


static __attribute__((target("avx2"))) const unsigned char *
llmd_str_find_avx2(const unsigned char *p, const unsigned char *e)
{
    unsigned  m;
    __m256i   tab, lo, v0, v1, v2, v3, t;

    /* '"' at 2, '\' at 12, 0 at 0; n + 1 at every other nibble n */
    tab = _mm256_setr_epi8(0, 2, '"', 4, 5, 6, 7, 8, 9, 10, 11, 12, '\\',
                           14, 15, 16,
                           0, 2, '"', 4, 5, 6, 7, 8, 9, 10, 11, 12, '\\',
                           14, 15, 16);
    lo = _mm256_set1_epi8(0x0f);

    if (e - p >= 32) {
        m = (unsigned) _mm256_movemask_epi8(llmd_avx2_hits(llmd_avx2_load(p)));

        if (m != 0) {
            return p + __builtin_ctz(m);
        }

        /* on from the next 32-byte boundary: no load then crosses a cache
           line (the bytes up to it were searched just now) */
        p = (const unsigned char *) (((uintptr_t) p + 32) & ~(uintptr_t) 31);
    }

    while (e - p >= 128) {
        v0 = llmd_avx2_hits(llmd_avx2_load(p));
        v1 = llmd_avx2_hits(llmd_avx2_load(p + 32));
        v2 = llmd_avx2_hits(llmd_avx2_load(p + 64));
        v3 = llmd_avx2_hits(llmd_avx2_load(p + 96));
        t = _mm256_or_si256(_mm256_or_si256(v0, v1), _mm256_or_si256(v2, v3));

        if (!_mm256_testz_si256(t, t)) {
            break;
        }

        p += 128;
    }

    while (e - p >= 32) {
        m = (unsigned) _mm256_movemask_epi8(llmd_avx2_hits(llmd_avx2_load(p)));

        if (m != 0) {
            return p + __builtin_ctz(m);
        }

        p += 32;
    }

    return llmd_str_find_scalar(p, e);
}


#define llmd_avx512_hits(x)                                                 \
    _mm512_min_epu8(_mm512_min_epu8(_mm512_xor_si512(x, q),                 \
                                    _mm512_xor_si512(x, b)), x)


static __attribute__((target("avx512f,avx512bw"))) const unsigned char *
llmd_str_find_avx512(const unsigned char *p, const unsigned char *e)
{
    uint64_t  m;
    __m512i   q, b, v0, v1, v2, v3, t;

    q = _mm512_set1_epi8('"');
    b = _mm512_set1_epi8('\\');

    if (e - p >= 64) {
        t = llmd_avx512_hits(_mm512_loadu_si512(p));
        m = _mm512_testn_epi8_mask(t, t);

        if (m != 0) {
            return p + __builtin_ctzll(m);
        }

        /* on from the next 64-byte boundary: no load then crosses a cache
           line (the bytes up to it were searched just now) */
        p = (const unsigned char *) (((uintptr_t) p + 64) & ~(uintptr_t) 63);
    }

    while (e - p >= 256) {
        v0 = llmd_avx512_hits(_mm512_loadu_si512(p));
        v1 = llmd_avx512_hits(_mm512_loadu_si512(p + 64));
        v2 = llmd_avx512_hits(_mm512_loadu_si512(p + 128));
        v3 = llmd_avx512_hits(_mm512_loadu_si512(p + 192));
        t = _mm512_min_epu8(_mm512_min_epu8(v0, v1), _mm512_min_epu8(v2, v3));

        if (_mm512_testn_epi8_mask(t, t) != 0) {
            break;
        }

        p += 256;
    }

    while (e - p >= 64) {
        t = llmd_avx512_hits(_mm512_loadu_si512(p));
        m = _mm512_testn_epi8_mask(t, t);

        if (m != 0) {
            return p + __builtin_ctzll(m);
        }

        p += 64;
    }

    if (p == e) {
        return e;
    }

    /* the last 1-63 bytes: the bytes past e are neither read nor hit */
    m = ((uint64_t) 1 << (e - p)) - 1;
    t = llmd_avx512_hits(_mm512_maskz_loadu_epi8(m, p));
    m &= _mm512_testn_epi8_mask(t, t);

    return m ? p + __builtin_ctzll(m) : e;
}

#endif


int
llmd_str_find_use(int impl)
{
    llmd_str_find_pt  f;

    f = NULL;

#ifdef LLMD_STR_FIND_X86
    __builtin_cpu_init();
#endif

    switch (impl) {

    case LLMD_STR_FIND_AUTO:
#ifdef LLMD_STR_FIND_X86
        if (llmd_str_find_use(LLMD_STR_FIND_AVX512) == 0
            || llmd_str_find_use(LLMD_STR_FIND_AVX2) == 0)
        {
            return 0;
        }
#endif
        if (llmd_str_find_use(LLMD_STR_FIND_SSE2) == 0) {
            return 0;
        }

        f = llmd_str_find_scalar;
        break;

    case LLMD_STR_FIND_SCALAR:
        f = llmd_str_find_scalar;
        break;

#ifdef __SSE2__
    case LLMD_STR_FIND_SSE2:
        f = llmd_str_find_sse2;
        break;
#endif

#ifdef LLMD_STR_FIND_X86
    case LLMD_STR_FIND_AVX2:
        if (__builtin_cpu_supports("avx2")) {
            f = llmd_str_find_avx2;
        }

        break;

    case LLMD_STR_FIND_AVX512:
        if (__builtin_cpu_supports("avx512bw")) {
            f = llmd_str_find_avx512;
        }

        break;
#endif
    }

    if (f == NULL) {
        return -1;
    }

    llmd_str_find_impl = f;

    return 0;
}


static const unsigned char *
llmd_str_find_auto(const unsigned char *p, const unsigned char *e)
{
    (void) llmd_str_find_use(LLMD_STR_FIND_AUTO);

    return llmd_str_find_impl(p, e);
}
