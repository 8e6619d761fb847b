#include <stdint.h>
#include <string.h>

#include "common/arena.h"
#include "common/err.h"
#include "tests/test.h"

static int is_aligned(const void *p)
{
    return ((uintptr_t)p % ARENA_ALIGN) == 0;
}

TEST(alloc_is_aligned)
{
    struct arena a;
    arena_init(&a, 0, 256);
    for (size_t n = 0; n < 100; n++) {
        char *p = arena_alloc(&a, n);
        REQUIRE(p != NULL);
        CHECK(is_aligned(p));
        memset(p, 0xab, n);
    }
    CHECK(is_aligned(arena_strndup(&a, "abc", 3)));
    CHECK(is_aligned(arena_calloc(&a, 3, 5)));
    CHECK_EQ(arena_error(&a), 0);
    arena_deinit(&a);
}

TEST(zero_size_allocs_are_distinct)
{
    struct arena a;
    arena_init(&a, 0, 64);
    void *p = arena_alloc(&a, 0), *q = arena_alloc(&a, 0);
    REQUIRE(p != NULL && q != NULL);
    CHECK(p != q);
    CHECK_EQ(arena_used(&a), 0);
    arena_deinit(&a);
}

TEST(many_small_allocs_span_chunks)
{
    struct arena a;
    arena_init(&a, 0, 128);
    enum { N = 1000 };
    unsigned char *ptrs[N];
    for (int i = 0; i < N; i++) {
        ptrs[i] = arena_alloc(&a, 24);
        REQUIRE(ptrs[i] != NULL);
        memset(ptrs[i], i & 0xff, 24);
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 24; j++)
            CHECK_EQ(ptrs[i][j], i & 0xff);
    CHECK_EQ(arena_used(&a), N * 24);
    CHECK(a.reserved >= N * 24);
    CHECK(a.reserved < 3 * N * 32); /* geometric growth wastes at most a constant factor */
    arena_deinit(&a);
    CHECK_EQ(a.reserved, 0);
}

TEST(big_alloc_gets_own_chunk_and_head_keeps_serving)
{
    struct arena a;
    arena_init(&a, 0, 256);
    char *small1 = arena_alloc(&a, 16);
    REQUIRE(small1 != NULL);
    char *big = arena_alloc(&a, 100000);
    REQUIRE(big != NULL);
    CHECK(is_aligned(big));
    memset(big, 7, 100000);
    char *small2 = arena_alloc(&a, 16);
    REQUIRE(small2 != NULL);
    /* small2 comes from the same first chunk as small1, right after it */
    CHECK(small2 == small1 + 16);
    CHECK_EQ(big[99999], 7);
    arena_deinit(&a);
}

TEST(big_first_alloc)
{
    struct arena a;
    arena_init(&a, 0, 64);
    char *big = arena_alloc(&a, 5000);
    REQUIRE(big != NULL);
    memset(big, 1, 5000);
    char *s = arena_alloc(&a, 10);
    REQUIRE(s != NULL);
    CHECK(is_aligned(s));
    arena_deinit(&a);
}

TEST(limit_returns_null_with_err_limit_and_stays_usable)
{
    struct arena a;
    arena_init(&a, 1024, 256);
    void *p = arena_alloc(&a, 100);
    REQUIRE(p != NULL);
    CHECK(arena_alloc(&a, 2000) == NULL);
    CHECK_EQ(arena_error(&a), ERR_LIMIT);
    CHECK(a.reserved <= 1024);
    /* smaller allocations that fit still succeed */
    void *q = arena_alloc(&a, 100);
    CHECK(q != NULL);
    /* fill up to the limit with small blocks: never exceeds it, ends in ERR_LIMIT */
    size_t got = 0;
    while (arena_alloc(&a, 32) != NULL)
        got++;
    CHECK(got > 0);
    CHECK_EQ(arena_error(&a), ERR_LIMIT);
    CHECK(a.reserved <= 1024);
    CHECK(arena_used(&a) >= 200 + got * 32);
    arena_deinit(&a);
}

TEST(limit_smaller_than_first_chunk)
{
    struct arena a;
    arena_init(&a, 512, 4096);
    void *p = arena_alloc(&a, 300);
    CHECK(p != NULL);
    CHECK(a.reserved <= 512);
    CHECK(arena_alloc(&a, 300) == NULL);
    CHECK_EQ(arena_error(&a), ERR_LIMIT);
    CHECK(arena_strndup(&a, "x", 1) != NULL);
    arena_deinit(&a);
}

TEST(calloc_zeroes_and_checks_overflow)
{
    struct arena a;
    arena_init(&a, 0, 0);
    unsigned char *z = arena_calloc(&a, 10, 10);
    REQUIRE(z != NULL);
    for (int i = 0; i < 100; i++)
        CHECK_EQ(z[i], 0);
    CHECK(arena_calloc(&a, SIZE_MAX / 2, 3) == NULL);
    CHECK_EQ(arena_error(&a), ERR_LIMIT);
    CHECK(arena_calloc(&a, (size_t)1 << (sizeof(size_t) * 4), (size_t)1 << (sizeof(size_t) * 4)) ==
          NULL);
    CHECK(arena_alloc(&a, SIZE_MAX) == NULL);
    CHECK_EQ(arena_error(&a), ERR_LIMIT);
    CHECK(arena_strndup(&a, "", SIZE_MAX) == NULL);
    CHECK(arena_alloc(&a, 8) != NULL);
    arena_deinit(&a);
}

TEST(strndup_terminates)
{
    struct arena a;
    arena_init(&a, 0, 0);
    char *s = arena_strndup(&a, "hello world", 5);
    REQUIRE(s != NULL);
    CHECK_STREQ(s, "hello");
    char *e = arena_strndup(&a, NULL, 0);
    REQUIRE(e != NULL);
    CHECK_STREQ(e, "");
    arena_deinit(&a);
}

TEST(realloc_in_place)
{
    struct arena a;
    arena_init(&a, 0, 1024);
    char *p = arena_alloc(&a, 10);
    REQUIRE(p != NULL);
    memcpy(p, "0123456789", 10);
    char *q = arena_realloc(&a, p, 10, 100);
    CHECK(q == p);
    CHECK_MEMEQ(q, 10, "0123456789", 10);
    CHECK_EQ(arena_used(&a), 100);
    /* shrinking the newest block gives the tail back */
    q = arena_realloc(&a, q, 100, 20);
    CHECK(q == p);
    CHECK_EQ(arena_used(&a), 20);
    char *r = arena_alloc(&a, 1);
    CHECK(r == p + 32); /* next aligned slot after 20 bytes */
    arena_deinit(&a);
}

TEST(realloc_by_copy)
{
    struct arena a;
    arena_init(&a, 0, 256);
    char *p = arena_alloc(&a, 10);
    REQUIRE(p != NULL);
    memcpy(p, "abcdefghij", 10);
    char *other = arena_alloc(&a, 10); /* p is no longer the newest */
    REQUIRE(other != NULL);
    char *q = arena_realloc(&a, p, 10, 50);
    REQUIRE(q != NULL);
    CHECK(q != p);
    CHECK(is_aligned(q));
    CHECK_MEMEQ(q, 10, "abcdefghij", 10);
    /* the newest block, but the chunk is too small: copied into a new chunk */
    char *r = arena_realloc(&a, q, 50, 10000);
    REQUIRE(r != NULL);
    CHECK(r != q);
    CHECK_MEMEQ(r, 10, "abcdefghij", 10);
    /* shrinking an older block keeps it where it is */
    CHECK(arena_realloc(&a, p, 10, 5) == p);
    /* NULL acts as alloc */
    CHECK(arena_realloc(&a, NULL, 0, 8) != NULL);
    arena_deinit(&a);
}

TEST(realloc_failure_keeps_block)
{
    struct arena a;
    arena_init(&a, 512, 128);
    char *p = arena_alloc(&a, 16);
    REQUIRE(p != NULL);
    memcpy(p, "keep me intact!", 16);
    CHECK(arena_realloc(&a, p, 16, 4096) == NULL);
    CHECK_EQ(arena_error(&a), ERR_LIMIT);
    CHECK_STREQ(p, "keep me intact!");
    arena_deinit(&a);
}

struct order_log {
    int seq[16];
    int n;
};

/* What a cleanup receives: the log to append to and its own id. */
struct order_item {
    struct order_log *log;
    int id;
};

static void on_cleanup(void *p)
{
    struct order_item *it = p;
    it->log->seq[it->log->n++] = it->id;
}

TEST(defer_is_lifo_and_runs_once_on_deinit)
{
    struct order_log log = {{0}, 0};
    struct order_item items[5];
    struct arena a;
    arena_init(&a, 0, 64);
    for (int i = 0; i < 5; i++) {
        items[i] = (struct order_item){&log, i + 1};
        CHECK_EQ(arena_defer(&a, on_cleanup, &items[i]), 0);
        CHECK(arena_alloc(&a, 40) != NULL); /* interleave with allocations across chunks */
    }
    arena_deinit(&a);
    REQUIRE(log.n == 5);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(log.seq[i], 5 - i);
    arena_deinit(&a);
    CHECK_EQ(log.n, 5);
}

TEST(defer_runs_once_on_reset)
{
    struct order_log log = {{0}, 0};
    struct order_item items[3] = {{&log, 1}, {&log, 2}, {&log, 3}};
    struct arena a;
    arena_init(&a, 0, 0);
    CHECK_EQ(arena_defer(&a, on_cleanup, &items[0]), 0);
    CHECK_EQ(arena_defer(&a, on_cleanup, &items[1]), 0);
    arena_reset(&a);
    REQUIRE(log.n == 2);
    CHECK_EQ(log.seq[0], 2);
    CHECK_EQ(log.seq[1], 1);
    arena_reset(&a);
    CHECK_EQ(log.n, 2);
    CHECK_EQ(arena_defer(&a, on_cleanup, &items[2]), 0);
    arena_deinit(&a);
    REQUIRE(log.n == 3);
    CHECK_EQ(log.seq[2], 3);
}

TEST(defer_at_limit_fails)
{
    struct arena a;
    arena_init(&a, 256, 64);
    while (arena_alloc(&a, 16) != NULL)
        ;
    CHECK_EQ(arena_defer(&a, on_cleanup, NULL), ERR_LIMIT); /* never runs */
    arena_deinit(&a);
}

TEST(reset_reuses_first_chunk)
{
    struct arena a;
    arena_init(&a, 0, 512);
    char *first = arena_alloc(&a, 32);
    REQUIRE(first != NULL);
    for (int i = 0; i < 200; i++)
        REQUIRE(arena_alloc(&a, 64) != NULL);
    REQUIRE(arena_alloc(&a, 1 << 20) != NULL);
    size_t before = a.reserved;
    arena_reset(&a);
    CHECK_EQ(arena_used(&a), 0);
    CHECK(a.reserved < before);
    CHECK(a.reserved <= 512 + 64);
    for (int step = 0; step < 3; step++) {
        char *p = arena_alloc(&a, 32);
        CHECK(p == first);
        arena_reset(&a);
    }
    arena_deinit(&a);
}

TEST(reset_clears_error)
{
    struct arena a;
    arena_init(&a, 1024, 128);
    CHECK(arena_alloc(&a, 4096) == NULL);
    CHECK_EQ(arena_error(&a), ERR_LIMIT);
    arena_reset(&a);
    CHECK_EQ(arena_error(&a), 0);
    CHECK(arena_alloc(&a, 64) != NULL);
    arena_deinit(&a);
}

TEST(deinit_then_reuse)
{
    struct arena a;
    arena_init(&a, 2048, 128);
    CHECK(arena_alloc(&a, 100) != NULL);
    arena_deinit(&a);
    CHECK_EQ(a.reserved, 0);
    CHECK(arena_alloc(&a, 100) != NULL);
    CHECK(arena_alloc(&a, 4096) == NULL); /* the limit survives deinit */
    arena_deinit(&a);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
