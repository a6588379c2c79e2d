/*
 * The byte-level BPE tokenizer on a small handmade tokenizer.json
 * (t/data/tokenizer-tiny.json: the 256 byte tokens as ids 0..255, a few
 * merges, added tokens with lstrip/rstrip, NFC, a BOS template).  The ids
 * the cases below expect are those of Hugging Face's own tokenizer: every
 * case of t/data/tokenizer-tiny-ref.json (written by
 * tools/tokenizer-tiny-ref.js with npm `tokenizers`, the Rust core of HF
 * tokenizers; t/040-tokenizer.t checks the file is what HF computes) is
 * encoded here and compared (test_hf_reference); the EXPECT cases are a
 * readable subset of it.  Parity on real tokenizers is t/040-tokenizer.t.
 */

#define _GNU_SOURCE  /* memmem */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <cJSON.h>

#include "tokenizer/llmd_tokenizer.h"
#include "tokenizer/llmd_tokenizer_int.h"   /* split_ascii, same */
#include "test_data.h"
#include "tokenizer_variant.h"


#define FIXTURE  test_data("tokenizer-tiny.json")
#define HF_REF   test_data("tokenizer-tiny-ref.json")
#define BOS      300
#define X_TOKEN  301    /* "<x>": lstrip, rstrip */
#define XX_TOKEN 302    /* "<xx>" */
#define ID_AA    258
#define ID_AB    257
#define ID_BC    256
#define ID_HELLO 262
#define ID_WORLD 267    /* "Ġworld" */
#define ID_SP2   268
#define ID_SP4   269
#define ID_XYZ   270


static llmd_tokenizer_t  *tiny;


/* Encodes text; returns the id count (or error) and fills ids. */
static long
encode_flags(llmd_tokenizer_t *tok, const char *text, size_t len,
    unsigned flags, uint32_t *ids, size_t cap)
{
    void    *scratch;
    size_t   size;
    long     n;

    size = llmd_tokenizer_scratch_size(tok, len);
    assert_true(size > 0);
    scratch = malloc(size);
    assert_non_null(scratch);
    n = llmd_tokenizer_encode(tok, text, len, flags, scratch, size, ids, cap);
    free(scratch);
    return n;
}


static void
expect_ids(llmd_tokenizer_t *tok, const char *text, size_t len,
    unsigned flags, const uint32_t *want, size_t n_want)
{
    uint32_t  ids[4096];
    long      n;
    size_t    i;

    assert_true(llmd_tokenizer_max_ids(tok, len) <= 4096);
    n = encode_flags(tok, text, len, flags, ids, 4096);
    if (n != (long) n_want) {
        fail_msg("\"%.40s\": %ld ids, want %zu", text, n, n_want);
    }
    for (i = 0; i < n_want; i++) {
        if (ids[i] != want[i]) {
            fail_msg("\"%.40s\": id %zu is %u, want %u", text, i, ids[i],
                     want[i]);
        }
    }
}


#define EXPECT(text, ...)                                                    \
    do {                                                                     \
        static const uint32_t  want_[] = { __VA_ARGS__ };                    \
        expect_ids(tiny, text, sizeof(text) - 1, 0, want_,                   \
                   sizeof(want_) / sizeof(want_[0]));                        \
    } while (0)


static int
setup(void **state)
{
    tiny = tokenizer_load_or_fail(FIXTURE);
    return tiny == NULL ? -1 : 0;
}


static int
teardown(void **state)
{
    llmd_tokenizer_free(tiny);
    return 0;
}


static void
test_merges_in_rank_order(void **state)
{
    EXPECT("hello world", ID_HELLO, ID_WORLD);
    /* "b c" ranks before "a b". */
    EXPECT("abc", 'a', ID_BC);
    /* Equal ranks: the leftmost pair first. */
    EXPECT("aaa", ID_AA, 'a');
    EXPECT("aaaa", ID_AA, ID_AA);
    /* A vocabulary token without merges leading to it. */
    EXPECT("xyz", 'x', 'y', 'z');
    /* The split keeps "'s" apart; each piece merges on its own. */
    EXPECT("it's", 'i', 't', '\'', 's');
    /* Space runs: "\s+(?!\S)" leaves the last space to the word. */
    EXPECT("      ", ID_SP4, ID_SP2);
    EXPECT("  hello", ' ', ' ', ID_HELLO);
}


static void
test_ignore_merges(void **state)
{
    char               path[64];
    llmd_tokenizer_t  *tok;
    static const uint32_t  whole[] = { ID_XYZ };
    static const uint32_t  merged[] = { 'a', ID_BC };

    tokenizer_variant_write("\"ignore_merges\": false", "\"ignore_merges\": true",
                  path);
    tok = tokenizer_load_or_fail(path);
    unlink(path);
    assert_non_null(tok);
    /* A whole pre-token found in the vocabulary is one id. */
    expect_ids(tok, "xyz", 3, 0, whole, 1);
    expect_ids(tok, "abc", 3, 0, merged, 2);
    llmd_tokenizer_free(tok);
}


static void
test_added_tokens(void **state)
{
    /* "<x>" strips the white space on both sides. */
    EXPECT("a <x>  b", 'a', X_TOKEN, 'b');
    EXPECT("a \t\n<x>\xc2\xa0" "b", 'a', X_TOKEN, 'b');
    EXPECT("a<x>b", 'a', X_TOKEN, 'b');
    /* "<|s|>" has no strip flags. */
    EXPECT("x <|s|> y", 'x', 0x20, BOS, 0x20, 'y');
    /* The longest added token at a position wins. */
    EXPECT("<xx><x>", XX_TOKEN, X_TOKEN);
    EXPECT("<x", '<', 'x');
    EXPECT("<|s|", '<', '|', 's', '|');
}


static void
test_invalid_utf8(void **state)
{
    /* Each maximal invalid subpart becomes U+FFFD (EF BF BD). */
    EXPECT("\xff", 0xef, 0xbf, 0xbd);
    EXPECT("\xe2\x82", 0xef, 0xbf, 0xbd);
    EXPECT("\xe2\x82" "a", 0xef, 0xbf, 0xbd, 'a');
    EXPECT("\xc0\x80", 0xef, 0xbf, 0xbd, 0xef, 0xbf, 0xbd);
    EXPECT("\xed\xa0\x80", 0xef, 0xbf, 0xbd, 0xef, 0xbf, 0xbd, 0xef, 0xbf,
           0xbd);
    EXPECT("\xf0\x9f\x98", 0xef, 0xbf, 0xbd);
    /* Valid four-byte characters pass through as their bytes. */
    EXPECT("\xf0\x9f\x98\x80", 0xf0, 0x9f, 0x98, 0x80);
}


static void
test_byte_alphabet(void **state)
{
    char      text[1];
    uint32_t  ids[8];
    unsigned  b;
    long      n;

    /* Every ASCII byte alone is its byte token (ids 0..127 here). */
    for (b = 0; b < 128; b++) {
        text[0] = (char) b;
        n = encode_flags(tiny, text, 1, 0, ids, 8);
        assert_int_equal(n, 1);
        assert_int_equal(ids[0], b);
    }
}


static void
test_nfc(void **state)
{
    /* e + COMBINING ACUTE is composed to U+00E9 before the merges. */
    EXPECT("e\xcc\x81", 0xc3, 0xa9);
    EXPECT("\xc3\xa9", 0xc3, 0xa9);
    /* Added tokens are found before normalization. */
    EXPECT("<x>e\xcc\x81", X_TOKEN, 0xc3, 0xa9);
}


static void
test_long_pieces(void **state)
{
    char      *text;
    uint32_t  *ids;
    size_t     len, i;
    long       n;

    /* Past the small-piece limit the heap merge must agree. */
    len = 100001;
    text = malloc(len);
    ids = malloc(llmd_tokenizer_max_ids(tiny, len) * sizeof(uint32_t));
    assert_non_null(text);
    assert_non_null(ids);

    memset(text, 'a', len);
    n = encode_flags(tiny, text, len, 0, ids,
                     llmd_tokenizer_max_ids(tiny, len));
    assert_int_equal(n, len / 2 + 1);
    for (i = 0; i < len / 2; i++) {
        assert_int_equal(ids[i], ID_AA);
    }
    assert_int_equal(ids[len / 2], 'a');

    for (i = 0; i + 1 < len; i += 2) {
        text[i] = 'a';
        text[i + 1] = 'b';
    }
    n = encode_flags(tiny, text, len - 1, 0, ids,
                     llmd_tokenizer_max_ids(tiny, len));
    assert_int_equal(n, len / 2);
    for (i = 0; i < len / 2; i++) {
        assert_int_equal(ids[i], ID_AB);
    }

    memset(text, ' ', len);
    n = encode_flags(tiny, text, 1000, 0, ids,
                     llmd_tokenizer_max_ids(tiny, len));
    assert_int_equal(n, 250);
    for (i = 0; i < 250; i++) {
        assert_int_equal(ids[i], ID_SP4);
    }

    /* A megabyte of invalid bytes: a defined result, quickly. */
    memset(text, 0xff, len);
    n = encode_flags(tiny, text, len, 0, ids,
                     llmd_tokenizer_max_ids(tiny, len));
    assert_int_equal(n, 3 * len);
    free(text);
    free(ids);
}


static void
test_add_special_and_limits(void **state)
{
    static const uint32_t  want[] = { BOS, ID_HELLO, ID_WORLD };
    uint32_t               ids[4];
    char                   scratch[16];
    long                   n;

    expect_ids(tiny, "hello world", 11, LLMD_TOK_ADD_SPECIAL_TOKENS, want,
               3);

    /* Too small an ids array: an error, or the prefix when truncating. */
    n = encode_flags(tiny, "hello world", 11, LLMD_TOK_ADD_SPECIAL_TOKENS,
                     ids, 2);
    assert_int_equal(n, LLMD_TOK_ERR_CAPACITY);
    n = encode_flags(tiny, "hello world", 11,
                     LLMD_TOK_ADD_SPECIAL_TOKENS | LLMD_TOK_TRUNCATE, ids, 2);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], BOS);
    assert_int_equal(ids[1], ID_HELLO);

    n = llmd_tokenizer_encode(tiny, "hello", 5, 0, scratch, sizeof(scratch),
                              ids, 4);
    assert_int_equal(n, LLMD_TOK_ERR_SCRATCH);

    n = encode_flags(tiny, "", 0, LLMD_TOK_ADD_SPECIAL_TOKENS, ids, 4);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], BOS);
}


static void
test_decode(void **state)
{
    static const uint32_t  ids[] = { BOS, ID_HELLO, ID_WORLD, 0xc3 };
    static const uint32_t  bad[] = { ID_HELLO, 280 };
    char                   out[64];
    long                   n;

    n = llmd_tokenizer_decode(tiny, ids, 4, 0, out, sizeof(out));
    assert_int_equal(n, 17);
    assert_memory_equal(out, "<|s|>hello world\xc3", 17);

    n = llmd_tokenizer_decode(tiny, ids, 3, LLMD_TOK_SKIP_SPECIAL_TOKENS,
                              out, sizeof(out));
    assert_int_equal(n, 11);
    assert_memory_equal(out, "hello world", 11);

    assert_int_equal(llmd_tokenizer_decode(tiny, ids, 3, 0, out, 8),
                     LLMD_TOK_ERR_CAPACITY);
    assert_int_equal(llmd_tokenizer_decode(tiny, bad, 2, 0, out, 64),
                     LLMD_TOK_ERR_INVALID);
}


static void
test_roundtrip(void **state)
{
    static const char  alphabet[] = "abcdehlorwxyz <>|s'\t\n\r.,!0123";
    char               text[200], out[2000];
    uint32_t           ids[2000];
    unsigned           seed, i, k, len;
    long               n, m;

    /* decode(encode(t)) == t for NFC-stable valid UTF-8. */
    seed = 12345;
    for (k = 0; k < 2000; k++) {
        seed = seed * 1103515245 + 12345;
        len = (seed >> 16) % sizeof(text);
        for (i = 0; i < len; i++) {
            seed = seed * 1103515245 + 12345;
            text[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
        }
        n = encode_flags(tiny, text, len, 0, ids, 2000);
        assert_true(n >= 0);
        m = llmd_tokenizer_decode(tiny, ids, n, 0, out, sizeof(out));
        /* Stripping around "<x>" is the one lossy step. */
        if (memmem(text, len, "<x>", 3) == NULL) {
            assert_int_equal(m, len);
            assert_memory_equal(out, text, len);
        }
    }
}


static void
test_accessors(void **state)
{
    const char  *s;
    size_t       len;

    assert_int_equal(llmd_tokenizer_vocab_size(tiny), 303);
    assert_int_equal(llmd_tokenizer_token_to_id(tiny, "\xc4\xa0world", 7),
                     ID_WORLD);
    assert_int_equal(llmd_tokenizer_token_to_id(tiny, "<x>", 3), X_TOKEN);
    assert_int_equal(llmd_tokenizer_token_to_id(tiny, "nope", 4), -1);
    s = llmd_tokenizer_id_to_token(tiny, ID_WORLD, &len);
    assert_non_null(s);
    assert_int_equal(len, 7);
    assert_memory_equal(s, "\xc4\xa0world", 7);
    assert_null(llmd_tokenizer_id_to_token(tiny, 280, &len));
    assert_null(llmd_tokenizer_id_to_token(tiny, 5000, &len));
    assert_true(llmd_tokenizer_is_special(tiny, BOS));
    assert_false(llmd_tokenizer_is_special(tiny, X_TOKEN));
    assert_false(llmd_tokenizer_is_special(tiny, 'a'));
}


static void
test_load_errors(void **state)
{
    char               err[256], path[64];
    llmd_tokenizer_t  *tok;

    tok = llmd_tokenizer_load(test_data("does-not-exist.json"), NULL, err,
                              sizeof(err));
    assert_null(tok);
    assert_non_null(strstr(err, "cannot open"));

    tokenizer_variant_write("\"type\": \"BPE\"", "\"type\": \"WordPiece\"", path);
    tok = llmd_tokenizer_load(path, NULL, err, sizeof(err));
    unlink(path);
    assert_null(tok);
    assert_non_null(strstr(err, "WordPiece"));

    tokenizer_variant_write("\"type\": \"NFC\"", "\"type\": \"Lowercase\"", path);
    tok = llmd_tokenizer_load(path, NULL, err, sizeof(err));
    unlink(path);
    assert_null(tok);
    assert_non_null(strstr(err, "Lowercase"));

    tokenizer_variant_write("\"behavior\": \"Isolated\"", "\"behavior\": \"Merged\"",
                  path);
    tok = llmd_tokenizer_load(path, NULL, err, sizeof(err));
    unlink(path);
    assert_null(tok);
    assert_non_null(strstr(err, "Merged"));

    tokenizer_variant_write("\"version\"", "\"version\" ,,", path);
    tok = llmd_tokenizer_load(path, NULL, err, sizeof(err));
    unlink(path);
    assert_null(tok);
    assert_non_null(strstr(err, "invalid JSON"));

    /* The byte-level alphabet must be complete. */
    tokenizer_variant_write("\"!\": 33", "\"!!!\": 33", path);
    tok = llmd_tokenizer_load(path, NULL, err, sizeof(err));
    unlink(path);
    assert_null(tok);
    assert_non_null(strstr(err, "byte"));
}


/* The file's bytes (NUL-terminated); *len is their count. */
static char *
read_file(const char *path, size_t *len)
{
    FILE  *f;
    char  *buf;
    long   size;

    f = fopen(path, "rb");
    if (f == NULL) {
        fail_msg("cannot open %s", path);
    }
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    rewind(f);
    buf = malloc(size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, size, f), size);
    fclose(f);
    buf[size] = '\0';
    *len = size;
    return buf;
}


static size_t
unhex(const char *hex, char *out, size_t cap)
{
    size_t    n;
    unsigned  byte;

    for (n = 0; hex[2 * n] && hex[2 * n + 1]; n++) {
        assert_true(n < cap);
        assert_int_equal(sscanf(hex + 2 * n, "%2x", &byte), 1);
        out[n] = (char) byte;
    }
    return n;
}


/* Every case Hugging Face's tokenizer encoded gives the same ids here. */
static void
test_hf_reference(void **state)
{
    char      *json, text[1024];
    size_t     len, n, i, cases;
    cJSON     *doc, *c, *name, *hex, *special, *ids, *id;
    uint32_t   want[1024];

    json = read_file(HF_REF, &len);
    doc = cJSON_ParseWithLength(json, len);
    free(json);
    assert_non_null(doc);

    cases = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(doc, "cases")) {
        name = cJSON_GetObjectItem(c, "name");
        hex = cJSON_GetObjectItem(c, "hex");
        special = cJSON_GetObjectItem(c, "add_special");
        ids = cJSON_GetObjectItem(c, "ids");
        assert_true(cJSON_IsString(name) && cJSON_IsString(hex)
                    && cJSON_IsBool(special) && cJSON_IsArray(ids));

        n = unhex(hex->valuestring, text, sizeof(text));
        i = 0;
        cJSON_ArrayForEach(id, ids) {
            assert_true(i < 1024);
            want[i++] = (uint32_t) id->valuedouble;
        }

        expect_ids(tiny, text, n,
                   cJSON_IsTrue(special) ? LLMD_TOK_ADD_SPECIAL_TOKENS : 0,
                   want, i);
        cases++;
    }

    cJSON_Delete(doc);
    /* the file's 29 named cases and its random corpus */
    assert_true(cases >= 200);
}


/*
 * The split of ASCII text without PCRE2 (llmd_tok_split_ascii) against
 * PCRE2 with the tokenizer's compiled pattern, for the Qwen2 pattern of the
 * fixture and the Llama-3 one (\p{N}{1,3}): 200,000 random strings each of
 * 0-40 bytes drawn mostly from the bytes the alternatives tell apart
 * (letters of both cases, digits, each white space byte, quotes before
 * contraction letters, punctuation), one byte in eight any ASCII byte (NUL,
 * DEL, other control bytes); the same pieces.  Then the ids of 20,000
 * texts through each tokenizer with the ASCII split and with PCRE2 alone.
 */
static void
split_ascii_check(llmd_tokenizer_t *tok, unsigned digits)
{
    static const char   alphabet[] = "aZsStTmMdDrReEvVlLxq09 5 \t\n\r\v\f"
                                     "\x27\x27\x27.,!-_(  \n\n  ";
    static const char   letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
                                    "KLMNOPQRSTUVWXYZ@[`{";
    unsigned char       text[48];
    uint32_t            ids1[256], ids2[256];
    pcre2_match_data   *md;
    PCRE2_SIZE         *ov;
    size_t              len, i, end, scratch_size;
    long                n1, n2;
    uint32_t            rng;
    unsigned long       round, pieces;
    void               *scratch;
    int                 rc;

    assert_int_equal(tok->split_ascii_digits, digits);
    md = pcre2_match_data_create_from_pattern(tok->split, NULL);
    assert_non_null(md);
    ov = pcre2_get_ovector_pointer(md);
    rng = 2026 + digits;
    pieces = 0;

    for (round = 0; round < 200000; round++) {
        rng = rng * 1103515245 + 12345;
        len = (rng >> 8) % 41;
        for (i = 0; i < len; i++) {
            rng = rng * 1103515245 + 12345;
            text[i] = (rng >> 24) % 8 == 0
                      ? (unsigned char) ((rng >> 8) % 128)
                      : (unsigned char) alphabet[(rng >> 12)
                                                 % (sizeof(alphabet) - 1)];
            /* one round in four: long letter runs (eight bytes a step),
               their ends at every offset, '@' '[' '`' '{' beside them */
            if (round % 4 == 0 && (rng >> 20) % 16 != 0) {
                text[i] = (unsigned char) letters[(rng >> 12)
                                                  % (sizeof(letters) - 1)];
            }
        }
        for (i = 0; i < len; i = end) {
            rc = pcre2_match(tok->split, text, len, i, PCRE2_NO_UTF_CHECK,
                             md, NULL);
            assert_true(rc > 0);
            end = llmd_tok_split_ascii(digits, text, len, i);
            if (ov[0] != i || ov[1] != end) {
                fail_msg("\"%.*s\" at %zu: PCRE2 [%zu, %zu), ASCII split "
                         "[%zu, %zu)", (int) len, text, i, (size_t) ov[0],
                         (size_t) ov[1], i, end);
            }
            pieces++;
        }
    }
    pcre2_match_data_free(md);

    scratch_size = llmd_tokenizer_scratch_size(tok, sizeof(text));
    scratch = malloc(scratch_size);
    assert_non_null(scratch);
    for (round = 0; round < 20000; round++) {
        rng = rng * 1103515245 + 12345;
        len = (rng >> 8) % 41;
        for (i = 0; i < len; i++) {
            rng = rng * 1103515245 + 12345;
            text[i] = (unsigned char) alphabet[(rng >> 12)
                                               % (sizeof(alphabet) - 1)];
        }
        n1 = llmd_tokenizer_encode(tok, (char *) text, len, 0, scratch,
                                   scratch_size, ids1, 256);
        tok->split_ascii_digits = 0;
        n2 = llmd_tokenizer_encode(tok, (char *) text, len, 0, scratch,
                                   scratch_size, ids2, 256);
        tok->split_ascii_digits = digits;
        assert_int_equal(n1, n2);
        assert_true(n1 >= 0);
        assert_memory_equal(ids1, ids2, (size_t) n1 * sizeof(uint32_t));
    }
    free(scratch);
    fprintf(stderr, "ASCII split (digits %u): %lu pieces as PCRE2's, 20000 "
            "texts with the same ids\n", digits, pieces);
}


static void
test_split_ascii(void **state)
{
    char               path[64];
    llmd_tokenizer_t  *tok;

    tok = tokenizer_load_or_fail(test_data("tokenizer-tiny.json"));
    split_ascii_check(tok, 1);
    llmd_tokenizer_free(tok);

    tokenizer_variant_write("\\\\p{N}|", "\\\\p{N}{1,3}|", path);
    tok = tokenizer_load_or_fail(path);
    unlink(path);
    split_ascii_check(tok, 3);
    llmd_tokenizer_free(tok);

    /* another pattern (the same matches): PCRE2 alone */
    tokenizer_variant_write("|\\\\s+\"", "|\\\\s+|(?!)\"", path);
    tok = tokenizer_load_or_fail(path);
    unlink(path);
    assert_int_equal(tok->split_ascii_digits, 0);
    llmd_tokenizer_free(tok);
}


/* llmd_tok_same (vocabulary keys): equal strings of every length up to 40
   are the same, strings differing in any one byte (any bit) are not. */
static void
test_same_bytes(void **state)
{
    unsigned char  a[48], b[48];
    size_t         len, i, k;
    unsigned       bit;

    for (k = 0; k < sizeof(a); k++) {
        a[k] = (unsigned char) (k * 37 + 11);
    }
    for (len = 0; len <= 40; len++) {
        memcpy(b, a, sizeof(a));
        assert_true(llmd_tok_same(a, b, len));
        /* bytes beyond len do not count */
        b[len] ^= 0xff;
        assert_true(llmd_tok_same(a, b, len));
        for (i = 0; i < len; i++) {
            for (bit = 0; bit < 8; bit++) {
                memcpy(b, a, sizeof(a));
                b[i] ^= (unsigned char) (1u << bit);
                assert_false(llmd_tok_same(a, b, len));
                assert_false(llmd_tok_same(b, a, len));
            }
        }
    }
}


/* llmd_tok_key8: the len bytes zero-padded, read from a buffer of exactly
   len bytes (ASan: nothing outside them) */
static void
test_key8(void **state)
{
    unsigned char  *p;
    uint64_t        want;
    size_t          len, i, round;
    unsigned        rng;

    rng = 7;
    for (round = 0; round < 2000; round++) {
        for (len = 1; len <= LLMD_TOK_HOT_MAX; len++) {
            p = malloc(len);
            assert_non_null(p);
            want = 0;
            for (i = 0; i < len; i++) {
                rng = rng * 1103515245 + 12345;
                p[i] = (unsigned char) (rng >> 16);
                want |= (uint64_t) p[i] << (8 * i);
            }
            assert_true(llmd_tok_key8(p, len) == want);
            free(p);
        }
    }
}


/*
 * The hot piece table answers as the vocabulary does: every entry is a
 * token whose bytes the vocabulary gives that id and that encode emits
 * alone; any short string it knows is such a token (strings of a small
 * alphabet with NUL bytes, which zero padding must not confuse).
 */
static size_t
hot_check(const llmd_tokenizer_t *tok)
{
    unsigned char          s[LLMD_TOK_HOT_MAX];
    const llmd_tok_hot_t  *e;
    size_t                 i, len, n, round;
    uint32_t               id, v;
    unsigned               rng;
    static const unsigned char  alpha[] = "abcxyz <>|\0\xff";

    assert_non_null(tok->hot);
    n = 0;
    for (i = 0; i < LLMD_TOK_HOT_SLOTS; i++) {
        e = &tok->hot[i];
        if (e->len == 0) {
            continue;
        }
        n++;
        assert_true(e->len <= LLMD_TOK_HOT_MAX);
        assert_int_equal(tok->bytes_of[e->id].len, e->len);
        assert_true(llmd_tok_key8(tok->bytes + tok->bytes_of[e->id].off,
                                  e->len) == e->key);
        assert_int_equal(llmd_tok_vocab_find(tok, tok->bytes
                                             + tok->bytes_of[e->id].off,
                                             e->len), e->id);
        assert_true(tok->ignore_merges
                    || (tok->flags[e->id] & LLMD_TOK_F_SELF));
    }
    rng = 3;
    for (round = 0; round < 200000; round++) {
        rng = rng * 1103515245 + 12345;
        len = 1 + (rng >> 16) % LLMD_TOK_HOT_MAX;
        for (i = 0; i < len; i++) {
            rng = rng * 1103515245 + 12345;
            s[i] = alpha[(rng >> 16) % (sizeof(alpha) - 1)];
        }
        id = llmd_tok_hot_find(tok, s, len);
        if (id == LLMD_TOK_NONE) {
            continue;
        }
        v = llmd_tok_vocab_find(tok, s, len);
        assert_int_equal(id, v);
        assert_true(tok->ignore_merges || (tok->flags[id] & LLMD_TOK_F_SELF));
    }
    return n;
}


static void
test_hot_pieces(void **state)
{
    char               path[64];
    llmd_tokenizer_t  *tok;
    unsigned char      nul2[2] = { 0, 0 };

    /* every single byte is a token that merges to itself */
    assert_true(hot_check(tiny) >= 256);
    assert_int_equal(llmd_tok_hot_find(tiny, nul2, 1), tiny->byte_id[0]);
    assert_int_equal(llmd_tok_hot_find(tiny, nul2, 2),
                     llmd_tok_vocab_find(tiny, nul2, 2));
    /* "xyz" is in the vocabulary, but its merges give other ids */
    assert_int_equal(llmd_tok_hot_find(tiny, (const unsigned char *) "xyz",
                                       3), LLMD_TOK_NONE);

    tokenizer_variant_write("\"ignore_merges\": false",
                            "\"ignore_merges\": true", path);
    tok = tokenizer_load_or_fail(path);
    unlink(path);
    assert_non_null(tok);
    (void) hot_check(tok);
    assert_int_equal(llmd_tok_hot_find(tok, (const unsigned char *) "xyz", 3),
                     ID_XYZ);
    llmd_tokenizer_free(tok);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_merges_in_rank_order),
        cmocka_unit_test(test_ignore_merges),
        cmocka_unit_test(test_added_tokens),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_byte_alphabet),
        cmocka_unit_test(test_nfc),
        cmocka_unit_test(test_long_pieces),
        cmocka_unit_test(test_add_special_and_limits),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_hf_reference),
        cmocka_unit_test(test_split_ascii),
        cmocka_unit_test(test_same_bytes),
        cmocka_unit_test(test_key8),
        cmocka_unit_test(test_hot_pieces),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
