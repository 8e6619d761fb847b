/*
 * test.h: kiln's small unit-test harness (header only).
 *
 *   TEST(name) { CHECK(x); CHECK_EQ(a, b); CHECK_STREQ(s, t); REQUIRE(p != NULL); }
 *   int main(int argc, char **argv) { return test_main(argc, argv); }
 *
 * TEST registers a function through a constructor; test_main runs every registered test (or
 * those whose names contain argv[1]) and prints one line per test and a last line
 * "<binary>: N passed, N failed". A test fails when any CHECK fails; REQUIRE also stops the
 * test at once. The exit status is 0 only when every test passed. tests/run_tests.sh adds
 * these lines up across binaries.
 */
#ifndef KILN_TEST_H
#define KILN_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_case {
    const char *name;
    void (*fn)(void);
};

#define TEST_MAX 512
static struct test_case test_cases[TEST_MAX];
static int test_n_cases;
static int test_cur_failed;

static inline void test_register(const char *name, void (*fn)(void))
{
    if (test_n_cases < TEST_MAX)
        test_cases[test_n_cases++] = (struct test_case){name, fn};
}

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void test_reg_##name(void)                                 \
    {                                                                                              \
        test_register(#name, test_##name);                                                         \
    }                                                                                              \
    static void test_##name(void)

#define TEST_FAIL_AT(...)                                                                          \
    do {                                                                                           \
        fprintf(stderr, "    %s:%d: ", __FILE__, __LINE__);                                        \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        test_cur_failed = 1;                                                                       \
    } while (0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            TEST_FAIL_AT("CHECK(%s) failed", #cond);                                               \
    } while (0)

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            TEST_FAIL_AT("REQUIRE(%s) failed", #cond);                                             \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long test_a_ = (long long)(a), test_b_ = (long long)(b);                              \
        if (test_a_ != test_b_)                                                                    \
            TEST_FAIL_AT("CHECK_EQ(%s, %s): %lld != %lld", #a, #b, test_a_, test_b_);              \
    } while (0)

#define CHECK_STREQ(a, b)                                                                          \
    do {                                                                                           \
        const char *test_a_ = (a), *test_b_ = (b);                                                 \
        if (!test_a_ || !test_b_ || strcmp(test_a_, test_b_) != 0)                                 \
            TEST_FAIL_AT("CHECK_STREQ(%s, %s): \"%s\" != \"%s\"", #a, #b,                          \
                         test_a_ ? test_a_ : "(null)", test_b_ ? test_b_ : "(null)");              \
    } while (0)

/* CHECK_MEMEQ: byte strings with lengths; prints both when they differ. */
#define CHECK_MEMEQ(a, an, b, bn)                                                                  \
    do {                                                                                           \
        size_t test_an_ = (an), test_bn_ = (bn);                                                   \
        if (test_an_ != test_bn_ || memcmp((a), (b), test_an_) != 0)                               \
            TEST_FAIL_AT("CHECK_MEMEQ(%s, %s): \"%.*s\" (%zu) != \"%.*s\" (%zu)", #a, #b,          \
                         (int)test_an_, (const char *)(a), test_an_, (int)test_bn_,                \
                         (const char *)(b), test_bn_);                                             \
    } while (0)

/* test_fixtures: the shared fixtures folder (KILN_FIXTURES, default ../shared/fixtures). */
static inline const char *test_fixtures(void)
{
    const char *f = getenv("KILN_FIXTURES");
    return f && *f ? f : "../shared/fixtures";
}

static inline int test_main(int argc, char **argv)
{
    const char *bin = strrchr(argv[0], '/');
    bin = bin ? bin + 1 : argv[0];
    int passed = 0, failed = 0;
    for (int i = 0; i < test_n_cases; i++) {
        if (argc > 1 && !strstr(test_cases[i].name, argv[1]))
            continue;
        test_cur_failed = 0;
        test_cases[i].fn();
        printf("%s %s.%s\n", test_cur_failed ? "FAIL" : "ok  ", bin, test_cases[i].name);
        fflush(stdout);
        if (test_cur_failed)
            failed++;
        else
            passed++;
    }
    printf("%s: %d passed, %d failed\n", bin, passed, failed);
    return failed ? 1 : 0;
}

#endif
