/*
 * Decoded text for inference-perf-v0.2 prompts (loadgen/lg_text.c): the
 * lossy UTF-8 conversion of the ids' bytes (one U+FFFD per maximal
 * ill-formed subpart, as WHATWG's decoder and Rust's from_utf8_lossy),
 * transformers' clean-up of tokenization spaces, and JSON strings as
 * Python's json.dumps() writes them.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "../../loadgen/lg_text.h"


#define FFFD  "\xef\xbf\xbd"


#define lossy(in, n, want)                                                   \
    lossy_n(in, n, want, sizeof(want) - 1)


static void
lossy_n(const char *in, size_t n, const char *want, size_t want_len)
{
    char    out[256];
    size_t  len;

    len = lg_text_utf8_lossy(in, n, out);
    assert_int_equal(len, want_len);
    assert_memory_equal(out, want, len);
}


static void
test_utf8_lossy(void **state)
{
    lossy("abc", 3, "abc");
    lossy("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
          "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    /* a byte that starts nothing */
    lossy("a\xff" "b", 3, "a" FFFD "b");
    lossy("\x80\xbf", 2, FFFD FFFD);
    lossy("\xc0\xaf", 2, FFFD FFFD);
    /* a cut sequence is one U+FFFD, its lead and what fitted */
    lossy("\xe2\x82", 2, FFFD);
    lossy("\xe2\x82x", 3, FFFD "x");
    lossy("\xf0\x9f\x98", 3, FFFD);
    lossy("\xf0\x9f\x98" "\xf0\x9f\x98\x80", 7, FFFD "\xf0\x9f\x98\x80");
    /* second bytes outside the lead's range: the lead alone */
    lossy("\xe0\x80\x80", 3, FFFD FFFD FFFD);
    lossy("\xed\xa0\x80", 3, FFFD FFFD FFFD);
    lossy("\xf0\x80\x80\x80", 4, FFFD FFFD FFFD FFFD);
    lossy("\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD);
    lossy("\xf5\x80", 2, FFFD FFFD);
    /* NUL is a character */
    lossy("a\0b", 3, "a\0b");
}


static void
clean(const char *in, const char *want)
{
    char    s[256];
    size_t  len;

    strcpy(s, in);
    len = lg_text_clean_up_spaces(s, strlen(s));
    s[len] = '\0';
    assert_string_equal(s, want);
}


static void
test_clean_up_spaces(void **state)
{
    clean("Hello , world ! It 's me . Why ?", "Hello, world! It's me. Why?");
    clean("I do n't know , I 'm sure we 've said they 're here",
          "I don't know, I'm sure we've said they're here");
    clean("rock ' n ' roll", "rock'n'roll");
    /* one pass per pattern, left to right, no overlaps: as str.replace */
    clean("x  .", "x .");
    clean(" . .", "..");
    clean("a'b c ' d", "a'b c'd");
    clean("no change", "no change");
}


static void
json(const char *in, size_t n, const char *want)
{
    char    out[512];
    size_t  len;

    len = lg_text_json_ascii(in, n, out);
    out[len] = '\0';
    assert_string_equal(out, want);
}


static void
test_json_ascii(void **state)
{
    json("abc", 3, "\"abc\"");
    json("a\"b\\c/d", 7, "\"a\\\"b\\\\c/d\"");
    json("\n\r\t\b\f\x01\x1f\x7f", 8,
         "\"\\n\\r\\t\\b\\f\\u0001\\u001f\\u007f\"");
    /* NUL, and everything outside ASCII, as lower-case \u escapes */
    json("a\0b", 3, "\"a\\u0000b\"");
    json("\xc3\xa9\xe2\x82\xac" FFFD, 8, "\"\\u00e9\\u20ac\\ufffd\"");
    /* above U+FFFF: a surrogate pair */
    json("\xf0\x9f\x98\x80", 4, "\"\\ud83d\\ude00\"");
    json("", 0, "\"\"");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_utf8_lossy),
        cmocka_unit_test(test_clean_up_spaces),
        cmocka_unit_test(test_json_ascii),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
