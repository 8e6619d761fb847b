#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/str.h"
#include "tests/test.h"

TEST(empty_buffer_is_a_c_string)
{
    struct buf b;
    buf_init(&b, 0);
    REQUIRE(b.p != NULL);
    CHECK_STREQ(b.p, "");
    CHECK_EQ(b.n, 0);
    buf_reset(&b);
    CHECK_STREQ(b.p, "");
    buf_deinit(&b);
    buf_deinit(&b);
}

TEST(append_keeps_nul_termination)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(buf_append(&b, "hello", 5), 0);
    CHECK_EQ(b.n, 5);
    CHECK_EQ(b.p[5], '\0');
    CHECK_EQ(buf_append_byte(&b, ','), 0);
    CHECK_EQ(buf_append_str(&b, " world"), 0);
    CHECK_EQ(buf_append(&b, NULL, 0), 0);
    CHECK_STREQ(b.p, "hello, world");
    CHECK_EQ(b.n, 12);
    CHECK_EQ(buf_append(&b, "a\0b", 3), 0); /* embedded NUL bytes are kept */
    CHECK_MEMEQ(b.p + 12, 3, "a\0b", 3);
    CHECK_EQ(b.p[15], '\0');
    buf_deinit(&b);
}

TEST(growth_across_many_appends)
{
    struct buf b;
    buf_init(&b, 0);
    size_t grows = 0, cap = b.cap;
    for (int i = 0; i < 100000; i++) {
        REQUIRE(buf_append_byte(&b, (char)('a' + i % 26)) == 0);
        if (b.cap != cap) {
            grows++;
            cap = b.cap;
        }
    }
    CHECK_EQ(b.n, 100000);
    CHECK_EQ(b.p[b.n], '\0');
    CHECK(grows < 20); /* geometric */
    for (int i = 0; i < 100000; i++)
        if (b.p[i] != (char)('a' + i % 26)) {
            CHECK_EQ(b.p[i], 'a' + i % 26);
            break;
        }
    buf_deinit(&b);
}

TEST(reset_keeps_memory)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(buf_append_str(&b, "some text that needs memory"), 0);
    char *p = b.p;
    size_t cap = b.cap;
    buf_reset(&b);
    CHECK_EQ(b.n, 0);
    CHECK_STREQ(b.p, "");
    CHECK(b.p == p);
    CHECK_EQ(b.cap, cap);
    CHECK_EQ(buf_append_str(&b, "again"), 0);
    CHECK_STREQ(b.p, "again");
    buf_deinit(&b);
}

TEST(limit_exactly_reached_then_exceeded)
{
    struct buf b;
    buf_init(&b, 10);
    CHECK_EQ(buf_append_str(&b, "12345"), 0);
    CHECK_EQ(buf_append_str(&b, "678901"), ERR_LIMIT);
    CHECK_STREQ(b.p, "12345");
    CHECK_EQ(b.n, 5);
    CHECK_EQ(buf_append_str(&b, "67890"), 0);
    CHECK_STREQ(b.p, "1234567890");
    CHECK_EQ(b.n, 10);
    CHECK(b.cap <= 11);
    CHECK_EQ(buf_append_byte(&b, 'x'), ERR_LIMIT);
    CHECK_EQ(buf_printf(&b, "%d", 1), ERR_LIMIT);
    CHECK_EQ(buf_reserve(&b, 1), ERR_LIMIT);
    CHECK_EQ(buf_reserve(&b, 0), 0);
    CHECK_EQ(buf_append(&b, "", 0), 0);
    CHECK_STREQ(b.p, "1234567890");
    CHECK_EQ(b.n, 10);
    buf_deinit(&b);
}

TEST(reserve_overflow_is_limit)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(buf_append_str(&b, "x"), 0);
    CHECK_EQ(buf_reserve(&b, SIZE_MAX), ERR_LIMIT);
    CHECK_EQ(buf_reserve(&b, SIZE_MAX / 2), ERR_LIMIT);
    CHECK_EQ(buf_append(&b, "y", SIZE_MAX), ERR_LIMIT);
    CHECK_STREQ(b.p, "x");
    CHECK_EQ(buf_reserve(&b, 1000), 0);
    CHECK(b.cap >= 1002);
    buf_deinit(&b);
}

TEST(printf_short_and_long)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(buf_printf(&b, "%s=%d;", "a", 42), 0);
    CHECK_STREQ(b.p, "a=42;");
    char big[5000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_EQ(buf_printf(&b, "[%s]%05d", big, 7), 0);
    CHECK_EQ(b.n, 5 + 1 + 4999 + 1 + 5);
    CHECK_MEMEQ(b.p, 6, "a=42;[", 6);
    CHECK_STREQ(b.p + b.n - 6, "]00007");
    CHECK_EQ(b.p[b.n], '\0');
    CHECK_EQ(buf_printf(&b, "%s", ""), 0);
    CHECK_EQ(b.n, 5 + 1 + 4999 + 1 + 5);
    buf_deinit(&b);
}

TEST(printf_over_limit_leaves_buffer_unchanged)
{
    struct buf b;
    buf_init(&b, 20);
    CHECK_EQ(buf_append_str(&b, "head:"), 0);
    CHECK_EQ(buf_reserve(&b, 15), 0); /* room in cap, so vsnprintf writes a partial tail */
    CHECK_EQ(buf_printf(&b, "%s", "0123456789abcdefg"), ERR_LIMIT);
    CHECK_STREQ(b.p, "head:");
    CHECK_EQ(b.n, 5);
    CHECK_EQ(buf_printf(&b, "%s", "0123456789abcde"), 0);
    CHECK_STREQ(b.p, "head:0123456789abcde");
    buf_deinit(&b);
}

TEST(detach_hands_over_memory)
{
    struct buf b;
    buf_init(&b, 100);
    CHECK_EQ(buf_append_str(&b, "owned"), 0);
    size_t n = 0;
    char *s = buf_detach(&b, &n);
    REQUIRE(s != NULL);
    CHECK_STREQ(s, "owned");
    CHECK_EQ(n, 5);
    free(s);
    CHECK_EQ(b.n, 0);
    CHECK_EQ(b.cap, 0);
    CHECK_EQ(b.limit, 100);
    CHECK_STREQ(b.p, "");
    /* detaching an empty buffer still gives a string the caller frees */
    s = buf_detach(&b, &n);
    REQUIRE(s != NULL);
    CHECK_STREQ(s, "");
    CHECK_EQ(n, 0);
    free(s);
    CHECK_EQ(buf_append_str(&b, "reused"), 0);
    s = buf_detach(&b, NULL);
    CHECK_STREQ(s, "reused");
    free(s);
    buf_deinit(&b);
}

TEST(str_helpers)
{
    struct str s = str_from_cstr("hello.world");
    CHECK_EQ(s.n, 11);
    CHECK(str_eq_cstr(s, "hello.world"));
    CHECK(!str_eq_cstr(s, "hello.worl"));
    CHECK(!str_eq_cstr(s, "hello.world!"));
    CHECK(str_eq(s, (struct str){"hello.world!", 11}));
    CHECK(str_starts_with(s, str_from_cstr("hello")));
    CHECK(str_starts_with(s, str_from_cstr("")));
    CHECK(!str_starts_with(s, str_from_cstr("world")));
    CHECK(!str_starts_with(str_from_cstr("he"), str_from_cstr("hello")));
    CHECK(str_ends_with(s, str_from_cstr(".world")));
    CHECK(str_ends_with(s, str_from_cstr("")));
    CHECK(!str_ends_with(s, str_from_cstr("hello")));
    CHECK(!str_ends_with(str_from_cstr("ld"), str_from_cstr("world")));
    CHECK_EQ(str_find_byte(s, '.'), 5);
    CHECK_EQ(str_find_byte(s, 'h'), 0);
    CHECK_EQ(str_find_byte(s, 'x'), s.n);
    CHECK_EQ(str_find_byte((struct str){"a\0b", 3}, 'b'), 2);
}

TEST(str_empty_and_null)
{
    struct str empty = {NULL, 0};
    struct str z = str_from_cstr(NULL);
    CHECK(z.p == NULL);
    CHECK_EQ(z.n, 0);
    CHECK(str_eq(empty, str_from_cstr("")));
    CHECK(str_eq_cstr(empty, ""));
    CHECK(str_starts_with(empty, empty));
    CHECK(str_ends_with(empty, empty));
    CHECK(!str_starts_with(empty, str_from_cstr("a")));
    CHECK_EQ(str_find_byte(empty, 'a'), 0);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
