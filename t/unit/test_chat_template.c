/*
 * Native chat template renderers: template recognition (and known
 * templates by name), the exact prompts of Qwen3, Llama-3 and Llama-3.1 for
 * hand-checked conversations (expected strings derived from the templates
 * in t/data/chat/ as Python's Jinja renders them), vLLM's content
 * normalisation, Python's whitespace semantics, errors, and output buffer
 * handling.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tokenizer/llmd_chat_template.h"
#include "test_data.h"


#define QWEN3     test_data("chat/qwen3.json")
#define LLAMA3    test_data("chat/llama3.json")
#define LLAMA31   test_data("chat/llama3_1-instruct.json")

#define L31_SYS  "<|begin_of_text|><|start_header_id|>system<|end_header_id|>" \
                 "\n\nCutting Knowledge Date: December 2023\n"                  \
                 "Today Date: 26 Jul 2024\n\n"
#define L_GEN    "<|start_header_id|>assistant<|end_header_id|>\n\n"


static llmd_chat_template_t *
load(const char *path)
{
    char                   err[512];
    llmd_chat_template_t  *t;

    t = llmd_chat_template_load(path, err, sizeof(err));
    if (t == NULL) {
        fail_msg("%s: %s", path, err);
    }
    return t;
}


/* Renders messages (JSON text); returns a static copy of the prompt or of
 * "ERROR <rc> <message>". */
static const char *
render_kw(const char *path, const char *messages, const char *kwargs,
    int gen)
{
    static char            out[65536];
    char                   err[512];
    size_t                 needed;
    long                   rc;
    cJSON                 *m, *k;
    llmd_chat_template_t  *t;

    t = load(path);
    m = cJSON_Parse(messages);
    assert_non_null(m);
    k = kwargs ? cJSON_Parse(kwargs) : NULL;
    err[0] = '\0';
    rc = llmd_chat_template_render_kw(t, m, k, gen, out, sizeof(out),
                                      &needed, err, sizeof(err));
    if (rc < 0) {
        snprintf(out, sizeof(out), "ERROR %ld %s", rc, err);
    } else {
        assert_int_equal((size_t) rc, needed);
        assert_int_equal(strlen(out), (size_t) rc);
    }
    cJSON_Delete(m);
    cJSON_Delete(k);
    llmd_chat_template_free(t);
    return out;
}


static const char *
render(const char *path, const char *messages)
{
    return render_kw(path, messages, NULL, 1);
}


static void
test_load(void **state)
{
    char                   err[512];
    llmd_chat_template_t  *t;
    FILE                  *f;

    t = load(QWEN3);
    assert_string_equal(llmd_chat_template_family(t), "qwen3");
    assert_string_equal(llmd_chat_template_variant(t), "qwen3");
    llmd_chat_template_free(t);
    t = load(LLAMA3);
    assert_string_equal(llmd_chat_template_family(t), "llama3");
    assert_string_equal(llmd_chat_template_variant(t), "llama3");
    llmd_chat_template_free(t);
    t = load(LLAMA31);
    assert_string_equal(llmd_chat_template_family(t), "llama3");
    assert_string_equal(llmd_chat_template_variant(t), "llama3.1");
    llmd_chat_template_free(t);

    assert_null(llmd_chat_template_load(test_data("chat/nonexistent.json"), err,
                                        sizeof(err)));
    assert_non_null(strstr(err, "nonexistent.json"));

    /* a template of no known family: refused */
    {
        static const char  other[] = "{\"chat_template\": \"{% for m in "
                                     "messages %}{{ m.content }}{% endfor %}\"}";

        assert_null(llmd_chat_template_load_json(other, sizeof(other) - 1,
                                                 err, sizeof(err)));
    }
    assert_non_null(strstr(err, "unknown chat template"));
    assert_null(llmd_chat_template_load_json("{\"bos_token\": \"x\"}", 18,
                                             err, sizeof(err)));
    assert_non_null(strstr(err, "no chat_template"));
    assert_null(llmd_chat_template_load_json("[1,2", 4, err, sizeof(err)));

    /* a template with its whitespace changed is another template */
    f = fopen(QWEN3, "rb");
    assert_non_null(f);
    {
        static char  buf[65536];
        size_t       n = fread(buf, 1, sizeof(buf) - 1, f);
        char        *p = strstr(buf, "{%- if tools %}");

        assert_non_null(p);
        p[2] = '+';                     /* "{%+ if tools %}" */
        assert_null(llmd_chat_template_load_json(buf, n, err, sizeof(err)));
    }
    fclose(f);
}


static void
test_qwen3_basic(void **state)
{
    assert_string_equal(render(QWEN3,
        "[{\"role\":\"system\",\"content\":\"You are kind.\"},"
        "{\"role\":\"user\",\"content\":\"Hi\"}]"),
        "<|im_start|>system\nYou are kind.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n");

    /* no system message: none is added; no generation prompt on request */
    assert_string_equal(render_kw(QWEN3,
        "[{\"role\":\"user\",\"content\":\" Hi \"}]", NULL, 0),
        "<|im_start|>user\n Hi <|im_end|>\n");

    /* enable_thinking=false (the boolean only) adds an empty think block */
    assert_string_equal(render_kw(QWEN3,
        "[{\"role\":\"user\",\"content\":\"Hi\"}]",
        "{\"enable_thinking\":false}", 1),
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n");
    assert_string_equal(render_kw(QWEN3,
        "[{\"role\":\"user\",\"content\":\"Hi\"}]",
        "{\"enable_thinking\":0}", 1),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");

    /* a later system message is a turn; unknown roles render nothing */
    assert_string_equal(render(QWEN3,
        "[{\"role\":\"user\",\"content\":\"a\"},"
        "{\"role\":\"system\",\"content\":\"s\"},"
        "{\"role\":\"developer\",\"content\":\"d\"}]"),
        "<|im_start|>user\na<|im_end|>\n"
        "<|im_start|>system\ns<|im_end|>\n"
        "<|im_start|>assistant\n");
}


static void
test_qwen3_thinking(void **state)
{
    /* history before the last query loses its thoughts */
    assert_string_equal(render(QWEN3,
        "[{\"role\":\"user\",\"content\":\"q1\"},"
        "{\"role\":\"assistant\",\"content\":\"<think>\\nr1\\n</think>\\n\\n"
        "a1\"},"
        "{\"role\":\"user\",\"content\":\"q2\"}]"),
        "<|im_start|>user\nq1<|im_end|>\n"
        "<|im_start|>assistant\na1<|im_end|>\n"
        "<|im_start|>user\nq2<|im_end|>\n"
        "<|im_start|>assistant\n");

    /* after the last query: kept when non-empty, and always for the last
     * message; strip('\n') only strips newlines */
    assert_string_equal(render_kw(QWEN3,
        "[{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"content\":\"<think>\\n r \\n</think>\\n"
        " a\"},"
        "{\"role\":\"tool\",\"content\":\"t1\"},"
        "{\"role\":\"tool\",\"content\":\"t2\"},"
        "{\"role\":\"assistant\",\"content\":\"plain\"}]", NULL, 0),
        "<|im_start|>user\nq<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n r \n</think>\n\n a<|im_end|>\n"
        "<|im_start|>user\n<tool_response>\nt1\n</tool_response>\n"
        "<tool_response>\nt2\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\nplain<|im_end|>\n");

    /* a user message that is only a tool response is not a query */
    assert_string_equal(render_kw(QWEN3,
        "[{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"content\":\"x</think>y\"},"
        "{\"role\":\"user\",\"content\":\"<tool_response>r</tool_response>\"},"
        "{\"role\":\"assistant\",\"content\":\"z\"}]", NULL, 0),
        "<|im_start|>user\nq<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nx\n</think>\n\ny<|im_end|>\n"
        "<|im_start|>user\n<tool_response>r</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\nz<|im_end|>\n");

    /* split('</think>'): thoughts end at the first, content starts after
     * the last; thoughts start after the last <think> */
    assert_string_equal(render_kw(QWEN3,
        "[{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"content\":\"<think>a<think>\\nb\\n"
        "</think>c</think>\\n\\nd\"}]", NULL, 0),
        "<|im_start|>user\nq<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nb\n</think>\n\nd<|im_end|>\n");

    /* vLLM's "reasoning" becomes reasoning_content: content stays whole */
    assert_string_equal(render_kw(QWEN3,
        "[{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"content\":\"x</think>y\","
        "\"reasoning\":\"\\nR\\n\"}]", NULL, 0),
        "<|im_start|>user\nq<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nR\n</think>\n\nx</think>y"
        "<|im_end|>\n");
}


static void
test_content_parts(void **state)
{
    /* vLLM joins the non-empty texts with "\n", drops other parts */
    assert_string_equal(render(QWEN3,
        "[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"a\"},"
        "{\"type\":\"text\",\"text\":\"\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x\"}},"
        "{\"type\":\"text\",\"text\":null},"
        "\"b\","
        "{\"type\":\"refusal\",\"refusal\":\"c\"},"
        "{\"type\":\"input_text\",\"text\":\"d\"}]},"
        "{\"role\":\"assistant\",\"content\":null},"
        "{\"role\":\"user\"}]"),
        "<|im_start|>user\na\nb\nc\nd<|im_end|>\n"
        "<|im_start|>assistant\n<|im_end|>\n"
        "<|im_start|>user\n<|im_end|>\n"
        "<|im_start|>assistant\n");

    /* a tag never spans parts (the "\n" separates them), but newline
     * stripping does */
    assert_string_equal(render_kw(QWEN3,
        "[{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"content\":["
        "{\"type\":\"text\",\"text\":\"<thi\"},"
        "{\"type\":\"text\",\"text\":\"r</th\"},"
        "{\"type\":\"text\",\"text\":\"\"},"
        "{\"type\":\"text\",\"text\":\"ink>\"},"
        "{\"type\":\"text\",\"text\":\"z\"}]}]", NULL, 0),
        "<|im_start|>user\nq<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n<thi\nr</th\nink>\n"
        "z<|im_end|>\n");
    assert_string_equal(render_kw(QWEN3,
        "[{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"content\":["
        "\"\\n<think>\\n\", \"r\", \"\\n</think>\", \"\", \"\\n\", \"z\"]}]",
        NULL, 0),
        "<|im_start|>user\nq<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nr\n</think>\n\nz<|im_end|>\n");
    assert_string_equal(render(LLAMA3,
        "[{\"role\":\"user\",\"content\":["
        "\" \", {\"type\":\"text\",\"text\":\" x \"}, \"\\t\"]}]"),
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nx"
        "<|eot_id|>" L_GEN);
}


static void
test_llama3(void **state)
{
    assert_string_equal(render(LLAMA3,
        "[{\"role\":\"system\",\"content\":\" S \\n\"},"
        "{\"role\":\"user\",\"content\":\"Hi\"},"
        "{\"role\":\"assistant\",\"content\":\"Yo\","
        "\"tool_calls\":[{\"id\":\"1\"}]},"
        "{\"role\":\"tool\",\"content\":\"t\"}]"),
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS"
        "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nYo<|eot_id|>"
        "<|start_header_id|>tool<|end_header_id|>\n\nt<|eot_id|>" L_GEN);
    /* no messages: the template renders only the generation prompt */
    assert_string_equal(render(LLAMA3, "[]"), L_GEN);
}


static void
test_llama31(void **state)
{
    /* the default system message even without one */
    assert_string_equal(render(LLAMA31,
        "[{\"role\":\"user\",\"content\":\" Hi \"}]"),
        L31_SYS "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi"
        "<|eot_id|>" L_GEN);
    assert_string_equal(render_kw(LLAMA31,
        "[{\"role\":\"system\",\"content\":\"\\n Be brief. \"},"
        "{\"role\":\"user\",\"content\":\"Hi\"}]",
        "{\"date_string\":\"01 Jan 2025\"}", 0),
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 01 Jan 2025\n\n"
        "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi"
        "<|eot_id|>");
    /* tool results go through tojson (a string "is iterable" in Jinja) */
    assert_string_equal(render_kw(LLAMA31,
        "[{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"tool\",\"content\":\" \\\"a\\\\b\\\"\\n\\t\\u0001 é \"}]",
        NULL, 0),
        L31_SYS "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nq"
        "<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n"
        "\" \\\"a\\\\b\\\"\\n\\t\\u0001 é \"<|eot_id|>");
}


static void
test_python_whitespace(void **state)
{
    /* |trim is Python's str.strip(): U+001C..U+001F and U+0085 are
     * whitespace, U+FEFF is not (JavaScript's trim() differs) */
    assert_string_equal(render_kw(LLAMA3,
        "[{\"role\":\"user\",\"content\":"
        "\"\\u001c\\u0085\\u3000\\u2028x\\u00a0\\u001f\"},"
        "{\"role\":\"user\",\"content\":\"\\ufeffy\\ufeff\"}]", NULL, 0),
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nx"
        "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "\xef\xbb\xbfy\xef\xbb\xbf<|eot_id|>");
    /* only whitespace: empty */
    assert_string_equal(render_kw(LLAMA3,
        "[{\"role\":\"user\",\"content\":\" \\u2009\\n\"}]", NULL, 0),
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
        "<|eot_id|>");
}


static void
test_errors(void **state)
{
    assert_string_equal(render(QWEN3, "{\"role\":\"user\"}"),
                        "ERROR -1 messages must be an array");
    assert_string_equal(render(QWEN3, "[]"),
                        "ERROR -1 messages must not be empty");
    assert_string_equal(render(LLAMA31, "[]"),
                        "ERROR -1 messages must not be empty");
    assert_string_equal(render(QWEN3, "[1]"),
                        "ERROR -1 messages[0] is not an object");
    assert_string_equal(render(QWEN3, "[{\"content\":\"x\"}]"),
                        "ERROR -1 messages[0].role is not a string");
    assert_string_equal(render(QWEN3,
                               "[{\"role\":\"user\",\"content\":5}]"),
                        "ERROR -1 messages[0].content is neither a string "
                        "nor an array");
    assert_string_equal(render(QWEN3,
        "[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]"),
        "ERROR -1 messages[0].content[0] has no type");
    assert_string_equal(render(QWEN3,
        "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":1}]}]"),
        "ERROR -1 messages[0].content[0].text is not a string");
    assert_string_equal(render(QWEN3,
        "[{\"role\":\"assistant\",\"content\":\"\",\"reasoning\":1}]"),
        "ERROR -1 messages[0].reasoning is not a string");

    /* tool calls: unsupported (the caller falls back) */
    assert_string_equal(render(QWEN3,
        "[{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":"
        "[{\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{}\"}}]}]"),
        "ERROR -3 messages[0]: tool calls are not rendered by the qwen3 "
        "renderer");
    assert_string_equal(render(QWEN3,
        "[{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"content\":\"a\",\"tool_calls\":[]}]"),
        "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"
        "<think>\n\n</think>\n\na<|im_end|>\n<|im_start|>assistant\n");
    assert_string_equal(render(LLAMA31,
        "[{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[]}]"),
        "ERROR -3 messages[0]: tool calls are not rendered by the llama3.1 "
        "renderer");
    assert_string_equal(render_kw(LLAMA31,
        "[{\"role\":\"user\",\"content\":\"q\"}]",
        "{\"tools\":[{\"type\":\"function\"}]}", 1),
        "ERROR -3 chat_template_kwargs.tools is not supported");
    assert_string_equal(render_kw(LLAMA31,
        "[{\"role\":\"user\",\"content\":\"q\"}]", "[1]", 1),
        "ERROR -1 chat_template_kwargs is not an object");
}


static void
test_capacity(void **state)
{
    static const char  msgs[] =
        "[{\"role\":\"user\",\"content\":[\"ab\",\"cd\"]}]";
    static const char  want[] = "<|im_start|>user\nab\ncd<|im_end|>\n"
                                "<|im_start|>assistant\n";
    char                   out[sizeof(want) + 8], err[128];
    size_t                 needed, cap;
    long                   rc;
    cJSON                 *m;
    llmd_chat_template_t  *t;

    t = load(QWEN3);
    m = cJSON_Parse(msgs);
    for (cap = 0; cap < sizeof(want) - 1; cap++) {
        memset(out, 'X', sizeof(out));
        needed = 0;
        rc = llmd_chat_template_render(t, m, 1, cap ? out : NULL, cap,
                                       &needed, err, sizeof(err));
        assert_int_equal(rc, LLMD_CHAT_ERR_CAPACITY);
        assert_int_equal(needed, sizeof(want) - 1);
        /* nothing written past cap */
        assert_int_equal(out[cap], 'X');
    }
    /* exactly the length: no NUL, but a complete prompt */
    memset(out, 'X', sizeof(out));
    rc = llmd_chat_template_render(t, m, 1, out, sizeof(want) - 1, NULL,
                                   err, sizeof(err));
    assert_int_equal(rc, (long) sizeof(want) - 1);
    assert_memory_equal(out, want, sizeof(want) - 1);
    assert_int_equal(out[sizeof(want) - 1], 'X');
    cJSON_Delete(m);
    llmd_chat_template_free(t);
}


static void
test_hostile(void **state)
{
    /* many parts and messages, invalid UTF-8 at the edges: defined
     * results, bounded time */
    static char            big[1 << 20];
    char                   err[128];
    size_t                 needed, i, n;
    long                   rc;
    cJSON                 *m, *msg, *parts;
    llmd_chat_template_t  *t;
    const char            *paths[] = { QWEN3, LLAMA3, LLAMA31 };
    int                    p;

    m = cJSON_CreateArray();
    for (i = 0; i < 2000; i++) {
        msg = cJSON_CreateObject();
        cJSON_AddStringToObject(msg, "role", i % 2 ? "assistant" : "user");
        parts = cJSON_AddArrayToObject(msg, "content");
        for (n = 0; n < 20; n++) {
            cJSON_AddItemToArray(parts, cJSON_CreateString(
                n % 3 ? "\xe2\x80" : "</think>\xc2"));
        }
        cJSON_AddItemToArray(m, msg);
    }
    for (p = 0; p < 3; p++) {
        t = load(paths[p]);
        rc = llmd_chat_template_render(t, m, 1, big, sizeof(big), &needed,
                                       err, sizeof(err));
        assert_true(rc > 0);
        assert_int_equal((size_t) rc, needed);
        llmd_chat_template_free(t);
    }
    cJSON_Delete(m);
}


/* A known template by variant name renders as the same template loaded. */
static void
test_builtin(void **state)
{
    static const char      msgs[] =
        "[{\"role\":\"system\",\"content\":\" s \"},"
        "{\"role\":\"user\",\"content\":[\"a\","
        "{\"type\":\"text\",\"text\":\"b\"}]}]";
    const char            *paths[] = { QWEN3, LLAMA3, LLAMA31 };
    static const char     *variants[] = { "qwen3", "llama3", "llama3.1" };
    static const char     *bos[] = { NULL, "<|begin_of_text|>",
                                     "<|begin_of_text|>" };
    static char            out[4096];
    char                   err[512], longbos[300];
    const char            *want;
    long                   rc;
    cJSON                 *m;
    llmd_chat_template_t  *t;
    int                    i;

    m = cJSON_Parse(msgs);
    assert_non_null(m);
    for (i = 0; i < 3; i++) {
        t = llmd_chat_template_builtin(variants[i], bos[i], err, sizeof(err));
        assert_non_null(t);
        assert_string_equal(llmd_chat_template_variant(t), variants[i]);
        rc = llmd_chat_template_render(t, m, 1, out, sizeof(out), NULL, err,
                                       sizeof(err));
        assert_true(rc > 0);
        want = render(paths[i], msgs);
        assert_string_equal(out, want);
        llmd_chat_template_free(t);
    }
    cJSON_Delete(m);

    assert_null(llmd_chat_template_builtin("llama4", NULL, err,
                                           sizeof(err)));
    assert_non_null(strstr(err, "llama4"));
    memset(longbos, 'x', sizeof(longbos) - 1);
    longbos[sizeof(longbos) - 1] = '\0';
    assert_null(llmd_chat_template_builtin("llama3", longbos, err,
                                           sizeof(err)));
    assert_non_null(strstr(err, "bos_token"));
}


/*
 * llmd_chat_template_render_msgs() (plain messages, no JSON tree) gives
 * what the same messages give through cJSON_Parse and
 * llmd_chat_template_render(): the text, the return code and the error,
 * for 3,000 generated conversations per template (0-6 messages, every
 * role the renderers treat apart, contents with whitespace, think and
 * tool_response markers), with and without the generation prompt.
 */
static void
test_render_msgs(void **state)
{
    static char            out1[8192], out2[8192];
    char                   err1[256], err2[256], json[8192];
    const char            *paths[] = { QWEN3, LLAMA3, LLAMA31 };
    static const char     *roles[] = { "system", "user", "assistant", "tool",
                                       "ipython", "", "User" };
    static const char     *contents[] = {
        "", " hi ", "\n\nx\n", "<think>\nr\n</think>\n\nanswer",
        "<tool_response>\nok\n</tool_response>", "caf\xc3\xa9 \t",
        "a <|eot_id|> b", "plain text"
    };
    llmd_chat_msg_t        msgs[6];
    void                  *scratch;
    size_t                 n, k, len, ssize;
    long                   rc1, rc2;
    uint32_t               rng;
    int                    i, round, gen;
    cJSON                 *arr, *m;
    llmd_chat_template_t  *t;

    rng = 99;
    ssize = llmd_chat_msgs_scratch_size(6);
    scratch = malloc(ssize);
    assert_non_null(scratch);

    for (i = 0; i < 3; i++) {
        t = load(paths[i]);

        for (round = 0; round < 3000; round++) {
            rng = rng * 1103515245 + 12345;
            n = (rng >> 8) % 7;
            gen = (rng >> 12) & 1;
            arr = cJSON_CreateArray();

            for (k = 0; k < n; k++) {
                rng = rng * 1103515245 + 12345;
                msgs[k].role = roles[(rng >> 8) % 7];
                msgs[k].content = contents[(rng >> 16) % 8];
                m = cJSON_CreateObject();
                cJSON_AddStringToObject(m, "role", msgs[k].role);
                cJSON_AddStringToObject(m, "content", msgs[k].content);
                cJSON_AddItemToArray(arr, m);
            }

            /* through text, as a request body gives it */
            assert_true(cJSON_PrintPreallocated(arr, json, sizeof(json), 0));
            cJSON_Delete(arr);
            arr = cJSON_Parse(json);
            assert_non_null(arr);

            err1[0] = err2[0] = '\0';
            rc1 = llmd_chat_template_render(t, arr, gen, out1, sizeof(out1),
                                            NULL, err1, sizeof(err1));
            rc2 = llmd_chat_template_render_msgs(t, msgs, n, gen, scratch,
                                                 ssize, out2, sizeof(out2),
                                                 NULL, err2, sizeof(err2));
            if (rc1 != rc2 || strcmp(err1, err2) != 0
                || (rc1 > 0 && memcmp(out1, out2, (size_t) rc1) != 0))
            {
                fail_msg("%s, %s: cJSON %ld \"%s\" vs plain %ld \"%s\"",
                         paths[i], json, rc1, rc1 >= 0 ? out1 : err1, rc2,
                         rc2 >= 0 ? out2 : err2);
            }

            cJSON_Delete(arr);
        }

        llmd_chat_template_free(t);
    }

    /* too little scratch is an error, never an overrun */
    t = load(LLAMA3);
    msgs[0].role = "user";
    msgs[0].content = "x";
    len = llmd_chat_msgs_scratch_size(1);
    assert_int_equal(llmd_chat_template_render_msgs(t, msgs, 1, 1, scratch,
                                                    len - 1, out2,
                                                    sizeof(out2), NULL, err2,
                                                    sizeof(err2)),
                     LLMD_CHAT_ERR_INVALID);
    llmd_chat_template_free(t);
    free(scratch);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_qwen3_basic),
        cmocka_unit_test(test_qwen3_thinking),
        cmocka_unit_test(test_content_parts),
        cmocka_unit_test(test_llama3),
        cmocka_unit_test(test_llama31),
        cmocka_unit_test(test_python_whitespace),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_builtin),
        cmocka_unit_test(test_render_msgs),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
