/*
 * The tokenizer's prefix cache (src/tokenizer/llmd_tokenizer_cache.c): an
 * encode through the cache must give exactly the ids of a plain encode, for
 * every prefix of adversarial texts (boundaries inside white-space runs,
 * digits, contractions, CJK, emoji, combining marks, an added token's text
 * cut in two, cuts inside UTF-8 sequences, invalid bytes, lstrip/rstrip
 * tokens), with the cache warmed by the texts' own prefixes and by texts
 * sharing a prefix; on t/data/tokenizer-tiny.json (the Qwen2 split pattern,
 * NFC) and variants of it (add_prefix_space, an unknown split pattern,
 * tokens without rstrip).  Parity on the real tokenizers through the cache
 * is t/040-tokenizer.t.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tokenizer/llmd_tokenizer.h"
#include "test_data.h"
#include "tokenizer_variant.h"


#define FIXTURE  test_data("tokenizer-tiny.json")
#define MAXLEN   4096


static const char  *fragments[] = {
    "hello", " world", "  ", "   ", "\t", "\n", "\r\n", " \n ", "abc",
    "don't", " I'm", " we're", " they've", " I'LL", "it'S", "'d", "'",
    "123", "4567", " 89", "x1y2", "3.14", ",", ".", "!!", " ?", "--",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "\xe4\xb8\xad", " \xe6\x96\x87",
    "\xf0\x9f\x98\x80", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", "e\xcc\x81",
    "\xcc\x81", "caf\xc3\xa9", "\xc3\xa9t\xc3\xa9", "\xe2\x80\x83",
    "\xc2\xa0", "<x>", "<xx>", "<|s|>", "<x", "x>", "<", "|>", "<|s",
    "\xff", "\xe6\x97", "\xf0\x9f", "aa", "ab", "bc", "xyz", "A", "Z",
    " a", "\xe3\x80\x80", "\xef\xbb\xbf", "{\"k\": [1, 2]}", "a\tb",
};

static const char  *texts[] = {
    "hello world  hello   world\t\tfoo \n\n bar  ",
    "abc123 def4567 x1y2 3.14159 a1 1a",
    "don't I'm we're they've I'LL it'S 'd'x'",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e" "abc \xe4\xb8\xad\xe6\x96\x87"
    "def abc\xe6\x97\xa5\xe6\x9c\xac",
    "hi\xf0\x9f\x98\x80there ok\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd x",
    "ab<xx>cd<x>ef <x>  gh  <x>ij<|s|>kl <xx> mn",
    "ab<x x>cd<|s |>ef<xx",
    "cafe\xcc\x81 abc\xcc\x81" "d e\xcc\x81 a\xcc\x81\xcc\x81z",
    "\xff abc\xe6\x97 def\xf0\x9f\x98 ghi\xc3",
    "abc\r\n\r\ndef  \n ghi\n\n\njkl \t\n mno",
    "word\xc2\xa0word\xe2\x80\x83word\xe3\x80\x80word\xef\xbb\xbfword",
    "aaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbb abababababababab",
};


/* The fixture with one substitution, loaded. */
static llmd_tokenizer_t *
load_variant(const char *from, const char *to)
{
    char               path[64];
    llmd_tokenizer_t  *tok;

    tokenizer_variant_write(from, to, path);
    tok = tokenizer_load_or_fail(path);
    unlink(path);
    return tok;
}


typedef struct {
    llmd_tokenizer_t  *tok;
    llmd_tok_cache_t  *cache;
    void              *scratch;
    size_t             size;
    uint32_t          *a;
    uint32_t          *b;
    size_t             cap;
    unsigned long      compared;
} run_t;


static void
run_init(run_t *r, llmd_tokenizer_t *tok, size_t bytes, size_t stride)
{
    memset(r, 0, sizeof(*r));
    r->tok = tok;
    r->cache = llmd_tok_cache_create(tok, bytes, stride);
    assert_non_null(r->cache);
    r->size = llmd_tokenizer_cached_scratch_size(tok, r->cache, MAXLEN);
    assert_true(r->size > llmd_tokenizer_scratch_size(tok, MAXLEN));
    r->scratch = malloc(r->size);
    r->cap = llmd_tokenizer_max_ids(tok, MAXLEN);
    r->a = malloc(r->cap * sizeof(uint32_t));
    r->b = malloc(r->cap * sizeof(uint32_t));
    assert_non_null(r->scratch);
    assert_non_null(r->a);
    assert_non_null(r->b);
}


static void
run_free(run_t *r)
{
    llmd_tok_cache_free(r->cache);
    free(r->scratch);
    free(r->a);
    free(r->b);
}


/* One text through the cache and without: the same result and ids. */
static void
same(run_t *r, const char *text, size_t len, unsigned flags, size_t cap)
{
    long  n, m;

    assert_true(len <= MAXLEN && cap <= r->cap);
    m = llmd_tokenizer_encode(r->tok, text, len, flags, r->scratch, r->size,
                              r->b, cap);
    n = llmd_tokenizer_encode_cached(r->tok, r->cache, text, len, flags,
                                     r->scratch, r->size, r->a, cap);
    if (n != m
        || (n > 0 && memcmp(r->a, r->b, n * sizeof(uint32_t)) != 0))
    {
        fail_msg("cached encoding of \"%.*s\" (%zu bytes, flags %u, "
                 "capacity %zu) differs: %ld vs %ld ids", (int) len, text,
                 len, flags, cap, n, m);
    }
    r->compared++;
}


/* Every prefix, then the whole text again. */
static void
all_prefixes(run_t *r, const char *text, size_t len)
{
    size_t  cut;

    for (cut = 0; cut <= len; cut++) {
        same(r, text, cut, cut % 2 ? LLMD_TOK_ADD_SPECIAL_TOKENS : 0,
             r->cap);
    }
    same(r, text, len, 0, r->cap);
    same(r, text, len, LLMD_TOK_ADD_SPECIAL_TOKENS, r->cap);
}


/* Random texts from the fragments, in families sharing prefixes. */
static void
families(run_t *r, unsigned seed, size_t count)
{
    char      base[MAXLEN], text[MAXLEN];
    size_t    i, k, blen, len, nfrag;
    uint64_t  x;

    x = seed;
    nfrag = sizeof(fragments) / sizeof(fragments[0]);
    for (i = 0; i < count; i++) {
        blen = 0;
        for (k = 0; k < 3 + i % 40; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            len = strlen(fragments[(x >> 33) % nfrag]);
            if (blen + len >= MAXLEN / 2) {
                break;
            }
            memcpy(base + blen, fragments[(x >> 33) % nfrag], len);
            blen += len;
        }
        /* the base and three texts extending it */
        same(r, base, blen, 0, r->cap);
        for (k = 0; k < 3; k++) {
            memcpy(text, base, blen);
            len = blen;
            while (len < blen + 60) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                memcpy(text + len, fragments[(x >> 33) % nfrag],
                       strlen(fragments[(x >> 33) % nfrag]));
                len += strlen(fragments[(x >> 33) % nfrag]);
            }
            same(r, text, len, k == 1 ? LLMD_TOK_ADD_SPECIAL_TOKENS : 0,
                 r->cap);
            /* cut at a random byte, maybe inside a UTF-8 sequence */
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            same(r, text, (x >> 33) % (len + 1), 0, r->cap);
            /* and with a small output array */
            same(r, text, len, LLMD_TOK_TRUNCATE, 1 + (x >> 40) % 50);
        }
    }
}


static void
adversarial(llmd_tokenizer_t *tok, size_t stride)
{
    run_t   r;
    size_t  i;

    run_init(&r, tok, LLMD_TOK_CACHE_MIN * 4, stride);
    for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        all_prefixes(&r, texts[i], strlen(texts[i]));
    }
    families(&r, 1 + (unsigned) stride, 400);
    assert_true(r.compared > 4000);
    run_free(&r);
}


static void
test_identity(void **state)
{
    llmd_tokenizer_t  *tok;

    tok = tokenizer_load_or_fail(FIXTURE);
    adversarial(tok, 1);
    adversarial(tok, 5);
    adversarial(tok, 0);
    llmd_tokenizer_free(tok);
}


static void
test_identity_variants(void **state)
{
    llmd_tokenizer_t  *tok;

    /* tokens without rstrip: their ends are boundaries */
    tok = load_variant("\"lstrip\": true,\n   \"rstrip\": true",
                       "\"lstrip\": true,\n   \"rstrip\": false");
    adversarial(tok, 1);
    llmd_tokenizer_free(tok);

    tok = load_variant("\"add_prefix_space\": false",
                       "\"add_prefix_space\": true");
    adversarial(tok, 1);
    llmd_tokenizer_free(tok);

    /* a split pattern the cache does not know: added tokens only */
    tok = load_variant("|\\\\s+(?!\\\\S)|\\\\s+\"", "|\\\\s+\"");
    adversarial(tok, 1);
    llmd_tokenizer_free(tok);

    /* no normalizer */
    tok = load_variant("\"normalizer\": {\n  \"type\": \"NFC\"\n }",
                       "\"normalizer\": null");
    adversarial(tok, 1);
    llmd_tokenizer_free(tok);
}


/* A shared prefix is encoded once: the second text reuses its ids. */
static void
test_reuse(void **state)
{
    llmd_tokenizer_t        *tok;
    llmd_tok_cache_stats_t   st, st1;
    run_t                    r;
    char                     a[MAXLEN], b[MAXLEN];
    size_t                   i, len;

    tok = tokenizer_load_or_fail(FIXTURE);
    run_init(&r, tok, LLMD_TOK_CACHE_MIN, 16);
    len = 0;
    for (i = 0; len < 2000; i++) {
        len += sprintf(a + len, "%s%s", fragments[i % 12],
                       i % 7 == 0 ? "<xx>" : " word");
    }
    memcpy(b, a, len);
    /* 60 bytes each, so that both have boundaries of their own */
    memcpy(a + len, " the first question, which is not at all "
           "like the other one?", 60);
    memcpy(b + len, " the second one: it differs from the first "
           "from here on, ok!", 60);

    same(&r, a, len + 60, LLMD_TOK_ADD_SPECIAL_TOKENS, r.cap);
    llmd_tok_cache_stats(r.cache, &st);
    assert_int_equal(st.lookups, 1);
    assert_int_equal(st.hits, 0);
    assert_int_equal(st.stored, 1);
    st1 = st;

    /* prefaulting touches all of the cache's memory and changes none of
       it: the entry just stored is reused below with the same ids */
    assert_int_equal(llmd_tok_cache_prefault(r.cache), st.bytes);
    assert_int_equal(llmd_tok_cache_prefault(NULL), 0);

    same(&r, b, len + 60, LLMD_TOK_ADD_SPECIAL_TOKENS, r.cap);
    llmd_tok_cache_stats(r.cache, &st);
    assert_int_equal(st.lookups, 2);
    assert_int_equal(st.hits, 1);
    /* all but the last stride or so of the shared part */
    assert_true(st.reused_ids > 0);
    assert_true((st.encoded_ids - st1.encoded_ids) * 10 < st.reused_ids);
    assert_true(st.bytes <= LLMD_TOK_CACHE_MIN);

    /* the same text again: all ids up to its last boundary reused */
    same(&r, b, len + 60, 0, r.cap);
    llmd_tok_cache_stats(r.cache, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.stored, 2);
    run_free(&r);
    llmd_tokenizer_free(tok);
}


/* A small cache overwritten many times stays correct and bounded. */
static void
test_eviction_and_errors(void **state)
{
    llmd_tokenizer_t        *tok, *other;
    llmd_tok_cache_stats_t   st;
    run_t                    r;
    uint32_t                 ids[16];
    long                     n;

    tok = tokenizer_load_or_fail(FIXTURE);
    assert_null(llmd_tok_cache_create(tok, LLMD_TOK_CACHE_MIN - 1, 0));
    assert_null(llmd_tok_cache_create(NULL, LLMD_TOK_CACHE_MIN, 0));

    run_init(&r, tok, LLMD_TOK_CACHE_MIN, 3);
    families(&r, 7, 1500);
    llmd_tok_cache_stats(r.cache, &st);
    assert_true(st.bytes <= LLMD_TOK_CACHE_MIN);
    assert_true(st.stored > 1000);
    assert_true(st.hits > 100);

    /* a cache belongs to its tokenizer */
    other = tokenizer_load_or_fail(FIXTURE);
    n = llmd_tokenizer_encode_cached(other, r.cache, "abc", 3, 0, r.scratch,
                                     r.size, ids, 16);
    assert_int_equal(n, LLMD_TOK_ERR_INVALID);
    /* the cached path needs its larger scratch */
    n = llmd_tokenizer_encode_cached(tok, r.cache, "abc", 3, 0, r.scratch,
                                     llmd_tokenizer_scratch_size(tok, 3),
                                     ids, 16);
    assert_int_equal(n, LLMD_TOK_ERR_SCRATCH);
    /* without a cache it is llmd_tokenizer_encode() */
    n = llmd_tokenizer_encode_cached(tok, NULL, "abc", 3, 0, r.scratch,
                                     llmd_tokenizer_scratch_size(tok, 3),
                                     ids, 16);
    assert_true(n > 0);
    /* too small an output array without LLMD_TOK_TRUNCATE */
    same(&r, texts[0], strlen(texts[0]), 0, 4);
    llmd_tokenizer_free(other);
    run_free(&r);
    llmd_tokenizer_free(tok);
}


/*
 * The longest cached boundary is found wherever it lies among the groups
 * of boundaries keyed together (llmd_tok_cache_lookup): with stride 1 or
 * 4 every space after a word of T is a boundary; T stored, each
 * U = T[0..c) + "." reuses exactly the ids of T before T's last boundary <= c (c itself when
 * T[c] is a space), for every c.
 */
static void
longest_hit(size_t stride)
{
    llmd_tokenizer_t        *tok;
    llmd_tok_cache_stats_t   st0, st;
    run_t                    r;
    char                     t[MAXLEN], u[MAXLEN];
    size_t                   i, len, c, b, groups;
    long                     want;

    tok = tokenizer_load_or_fail(FIXTURE);
    /* large enough that T's entry is never overwritten */
    run_init(&r, tok, LLMD_TOK_CACHE_MIN * 64, stride);
    len = 0;
    for (i = 0; len < 700; i++) {
        len += sprintf(t + len, "%s%s", i ? " " : "",
                       (i * 7) % 5 == 0 ? "hello" : (i % 3 ? "abc" : "xyz"));
    }
    same(&r, t, len, 0, r.cap);
    groups = 0;
    b = 0;
    for (c = 1; c < len; c++) {
        if (t[c] == ' ') {
            b = c;
            groups++;
        }
        memcpy(u, t, c);
        u[c] = '.';
        want = llmd_tokenizer_encode(tok, t, b, 0, r.scratch, r.size, r.b,
                                     r.cap);
        assert_true(want >= 0);
        llmd_tok_cache_stats(r.cache, &st0);
        same(&r, u, c + 1, 0, r.cap);
        llmd_tok_cache_stats(r.cache, &st);
        if (st.reused_ids - st0.reused_ids != (size_t) want) {
            fail_msg("c %zu b %zu: reused %zu, want %ld", c, b,
                     (size_t) (st.reused_ids - st0.reused_ids), want);
        }
    }
    /* boundaries enough for many groups */
    assert_true(groups > 100);
    run_free(&r);
    llmd_tokenizer_free(tok);
}


static void
test_longest_hit(void **state)
{
    /* a state kept every 13 boundaries (stride 1: many boundaries), and
       every 8 (stride 4: still one at every space) */
    longest_hit(1);
    longest_hit(4);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_identity_variants),
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_longest_hit),
        cmocka_unit_test(test_eviction_and_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
