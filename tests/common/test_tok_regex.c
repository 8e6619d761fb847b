/*
 * test_tok_regex: the tokenizer's regex runner (common/tok_regex.c): a match that needs more
 * than PCRE2's default JIT stack gets a stack of its own and the same spans, and a match
 * beyond that stack's limit is refused (ERR_LIMIT), never a crash.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/tok_internal.h"
#include "tests/test.h"

/* spans_of: the spans of pattern on s, or an error. */
static int spans_of(const char *pattern, const char *s, size_t n, struct tok_rx *rx,
                    struct tok_spans *sp)
{
    struct tok_pattern p = {0};
    char err[200];
    int rc = tok_pattern_compile(&p, pattern, strlen(pattern), true, err, sizeof err);
    if (rc == 0)
        rc = tok_pattern_find(&p, rx, s, n, sp);
    tok_pattern_deinit(&p);
    return rc;
}

TEST(regression_a_match_past_the_default_jit_stack_grows_its_own)
{
    /* a capturing alternation repeated over 20,000 characters keeps a backtracking frame per
     * character: far past the 32 KiB default stack, well within the 4 MiB one */
    size_t n = 20000;
    char *s = malloc(n + 2);
    REQUIRE(s != NULL);
    for (size_t i = 0; i < n; i++)
        s[i] = i % 2 ? 'a' : 'b';
    s[n] = 'c', s[n + 1] = 0;
    struct tok_rx rx;
    struct tok_spans sp = {0};
    REQUIRE(tok_rx_init(&rx) == 0);
    CHECK(rx.js == NULL);
    CHECK_EQ(spans_of("(a|b)*c", s, n + 1, &rx, &sp), 0);
    CHECK(rx.js != NULL);
    CHECK(sp.n == 1 && sp.v[0].start == 0 && sp.v[0].end == n + 1);
    /* a short match needs no stack of its own */
    struct tok_rx small;
    REQUIRE(tok_rx_init(&small) == 0);
    CHECK_EQ(spans_of("(a|b)*c", "abc", 3, &small, &sp), 0);
    CHECK(small.js == NULL && sp.n == 1);
    tok_rx_deinit(&small);
    tok_rx_deinit(&rx);
    free(sp.v);
    free(s);
}

TEST(a_match_past_the_largest_stack_is_refused)
{
    size_t n = 4000000;
    char *s = malloc(n + 2);
    REQUIRE(s != NULL);
    for (size_t i = 0; i < n; i++)
        s[i] = i % 2 ? 'a' : 'b';
    s[n] = 'c', s[n + 1] = 0;
    struct tok_rx rx;
    struct tok_spans sp = {0};
    REQUIRE(tok_rx_init(&rx) == 0);
    CHECK_EQ(spans_of("(a|b)*c", s, n + 1, &rx, &sp), ERR_LIMIT);
    tok_rx_deinit(&rx);
    free(sp.v);
    free(s);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
