/*
 * vllm-sim: block hashes against the spec's test vectors (vllm-interop.md
 * 6.1, 6.4), KV-event msgpack bytes against the example hex (2.6), the
 * prefix cache's LRU eviction, the files --tokenizer names, --hosts and
 * the ZMQ endpoint of each pod, chat rendering: the same bytes as the
 * project's chat templates (llmd_chat_template) render for the same
 * request, and prefill/decode disaggregation: --role/--roles, the KV
 * transfer time, kv_transfer_params both ways, the prefill leg's body and
 * x-prefiller-host-port.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <getopt.h>
#include <cmocka.h>
#include <cJSON.h>

#include "../../sim/sim.h"
#include "tokenizer/llmd_chat_template.h"
#include "test_data.h"


#define QWEN3     test_data("chat/qwen3.json")
#define LLAMA3    test_data("chat/llama3.json")
#define LLAMA31   test_data("chat/llama3_1-instruct.json")


static void
hex_of(const unsigned char *p, size_t n, char *out)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", p[i]);
    }
    out[2 * n] = '\0';
}


static void
assert_hex(const sim_buf_t *b, const char *want)
{
    char  *got = malloc(b->len * 2 + 1);

    assert_non_null(got);
    hex_of((const unsigned char *) b->data, b->len, got);
    assert_string_equal(got, want);
    free(got);
}


static void
seq_tokens(uint32_t *t, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        t[i] = (uint32_t) i + 1;
    }
}


/* 6.1: sha256_cbor, three seeds, and extra keys (cache salt) */
static void
test_sha256_cbor(void **state)
{
    sim_hasher_t   h;
    unsigned char  d0[32], d1[32], cbor[4096];
    uint32_t       t[32];
    char           hex[65];
    size_t         n;

    seq_tokens(t, 32);

    assert_int_equal(sim_hasher_init(&h, SIM_HASH_SHA256_CBOR, "42"), 0);
    hex_of(h.none, 32, hex);
    assert_string_equal(hex, "9fa6eb003f14425eb9c8e6baacfbcaab"
                             "26257357b829c7bfa74ffcc4f31c1780");

    n = sim_hash_cbor(&h, NULL, t, 16, NULL, 0, cbor, sizeof(cbor));
    assert_int_equal(n, 3 + 32 + 17 + 1);
    assert_int_equal(cbor[0], 0x83);
    assert_int_equal(cbor[1], 0x58);
    assert_int_equal(cbor[2], 0x20);
    assert_int_equal(cbor[n - 1], 0xf6);

    assert_true(sim_hash_block(&h, NULL, t, 16, NULL, 0, d0)
                == 16300212363532267629ULL);
    hex_of(d0, 32, hex);
    assert_string_equal(hex, "476e88fb0c175c0b4ef0343e158b5157"
                             "c2ac537d37d97830e235fcc84bc5706d");
    assert_true(sim_hash_block(&h, d0, t + 16, 16, NULL, 0, d1)
                == 8671309795006503672ULL);
    assert_true(sim_hash_block(&h, NULL, t, 16, "salt-A", 6, d1)
                == 13026418350855296539ULL);

    assert_int_equal(sim_hasher_init(&h, SIM_HASH_SHA256_CBOR,
                                     "vllm-none-hash"), 0);
    assert_true(sim_hash_block(&h, NULL, t, 16, NULL, 0, d0)
                == 8866452693264111234ULL);
    assert_true(sim_hash_block(&h, d0, t + 16, 16, NULL, 0, d1)
                == 807986237951177663ULL);

    assert_int_equal(sim_hasher_init(&h, SIM_HASH_SHA256_CBOR, "0"), 0);
    assert_true(sim_hash_block(&h, NULL, t, 16, NULL, 0, d0)
                == 3236607068019569386ULL);
    assert_true(sim_hash_block(&h, d0, t + 16, 16, NULL, 0, d1)
                == 2758186210834249151ULL);
}


/* 6.4: sha256_cbor_64bit (int parents), block sizes 16 and 64 */
static void
test_sha256_cbor_64bit(void **state)
{
    sim_hasher_t   h;
    unsigned char  d0[32], d1[32];
    uint32_t       t[128];

    seq_tokens(t, 128);
    assert_int_equal(sim_hasher_init(&h, SIM_HASH_SHA256_CBOR_64, "42"), 0);
    assert_true(sim_low64(h.none) == 12056132650316601216ULL);

    assert_true(sim_hash_block(&h, NULL, t, 16, NULL, 0, d0)
                == 9442596223568401980ULL);
    assert_true(sim_hash_block(&h, d0, t + 16, 16, NULL, 0, d1)
                == 10401597220457154048ULL);

    assert_true(sim_hash_block(&h, NULL, t, 64, NULL, 0, d0)
                == 867515649478069041ULL);
    assert_true(sim_hash_block(&h, d0, t + 64, 64, NULL, 0, d1)
                == 13635633291408890701ULL);
}


static const uint64_t  example_hashes[2] = {
    16300212363532267629ULL, 8671309795006503672ULL
};


/* 2.6: the array-encoded batch */
static void
test_batch_array(void **state)
{
    sim_buf_t  ev = { NULL, 0, 0 }, batch = { NULL, 0, 0 };
    uint32_t   t[32];

    seq_tokens(t, 32);
    assert_int_equal(sim_events_encode_stored(&ev, 0, example_hashes, 2, 0,
                                              0, t, 32, 16, NULL, 0), 0);
    assert_int_equal(sim_events_encode_batch(&batch, 1700000000.5, &ev, 1),
                     0);
    assert_hex(&batch,
        "93cb41d954fc402000009198ab426c6f636b53746f72656492cfe235fcc84bc5706d"
        "cf7856ae50e4ba5af8c0dc00200102030405060708090a0b0c0d0e0f1011121314"
        "15161718191a1b1c1d1e1f2010c0a3475055c000");
    sim_buf_free(&ev);
    sim_buf_free(&batch);
}


/* 2.6: the map-encoded event in an array batch */
static void
test_batch_map(void **state)
{
    sim_buf_t  ev = { NULL, 0, 0 }, batch = { NULL, 0, 0 };
    uint32_t   t[32];

    seq_tokens(t, 32);
    assert_int_equal(sim_events_encode_stored(&ev, 1, example_hashes, 2, 0,
                                              0, t, 32, 16, NULL, 0), 0);
    assert_int_equal(sim_events_encode_batch(&batch, 1700000000.5, &ev, 1),
                     0);
    assert_hex(&batch,
        "93cb41d954fc40200000918ba474797065ab426c6f636b53746f726564ac626c6f"
        "636b5f68617368657392cfe235fcc84bc5706dcf7856ae50e4ba5af8b1706172"
        "656e745f626c6f636b5f68617368c0a9746f6b656e5f696473dc002001020304"
        "05060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20aa626c6f"
        "636b5f73697a6510a76c6f72615f6964c0a66d656469756da3475055a96c6f72"
        "615f6e616d65c0aa65787472615f6b65797392c0c0a967726f75705f69647800"
        "b26b765f63616368655f737065635f6b696e64ae66756c6c5f617474656e7469"
        "6f6e00");
    sim_buf_free(&ev);
    sim_buf_free(&batch);
}


static void
test_other_events(void **state)
{
    sim_buf_t  b = { NULL, 0, 0 };

    sim_events_encode_removed(&b, 0, 8671309795006503672ULL);
    assert_hex(&b, "93ac426c6f636b52656d6f76656491cf7856ae50e4ba5af8a3475055");
    b.len = 0;
    sim_events_encode_removed(&b, 1, 8671309795006503672ULL);
    assert_hex(&b, "83a474797065ac426c6f636b52656d6f766564ac626c6f636b5f6861"
                   "7368657391cf7856ae50e4ba5af8a66d656469756da3475055");
    b.len = 0;
    sim_events_encode_cleared(&b, 0);
    assert_hex(&b, "91b0416c6c426c6f636b73436c6561726564");
    b.len = 0;
    sim_events_encode_cleared(&b, 1);
    assert_hex(&b, "81a474797065b0416c6c426c6f636b73436c6561726564");
    sim_buf_free(&b);
}


static uint64_t  removed[16];
static int       nremoved;

static void
on_removed(void *ctx, uint64_t hash)
{
    if (nremoved < 16) {
        removed[nremoved++] = hash;
    }
}


/* Cached blocks survive release; eviction is LRU and only on demand. */
static void
test_kvcache_lru(void **state)
{
    sim_kv_t  *kv;
    int32_t    a, b, c, d;

    nremoved = 0;
    kv = sim_kv_create(3, on_removed, NULL);
    assert_non_null(kv);

    a = sim_kv_alloc(kv);
    b = sim_kv_alloc(kv);
    assert_int_equal(sim_kv_cache(kv, a, 100), 0);
    assert_int_equal(sim_kv_cache(kv, b, 200), 0);
    assert_int_equal(sim_kv_cache(kv, b, 300), -1);
    assert_int_equal(sim_kv_num_free(kv), 1);
    assert_int_equal(sim_kv_reset(kv), -1);         /* blocks in use */

    /* release b then a: b is the least recently freed */
    sim_kv_release(kv, b);
    sim_kv_release(kv, a);
    assert_int_equal(sim_kv_num_free(kv), 3);
    assert_int_equal(sim_kv_num_cached(kv), 2);
    assert_int_equal(sim_kv_lookup(kv, 100), a);

    /* a hit takes a block out of the free queue without evicting */
    sim_kv_touch(kv, a);
    assert_int_equal(sim_kv_num_free(kv), 2);
    assert_int_equal(nremoved, 0);

    c = sim_kv_alloc(kv);                 /* the never-used block first */
    assert_int_equal(nremoved, 0);
    d = sim_kv_alloc(kv);                 /* then b is evicted */
    assert_int_equal(d, b);
    assert_int_equal(nremoved, 1);
    assert_true(removed[0] == 200);
    assert_int_equal(sim_kv_lookup(kv, 200), -1);
    assert_int_equal(sim_kv_alloc(kv), -1);

    sim_kv_release(kv, a);
    sim_kv_release(kv, c);
    sim_kv_release(kv, d);
    assert_int_equal(sim_kv_reset(kv), 0);
    assert_int_equal(sim_kv_num_cached(kv), 0);
    sim_kv_destroy(kv);
}


/* --tokenizer: a directory with both files, or a file and its sibling. */
static void
test_tokenizer_files(void **state)
{
    sim_config_t   cf;
    char           dir[] = "/tmp/test_sim_tokXXXXXX", path[256];
    char          *argv[4];
    FILE          *f;

    assert_non_null(mkdtemp(dir));
    argv[0] = "vllm-sim";
    argv[1] = "--tokenizer";
    argv[2] = dir;
    argv[3] = NULL;

    /* no tokenizer_config.json yet */
    optind = 0;
    assert_int_equal(sim_config_parse(&cf, 3, argv), 0);
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    assert_string_equal(cf.tokenizer_json, path);
    assert_string_equal(cf.tokenizer_config, "");

    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{}", f);
    fclose(f);

    optind = 0;
    assert_int_equal(sim_config_parse(&cf, 3, argv), 0);
    assert_string_equal(cf.tokenizer_config, path);

    /* a tokenizer.json path: the config next to it */
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    argv[2] = path;
    optind = 0;
    assert_int_equal(sim_config_parse(&cf, 3, argv), 0);
    assert_string_equal(cf.tokenizer_json, path);
    assert_int_equal(strncmp(cf.tokenizer_config, dir, strlen(dir)), 0);
    assert_string_equal(cf.tokenizer_config + strlen(dir),
                        "/tokenizer_config.json");

    /* a bare file name: the config in the current directory */
    argv[2] = "tokenizer.json";
    optind = 0;
    assert_int_equal(sim_config_parse(&cf, 3, argv), 0);
    assert_string_equal(cf.tokenizer_json, "tokenizer.json");

    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    unlink(path);
    rmdir(dir);
}


/* Parses the NULL-terminated options args as vllm-sim's command line. */
static int
parse_args(sim_config_t *cf, const char **args)
{
    char  *argv[8];
    int    argc;

    argv[0] = "vllm-sim";
    for (argc = 1; args[argc - 1] != NULL && argc < 7; argc++) {
        argv[argc] = (char *) args[argc - 1];
    }
    argv[argc] = NULL;

    optind = 0;
    return sim_config_parse(cf, argc, argv);
}

#define ARGS(...)  ((const char *[]) { __VA_ARGS__, NULL })


/* --hosts: one pod per address, the count implied, conflicts refused. */
static void
test_hosts(void **state)
{
    static const char  *bad[] = {
        "127.0.0.300", "127.0.0.2,,127.0.0.3", "127.0.0.2,", "", "::1",
        "localhost", "127.0.0.2,127.0.0.2", "127.0.0.02"
    };
    sim_config_t        cf;
    size_t              i;

    assert_int_equal(parse_args(&cf, ARGS("--hosts",
                                          "127.0.0.2,127.0.0.3,127.0.0.4",
                                          "--port", "9000")), 0);
    assert_int_equal(cf.nhosts, 3);
    assert_int_equal(cf.pods, 3);
    assert_int_equal(cf.port, 9000);
    assert_string_equal(cf.hosts[0], "127.0.0.2");
    assert_string_equal(cf.hosts[2], "127.0.0.4");

    /* a matching --pods is no conflict; one address is one pod */
    assert_int_equal(parse_args(&cf, ARGS("--pods", "2", "--hosts",
                                          "127.0.0.2,127.0.0.9")), 0);
    assert_int_equal(cf.pods, 2);
    assert_int_equal(parse_args(&cf, ARGS("--hosts", "127.0.0.5")), 0);
    assert_int_equal(cf.pods, 1);

    /* without --hosts: consecutive ports of --host, as before */
    assert_int_equal(parse_args(&cf, ARGS("--pods", "4")), 0);
    assert_int_equal(cf.nhosts, 0);
    assert_int_equal(cf.pods, 4);
    assert_string_equal(cf.host, "127.0.0.1");

    assert_int_equal(parse_args(&cf, ARGS("--hosts", "127.0.0.2,127.0.0.3",
                                          "--pods", "3")), -1);
    assert_int_equal(parse_args(&cf, ARGS("--hosts", "127.0.0.2",
                                          "--host", "127.0.0.1")), -1);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse_args(&cf, ARGS("--hosts", bad[i])), -1);
    }
}


/* The ZMQ endpoint of pod i, with and without --hosts. */
static void
test_event_endpoints(void **state)
{
    char  ep[128];

    /* vLLM's data-parallel rule: bound ports offset, connect shared */
    assert_int_equal(sim_events_endpoint("tcp://*:5557", 2, NULL, 1, ep,
                                         sizeof(ep)), 0);
    assert_string_equal(ep, "tcp://*:5559");
    assert_int_equal(sim_events_endpoint("tcp://127.0.0.1:5557", 2, NULL, 0,
                                         ep, sizeof(ep)), 0);
    assert_string_equal(ep, "tcp://127.0.0.1:5557");
    assert_int_equal(sim_events_endpoint("ipc:///tmp/kv", 0, NULL, 1, ep,
                                         sizeof(ep)), 0);
    assert_string_equal(ep, "ipc:///tmp/kv");
    assert_int_equal(sim_events_endpoint("ipc:///tmp/kv", 3, NULL, 1, ep,
                                         sizeof(ep)), 0);
    assert_string_equal(ep, "ipc:///tmp/kv_dp3");
    assert_int_equal(sim_events_endpoint("tcp://*:65535", 1, NULL, 1, ep,
                                         sizeof(ep)), -1);
    assert_int_equal(sim_events_endpoint("tcp://*:x", 0, NULL, 1, ep,
                                         sizeof(ep)), -1);

    /* --hosts: the pod's own address, the same port */
    assert_int_equal(sim_events_endpoint("tcp://*:5557", 2, "127.0.0.4", 1,
                                         ep, sizeof(ep)), 0);
    assert_string_equal(ep, "tcp://127.0.0.4:5557");
    assert_int_equal(sim_events_endpoint("tcp://[::]:5557", 1, "127.0.0.3",
                                         1, ep, sizeof(ep)), 0);
    assert_string_equal(ep, "tcp://127.0.0.3:5557");
    assert_int_equal(sim_events_endpoint("tcp://127.0.0.1:5557", 2,
                                         "127.0.0.4", 0, ep, sizeof(ep)), 0);
    assert_string_equal(ep, "tcp://127.0.0.4:0;127.0.0.1:5557");
    assert_int_equal(sim_events_endpoint("tcp://127.0.0.9:0;127.0.0.1:5557",
                                         1, "127.0.0.3", 0, ep, sizeof(ep)),
                     0);
    assert_string_equal(ep, "tcp://127.0.0.9:0;127.0.0.1:5557");
    assert_int_equal(sim_events_endpoint("ipc:///tmp/kv", 1, "127.0.0.3", 1,
                                         ep, sizeof(ep)), 0);
    assert_string_equal(ep, "ipc:///tmp/kv_dp1");

    /* too long for the buffer */
    assert_int_equal(sim_events_endpoint("tcp://*:5557", 0, "127.0.0.2", 1,
                                         ep, 8), -1);
}


/* Chat requests, as bodies of /v1/chat/completions. */
static const char  *chat_requests[] = {
    "{\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}",
    "{\"messages\":[{\"role\":\"system\",\"content\":\" Be brief. \"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
    "{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},"
    "{\"type\":\"text\",\"text\":\"\"},{\"type\":\"text\",\"text\":\"b\"}]}]}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},"
    "{\"role\":\"assistant\",\"content\":\"<think>\\nx\\n</think>\\n\\nYes\"},"
    "{\"role\":\"user\",\"content\":null}],"
    "\"add_generation_prompt\":false}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
    "\"chat_template_kwargs\":{\"enable_thinking\":false,"
    "\"date_string\":\"11 Jun 2025\"}}",
    "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},"
    "{\"role\":\"tool\",\"content\":\"{\\\"t\\\": 1}\"}]}",
};


static llmd_chat_template_t *
load_template(const char *path)
{
    char                   err[512];
    llmd_chat_template_t  *t;

    if (path == NULL) {
        t = llmd_chat_template_builtin("llama3", "<|begin_of_text|>", err,
                                       sizeof(err));
    } else {
        t = llmd_chat_template_load(path, err, sizeof(err));
    }
    if (t == NULL) {
        fail_msg("%s: %s", path ? path : "builtin llama3", err);
    }
    return t;
}


/* What llmd_chat_template renders for a request body; NULL on error. */
static char *
llmd_render(const llmd_chat_template_t *t, const char *body, int kwargs)
{
    cJSON   *j;
    char    *out, err[512];
    long     n;

    j = cJSON_Parse(body);
    assert_non_null(j);
    out = malloc(65536);
    assert_non_null(out);
    n = llmd_chat_template_render_kw(t,
            cJSON_GetObjectItemCaseSensitive(j, "messages"),
            kwargs ? cJSON_GetObjectItemCaseSensitive(j,
                                                      "chat_template_kwargs")
                   : NULL,
            !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j,
                                                  "add_generation_prompt")),
            out, 65536, NULL, err, sizeof(err));
    cJSON_Delete(j);
    if (n < 0) {
        free(out);
        return NULL;
    }
    return out;
}


/* What the simulator renders; NULL with err set on error. */
static char *
sim_render(const char *body, int *rc, char *err, size_t errlen)
{
    sim_buf_t   b = { NULL, 0, 0 };
    cJSON      *j;
    char       *out;

    j = cJSON_Parse(body);
    assert_non_null(j);
    *rc = sim_chat_render(j, &b, err, errlen);
    cJSON_Delete(j);
    if (*rc != 0) {
        sim_buf_free(&b);
        return NULL;
    }
    out = strndup(b.data ? b.data : "", b.len);
    sim_buf_free(&b);
    return out;
}


static void
assert_sim_renders(const char *body, const char *want)
{
    char   err[512], *got;
    int    rc;

    got = sim_render(body, &rc, err, sizeof(err));
    if (got == NULL) {
        fail_msg("%s: %d %s", body, rc, err);
    }
    assert_string_equal(got, want);
    free(got);
}


static void
assert_sim_refuses(const char *body)
{
    char   err[512], *got;
    int    rc;

    err[0] = '\0';
    got = sim_render(body, &rc, err, sizeof(err));
    assert_null(got);
    assert_int_equal(rc, SIM_CHAT_BAD_REQUEST);
    assert_true(err[0] != '\0');
}


/*
 * Without a tokenizer_config.json: the Llama-3 template of t/data/chat/,
 * parts joined with "\n" as the project's templates join them, kwargs
 * ignored, an empty message list refused.
 */
static void
test_chat_simple(void **state)
{
    llmd_chat_template_t  *llama3;
    size_t                 i;
    char                  *want;

    assert_int_equal(sim_chat_init(NULL, NULL, 0), 0);
    assert_string_equal(sim_chat_template_name(), "simple (llama3)");

    assert_sim_renders(chat_requests[1],
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
        "a\nb<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");

    llama3 = load_template(LLAMA3);
    for (i = 0; i < sizeof(chat_requests) / sizeof(chat_requests[0]); i++) {
        want = llmd_render(llama3, chat_requests[i], 0);
        assert_non_null(want);
        assert_sim_renders(chat_requests[i], want);
        free(want);
    }
    llmd_chat_template_free(llama3);

    assert_sim_refuses("{\"messages\":[]}");
    assert_sim_refuses("{}");
    assert_sim_refuses("{\"messages\":[{\"role\":\"user\",\"content\":5}]}");
}


/*
 * With a tokenizer_config.json: every request renders as that template
 * renders it with the request's kwargs; what the template refuses is a
 * bad request; tools fall back to the simple rendering.
 */
static void
test_chat_template(void **state)
{
    const char            *configs[] = { QWEN3, LLAMA3, LLAMA31 };
    static const char     *variants[] = { "qwen3", "llama3", "llama3.1" };
    llmd_chat_template_t  *t, *simple;
    size_t                 c, i;
    char                  *want;
    char                   err[512];

    simple = load_template(NULL);

    for (c = 0; c < 3; c++) {
        assert_int_equal(sim_chat_init(configs[c], err, sizeof(err)), 0);
        assert_string_equal(sim_chat_template_name(), variants[c]);
        t = load_template(configs[c]);

        for (i = 0; i < sizeof(chat_requests) / sizeof(chat_requests[0]);
             i++)
        {
            want = llmd_render(t, chat_requests[i], 1);
            assert_non_null(want);
            assert_sim_renders(chat_requests[i], want);
            free(want);
        }

        /* request tools: the simple rendering */
        want = llmd_render(simple, "{\"messages\":[{\"role\":\"user\","
                                   "\"content\":\"Hi\"}]}", 0);
        assert_sim_renders("{\"messages\":[{\"role\":\"user\","
                           "\"content\":\"Hi\"}],\"tools\":[{\"type\":"
                           "\"function\",\"function\":{\"name\":\"f\"}}]}",
                           want);
        /* tool kwargs: the template cannot render them either */
        assert_sim_renders("{\"messages\":[{\"role\":\"user\","
                           "\"content\":\"Hi\"}],\"chat_template_kwargs\":"
                           "{\"tools\":[]}}", want);
        free(want);

        assert_sim_refuses("{\"messages\":[{\"role\":\"user\","
                           "\"content\":{}}]}");
        assert_sim_refuses("{\"messages\":[{\"role\":\"user\","
                           "\"content\":\"Hi\"}],\"chat_template_kwargs\":5}");
        llmd_chat_template_free(t);
    }

    /* Qwen3 reads messages[0]: an empty list is refused */
    assert_int_equal(sim_chat_init(QWEN3, err, sizeof(err)), 0);
    assert_sim_refuses("{\"messages\":[]}");

    /* an unknown template: the simple rendering */
    assert_int_equal(sim_chat_init(test_data("epp-precise-tiny.yaml"), err,
                                   sizeof(err)), 0);
    assert_string_equal(sim_chat_template_name(), "simple (llama3)");

    llmd_chat_template_free(simple);
}


/* --role, --roles and the KV-transfer defaults. */
static void
test_pd_roles(void **state)
{
    sim_config_t  cf;

    assert_int_equal(parse_args(&cf, ARGS("--pods", "3")), 0);
    assert_int_equal(cf.roles[0], SIM_ROLE_BOTH);
    assert_int_equal(cf.roles[2], SIM_ROLE_BOTH);
    assert_true(cf.kv_bytes_per_token == 327680.0);
    assert_true(cf.kv_transfer_gbps == 800.0);
    assert_int_equal(cf.pd_fallback, 0);

    assert_int_equal(parse_args(&cf, ARGS("--pods", "2", "--role",
                                          "decode")), 0);
    assert_int_equal(cf.roles[0], SIM_ROLE_DECODE);
    assert_int_equal(cf.roles[1], SIM_ROLE_DECODE);

    /* per pod, in pod order; with --hosts too; llm-d's "prefill-decode" */
    assert_int_equal(parse_args(&cf, ARGS("--roles",
                                          "prefill,decode,prefill-decode",
                                          "--pods", "3")), 0);
    assert_int_equal(cf.roles[0], SIM_ROLE_PREFILL);
    assert_int_equal(cf.roles[1], SIM_ROLE_DECODE);
    assert_int_equal(cf.roles[2], SIM_ROLE_BOTH);
    assert_int_equal(parse_args(&cf, ARGS("--hosts", "127.0.0.2,127.0.0.3",
                                          "--roles", "prefill,decode")), 0);
    assert_int_equal(cf.roles[1], SIM_ROLE_DECODE);

    assert_int_equal(parse_args(&cf, ARGS("--roles", "prefill,decode")), -1);
    assert_int_equal(parse_args(&cf, ARGS("--pods", "2", "--roles",
                                          "prefill,encode")), -1);
    assert_int_equal(parse_args(&cf, ARGS("--pods", "2", "--roles",
                                          "prefill,")), -1);
    assert_int_equal(parse_args(&cf, ARGS("--role", "Decode")), -1);
    assert_int_equal(parse_args(&cf, ARGS("--kv-transfer-gbps", "0")), -1);
    assert_string_equal(sim_role_name(SIM_ROLE_PREFILL), "prefill");
    assert_string_equal(sim_role_name(SIM_ROLE_BOTH), "both");
}


/* Transfer time = bytes / bandwidth, in simulated seconds. */
/* The step cost (engine.c) of a step that schedules the given load. */
static double
step_cost(const sim_config_t *cf, long prefill, long decode, long ctx,
    double pairs, double *mem, double *comp)
{
    sim_step_load_t  ld;

    ld.prefill_tokens = prefill;
    ld.decode_seqs = decode;
    ld.ctx_tokens = ctx;
    ld.attn_pairs = pairs;
    return sim_step_cost_us(cf, &ld, mem, comp);
}


static void
test_step_cost(void **state)
{
    sim_config_t  cf;
    double        mem, comp, us, prev, base, with;
    long          n;

    /* the default: the linear model, its documented coefficients */
    assert_int_equal(parse_args(&cf, ARGS("--pods", "1")), 0);
    assert_int_equal(cf.step_model, SIM_STEP_LINEAR);
    us = step_cost(&cf, 1000, 10, 90000, 0, &mem, &comp);
    assert_true(fabs(us - (12000 + 120 * 1000 + 50 * 10 + 10 * 90000 / 1e3))
                < 1e-6);
    assert_true(mem == 0 && comp == 0);

    /* the seed 000 profile: Llama-3.1-70B bf16 on 4 H100 */
    assert_int_equal(parse_args(&cf, ARGS("--profile",
                                          "llama-3.1-70b-tp4-h100")), 0);
    assert_int_equal(cf.step_model, SIM_STEP_PHYSICAL);
    assert_string_equal(cf.model, "meta-llama/Llama-3.1-70B-Instruct");
    assert_int_equal(cf.tp, 4);
    assert_true(fabs(cf.kv_bytes_per_token - 327680) < 1e-6);
    assert_true(fabs(cf.weight_bytes - 2 * cf.params) < 1);
    assert_true(fabs(cf.attn_dim - 80 * 64 * 128) < 1e-6);
    assert_int_equal(cf.num_blocks * cf.block_size, 461376);
    assert_int_equal(cf.max_num_seqs, 1024);            /* vLLM on H100 */
    assert_int_equal(cf.max_batched_tokens, 8192);

    /* 20 decoding requests of 9,500 tokens: memory-bound, weights + KV */
    us = step_cost(&cf, 0, 20, 20 * 9500, 20 * 9501.0, &mem, &comp);
    assert_true(mem > 4 * comp);
    assert_true(fabs(us - (mem + cf.overhead_us)) < 1e-6);
    assert_true(fabs(mem - (cf.weight_bytes + 327680.0 * (20 * 9500 + 20))
                     / (4 * cf.hbm_tbps * 1e12 * cf.mem_eff) * 1e6) < 1e-6);
    base = us;

    /* a 64-token chunk of a cached prompt rides along almost free */
    with = step_cost(&cf, 64, 20, 20 * 9500 + 8000,
                     20 * 9501.0 + 64 * 8000 + 64 * 65 / 2.0, NULL, NULL);
    assert_true(with > base && with < base * 1.02);

    /* a cold 8,192-token chunk is compute-bound */
    us = step_cost(&cf, 8192, 0, 0, 8192 * 8193 / 2.0, &mem, &comp);
    assert_true(comp > 5 * mem);
    assert_true(fabs(us - (comp + cf.overhead_us)) < 1e-6);
    assert_true(us > 10 * base);

    /* monotonic in every term */
    prev = 0;
    for (n = 0; n <= 8192; n += 64) {
        us = step_cost(&cf, n, 20, 20 * 9500, 20 * 9501.0 + n * 8000.0,
                       NULL, NULL);
        assert_true(us >= prev);
        prev = us;
    }
    prev = 0;
    for (n = 1; n <= 256; n++) {
        us = step_cost(&cf, 0, n, n * 9500, n * 9501.0, NULL, NULL);
        assert_true(us > prev);
        prev = us;
    }

    /* the seed 002 profile; options refine a profile wherever they are */
    assert_int_equal(parse_args(&cf, ARGS("--tp", "8", "--profile",
                                          "qwen3-32b-tp2-h100",
                                          "--mfu", "0.4")), 0);
    assert_string_equal(cf.model, "Qwen/Qwen3-32B");
    assert_int_equal(cf.tp, 8);
    assert_true(fabs(cf.mfu - 0.4) < 1e-9);
    assert_true(fabs(cf.kv_bytes_per_token - 262144) < 1e-6);
    assert_true(fabs(cf.attn_dim - 64 * 64 * 128) < 1e-6);
    assert_int_equal(cf.vocab_size, 151936);
    assert_int_equal(parse_args(&cf, ARGS("--profile", "qwen3-32b-tp2-h100",
                                          "--kv-tokens", "1600")), 0);
    assert_int_equal(cf.num_blocks, 100);
    assert_int_equal(cf.tp, 2);

    /* physical without a profile: the Llama-3.1-70B TP4 figures */
    assert_int_equal(parse_args(&cf, ARGS("--step-model", "physical",
                                          "--overhead-us", "0")), 0);
    assert_int_equal(cf.step_model, SIM_STEP_PHYSICAL);
    assert_true(cf.profile == NULL);
    assert_int_equal(cf.tp, 4);
    us = step_cost(&cf, 0, 1, 0, 1, &mem, &comp);
    assert_true(fabs(us - mem) < 1e-6);

    assert_int_equal(parse_args(&cf, ARGS("--profile", "gpt-5")), -1);
    assert_int_equal(parse_args(&cf, ARGS("--step-model", "cubic")), -1);
    assert_int_equal(parse_args(&cf, ARGS("--mfu", "0")), -1);
    assert_int_equal(parse_args(&cf, ARGS("--mem-eff", "1.5")), -1);
}


/*
 * The engine on a simulated clock (sim_clock_ns): one pod without sockets,
 * requests of token ids, a step at a time.
 */
typedef struct {
    sim_req_t  *r;                      /* NULL once finished */
    int         tokens;
    int64_t     first_ns;
    int64_t     last_ns;
    int64_t     gap_max_ns;
} eng_trace_t;

static eng_trace_t  traces[64];
static int          ntraces;


static eng_trace_t *
trace_of(sim_req_t *r)
{
    int  i;

    for (i = 0; i < ntraces; i++) {
        if (traces[i].r == r) {
            return &traces[i];
        }
    }
    return NULL;
}


static void
eng_on_token(sim_req_t *r, uint32_t id, const char *text, size_t len,
    int last)
{
    eng_trace_t  *t = trace_of(r);

    assert_non_null(t);
    if (t->tokens++ == 0) {
        t->first_ns = sim_clock_ns;
    } else if (sim_clock_ns - t->last_ns > t->gap_max_ns) {
        t->gap_max_ns = sim_clock_ns - t->last_ns;
    }
    t->last_ns = sim_clock_ns;
    if (last) {
        t->r = NULL;                    /* freed by the engine */
    }
}


static void
eng_pod(sim_pod_t *pod, sim_config_t *cf)
{
    char  err[256];

    assert_int_equal(sim_tok_init(cf, err, sizeof(err)), 0);
    assert_int_equal(sim_pod_init(pod, cf, 0, err, sizeof(err)), 0);
    pod->kv = sim_kv_create(cf->num_blocks, NULL, NULL);
    assert_non_null(pod->kv);
    sim_stats_init(&pod->stats);
    ntraces = 0;
    sim_clock_ns = 1000000000000LL;
}


static void
eng_pod_free(sim_pod_t *pod)
{
    sim_engine_clear(pod);
    free(pod->eng.step);
    sim_kv_destroy(pod->kv);
    sim_clock_ns = 0;
}


/* A prompt of n ids: the first shared ones common to every prompt. */
static eng_trace_t *
eng_add(sim_pod_t *pod, size_t n, size_t shared, uint32_t salt, int out)
{
    sim_req_t  *r;
    size_t      i;

    r = sim_req_new(pod, eng_on_token);
    assert_non_null(r);
    r->cap_tokens = n + (size_t) out + 1;
    r->tokens = malloc(r->cap_tokens * sizeof(uint32_t));
    assert_non_null(r->tokens);
    for (i = 0; i < n; i++) {
        r->tokens[i] = i < shared ? (uint32_t) (7 + i)
                                  : (uint32_t) (salt * 100003 + i) % 128000;
    }
    r->n_prompt = r->n_tokens = n;
    r->max_tokens = out;
    r->finish_reason = "length";
    assert_true(ntraces < 64);
    memset(&traces[ntraces], 0, sizeof(eng_trace_t));
    traces[ntraces].r = r;
    assert_int_equal(sim_engine_add(pod, r), 0);
    return &traces[ntraces++];
}


/* Ends the step in flight; returns the simulated ns the next one lasts. */
static int64_t
eng_step(sim_pod_t *pod)
{
    assert_true(pod->eng.busy);
    sim_clock_ns = pod->eng.step_end_ns;
    sim_engine_tick(pod, sim_clock_ns);
    return pod->eng.busy ? pod->eng.step_end_ns - sim_clock_ns : 0;
}


/* Tokens of the step in flight scheduled for r (0: not in the step). */
static int
eng_sched(sim_pod_t *pod, sim_req_t *r)
{
    int  i;

    for (i = 0; i < pod->eng.n_step; i++) {
        if (pod->eng.step[i] == r) {
            return r->scheduled;
        }
    }
    return 0;
}


/*
 * vLLM's chunked prefill (vllm/v1/core/sched/scheduler.py): a step carries
 * one token of every decoding request and as much prefill as the budget
 * leaves, and lasts max(memory, compute) of that load.  A cold prompt
 * therefore holds up the decoders for its chunk's compute (one token each
 * for the step, none starved), but not for a decode step on top of it.
 */
static void
test_engine_chunked_prefill(void **state)
{
    sim_config_t   cf;
    sim_pod_t      pod;
    eng_trace_t   *dec[20], *cold;
    sim_step_load_t  ld;
    int64_t        decode_ns, stall_ns, ns;
    double         pairs, mem, comp;
    long           ctx;
    int            i, before[20];

    assert_int_equal(parse_args(&cf, ARGS("--profile",
                                          "llama-3.1-70b-tp4-h100")), 0);
    eng_pod(&pod, &cf);

    for (i = 0; i < 20; i++) {
        dec[i] = eng_add(&pod, 1000, 0, (uint32_t) i + 1, 200);
    }
    for (i = 0; i < 6; i++) {
        eng_step(&pod);
    }
    for (i = 0; i < 20; i++) {
        assert_true(dec[i]->tokens >= 1);
    }
    decode_ns = pod.eng.step_end_ns - sim_clock_ns;
    assert_int_equal(pod.eng.n_step, 20);

    /* a cold 9,000-token prompt arrives during a decode step */
    cold = eng_add(&pod, 9000, 0, 99, 10);
    assert_int_equal(pod.eng.waiting.n, 1);
    stall_ns = eng_step(&pod);
    for (i = 0; i < 20; i++) {
        before[i] = dec[i]->tokens;
    }

    /* decodes first, one token each; the chunk gets the rest */
    assert_int_equal(pod.eng.n_step, 21);
    assert_int_equal(eng_sched(&pod, cold->r), 8192 - 20);
    ctx = 0;
    pairs = 8172.0 * 8173.0 / 2;
    for (i = 0; i < 20; i++) {
        assert_int_equal(eng_sched(&pod, dec[i]->r), 1);
        ctx += (long) dec[i]->r->num_computed;
        pairs += (double) dec[i]->r->num_computed + 1;
    }
    ld.prefill_tokens = 8172;
    ld.decode_seqs = 20;
    ld.ctx_tokens = ctx;
    ld.attn_pairs = pairs;
    ns = (int64_t) (sim_step_cost_us(&cf, &ld, &mem, &comp) * 1000.0);
    assert_true(llabs(stall_ns - ns) <= 1);
    assert_true(comp > mem);                            /* compute-bound */
    assert_true(stall_ns > 10 * decode_ns);
    /* the decoders ride along: not a decode step on top of the chunk */
    assert_true(stall_ns < (int64_t) (comp * 1000.0) + decode_ns / 2);

    /* the stalled step gives every decoder exactly one token */
    eng_step(&pod);
    for (i = 0; i < 20; i++) {
        assert_int_equal(dec[i]->tokens, before[i] + 1);
        assert_true(dec[i]->gap_max_ns >= stall_ns);
    }
    assert_int_equal(cold->tokens, 0);
    assert_int_equal(eng_sched(&pod, cold->r), 9000 - 8172);

    /* its first token ends the next step, then it decodes with the rest */
    eng_step(&pod);
    assert_int_equal(cold->tokens, 1);
    assert_int_equal(eng_sched(&pod, cold->r), 1);

    eng_pod_free(&pod);
}


/*
 * When a running request needs a block and none is free, vLLM preempts the
 * newest running request (recompute: its blocks freed, back at the head of
 * the waiting queue), admits nobody in that step, and resumes it later;
 * every request still gets all its tokens, once each.
 */
static void
test_engine_preemption(void **state)
{
    sim_config_t   cf;
    sim_pod_t      pod;
    eng_trace_t   *t[3], *late;
    sim_req_t     *victim;
    int            i, steps;

    /* 128 blocks of 16: three requests of 600 + 400 cannot all finish */
    assert_int_equal(parse_args(&cf, ARGS("--profile",
                                          "llama-3.1-70b-tp4-h100",
                                          "--kv-tokens", "2048")), 0);
    assert_int_equal(cf.num_blocks, 128);
    eng_pod(&pod, &cf);

    for (i = 0; i < 3; i++) {
        t[i] = eng_add(&pod, 600, 0, (uint32_t) i + 1, 400);
    }
    victim = t[2]->r;
    eng_step(&pod);                     /* the first came alone */
    assert_int_equal(pod.eng.running.n, 3);

    for (steps = 0; pod.stats.preemptions == 0 && steps < 1000; steps++) {
        eng_step(&pod);
    }
    assert_int_equal(pod.stats.preemptions, 1);
    assert_true(pod.eng.waiting.head == victim);
    assert_int_equal(victim->num_computed, 0);
    assert_int_equal(victim->n_blocks, 0);
    assert_int_equal(pod.eng.running.n, 2);

    /* a request arriving now waits behind the preempted one */
    late = eng_add(&pod, 32, 0, 50, 4);
    assert_true(pod.eng.waiting.head == victim);

    for (steps = 0; pod.eng.busy && steps < 100000; steps++) {
        eng_step(&pod);
    }
    for (i = 0; i < 3; i++) {
        assert_int_equal(t[i]->tokens, 400);
        assert_null(t[i]->r);
    }
    assert_int_equal(late->tokens, 4);
    /* the victim resumed before the late request began */
    assert_true(t[2]->last_ns > 0 && late->first_ns > t[0]->last_ns);

    eng_pod_free(&pod);
}


/*
 * The engine's work per decode step does not grow with the context: the
 * same KV-cache operations for a 64-token and a 16,000-token request.
 */
static void
test_engine_step_work(void **state)
{
    sim_config_t   cf;
    sim_pod_t      pod;
    uint64_t       ops[2];
    size_t         lens[2] = { 64, 16000 };
    int            k, i;

    assert_int_equal(parse_args(&cf, ARGS("--profile",
                                          "llama-3.1-70b-tp4-h100")), 0);
    for (k = 0; k < 2; k++) {
        eng_pod(&pod, &cf);
        eng_add(&pod, lens[k], 0, 3, 400);
        while (traces[0].tokens == 0) {
            eng_step(&pod);
        }
        ops[k] = sim_kv_ops(pod.kv);
        for (i = 0; i < 320; i++) {
            eng_step(&pod);
        }
        ops[k] = sim_kv_ops(pod.kv) - ops[k];
        eng_pod_free(&pod);
    }

    /* 320 decode steps: 20 new blocks of 16, each allocated and cached */
    assert_int_equal(ops[0], ops[1]);
    assert_true(ops[0] > 0 && ops[0] <= 4 * 320 / 16);
}


/*
 * --request-latency-ms: a request reaches the engine that long after it
 * arrived (simulated, divided by the time scale); its TTFT counts from
 * the arrival; one aborted meanwhile never reaches the engine.
 */
static void
test_engine_request_latency(void **state)
{
    sim_config_t   cf;
    sim_pod_t      pod;
    eng_trace_t   *t, *gone;
    int64_t        t0, due, step_ns;

    assert_int_equal(parse_args(&cf, ARGS("--profile",
                                          "llama-3.1-70b-tp4-h100",
                                          "--request-latency-ms", "100",
                                          "--time-scale", "4")), 0);
    assert_true(fabs(cf.request_latency_ms - 100) < 1e-9);
    eng_pod(&pod, &cf);

    t0 = sim_clock_ns;
    t = eng_add(&pod, 64, 0, 1, 2);
    gone = eng_add(&pod, 64, 0, 2, 2);
    assert_int_equal(pod.eng.waiting.n, 0);
    assert_false(pod.eng.busy);
    assert_int_equal(pod.eng.arriving.n, 2);

    /* 100 simulated ms at time scale 4: 25 ms of wall time */
    due = sim_engine_arrivals(&pod, t0 + 25000000LL - 1);
    assert_true(due == t0 + 25000000LL);
    assert_false(pod.eng.busy);

    sim_engine_abort(&pod, gone->r);
    assert_int_equal(pod.eng.arriving.n, 1);

    sim_clock_ns = due;
    assert_true(sim_engine_arrivals(&pod, due) == 0);
    assert_true(pod.eng.busy);
    assert_int_equal(pod.eng.n_step, 1);
    step_ns = pod.eng.step_end_ns - due;
    eng_step(&pod);
    assert_int_equal(t->tokens, 1);
    assert_true(t->first_ns - t0 == 25000000LL + step_ns);

    eng_pod_free(&pod);
}


static void
test_pd_transfer(void **state)
{
    /* 1,000 tokens of Llama-3.1-70B at 800 Gbit/s: 3.2768 ms */
    assert_float_equal(sim_engine_transfer_s(1000 * 327680.0, 800), 0.0032768,
                       1e-12);
    assert_float_equal(sim_engine_transfer_s(1e9, 8), 1.0, 1e-12);
    assert_float_equal(sim_engine_transfer_s(0, 800), 0.0, 0);
}


static size_t
remote_blocks_of(const char *json)
{
    cJSON   *j = cJSON_Parse(json);
    size_t   n;

    assert_non_null(j);
    n = sim_pd_remote_blocks(j);
    cJSON_Delete(j);
    return n;
}


/* kv_transfer_params of a decode request, and of a prefill leg. */
static void
test_pd_params_in(void **state)
{
    cJSON  *j;

    /* vLLM's flat list and the newer one list per KV-cache group */
    assert_int_equal(remote_blocks_of(
        "{\"do_remote_prefill\":true,\"remote_block_ids\":[4,5,6],"
        "\"remote_engine_id\":\"e\",\"remote_host\":\"10.0.0.1\","
        "\"remote_port\":5600}"), 3);
    assert_int_equal(remote_blocks_of(
        "{\"do_remote_prefill\":true,\"remote_block_ids\":[[1,2],[9,9]]}"),
        2);
    assert_int_equal(remote_blocks_of(
        "{\"do_remote_prefill\":true,\"remote_block_ids\":[]}"), 0);
    /* the prefill leg's own params, and no remote prefill */
    assert_int_equal(remote_blocks_of(
        "{\"do_remote_decode\":true,\"do_remote_prefill\":false,"
        "\"remote_block_ids\":null}"), 0);
    assert_int_equal(remote_blocks_of(
        "{\"do_remote_prefill\":false,\"remote_block_ids\":[1]}"), 0);
    assert_int_equal(remote_blocks_of("{\"do_remote_prefill\":true}"), 0);
    assert_int_equal(sim_pd_remote_blocks(NULL), 0);

    j = cJSON_Parse("{\"do_remote_decode\":true}");
    assert_true(sim_pd_is_prefill_leg(j));
    cJSON_Delete(j);
    j = cJSON_Parse("{\"do_remote_decode\":false}");
    assert_false(sim_pd_is_prefill_leg(j));
    cJSON_Delete(j);
    assert_false(sim_pd_is_prefill_leg(NULL));
}


/* A prefill pod's answer names its full prompt blocks and side channel. */
static void
test_pd_params_out(void **state)
{
    sim_config_t  cf;
    sim_pod_t     pod;
    sim_req_t     r;
    sim_buf_t     b = { NULL, 0, 0 };
    int32_t       blocks[] = { 7, 3, 9 };
    cJSON        *j, *ids;

    memset(&cf, 0, sizeof(cf));
    memset(&pod, 0, sizeof(pod));
    memset(&r, 0, sizeof(r));
    cf.block_size = 16;
    pod.cf = &cf;
    pod.index = 2;
    pod.host = "127.0.0.1";
    snprintf(pod.engine_id, sizeof(pod.engine_id), "engine-x");
    r.api = SIM_API_COMPLETIONS;
    snprintf(r.id, sizeof(r.id), "8002-1");
    r.blocks = blocks;
    r.n_blocks = 3;
    r.n_prompt = 40;                    /* 2 full blocks and 8 tokens */

    assert_int_equal(sim_pd_params_json(&b, &pod, &r), 0);
    assert_string_equal(b.data,
        "{\"do_remote_prefill\":true,\"do_remote_decode\":false,"
        "\"remote_block_ids\":[[7,3]],\"remote_engine_id\":\"engine-x\","
        "\"remote_request_id\":\"cmpl-8002-1\","
        "\"remote_host\":\"127.0.0.1\",\"remote_port\":5602,"
        "\"tp_size\":1}");

    /* what a decode pod reads back from it */
    j = cJSON_Parse(b.data);
    assert_int_equal(sim_pd_remote_blocks(j), 2);
    ids = cJSON_GetObjectItem(j, "remote_block_ids");
    assert_int_equal(cJSON_GetArraySize(ids->child), 2);
    cJSON_Delete(j);

    /* with --hosts every pod has its own address and vLLM's port */
    cf.nhosts = 3;
    pod.host = "127.0.0.4";
    r.api = SIM_API_CHAT;
    r.n_prompt = 10;
    b.len = 0;
    assert_int_equal(sim_pd_params_json(&b, &pod, &r), 0);
    assert_non_null(strstr(b.data, "\"remote_block_ids\":[[]]"));
    assert_non_null(strstr(b.data, "\"remote_request_id\":"
                                   "\"chatcmpl-8002-1\""));
    assert_non_null(strstr(b.data, "\"remote_host\":\"127.0.0.4\","
                                   "\"remote_port\":5600"));
    sim_buf_free(&b);
}


/* The sidecar's prefill leg: stream off, token limits 1, remote decode. */
static void
test_pd_prefill_body(void **state)
{
    cJSON       *in, *out, *kv;
    char        *body;
    const char  *nulls[] = {
        "remote_engine_id", "remote_block_ids", "remote_host", "remote_port"
    };
    size_t       i;

    in = cJSON_Parse("{\"model\":\"m\",\"prompt\":\"hi\",\"stream\":true,"
                     "\"stream_options\":{\"include_usage\":true},"
                     "\"max_tokens\":50,\"cache_salt\":\"s\","
                     "\"kv_transfer_params\":{\"x\":1}}");
    assert_non_null(in);
    body = sim_pd_prefill_body(in);
    assert_non_null(body);
    out = cJSON_Parse(body);
    assert_non_null(out);

    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(out, "stream")));
    assert_null(cJSON_GetObjectItem(out, "stream_options"));
    assert_int_equal(cJSON_GetObjectItem(out, "max_tokens")->valueint, 1);
    assert_int_equal(
        cJSON_GetObjectItem(out, "max_completion_tokens")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(out, "min_tokens")->valueint, 1);
    assert_string_equal(cJSON_GetObjectItem(out, "prompt")->valuestring,
                        "hi");
    assert_string_equal(cJSON_GetObjectItem(out, "cache_salt")->valuestring,
                        "s");

    kv = cJSON_GetObjectItem(out, "kv_transfer_params");
    assert_true(sim_pd_is_prefill_leg(kv));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(kv, "do_remote_prefill")));
    assert_null(cJSON_GetObjectItem(kv, "x"));
    for (i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(kv, nulls[i])));
    }

    /* the client's own request is left as it was */
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(in, "stream")));
    assert_int_equal(cJSON_GetObjectItem(in, "max_tokens")->valueint, 50);

    cJSON_Delete(out);
    cJSON_Delete(in);
    free(body);
}


static int
target_of(const char *v, char *host, int *port)
{
    return sim_pd_target(v, strlen(v), host, SIM_MAX_HOST, port);
}


/* x-prefiller-host-port: the first IPv4:port of the list. */
static void
test_pd_target(void **state)
{
    static const char  *bad[] = {
        "", "127.0.0.2", "127.0.0.2:", ":8000", "127.0.0.2:0",
        "127.0.0.2:65536", "127.0.0.2:80x", "prefill-0:8000",
        "127.0.0.2:+80", "[::1]:8000", "1234567890123456789:1", " , "
    };
    char                host[SIM_MAX_HOST];
    size_t              i;
    int                 port;

    assert_int_equal(target_of("127.0.0.2:8000", host, &port), 0);
    assert_string_equal(host, "127.0.0.2");
    assert_int_equal(port, 8000);

    assert_int_equal(target_of(" http://10.1.2.3:18201 , 127.0.0.9:1", host,
                               &port), 0);
    assert_string_equal(host, "10.1.2.3");
    assert_int_equal(port, 18201);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(target_of(bad[i], host, &port), -1);
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_sha256_cbor),
        cmocka_unit_test(test_sha256_cbor_64bit),
        cmocka_unit_test(test_batch_array),
        cmocka_unit_test(test_batch_map),
        cmocka_unit_test(test_other_events),
        cmocka_unit_test(test_kvcache_lru),
        cmocka_unit_test(test_tokenizer_files),
        cmocka_unit_test(test_hosts),
        cmocka_unit_test(test_event_endpoints),
        cmocka_unit_test(test_chat_simple),
        cmocka_unit_test(test_chat_template),
        cmocka_unit_test(test_pd_roles),
        cmocka_unit_test(test_pd_transfer),
        cmocka_unit_test(test_step_cost),
        cmocka_unit_test(test_engine_chunked_prefill),
        cmocka_unit_test(test_engine_preemption),
        cmocka_unit_test(test_engine_step_work),
        cmocka_unit_test(test_engine_request_latency),
        cmocka_unit_test(test_pd_params_in),
        cmocka_unit_test(test_pd_params_out),
        cmocka_unit_test(test_pd_prefill_body),
        cmocka_unit_test(test_pd_target),
    };

    sim_log_quiet = 1;

    return cmocka_run_group_tests(tests, NULL, NULL);
}
