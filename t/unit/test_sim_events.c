/*
 * vllm-sim: block hashes against the spec's test vectors (vllm-interop.md
 * 6.1, 6.4), KV-event msgpack bytes against the example hex (2.6), and the
 * prefix cache's LRU eviction.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../sim/sim.h"


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
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
