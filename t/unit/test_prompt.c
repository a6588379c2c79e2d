/*
 * Request body parsing: API by path, model/cache_salt/stream, every prompt
 * shape, the Go serialisation of chat messages (spec section 3.3.5 Gen A),
 * every error, large and hostile bodies, allocation failures.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cJSON.h>

#include "core/llmd_prompt.h"
#include "core/llmd_prefix_hash.h"
#include "core/llmd_go_json.h"


/*
 * A test region: every allocation is remembered and released in teardown,
 * so valgrind and ASan see no leak; fail_after makes the n-th allocation
 * fail.
 */
typedef struct arena_block_s  arena_block_t;

struct arena_block_s {
    arena_block_t  *next;
    /* payload follows, max-aligned */
    max_align_t     data[];
};

typedef struct {
    arena_block_t  *blocks;
    size_t          bytes;
    long            fail_after;     /* -1: never */
} arena_t;


static arena_t        arena;
static llmd_alloc_t   alloc;
static llmd_request_t req;
static char           err[LLMD_ERRLEN];


static void *
arena_alloc(void *ctx, size_t size)
{
    arena_t        *ar = ctx;
    arena_block_t  *b;

    if (ar->fail_after == 0) {
        return NULL;
    }

    if (ar->fail_after > 0) {
        ar->fail_after--;
    }

    b = malloc(sizeof(arena_block_t) + size);
    if (b == NULL) {
        return NULL;
    }

    b->next = ar->blocks;
    ar->blocks = b;
    ar->bytes += size;

    return b->data;
}


static void
arena_reset(void)
{
    arena_block_t  *b, *next;

    for (b = arena.blocks; b; b = next) {
        next = b->next;
        free(b);
    }

    arena.blocks = NULL;
    arena.bytes = 0;
    arena.fail_after = -1;
}


static int
setup(void **state)
{
    arena_reset();
    alloc.alloc = arena_alloc;
    alloc.ctx = &arena;
    memset(&req, 0xa5, sizeof(req));
    err[0] = '\0';
    return 0;
}


static int
teardown(void **state)
{
    arena_reset();
    return 0;
}


/* the body is copied to a buffer of exactly len bytes: no terminating NUL */
static int
parse_n(llmd_api_t api, const char *body, size_t len)
{
    char  *copy;

    copy = arena_alloc(&arena, len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, body, len);

    return llmd_request_parse(api, copy, len, &alloc, &req, err,
                              sizeof(err));
}


static int
parse(llmd_api_t api, const char *body)
{
    return parse_n(api, body, strlen(body));
}


#define assert_prompt(expected)                                              \
    do {                                                                     \
        assert_int_equal(req.prompt_len, sizeof(expected) - 1);              \
        assert_memory_equal(req.prompt, expected, sizeof(expected) - 1);     \
    } while (0)


#define assert_fails(api, body, message)                                     \
    do {                                                                     \
        assert_int_equal(parse(api, body), -1);                              \
        assert_string_equal(err, message);                                   \
    } while (0)


static void
test_api_from_path(void **state)
{
    assert_int_equal(llmd_api_from_path("/v1/completions", 15),
                     LLMD_API_COMPLETIONS);
    assert_int_equal(llmd_api_from_path("/v1/chat/completions", 20),
                     LLMD_API_CHAT);
    assert_int_equal(llmd_api_from_path("/completions", 12),
                     LLMD_API_COMPLETIONS);
    assert_int_equal(llmd_api_from_path("/chat/completions", 17),
                     LLMD_API_CHAT);
    assert_int_equal(llmd_api_from_path("/openai/v1/chat/completions", 27),
                     LLMD_API_CHAT);

    /* only the given length counts */
    assert_int_equal(llmd_api_from_path("/v1/completionsXYZ", 15),
                     LLMD_API_COMPLETIONS);

    assert_int_equal(llmd_api_from_path("/v1/models", 10), LLMD_API_OTHER);
    assert_int_equal(llmd_api_from_path("/v1/completions/render", 22),
                     LLMD_API_OTHER);
    assert_int_equal(llmd_api_from_path("/v1/xcompletions", 16),
                     LLMD_API_OTHER);
    assert_int_equal(llmd_api_from_path("completions", 11), LLMD_API_OTHER);
    assert_int_equal(llmd_api_from_path("/v1/Completions", 15),
                     LLMD_API_OTHER);
    assert_int_equal(llmd_api_from_path("", 0), LLMD_API_OTHER);
    assert_int_equal(llmd_api_from_path(NULL, 0), LLMD_API_OTHER);
}


static void
test_string_prompt(void **state)
{
    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           "{\"model\":\"Qwen/Qwen3-0.6B\",\"prompt\":"
                           "\"Say \\\"hi\\\" \\u00e9\\n\",\"max_tokens\":5}"),
                     0);
    assert_int_equal(req.model_len, 15);
    assert_memory_equal(req.model, "Qwen/Qwen3-0.6B", 15);
    assert_null(req.cache_salt);
    assert_int_equal(req.cache_salt_len, 0);
    assert_int_equal(req.stream, 0);

    /* JSON escapes are decoded: the bytes vLLM sees */
    assert_prompt("Say \"hi\" \xc3\xa9\n");
}


static void
test_empty_string_prompt(void **state)
{
    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           "{\"model\":\"m\",\"prompt\":\"\"}"), 0);
    assert_int_equal(req.prompt_len, 0);
}


static void
test_model_salt_stream(void **state)
{
    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           " \r\n{\"stream\":true,\"cache_salt\":\"salt-A\","
                           "\"prompt\":\"p\",\"model\":\"m1\"}\r\n "), 0);
    assert_int_equal(req.stream, 1);
    assert_int_equal(req.cache_salt_len, 6);
    assert_memory_equal(req.cache_salt, "salt-A", 6);
    assert_int_equal(req.model_len, 2);
    assert_memory_equal(req.model, "m1", 2);

    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           "{\"model\":\"m\",\"prompt\":\"p\",\"stream\":false,"
                           "\"cache_salt\":\"\"}"), 0);
    assert_int_equal(req.stream, 0);
    assert_null(req.cache_salt);

    /* only JSON true streams */
    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           "{\"model\":\"m\",\"prompt\":\"p\",\"stream\":1,"
                           "\"cache_salt\":null}"), 0);
    assert_int_equal(req.stream, 0);
    assert_null(req.cache_salt);

    /* an empty model is a model */
    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           "{\"model\":\"\",\"prompt\":\"p\"}"), 0);
    assert_int_equal(req.model_len, 0);
    assert_non_null(req.model);
}


static void
test_duplicate_keys_last_wins(void **state)
{
    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           "{\"model\":\"a\",\"prompt\":\"x\",\"model\":\"b\","
                           "\"prompt\":\"y\"}"), 0);
    assert_memory_equal(req.model, "b", 1);
    assert_prompt("y");
}


static void
test_list_of_strings(void **state)
{
    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           "{\"model\":\"m\",\"prompt\":[\"Hello\",\"big\","
                           "\"\",\"world\"]}"), 0);
    assert_prompt("Hello big  world");

    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           "{\"model\":\"m\",\"prompt\":[\"only\"]}"), 0);
    assert_prompt("only");
}


static void
test_token_ids(void **state)
{
    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           "{\"model\":\"m\",\"prompt\":[1,258,4294967295,"
                           "0,7.0]}"), 0);
    assert_prompt("\x01\x00\x00\x00" "\x02\x01\x00\x00" "\xff\xff\xff\xff"
                  "\x00\x00\x00\x00" "\x07\x00\x00\x00");
}


static void
test_token_id_lists(void **state)
{
    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           "{\"model\":\"m\",\"prompt\":[[1,2],[],[65536]]}"),
                     0);
    assert_prompt("\x01\x00\x00\x00" "\x02\x00\x00\x00" "\x00\x00\x01\x00");
}


static void
test_prompt_errors(void **state)
{
    static const char  *bad[] = {
        "{\"model\":\"m\",\"prompt\":42}",
        "{\"model\":\"m\",\"prompt\":true}",
        "{\"model\":\"m\",\"prompt\":{}}",
        "{\"model\":\"m\",\"prompt\":[]}",
        "{\"model\":\"m\",\"prompt\":[\"a\",1]}",
        "{\"model\":\"m\",\"prompt\":[1,\"a\"]}",
        "{\"model\":\"m\",\"prompt\":[[1],2]}",
        "{\"model\":\"m\",\"prompt\":[1,[2]]}",
        "{\"model\":\"m\",\"prompt\":[[[1]]]}",
        "{\"model\":\"m\",\"prompt\":[true]}",
        "{\"model\":\"m\",\"prompt\":[null]}",
        "{\"model\":\"m\",\"prompt\":[-1]}",
        "{\"model\":\"m\",\"prompt\":[1.5]}",
        "{\"model\":\"m\",\"prompt\":[4294967296]}",
        "{\"model\":\"m\",\"prompt\":[1e400]}",
        NULL
    };
    const char  **b;

    for (b = bad; *b; b++) {
        assert_int_equal(parse(LLMD_API_COMPLETIONS, *b), -1);
        assert_string_equal(err, "prompt must be a string, a list of strings "
                            "or token ids");
    }

    assert_fails(LLMD_API_COMPLETIONS, "{\"model\":\"m\"}",
                 "prompt not found in request body");
    assert_fails(LLMD_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":null}",
                 "prompt not found in request body");

    /* a completions body is not read as chat */
    assert_fails(LLMD_API_COMPLETIONS,
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                 "\"content\":\"hi\"}]}",
                 "prompt not found in request body");
}


static void
test_body_errors(void **state)
{
    assert_int_equal(llmd_request_parse(LLMD_API_COMPLETIONS, NULL, 0, &alloc,
                                        &req, err, sizeof(err)), -1);
    assert_string_equal(err, "request body is not valid JSON");

    assert_fails(LLMD_API_COMPLETIONS, "", "request body is not valid JSON");
    assert_fails(LLMD_API_COMPLETIONS, "   ",
                 "request body is not valid JSON");
    assert_fails(LLMD_API_COMPLETIONS, "model=m&prompt=x",
                 "request body is not valid JSON");
    assert_fails(LLMD_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x\"",
                 "request body is not valid JSON");
    assert_fails(LLMD_API_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"x}",
                 "request body is not valid JSON");
    assert_fails(LLMD_API_COMPLETIONS, "{\"model\":\"m\",}",
                 "request body is not valid JSON");
    assert_fails(LLMD_API_COMPLETIONS,
                 "{\"model\":\"m\",\"prompt\":\"x\"} trailing",
                 "request body is not valid JSON");
    assert_fails(LLMD_API_COMPLETIONS,
                 "{\"model\":\"m\",\"prompt\":\"x\"}{}",
                 "request body is not valid JSON");

    assert_fails(LLMD_API_COMPLETIONS, "[{\"model\":\"m\"}]",
                 "request body must be a JSON object");
    assert_fails(LLMD_API_COMPLETIONS, "\"text\"",
                 "request body must be a JSON object");
    assert_fails(LLMD_API_COMPLETIONS, "null",
                 "request body must be a JSON object");
    assert_fails(LLMD_API_CHAT, "42", "request body must be a JSON object");

    /* no model (absent, null, or another key's case): vLLM's default */
    assert_int_equal(parse(LLMD_API_COMPLETIONS, "{\"prompt\":\"x\"}"), 0);
    assert_int_equal(req.model_len, 0);
    assert_string_equal(req.model, "");
    assert_int_equal(parse(LLMD_API_CHAT, "{\"model\":null,\"messages\":"
                           "[{\"role\":\"user\",\"content\":\"x\"}]}"), 0);
    assert_int_equal(req.model_len, 0);
    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           "{\"Model\":\"m\",\"prompt\":\"x\"}"), 0);
    assert_int_equal(req.model_len, 0);
    assert_fails(LLMD_API_COMPLETIONS, "{\"model\":7,\"prompt\":\"x\"}",
                 "model must be a string");
    assert_fails(LLMD_API_CHAT, "{\"model\":[\"m\"],\"messages\":[]}",
                 "model must be a string");

    assert_fails(LLMD_API_COMPLETIONS,
                 "{\"model\":\"m\",\"prompt\":\"x\",\"cache_salt\":5}",
                 "cache_salt must be a string");

    /* a NUL byte ends nothing: the body is not valid JSON */
    assert_int_equal(parse_n(LLMD_API_COMPLETIONS,
                             "{\"model\":\"m\",\"prompt\":\"x\"}\0{", 27),
                     -1);
    assert_string_equal(err, "request body is not valid JSON");

    /* the error buffer may be tiny or absent */
    assert_int_equal(llmd_request_parse(LLMD_API_COMPLETIONS, "x", 1, &alloc,
                                        &req, err, 5), -1);
    assert_string_equal(err, "requ");
    assert_int_equal(llmd_request_parse(LLMD_API_COMPLETIONS, "x", 1, &alloc,
                                        &req, NULL, 0), -1);
}


static void
test_other_api(void **state)
{
    /* model, salt and stream are read; nothing is hashed */
    assert_int_equal(parse(LLMD_API_OTHER,
                           "{\"model\":\"m\",\"input\":\"embed me\","
                           "\"cache_salt\":\"s\"}"), 0);
    assert_int_equal(req.model_len, 1);
    assert_int_equal(req.cache_salt_len, 1);
    assert_null(req.prompt);
    assert_int_equal(req.prompt_len, 0);
}


/* spec section 9, vector C1: 149 bytes and their Gen A/B hashes */
static void
test_chat_c1(void **state)
{
    uint64_t     h[8];
    const char  *m = "meta-llama/Llama-3.1-8B-Instruct";

    assert_int_equal(parse(LLMD_API_CHAT,
        "{\"model\":\"meta-llama/Llama-3.1-8B-Instruct\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"
        "{\"role\":\"user\",\"content\":\"Hello! <b>Tell me a joke</b> & "
        "more\"}],\"stream\":true}"), 0);

    assert_prompt(
        "[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},"
        "{\"role\":\"user\",\"content\":\"Hello! \\u003cb\\u003eTell me a joke"
        "\\u003c/b\\u003e \\u0026 more\"}]");
    assert_int_equal(req.prompt_len, 149);
    assert_int_equal(req.stream, 1);

    assert_int_equal(llmd_prefix_hashes(m, strlen(m), NULL, 0, req.prompt,
                                        req.prompt_len, 64, 256, h), 2);
    assert_int_equal(h[0], 0x1e79a67b01e8b046ULL);
    assert_int_equal(h[1], 0xe6b4523d3d1207c8ULL);
}


static void
test_chat_message_fields(void **state)
{
    /* role omitted when empty or null; other fields dropped */
    assert_int_equal(parse(LLMD_API_CHAT,
        "{\"model\":\"m\",\"messages\":["
        "{\"role\":\"\",\"content\":\"a\",\"name\":\"bob\"},"
        "{\"content\":\"b\",\"role\":null},"
        "{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"1\"}]},"
        "{\"role\":\"tool\",\"content\":null,\"tool_call_id\":\"1\"},"
        "{\"role\":\"user\",\"content\":\"\"},"
        "{},"
        "null,"
        "{\"role\":\"user\",\"role\":\"system\",\"content\":\"dup\"}]}"), 0);

    assert_prompt("[{\"content\":\"a\"},{\"content\":\"b\"},"
                  "{\"role\":\"assistant\",\"content\":\"\"},"
                  "{\"role\":\"tool\",\"content\":\"\"},"
                  "{\"role\":\"user\",\"content\":\"\"},"
                  "{\"content\":\"\"},{\"content\":\"\"},"
                  "{\"role\":\"system\",\"content\":\"dup\"}]");
}


/* what the precise scorer hands to the chat template, as vLLM does */
static void
test_chat_template_inputs(void **state)
{
    assert_int_equal(parse(LLMD_API_CHAT,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"hi\"}]}"), 0);
    assert_int_equal(req.add_generation_prompt, 1);
    assert_null(req.json_chat_kwargs);
    assert_int_equal(req.tools, 0);

    assert_int_equal(parse(LLMD_API_CHAT,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"hi\"}],\"add_generation_prompt\":false,"
        "\"chat_template_kwargs\":{\"enable_thinking\":false},"
        "\"tools\":[]}"), 0);
    assert_int_equal(req.add_generation_prompt, 0);
    assert_non_null(req.json_chat_kwargs);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(
                    req.json_chat_kwargs, "enable_thinking")));
    assert_int_equal(req.tools, 1);

    /* kwargs that are no object are not passed on; null keeps the default */
    assert_int_equal(parse(LLMD_API_CHAT,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
        "\"content\":\"hi\"}],\"add_generation_prompt\":null,"
        "\"chat_template_kwargs\":[1]}"), 0);
    assert_int_equal(req.add_generation_prompt, 1);
    assert_null(req.json_chat_kwargs);
}


static void
test_chat_content_parts(void **state)
{
    assert_int_equal(parse(LLMD_API_CHAT,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"What is <this>?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"https://x.test/a.png?a=1&b=2\",\"detail\":\"low\"}},"
        "{\"type\":\"text\",\"text\":\"\"},"
        "{\"text\":\"no type\",\"image_url\":null},"
        "{\"type\":\"image_url\",\"image_url\":{}},"
        "null]},"
        "{\"role\":\"user\",\"content\":[]}]}"), 0);

    assert_prompt("[{\"role\":\"user\",\"content\":["
                  "{\"type\":\"text\",\"text\":\"What is \\u003cthis\\u003e?\","
                  "\"image_url\":{}},"
                  "{\"type\":\"image_url\",\"image_url\":{\"url\":"
                  "\"https://x.test/a.png?a=1\\u0026b=2\"}},"
                  "{\"type\":\"text\",\"image_url\":{}},"
                  "{\"type\":\"\",\"text\":\"no type\",\"image_url\":{}},"
                  "{\"type\":\"image_url\",\"image_url\":{}},"
                  "{\"type\":\"\",\"image_url\":{}}]},"
                  "{\"role\":\"user\",\"content\":[]}]");
}


static void
test_chat_errors(void **state)
{
    static const char  *content_bad[] = {
        "{\"model\":\"m\",\"messages\":[{\"content\":5}]}",
        "{\"model\":\"m\",\"messages\":[{\"content\":{}}]}",
        "{\"model\":\"m\",\"messages\":[{\"content\":true}]}",
        "{\"model\":\"m\",\"messages\":[{\"content\":[\"text\"]}]}",
        "{\"model\":\"m\",\"messages\":[{\"content\":[{\"type\":1}]}]}",
        "{\"model\":\"m\",\"messages\":[{\"content\":[{\"text\":[]}]}]}",
        "{\"model\":\"m\",\"messages\":[{\"content\":[{\"image_url\":"
            "\"http://x\"}]}]}",
        "{\"model\":\"m\",\"messages\":[{\"content\":[{\"image_url\":"
            "{\"url\":1}}]}]}",
        "{\"model\":\"m\",\"messages\":[{\"content\":\"ok\"},"
            "{\"content\":[[]]}]}",
        NULL
    };
    static const char  *messages_bad[] = {
        "{\"model\":\"m\"}",
        "{\"model\":\"m\",\"messages\":null}",
        "{\"model\":\"m\",\"messages\":[]}",
        "{\"model\":\"m\",\"messages\":\"hi\"}",
        "{\"model\":\"m\",\"messages\":{\"role\":\"user\"}}",
        "{\"model\":\"m\",\"prompt\":\"a completions body\"}",
        NULL
    };
    const char  **b;

    for (b = content_bad; *b; b++) {
        assert_int_equal(parse(LLMD_API_CHAT, *b), -1);
        assert_string_equal(err, "chat message content must be a string or "
                            "a list of content parts");
    }

    for (b = messages_bad; *b; b++) {
        assert_int_equal(parse(LLMD_API_CHAT, *b), -1);
        assert_string_equal(err, "messages must be a non-empty list of chat "
                            "messages");
    }

    assert_fails(LLMD_API_CHAT,
                 "{\"model\":\"m\",\"messages\":[{\"content\":\"a\"},7]}",
                 "each chat message must be an object");
    assert_fails(LLMD_API_CHAT,
                 "{\"model\":\"m\",\"messages\":[\"hello\"]}",
                 "each chat message must be an object");
    assert_fails(LLMD_API_CHAT,
                 "{\"model\":\"m\",\"messages\":[{\"role\":1,"
                 "\"content\":\"a\"}]}",
                 "chat message role must be a string");
}


/* one chat message whose content is the given raw bytes */
static int
parse_chat_content(const char *raw, size_t rawlen)
{
    char    body[512];
    size_t  n;

    n = (size_t) snprintf(body, sizeof(body),
                          "{\"model\":\"m\",\"messages\":[{\"content\":\"");
    memcpy(body + n, raw, rawlen);
    n += rawlen;
    memcpy(body + n, "\"}]}", 4);
    n += 4;

    return parse_n(LLMD_API_CHAT, body, n);
}


#define assert_go_string(raw, go)                                            \
    do {                                                                     \
        assert_int_equal(parse_chat_content(raw, sizeof(raw) - 1), 0);       \
        assert_prompt("[{\"content\":\"" go "\"}]");                         \
    } while (0)


static void
test_go_escaping(void **state)
{
    /* JSON escapes decoded by cJSON, re-encoded the Go way */
    assert_go_string("\\\"q\\\" \\\\ \\/", "\\\"q\\\" \\\\ /");
    assert_go_string("\\b\\f\\n\\r\\t", "\\b\\f\\n\\r\\t");
    assert_go_string("\\u0001\\u001f\\u000b\\u007f",
                     "\\u0001\\u001f\\u000b\x7f");
    assert_go_string("<>&", "\\u003c\\u003e\\u0026");
    assert_go_string("\\u2028\\u2029\\u2027", "\\u2028\\u2029\xe2\x80\xa7");

    /* raw control bytes (cJSON accepts them) */
    assert_go_string("a\x01" "b\x1f", "a\\u0001b\\u001f");

    /* non-ASCII stays literal UTF-8, escaped or not in the body */
    assert_go_string("\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80",
                     "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80");
    assert_go_string("\\u00e9\\ud83d\\ude00", "\xc3\xa9\xf0\x9f\x98\x80");
    assert_go_string("\xe2\x80\xa8", "\\u2028");
    assert_go_string("\xef\xbf\xbf\xf4\x8f\xbf\xbf",
                     "\xef\xbf\xbf\xf4\x8f\xbf\xbf");
}


static void
test_go_invalid_utf8(void **state)
{
    /* each byte that starts no valid sequence becomes \ufffd */
    assert_go_string("a\xff" "b", "a\\ufffdb");
    assert_go_string("\x80", "\\ufffd");
    assert_go_string("\xe2\x80", "\\ufffd\\ufffd");
    assert_go_string("\xe2\x80z", "\\ufffd\\ufffdz");
    assert_go_string("\xc0\x80", "\\ufffd\\ufffd");
    assert_go_string("\xc1\xbf", "\\ufffd\\ufffd");
    assert_go_string("\xe0\x80\x80", "\\ufffd\\ufffd\\ufffd");
    assert_go_string("\xed\xa0\x80", "\\ufffd\\ufffd\\ufffd");
    assert_go_string("\xf0\x80\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd");
    assert_go_string("\xf4\x90\x80\x80", "\\ufffd\\ufffd\\ufffd\\ufffd");
    assert_go_string("\xf5\x80", "\\ufffd\\ufffd");
    assert_go_string("\xf0\x9f\x98", "\\ufffd\\ufffd\\ufffd");
    assert_go_string("\xc3\xa9\xc3", "\xc3\xa9\\ufffd");
}


static void
test_large_prompts(void **state)
{
    char    *body, *p;
    size_t   n, i;

    /* a 1 MiB string prompt */
    n = 1 << 20;
    body = malloc(n + 64);
    assert_non_null(body);

    p = body + sprintf(body, "{\"model\":\"m\",\"prompt\":\"");
    for (i = 0; i < n; i++) {
        p[i] = 'a' + i % 26;
    }
    p += n;
    p += sprintf(p, "\"}");

    assert_int_equal(parse_n(LLMD_API_COMPLETIONS, body, p - body), 0);
    assert_int_equal(req.prompt_len, n);
    assert_int_equal(req.prompt[0], 'a');
    assert_int_equal(req.prompt[n - 1], 'a' + (n - 1) % 26);

    /* 1 MiB of '&' in chat: every byte becomes 6 */
    p = body + sprintf(body, "{\"model\":\"m\",\"messages\":[{\"content\":\"");
    memset(p, '&', n);
    p += n;
    p += sprintf(p, "\"}]}");

    assert_int_equal(parse_n(LLMD_API_CHAT, body, p - body), 0);
    assert_int_equal(req.prompt_len, 6 * n + 16);
    assert_memory_equal(req.prompt + 13 + 6 * (n - 1), "\\u0026\"}]", 9);

    free(body);

    /* 8 MiB in one body, escapes included */
    n = 8 << 20;
    body = malloc(n + 64);
    assert_non_null(body);

    p = body + sprintf(body, "{\"model\":\"m\",\"prompt\":\"");
    for (i = 0; i < n / 8; i++) {
        memcpy(p, "abcd\\n\\t", 8);
        p += 8;
    }
    p += sprintf(p, "\"}");

    assert_int_equal(parse_n(LLMD_API_COMPLETIONS, body, p - body), 0);
    assert_int_equal(req.prompt_len, 6 * (n / 8));
    assert_memory_equal(req.prompt + req.prompt_len - 6, "abcd\n\t", 6);

    /* 1 MiB of 5-digit token ids: ~175000 cJSON values */
    n = 1 << 20;
    p = body + sprintf(body, "{\"model\":\"m\",\"prompt\":[");
    for (i = 0; (size_t) (p - body) + 8 < n; i++) {
        p += sprintf(p, "%s%u", i ? "," : "", (unsigned) (10000 + i % 90000));
    }
    p += sprintf(p, "]}");

    assert_int_equal(parse_n(LLMD_API_COMPLETIONS, body, p - body), 0);
    assert_int_equal(req.prompt_len, 4 * i);
    assert_int_equal(req.prompt[4 * (i - 1)],
                     (10000 + (i - 1) % 90000) & 0xff);
    assert_memory_equal(req.model, "m", 2);

    free(body);
}


/*
 * A body that needs more than 16 times its size in cJSON values is not
 * hashed: success, no model, no prompt, and err says why.
 */
static void
test_too_complex_body(void **state)
{
    char    *body, *p;
    size_t   n, i;

    n = 1 << 20;
    body = malloc(n + 64);
    assert_non_null(body);

    p = body + sprintf(body, "{\"model\":\"m\",\"prompt\":[");
    for (i = 0; (size_t) (p - body) + 8 < n; i++) {
        p += sprintf(p, "%s%u", i ? "," : "", (unsigned) (i % 10));
    }
    p += sprintf(p, "]}");

    assert_int_equal(parse_n(LLMD_API_COMPLETIONS, body, p - body), 0);
    assert_string_equal(err, "request body too complex to hash, scheduled "
                        "on load alone");
    assert_int_equal(req.model_len, 0);
    assert_string_equal(req.model, "");
    assert_null(req.prompt);
    assert_int_equal(req.prompt_len, 0);
    assert_null(req.cache_salt);

    /* cJSON stopped at its budget: about 17 MiB, not 32 MiB */
    assert_true(arena.bytes < (size_t) 19 << 20);

    /* the same ids in a small body are fine, and err is empty */
    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           "{\"model\":\"m\",\"prompt\":[1,2,3]}"), 0);
    assert_string_equal(err, "");
    assert_int_equal(req.prompt_len, 12);

    free(body);
}


static void
test_deep_nesting(void **state)
{
    char               *body;
    size_t              n, i;
    static const char   head[] = "{\"model\":\"m\",\"prompt\":\"x\","
                                 "\"extra\":";

    /* 100000 unclosed '[': cJSON stops at its nesting limit */
    n = 100000;
    body = malloc(n);
    assert_non_null(body);
    memset(body, '[', n);

    assert_int_equal(parse_n(LLMD_API_COMPLETIONS, body, n), -1);
    assert_string_equal(err, "request body is not valid JSON");

    /* closed, and inside a valid request */
    free(body);
    body = malloc(2 * n + 64);
    assert_non_null(body);

    /*
     * A constant length, not sprintf's result: with that, GCC 12's
     * -fsanitize=nonnull-attribute check of memset(body + i) keeps a path
     * where body + i is NULL, and -Warray-bounds fails the sanitizer build.
     */
    i = sizeof(head) - 1;
    memcpy(body, head, i);
    memset(body + i, '[', n);
    memset(body + i + n, ']', n);
    memcpy(body + i + 2 * n, "}", 1);

    assert_int_equal(parse_n(LLMD_API_COMPLETIONS, body, i + 2 * n + 1), -1);
    assert_string_equal(err, "request body is not valid JSON");

    /* 500 levels are fine */
    n = 500;
    memset(body + i, '[', n);
    memset(body + i + n, ']', n);
    memcpy(body + i + 2 * n, "}", 1);

    assert_int_equal(parse_n(LLMD_API_COMPLETIONS, body, i + 2 * n + 1), 0);
    assert_prompt("x");

    free(body);
}


static void
test_allocation_failures(void **state)
{
    int          rc, ok;
    long         k;
    const char  *body = "{\"model\":\"m\",\"cache_salt\":\"s\",\"messages\":["
                        "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                        "\"text\":\"<hi>\"}]}]}";

    ok = 0;

    for (k = 0; k < 200 && !ok; k++) {
        /* the body copy is the first allocation */
        arena.fail_after = k + 1;

        rc = parse(LLMD_API_CHAT, body);

        if (rc == 0) {
            ok = 1;
            break;
        }

        assert_string_equal(err, "out of memory");
    }

    assert_true(ok);
    assert_true(k > 5);
    assert_prompt("[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                  "\"text\":\"\\u003chi\\u003e\",\"image_url\":{}}]}]");
}


/* after a parse cJSON allocates with malloc again (ASan/valgrind check) */
static void
test_hooks_restored(void **state)
{
    cJSON  *j;
    char   *s;

    assert_int_equal(parse(LLMD_API_COMPLETIONS,
                           "{\"model\":\"m\",\"prompt\":\"x\"}"), 0);

    j = cJSON_Parse("{\"a\":[1,2,\"three\"]}");
    assert_non_null(j);
    s = cJSON_PrintUnformatted(j);
    assert_string_equal(s, "{\"a\":[1,2,\"three\"]}");
    cJSON_free(s);
    cJSON_Delete(j);
}


/*
 * Mutations of a valid request (flipped, inserted and dropped bytes,
 * truncation) either parse or fail with a message; never crash.
 */
static void
test_mutations(void **state)
{
    int          rc, round;
    char         buf[256];
    size_t       len, pos;
    uint32_t     rng;
    const char  *seeds[] = {
        "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"],\"cache_salt\":\"s\"}",
        "{\"model\":\"m\",\"prompt\":[[1,2],[3]],\"stream\":true}",
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
        "[{\"type\":\"text\",\"text\":\"\\u00e9<\"}]}]}",
    };

    rng = 12345;

    for (round = 0; round < 6000; round++) {
        const char  *seed = seeds[round % 3];

        len = strlen(seed);
        memcpy(buf, seed, len);

        rng = rng * 1103515245 + 12345;
        pos = (rng >> 8) % len;

        switch ((rng >> 4) % 4) {
        case 0:
            buf[pos] = (char) (rng >> 16);
            break;
        case 1:
            memmove(buf + pos + 1, buf + pos, len - pos);
            buf[pos] = "[]{}\",:\\0e-"[(rng >> 16) % 11];
            len++;
            break;
        case 2:
            memmove(buf + pos, buf + pos + 1, len - pos - 1);
            len--;
            break;
        default:
            len = pos;
            break;
        }

        rc = parse_n((round & 4) ? LLMD_API_CHAT : LLMD_API_COMPLETIONS,
                     buf, len);

        if (rc == 0) {
            assert_true(req.prompt_len <= 4 * len + 64);

        } else {
            assert_int_equal(rc, -1);
            assert_true(err[0] != '\0');
        }

        if (round % 256 == 0) {
            arena_reset();
        }
    }
}


/*
 * llmd_go_json_escape() (sixteen bytes at a time) against a byte-at-a-time
 * writing of Go's rules: strings of every length to 80 at every alignment,
 * drawn from plain ASCII with each byte class Go escapes mixed in (control
 * bytes, '"', '\', '<', '>', '&', DEL, valid and invalid UTF-8, U+2028).
 */
typedef struct {
    unsigned char  *p;
    size_t          n;
} esc_buf_t;


static void
esc_write(void *data, const void *s, size_t len)
{
    esc_buf_t  *b = data;

    memcpy(b->p + b->n, s, len);
    b->n += len;
}


static void
esc_reference(const unsigned char *s, size_t len, esc_buf_t *b)
{
    size_t         i, n;
    unsigned char  c;
    char           u[8];

    for (i = 0; i < len; i += n) {
        c = s[i];
        n = 1;

        if (c >= 0x80) {
            n = llmd_utf8_len(s + i, len - i);

            if (n == 0) {
                esc_write(b, "\\ufffd", 6);
                n = 1;

            } else if (n == 3 && c == 0xe2 && s[i + 1] == 0x80
                       && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9))
            {
                esc_write(b, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);

            } else {
                esc_write(b, s + i, n);
            }

        } else if (c == '"' || c == '\\') {
            esc_write(b, "\\", 1);
            esc_write(b, &c, 1);

        } else if (c == '\n') {
            esc_write(b, "\\n", 2);
        } else if (c == '\r') {
            esc_write(b, "\\r", 2);
        } else if (c == '\t') {
            esc_write(b, "\\t", 2);
        } else if (c == '\b') {
            esc_write(b, "\\b", 2);
        } else if (c == '\f') {
            esc_write(b, "\\f", 2);

        } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            snprintf(u, sizeof(u), "\\u%04x", c);
            esc_write(b, u, 6);

        } else {
            esc_write(b, &c, 1);
        }
    }
}


static void
test_go_escape_reference(void **state)
{
    size_t          len, off, i, k;
    uint32_t        rng;
    unsigned long   checks;
    unsigned char   src[96 + 16], out1[96 * 6 + 16], out2[96 * 6 + 16];
    esc_buf_t       b1, b2;
    static const char  *pieces[] = {
        "\"", "\\", "<", ">", "&", "\x7f", "\x01", "\x1f", "\n", "\t",
        "\xc3\xa9", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xf0\x9f\x98\x80",
        "\xff", "\xc3", "\xe2\x80", "\xed\xa0\x80", "\x80", "\0"
    };

    rng = 7;
    checks = 0;

    for (len = 0; len <= 80; len++) {
        for (off = 0; off < 16; off++) {
            for (k = 0; k < 40; k++) {
                i = 0;

                while (i < len) {
                    rng = rng * 1103515245 + 12345;

                    if ((rng >> 8) % 8 == 0) {
                        const char  *pc = pieces[(rng >> 12) % 20];
                        size_t       pn = pc[0] ? strlen(pc) : 1;

                        if (i + pn > len) {
                            pn = len - i;
                        }

                        memcpy(src + off + i, pc, pn);
                        i += pn;

                    } else {
                        src[off + i++] = (unsigned char)
                                         (' ' + (rng >> 16) % 95);
                    }
                }

                b1.p = out1;
                b1.n = 0;
                b2.p = out2;
                b2.n = 0;

                llmd_go_json_escape(src + off, len, esc_write, &b1);
                esc_reference(src + off, len, &b2);

                if (b1.n != b2.n || memcmp(out1, out2, b1.n) != 0) {
                    fprintf(stderr, "length %zu at offset %zu: %zu vs %zu "
                            "bytes: \"%.*s\" vs \"%.*s\"\n", len, off, b1.n,
                            b2.n, (int) b1.n, out1, (int) b2.n, out2);
                    fail();
                }

                checks++;
            }
        }
    }

    fprintf(stderr, "go escaping: %lu strings as the byte-at-a-time "
            "reference\n", checks);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_api_from_path),
#define T(name)  cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_string_prompt),
        T(test_empty_string_prompt),
        T(test_model_salt_stream),
        T(test_duplicate_keys_last_wins),
        T(test_list_of_strings),
        T(test_token_ids),
        T(test_token_id_lists),
        T(test_prompt_errors),
        T(test_body_errors),
        T(test_other_api),
        T(test_chat_c1),
        T(test_chat_message_fields),
        T(test_chat_template_inputs),
        T(test_chat_content_parts),
        T(test_chat_errors),
        T(test_go_escaping),
        T(test_go_invalid_utf8),
        T(test_go_escape_reference),
        T(test_large_prompts),
        T(test_too_complex_body),
        T(test_deep_nesting),
        T(test_allocation_failures),
        T(test_hooks_restored),
        T(test_mutations),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
