/*
 * The tokenizer fixture (t/data/tokenizer-tiny.json) with one substitution,
 * written to a temporary file: how the tokenizer tests build a variant
 * (another model type, normalizer, pattern, a broken file) without keeping
 * a copy of the fixture for each, and loads a tokenizer file or fails the
 * test.  Used by t/unit/test_tokenizer.c and t/unit/test_tokenizer_cache.c;
 * include after <cmocka.h> and the tokenizer's header.
 */
#ifndef TOKENIZER_VARIANT_H
#define TOKENIZER_VARIANT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_data.h"


/* Writes the fixture with the first FROM replaced by TO to a new file,
   whose name goes to path (at least 32 bytes); the caller unlinks it. */
static void
tokenizer_variant_write(const char *from, const char *to, char *path)
{
    FILE    *f;
    char    *buf, *hit;
    long     size;
    int      fd;

    f = fopen(test_data("tokenizer-tiny.json"), "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    rewind(f);
    buf = calloc(1, size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, size, f), size);
    fclose(f);
    hit = strstr(buf, from);
    assert_non_null(hit);

    strcpy(path, "/tmp/llmd-tok-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    f = fdopen(fd, "wb");
    assert_non_null(f);
    fwrite(buf, 1, hit - buf, f);
    fputs(to, f);
    fputs(hit + strlen(from), f);
    fclose(f);
    free(buf);
}


/* The tokenizer of path, or the test fails with the loader's error. */
static llmd_tokenizer_t *
tokenizer_load_or_fail(const char *path)
{
    char               err[256];
    llmd_tokenizer_t  *tok;

    tok = llmd_tokenizer_load(path, NULL, err, sizeof(err));
    if (tok == NULL) {
        fail_msg("%s: %s", path, err);
    }
    return tok;
}

#endif /* TOKENIZER_VARIANT_H */
