/*
 * Approximate prefix hashes against the test vectors of docs/parsers.md
 * ("Test vectors"), computed independently of this code: llm-d's Gen A/B
 * chain with the module's links, h_k = XXH3_64(LE64(h_{k-1}) ||
 * LE64(XXH3_64(block_k))).
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <xxhash.h>

#include "core/llmd_prefix_hash.h"


#define MODEL  "meta-llama/Llama-3.1-8B-Instruct"
#define SALT   "salt-A"

/* the 149 Gen A/B input bytes of chat vector C1 */
#define C1_BYTES                                                            \
    "[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"  \
    "{\"role\":\"user\",\"content\":\"Hello! \\u003cb\\u003eTell me a joke" \
    "\\u003c/b\\u003e \\u0026 more\"}]"


static char  p1[181];
static char  p2[261];


static void
repeat(char *dst, const char *unit, int times)
{
    int  i;

    dst[0] = '\0';

    for (i = 0; i < times; i++) {
        strcat(dst, unit);
    }
}


static int
setup(void **state)
{
    repeat(p1, "The quick brown fox jumps over the lazy dog. ", 4);
    repeat(p2, "0123456789", 26);
    return 0;
}


static size_t
hashes(const char *salt, const char *input, size_t len, uint32_t bs,
    uint32_t max, uint64_t *out)
{
    return llmd_prefix_hashes(MODEL, strlen(MODEL), salt,
                              salt ? strlen(salt) : 0,
                              (const unsigned char *) input, len, bs, max,
                              out);
}


static void
test_xxh64_sanity(void **state)
{
    char  a32[33];

    memset(a32, 'a', 32);
    a32[32] = '\0';

    assert_int_equal(XXH64("", 0, 0), 0xef46db3751d8e999ULL);
    assert_int_equal(XXH64("abc", 3, 0), 0x44bc2cf5ad770999ULL);
    assert_int_equal(XXH64(a32, 32, 0), 0x856e843298f99ad7ULL);
    assert_int_equal(XXH64("Hello, World!", 13, 0), 0xc49aacf8080fe47fULL);
    assert_int_equal(XXH64(MODEL, strlen(MODEL), 0), 0xa903820a10f81cffULL);
    assert_int_equal(XXH64(MODEL SALT, strlen(MODEL SALT), 0),
                     0xe30f76bfb4fb35bfULL);

    /* XXH3_64bits, the links' hash (xxHash's published values) */
    assert_int_equal(XXH3_64bits("", 0), 0x2d06800538d394c2ULL);
    assert_int_equal(XXH3_64bits("abc", 3), 0x78af5f94892f3950ULL);
}


/* the formula written out here, for block sizes the vectors do not use
   (1, 3, 1100: bodies hashed with XXH3's streaming calls by the scanner) */
static void
test_formula(void **state)
{
    size_t         i, n, k;
    uint32_t       bs;
    uint64_t       h, out[64];
    unsigned char  in[5000], link[16];

    static const uint32_t  sizes[] = { 1, 3, 64, 100, 1100, 4096 };

    for (i = 0; i < sizeof(in); i++) {
        in[i] = (unsigned char) (i * 131 + 7);
    }

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        bs = sizes[i];
        n = llmd_prefix_hashes(MODEL, strlen(MODEL), SALT, strlen(SALT),
                               in, sizeof(in), bs, 64, out);
        assert_int_equal(n, sizeof(in) / bs < 64 ? sizeof(in) / bs : 64);

        h = XXH64(MODEL SALT, strlen(MODEL SALT), 0);

        for (k = 0; k < n; k++) {
            llmd_put_le64(link, h);
            llmd_put_le64(link + 8, XXH3_64bits(in + k * bs, bs));
            h = XXH3_64bits(link, sizeof(link));
            assert_int_equal(out[k], h);
        }
    }
}


static void
test_p1(void **state)
{
    uint64_t  out[8];

    assert_int_equal(strlen(p1), 180);
    assert_int_equal(hashes(NULL, p1, 180, 64, 256, out), 2);
    assert_int_equal(out[0], 0x53becfb30dc361a0ULL);
    assert_int_equal(out[1], 0x0c2902417ea7b5f1ULL);
}


static void
test_p1_salt(void **state)
{
    uint64_t  out[8];

    assert_int_equal(hashes(SALT, p1, 180, 64, 256, out), 2);
    assert_int_equal(out[0], 0xe3ae314e16ce7155ULL);
    assert_int_equal(out[1], 0x3e62088ced0439cbULL);
}


static void
test_empty_salt_is_no_salt(void **state)
{
    uint64_t  out[8];

    assert_int_equal(hashes("", p1, 180, 64, 256, out), 2);
    assert_int_equal(out[0], 0x53becfb30dc361a0ULL);
    assert_int_equal(out[1], 0x0c2902417ea7b5f1ULL);
}


static void
test_p2(void **state)
{
    uint64_t  out[8];

    assert_int_equal(strlen(p2), 260);
    assert_int_equal(hashes(NULL, p2, 260, 64, 256, out), 4);
    assert_int_equal(out[0], 0x4ae41ec17ba9bd67ULL);
    assert_int_equal(out[1], 0x4fb9426dee7c6f74ULL);
    assert_int_equal(out[2], 0x908a305cb5bbce9bULL);
    assert_int_equal(out[3], 0xaf70bf9e9da57507ULL);
}


static void
test_p2_salt(void **state)
{
    uint64_t  out[8];

    assert_int_equal(hashes(SALT, p2, 260, 64, 256, out), 4);
    assert_int_equal(out[0], 0xf07d60f774ebc169ULL);
    assert_int_equal(out[1], 0x8f055e3421aaf7deULL);
    assert_int_equal(out[2], 0xc41747d68d71bcd8ULL);
    assert_int_equal(out[3], 0x199c2a5b00dc77d0ULL);
}


static void
test_c1(void **state)
{
    uint64_t  out[8];

    assert_int_equal(strlen(C1_BYTES), 149);
    assert_int_equal(hashes(NULL, C1_BYTES, 149, 64, 256, out), 2);
    assert_int_equal(out[0], 0x1e79a67b01e8b046ULL);
    assert_int_equal(out[1], 0xe6b4523d3d1207c8ULL);
}


static void
test_short_prompt(void **state)
{
    uint64_t  out[8] = { 0 };

    assert_int_equal(hashes(NULL, p1, 63, 64, 256, out), 0);
    assert_int_equal(hashes(NULL, p1, 0, 64, 256, out), 0);
    assert_int_equal(out[0], 0);

    /* exactly one block */
    assert_int_equal(hashes(NULL, p1, 64, 64, 256, out), 1);
    assert_int_equal(out[0], 0x53becfb30dc361a0ULL);
}


static void
test_max_blocks(void **state)
{
    uint64_t  out[8] = { 0 };

    /* the caller's array holds max_blocks: nothing is written past it */
    assert_int_equal(hashes(NULL, p2, 260, 64, 3, out), 3);
    assert_int_equal(out[2], 0x908a305cb5bbce9bULL);
    assert_int_equal(out[3], 0);

    assert_int_equal(hashes(NULL, p2, 260, 64, 1, out), 1);
    assert_int_equal(out[0], 0x4ae41ec17ba9bd67ULL);
}


static void
test_prefix_consistency(void **state)
{
    char      q[261];
    uint64_t  a[8], b[8];

    /* a prompt sharing P2's first 128 bytes shares its first 2 hashes */
    memcpy(q, p2, sizeof(q));
    q[130] = 'X';

    assert_int_equal(hashes(NULL, q, 260, 64, 256, b), 4);
    assert_int_equal(hashes(NULL, p2, 260, 64, 256, a), 4);
    assert_int_equal(a[0], b[0]);
    assert_int_equal(a[1], b[1]);
    assert_int_not_equal(a[2], b[2]);
    assert_int_not_equal(a[3], b[3]);

    /* another model shares nothing */
    assert_int_equal(llmd_prefix_hashes("other", 5, NULL, 0,
                                        (const unsigned char *) p2, 260,
                                        64, 256, b), 4);
    assert_int_not_equal(a[0], b[0]);
}


static void
test_degenerate_parameters(void **state)
{
    uint64_t  out[8];

    assert_int_equal(hashes(NULL, p2, 260, 0, 256, out), 0);
    assert_int_equal(hashes(NULL, p2, 260, 64, 0, out), 0);
    assert_int_equal(hashes(NULL, p2, 260, 1000000, 256, out), 0);
    assert_int_equal(hashes(NULL, NULL, 0, 64, 256, out), 0);

    /* an empty model is allowed: h0 = XXH64("") */
    assert_int_equal(llmd_prefix_hashes("", 0, NULL, 0,
                                        (const unsigned char *) p2, 64,
                                        64, 256, out), 1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_xxh64_sanity),
        cmocka_unit_test(test_formula),
        cmocka_unit_test(test_p1),
        cmocka_unit_test(test_p1_salt),
        cmocka_unit_test(test_empty_salt_is_no_salt),
        cmocka_unit_test(test_p2),
        cmocka_unit_test(test_p2_salt),
        cmocka_unit_test(test_c1),
        cmocka_unit_test(test_short_prompt),
        cmocka_unit_test(test_max_blocks),
        cmocka_unit_test(test_prefix_consistency),
        cmocka_unit_test(test_degenerate_parameters),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
