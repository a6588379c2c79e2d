/*
 * The no-hit-lru-scorer's LRU of endpoints: order, eviction at capacity,
 * positions of candidates, and that it lives in plain movable memory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/llmd_nohit_lru.h"


static llmd_nohit_lru_t *
lru_new(uint32_t capacity)
{
    llmd_nohit_lru_t  *s;

    s = malloc(llmd_nohit_lru_size(capacity));
    assert_non_null(s);
    llmd_nohit_lru_init(s, capacity);

    return s;
}


static void
test_order_and_repeat(void **state)
{
    int32_t            pos[4];
    uint64_t           ids[4] = { 10, 20, 30, 40 };
    llmd_nohit_lru_t  *s;

    s = lru_new(4);

    llmd_nohit_lru_positions(s, ids, 4, pos);
    assert_int_equal(pos[0], -1);
    assert_int_equal(pos[3], -1);

    llmd_nohit_lru_record(s, 30);
    llmd_nohit_lru_record(s, 10);
    llmd_nohit_lru_record(s, 30);         /* again: now the newest */

    llmd_nohit_lru_positions(s, ids, 4, pos);
    assert_int_equal(pos[0], 0);
    assert_int_equal(pos[2], 1);
    assert_int_equal(pos[1], -1);
    assert_int_equal(s->lru.count, 2);
    assert_int_equal(s->records, 3);

    free(s);
}


static void
test_eviction(void **state)
{
    int32_t            pos[5];
    uint64_t           ids[5] = { 1, 2, 3, 4, 5 };
    llmd_nohit_lru_t  *s;

    s = lru_new(3);

    llmd_nohit_lru_record(s, 1);
    llmd_nohit_lru_record(s, 2);
    llmd_nohit_lru_record(s, 3);
    llmd_nohit_lru_record(s, 1);          /* 2 is now the oldest */
    llmd_nohit_lru_record(s, 4);          /* evicts 2 */
    llmd_nohit_lru_record(s, 5);          /* evicts 3 */

    llmd_nohit_lru_positions(s, ids, 5, pos);
    assert_int_equal(pos[1], -1);
    assert_int_equal(pos[2], -1);
    assert_int_equal(pos[0], 0);
    assert_int_equal(pos[3], 1);
    assert_int_equal(pos[4], 2);
    assert_int_equal(s->lru.count, 3);
    assert_int_equal(s->used, 3);

    free(s);
}


/* Entry numbers, not pointers: a copy at another address works. */
static void
test_relocatable(void **state)
{
    int32_t            pos[2];
    uint64_t           ids[2] = { 7, 9 };
    llmd_nohit_lru_t  *s, *t;

    s = lru_new(2);
    llmd_nohit_lru_record(s, 9);
    llmd_nohit_lru_record(s, 7);

    t = malloc(llmd_nohit_lru_size(2));
    assert_non_null(t);
    memcpy(t, s, llmd_nohit_lru_size(2));
    memset(s, 0xff, llmd_nohit_lru_size(2));
    free(s);

    llmd_nohit_lru_positions(t, ids, 2, pos);
    assert_int_equal(pos[0], 1);
    assert_int_equal(pos[1], 0);

    /* candidates sharing an id share its position */
    ids[1] = 7;
    llmd_nohit_lru_positions(t, ids, 2, pos);
    assert_int_equal(pos[0], 1);
    assert_int_equal(pos[1], 1);

    free(t);
}


static void
test_zero_capacity(void **state)
{
    int32_t            pos[1];
    uint64_t           id = 1;
    llmd_nohit_lru_t  *s;

    s = lru_new(0);
    llmd_nohit_lru_record(s, 1);
    llmd_nohit_lru_positions(s, &id, 1, pos);
    assert_int_equal(pos[0], -1);
    free(s);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_order_and_repeat),
        cmocka_unit_test(test_eviction),
        cmocka_unit_test(test_relocatable),
        cmocka_unit_test(test_zero_capacity),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
