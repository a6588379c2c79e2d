/*
 * Approximate prefix index: longest-prefix matching, per-endpoint LRU,
 * bounded region with eviction, reattachment after a reload.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/llmd_prefix_hash.h"
#include "core/llmd_prefix_index.h"


static uint64_t *
chain(uint64_t seed, size_t n)
{
    size_t     i;
    uint64_t  *h;

    h = malloc(n * sizeof(uint64_t));
    assert_non_null(h);

    for (i = 0; i < n; i++) {
        h[i] = seed * 1000003 + i * 7919 + 1;
    }

    return h;
}


static void
test_longest_prefix(void **state)
{
    uint32_t              match[LLMD_MAX_ENDPOINTS];
    uint64_t              p2[4], other[4];
    void                 *mem;
    const char           *m = "meta-llama/Llama-3.1-8B-Instruct";
    unsigned char         in[260];
    llmd_prefix_index_t  *idx;

    mem = malloc(1 << 20);
    idx = llmd_prefix_index_create(mem, 1 << 20);
    assert_non_null(idx);

    /* the spec's scoring check: P2 served by pod A (0) */
    memcpy(in, "0123456789", 10);
    for (int i = 1; i < 26; i++) {
        memcpy(in + i * 10, in, 10);
    }

    assert_int_equal(llmd_prefix_hashes(m, strlen(m), NULL, 0, in, 260, 64,
                                        256, p2), 4);
    assert_int_equal(llmd_prefix_index_holds(idx, 0), 0);
    llmd_prefix_index_add(idx, 0, p2, 4, 31250);
    /* the same blocks again are no new entries */
    llmd_prefix_index_add(idx, 0, p2, 4, 31250);
    assert_int_equal(llmd_prefix_index_holds(idx, 0), 4);
    assert_int_equal(llmd_prefix_index_holds(idx, 1), 0);
    assert_int_equal(llmd_prefix_index_holds(idx, LLMD_MAX_ENDPOINTS), 0);

    llmd_prefix_index_match(idx, p2, 4, match);
    assert_int_equal(match[0], 4);
    assert_int_equal(match[1], 0);

    /* same first 128 bytes, then different: A matches 2 of 4 */
    memset(in + 128, 'x', 132);
    assert_int_equal(llmd_prefix_hashes(m, strlen(m), NULL, 0, in, 260, 64,
                                        256, other), 4);
    llmd_prefix_index_match(idx, other, 4, match);
    assert_int_equal(match[0], 2);

    /* a second endpoint holding the whole prompt */
    llmd_prefix_index_add(idx, 7, p2, 4, 31250);
    llmd_prefix_index_match(idx, p2, 4, match);
    assert_int_equal(match[0], 4);
    assert_int_equal(match[7], 4);

    /* a shorter prefix of the same chain on endpoint 3 */
    llmd_prefix_index_add(idx, 3, p2, 2, 31250);
    llmd_prefix_index_match(idx, p2, 4, match);
    assert_int_equal(match[3], 2);
    assert_int_equal(match[0], 4);

    llmd_prefix_index_clear_endpoint(idx, 0);
    llmd_prefix_index_clear_endpoint(idx, 7);
    llmd_prefix_index_match(idx, p2, 4, match);
    assert_int_equal(match[3], 2);
    assert_int_equal(match[0], 0);
    assert_int_equal(llmd_prefix_index_holds(idx, 0), 0);
    assert_int_equal(llmd_prefix_index_holds(idx, 7), 0);
    assert_int_equal(llmd_prefix_index_holds(idx, 3), 2);

    free(mem);
}


static void
test_lru_capacity(void **state)
{
    uint32_t                    match[LLMD_MAX_ENDPOINTS];
    uint64_t                   *a, *b;
    void                       *mem;
    llmd_prefix_index_t        *idx;
    llmd_prefix_index_stats_t   st;

    mem = malloc(1 << 20);
    idx = llmd_prefix_index_create(mem, 1 << 20);
    a = chain(1, 8);
    b = chain(2, 8);

    llmd_prefix_index_add(idx, 1, a, 8, 10);
    llmd_prefix_index_add(idx, 1, b, 8, 10);

    llmd_prefix_index_stats(idx, &st);
    assert_int_equal(st.per_endpoint[1], 10);
    assert_int_equal(llmd_prefix_index_holds(idx, 1), 10);
    assert_int_equal(st.entries, 10);
    assert_int_equal(st.evictions, 6);

    /* b is newest and complete; a lost its tail, never its head */
    llmd_prefix_index_match(idx, b, 8, match);
    assert_int_equal(match[1], 8);
    llmd_prefix_index_match(idx, a, 8, match);
    assert_int_equal(match[1], 2);

    /* re-adding refreshes instead of duplicating */
    llmd_prefix_index_add(idx, 1, b, 8, 10);
    llmd_prefix_index_stats(idx, &st);
    assert_int_equal(st.entries, 10);

    free(a);
    free(b);
    free(mem);
}


/*
 * One insert that evicts more entries than the insert prefetches ahead
 * (256), in a region small enough that buckets hold chains: the oldest go,
 * in LRU order, and another endpoint's entries of the same hashes (same
 * buckets) stay found.
 */
static void
test_evict_many(void **state)
{
    size_t                      size;
    uint32_t                    match[LLMD_MAX_ENDPOINTS];
    uint64_t                   *a, *b, *c;
    void                       *mem;
    llmd_prefix_index_t        *idx;
    llmd_prefix_index_stats_t   st;

    size = llmd_prefix_index_min_size()
           + 2000 * llmd_prefix_index_entry_bytes();
    mem = malloc(size);
    idx = llmd_prefix_index_create(mem, size);
    assert_non_null(idx);

    a = chain(11, 600);
    b = chain(12, 300);
    c = chain(13, 50);

    llmd_prefix_index_add(idx, 1, a, 600, 1000);
    llmd_prefix_index_add(idx, 0, a, 600, 1000);
    llmd_prefix_index_add(idx, 0, b, 300, 1000);

    llmd_prefix_index_stats(idx, &st);
    assert_int_equal(st.per_endpoint[0], 900);
    assert_int_equal(st.evictions, 0);

    /* 950 held, 100 kept: the 850 oldest go (all of a, b's tail) */
    llmd_prefix_index_add(idx, 0, c, 50, 100);

    llmd_prefix_index_stats(idx, &st);
    assert_int_equal(st.per_endpoint[0], 100);
    assert_int_equal(st.per_endpoint[1], 600);
    assert_int_equal(st.entries, 700);
    assert_int_equal(st.evictions, 850);

    llmd_prefix_index_match(idx, c, 50, match);
    assert_int_equal(match[0], 50);
    llmd_prefix_index_match(idx, b, 300, match);
    assert_int_equal(match[0], 50);
    llmd_prefix_index_match(idx, a, 600, match);
    assert_int_equal(match[0], 0);
    assert_int_equal(match[1], 600);

    /* and again, the other endpoint: all of a goes but its head */
    llmd_prefix_index_add(idx, 1, c, 50, 60);
    llmd_prefix_index_match(idx, a, 600, match);
    assert_int_equal(match[1], 10);
    llmd_prefix_index_match(idx, c, 50, match);
    assert_int_equal(match[0], 50);
    assert_int_equal(match[1], 50);

    llmd_prefix_index_stats(idx, &st);
    assert_int_equal(st.entries, 160);
    assert_int_equal(st.evictions, 850 + 590);

    free(a);
    free(b);
    free(c);
    free(mem);
}


/* A full region evicts the oldest entries of the largest endpoint. */
static void
test_region_bound_and_reattach(void **state)
{
    size_t                      i, size;
    uint32_t                    match[LLMD_MAX_ENDPOINTS];
    uint64_t                   *h;
    void                       *mem;
    llmd_prefix_index_t        *idx;
    llmd_prefix_index_stats_t   st;

    size = llmd_prefix_index_min_size() + 100 * 32;
    mem = malloc(size);
    idx = llmd_prefix_index_create(mem, size);
    assert_non_null(idx);
    llmd_prefix_index_stats(idx, &st);
    assert_true(st.capacity >= 16 && st.capacity < 200);

    for (i = 0; i < 50; i++) {
        h = chain(100 + i, 10);
        llmd_prefix_index_add(idx, i % 2, h, 10, 1000000);
        free(h);

        llmd_prefix_index_stats(idx, &st);
        assert_true(st.entries <= st.capacity);
    }

    assert_true(st.evictions > 0);
    /* neither endpoint starves the other */
    assert_true(st.per_endpoint[0] + 12 >= st.per_endpoint[1]);
    assert_true(st.per_endpoint[1] + 12 >= st.per_endpoint[0]);

    /* the newest prompt is still fully known */
    h = chain(149, 10);
    llmd_prefix_index_match(idx, h, 10, match);
    assert_int_equal(match[1], 10);

    /* a reload maps the same region again: state survives */
    assert_ptr_equal(llmd_prefix_index_attach(mem, size), idx);
    llmd_prefix_index_match(llmd_prefix_index_attach(mem, size), h, 10,
                            match);
    assert_int_equal(match[1], 10);
    assert_null(llmd_prefix_index_attach(mem, size - 8));
    free(h);

    memset(mem, 0, 64);
    assert_null(llmd_prefix_index_attach(mem, size));
    assert_null(llmd_prefix_index_create(mem, 10));

    free(mem);
}


/* Many endpoints, many prompts: the index stays consistent. */
static void
test_churn(void **state)
{
    size_t                      i, total;
    uint64_t                   *h;
    void                       *mem;
    uint32_t                    match[LLMD_MAX_ENDPOINTS];
    llmd_prefix_index_t        *idx;
    llmd_prefix_index_stats_t   st;

    mem = malloc(256 * 1024);
    idx = llmd_prefix_index_create(mem, 256 * 1024);

    for (i = 0; i < 5000; i++) {
        h = chain(i % 700, 1 + i % 40);
        llmd_prefix_index_match(idx, h, 1 + i % 40, match);
        llmd_prefix_index_add(idx, (i * 31) % LLMD_MAX_ENDPOINTS, h,
                              1 + i % 40, 300);
        free(h);
    }

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i += 3) {
        llmd_prefix_index_clear_endpoint(idx, i);
    }

    llmd_prefix_index_stats(idx, &st);
    total = 0;
    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        total += st.per_endpoint[i];
        assert_true(st.per_endpoint[i] <= 300);
        if (i % 3 == 0) {
            assert_int_equal(st.per_endpoint[i], 0);
        }
    }

    assert_int_equal(total, st.entries);
    assert_true(st.entries <= st.capacity);

    free(mem);
}


/*
 * A prompt sent again to the endpoint holding it moves its blocks in front
 * of the endpoint's LRU in their order (block 0 newest), as inserting them
 * one by one, last first, does; a prompt that shares only a head has its
 * new blocks added.  Seen through what later evictions take.
 */
static void
test_readd_order(void **state)
{
    size_t                      i;
    uint32_t                    match[LLMD_MAX_ENDPOINTS];
    uint64_t                   *a, *b, *c, *d, *x;
    void                       *mem;
    llmd_prefix_index_t        *idx;
    llmd_prefix_index_stats_t   st;

    mem = malloc(1 << 20);
    idx = llmd_prefix_index_create(mem, 1 << 20);
    a = chain(21, 10);
    b = chain(22, 10);
    c = chain(23, 10);
    d = chain(24, 5);

    /* LRU of endpoint 2, newest first: c, b, a; each prompt again moves
       its run in front: c (already there), a, b, c, a, c */
    llmd_prefix_index_add(idx, 2, a, 10, 30);
    llmd_prefix_index_add(idx, 2, b, 10, 30);
    llmd_prefix_index_add(idx, 2, c, 10, 30);
    llmd_prefix_index_add(idx, 2, c, 10, 30);
    llmd_prefix_index_add(idx, 2, a, 10, 30);
    llmd_prefix_index_add(idx, 2, b, 10, 30);
    llmd_prefix_index_add(idx, 2, c, 10, 30);
    llmd_prefix_index_add(idx, 2, a, 10, 30);
    llmd_prefix_index_add(idx, 2, c, 10, 30);

    /* now c, a, b: five more blocks evict the oldest five, b's tail */
    llmd_prefix_index_add(idx, 2, d, 5, 30);

    llmd_prefix_index_match(idx, a, 10, match);
    assert_int_equal(match[2], 10);
    llmd_prefix_index_match(idx, b, 10, match);
    assert_int_equal(match[2], 5);
    llmd_prefix_index_match(idx, c, 10, match);
    assert_int_equal(match[2], 10);

    /* a's head and a new tail: the tail is added (a's own follows a's
       head in the LRU, not the new blocks) */
    x = chain(25, 10);
    for (i = 0; i < 5; i++) {
        x[i] = a[i];
    }

    llmd_prefix_index_add(idx, 2, x, 10, 100);
    llmd_prefix_index_match(idx, x, 10, match);
    assert_int_equal(match[2], 10);

    llmd_prefix_index_stats(idx, &st);
    assert_int_equal(st.entries, 30 + 5);
    assert_int_equal(llmd_prefix_index_holds(idx, 2), 35);

    free(a);
    free(b);
    free(c);
    free(d);
    free(x);
    free(mem);
}


/* A region for two indexes to be compared byte for byte: zeroed, so the
   entries never used are equal too. */
static llmd_prefix_index_t *
held_index(size_t size)
{
    void  *mem;

    mem = calloc(1, size);
    assert_non_null(mem);

    return llmd_prefix_index_create(mem, size);
}


/*
 * The record after the pick with what the lookup saw
 * (llmd_prefix_index_add_held) against the record without it, on two
 * indexes given the same operations: 12 prompts sharing heads, 4
 * endpoints, LRUs of 60 in a region of ~150 entries (both kinds of
 * eviction), the pick mostly the endpoint holding the prompt; and between
 * a lookup and its record, one time in three, another worker's change (a
 * record of another prompt, of the same prompt for another endpoint, or a
 * cleared endpoint).  After every step the two regions are the same bytes
 * (matches, LRU orders, evictions, statistics), the lookup's view is taken
 * for most re-sent prompts and never once the index changed in between.
 */
static void
test_held_same_as_add(void **state)
{
    size_t                i, k, n[12], size;
    uint32_t              ep, x, best, rng, m1[LLMD_MAX_ENDPOINTS],
                          m2[LLMD_MAX_ENDPOINTS];
    uint64_t             *h[12];
    unsigned              taken, changed, changed_taken;
    llmd_prefix_index_t  *ref, *idx;
    llmd_prefix_held_t    held;

    size = llmd_prefix_index_min_size()
           + 150 * llmd_prefix_index_entry_bytes();
    ref = held_index(size);
    idx = held_index(size);
    assert_non_null(ref);
    assert_non_null(idx);

    for (k = 0; k < 12; k++) {
        n[k] = 1 + (k * 7) % 40;
        h[k] = chain(300 + k, n[k]);
        /* heads shared with prompt 0 */
        for (i = 0; i < k % 4 && i < n[k] && i < n[0]; i++) {
            h[k][i] = h[0][i];
        }
    }

    rng = 1;
    taken = changed = changed_taken = 0;

    for (i = 0; i < 20000; i++) {
        rng = rng * 1103515245 + 12345;
        k = (rng >> 16) % 12;

        llmd_prefix_index_match(ref, h[k], n[k], m1);
        llmd_prefix_index_match_held(idx, h[k], n[k], m2, &held);
        assert_memory_equal(m1, m2, sizeof(m1));

        /* the pick: the endpoint holding most, else any */
        best = (rng >> 8) % 4;
        for (ep = 0; ep < 4; ep++) {
            if (m1[ep] > m1[best]) {
                best = ep;
            }
        }

        rng = rng * 1103515245 + 12345;
        if ((rng >> 16) % 8 == 0) {
            best = (rng >> 4) % 4;
        }

        /* another worker, between the lookup and the record */
        rng = rng * 1103515245 + 12345;
        x = (rng >> 16) % 30;

        if (x < 10) {
            changed++;

            if (x == 0) {
                llmd_prefix_index_clear_endpoint(ref, best);
                llmd_prefix_index_clear_endpoint(idx, best);

            } else if (x < 4) {
                llmd_prefix_index_add(ref, (best + 1) % 4, h[k], n[k], 60);
                llmd_prefix_index_add(idx, (best + 1) % 4, h[k], n[k], 60);

            } else {
                llmd_prefix_index_add(ref, best, h[(k + x) % 12],
                                      n[(k + x) % 12], 60);
                llmd_prefix_index_add(idx, best, h[(k + x) % 12],
                                      n[(k + x) % 12], 60);
            }
        }

        llmd_prefix_index_add(ref, best, h[k], n[k], 60);

        if (llmd_prefix_index_add_held(idx, best, h[k], n[k], 60, &held)) {
            taken++;
            changed_taken += x < 10;
        }

        assert_memory_equal(ref, idx, size);
    }

    print_message("record with the lookup's view: %u of 20000; index "
                  "changed in between: %u\n", taken, changed);
    assert_true(taken > 1000);
    assert_true(changed > 5000);
    assert_int_equal(changed_taken, 0);

    for (k = 0; k < 12; k++) {
        free(h[k]);
    }

    free(ref);
    free(idx);
}


/*
 * What a lookup saw, when the index changed before the record: the
 * record takes it only while nothing changed, and only for the endpoint
 * and hashes it was seen for; else it records as without it.
 */
static void
test_held_fallback(void **state)
{
    uint32_t              match[LLMD_MAX_ENDPOINTS];
    uint64_t             *a, *b, *d;
    llmd_prefix_index_t  *idx;
    llmd_prefix_held_t    held, seen;

    idx = held_index(1 << 20);
    a = chain(41, 10);
    b = chain(42, 10);
    d = chain(43, 5);

    llmd_prefix_index_add(idx, 2, a, 10, 30);
    llmd_prefix_index_add(idx, 2, b, 10, 30);

    /* unchanged: taken, a moves in front of b */
    llmd_prefix_index_match_held(idx, a, 10, match, &held);
    assert_int_equal(match[2], 10);
    assert_int_equal(held.ep, 2);
    assert_int_not_equal(held.last, LLMD_INDEX_NONE);
    seen = held;
    assert_int_equal(llmd_prefix_index_add_held(idx, 2, a, 10, 30, &held),
                     1);

    /* the same view again: the index has changed since (the record) */
    assert_int_equal(llmd_prefix_index_add_held(idx, 2, a, 10, 30, &seen),
                     0);

    /* other hashes, or another endpoint: not taken (b recorded, not a
       moved: a's tail is evicted first) */
    llmd_prefix_index_match_held(idx, a, 10, match, &held);
    assert_int_equal(held.ep, 2);
    assert_int_equal(llmd_prefix_index_add_held(idx, 2, b, 10, 30, &held),
                     0);
    llmd_prefix_index_match_held(idx, a, 10, match, &held);
    assert_int_equal(held.ep, 2);
    assert_int_equal(llmd_prefix_index_add_held(idx, 3, a, 10, 30, &held),
                     0);
    assert_int_equal(llmd_prefix_index_holds(idx, 3), 10);
    llmd_prefix_index_clear_endpoint(idx, 3);

    /* LRU of 2 now: b, a; a seen as a run, then b moved in front by
       another worker: a is moved in front again, b's tail evicted */
    llmd_prefix_index_match_held(idx, a, 10, match, &held);
    llmd_prefix_index_add(idx, 2, b, 10, 30);
    assert_int_equal(llmd_prefix_index_add_held(idx, 2, a, 10, 30, &held),
                     0);
    llmd_prefix_index_add(idx, 2, d, 5, 20);
    llmd_prefix_index_match(idx, a, 10, match);
    assert_int_equal(match[2], 10);
    llmd_prefix_index_match(idx, b, 10, match);
    assert_int_equal(match[2], 5);

    /* a seen, then its tail evicted by another worker: re-added whole */
    llmd_prefix_index_match_held(idx, a, 10, match, &held);
    llmd_prefix_index_add(idx, 2, d, 5, 8);
    assert_int_equal(llmd_prefix_index_add_held(idx, 2, a, 10, 30, &held),
                     0);
    llmd_prefix_index_match(idx, a, 10, match);
    assert_int_equal(match[2], 10);

    /* a seen, then endpoint 2 cleared (its entries freed): re-added */
    llmd_prefix_index_match_held(idx, a, 10, match, &held);
    llmd_prefix_index_clear_endpoint(idx, 2);
    assert_int_equal(llmd_prefix_index_add_held(idx, 2, a, 10, 30, &held),
                     0);
    llmd_prefix_index_match(idx, a, 10, match);
    assert_int_equal(match[2], 10);
    assert_int_equal(llmd_prefix_index_holds(idx, 2), 10);

    /* not one run: b and then d share a's head, d's tail follows it in
       the LRU, b's further back; not taken, nothing is lost */
    b[0] = d[0] = a[0];
    b[1] = d[1] = a[1];
    llmd_prefix_index_add(idx, 2, b, 10, 30);
    llmd_prefix_index_add(idx, 2, d, 5, 30);
    llmd_prefix_index_match_held(idx, b, 10, match, &held);
    assert_int_equal(match[2], 10);
    assert_int_equal(held.ep, 2);
    assert_int_not_equal(held.last, LLMD_INDEX_NONE);
    assert_int_equal(llmd_prefix_index_add_held(idx, 2, b, 10, 30, &held),
                     0);

    free(a);
    free(b);
    free(d);
    free(idx);
}


/*
 * The record checks the run the lookup did not read: a prompt recorded in
 * one insert lies in consecutive entries, and another prompt sharing its
 * head then puts its own tail between them in the LRU; the first prompt
 * seen again is not taken as a run (else the other's tail would move in
 * front with it).  A one-block prompt is a run.
 */
static void
test_held_run_checked(void **state)
{
    uint32_t              match[LLMD_MAX_ENDPOINTS];
    uint64_t             *a, *b;
    llmd_prefix_index_t  *idx, *ref;
    llmd_prefix_held_t    held;
    size_t                size;

    size = 1 << 20;
    idx = held_index(size);
    ref = held_index(size);
    a = chain(51, 10);
    b = chain(52, 10);
    b[0] = a[0];
    b[1] = a[1];

    llmd_prefix_index_add(idx, 1, a, 10, 100);
    llmd_prefix_index_add(idx, 1, b, 10, 100);
    llmd_prefix_index_add(ref, 1, a, 10, 100);
    llmd_prefix_index_add(ref, 1, b, 10, 100);

    llmd_prefix_index_match_held(idx, a, 10, match, &held);
    assert_int_equal(match[1], 10);
    assert_int_equal(held.ep, 1);
    assert_int_not_equal(held.last, LLMD_INDEX_NONE);
    assert_int_equal(llmd_prefix_index_add_held(idx, 1, a, 10, 100, &held),
                     0);
    llmd_prefix_index_add(ref, 1, a, 10, 100);
    assert_memory_equal(ref, idx, size);

    /* now one run: taken */
    llmd_prefix_index_match_held(idx, a, 10, match, &held);
    assert_int_equal(llmd_prefix_index_add_held(idx, 1, a, 10, 100, &held),
                     1);
    llmd_prefix_index_add(ref, 1, a, 10, 100);
    assert_memory_equal(ref, idx, size);

    /* one block */
    llmd_prefix_index_match_held(idx, b, 1, match, &held);
    assert_int_equal(match[1], 1);
    assert_int_equal(llmd_prefix_index_add_held(idx, 1, b, 1, 100, &held),
                     1);
    llmd_prefix_index_add(ref, 1, b, 1, 100);
    assert_memory_equal(ref, idx, size);

    free(a);
    free(b);
    free(idx);
    free(ref);
}


/* The reference for the insert: each endpoint's LRU as a list of hashes,
   newest first, changed as the insert is defined block by block. */
#define MODEL_MAX  4096

typedef struct {
    size_t    count[4];
    uint64_t  lru[4][MODEL_MAX];
} lru_model_t;


static void
model_touch(lru_model_t *m, uint32_t ep, uint64_t hash, size_t region_cap)
{
    size_t    i, j, all;
    uint64_t  *l;

    l = m->lru[ep];

    for (i = 0; i < m->count[ep] && l[i] != hash; i++) { /* void */ }

    if (i == m->count[ep]) {
        /* a new entry: a full region first loses its oldest (one
           endpoint in use when the region is that small) */
        all = 0;
        for (j = 0; j < 4; j++) {
            all += m->count[j];
        }

        if (all == region_cap) {
            assert_true(m->count[ep] > 0);
            m->count[ep]--;
            i = m->count[ep];
        }

        assert_true(m->count[ep] < MODEL_MAX);
        m->count[ep]++;
    }

    memmove(&l[1], &l[0], i * sizeof(uint64_t));
    l[0] = hash;
}


static void
model_add(lru_model_t *m, uint32_t ep, const uint64_t *h, size_t n,
    uint32_t capacity, size_t region_cap)
{
    size_t  i;

    for (i = n; i-- > 0; ) {
        model_touch(m, ep, h[i], region_cap);
    }

    if (m->count[ep] > capacity) {
        m->count[ep] = capacity;
    }
}


/*
 * The index's LRU of ep holds the model's entries, in the model's order
 * if ordered: ep matches each of them; a copy of the region (indexes are
 * offsets, so a copy attaches) shrunk one entry at a time loses one each
 * time (if ordered, the model's oldest) and, drained, matches none of
 * them (an entry off the LRU list would never be evicted).
 */
static void
assert_lru_model(const llmd_prefix_index_t *idx, size_t size,
    const lru_model_t *m, uint32_t ep, int ordered)
{
    size_t                c;
    uint32_t              match[LLMD_MAX_ENDPOINTS];
    void                 *mem;
    llmd_prefix_index_t  *copy;

    assert_int_equal(llmd_prefix_index_holds(idx, ep), m->count[ep]);

    for (c = 0; c < m->count[ep]; c++) {
        llmd_prefix_index_match(idx, &m->lru[ep][c], 1, match);
        assert_int_equal(match[ep], 1);
    }

    mem = malloc(size);
    assert_non_null(mem);
    memcpy(mem, idx, size);
    copy = llmd_prefix_index_attach(mem, size);
    assert_non_null(copy);

    for (c = m->count[ep]; c-- > 0; ) {
        if (c > 0) {
            llmd_prefix_index_add(copy, ep, NULL, 0, (uint32_t) c);
        } else {
            /* capacity 0 is a no-op add */
            llmd_prefix_index_clear_endpoint(copy, ep);
        }
        assert_int_equal(llmd_prefix_index_holds(copy, ep), c);
        if (ordered) {
            llmd_prefix_index_match(copy, &m->lru[ep][c], 1, match);
            assert_int_equal(match[ep], 0);
        }
    }

    for (c = 0; c < m->count[ep]; c++) {
        llmd_prefix_index_match(copy, &m->lru[ep][c], 1, match);
        assert_int_equal(match[ep], 0);
    }

    free(mem);
}


/*
 * The insert moves what an endpoint holds as one run from block 0 at
 * once and searches only the other blocks (llmd_pi_add): against the
 * block-by-block definition (lru_model_t) on the prompts it is for:
 * chats whose every turn extends the one before, prompts cut short, heads
 * shared between conversations, with and without the lookup's view,
 * endpoints cleared now and then; first 3 endpoints in LRUs of 70-200
 * in a large region, then one endpoint in a region smaller than its LRU,
 * so an insert's own allocations evict (the run's tail among them).
 * After every step each LRU holds the model's count, and its order is
 * checked every 25 steps and at the end.
 */
static void
test_add_as_model(void **state)
{
    size_t                i, k, n, size, phase, region_cap, neps, runs;
    uint32_t              ep, cap, rng, match[LLMD_MAX_ENDPOINTS];
    uint64_t             *conv[8];
    lru_model_t          *m;
    llmd_prefix_index_t  *idx;
    llmd_prefix_index_stats_t  st;
    llmd_prefix_held_t    held;

    for (k = 0; k < 8; k++) {
        conv[k] = chain(700 + k, 120);
        /* heads shared with conversation 0 */
        memcpy(conv[k], conv[0], (k % 4) * 5 * sizeof(uint64_t));
    }

    rng = 7;
    runs = 0;

    for (phase = 0; phase < 2; phase++) {
        m = calloc(1, sizeof(lru_model_t));
        assert_non_null(m);

        size = llmd_prefix_index_min_size()
               + (phase == 0 ? 2000 : 150) * llmd_prefix_index_entry_bytes();
        idx = held_index(size);
        assert_non_null(idx);
        llmd_prefix_index_stats(idx, &st);
        region_cap = st.capacity;
        neps = phase == 0 ? 3 : 1;
        assert_true(phase == 1 || region_cap > 3 * 200);

        for (i = 0; i < 6000; i++) {
            rng = rng * 1103515245 + 12345;
            k = (rng >> 16) % 8;
            /* a turn: 10, 20, .. 120 blocks of conversation k, or cut */
            n = 10 * (1 + (rng >> 8) % 12);
            if ((rng >> 4) % 5 == 0) {
                n -= (rng >> 12) % 10;
            }

            rng = rng * 1103515245 + 12345;
            ep = (rng >> 16) % 6 == 0 ? (rng >> 8) % neps : k % neps;
            cap = phase == 0 ? 70 + (uint32_t) (k * 19) % 131 : 400;

            if ((rng >> 4) % 97 == 0) {
                llmd_prefix_index_clear_endpoint(idx, ep);
                m->count[ep] = 0;
                continue;
            }

            if ((rng >> 4) % 2) {
                llmd_prefix_index_match_held(idx, conv[k], n, match, &held);
                runs += llmd_prefix_index_add_held(idx, ep, conv[k], n, cap,
                                                   &held);
            } else {
                llmd_prefix_index_add(idx, ep, conv[k], n, cap);
            }

            model_add(m, ep, conv[k], n, cap, region_cap);

            for (ep = 0; ep < neps; ep++) {
                assert_int_equal(llmd_prefix_index_holds(idx, ep),
                                 m->count[ep]);
                if (i % 25 == 0 || i == 5999) {
                    assert_lru_model(idx, size, m, ep, 1);
                }
            }
        }

        llmd_prefix_index_stats(idx, &st);
        print_message("phase %zu: %llu evictions, %zu records taken as the "
                      "lookup saw them\n", phase,
                      (unsigned long long) st.evictions, runs);
        assert_true(st.evictions > 1000);

        free(idx);
        free(m);
    }

    assert_true(runs > 500);

    for (k = 0; k < 8; k++) {
        free(conv[k]);
    }
}


/*
 * A prompt whose block hashes repeat (a 64-bit collision of the chained
 * hashes, which a client may craft), recorded twice for an endpoint
 * holding blocks 0..19 as a run, with and without the lookup's view:
 * the LRU is always a whole list of the definition's entries (the record
 * used to move the run's ends after the insert had moved one of them,
 * which could leave entries off the list, never evicted); its order is
 * the block-by-block definition's when the repeated block is the first or
 * last of the run the record found (block 0; block 19 at the first
 * record, the run 0..19, not at the second, whose run is 0..29), or when
 * the prompt repeats its head inside the run.
 */
static void
test_add_repeated_hash(void **state)
{
    size_t                size, c, d, region_cap;
    uint32_t              match[LLMD_MAX_ENDPOINTS];
    uint64_t             *h, p[40];
    lru_model_t          *m;
    llmd_prefix_index_t  *idx;
    llmd_prefix_held_t    held;
    llmd_prefix_index_stats_t  st;

    /* block 30 repeats block d of the run (20: none; 40: the recorded
       prompt repeats block 0 at block 5 instead) */
    static const size_t  dups[] = { 0, 19, 20, 40, 10, 1 };

    h = chain(900, 40);
    size = llmd_prefix_index_min_size()
           + 500 * llmd_prefix_index_entry_bytes();

    for (c = 0; c < 2 * sizeof(dups) / sizeof(dups[0]); c++) {
        d = dups[c / 2];

        m = calloc(1, sizeof(lru_model_t));
        assert_non_null(m);
        idx = held_index(size);
        assert_non_null(idx);
        llmd_prefix_index_stats(idx, &st);
        region_cap = st.capacity;

        memcpy(p, h, sizeof(p));

        if (d < 20) {
            p[30] = h[d];
        } else if (d == 40) {
            p[5] = p[0];
        }

        llmd_prefix_index_add(idx, 0, p, 20, 100);
        model_add(m, 0, p, 20, 100, region_cap);

        if (c % 2) {
            llmd_prefix_index_match_held(idx, p, 40, match, &held);
            llmd_prefix_index_add_held(idx, 0, p, 40, 100, &held);
        } else {
            llmd_prefix_index_add(idx, 0, p, 40, 100);
        }

        model_add(m, 0, p, 40, 100, region_cap);

        assert_lru_model(idx, size, m, 0, d != 10 && d != 1);

        llmd_prefix_index_add(idx, 0, p, 40, 100);
        model_add(m, 0, p, 40, 100, region_cap);

        assert_lru_model(idx, size, m, 0, d != 10 && d != 1 && d != 19);

        free(idx);
        free(m);
    }

    free(h);
}


/*
 * llm-d's matching computed the long way, through the public API: the
 * endpoints holding block i are those a one-block lookup of hashes[i]
 * finds; every block, in order, until one no endpoint holds.
 */
static void
match_every_block(llmd_prefix_index_t *idx, const uint64_t *hashes,
    size_t n, uint32_t *ref)
{
    size_t    i;
    uint32_t  ep, any, one[LLMD_MAX_ENDPOINTS];

    memset(ref, 0, LLMD_MAX_ENDPOINTS * sizeof(uint32_t));

    for (i = 0; i < n; i++) {
        llmd_prefix_index_match(idx, &hashes[i], 1, one);
        any = 0;

        for (ep = 0; ep < LLMD_MAX_ENDPOINTS; ep++) {
            any |= one[ep];
            ref[ep] += one[ep];
        }

        if (!any) {
            break;
        }
    }
}


/*
 * The lookup reads only some blocks (llmd_pi_match): on prompts of 1 to
 * 1,100 blocks that share heads of random lengths, recorded for 12
 * endpoints in LRUs of 50-2,000 entries and a region of ~6,000 (both
 * kinds of eviction), with endpoints cleared now and then, every lookup
 * gives the same matches as reading every block, and a prompt cut short
 * matches min(its match, its length).
 */
static void
test_match_as_every_block(void **state)
{
    size_t                i, k, n, cut, len[40];
    uint32_t              ep, rng, cap, got[LLMD_MAX_ENDPOINTS],
                          ref[LLMD_MAX_ENDPOINTS];
    uint64_t             *h[40];
    unsigned              full, partial;
    llmd_prefix_index_t  *idx;

    idx = held_index(llmd_prefix_index_min_size()
                     + 6000 * llmd_prefix_index_entry_bytes());
    assert_non_null(idx);

    rng = 7;

    for (k = 0; k < 40; k++) {
        rng = rng * 1103515245 + 12345;
        len[k] = k < 4 ? 1 + k * 15 : 1 + (rng >> 8) % 1100;
        h[k] = chain(900 + k, len[k]);

        /* a head shared with an earlier prompt, of any length */
        if (k > 0) {
            rng = rng * 1103515245 + 12345;
            i = (rng >> 8) % k;
            n = (rng >> 4) % (len[k] < len[i] ? len[k] : len[i]);
            memcpy(h[k], h[i], n * sizeof(uint64_t));
        }
    }

    full = partial = 0;

    for (i = 0; i < 6000; i++) {
        rng = rng * 1103515245 + 12345;
        k = (rng >> 16) % 40;
        ep = (rng >> 8) % 12;

        /* a record of a prefix of the prompt, or of all of it */
        rng = rng * 1103515245 + 12345;
        n = (rng >> 16) % 3 == 0 ? 1 + (rng >> 4) % len[k] : len[k];
        cap = ep < 4 ? 50 + ep * 100 : 2000;

        if ((rng >> 8) % 200 == 0) {
            llmd_prefix_index_clear_endpoint(idx, ep);

        } else {
            llmd_prefix_index_add(idx, ep, h[k], n, cap);
        }

        rng = rng * 1103515245 + 12345;
        k = (rng >> 16) % 40;

        llmd_prefix_index_match(idx, h[k], len[k], got);
        match_every_block(idx, h[k], len[k], ref);
        assert_memory_equal(got, ref, sizeof(got));

        for (ep = 0; ep < 12; ep++) {
            full += got[ep] == len[k];
            partial += got[ep] != 0 && got[ep] < len[k];
        }

        cut = 1 + (rng >> 4) % len[k];
        llmd_prefix_index_match(idx, h[k], cut, got);

        for (ep = 0; ep < 12; ep++) {
            assert_int_equal(got[ep], ref[ep] < cut ? ref[ep] : cut);
        }
    }

    print_message("lookups: %u whole prompts matched, %u partly\n", full,
                  partial);
    assert_true(full > 1000);
    assert_true(partial > 1000);

    for (k = 0; k < 40; k++) {
        free(h[k]);
    }

    free(idx);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_longest_prefix),
        cmocka_unit_test(test_lru_capacity),
        cmocka_unit_test(test_evict_many),
        cmocka_unit_test(test_region_bound_and_reattach),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_readd_order),
        cmocka_unit_test(test_add_as_model),
        cmocka_unit_test(test_add_repeated_hash),
        cmocka_unit_test(test_held_same_as_add),
        cmocka_unit_test(test_held_fallback),
        cmocka_unit_test(test_held_run_checked),
        cmocka_unit_test(test_match_as_every_block),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
