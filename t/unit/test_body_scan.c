/*
 * The request body scanner (core/llmd_body_scan.h) held to cJSON
 * (llmd_request_parse, core/llmd_prompt.h) by t/unit/body_diff.h: hand
 * vectors of cJSON's corner cases, every file of fuzz/corpus/ and t/data/
 * as a body of each API, large bodies, the allocation budget, and
 * LLMD_BODY_DIFF_N (default 1,000,000) generated bodies (t/unit/body_gen.h),
 * and escapes, quotes and NULs at every offset of long strings under each
 * implementation of llmd_str_find() (core/llmd_str_find.h).
 * Any disagreement fails, with the body written to stderr.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "body_diff.h"
#include "body_gen.h"
#include "test_data.h"
#include "core/llmd_str_find.h"


static unsigned long  checked;


static void
show(const char *body, size_t len)
{
    size_t  i;

    for (i = 0; i < len && i < 400; i++) {
        unsigned char c = (unsigned char) body[i];

        if (c >= 0x20 && c < 0x7f) {
            fputc(c, stderr);

        } else {
            fprintf(stderr, "\\x%02x", c);
        }
    }

    fputc('\n', stderr);
}


/* body under every API, with small and default prefix blocks */
static void
check_all(const char *body, size_t len)
{
    int       api;
    char      why[1024];
    char     *copy;
    uint32_t  bs[3] = { 4, 64, 2000 }, mb[3] = { 512, 256, 3 };
    int       k;

    /* an exact-size copy: reads past the end are ASan findings */
    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);

    for (api = 0; api < 3; api++) {
        for (k = 0; k < 3; k++) {
            if (body_diff((llmd_api_t) api, copy, len, bs[k], mb[k], why,
                          sizeof(why)))
            {
                fprintf(stderr, "api %d, blocks %u x %u: %s\nbody: ", api,
                        bs[k], mb[k], why);
                show(body, len);
                fail();
            }

            checked++;
        }
    }

    free(copy);
}


#define CHECK(s)  check_all(s, sizeof(s) - 1)


static void
test_vectors(void **state)
{
    /* grammar corners */
    CHECK("");
    CHECK(" ");
    CHECK("{}");
    CHECK("{} ");
    CHECK("{}\x01");
    CHECK("{}x");
    CHECK("\xef\xbb\xbf{}");
    CHECK("\xef\xbb\xbf{");
    CHECK("\xef\xbb\xbf{} ");
    CHECK("\x01\x00 {\x00\"model\"\x1f:\x0b\"m\"}");
    CHECK("[]");
    CHECK("1");
    CHECK("1x");
    CHECK("\"s\"");
    CHECK("{\"a\":1,");
    CHECK("{\"a\":1,}");
    CHECK("{\"a\":[1,]}");
    CHECK("{\"a\":[1 2]}");
    CHECK("{\"a\" 1}");
    CHECK("{\"a\":}");
    CHECK("{\"a\":nul}");
    CHECK("{\"a\":nullx}");
    CHECK("{\"a\":tru}");
    CHECK("{\"a\":-}");
    CHECK("{\"a\":1.}");
    CHECK("{\"a\":-.5}");
    CHECK("{\"a\":.5}");
    CHECK("{\"a\":1e}");
    CHECK("{\"a\":1e+}");
    CHECK("{\"a\":1.5e3}");
    CHECK("{\"a\":1-2}");
    CHECK("{\"a\":--1}");
    CHECK("{\"a\":0x10}");
    CHECK("{\"a\":007}");
    CHECK("{\"a\":\"\\u00zz\"}");
    CHECK("{\"a\":\"\\udc00\"}");
    CHECK("{\"a\":\"\\ud800\"}");
    CHECK("{\"a\":\"\\ud800\\u0041\"}");
    CHECK("{\"a\":\"\\ud83d\\ude00\"}");
    CHECK("{\"a\":\"\\u000\\\\\"}");
    CHECK("{\"a\":\"\\u000\\\\x\"}");
    CHECK("{\"a\":\"\\x\"}");
    CHECK("{\"a\":\"\\");
    CHECK("{\"a\":\"abc");
    CHECK("{\"mod\\u0065l\":\"m1\",\"prompt\":\"p\"}");
    CHECK("{\"model\\u0000x\":\"m2\",\"prompt\":\"p\"}");
    CHECK("{\"model\":\"a\\u0000b\",\"prompt\":\"x\\u0000y\"}");
    CHECK("{\"model\":\"a\x00z\",\"prompt\":\"x\x00y\"}");
    CHECK("{\"model\":\"m\",\"model\":\"n\",\"prompt\":\"q\",\"prompt\":1}");
    CHECK("{\"model\":7,\"prompt\":\"p\"}");
    CHECK("{\"model\":null,\"cache_salt\":\"\",\"prompt\":\"p\"}");
    CHECK("{\"cache_salt\":{},\"prompt\":\"p\"}");
    CHECK("{\"stream\":true,\"prompt\":[\"a\",\"\",\"b\"]}");
    CHECK("{\"prompt\":[1,2,4294967295,0.0,-0,1e2]}");
    CHECK("{\"prompt\":[1,4294967296]}");
    CHECK("{\"prompt\":[1,2.5]}");
    CHECK("{\"prompt\":[[1,2],[],[3]]}");
    CHECK("{\"prompt\":[[1,2],3]}");
    CHECK("{\"prompt\":[[[1]]]}");
    CHECK("{\"prompt\":[]}");
    CHECK("{\"prompt\":[\"a\",1]}");
    CHECK("{\"prompt\":null}");
    CHECK("{\"prompt\":{}}");
    CHECK("{\"prompt\":[0000000000000000000000000000000000000000000000000000"
          "000000000000000000000000000000000000000000000000000000000007]}");
    CHECK("{\"messages\":[]}");
    CHECK("{\"messages\":[null,{\"role\":\"user\",\"content\":\"hi <b>&"
          "\\u2028\xe2\x80\xa9\x80\xc3\\u00e9\\n\x01\"}]}");
    CHECK("{\"messages\":[{\"role\":1}]}");
    CHECK("{\"messages\":[1]}");
    CHECK("{\"messages\":[{\"content\":[null,{\"type\":\"text\",\"text\":"
          "\"t\",\"image_url\":{\"url\":\"u\",\"detail\":\"x\"}},{}]}],"
          "\"tools\":[],\"add_generation_prompt\":false}");
    CHECK("{\"messages\":[{\"content\":[{\"image_url\":[]}]}]}");
    CHECK("{\"messages\":[{\"content\":[{\"image_url\":{\"url\":1}}]}]}");
    CHECK("{\"messages\":[{\"content\":{}}]}");
    CHECK("{\"messages\":[{\"content\":\"\",\"role\":\"\"}],"
          "\"tools\":null}");
}


static void
check_file(const char *path, int skip_first)
{
    FILE     *f;
    char     *buf;
    long      n;

    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);

    buf = malloc(n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, n, f), (size_t) n);
    fclose(f);

    check_all(buf, n);

    if (skip_first && n > 0) {
        check_all(buf + 1, n - 1);
    }

    free(buf);
}


static unsigned
check_dir(const char *dir)
{
    DIR            *d;
    char            path[4096];
    unsigned        files;
    struct stat     st;
    struct dirent  *de;

    d = opendir(dir);
    assert_non_null(d);
    files = 0;

    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }

        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        assert_int_equal(stat(path, &st), 0);

        if (S_ISDIR(st.st_mode)) {
            files += check_dir(path);
            continue;
        }

        /* fuzz/corpus/request: byte 0 picks the API */
        check_file(path, 1);
        files++;
    }

    closedir(d);
    return files;
}


static void
test_corpora(void **state)
{
    unsigned  files;

    files = check_dir(test_path("fuzz/corpus"));
    files += check_dir(test_data(""));

    fprintf(stderr, "corpora: %u files, %lu checks\n", files, checked);
    assert_true(files > 100);
}


static void
test_large(void **state)
{
    size_t   n, k, cap, j;
    char    *b;
    static const size_t  plain[] = {
        63, 64, 65, 127, 128, 129, 16383, 16384, 16385, 16447, 16448,
        16449, 33000
    };

    cap = 4 << 20;
    b = malloc(cap);
    assert_non_null(b);

    /* string prompts without '\', hashed 64 bytes at a time from the
       body (llmd_sink_blocks64): lengths about block boundaries and the
       256 blocks' end, as completions and as one chat message */
    for (j = 0; j < sizeof(plain) / sizeof(plain[0]); j++) {
        n = (size_t) sprintf(b, "{\"model\":\"m\",\"prompt\":\"");
        for (k = 0; k < plain[j]; k++) {
            b[n++] = (char) ('a' + (k * 7 + j) % 26);
        }
        n += (size_t) sprintf(b + n, "\"}");
        check_all(b, n);

        n = (size_t) sprintf(b, "{\"messages\":[{\"role\":\"user\","
                             "\"content\":\"");
        for (k = 0; k < plain[j]; k++) {
            b[n++] = (char) ('a' + (k * 5 + j) % 26);
        }
        n += (size_t) sprintf(b + n, "\"}]}");
        check_all(b, n);
    }

    /* 1 MiB string prompt with escapes */
    n = (size_t) sprintf(b, "{\"model\":\"m\",\"prompt\":\"");
    for (k = 0; k < 100000; k++) {
        n += (size_t) sprintf(b + n, "word\\n \\u00e9 ");
    }
    n += (size_t) sprintf(b + n, "\"}");
    check_all(b, n);

    /* chat, 2000 messages */
    n = (size_t) sprintf(b, "{\"messages\":[");
    for (k = 0; k < 2000; k++) {
        n += (size_t) sprintf(b + n, "%s{\"role\":\"user\",\"content\":"
                              "\"message %zu <&> \\\"q\\\" \xc3\xa9\"}",
                              k ? "," : "", k);
    }
    n += (size_t) sprintf(b + n, "]}");
    check_all(b, n);

    /* 3 MiB of one-digit token ids: past cJSON's budget, load alone */
    n = (size_t) sprintf(b, "{\"prompt\":[");
    for (k = 0; k < 1500000; k++) {
        b[n++] = '1';
        b[n++] = ',';
    }
    n += (size_t) sprintf(b + n, "1]}");
    check_all(b, n);

    /* the same, invalid at the end */
    b[n - 2] = ',';
    check_all(b, n);

    free(b);
}


/* one body through one API, as an exact-size copy */
static void
check_one(llmd_api_t api, const char *body, size_t len, uint32_t bs)
{
    char   why[1024];
    char  *copy;

    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);

    if (body_diff(api, copy, len, bs, 512, why, sizeof(why))) {
        fprintf(stderr, "api %d, blocks %u: %s\nbody: ", api, bs, why);
        show(body, len);
        fail();
    }

    checked++;
    free(copy);
}


#define SNIP(s)  { s, sizeof(s) - 1 }

/* what a string scan stops at, whole escapes and others */
static const struct {
    const char  *s;
    size_t       n;
} snips[] = {
    SNIP("\\\""), SNIP("\\\\"), SNIP("\\/"), SNIP("\\n"),
    SNIP("\\u0000"), SNIP("\0"), SNIP("\0\\n"), SNIP("\\u00e9"),
    SNIP("\\ud83d\\ude00"), SNIP("\\uD83D\\uDE0"), SNIP("\\ud83d"),
    SNIP("\\ude00"), SNIP("\\ud83dx\\ude00"), SNIP("\\u12\""),
    SNIP("\\u\\\\ab"), SNIP("\\uABC\\\"x"), SNIP("\\uZZZZ"),
    SNIP("\\x"), SNIP("\\\0"), SNIP("\\\\\\\\\\\\"),
    SNIP("\\\\\\\\\\n"), SNIP("\\\\\\\\\\\""), SNIP("\""),
    SNIP("\\u00\"\\u0041"), SNIP("\\")
};


/*
 * Each snippet at each position of a 400-byte string (its start moved
 * over every offset modulo 64 by blanks before the key): a completions
 * prompt, a chat content, a body cut right after it (the string ends at
 * the buffer's end), and a top-level string closed by the body's last
 * byte.  Under every implementation of llmd_str_find().
 */
static void
test_boundaries(void **state)
{
    int      impl;
    char    *b, *s;
    size_t   i, k, n, pad, sn, len;

    b = malloc(4096);
    s = malloc(1024);
    assert_non_null(b);
    assert_non_null(s);

    for (impl = LLMD_STR_FIND_SCALAR; impl < LLMD_STR_FIND_N; impl++) {
        if (llmd_str_find_use(impl) != 0) {
            continue;
        }

        checked = 0;

        for (k = 0; k < sizeof(snips) / sizeof(snips[0]); k++) {
            for (i = 0; i <= 400; i++) {
                for (sn = 0; sn < i; sn++) {
                    s[sn] = (char) ('a' + (sn * 7) % 26);
                }

                memcpy(s + sn, snips[k].s, snips[k].n);
                sn += snips[k].n;

                for (len = i; len < 400; len++) {
                    s[sn++] = (char) ('a' + (len * 3) % 26);
                }

                pad = (i * 5) % 64;

                n = (size_t) sprintf(b, "{\"model\":\"m\",%*s\"prompt\":\"",
                                     (int) pad, "");
                memcpy(b + n, s, sn);
                n += sn;
                check_one(LLMD_API_COMPLETIONS, b, n, 4);
                memcpy(b + n, "\"}", 2);
                check_one(LLMD_API_COMPLETIONS, b, n + 2, 4);

                n = (size_t) sprintf(b, "{\"messages\":[{\"role\":\"user\","
                                     "%*s\"content\":\"", (int) pad, "");
                memcpy(b + n, s, sn);
                n += sn;
                memcpy(b + n, "\"}]}", 4);
                check_one(LLMD_API_CHAT, b, n + 4, 64);

                b[0] = '"';
                memcpy(b + 1 + pad, s, sn);
                memset(b + 1, ' ', pad);
                b[1 + pad + sn] = '"';
                check_one(LLMD_API_COMPLETIONS, b, 2 + pad + sn, 64);
            }
        }

        fprintf(stderr, "implementation %d: %lu bodies agree\n", impl,
                checked);
    }

    assert_int_equal(llmd_str_find_use(LLMD_STR_FIND_AUTO), 0);

    free(s);
    free(b);
}


/*
 * cJSON's allocation for strings with escapes, to the byte: the budget
 * is lowered one byte at a time across the point where a body of 300
 * empty objects and a prompt of eight escapes of a kind goes over it.
 */
static void
test_budget_escapes(void **state)
{
    char            b[2048];
    size_t          k, i, n, min;
    unsigned long   over, under;

    static const char  *kinds[] = {
        "\\ud83d\\ude00", "\\n", "\\u00e9", "\\u\\\\ab", "x\\\\"
    };

    for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        n = (size_t) sprintf(b, "{\"prompt\":\"");

        for (i = 0; i < 8; i++) {
            n += (size_t) sprintf(b + n, "%s", kinds[k]);
        }

        n += (size_t) sprintf(b + n, "\",\"a\":[{}");

        for (i = 1; i < 300; i++) {
            n += (size_t) sprintf(b + n, ",{}");
        }

        n += (size_t) sprintf(b + n, "]}");

        over = under = 0;

        for (min = 1; min < 8000; min++) {
            llmd_request_set_json_budget_min(min);
            check_one(LLMD_API_COMPLETIONS, b, n, 4);

            if (body_diff_last > 0) {
                over++;

            } else {
                under++;
            }
        }

        llmd_request_set_json_budget_min(0);

        /* the budget went across the body's allocation */
        assert_true(over > 0 && under > 0);
    }
}


static void
run_generated(unsigned long count, uint64_t seed, int small_budget)
{
    int             chat;
    char            why[1024];
    unsigned long   i, ok, bad, over;
    body_gen_t      g;
    llmd_api_t      api;
    char           *exact;
    uint32_t        bs;

    g.cap = 64 * 1024;
    g.p = malloc(g.cap);
    g.s = seed;
    assert_non_null(g.p);

    ok = bad = over = 0;
    body_diff_plain_n = 0;
    body_diff_unplain_n = 0;
    body_diff_msg_hashes_n = 0;

    for (i = 0; i < count; i++) {
        chat = (int) bg_rn(&g, 2);
        g.hostile = bg_rn(&g, 4) == 0;
        bg_body(&g, chat);

        if (bg_rn(&g, 3) == 0) {
            bg_mutate(&g);
        }

        api = bg_rn(&g, 10) == 0 ? (llmd_api_t) bg_rn(&g, 3)
                                 : (chat ? LLMD_API_CHAT
                                         : LLMD_API_COMPLETIONS);

        if (small_budget) {
            llmd_request_set_json_budget_min(1 + bg_rn(&g, 1000));
        }

        bs = bg_rn(&g, 4) ? 1 + bg_rn(&g, 80) : 1025 + bg_rn(&g, 100);

        exact = malloc(g.n ? g.n : 1);
        assert_non_null(exact);
        memcpy(exact, g.p, g.n);

        if (body_diff(api, exact, g.n, bs, 1 + bg_rn(&g, 100), why,
                      sizeof(why)))
        {
            fprintf(stderr, "body %lu (seed %llu), api %d: %s\nbody: ", i,
                    (unsigned long long) seed, (int) api, why);
            show(g.p, g.n);
            free(exact);
            llmd_request_set_json_budget_min(0);
            fail();
        }

        /* counts, from the reference */
        if (body_diff_last < 0) {
            bad++;

            if (getenv("LLMD_BODY_DIFF_ERRORS") != NULL) {
                fprintf(stderr, "%d %d %s\n", (int) api, g.hostile,
                        body_diff_err);
            }

        } else if (body_diff_last > 0) {
            over++;

        } else {
            ok++;
        }

        free(exact);
    }

    llmd_request_set_json_budget_min(0);

    fprintf(stderr, "generated (seed %llu%s): %lu bodies, cJSON and the "
            "scanner agree on all: %lu accepted, %lu rejected, %lu over "
            "budget\n", (unsigned long long) seed,
            small_budget ? ", small budget" : "", count, ok, bad, over);
    fprintf(stderr, "  chat accepted: %lu with the messages read for the "
            "template (same roles and contents), %lu left to cJSON; %lu "
            "hashed again from the messages alone (same hashes)\n",
            body_diff_plain_n, body_diff_unplain_n, body_diff_msg_hashes_n);

    if (count < 10000) {
        /* LLMD_BODY_DIFF_N too small for the mix to be asserted */

    } else if (small_budget) {
        assert_true(over > 0);

    } else {
        assert_true(ok > count / 10);
        assert_true(bad > count / 10);
        assert_true(body_diff_plain_n > count / 100);
        assert_true(body_diff_unplain_n > count / 100);
        assert_true(body_diff_msg_hashes_n > count / 100);
    }

    free(g.p);
}


static void
test_generated(void **state)
{
    const char     *env;
    unsigned long   n;

    env = getenv("LLMD_BODY_DIFF_N");
    n = env ? strtoul(env, NULL, 10) : 1000000;

#if defined(__SANITIZE_ADDRESS__)
    /* make test SAN=address: the same bodies, fewer (t/unit.t's 60 s) */
    if (env == NULL) {
        n = 100000;
    }
#endif

    run_generated(n - n / 10, env && getenv("LLMD_BODY_DIFF_SEED")
                  ? strtoull(getenv("LLMD_BODY_DIFF_SEED"), NULL, 10) : 1,
                  0);
    run_generated(n / 10, 2, 1);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_corpora),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_boundaries),
        cmocka_unit_test(test_budget_escapes),
        cmocka_unit_test(test_generated),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
