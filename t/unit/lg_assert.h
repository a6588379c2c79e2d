/*
 * What llmd-loadgen's unit tests (t/unit/test_lg_*.c) share: comparing
 * times and rates, which are doubles, within a tolerance.  Include after
 * <cmocka.h>.
 */
#ifndef LG_ASSERT_H
#define LG_ASSERT_H

#include <math.h>


#define assert_near(got, want, eps)                                          \
    assert_near_at((got), (want), (eps), __FILE__, __LINE__)


static inline void
assert_near_at(double got, double want, double eps, const char *file,
    int line)
{
    if (fabs(got - want) > eps) {
        fail_msg("%s:%d: %.12g is not %.12g", file, line, got, want);
    }
}

#endif /* LG_ASSERT_H */
