/* utf8: decoding, lossy repair (the Unicode Standard's examples), open-character detection,
 * and the character predicates against Unicode properties. */
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/utf8.h"
#include "tests/test.h"

TEST(decode_well_formed)
{
    uint32_t cp;
    CHECK_EQ(utf8_decode("A", 1, &cp), 1);
    CHECK_EQ(cp, 0x41);
    CHECK_EQ(utf8_decode("\xC3\xA9", 2, &cp), 2);
    CHECK_EQ(cp, 0xE9);
    CHECK_EQ(utf8_decode("\xE2\x96\x81", 3, &cp), 3);
    CHECK_EQ(cp, 0x2581);
    CHECK_EQ(utf8_decode("\xF0\x9F\x98\x80", 4, &cp), 4);
    CHECK_EQ(cp, 0x1F600);
    CHECK_EQ(utf8_decode("\xF4\x8F\xBF\xBF", 4, &cp), 4);
    CHECK_EQ(cp, 0x10FFFF);
}

TEST(decode_ill_formed)
{
    uint32_t cp;
    CHECK_EQ(utf8_decode("\xC0\xAF", 2, &cp), 0);         /* overlong */
    CHECK_EQ(utf8_decode("\xE0\x80\xAF", 3, &cp), 0);     /* overlong */
    CHECK_EQ(utf8_decode("\xED\xA0\x80", 3, &cp), 0);     /* surrogate */
    CHECK_EQ(utf8_decode("\xF4\x90\x80\x80", 4, &cp), 0); /* above U+10FFFF */
    CHECK_EQ(utf8_decode("\xE2\x96", 2, &cp), 0);         /* truncated */
    CHECK_EQ(utf8_decode("\x80", 1, &cp), 0);             /* lone continuation */
    CHECK_EQ(utf8_decode("\xFF", 1, &cp), 0);
}

TEST(encode_round_trip)
{
    uint32_t cps[] = {0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF};
    for (size_t i = 0; i < sizeof cps / sizeof *cps; i++) {
        char b[4];
        uint32_t back;
        size_t n = utf8_encode(cps[i], b);
        CHECK_EQ(utf8_decode(b, n, &back), n);
        CHECK_EQ(back, cps[i]);
    }
}

/* The Unicode Standard, chapter 3, "U+FFFD Substitution of Maximal Subparts" (Tables 3-8
 * to 3-11): each maximal subpart of an ill-formed sequence becomes one U+FFFD. */
static void check_lossy(const char *in, size_t n, const char *want)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(utf8_append_lossy(&b, in, n), 0);
    CHECK_MEMEQ(b.p, b.n, want, strlen(want));
    CHECK(utf8_valid(b.p, b.n));
    buf_deinit(&b);
}

#define R "\xEF\xBF\xBD"

TEST(lossy_maximal_subparts)
{
    /* Table 3-8 */
    check_lossy("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", 13,
                "a" R R R "b" R "c" R R "d");
    /* Table 3-9: non-shortest forms */
    check_lossy("\xC0\xAF\xE0\x80\xBF\xF0\x81\x82\x41", 9, R R R R R R R R "A");
    /* Table 3-10: surrogates */
    check_lossy("\xED\xA0\x80\xED\xBF\xBF\xED\xAF\x41", 9, R R R R R R R R "A");
    /* Table 3-11: other ill-formed sequences */
    check_lossy("\xF4\x91\x92\x93\xFF\x41\x80\xBF\x42", 9, R R R R R "A" R R "B");
    /* Table 3-12: truncated sequences */
    check_lossy("\xE1\x80\xE2\xF0\x91\x92\xF1\xBF\x41", 9, R R R R "A");
}

TEST(incomplete_tail)
{
    CHECK_EQ(utf8_incomplete_tail("abc", 3), 0);
    CHECK_EQ(utf8_incomplete_tail("a\xC3", 2), 1);
    CHECK_EQ(utf8_incomplete_tail("a\xE2\x96", 3), 2);
    CHECK_EQ(utf8_incomplete_tail("\xF0\x9F\x98", 3), 3);
    CHECK_EQ(utf8_incomplete_tail("\xF0\x9F\x98\x80", 4), 0);
    CHECK_EQ(utf8_incomplete_tail("a\xFF", 2), 0);    /* nothing can complete it */
    CHECK_EQ(utf8_incomplete_tail("\xED\xA0", 2), 0); /* a surrogate can never be completed */
    CHECK_EQ(utf8_incomplete_tail("\xC3\xA9", 2), 0);
}

TEST(predicates)
{
    /* White_Space (PropList.txt): U+180E left it in Unicode 6.3; U+200B was never in it */
    CHECK(uc_is_white_space(' ') && uc_is_white_space(0x85) && uc_is_white_space(0x3000));
    CHECK(!uc_is_white_space(0x180E) && !uc_is_white_space(0x200B) && !uc_is_white_space(0x1C));
    CHECK(uc_is_numeric('7') && uc_is_numeric(0xBD) && uc_is_numeric(0x2163));
    CHECK(!uc_is_numeric('a'));
    CHECK(uc_is_punctuation('$') && uc_is_punctuation(0x3002) && !uc_is_punctuation(0x2603));
    CHECK(uc_is_word('_') && uc_is_word(0x301) && uc_is_word(0x24B6) && uc_is_word(0x200D));
    CHECK(!uc_is_word(0xBD) && !uc_is_word(' '));
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
