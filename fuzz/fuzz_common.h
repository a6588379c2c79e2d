/*
 * What the fuzz targets share: a check that turns a broken promise of a
 * parser's header into a finding (libFuzzer saves the input as it does for
 * a crash), a read of the bytes a parser hands back (so that ASan sees a
 * pointer past the input), the input taken apart field by field, and the
 * path of the test data a target loads once.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Stops the process (abort) with the condition and its place. */
#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fuzz_fail(__FILE__, __LINE__, #cond);                            \
        }                                                                    \
    } while (0)

/* The rest of an input not yet taken apart. */
typedef struct {
    const uint8_t  *p;
    size_t          n;
} fuzz_input_t;

void fuzz_fail(const char *file, int line, const char *what)
    __attribute__((noreturn));

/* Reads every byte of p[0, n). */
void fuzz_touch(const void *p, size_t n);

/* The next byte of the input, 0 when none is left. */
unsigned fuzz_byte(fuzz_input_t *in);

/* The next 16-bit little-endian number; missing bytes read as 0. */
unsigned fuzz_u16(fuzz_input_t *in);

/* The next min(want, bytes left) bytes; *got says how many. */
const uint8_t *fuzz_bytes(fuzz_input_t *in, size_t want, size_t *got);

/*
 * The test data file name under t/data: $LLMD_FUZZ_DATA/name, else the
 * tree's t/data the target was built from.  Returns a static buffer.
 */
const char *fuzz_data_path(const char *name);

#endif /* FUZZ_COMMON_H */
