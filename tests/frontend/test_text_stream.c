/*
 * test_text_stream: generated ids -> deltas with stop strings, on two real tokenizers: gpt2
 * (byte-level BPE) and stories260K (SentencePiece with byte fallback and a leading-space
 * Strip). Tokens are named by their vocabulary strings, so each test says exactly which
 * text every id adds. The differential test against HF is test_text_stream_hf.py.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "frontend/text_stream.h"
#include "tests/test.h"

static struct tokenizer *load(const char *sub)
{
    char dir[512], err[256];
    struct tokenizer *t = NULL;
    snprintf(dir, sizeof dir, "%s/%s", test_fixtures(), sub);
    if (tok_load_dir(dir, &t, err, sizeof err))
        fprintf(stderr, "    %s\n", err);
    return t;
}

static struct tokenizer *g_gpt2, *g_spm; /* loaded once, on first use */

static const struct tokenizer *gpt2(void)
{
    if (!g_gpt2)
        g_gpt2 = load("tokenizers/gpt2");
    return g_gpt2;
}

static const struct tokenizer *spm(void)
{
    if (!g_spm)
        g_spm = load("models/stories260K");
    return g_spm;
}

/* ids: the ids of vocabulary strings separated by ' '; -1 for a missing one. */
static size_t ids(const struct tokenizer *t, const char *spec, int32_t *out)
{
    size_t n = 0;
    for (const char *p = spec; *p;) {
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        out[n++] = tok_str_to_id(t, p, len);
        p += len + (e != NULL);
    }
    return n;
}

#define STOPS(...) ((const struct str[]){__VA_ARGS__})
#define S(lit) ((struct str){lit, sizeof(lit) - 1})

struct run {
    struct arena a;
    struct text_stream ts;
    struct buf out[64]; /* out[i]: what the i-th feed (then finish) appended */
    size_t n_out;
    int rc;
};

static void run_open(struct run *r, const struct tokenizer *t, const struct text_stream_opts *o)
{
    memset(r, 0, sizeof *r);
    arena_init(&r->a, 1 << 16, 0);
    r->rc = text_stream_init(&r->ts, t, o, &r->a);
}

/* run_feed: feeds ids one at a time (chunk 1) or all at once (chunk 0). */
static void run_feed(struct run *r, const int32_t *v, size_t n, int chunk)
{
    for (size_t at = 0; !r->rc && at < n;) {
        size_t k = chunk ? 1 : n;
        buf_init(&r->out[r->n_out], 0);
        r->rc = text_stream_feed(&r->ts, v + at, k, &r->out[r->n_out++]);
        at += k;
    }
}

static void run_finish(struct run *r)
{
    buf_init(&r->out[r->n_out], 0);
    if (!r->rc)
        r->rc = text_stream_finish(&r->ts, &r->out[r->n_out++]);
}

/* run_text: every delta so far, concatenated (static storage). */
static const char *run_text(const struct run *r)
{
    static char s[4096];
    size_t n = 0;
    for (size_t i = 0; i < r->n_out && n + r->out[i].n < sizeof s; i++) {
        memcpy(s + n, r->out[i].p, r->out[i].n);
        n += r->out[i].n;
    }
    s[n] = '\0';
    return s;
}

static void run_close(struct run *r)
{
    for (size_t i = 0; i < r->n_out; i++)
        buf_deinit(&r->out[i]);
    text_stream_deinit(&r->ts);
    arena_deinit(&r->a);
}

/* one: init, feed one id at a time, finish; returns the whole text. */
static const char *one(struct run *r, const struct tokenizer *t, const struct text_stream_opts *o,
                       const char *spec)
{
    int32_t v[64];
    size_t n = ids(t, spec, v);
    run_open(r, t, o);
    run_feed(r, v, n, 1);
    run_finish(r);
    return run_text(r);
}

TEST(no_stop_equals_decode)
{
    REQUIRE(spm() && gpt2());
    struct run r;
    struct text_stream_opts o = {.skip_special = true};
    CHECK_STREQ(one(&r, spm(), &o, "<s> ▁Once ▁upon ▁a ▁time . </s>"), "Once upon a time.");
    CHECK_EQ(r.rc, 0);
    CHECK(!r.ts.stopped);
    CHECK_EQ(r.ts.stop_index, -1);
    CHECK_EQ(r.ts.n_tokens, 7);
    CHECK_EQ(r.ts.n_chars, 17);
    run_close(&r);
    o.skip_special = false;
    CHECK_STREQ(one(&r, gpt2(), &o, "Hello Ġworld <|endoftext|>"), "Hello world<|endoftext|>");
    run_close(&r);
}

TEST(stop_split_across_tokens_is_never_partly_sent)
{
    REQUIRE(gpt2());
    struct run r;
    struct text_stream_opts o = {.stop = STOPS(S("o w")), .n_stop = 1};
    CHECK_STREQ(one(&r, gpt2(), &o, "Hello Ġworld Ġ."), "Hell");
    CHECK_STREQ(r.out[0].p, "Hell"); /* the "o" is held: "o w" may follow */
    CHECK_STREQ(r.out[1].p, "");
    CHECK(r.ts.stopped);
    CHECK_EQ(r.ts.stop_index, 0);
    CHECK_EQ(r.ts.n_tokens, 2);
    run_close(&r);
}

TEST(include_stop_str_in_output_cuts_after_it)
{
    REQUIRE(gpt2());
    struct run r;
    struct text_stream_opts o = {.stop = STOPS(S("o w")), .n_stop = 1, .include_stop = true};
    CHECK_STREQ(one(&r, gpt2(), &o, "Hello Ġworld Ġ."), "Hello w");
    CHECK_STREQ(r.out[0].p, "Hello"); /* nothing is held back with include_stop */
    CHECK(r.ts.stopped);
    CHECK_EQ(r.ts.n_tokens, 2);
    CHECK_EQ(r.ts.n_chars, 7);
    run_close(&r);
}

TEST(only_a_possible_stop_start_is_held)
{
    REQUIRE(gpt2());
    struct run r;
    struct text_stream_opts o = {.stop = STOPS(S("xyz"), S("lo!")), .n_stop = 2};
    one(&r, gpt2(), &o, "Hello Ġworld Ġ.");
    CHECK_STREQ(r.out[0].p, "Hel"); /* "lo" could become "lo!" */
    CHECK_STREQ(r.out[1].p, "lo world");
    CHECK_STREQ(r.out[2].p, " .");
    CHECK_STREQ(r.out[3].p, "");
    CHECK(!r.ts.stopped);
    run_close(&r);
}

TEST(first_ending_occurrence_wins_then_list_order)
{
    REQUIRE(gpt2());
    struct run r;
    /* both end on the same byte: the earlier one in the list */
    struct text_stream_opts o = {.stop = STOPS(S("bc"), S("abc")), .n_stop = 2};
    CHECK_STREQ(one(&r, gpt2(), &o, "a b c d"), "a");
    CHECK_EQ(r.ts.stop_index, 0);
    run_close(&r);
    o.stop = STOPS(S("abc"), S("bc"));
    CHECK_STREQ(one(&r, gpt2(), &o, "a b c d"), "");
    CHECK_EQ(r.ts.stop_index, 0);
    run_close(&r);
    /* "c" ends before "abcd" does, although "abcd" starts first */
    o.stop = STOPS(S("abcd"), S("c"));
    CHECK_STREQ(one(&r, gpt2(), &o, "a b c d"), "ab");
    CHECK_EQ(r.ts.stop_index, 1);
    CHECK_EQ(r.ts.n_tokens, 3);
    run_close(&r);
    /* one token completes two stops: the first to end, whatever the list order (vLLM
     * would take "b", the first in the list that the step's text contains) */
    o.stop = STOPS(S("b"), S("a"));
    CHECK_STREQ(one(&r, gpt2(), &o, "ab"), "");
    CHECK_EQ(r.ts.stop_index, 1);
    run_close(&r);
}

TEST(overlapping_prefixes_are_matched)
{
    REQUIRE(gpt2());
    struct run r;
    /* "abab" then "c": the automaton falls back to the border "ab" */
    struct text_stream_opts o = {.stop = STOPS(S("abc")), .n_stop = 1};
    CHECK_STREQ(one(&r, gpt2(), &o, "a b a b c d"), "ab");
    CHECK(r.ts.stopped);
    CHECK_EQ(r.ts.n_tokens, 5);
    run_close(&r);
}

TEST(several_ids_in_one_feed_stop_midway)
{
    REQUIRE(gpt2());
    int32_t v[8];
    size_t n = ids(gpt2(), "a b c d a b", v);
    struct text_stream_opts o = {.stop = STOPS(S("cd")), .n_stop = 1};
    struct run r;
    run_open(&r, gpt2(), &o);
    run_feed(&r, v, n, 0);
    CHECK_STREQ(r.out[0].p, "ab");
    CHECK(r.ts.stopped);
    CHECK_EQ(r.ts.n_tokens, 4); /* "d" completed it; the rest was ignored */
    run_feed(&r, v, 2, 0);      /* later feeds are ignored */
    CHECK_STREQ(r.out[1].p, "");
    CHECK_EQ(r.ts.n_tokens, 4);
    run_finish(&r);
    CHECK_STREQ(run_text(&r), "ab");
    CHECK_EQ(r.rc, 0);
    run_close(&r);
}

TEST(min_tokens_ignores_stops_in_their_text)
{
    REQUIRE(gpt2());
    struct run r;
    struct text_stream_opts o = {.stop = STOPS(S("a")), .n_stop = 1, .min_tokens = 2};
    CHECK_STREQ(one(&r, gpt2(), &o, "a a b a c"), "aab");
    CHECK_EQ(r.ts.n_tokens, 4);
    run_close(&r);
    /* a stop that starts in the first min_tokens' text and ends after it counts */
    o.stop = STOPS(S("ab"));
    o.min_tokens = 1;
    CHECK_STREQ(one(&r, gpt2(), &o, "a b c"), "");
    CHECK(r.ts.stopped);
    run_close(&r);
}

TEST(prompt_primes_the_leading_space)
{
    REQUIRE(spm());
    int32_t p[8];
    size_t np = ids(spm(), "<s> ▁Once ▁upon ▁a", p);
    struct run r;
    struct text_stream_opts o = {.skip_special = true, .prompt = p, .n_prompt = np};
    CHECK_STREQ(one(&r, spm(), &o, "▁time ."), " time.");
    run_close(&r);
    o.prompt = NULL; /* without a prompt the text's leading space is stripped, as HF does */
    CHECK_STREQ(one(&r, spm(), &o, "▁time ."), "time.");
    run_close(&r);
    /* a stop string in the prompt's text does not count, nor does one across the seam */
    o.prompt = p;
    o.stop = STOPS(S("upon"), S("a time"));
    o.n_stop = 2;
    CHECK_STREQ(one(&r, spm(), &o, "▁time ."), " time.");
    CHECK(!r.ts.stopped);
    run_close(&r);
}

TEST(golden_prompt_continuation)
{
    REQUIRE(spm());
    /* golden/golden_prompt_once_upon_a_time.json: prompt_ids, the first 10 generated_ids
     * and the start of generated_text */
    int32_t p[] = {1, 403, 407, 261, 378};
    int32_t g[] = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317};
    struct text_stream_opts o = {.skip_special = true, .prompt = p, .n_prompt = 5};
    struct run r;
    run_open(&r, spm(), &o);
    run_feed(&r, g, 10, 1);
    run_finish(&r);
    CHECK_STREQ(run_text(&r), ", there was a little girl named Lily");
    run_close(&r);
}

TEST(long_prompt_primes_a_bounded_suffix)
{
    REQUIRE(spm());
    int32_t p[200];
    for (size_t i = 0; i < 200; i++)
        p[i] = i % 2 ? 261 : 403; /* "▁a▁Once..." */
    struct text_stream_opts o = {.skip_special = true, .prompt = p, .n_prompt = 200};
    struct run r;
    CHECK_STREQ(one(&r, spm(), &o, "▁time"), " time");
    CHECK_EQ(r.ts.st.started, true);
    run_close(&r);
}

TEST(split_utf8_character_is_sent_whole)
{
    REQUIRE(spm());
    struct run r;
    struct text_stream_opts o = {.stop = STOPS(S("\xe2\x82\xac!")), .n_stop = 1};
    one(&r, spm(), &o, "a <0xE2> <0x82> <0xAC> b");
    CHECK_STREQ(r.out[0].p, "a");
    CHECK_STREQ(r.out[1].p, "");
    CHECK_STREQ(r.out[2].p, "");
    CHECK_STREQ(r.out[3].p, ""); /* "€" may begin "€!" */
    CHECK_STREQ(r.out[4].p, "€b");
    CHECK_EQ(r.ts.n_chars, 3);
    run_close(&r);
    o.stop = STOPS(S("\xe2\x82\xac"));
    CHECK_STREQ(one(&r, spm(), &o, "a <0xE2> <0x82> <0xAC> b"), "a");
    CHECK_EQ(r.ts.n_tokens, 4);
    run_close(&r);
}

TEST(finish_flushes_an_unfinished_character_as_hf_decode)
{
    REQUIRE(spm());
    int32_t v[4];
    size_t n = ids(spm(), "a <0xE2> <0x82>", v);
    struct buf want;
    buf_init(&want, 0);
    REQUIRE(tok_decode(spm(), v, n, true, &want) == 0);
    struct run r;
    struct text_stream_opts o = {.skip_special = true};
    CHECK_STREQ(one(&r, spm(), &o, "a <0xE2> <0x82>"), want.p);
    CHECK_STREQ(r.out[2].p, "");
    CHECK(r.out[3].n > 0);
    run_close(&r);
    /* a stop string may still complete in the flushed text */
    o.stop = STOPS(S("\xef\xbf\xbd"));
    o.n_stop = 1;
    CHECK_STREQ(one(&r, spm(), &o, "a <0xE2> <0x82>"), "a");
    CHECK(r.ts.stopped);
    CHECK_EQ(r.ts.n_tokens, 3);
    run_close(&r);
    buf_deinit(&want);
}

TEST(prompt_ending_inside_a_character)
{
    REQUIRE(spm());
    int32_t p[4], g[4];
    size_t np = ids(spm(), "a <0xE2>", p), ng = ids(spm(), "<0x82> <0xAC> b", g);
    struct buf want;
    buf_init(&want, 0);
    REQUIRE(tok_decode(spm(), g, ng, true, &want) == 0); /* orphans: U+FFFD each */
    struct text_stream_opts o = {.skip_special = true, .prompt = p, .n_prompt = np};
    struct run r;
    run_open(&r, spm(), &o);
    run_feed(&r, g, ng, 1);
    run_finish(&r);
    CHECK_STREQ(run_text(&r), want.p);
    run_close(&r);
    buf_deinit(&want);
}

/* regression: the primed prompt's pending bytes were counted as HF's decode length minus
 * what tok_stream returned, which differ on a byte-fallback run that is not UTF-8 (HF: one
 * U+FFFD per byte of the run "\xc3\xa9\xa9", tok_stream: "é" then one U+FFFD), so " time"
 * lost its first bytes */
TEST(prompt_with_invalid_byte_run_skips_exactly)
{
    REQUIRE(spm());
    int32_t p[4];
    size_t np = ids(spm(), "a <0xC3> <0xA9> <0xA9>", p);
    struct text_stream_opts o = {.skip_special = true, .prompt = p, .n_prompt = np};
    struct run r;
    CHECK_STREQ(one(&r, spm(), &o, "▁time ."), " time.");
    run_close(&r);
}

TEST(bad_options_and_limits)
{
    REQUIRE(gpt2());
    struct str many[TEXT_STREAM_MAX_STOP + 1];
    for (size_t i = 0; i <= TEXT_STREAM_MAX_STOP; i++)
        many[i] = S("x");
    struct text_stream_opts o = {.stop = many, .n_stop = TEXT_STREAM_MAX_STOP + 1};
    struct run r;
    run_open(&r, gpt2(), &o);
    CHECK_EQ(r.rc, ERR_INVAL);
    run_close(&r);
    o.n_stop = TEXT_STREAM_MAX_STOP;
    run_open(&r, gpt2(), &o);
    CHECK_EQ(r.rc, 0);
    run_close(&r);
    o.stop = STOPS(S("ok"), S(""));
    o.n_stop = 2;
    run_open(&r, gpt2(), &o);
    CHECK_EQ(r.rc, ERR_INVAL);
    run_close(&r);
    o.stop = STOPS(S("\xe2\x82"));
    o.n_stop = 1;
    run_open(&r, gpt2(), &o);
    CHECK_EQ(r.rc, ERR_INVAL);
    run_close(&r);
    /* a stop string larger than the arena allows */
    static char big[100000];
    memset(big, 'x', sizeof big);
    struct str b = {big, sizeof big};
    o.stop = &b;
    run_open(&r, gpt2(), &o);
    CHECK_EQ(r.rc, ERR_LIMIT);
    run_close(&r);
    text_stream_deinit(&r.ts); /* harmless twice */
}

TEST(out_buffer_limit)
{
    REQUIRE(gpt2());
    int32_t v[4];
    size_t n = ids(gpt2(), "Hello Ġworld", v);
    struct text_stream_opts o = {0};
    struct arena a;
    arena_init(&a, 0, 0);
    struct text_stream ts;
    REQUIRE(text_stream_init(&ts, gpt2(), &o, &a) == 0);
    struct buf out;
    buf_init(&out, 4);
    CHECK_EQ(text_stream_feed(&ts, v, n, &out), ERR_LIMIT);
    buf_deinit(&out);
    text_stream_deinit(&ts);
    arena_deinit(&a);
}

static const char *lp(const struct tokenizer *t, const char *cand_spec, size_t i, const char *prev,
                      bool clean)
{
    static struct buf b;
    int32_t c[8], pv = -1;
    size_t n = ids(t, cand_spec, c);
    if (prev)
        ids(t, prev, &pv);
    buf_deinit(&b);
    buf_init(&b, 0);
    if (text_stream_logprob_token(t, c, n, i, pv, clean, &b))
        return "(error)";
    return b.p;
}

static const char *tstr(const struct tokenizer *t, const char *spec, bool clean)
{
    static struct buf b;
    int32_t id;
    ids(t, spec, &id);
    buf_deinit(&b);
    buf_init(&b, 0);
    return text_stream_token_str(t, id, clean, &b) ? "(error)" : b.p;
}

TEST(logprob_token_strings)
{
    REQUIRE(gpt2() && spm());
    CHECK_STREQ(tstr(spm(), "▁the", false), "the"); /* HF decode strips the leading space */
    CHECK_STREQ(tstr(spm(), "<s>", false), "<s>");
    CHECK_STREQ(tstr(spm(), "<0xE2>", false), "\xef\xbf\xbd");
    CHECK_STREQ(tstr(gpt2(), "Ġthe", false), " the");
    CHECK_STREQ(tstr(gpt2(), "Ġ.", false), " .");
    CHECK_STREQ(tstr(gpt2(), "Ġ.", true), "."); /* clean_up_tokenization */
    CHECK_STREQ(lp(spm(), "▁the", 0, NULL, false), "the");
    CHECK_STREQ(lp(spm(), "<0xC3>", 0, NULL, false), ""); /* unfinished, nothing to fix it */
    CHECK_STREQ(lp(spm(), "<0xA9>", 0, "<0xC3>", false), "\xc3\xa9");
    CHECK_STREQ(lp(spm(), "<0xC3> <0xA9>", 1, NULL, false), "\xc3\xa9");
    CHECK_STREQ(lp(spm(), "a <0xA9>", 1, "<0xC3>", false), "");
    CHECK_STREQ(lp(spm(), "<0xE2> <0x82>", 1, NULL, false), "");
    CHECK_STREQ(lp(spm(), "<0x82> <0xAC>", 1, "<0xE2>", false), "\xe2\x82\xac");
    int32_t c = 0;
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(text_stream_logprob_token(spm(), &c, 1, 1, -1, false, &b), ERR_INVAL);
    buf_deinit(&b);
}

TEST(text_offsets_count_code_points)
{
    const char *tok[] = {"\xc3\xa9", "ab", "\xf0\x9f\x98\x80", ""};
    size_t tn[] = {2, 2, 4, 0}, off[4];
    text_stream_text_offsets(tok, tn, 4, 5, off);
    CHECK_EQ(off[0], 5);
    CHECK_EQ(off[1], 6);
    CHECK_EQ(off[2], 8);
    CHECK_EQ(off[3], 9);
    CHECK_EQ(text_stream_chars("\xe6\x97\xa5\xe6\x9c\xac", 6), 2);
}

int main(int argc, char **argv)
{
    int rc = test_main(argc, argv);
    if (g_gpt2)
        tok_free(g_gpt2);
    if (g_spm)
        tok_free(g_spm);
    return rc;
}
