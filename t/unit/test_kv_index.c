/*
 * Precise prefix index and llm-d xxh64 request keys: key vectors, events
 * to index (chains, unknown parents, removals, clears, tiers, block size),
 * longest-prefix scoring with tier weights, speculative entries, the region
 * bound with eviction and reattachment after a reload.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <xxhash.h>

#include "kv/llmd_kv_events.h"
#include "kv/llmd_kv_keys.h"
#include "kv/llmd_kv_index.h"

#define MODEL    "Qwen/Qwen3-0.6B"
#define BS       16
#define REGION   (1 << 20)


static uint64_t   root;
static uint32_t   toks[1024];


static int
setup(void **state)
{
    size_t  i;

    root = llmd_kv_root_key("42", 2, MODEL, strlen(MODEL));
    for (i = 0; i < 1024; i++) {
        toks[i] = (uint32_t) i + 1;
    }

    return 0;
}


static llmd_kv_index_t *
new_index(size_t size)
{
    void             *mem;
    llmd_kv_index_t  *idx;

    mem = malloc(size);
    assert_non_null(mem);
    idx = llmd_kv_index_create(mem, size);
    assert_non_null(idx);

    return idx;
}


static llmd_kv_event_t
stored(const uint64_t *hashes, size_t n, const uint64_t *parent,
    const uint32_t *tokens, size_t ntokens)
{
    llmd_kv_event_t  ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = LLMD_KV_BLOCK_STORED;
    ev.hashes = hashes;
    ev.nhashes = n;
    ev.has_parent = parent != NULL;
    ev.parent = parent ? *parent : 0;
    ev.tokens = tokens;
    ev.ntokens = ntokens;
    ev.block_size = BS;

    return ev;
}


static llmd_kv_event_t
removed(const uint64_t *hashes, size_t n, int cpu)
{
    llmd_kv_event_t  ev;

    memset(&ev, 0, sizeof(ev));
    ev.type = LLMD_KV_BLOCK_REMOVED;
    ev.hashes = hashes;
    ev.nhashes = n;
    ev.cpu = cpu;

    return ev;
}


/* The request keys of toks[0 .. nblocks * BS). */
static size_t
req_keys(uint64_t *keys, size_t nblocks)
{
    return llmd_kv_request_keys(root, root, toks, nblocks * BS, BS, NULL, 0,
                                keys, nblocks);
}


static void
put_le(unsigned char *p, uint64_t v, int n)
{
    int  i;

    for (i = 0; i < n; i++) {
        p[i] = (unsigned char) (v >> (8 * i));
    }
}


static void
test_keys(void **state)
{
    size_t         i, len;
    uint64_t       r, k[4];
    unsigned char  buf[256];

    /* docs/kv-events.md "Request keys": computed outside this project */
    r = llmd_kv_root_key("", 0, MODEL, strlen(MODEL));
    assert_true(r == 5676132858292909004ULL);
    assert_int_equal(llmd_kv_request_keys(r, r, toks, 32, 16, NULL, 0, k, 4),
                     2);
    assert_true(k[0] == 7494975675941292264ULL);
    assert_true(k[1] == 12750238712158718975ULL);

    r = llmd_kv_root_key("42", 2, MODEL, strlen(MODEL));
    assert_true(r == 14978290342925878229ULL);
    assert_int_equal(llmd_kv_request_keys(r, r, toks, 40, 16, NULL, 0, k, 4),
                     2);                          /* partial block dropped */
    assert_true(k[0] == 8629878884953383305ULL);
    assert_true(k[1] == 11729005447284726110ULL);

    /* the byte strings written out, hashed by libxxhash directly */
    put_le(buf, XXH64("42", 2, 0), 8);
    put_le(buf + 8, strlen(MODEL), 8);
    memcpy(buf + 16, MODEL, strlen(MODEL));
    assert_true(XXH64(buf, 16 + strlen(MODEL), 0) == r);

    /* salt on the first block only: LE64(len) || salt after the tokens */
    put_le(buf, r, 8);
    for (i = 0; i < 16; i++) {
        put_le(buf + 8 + 4 * i, toks[i], 4);
    }
    put_le(buf + 72, 6, 8);
    memcpy(buf + 80, "salt-A", 6);
    len = 86;
    assert_int_equal(llmd_kv_request_keys(r, r, toks, 32, 16, "salt-A", 6,
                                          k, 4), 2);
    assert_true(k[0] == XXH64(buf, len, 0));

    put_le(buf, k[0], 8);
    for (i = 0; i < 16; i++) {
        put_le(buf + 8 + 4 * i, toks[16 + i], 4);
    }
    assert_true(k[1] == XXH64(buf, 72, 0));

    /* large blocks take the streaming path; max bounds the output */
    assert_int_equal(llmd_kv_request_keys(r, r, toks, 1024, 512, NULL, 0, k,
                                          4), 2);
    put_le(buf, r, 8);
    {
        unsigned char  big[8 + 4 * 512];

        memcpy(big, buf, 8);
        for (i = 0; i < 512; i++) {
            put_le(big + 8 + 4 * i, toks[i], 4);
        }
        assert_true(k[0] == XXH64(big, sizeof(big), 0));
    }
    assert_int_equal(llmd_kv_request_keys(r, r, toks, 64, 16, NULL, 0, k, 3),
                     3);
    assert_int_equal(llmd_kv_request_keys(r, r, toks, 64, 0, NULL, 0, k, 3),
                     0);
}


static void
test_stored_match_chain(void **state)
{
    double                 match[LLMD_MAX_ENDPOINTS];
    uint64_t               h[4] = { 101, 102, 103, 104 }, keys[4], other[2];
    uint32_t               alt[32];
    llmd_kv_event_t        ev;
    llmd_kv_index_t       *idx;
    llmd_kv_apply_stats_t  st;
    size_t                 i;

    idx = new_index(REGION);
    memset(&st, 0, sizeof(st));

    ev = stored(h, 2, NULL, toks, 32);
    llmd_kv_index_apply(idx, 3, root, BS, &ev, &st);
    assert_int_equal(st.stored, 2);

    req_keys(keys, 4);
    llmd_kv_index_match(idx, keys, 4, 0, match);
    assert_true(match[3] == 2.0);
    assert_true(match[0] == 0.0);

    /* the next event chains from its parent's request key */
    ev = stored(&h[2], 2, &h[1], toks + 32, 32);
    llmd_kv_index_apply(idx, 3, root, BS, &ev, &st);
    assert_int_equal(st.stored, 4);
    llmd_kv_index_match(idx, keys, 4, 0, match);
    assert_true(match[3] == 4.0);

    /* another prompt shares block 0 only */
    memcpy(alt, toks, sizeof(alt));
    alt[20] = 9999;
    assert_int_equal(llmd_kv_request_keys(root, root, alt, 32, BS, NULL, 0,
                                          other, 2), 2);
    llmd_kv_index_match(idx, other, 2, 0, match);
    assert_true(match[3] == 1.0);

    /* another model (root) never matches */
    other[0] = llmd_kv_root_key("42", 2, "other", 5);
    llmd_kv_request_keys(other[0], other[0], toks, 32, BS, NULL, 0, other, 2);
    llmd_kv_index_match(idx, other, 2, 0, match);
    assert_true(match[3] == 0.0);

    /* a run stops at the first key an endpoint lacks: ep 5 holds 0,1,3 */
    ev = stored(h, 2, NULL, toks, 32);
    llmd_kv_index_apply(idx, 5, root, BS, &ev, &st);
    ev = stored(&h[3], 1, &h[2], toks + 48, 16);
    llmd_kv_index_apply(idx, 5, root, BS, &ev, &st);   /* parent unknown */
    assert_int_equal(st.dropped_unknown_parent, 1);
    llmd_kv_index_match(idx, keys, 4, 0, match);
    assert_true(match[5] == 2.0);
    assert_true(match[3] == 4.0);

    /* an endpoint without key 0 scores nothing */
    llmd_kv_index_speculate(idx, 7, keys + 1, 3, 0, 1000);
    llmd_kv_index_match(idx, keys, 4, 0, match);
    assert_true(match[7] == 0.0);

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        if (i != 3 && i != 5) {
            assert_true(match[i] == 0.0);
        }
    }

    free(idx);
}


static void
test_unknown_parent_and_drops(void **state)
{
    double                 match[LLMD_MAX_ENDPOINTS];
    uint64_t               h[2] = { 11, 12 }, p = 999, keys[2];
    llmd_kv_event_t        ev;
    llmd_kv_index_t       *idx;
    llmd_kv_apply_stats_t  st;
    llmd_kv_index_stats_t  is;

    idx = new_index(REGION);
    memset(&st, 0, sizeof(st));
    req_keys(keys, 2);

    /* unknown parent: the whole event is dropped */
    ev = stored(h, 2, &p, toks, 32);
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    assert_int_equal(st.dropped_unknown_parent, 2);
    assert_int_equal(st.stored, 0);

    /* the parent is per endpoint: ep 1's blocks do not help ep 0 */
    ev = stored(&p, 1, NULL, toks, 16);
    llmd_kv_index_apply(idx, 1, root, BS, &ev, &st);
    ev = stored(h, 1, &p, toks + 16, 16);
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    assert_int_equal(st.dropped_unknown_parent, 3);

    /* block size differs from the configured one */
    ev = stored(h, 2, NULL, toks, 32);
    ev.block_size = 32;
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    assert_int_equal(st.dropped_block_size, 2);

    /* token count does not match the hashes */
    ev = stored(h, 2, NULL, toks, 31);
    ev.block_size = 0;
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    assert_int_equal(st.dropped_other, 2);

    /* multimodal extra keys cannot be keyed from tokens */
    ev = stored(h, 2, NULL, toks, 32);
    ev.extra_unsupported = 1;
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    assert_int_equal(st.dropped_other, 4);

    /* tier update for an unknown engine hash */
    ev = stored(h, 2, NULL, NULL, 0);
    ev.cpu = 1;
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    assert_int_equal(st.dropped_other, 6);

    /* endpoint out of range */
    ev = stored(h, 2, NULL, toks, 32);
    llmd_kv_index_apply(idx, LLMD_MAX_ENDPOINTS, root, BS, &ev, &st);
    assert_int_equal(st.dropped_other, 8);

    llmd_kv_index_stats(idx, &is);
    assert_int_equal(is.entries, 1);
    assert_int_equal(is.per_endpoint[0], 0);
    assert_int_equal(is.per_endpoint[1], 1);
    assert_int_equal(st.stored, 1);

    llmd_kv_index_match(idx, keys, 2, 0, match);
    assert_true(match[0] == 0.0);
    assert_true(match[1] == 1.0);

    /* block size absent (0) is accepted when the tokens fit */
    ev = stored(h, 2, NULL, toks, 32);
    ev.block_size = 0;
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    llmd_kv_index_match(idx, keys, 2, 0, match);
    assert_true(match[0] == 2.0);

    free(idx);
}


static void
test_removed_cleared(void **state)
{
    double                 match[LLMD_MAX_ENDPOINTS];
    uint64_t               h[3] = { 21, 22, 23 }, keys[3];
    llmd_kv_event_t        ev;
    llmd_kv_index_t       *idx;
    llmd_kv_apply_stats_t  st;
    llmd_kv_index_stats_t  is;

    idx = new_index(REGION);
    memset(&st, 0, sizeof(st));
    req_keys(keys, 3);

    ev = stored(h, 3, NULL, toks, 48);
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    llmd_kv_index_apply(idx, 1, root, BS, &ev, &st);

    /* removing the middle block ends the run there */
    ev = removed(&h[1], 1, 0);
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    assert_int_equal(st.removed, 1);
    llmd_kv_index_match(idx, keys, 3, 0, match);
    assert_true(match[0] == 1.0);
    assert_true(match[1] == 3.0);

    /* removing what is not there changes nothing */
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    assert_int_equal(st.removed, 1);

    /* duplicate stores need as many removals */
    ev = stored(h, 1, NULL, toks, 16);
    llmd_kv_index_apply(idx, 1, root, BS, &ev, &st);
    ev = removed(h, 1, 0);
    llmd_kv_index_apply(idx, 1, root, BS, &ev, &st);
    llmd_kv_index_match(idx, keys, 3, 0, match);
    assert_true(match[1] == 3.0);
    llmd_kv_index_apply(idx, 1, root, BS, &ev, &st);
    llmd_kv_index_match(idx, keys, 3, 0, match);
    assert_true(match[1] == 0.0);

    /* AllBlocksCleared empties one endpoint only */
    memset(&ev, 0, sizeof(ev));
    ev.type = LLMD_KV_ALL_CLEARED;
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    assert_int_equal(st.cleared, 2);

    llmd_kv_index_stats(idx, &is);
    assert_int_equal(is.per_endpoint[0], 0);
    assert_int_equal(is.per_endpoint[1], 2);
    assert_int_equal(is.entries, 2);

    llmd_kv_index_clear_endpoint(idx, 1);
    llmd_kv_index_stats(idx, &is);
    assert_int_equal(is.entries, 0);

    /* a parent removed from the index can no longer be chained from */
    ev = stored(h, 1, NULL, toks, 16);
    llmd_kv_index_apply(idx, 2, root, BS, &ev, &st);
    ev = removed(h, 1, 0);
    llmd_kv_index_apply(idx, 2, root, BS, &ev, &st);
    ev = stored(&h[1], 1, &h[0], toks + 16, 16);
    llmd_kv_index_apply(idx, 2, root, BS, &ev, &st);
    assert_int_equal(st.dropped_unknown_parent, 1);

    free(idx);
}


static void
test_tiers(void **state)
{
    double                 match[LLMD_MAX_ENDPOINTS];
    uint64_t               h[2] = { 31, 32 }, keys[2];
    llmd_kv_event_t        ev;
    llmd_kv_index_t       *idx;
    llmd_kv_apply_stats_t  st;
    llmd_kv_index_stats_t  is;

    idx = new_index(REGION);
    memset(&st, 0, sizeof(st));
    req_keys(keys, 2);

    /* cpu blocks weigh 0.8 */
    ev = stored(h, 2, NULL, toks, 32);
    ev.cpu = 1;
    llmd_kv_index_apply(idx, 1, root, BS, &ev, &st);
    llmd_kv_index_match(idx, keys, 2, 0, match);
    assert_float_equal(match[1], 1.6, 1e-6);

    /* gpu, then an offload (zero tokens, known hashes) to cpu */
    ev = stored(h, 2, NULL, toks, 32);
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    ev = stored(h, 2, NULL, NULL, 0);
    ev.cpu = 1;
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    assert_int_equal(st.stored, 6);
    llmd_kv_index_stats(idx, &is);
    assert_int_equal(is.per_endpoint[0], 4);

    /* both tiers: the best weight counts once */
    llmd_kv_index_match(idx, keys, 2, 0, match);
    assert_float_equal(match[0], 2.0, 1e-6);

    /* gpu copy of block 1 evicted: 1.0 + 0.8 */
    ev = removed(&h[1], 1, 0);
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    llmd_kv_index_match(idx, keys, 2, 0, match);
    assert_float_equal(match[0], 1.8, 1e-6);

    /* cpu removal leaves gpu block 0 only */
    ev = removed(h, 2, 1);
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    llmd_kv_index_match(idx, keys, 2, 0, match);
    assert_float_equal(match[0], 1.0, 1e-6);
    assert_float_equal(match[1], 1.6, 1e-6);

    free(idx);
}


static void
test_speculative(void **state)
{
    double                 match[LLMD_MAX_ENDPOINTS];
    uint64_t               h[3] = { 41, 42, 43 }, keys[3];
    llmd_kv_event_t        ev;
    llmd_kv_index_t       *idx;
    llmd_kv_apply_stats_t  st;
    llmd_kv_index_stats_t  is;

    idx = new_index(REGION);
    memset(&st, 0, sizeof(st));
    req_keys(keys, 3);

    llmd_kv_index_speculate(idx, 2, keys, 3, 1000, 2000);
    llmd_kv_index_match(idx, keys, 3, 1000, match);
    assert_true(match[2] == 3.0);
    llmd_kv_index_match(idx, keys, 3, 2999, match);
    assert_true(match[2] == 3.0);
    llmd_kv_index_match(idx, keys, 3, 3000, match);
    assert_true(match[2] == 0.0);

    /* speculating again refreshes, it does not duplicate */
    llmd_kv_index_speculate(idx, 2, keys, 3, 5000, 2000);
    llmd_kv_index_stats(idx, &is);
    assert_int_equal(is.per_endpoint[2], 3);
    llmd_kv_index_match(idx, keys, 3, 6000, match);
    assert_true(match[2] == 3.0);

    /* real events replace the speculation; they do not expire */
    ev = stored(h, 2, NULL, toks, 32);
    llmd_kv_index_apply(idx, 2, root, BS, &ev, &st);
    llmd_kv_index_stats(idx, &is);
    assert_int_equal(is.per_endpoint[2], 3);
    llmd_kv_index_match(idx, keys, 3, 100000, match);
    assert_true(match[2] == 2.0);

    /* nothing speculative is added over real entries */
    llmd_kv_index_speculate(idx, 2, keys, 2, 100000, 2000);
    llmd_kv_index_stats(idx, &is);
    assert_int_equal(is.per_endpoint[2], 3);

    /* BlockRemoved does not touch speculative entries (no engine hash) */
    llmd_kv_index_speculate(idx, 4, keys, 1, 100000, 2000);
    ev = removed(h, 1, 0);
    llmd_kv_index_apply(idx, 4, root, BS, &ev, &st);
    llmd_kv_index_match(idx, keys, 3, 100001, match);
    assert_true(match[4] == 1.0);

    free(idx);
}


static void
test_salt_and_lora(void **state)
{
    double                 match[LLMD_MAX_ENDPOINTS];
    uint64_t               h[2] = { 51, 52 }, keys[2], lroot;
    llmd_kv_event_t        ev;
    llmd_kv_index_t       *idx;
    llmd_kv_apply_stats_t  st;

    idx = new_index(REGION);
    memset(&st, 0, sizeof(st));

    ev = stored(h, 2, NULL, toks, 32);
    ev.salt = "salt-A";
    ev.salt_len = 6;
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);

    req_keys(keys, 2);
    llmd_kv_index_match(idx, keys, 2, 0, match);
    assert_true(match[0] == 0.0);

    llmd_kv_request_keys(root, root, toks, 32, BS, "salt-A", 6, keys, 2);
    llmd_kv_index_match(idx, keys, 2, 0, match);
    assert_true(match[0] == 2.0);

    /* a LoRA block is keyed under the adapter's root */
    lroot = llmd_kv_root_key("42", 2, "my-lora", 7);
    ev = stored(h, 2, NULL, toks, 32);
    llmd_kv_index_apply(idx, 1, lroot, BS, &ev, &st);
    llmd_kv_request_keys(lroot, lroot, toks, 32, BS, NULL, 0, keys, 2);
    llmd_kv_index_match(idx, keys, 2, 0, match);
    assert_true(match[1] == 2.0);
    assert_true(match[0] == 0.0);

    free(idx);
}


static void
test_bound_and_eviction(void **state)
{
    double                 match[LLMD_MAX_ENDPOINTS];
    size_t                 size, i;
    uint64_t               h, keys[4], parent;
    llmd_kv_event_t        ev;
    llmd_kv_index_t       *idx;
    llmd_kv_apply_stats_t  st;
    llmd_kv_index_stats_t  is;

    assert_null(llmd_kv_index_create(&h, sizeof(h)));
    size = llmd_kv_index_min_size() + 100 * llmd_kv_index_entry_bytes();
    idx = new_index(size);
    memset(&st, 0, sizeof(st));

    llmd_kv_index_stats(idx, &is);
    assert_true(is.capacity >= 100);
    assert_true(is.capacity * llmd_kv_index_entry_bytes() <= size);

    /* ep 1 holds a 2-block prompt */
    ev = stored((uint64_t[]) { 1, 2 }, 2, NULL, toks, 32);
    llmd_kv_index_apply(idx, 1, root, BS, &ev, &st);

    /* ep 0 streams far more blocks than fit, one chain */
    parent = 0;
    for (i = 0; i < 10 * is.capacity; i++) {
        h = 1000 + i;
        ev = stored(&h, 1, i ? &parent : NULL, toks + (i % 60) * BS, BS);
        llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
        parent = h;
    }

    llmd_kv_index_stats(idx, &is);
    assert_int_equal(is.entries, is.capacity);
    assert_true(is.evictions >= 9 * is.capacity - 2);
    assert_int_equal(is.per_endpoint[0] + is.per_endpoint[1], is.entries);
    assert_int_equal(llmd_kv_index_check(idx), 0);

    /* the busy endpoint paid for the space, not the small one */
    assert_int_equal(is.per_endpoint[1], 2);
    req_keys(keys, 2);
    llmd_kv_index_match(idx, keys, 2, 0, match);
    assert_true(match[1] == 2.0);

    /* the newest blocks of ep 0 are still chained */
    h = 5000000;
    ev = stored(&h, 1, &parent, toks, BS);
    llmd_kv_index_apply(idx, 0, root, BS, &ev, &st);
    assert_int_equal(st.dropped_unknown_parent, 0);

    /* all gone, all free again */
    llmd_kv_index_clear_endpoint(idx, 0);
    llmd_kv_index_clear_endpoint(idx, 1);
    llmd_kv_index_stats(idx, &is);
    assert_int_equal(is.entries, 0);
    for (i = 0; i < is.capacity; i++) {
        h = 7000000 + i;
        ev = stored(&h, 1, NULL, toks + (i % 60) * BS, BS);
        llmd_kv_index_apply(idx, 2, root, BS, &ev, &st);
    }
    llmd_kv_index_stats(idx, &is);
    assert_int_equal(is.entries, is.capacity);
    assert_int_equal(is.per_endpoint[2], is.capacity);
    assert_int_equal(llmd_kv_index_check(idx), 0);

    free(idx);
}


static void
test_attach(void **state)
{
    double                 match[LLMD_MAX_ENDPOINTS];
    void                  *copy;
    uint64_t               h[2] = { 61, 62 }, keys[2];
    llmd_kv_event_t        ev;
    llmd_kv_index_t       *idx, *again;
    llmd_kv_apply_stats_t  st;

    idx = new_index(REGION);
    memset(&st, 0, sizeof(st));
    ev = stored(h, 2, NULL, toks, 32);
    llmd_kv_index_apply(idx, 6, root, BS, &ev, &st);

    /* "reload": the same bytes mapped at another address */
    copy = malloc(REGION);
    assert_non_null(copy);
    memcpy(copy, idx, REGION);
    free(idx);

    assert_null(llmd_kv_index_attach(copy, REGION / 2));
    again = llmd_kv_index_attach(copy, REGION);
    assert_non_null(again);

    req_keys(keys, 2);
    llmd_kv_index_match(again, keys, 2, 0, match);
    assert_true(match[6] == 2.0);

    /* and it keeps working: chain from a block stored before the reload */
    ev = stored((uint64_t[]) { 63 }, 1, &h[1], toks + 32, 16);
    llmd_kv_index_apply(again, 6, root, BS, &ev, &st);
    assert_int_equal(st.stored, 3);

    /* a region that holds something else */
    memset(copy, 0x5a, REGION);
    assert_null(llmd_kv_index_attach(copy, REGION));
    assert_null(llmd_kv_index_attach(NULL, REGION));
    free(copy);
}


/* xorshift64*: fixed seed */
static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}


static void
test_random_ops(void **state)
{
    double                 match[LLMD_MAX_ENDPOINTS];
    size_t                 i, j, n;
    uint64_t               seed, h[4], p, keys[8], sum;
    uint32_t               ep;
    llmd_kv_event_t        ev;
    llmd_kv_index_t       *idx;
    llmd_kv_apply_stats_t  st;
    llmd_kv_index_stats_t  is;

    idx = new_index(llmd_kv_index_min_size()
                    + 500 * llmd_kv_index_entry_bytes());
    memset(&st, 0, sizeof(st));
    seed = 42;
    req_keys(keys, 8);

    for (i = 0; i < 50000; i++) {
        ep = rnd(&seed) % 8;
        n = 1 + rnd(&seed) % 4;
        for (j = 0; j < n; j++) {
            h[j] = rnd(&seed) % 600;
        }
        p = rnd(&seed) % 600;

        switch (rnd(&seed) % 8) {
        case 0: case 1: case 2:
            ev = stored(h, n, rnd(&seed) % 2 ? &p : NULL,
                        toks + (rnd(&seed) % 8) * BS, n * BS);
            ev.cpu = rnd(&seed) % 4 == 0;
            break;
        case 3:
            ev = stored(h, n, NULL, NULL, 0);
            ev.cpu = 1;
            break;
        case 4: case 5:
            ev = removed(h, n, rnd(&seed) % 4 == 0);
            break;
        case 6:
            llmd_kv_index_speculate(idx, ep, keys, rnd(&seed) % 8, i,
                                    100);
            continue;
        default:
            memset(&ev, 0, sizeof(ev));
            ev.type = rnd(&seed) % 50 ? LLMD_KV_BLOCK_REMOVED
                                      : LLMD_KV_ALL_CLEARED;
        }

        llmd_kv_index_apply(idx, ep, root, BS, &ev, &st);
        llmd_kv_index_match(idx, keys, 8, i, match);

        if (i % 1000 == 0) {
            llmd_kv_index_stats(idx, &is);
            sum = 0;
            for (j = 0; j < LLMD_MAX_ENDPOINTS; j++) {
                sum += is.per_endpoint[j];
            }
            assert_int_equal(sum, is.entries);
            assert_true(is.entries <= is.capacity);
            assert_int_equal(llmd_kv_index_check(idx), 0);
            for (j = 0; j < LLMD_MAX_ENDPOINTS; j++) {
                assert_true(match[j] >= 0.0 && match[j] <= 8.0);
            }
        }
    }

    for (ep = 0; ep < 8; ep++) {
        llmd_kv_index_clear_endpoint(idx, ep);
    }
    llmd_kv_index_stats(idx, &is);
    assert_int_equal(is.entries, 0);
    assert_int_equal(llmd_kv_index_check(idx), 0);

    free(idx);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_stored_match_chain),
        cmocka_unit_test(test_unknown_parent_and_drops),
        cmocka_unit_test(test_removed_cleared),
        cmocka_unit_test(test_tiers),
        cmocka_unit_test(test_speculative),
        cmocka_unit_test(test_salt_and_lora),
        cmocka_unit_test(test_bound_and_eviction),
        cmocka_unit_test(test_attach),
        cmocka_unit_test(test_random_ops),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
