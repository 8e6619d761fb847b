/* sse: events against hand-worked results of the WHATWG event-stream algorithm, for every
 * way the bytes can be split. */
#include "bench/sse.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "tests/test.h"

#define MAX_EVENTS 16

struct got {
    char ev[MAX_EVENTS][256];
    size_t len[MAX_EVENTS];
    int n;
    int stop_at; /* return 7 from this event (1-based); 0: never */
    int nul_ok;  /* every event arrived NUL-terminated */
};

static int on_event(void *ctx, const char *data, size_t n)
{
    struct got *g = ctx;
    if (g->n < MAX_EVENTS && n < sizeof g->ev[0]) {
        memcpy(g->ev[g->n], data, n);
        g->ev[g->n][n] = '\0';
        g->len[g->n] = n;
    }
    g->nul_ok &= data[n] == '\0';
    g->n++;
    return g->n == g->stop_at ? 7 : 0;
}

/* feed: s in pieces cut at the given offsets (sorted, within s). Returns the first non-zero
 * sse_feed result, or 0. */
static int feed(struct got *g, size_t limit, const char *s, size_t n, const size_t *cuts,
                size_t n_cuts)
{
    struct sse r;
    int rc = 0;
    size_t at = 0;
    int stop = g->stop_at;
    memset(g, 0, sizeof *g);
    g->stop_at = stop;
    g->nul_ok = 1;
    sse_init(&r, limit);
    for (size_t i = 0; i <= n_cuts && rc == 0; i++) {
        size_t end = i < n_cuts ? cuts[i] : n;
        rc = sse_feed(&r, s + at, end - at, on_event, g);
        at = end;
    }
    sse_deinit(&r);
    return rc;
}

/* expect_all_splits: s gives exactly the events in want (NULL-terminated), and rc, whole,
 * in two pieces at every offset, in three pieces at every pair of offsets, and byte by
 * byte. */
static int expect_all_splits(const char *s, size_t limit, int want_rc, const char *const *want)
{
    size_t n = strlen(s), n_want = 0, cuts[4096];
    struct got g = {0};
    int bad = 0;
    while (want[n_want])
        n_want++;
    for (int mode = 0; mode < 4 && !bad; mode++) {
        size_t outer = mode == 1 ? n + 1 : mode == 2 ? n + 1 : 1;
        for (size_t i = 0; i < outer && !bad; i++) {
            size_t inner = mode == 2 ? n + 1 : i + 1;
            for (size_t j = i; j < inner && !bad; j++) {
                size_t nc = 0;
                if (mode == 1)
                    cuts[nc++] = i;
                if (mode == 2) {
                    cuts[nc++] = i;
                    cuts[nc++] = j;
                }
                if (mode == 3)
                    for (size_t k = 1; k < n && nc < 4096; k++)
                        cuts[nc++] = k;
                int rc = feed(&g, limit, s, n, cuts, nc);
                bool same = rc == want_rc && (size_t)g.n == n_want && g.nul_ok;
                for (size_t e = 0; same && e < n_want; e++)
                    same = g.len[e] == strlen(want[e]) && !strcmp(g.ev[e], want[e]);
                if (!same) {
                    fprintf(stderr, "    mode %d cuts %zu,%zu: rc %d, %d events", mode, i, j, rc,
                            g.n);
                    for (int e = 0; e < g.n && e < MAX_EVENTS; e++)
                        fprintf(stderr, " [%s]", g.ev[e]);
                    fputc('\n', stderr);
                    bad = 1;
                }
            }
        }
    }
    return !bad;
}

#define EXPECT(s, limit, rc, ...)                                                                  \
    do {                                                                                           \
        static const char *const want_[] = {__VA_ARGS__, NULL};                                    \
        CHECK(expect_all_splits((s), (limit), (rc), want_));                                       \
    } while (0)
#define EXPECT_NONE(s, limit, rc)                                                                  \
    do {                                                                                           \
        static const char *const want_[] = {NULL};                                                 \
        CHECK(expect_all_splits((s), (limit), (rc), want_));                                       \
    } while (0)

TEST(openai_stream_every_split)
{
    EXPECT("data: {\"id\":\"1\",\"choices\":[{\"text\":\"a\"}]}\n\n"
           "data: {\"id\":\"1\",\"choices\":[{\"text\":\"b c\"}]}\n\n"
           "data: [DONE]\n\n",
           0, 0, "{\"id\":\"1\",\"choices\":[{\"text\":\"a\"}]}",
           "{\"id\":\"1\",\"choices\":[{\"text\":\"b c\"}]}", "[DONE]");
}

TEST(crlf_separators)
{
    EXPECT("data: one\r\n\r\ndata: two\r\n\r\n", 0, 0, "one", "two");
    /* a CRLF whose CR ends one piece and LF starts the next is one line end, not two */
    EXPECT("data: a\r\ndata: b\r\n\r\n", 0, 0, "a\nb");
}

TEST(cr_separators)
{
    EXPECT("data: one\r\rdata: two\r\r", 0, 0, "one", "two");
    EXPECT("data: a\rdata: b\r\r", 0, 0, "a\nb");
    /* mixed line ends inside one stream */
    EXPECT("data: a\rdata: b\r\n\ndata: c\n\r\n", 0, 0, "a\nb", "c");
}

TEST(multi_line_data)
{
    EXPECT("data: first\ndata: second\ndata: third\n\n", 0, 0, "first\nsecond\nthird");
    EXPECT("data: x\ndata:\ndata: y\n\n", 0, 0, "x\n\ny");
    /* "data" with no colon is a data line with an empty value */
    EXPECT("data\n\n", 0, 0, "");
    EXPECT("data\ndata\n\n", 0, 0, "\n");
    /* a data value that itself holds colons */
    EXPECT("data: {\"a\":\"b:c\"}\n\n", 0, 0, "{\"a\":\"b:c\"}");
}

TEST(comments_and_other_fields)
{
    EXPECT(": keep-alive\n\ndata: x\n\n", 0, 0, "x");
    EXPECT("data: a\n: a comment inside\ndata: b\n\n", 0, 0, "a\nb");
    EXPECT("event: message\nid: 7\nretry: 100\ndata: y\nunknown: z\n\n", 0, 0, "y");
    /* field names match exactly: not "Data", not "datum", not " data" */
    EXPECT_NONE("Data: a\ndatum: b\n data: c\n\n", 0, 0);
    /* events without data lines are not reported */
    EXPECT_NONE("event: ping\n\n: only a comment\n\n\n\n", 0, 0);
}

TEST(missing_or_extra_space)
{
    EXPECT("data:x\n\n", 0, 0, "x");
    EXPECT("data:  two spaces\n\n", 0, 0, " two spaces");
    EXPECT("data:\tx\n\n", 0, 0, "\tx");
    EXPECT("data: trailing \n\n", 0, 0, "trailing ");
}

TEST(incomplete_event_waits)
{
    EXPECT_NONE("data: no blank line yet\n", 0, 0);
    EXPECT("data: a\n\ndata: b\n", 0, 0, "a");
    /* a lone CR at the very end ends the blank line: the event is complete */
    EXPECT("data: a\r\r", 0, 0, "a");
}

TEST(limit)
{
    /* limit 32: "data: " + 20 bytes is a 26-byte line and 21 bytes of data */
    EXPECT("data: 01234567890123456789\n\n", 32, 0, "01234567890123456789");
    /* two such lines in one event: 21 bytes of data + a 26-byte line pass 32 */
    EXPECT_NONE("data: 01234567890123456789\ndata: 01234567890123456789\n\n", 32, ERR_LIMIT);
    /* ... but two such events are fine: the limit is per event */
    EXPECT("data: 01234567890123456789\n\ndata: 01234567890123456789\n\n", 32, 0,
           "01234567890123456789", "01234567890123456789");
    /* a line past the limit fails even when it is a comment or never ends */
    EXPECT_NONE(": 0123456789012345678901234567890123456789\n\n", 32, ERR_LIMIT);
    EXPECT("data: a\n\ndata: 0123456789012345678901234567890123456789", 32, ERR_LIMIT, "a");
    /* exactly at the limit: a 32-byte line */
    EXPECT("data: 01234567890123456789012345\n\n", 32, 0, "01234567890123456789012345");
    EXPECT_NONE("data: 012345678901234567890123456\n\n", 32, ERR_LIMIT);
}

TEST(default_limit_is_16_mib)
{
    size_t n = (16u << 20) + 16;
    char *s = malloc(n + 1);
    REQUIRE(s);
    memset(s, 'x', n);
    memcpy(s, "data: ", 6);
    struct sse r;
    struct got g = {0};
    g.nul_ok = 1;
    sse_init(&r, 0);
    CHECK_EQ(sse_feed(&r, s, (1u << 20), on_event, &g), 0);
    CHECK_EQ(sse_feed(&r, s + (1u << 20), n - (1u << 20), on_event, &g), ERR_LIMIT);
    sse_deinit(&r);
    /* 1 MiB of data is fine */
    sse_init(&r, 0);
    memcpy(s + (1u << 20), "\n\n", 2);
    CHECK_EQ(sse_feed(&r, s, (1u << 20) + 2, on_event, &g), 0);
    CHECK_EQ(g.n, 1);
    sse_deinit(&r);
    free(s);
}

TEST(fn_return_stops)
{
    const char *s = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    struct got g = {0};
    for (size_t cut = 0; cut <= strlen(s); cut++) {
        g.stop_at = 2;
        size_t cuts[1] = {cut};
        CHECK_EQ(feed(&g, 0, s, strlen(s), cuts, 1), 7);
        CHECK_EQ(g.n, 2);
        CHECK_STREQ(g.ev[0], "1");
        CHECK_STREQ(g.ev[1], "2");
    }
    g.stop_at = 0;
}

TEST(reuse_after_events)
{
    struct sse r;
    struct got g = {0};
    g.nul_ok = 1;
    sse_init(&r, 0);
    for (int i = 0; i < 100; i++) {
        char line[64];
        int k = snprintf(line, sizeof line, "data: event %d\r\n\r\n", i);
        REQUIRE(sse_feed(&r, line, (size_t)k, on_event, &g) == 0);
    }
    CHECK_EQ(g.n, 100);
    CHECK_STREQ(g.ev[15], "event 15");
    CHECK(g.nul_ok);
    /* empty input changes nothing */
    CHECK_EQ(sse_feed(&r, NULL, 0, on_event, &g), 0);
    sse_deinit(&r);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
