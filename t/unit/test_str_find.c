/*
 * llmd_str_find() (core/llmd_str_find.h), every implementation this CPU
 * has, against a byte loop: the first '"', '\' or NUL of [p, e) at every
 * position of strings of 0-600 bytes (a vector or more, and the 256-byte
 * loops' blocks), with a second one behind it, among bytes that share a
 * stop byte's low nibble or its low seven bits; the strings end at a
 * page that cannot be read and start at every alignment, so a read past
 * e faults (without a sanitizer).
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "core/llmd_str_find.h"


#define MAXLEN  600

static const size_t  ends[] = { 0, 1, 17, 63 };

static const unsigned char  stops[3] = { '"', '\\', '\0' };

/* low nibble or low seven bits of a stop byte, but none */
static const unsigned char  near[] = {
    0x02, 0x12, 0x32, 0xa2, 0x0c, 0x4c, 0x6c, 0xdc, 0x10, 0x80, 0xf0,
    0x01, 0x21, 0x23, 0x5b, 0x5d, 0xff, 'a', ' '
};


static const unsigned char *
ref_find(const unsigned char *p, const unsigned char *e)
{
    while (p < e && *p != '"' && *p != '\\' && *p != '\0') {
        p++;
    }

    return p;
}


static unsigned long
check_impl(int impl, unsigned char *end)
{
    size_t                len, k, j, s, i;
    unsigned char        *p;
    unsigned long         n;
    const unsigned char  *got;

    n = 0;

    for (len = 0; len <= MAXLEN; len++) {
        p = end - len;

        for (i = 0; i < len; i++) {
            p[i] = near[(i * 7 + len) % sizeof(near)];
        }

        got = llmd_str_find(p, end);
        assert_ptr_equal(got, end);
        n++;

        for (k = 0; k < len; k++) {
            for (s = 0; s < 3; s++) {
                p[k] = stops[s];
                /* a second stop byte behind the first, or none */
                j = k + 1 + (k * 13 + s) % 97;

                if (j < len) {
                    p[j] = stops[(s + 1) % 3];
                }

                got = llmd_str_find(p, end);

                if (got != ref_find(p, end)) {
                    fprintf(stderr, "impl %d, length %zu, stop 0x%02x at "
                            "%zu: found %td\n", impl, len, stops[s], k,
                            got - p);
                    fail();
                }

                n++;

                if (j < len) {
                    p[j] = near[(j * 7 + len) % sizeof(near)];
                }
            }

            p[k] = near[(k * 7 + len) % sizeof(near)];
        }
    }

    return n;
}


static void
test_every_position(void **state)
{
    int             impl, tried;
    long            pg;
    size_t          size, off;
    unsigned long   n;
    unsigned char  *m;

    pg = sysconf(_SC_PAGESIZE);
    size = ((MAXLEN + 64) / pg + 2) * pg;

    /* readable pages, then one that is not */
    m = mmap(NULL, size + pg, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + size, pg, PROT_NONE), 0);

    tried = 0;

    for (impl = LLMD_STR_FIND_SCALAR; impl < LLMD_STR_FIND_N; impl++) {
        if (llmd_str_find_use(impl) != 0) {
            fprintf(stderr, "implementation %d: not on this CPU\n", impl);
            continue;
        }

        tried++;
        n = 0;

        /* the end at the page's end, then 1, 17 and 63 bytes before it */
        for (off = 0; off < sizeof(ends) / sizeof(ends[0]); off++) {
            n += check_impl(impl, m + size - ends[off]);
        }

        fprintf(stderr, "implementation %d: %lu searches agree\n", impl, n);
    }

    assert_int_equal(llmd_str_find_use(LLMD_STR_FIND_AUTO), 0);
    assert_true(tried >= 2);

    /* an empty range, at the unreadable page */
    assert_ptr_equal(llmd_str_find(m + size, m + size), m + size);

    munmap(m, size + pg);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_position),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
