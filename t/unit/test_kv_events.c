/*
 * vLLM KV-event decoder: the spec's example batches (array and map
 * encodings), every event kind and field generation, hash normalisation,
 * topic and sequence frames, and hostile payloads (truncation, wrong types,
 * huge declared lengths, deep nesting, random bytes).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kv/llmd_kv_events.h"

/* the example batches of docs/kv-events.md, encoded outside this project */
#define STORED_ARRAY                                                         \
    "93cb41d954fc402000009198ab426c6f636b53746f72656492cfe235fcc84bc5706dcf" \
    "7856ae50e4ba5af8c0dc00200102030405060708090a0b0c0d0e0f1011121314151617" \
    "18191a1b1c1d1e1f2010c0a3475055c000"

#define STORED_MAP                                                           \
    "93cb41d954fc40200000918ba474797065ab426c6f636b53746f726564ac626c6f636b" \
    "5f68617368657392cfe235fcc84bc5706dcf7856ae50e4ba5af8b1706172656e745f62" \
    "6c6f636b5f68617368c0a9746f6b656e5f696473dc00200102030405060708090a0b0c" \
    "0d0e0f101112131415161718191a1b1c1d1e1f20aa626c6f636b5f73697a6510a76c6f" \
    "72615f6964c0a66d656469756da3475055a96c6f72615f6e616d65c0aa65787472615f" \
    "6b65797392c0c0a967726f75705f69647800b26b765f63616368655f737065635f6b69" \
    "6e64ae66756c6c5f617474656e74696f6e00"

#define REMOVED_ARRAY_EV \
    "93ac426c6f636b52656d6f76656491cf7856ae50e4ba5af8a3475055"
#define REMOVED_MAP_EV \
    "83a474797065ac426c6f636b52656d6f766564ac626c6f636b5f6861736865739" \
    "1cf7856ae50e4ba5af8a66d656469756da3475055"
#define CLEARED_ARRAY_EV  "91b0416c6c426c6f636b73436c6561726564"
#define CLEARED_MAP_EV    "81a474797065b0416c6c426c6f636b73436c6561726564"

/* batch header: array(3), ts 1700000000.5, events array(1) */
#define BATCH1   "93cb41d954fc402000009" "1"
#define RANK0    "00"

#define HASH0    16300212363532267629ULL
#define HASH1    8671309795006503672ULL


typedef struct {
    int              calls;
    llmd_kv_event_t  ev[8];
    uint64_t         hashes[8][4];
    uint32_t         tokens[8][64];
    char             lora[8][32];
    char             salt[8][32];
} capture_t;


static void
capture(void *data, const llmd_kv_event_t *ev)
{
    capture_t  *c = data;
    int         i = c->calls++;

    if (i >= 8) {
        return;
    }

    c->ev[i] = *ev;

    if (ev->nhashes && ev->nhashes <= 4) {
        memcpy(c->hashes[i], ev->hashes, ev->nhashes * sizeof(uint64_t));
    }
    if (ev->ntokens && ev->ntokens <= 64) {
        memcpy(c->tokens[i], ev->tokens, ev->ntokens * sizeof(uint32_t));
    }
    if (ev->lora_name && ev->lora_name_len < 32) {
        memcpy(c->lora[i], ev->lora_name, ev->lora_name_len);
    }
    if (ev->salt && ev->salt_len < 32) {
        memcpy(c->salt[i], ev->salt, ev->salt_len);
    }
}


/* Touches every byte an event points at, so ASan/valgrind see bad ones. */
static void
touch(void *data, const llmd_kv_event_t *ev)
{
    size_t             i;
    volatile uint64_t  sum = 0;

    for (i = 0; i < ev->nhashes; i++) {
        sum += ev->hashes[i];
    }
    for (i = 0; i < ev->ntokens; i++) {
        sum += ev->tokens[i];
    }
    for (i = 0; i < ev->lora_name_len; i++) {
        sum += (unsigned char) ev->lora_name[i];
    }
    for (i = 0; i < ev->salt_len; i++) {
        sum += (unsigned char) ev->salt[i];
    }

    assert_true(ev->nhashes <= LLMD_KV_MAX_HASHES);
    assert_true(ev->ntokens <= LLMD_KV_MAX_TOKENS);
    (*(int *) data)++;
}


static size_t
unhex(const char *hex, unsigned char *out, size_t max)
{
    size_t        n;
    unsigned int  b;

    for (n = 0; hex[0] && hex[1]; hex += 2, n++) {
        assert_true(n < max);
        assert_int_equal(sscanf(hex, "%2x", &b), 1);
        out[n] = (unsigned char) b;
    }

    return n;
}


/* Decodes a hex payload; returns the decoder's result. */
static int
decode_hex(const char *hex, capture_t *c, llmd_kv_batch_info_t *info)
{
    size_t         n;
    unsigned char  buf[4096];
    char           err[128];
    int            rc;

    memset(c, 0, sizeof(capture_t));
    n = unhex(hex, buf, sizeof(buf));

    err[0] = '\0';
    rc = llmd_kv_batch_decode(buf, n, capture, c, info, err, sizeof(err));
    if (rc != 0 && getenv("TEST_VERBOSE")) {
        fprintf(stderr, "%s\n", err);
    }

    return rc;
}


static void
check_stored_example(capture_t *c)
{
    int  i;

    assert_int_equal(c->calls, 1);
    assert_int_equal(c->ev[0].type, LLMD_KV_BLOCK_STORED);
    assert_int_equal(c->ev[0].nhashes, 2);
    assert_true(c->hashes[0][0] == HASH0);
    assert_true(c->hashes[0][1] == HASH1);
    assert_int_equal(c->ev[0].has_parent, 0);
    assert_int_equal(c->ev[0].ntokens, 32);
    for (i = 0; i < 32; i++) {
        assert_int_equal(c->tokens[0][i], i + 1);
    }
    assert_int_equal(c->ev[0].block_size, 16);
    assert_null(c->ev[0].lora_name);
    assert_int_equal(c->ev[0].cpu, 0);
    assert_null(c->ev[0].salt);
    assert_int_equal(c->ev[0].extra_unsupported, 0);
}


static void
test_stored_array(void **state)
{
    capture_t             c;
    llmd_kv_batch_info_t  info;

    assert_int_equal(decode_hex(STORED_ARRAY, &c, &info), 0);
    check_stored_example(&c);
    assert_true(info.ts == 1700000000.5);
    assert_int_equal(info.dp_rank, 0);
    assert_int_equal(info.events, 1);
    assert_int_equal(info.skipped, 0);
}


static void
test_stored_map(void **state)
{
    capture_t             c;
    llmd_kv_batch_info_t  info;

    assert_int_equal(decode_hex(STORED_MAP, &c, &info), 0);
    check_stored_example(&c);
    assert_true(info.ts == 1700000000.5);
    assert_int_equal(info.events, 1);
}


static void
test_removed_and_cleared(void **state)
{
    capture_t             c;
    llmd_kv_batch_info_t  info;
    const char           *removed[] = {
        BATCH1 REMOVED_ARRAY_EV RANK0, BATCH1 REMOVED_MAP_EV RANK0
    };
    const char           *cleared[] = {
        BATCH1 CLEARED_ARRAY_EV RANK0, BATCH1 CLEARED_MAP_EV RANK0
    };
    int                   i;

    for (i = 0; i < 2; i++) {
        assert_int_equal(decode_hex(removed[i], &c, &info), 0);
        assert_int_equal(c.calls, 1);
        assert_int_equal(c.ev[0].type, LLMD_KV_BLOCK_REMOVED);
        assert_int_equal(c.ev[0].nhashes, 1);
        assert_true(c.hashes[0][0] == HASH1);
        assert_int_equal(c.ev[0].cpu, 0);

        assert_int_equal(decode_hex(cleared[i], &c, &info), 0);
        assert_int_equal(c.calls, 1);
        assert_int_equal(c.ev[0].type, LLMD_KV_ALL_CLEARED);
        assert_int_equal(c.ev[0].nhashes, 0);
    }

    /* v0.9 BlockRemoved without medium */
    assert_int_equal(decode_hex(BATCH1 "92ac426c6f636b52656d6f7665649103"
                                RANK0, &c, &info), 0);
    assert_int_equal(c.calls, 1);
    assert_true(c.hashes[0][0] == 3);
}


static void
test_batch_forms(void **state)
{
    capture_t             c;
    llmd_kv_batch_info_t  info;

    /* batch as a map, rank 3, several events in order */
    assert_int_equal(decode_hex(
        "83a27473cb41d954fc40200000a66576656e747392" CLEARED_MAP_EV
        REMOVED_ARRAY_EV "b2646174615f706172616c6c656c5f72616e6b03",
        &c, &info), 0);
    assert_int_equal(c.calls, 2);
    assert_int_equal(c.ev[0].type, LLMD_KV_ALL_CLEARED);
    assert_int_equal(c.ev[1].type, LLMD_KV_BLOCK_REMOVED);
    assert_int_equal(info.dp_rank, 3);
    assert_true(info.ts == 1700000000.5);

    /* old batch: no rank, integer ts */
    assert_int_equal(decode_hex("92ce6553f1009" "1" CLEARED_ARRAY_EV,
                                &c, &info), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(info.dp_rank, -1);
    assert_true(info.ts == 1700000000.0);

    /* nil rank, extra trailing batch element ignored */
    assert_int_equal(decode_hex("94cb41d954fc402000009" "0" "c0c3",
                                &c, &info), 0);
    assert_int_equal(c.calls, 0);
    assert_int_equal(info.dp_rank, -1);

    /* map batch with unknown keys but without events: malformed */
    assert_int_equal(decode_hex("82a2747301a178c0", &c, &info), -1);
}


static void
test_generations_and_fields(void **state)
{
    capture_t             c;
    llmd_kv_batch_info_t  info;

    /* v0.9, 6 elements: hashes as fixint, parent, 2 tokens, bs 2, lora_id */
    assert_int_equal(decode_hex(BATCH1 "96ab426c6f636b53746f726564" "9107"
                                "05" "920a0b" "02" "c0" RANK0, &c, &info), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.ev[0].has_parent, 1);
    assert_true(c.ev[0].parent == 5);
    assert_true(c.hashes[0][0] == 7);
    assert_int_equal(c.ev[0].ntokens, 2);
    assert_int_equal(c.tokens[0][1], 11);
    assert_int_equal(c.ev[0].block_size, 2);

    /* 7 elements, medium "cpu" in lower case */
    assert_int_equal(decode_hex(BATCH1 "97ab426c6f636b53746f726564" "9107"
                                "c0" "920a0b" "02" "c0" "a3637075" RANK0,
                                &c, &info), 0);
    assert_int_equal(c.ev[0].cpu, 1);

    /* 12 elements with lora_name, a salt on block 0, unknown trailing */
    assert_int_equal(decode_hex(BATCH1 "9dab426c6f636b53746f726564" "9107"
                                "c0" "920a0b" "02" "01" "a3475055"
                                "a76d792d6c6f7261"
                                "9192a76d792d6c6f7261a673616c742d41"
                                "00" "ae66756c6c5f617474656e74696f6e" "c0"
                                "a3787878" RANK0, &c, &info), 0);
    assert_int_equal(c.calls, 1);
    assert_string_equal(c.lora[0], "my-lora");
    assert_int_equal(c.ev[0].lora_name_len, 7);
    assert_string_equal(c.salt[0], "salt-A");
    assert_int_equal(c.ev[0].extra_unsupported, 0);

    /* multimodal extra key [id, offset]: flagged, not keyable */
    assert_int_equal(decode_hex(BATCH1 "99ab426c6f636b53746f726564" "9107"
                                "c0" "920a0b" "02" "c0" "a3475055" "c0"
                                "919192aa6d6d686173682d61626303" RANK0,
                                &c, &info), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.ev[0].extra_unsupported, 1);

    /* sliding-window group events are not indexed (llm-d) */
    assert_int_equal(decode_hex(BATCH1 "9bab426c6f636b53746f726564" "9107"
                                "c0" "920a0b" "02" "c0" "a3475055" "c0" "c0"
                                "01" "ae736c6964696e675f77696e646f77"
                                RANK0, &c, &info), 0);
    assert_int_equal(c.calls, 0);
    assert_int_equal(info.skipped, 1);

    /* empty lora_name = no LoRA; unknown map keys ignored */
    assert_int_equal(decode_hex(BATCH1 "84a474797065ab426c6f636b53746f726564"
                                "ac626c6f636b5f6861736865739107"
                                "a96c6f72615f6e616d65a0" "a178a178" RANK0,
                                &c, &info), 0);
    assert_int_equal(c.calls, 1);
    assert_null(c.ev[0].lora_name);
    assert_int_equal(c.ev[0].ntokens, 0);
    assert_int_equal(c.ev[0].block_size, 0);
}


static void
test_hash_forms(void **state)
{
    capture_t             c;
    llmd_kv_batch_info_t  info;

    /* d3 int64 -2, cc uint8, c4 bin32 digest, c4 bin 2 bytes (padded) */
    assert_int_equal(decode_hex(BATCH1 "93ac426c6f636b52656d6f76656494"
        "d3fffffffffffffffe" "ccff"
        "c420476e88fb0c175c0b4ef0343e158b5157c2ac537d37d97830e235fcc84bc5706d"
        "c4020102" "c0" RANK0, &c, &info), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.ev[0].nhashes, 4);
    assert_true(c.hashes[0][0] == 0xfffffffffffffffeULL);
    assert_true(c.hashes[0][1] == 255);
    assert_true(c.hashes[0][2] == HASH0);
    assert_true(c.hashes[0][3] == 0x0102);

    /* empty bin, float, string hash: the event is skipped, batch kept */
    assert_int_equal(decode_hex("93cb41d954fc4020000094"
                                "93ac426c6f636b52656d6f76656491c400c0"
                                "93ac426c6f636b52656d6f76656491ca3f800000c0"
                                "93ac426c6f636b52656d6f76656491a131c0"
                                CLEARED_ARRAY_EV RANK0, &c, &info), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.ev[0].type, LLMD_KV_ALL_CLEARED);
    assert_int_equal(info.skipped, 3);
}


static void
test_skipped_events(void **state)
{
    capture_t             c;
    llmd_kv_batch_info_t  info;

    assert_int_equal(decode_hex("93cb41d954fc402000009a"
        "92a85a6f6d626965457601"                   /* unknown tag */
        "81a1780a"                                 /* map without type */
        "90"                                       /* empty array */
        "05"                                       /* not an event */
        "9201c0"                                   /* tag not a string */
        "92ab426c6f636b53746f726564a178"          /* hashes not an array */
        "94ab426c6f636b53746f7265649101c0a178"    /* tokens a string */
        "94ab426c6f636b53746f7265649101c091ff"    /* negative token */
        "94ab426c6f636b53746f7265649101c091cf0000000100000000" /* > u32 */
        CLEARED_ARRAY_EV RANK0, &c, &info), 0);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.ev[0].type, LLMD_KV_ALL_CLEARED);
    assert_int_equal(info.events, 1);
    assert_int_equal(info.skipped, 9);

    /* wrong medium, block size and lora types */
    assert_int_equal(decode_hex("93cb41d954fc4020000093"
        "97ab426c6f636b53746f7265649101c0c0c0c001"
        "95ab426c6f636b53746f7265649101c0c0a131"
        "98ab426c6f636b53746f7265649101c0c0c0c0c001"
        RANK0, &c, &info), 0);
    assert_int_equal(c.calls, 0);
    assert_int_equal(info.skipped, 3);
}


static void
test_malformed_batches(void **state)
{
    int                   i;
    capture_t             c;
    llmd_kv_batch_info_t  info;
    const char           *bad[] = {
        "c0",                                      /* not a container */
        "91cb41d954fc40200000",                    /* array of 1 */
        "92a131" "90",                             /* ts a string */
        "92cb41d954fc40200000" "c0",               /* events nil */
        "93cb41d954fc40200000" "90" "a131",        /* rank a string */
        STORED_ARRAY "c0",                         /* trailing bytes */
        "92cb41d954fc40200000" "91" "c1",          /* reserved byte */
        NULL
    };

    for (i = 0; bad[i]; i++) {
        assert_int_equal(decode_hex(bad[i], &c, &info), -1);
        assert_int_equal(c.calls, 0);
    }

    /* the handler is not called when a later part of the batch is bad */
    assert_int_equal(decode_hex("93cb41d954fc4020000092" CLEARED_ARRAY_EV
                                CLEARED_ARRAY_EV "a3787878", &c, &info), -1);
    assert_int_equal(c.calls, 0);

    assert_int_equal(llmd_kv_batch_decode(NULL, 0, capture, &c, NULL, NULL,
                                          0), -1);
}


static void
test_truncation(void **state)
{
    int             calls, i;
    size_t          n, cut;
    char            err[128];
    unsigned char   buf[4096];
    const char     *examples[] = {
        STORED_ARRAY, STORED_MAP, BATCH1 REMOVED_ARRAY_EV RANK0,
        BATCH1 REMOVED_MAP_EV RANK0, BATCH1 CLEARED_ARRAY_EV RANK0,
        BATCH1 CLEARED_MAP_EV RANK0, NULL
    };

    for (i = 0; examples[i]; i++) {
        n = unhex(examples[i], buf, sizeof(buf));

        for (cut = 0; cut < n; cut++) {
            calls = 0;
            err[0] = '\0';
            assert_int_equal(llmd_kv_batch_decode(buf, cut, touch, &calls,
                                                  NULL, err, sizeof(err)),
                             -1);
            assert_int_equal(calls, 0);
            assert_true(strlen(err) > 0);
        }

        calls = 0;
        assert_int_equal(llmd_kv_batch_decode(buf, n, touch, &calls, NULL,
                                              NULL, 0), 0);
        assert_int_equal(calls, 1);
    }
}


static void
test_huge_lengths(void **state)
{
    int          calls, i;
    capture_t    c;
    const char  *bad[] = {
        "dcffff",                                   /* array16 */
        "ddffffffff",                               /* array32 2^32-1 */
        "dfffffffff",                               /* map32 */
        "92cb41d954fc40200000ddffffffff",           /* events array32 */
        "92cb41d954fc4020000091" "dd7fffffff01",    /* event array32 */
        "92cb41d954fc4020000091" "93ac426c6f636b52656d6f766564"
            "dd10000000c0",                         /* hashes array32 */
        "92cb41d954fc4020000091" "91dbffffffff41",  /* str32 */
        "92cb41d954fc4020000091" "91c6ffffffff41",  /* bin32 */
        "92cb41d954fc4020000091" "91c9ffffffff0141",  /* ext32 */
        "92cb41d954fc4020000091" "91d9ff41",        /* str8 past the end */
        NULL
    };

    for (i = 0; bad[i]; i++) {
        assert_int_equal(decode_hex(bad[i], &c, NULL), -1);
        assert_int_equal(c.calls, 0);
    }

    /* many nested arrays each declaring as many elements as bytes remain */
    {
        unsigned char  buf[64];

        for (i = 0; i < 12; i++) {
            buf[5 * i] = 0xdd;
            buf[5 * i + 1] = 0;
            buf[5 * i + 2] = 0;
            buf[5 * i + 3] = 0;
            buf[5 * i + 4] = (unsigned char) (64 - 5 * i - 5);
        }
        memset(buf + 60, 0xc0, 4);
        calls = 0;
        assert_int_equal(llmd_kv_batch_decode(buf, sizeof(buf), touch,
                                              &calls, NULL, NULL, 0), -1);
        assert_int_equal(calls, 0);
    }
}


static void
test_limits(void **state)
{
    int             calls;
    size_t          n, i;
    unsigned char  *buf;

    /* an event with 2^20 + 1 tokens is skipped, its batch survives */
    n = (1u << 20) + 1;
    buf = malloc(n + 64);
    assert_non_null(buf);

    /* [0, [["BlockStored", [1], nil, array32 of n tokens], cleared]] */
    memcpy(buf, "\x92\x00\x92\x94\xab" "BlockStored" "\x91\x01\xc0\xdd", 20);
    i = 20;
    buf[i++] = (unsigned char) (n >> 24);
    buf[i++] = (unsigned char) (n >> 16);
    buf[i++] = (unsigned char) (n >> 8);
    buf[i++] = (unsigned char) n;
    memset(buf + i, 0x01, n);
    i += n;
    memcpy(buf + i, "\x91\xb0" "AllBlocksCleared", 18);
    i += 18;

    calls = 0;
    assert_int_equal(llmd_kv_batch_decode(buf, i, touch, &calls, NULL, NULL,
                                          0), 0);
    assert_int_equal(calls, 1);

    /* the same with 2^20 tokens is accepted */
    n = 1u << 20;
    buf[20] = 0;
    buf[21] = 0x10;
    buf[22] = 0;
    buf[23] = 0;
    calls = 0;
    memmove(buf + 24 + n, buf + 24 + n + 1, 18);
    assert_int_equal(llmd_kv_batch_decode(buf, i - 1, touch, &calls, NULL,
                                          NULL, 0), 0);
    assert_int_equal(calls, 2);
    free(buf);

    /* more than 16M objects (a 256 MiB object tree) are refused */
    n = (1u << 24) + 16;
    buf = malloc(n + 16);
    assert_non_null(buf);
    memcpy(buf, "\x92\x00\xdd", 3);
    buf[3] = (unsigned char) (n >> 24);
    buf[4] = (unsigned char) (n >> 16);
    buf[5] = (unsigned char) (n >> 8);
    buf[6] = (unsigned char) n;
    memset(buf + 7, 0xc0, n);
    calls = 0;
    assert_int_equal(llmd_kv_batch_decode(buf, n + 7, touch, &calls, NULL,
                                          NULL, 0), -1);
    n = 1u << 20;
    buf[3] = 0;
    buf[4] = 0x10;
    buf[5] = 0;
    buf[6] = 0;
    assert_int_equal(llmd_kv_batch_decode(buf, n + 7, touch, &calls, NULL,
                                          NULL, 0), 0);
    free(buf);

    /* payloads over 64 MiB are refused before being read */
    n = LLMD_KV_MAX_PAYLOAD + 1;
    buf = malloc(n);
    assert_non_null(buf);
    memset(buf, 0xc0, n);
    assert_int_equal(llmd_kv_batch_decode(buf, n, touch, &calls, NULL, NULL,
                                          0), -1);
    free(buf);
}


static void
test_deep_nesting(void **state)
{
    int             calls;
    size_t          n;
    unsigned char  *buf;

    n = 10000;
    buf = malloc(n + 1);
    assert_non_null(buf);
    memset(buf, 0x91, n);
    buf[n] = 0xc0;

    calls = 0;
    assert_int_equal(llmd_kv_batch_decode(buf, n + 1, touch, &calls, NULL,
                                          NULL, 0), -1);
    assert_int_equal(calls, 0);

    /* maps too */
    memset(buf, 0x81, n);
    buf[n] = 0xc0;
    assert_int_equal(llmd_kv_batch_decode(buf, n + 1, touch, &calls, NULL,
                                          NULL, 0), -1);
    free(buf);
}


/* xorshift64*: a fixed-seed generator, so a failure reproduces */
static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}


static void
test_fuzz(void **state)
{
    int             calls, i, j, k, ok;
    size_t          n, len;
    uint64_t        seed;
    unsigned char   ex[2][1024], buf[1024];
    const char     *hex[2] = { STORED_ARRAY, STORED_MAP };
    size_t          exlen[2];

    seed = 0x5eed5eed12345678ULL;
    exlen[0] = unhex(hex[0], ex[0], sizeof(ex[0]));
    exlen[1] = unhex(hex[1], ex[1], sizeof(ex[1]));
    ok = 0;

    /* random bytes */
    for (i = 0; i < 20000; i++) {
        len = rnd(&seed) % 96;
        for (n = 0; n < len; n++) {
            buf[n] = (unsigned char) rnd(&seed);
        }

        calls = 0;
        if (llmd_kv_batch_decode(buf, len, touch, &calls, NULL, NULL, 0)
            != 0)
        {
            assert_int_equal(calls, 0);
        }
    }

    /* mutated examples: 1-4 random bytes changed */
    for (i = 0; i < 20000; i++) {
        j = i & 1;
        memcpy(buf, ex[j], exlen[j]);

        for (k = 1 + rnd(&seed) % 4; k > 0; k--) {
            buf[rnd(&seed) % exlen[j]] = (unsigned char) rnd(&seed);
        }

        calls = 0;
        if (llmd_kv_batch_decode(buf, exlen[j], touch, &calls, NULL, NULL, 0)
            == 0)
        {
            ok++;
        } else {
            assert_int_equal(calls, 0);
        }
    }

    /* mutations hit many values that keep the structure valid */
    assert_true(ok > 0);
}


static void
test_topic(void **state)
{
    size_t       pl, ml;
    const char  *pod, *model, *t;

    t = "kv@10.0.0.1:8000@Qwen/Qwen3-0.6B";
    assert_int_equal(llmd_kv_topic_parse(t, strlen(t), &pod, &pl, &model,
                                         &ml), 0);
    assert_int_equal(pl, 13);
    assert_memory_equal(pod, "10.0.0.1:8000", 13);
    assert_int_equal(ml, 15);
    assert_memory_equal(model, "Qwen/Qwen3-0.6B", 15);

    t = "kv@10.0.0.2@m";
    assert_int_equal(llmd_kv_topic_parse(t, strlen(t), &pod, &pl, &model,
                                         &ml), 0);
    assert_int_equal(pl, 8);
    assert_int_equal(ml, 1);

    /* empty parts are still three parts */
    t = "kv@@";
    assert_int_equal(llmd_kv_topic_parse(t, strlen(t), &pod, &pl, &model,
                                         &ml), 0);
    assert_int_equal(pl, 0);
    assert_int_equal(ml, 0);

    t = "kv@pod@org@model";
    assert_int_equal(llmd_kv_topic_parse(t, strlen(t), &pod, &pl, &model,
                                         &ml), -1);
    t = "kv@pod";
    assert_int_equal(llmd_kv_topic_parse(t, strlen(t), &pod, &pl, &model,
                                         &ml), -1);
    t = "kx@pod@model";
    assert_int_equal(llmd_kv_topic_parse(t, strlen(t), &pod, &pl, &model,
                                         &ml), -1);
    t = "kvx@pod@model";
    assert_int_equal(llmd_kv_topic_parse(t, strlen(t), &pod, &pl, &model,
                                         &ml), -1);
    assert_int_equal(llmd_kv_topic_parse("", 0, &pod, &pl, &model, &ml), -1);

    /* the length, not a NUL, ends the topic */
    t = "kv@a@b@c";
    assert_int_equal(llmd_kv_topic_parse(t, 6, &pod, &pl, &model, &ml), 0);
    assert_int_equal(ml, 1);
}


static void
test_seq(void **state)
{
    uint64_t  seq;

    assert_int_equal(llmd_kv_seq_parse("\0\0\0\0\0\0\0\5", 8, &seq), 0);
    assert_true(seq == 5);
    assert_int_equal(llmd_kv_seq_parse("\xff\xff\xff\xff\xff\xff\xff\xff", 8,
                                       &seq), 0);
    assert_true(seq == UINT64_MAX);
    assert_int_equal(llmd_kv_seq_parse("\1\2\3\4\5\6\7\x08", 8, &seq), 0);
    assert_true(seq == 0x0102030405060708ULL);
    assert_int_equal(llmd_kv_seq_parse("\0\0\0\0\0\0\5", 7, &seq), -1);
    assert_int_equal(llmd_kv_seq_parse(NULL, 0, &seq), -1);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stored_array),
        cmocka_unit_test(test_stored_map),
        cmocka_unit_test(test_removed_and_cleared),
        cmocka_unit_test(test_batch_forms),
        cmocka_unit_test(test_generations_and_fields),
        cmocka_unit_test(test_hash_forms),
        cmocka_unit_test(test_skipped_events),
        cmocka_unit_test(test_malformed_batches),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_huge_lengths),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_topic),
        cmocka_unit_test(test_seq),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
