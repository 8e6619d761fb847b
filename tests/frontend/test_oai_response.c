/*
 * test_oai_response: the response writers of frontend/oai_response.h and the JSON primitives
 * of frontend/oai_response_json.h.
 *
 * Exact small bodies and events (chat and completions, whole and streamed, usage, errors,
 * [DONE], /v1/models, /tokenize, /detokenize, /version); the string escaper on every control
 * character, quotes, backslash and awkward UTF-8, valid (passed through byte for byte) and
 * invalid (repaired as Python's errors="replace" does); random strings whose output jansson
 * must parse back to the (repaired) input; floats that must read back exactly in the fewest
 * digits; and every writer at every byte limit, which must fail with ERR_LIMIT and leave the
 * buffer as it was. Every body and event written here is parsed with jansson. The openai
 * SDK's own reading of these bodies is checked in test_oai_response_sdk.py.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/utf8.h"
#include "frontend/oai_error.h"
#include "frontend/oai_response.h"
#include "frontend/oai_response_json.h"
#include "tests/test.h"

#define S(lit) ((struct str){(lit), sizeof(lit) - 1})

/* parses s[0..n) as one JSON value; NULL (and a message) when jansson refuses it. */
static json_t *parse(const char *s, size_t n)
{
    json_error_t e;
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j)
        fprintf(stderr, "    jansson: %s at %d: %.*s\n", e.text, e.position, (int)n, s);
    return j;
}

/* events_ok: whether b[0..n) is a sequence of "data: <json>\n\n" events, each parsing (or
 * [DONE]); *count gets the number of events. */
static int events_ok(const char *s, size_t n, int *count)
{
    *count = 0;
    while (n) {
        if (n < 8 || memcmp(s, "data: ", 6) != 0)
            return 0;
        const char *end = NULL;
        for (size_t i = 6; i + 1 < n; i++)
            if (s[i] == '\n' && s[i + 1] == '\n') {
                end = s + i;
                break;
            }
        if (!end)
            return 0;
        size_t len = (size_t)(end - s) - 6;
        if (!(len == 6 && memcmp(s + 6, "[DONE]", 6) == 0)) {
            json_t *j = parse(s + 6, len);
            if (!j)
                return 0;
            json_decref(j);
        }
        (*count)++;
        size_t used = (size_t)(end - s) + 2;
        s += used;
        n -= used;
    }
    return 1;
}

/* ---- strings ---- */

static void check_escape(const char *in, size_t n, const char *want)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(oai_response_json_str(&b, in, n), 0);
    CHECK_MEMEQ(b.p, b.n, want, strlen(want));
    json_t *j = parse(b.p, b.n);
    CHECK(j && json_is_string(j));
    buf_deinit(&b);
    json_decref(j);
}

TEST(escape_every_control_character)
{
    static const char *const short_forms[32] = {
        ['\b'] = "\\b", ['\t'] = "\\t", ['\n'] = "\\n", ['\f'] = "\\f", ['\r'] = "\\r",
    };
    for (int c = 0; c < 0x20; c++) {
        char in[3] = {'a', (char)c, 'b'}, want[16];
        if (short_forms[c])
            snprintf(want, sizeof want, "\"a%sb\"", short_forms[c]);
        else
            snprintf(want, sizeof want, "\"a\\u%04xb\"", c);
        check_escape(in, 3, want);
        /* decoded back to the same byte */
        struct buf b;
        buf_init(&b, 0);
        CHECK_EQ(oai_response_json_str(&b, in, 3), 0);
        json_t *j = parse(b.p, b.n);
        REQUIRE(j);
        CHECK_EQ(json_string_length(j), 3);
        CHECK(memcmp(json_string_value(j), in, 3) == 0);
        json_decref(j);
        buf_deinit(&b);
    }
    check_escape("\"", 1, "\"\\\"\"");
    check_escape("\\", 1, "\"\\\\\"");
    check_escape("/", 1, "\"/\"");
    check_escape("\x7f", 1, "\"\x7f\"");
    check_escape("", 0, "\"\"");
    check_escape("a\"b\\c\nd", 7, "\"a\\\"b\\\\c\\nd\"");
}

TEST(escape_passes_valid_utf8)
{
    static const char *const cases[] = {
        "\xc2\x80",         "\xc3\xa9",         "\xdf\xbf",         "\xe0\xa0\x80",
        "\xe2\x82\xac",     "\xe2\x80\xa8",     "\xe2\x80\xa9",     "\xef\xbb\xbf",
        "\xef\xbf\xbd",     "\xef\xbf\xbf",     "\xee\x80\x80",     "\xed\x9f\xbf",
        "\xf0\x90\x80\x80", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "\xe4\xb8\xad\xe6\x96\x87",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char want[32];
        snprintf(want, sizeof want, "\"%s\"", cases[i]);
        check_escape(cases[i], strlen(cases[i]), want);
    }
}

TEST(escape_repairs_invalid_utf8)
{
    /* expected: Python's bytes.decode("utf-8", "replace") */
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"\x80", "\"\xef\xbf\xbd\""},
        {"\xc0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\""},
        {"\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
        {"\xe2\x82", "\"\xef\xbf\xbd\""},
        {"\xe2\x82"
         "A",
         "\"\xef\xbf\xbd"
         "A\""},
        {"\xf4\x90\x80\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
        {"\xff", "\"\xef\xbf\xbd\""},
        {"\xf0\x9f\x98x", "\"\xef\xbf\xbdx\""},
        {"a\xc3", "\"a\xef\xbf\xbd\""},
        {"\xe0\xa0\n", "\"\xef\xbf\xbd\\n\""},
        {"\xf0\x9f\x98\xc3\xa9", "\"\xef\xbf\xbd\xc3\xa9\""},
        {"\x80\x80\"", "\"\xef\xbf\xbd\xef\xbf\xbd\\\"\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_escape(cases[i].in, strlen(cases[i].in), cases[i].want);
}

/* rand_piece: one random character or byte of a class that needs care. */
static size_t rand_piece(char *p, int invalid)
{
    static const char *const pieces[] = {
        "a",
        "Z",
        " ",
        "\"",
        "\\",
        "/",
        "\x7f",
        "\n",
        "\t",
        "\r",
        "\b",
        "\f",
        "\x01",
        "\x1f",
        "\xc3\xa9",
        "\xe2\x82\xac",
        "\xe2\x80\xa8",
        "\xef\xbf\xbd",
        "\xf0\x9f\x98\x80",
        "\xf4\x8f\xbf\xbf",
        "\xe4\xb8\xad",
    };
    static const char *const bad[] = {"\x80", "\xc0",         "\xe2\x82", "\xed\xa0\x80",
                                      "\xff", "\xf0\x9f\x98", "\xf5\x80"};
    int np = (int)(sizeof pieces / sizeof *pieces), nb = (int)(sizeof bad / sizeof *bad);
    int r = rand() % (np + (invalid ? nb : 0));
    const char *s = r < np ? pieces[r] : bad[r - np];
    if (r == 0 && rand() % 4 == 0) { /* a NUL byte now and then */
        p[0] = '\0';
        return 1;
    }
    size_t n = strlen(s);
    memcpy(p, s, n);
    return n;
}

TEST(escape_random_strings_parse_back)
{
    srand(7);
    for (int iter = 0; iter < 20000; iter++) {
        char in[256];
        size_t n = 0;
        int len = rand() % 40, invalid = iter % 2;
        for (int k = 0; k < len; k++)
            n += rand_piece(in + n, invalid);
        struct buf b, want;
        buf_init(&b, 0);
        buf_init(&want, 0);
        REQUIRE(buf_append(&b, "[", 1) == 0);
        REQUIRE(oai_response_json_str(&b, in, n) == 0);
        REQUIRE(buf_append(&b, "]", 1) == 0);
        REQUIRE(utf8_append_lossy(&want, in, n) == 0);
        json_t *j = parse(b.p, b.n);
        REQUIRE(j);
        json_t *s = json_array_get(j, 0);
        CHECK(s && json_string_length(s) == want.n &&
              memcmp(json_string_value(s), want.p, want.n) == 0);
        CHECK(utf8_valid(b.p, b.n));
        json_decref(j);
        buf_deinit(&b);
        buf_deinit(&want);
    }
}

/* ---- numbers ---- */

static void check_int(int64_t v, const char *want)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(oai_response_json_int(&b, v), 0);
    CHECK_STREQ(b.p, want);
    buf_deinit(&b);
}

TEST(ints)
{
    check_int(0, "0");
    check_int(7, "7");
    check_int(-1, "-1");
    check_int(1700000000, "1700000000");
    check_int(INT64_MAX, "9223372036854775807");
    check_int(INT64_MIN, "-9223372036854775808");
    struct buf b;
    buf_init(&b, 0);
    const int32_t ids[] = {0, -1, 9, 10, 128000, INT32_MAX, INT32_MIN};
    CHECK_EQ(oai_response_json_ids(&b, ids, 7), 0);
    CHECK_STREQ(b.p, "[0,-1,9,10,128000,2147483647,-2147483648]");
    buf_reset(&b);
    CHECK_EQ(oai_response_json_ids(&b, NULL, 0), 0);
    CHECK_STREQ(b.p, "[]");
    buf_deinit(&b);
}

static void check_lp(float v, const char *want)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(oai_response_json_logprob(&b, v), 0);
    CHECK_STREQ(b.p, want);
    buf_deinit(&b);
}

TEST(logprob_text)
{
    check_lp(-0.5f, "-0.5");
    check_lp(0.0f, "0.0");
    check_lp(-0.0f, "-0.0");
    check_lp(-3.0f, "-3.0");
    check_lp(-0.1f, "-0.1");
    check_lp(-1e-7f, "-1e-07");
    check_lp(-12.25f, "-12.25");
    check_lp(-9999.0f, "-9999.0");
    check_lp(-1e-45f, "-1e-45"); /* the smallest subnormal: one digit reads back */
    check_lp(-1.17549435e-38f, "-1.1754944e-38");
    check_lp(-0.693147182f, "-0.6931472");
    check_lp(-1e30f, "-9999.0");
    check_lp(-9999.5f, "-9999.0");
    check_lp(-INFINITY, "-9999.0");
    check_lp(INFINITY, "-9999.0");
    check_lp(NAN, "-9999.0");
}

/* sig_digits: the significant digits in a %g text (the zeros of an added ".0" and of an
 * integer's end not counted). */
static int sig_digits(const char *s)
{
    int n = 0, started = 0, zeros = 0;
    for (; *s && *s != 'e'; s++) {
        if (*s >= '1' && *s <= '9')
            started = 1;
        if (started && *s >= '0' && *s <= '9') {
            n++;
            zeros = *s == '0' ? zeros + 1 : 0;
        }
    }
    n -= zeros;
    return n > 0 ? n : 1;
}

TEST(floats_read_back_exactly_and_shortest)
{
    srand(11);
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = ((uint32_t)rand() << 16) ^ (uint32_t)rand();
        if (i % 2)
            bits = (bits & 0x807fffffu) | ((uint32_t)(100 + rand() % 30) << 23); /* ~logprobs */
        float v;
        memcpy(&v, &bits, 4);
        if (!isfinite(v))
            continue;
        char t[OAI_JSON_FLOAT_MAX];
        size_t n = oai_response_json_float_fmt(v, t);
        CHECK_EQ(n, strlen(t));
        float back = strtof(t, NULL);
        if (memcmp(&back, &v, 4) != 0) {
            TEST_FAIL_AT("%.9g wrote %s", (double)v, t);
            return;
        }
        int d = sig_digits(t);
        if (d > 1) {
            char u[512];
            snprintf(u, sizeof u, "%.*g", d - 1, (double)v);
            if (strtof(u, NULL) == v) {
                TEST_FAIL_AT("%s is not the shortest: %s", t, u);
                return;
            }
        }
        json_t *j = parse(t, n);
        CHECK(j && json_is_real(j));
        json_decref(j);
    }
}

TEST(utf8_bytes)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(oai_response_json_utf8_bytes(&b, "", 0), 0);
    CHECK_STREQ(b.p, "[]");
    buf_reset(&b);
    CHECK_EQ(oai_response_json_utf8_bytes(&b, " \xc3\xa9\x01", 4), 0);
    CHECK_STREQ(b.p, "[32,195,169,1]");
    buf_reset(&b);
    CHECK_EQ(oai_response_json_utf8_bytes(&b, "a\xff", 2), 0);
    CHECK_STREQ(b.p, "[97,239,191,189]");
    buf_deinit(&b);
}

/* ---- bodies ---- */

static const struct oai_resp_ctx chat_ctx = {
    OAI_CHAT, "chatcmpl-abc", 1700000000, {"m\"x", 3}, NULL,
};
static const struct oai_resp_ctx cmpl_ctx = {
    OAI_COMPLETION, "cmpl-1", 5, {"m", 1}, "fp_1",
};

static const struct oai_top_logprob tops[] = {{{"Hi", 2}, -0.5f}, {{"\xff", 1}, -INFINITY}};
static const struct oai_token_logprob chat_lp[] = {{{"Hi", 2}, -0.5f, false, tops, 2, 0}};
static const int32_t gen_ids[] = {1, 2};
static const int32_t prompt_ids[] = {7, 8};
static const struct oai_prompt_logprob_entry ple[] = {
    {8, -1.25f, 2, {"x", 1}}, {3, -0.25f, 1, {"y", 1}}, {8, -1.5f, 0, {"z", 1}}};
static const struct oai_prompt_logprob plp[] = {{NULL, 0}, {ple, 3}};
static const struct oai_prompt_info prompt = {true, prompt_ids, 2, true, plp, 2};
static const struct oai_usage use = {5, 3, 2};

static const struct oai_choice chat_choices[] = {
    {.index = 0,
     .text = {"Hi\n", 3},
     .has_lp = true,
     .lp = chat_lp,
     .n_lp = 1,
     .finish = OAI_FINISH_STOP,
     .stop = {OAI_STOP_STRING, {"</s>", 4}, 0},
     .has_token_ids = true,
     .token_ids = gen_ids,
     .n_token_ids = 2},
    {.index = 1, .text_null = true, .finish = OAI_FINISH_LENGTH},
};

static const char chat_want[] =
    "{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion\",\"created\":1700000000,"
    "\"model\":\"m\\\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"Hi\\n\"},\"logprobs\":{\"content\":[{\"token\":\"Hi\",\"logprob\":-0.5,"
    "\"bytes\":[72,105],\"top_logprobs\":[{\"token\":\"Hi\",\"logprob\":-0.5,\"bytes\":[72,105]},"
    "{\"token\":\"\xef\xbf\xbd\",\"logprob\":-9999.0,\"bytes\":[239,191,189]}]}]},"
    "\"finish_reason\":\"stop\",\"stop_reason\":\"</s>\",\"token_ids\":[1,2]},"
    "{\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":null},\"logprobs\":null,"
    "\"finish_reason\":\"length\",\"stop_reason\":null}],"
    "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8,"
    "\"prompt_tokens_details\":{\"cached_tokens\":2}},\"system_fingerprint\":null,"
    "\"prompt_logprobs\":[null,{\"8\":{\"logprob\":-1.5,\"rank\":null,\"decoded_token\":\"z\"},"
    "\"3\":{\"logprob\":-0.25,\"rank\":1,\"decoded_token\":\"y\"}}],\"prompt_token_ids\":[7,8]}";

static int write_chat(struct buf *b)
{
    return oai_write_chat_completion(b, &chat_ctx, chat_choices, 2, &use, &prompt);
}

TEST(chat_completion_body)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(write_chat(&b), 0);
    CHECK_STREQ(b.p, chat_want);
    json_t *j = parse(b.p, b.n);
    CHECK(j);
    json_decref(j);
    buf_deinit(&b);
}

/* completions: an echo'd first prompt token (null entries), a top token string twice */
static const struct oai_top_logprob ctops[] = {
    {{"a", 1}, -1.0f}, {{"b", 1}, -2.0f}, {{"a", 1}, -0.75f}};
static const struct oai_token_logprob cmpl_lp[] = {
    {{"<s>", 3}, 0, true, NULL, 0, 0},
    {{"a", 1}, -0.75f, false, ctops, 3, 3},
    {{"\n", 1}, -0.125f, false, NULL, 0, 4},
};
static const struct oai_choice cmpl_choices[] = {
    {.index = 0,
     .text = {"<s>a\n", 5},
     .has_lp = true,
     .lp = cmpl_lp,
     .n_lp = 3,
     .finish = OAI_FINISH_STOP,
     .stop = {OAI_STOP_TOKEN, {NULL, 0}, 128009},
     .has_token_ids = true,
     .token_ids = gen_ids,
     .n_token_ids = 2,
     .prompt = &prompt},
    {.index = 1, .text = {"", 0}, .finish = OAI_FINISH_ABORT},
};

static const char cmpl_want[] =
    "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"text\":\"<s>a\\n\",\"logprobs\":{\"tokens\":[\"<s>\",\"a\","
    "\"\\n\"],\"token_logprobs\":[null,-0.75,-0.125],\"top_logprobs\":[null,{\"a\":-0.75,"
    "\"b\":-2.0},{}],\"text_offset\":[0,3,4]},\"finish_reason\":\"stop\",\"stop_reason\":128009,"
    "\"token_ids\":[1,2],\"prompt_logprobs\":[null,{\"8\":{\"logprob\":-1.5,\"rank\":null,"
    "\"decoded_token\":\"z\"},\"3\":{\"logprob\":-0.25,\"rank\":1,\"decoded_token\":\"y\"}}],"
    "\"prompt_token_ids\":[7,8]},{\"index\":1,\"text\":\"\",\"logprobs\":null,"
    "\"finish_reason\":\"abort\",\"stop_reason\":null}],\"usage\":{\"prompt_tokens\":5,"
    "\"completion_tokens\":3,\"total_tokens\":8,\"prompt_tokens_details\":{\"cached_tokens\":2}},"
    "\"system_fingerprint\":\"fp_1\"}";

static int write_cmpl(struct buf *b)
{
    return oai_write_completion(b, &cmpl_ctx, cmpl_choices, 2, &use);
}

TEST(completion_body)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(write_cmpl(&b), 0);
    CHECK_STREQ(b.p, cmpl_want);
    json_t *j = parse(b.p, b.n);
    CHECK(j);
    json_decref(j);
    buf_deinit(&b);
}

/* ---- streams ---- */

static const char chat_stream_want[] =
    "data: {\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
    "\"model\":\"m\\\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
    "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"prompt_token_ids\":[7,8]}\n\n"
    "data: {\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
    "\"model\":\"m\\\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\u0000\\t\"},"
    "\"logprobs\":{\"content\":[{\"token\":\"\\t\",\"logprob\":-9999.0,\"bytes\":null,"
    "\"top_logprobs\":[]}]},\"finish_reason\":null,\"token_ids\":[1]}],\"usage\":"
    "{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8,\"prompt_tokens_details\":"
    "{\"cached_tokens\":2}}}\n\n"
    "data: {\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
    "\"model\":\"m\\\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
    "\"finish_reason\":\"stop\",\"stop_reason\":\"</s>\"}]}\n\n"
    "data: {\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
    "\"model\":\"m\\\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,"
    "\"total_tokens\":8,\"prompt_tokens_details\":{\"cached_tokens\":2}}}\n\n"
    "data: {\"error\": {\"message\": \"engine died\", \"type\": \"ServiceUnavailableError\", "
    "\"param\": null, \"code\": 503}}\n\n"
    "data: [DONE]\n\n";

static int write_chat_stream(struct buf *b)
{
    static const struct oai_token_logprob nolp[] = {{{"\t", 1}, 0, true, NULL, 0, 0}};
    static const int32_t one[] = {1};
    struct oai_choice first = {.index = 0, .role = true};
    struct oai_choice delta = {.index = 0,
                               .text = {"\0\t", 2},
                               .has_lp = true,
                               .lp = nolp,
                               .n_lp = 1,
                               .has_token_ids = true,
                               .token_ids = one,
                               .n_token_ids = 1};
    struct oai_choice last = {.index = 0,
                              .text_null = true,
                              .finish = OAI_FINISH_STOP,
                              .stop = {OAI_STOP_STRING, {"</s>", 4}, 0}};
    struct oai_error e;
    oai_error_set(&e, 503, NULL, "engine died");
    int rc = oai_write_chat_chunk(b, &chat_ctx, &first, NULL, &prompt);
    if (!rc)
        rc = oai_write_chat_chunk(b, &chat_ctx, &delta, &use, NULL);
    if (!rc)
        rc = oai_write_chat_chunk(b, &chat_ctx, &last, NULL, NULL);
    if (!rc)
        rc = oai_write_usage_chunk(b, &chat_ctx, &use);
    if (!rc)
        rc = oai_sse_error(b, &e);
    if (!rc)
        rc = oai_sse_done(b);
    return rc;
}

TEST(chat_stream_events)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(write_chat_stream(&b), 0);
    CHECK_STREQ(b.p, chat_stream_want);
    int n;
    CHECK(events_ok(b.p, b.n, &n));
    CHECK_EQ(n, 6);
    buf_deinit(&b);
}

static const char cmpl_stream_want[] =
    "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,\"model\":\"m\","
    "\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":3,\"text\":\"a\",\"logprobs\":"
    "{\"tokens\":[\"a\"],\"token_logprobs\":[-0.75],\"top_logprobs\":[{\"a\":-0.75,\"b\":-2.0}],"
    "\"text_offset\":[3]},\"finish_reason\":null,\"prompt_token_ids\":[7,8]}]}\n\n"
    "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,\"model\":\"m\","
    "\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":3,\"text\":\"\",\"logprobs\":null,"
    "\"finish_reason\":\"length\",\"stop_reason\":null}],\"usage\":{\"prompt_tokens\":5,"
    "\"completion_tokens\":3,\"total_tokens\":8,\"prompt_tokens_details\":"
    "{\"cached_tokens\":2}}}\n\n"
    "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":5,\"model\":\"m\","
    "\"system_fingerprint\":\"fp_1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
    "\"completion_tokens\":3,\"total_tokens\":8,\"prompt_tokens_details\":"
    "{\"cached_tokens\":2}}}\n\n";

static int write_cmpl_stream(struct buf *b)
{
    static const struct oai_prompt_info ids_only = {true, prompt_ids, 2, false, NULL, 0};
    struct oai_choice a = {.index = 3,
                           .text = {"a", 1},
                           .has_lp = true,
                           .lp = cmpl_lp + 1,
                           .n_lp = 1,
                           .prompt = &ids_only};
    struct oai_choice end = {.index = 3, .finish = OAI_FINISH_LENGTH};
    int rc = oai_write_completion_chunk(b, &cmpl_ctx, &a, NULL);
    if (!rc)
        rc = oai_write_completion_chunk(b, &cmpl_ctx, &end, &use);
    if (!rc)
        rc = oai_write_usage_chunk(b, &cmpl_ctx, &use);
    return rc;
}

TEST(completion_stream_events)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(write_cmpl_stream(&b), 0);
    CHECK_STREQ(b.p, cmpl_stream_want);
    int n;
    CHECK(events_ok(b.p, b.n, &n));
    CHECK_EQ(n, 3);
    buf_deinit(&b);
}

/* ---- small endpoints ---- */

static int write_small(struct buf *b)
{
    static const char *const names[] = {"kiln-model", "alias\"1"};
    static const int32_t ids[] = {128000, 9906};
    static const struct str strs[] = {{"<|begin_of_text|>", 17}, {"Hello", 5}};
    int rc = oai_write_models(b, names, 2, 1700000000, 8192, "/models/x");
    if (!rc)
        rc = buf_append(b, "\n", 1);
    if (!rc)
        rc = oai_write_models(b, names, 0, 1, 0, NULL);
    if (!rc)
        rc = buf_append(b, "\n", 1);
    if (!rc)
        rc = oai_write_tokenize(b, ids, 2, 8192, strs);
    if (!rc)
        rc = buf_append(b, "\n", 1);
    if (!rc)
        rc = oai_write_tokenize(b, NULL, 0, 4096, NULL);
    if (!rc)
        rc = buf_append(b, "\n", 1);
    if (!rc)
        rc = oai_write_detokenize(b, "Hello\x01 world", 12);
    if (!rc)
        rc = buf_append(b, "\n", 1);
    if (!rc)
        rc = oai_write_version(b, "0.1.0");
    return rc;
}

TEST(small_endpoints)
{
    struct buf b;
    buf_init(&b, 0);
    CHECK_EQ(write_small(&b), 0);
    const char *lines[6];
    size_t n = 0;
    for (char *p = b.p, *nl; n < 6; p = nl + 1) {
        lines[n++] = p;
        nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
    }
    REQUIRE(n == 6);
    json_t *m = parse(lines[0], strlen(lines[0]));
    REQUIRE(m);
    json_t *d = json_object_get(m, "data");
    CHECK_EQ(json_array_size(d), 2);
    json_t *c1 = json_array_get(d, 1);
    CHECK_STREQ(json_string_value(json_object_get(c1, "id")), "alias\"1");
    CHECK_STREQ(json_string_value(json_object_get(c1, "object")), "model");
    CHECK_STREQ(json_string_value(json_object_get(c1, "owned_by")), "kiln");
    CHECK_STREQ(json_string_value(json_object_get(c1, "root")), "/models/x");
    CHECK_EQ(json_integer_value(json_object_get(c1, "max_model_len")), 8192);
    CHECK_EQ(json_integer_value(json_object_get(c1, "created")), 1700000000);
    CHECK(json_is_null(json_object_get(c1, "parent")));
    json_t *perm = json_array_get(json_object_get(c1, "permission"), 0);
    const char *pid = json_string_value(json_object_get(perm, "id"));
    CHECK(pid && strncmp(pid, "modelperm-", 10) == 0 && strlen(pid) == 42);
    json_decref(m);
    CHECK_STREQ(lines[1], "{\"object\":\"list\",\"data\":[]}");
    CHECK_STREQ(lines[2], "{\"count\":2,\"max_model_len\":8192,\"tokens\":[128000,9906],"
                          "\"token_strs\":[\"<|begin_of_text|>\",\"Hello\"]}");
    CHECK_STREQ(lines[3], "{\"count\":0,\"max_model_len\":4096,\"tokens\":[]}");
    CHECK_STREQ(lines[4], "{\"prompt\":\"Hello\\u0001 world\"}");
    CHECK_STREQ(lines[5], "{\"version\":\"0.1.0\"}");
    for (size_t i = 1; i < 6; i++) {
        json_t *j = parse(lines[i], strlen(lines[i]));
        CHECK(j);
        json_decref(j);
    }
    buf_deinit(&b);
}

TEST(models_body_is_stable)
{
    static const char *const names[] = {"a"};
    struct buf x, y;
    buf_init(&x, 0);
    buf_init(&y, 0);
    CHECK_EQ(oai_write_models(&x, names, 1, 3, 16, NULL), 0);
    CHECK_EQ(oai_write_models(&y, names, 1, 3, 16, NULL), 0);
    CHECK_STREQ(x.p, y.p);
    CHECK(strstr(x.p, "\"root\":null,\"parent\":null,\"max_model_len\":16,"));
    buf_deinit(&x);
    buf_deinit(&y);
}

/* ---- ids ---- */

static int all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

TEST(new_ids)
{
    char a[OAI_RESP_ID_MAX], b[OAI_RESP_ID_MAX];
    CHECK_EQ(oai_response_new_id(OAI_CHAT, NULL, 0, a), 0);
    CHECK_EQ(oai_response_new_id(OAI_CHAT, "", 0, b), 0);
    CHECK_EQ(strlen(a), 9 + 32);
    CHECK(strncmp(a, "chatcmpl-", 9) == 0 && all_hex(a + 9, 32));
    CHECK(strcmp(a, b) != 0);
    CHECK_EQ(oai_response_new_id(OAI_COMPLETION, NULL, 0, a), 0);
    CHECK(strncmp(a, "cmpl-", 5) == 0 && strlen(a) == 37 && all_hex(a + 5, 32));
    CHECK_EQ(oai_response_new_id(OAI_CHAT, "req-42", 6, a), 0);
    CHECK_STREQ(a, "chatcmpl-req-42");
    CHECK_EQ(oai_response_new_id(OAI_COMPLETION, "a b\"\n\xc3\xa9", 7, a), 0);
    CHECK_STREQ(a, "cmpl-a_b\"___");
    char longer[200];
    memset(longer, 'x', sizeof longer);
    CHECK_EQ(oai_response_new_id(OAI_CHAT, longer, sizeof longer, a), 0);
    CHECK_EQ(strlen(a), 9 + OAI_RESP_ID_SUFFIX_MAX);
    CHECK(strlen(a) < OAI_RESP_ID_MAX);
    /* an id with a quote is escaped in bodies */
    struct oai_resp_ctx ctx = chat_ctx;
    char id[OAI_RESP_ID_MAX];
    oai_response_new_id(OAI_CHAT, "q\"\\", 3, id);
    ctx.id = id;
    struct buf out;
    buf_init(&out, 0);
    struct oai_usage u = {0, 0, 0};
    CHECK_EQ(oai_write_usage_chunk(&out, &ctx, &u), 0);
    CHECK(strstr(out.p, "\"id\":\"chatcmpl-q\\\"\\\\\""));
    int n;
    CHECK(events_ok(out.p, out.n, &n));
    buf_deinit(&out);
}

/* ---- limits ---- */

typedef int (*writer_fn)(struct buf *b);

/* check_limits: at every limit below its length, the event writer sequence w fails with
 * ERR_LIMIT and leaves the bytes already in the buffer and only whole events after them; at
 * its length it succeeds. */
static void check_limits(writer_fn w, const char *name)
{
    struct buf full;
    buf_init(&full, 0);
    REQUIRE(w(&full) == 0);
    size_t len = full.n;
    for (size_t lim = 0; lim <= len; lim++) {
        struct buf b;
        buf_init(&b, 3 + lim);
        REQUIRE(buf_append(&b, "xyz", 3) == 0);
        int rc = w(&b), n;
        int whole = b.n >= 3 && memcmp(b.p, "xyz", 3) == 0 && events_ok(b.p + 3, b.n - 3, &n);
        if ((lim < len && rc != ERR_LIMIT) || !whole) {
            TEST_FAIL_AT("%s at limit %zu: rc %d, %zu bytes", name, lim, rc, b.n);
            buf_deinit(&b);
            break;
        }
        if (lim == len)
            CHECK(rc == 0 && b.n == 3 + len && memcmp(b.p + 3, full.p, len) == 0);
        buf_deinit(&b);
    }
    buf_deinit(&full);
}

/* single-body writers: at a failure nothing at all may be left */
static void check_limits_exact(writer_fn w, const char *name)
{
    struct buf full;
    buf_init(&full, 0);
    REQUIRE(w(&full) == 0);
    for (size_t lim = 0; lim < full.n; lim++) {
        struct buf b;
        buf_init(&b, 3 + lim);
        REQUIRE(buf_append(&b, "xyz", 3) == 0);
        int rc = w(&b);
        if (rc != ERR_LIMIT || b.n != 3 || strcmp(b.p, "xyz") != 0) {
            TEST_FAIL_AT("%s at limit %zu: rc %d, %zu bytes", name, lim, rc, b.n);
            buf_deinit(&b);
            break;
        }
        buf_deinit(&b);
    }
    buf_deinit(&full);
}

static int one_chat_chunk(struct buf *b)
{
    return oai_write_chat_chunk(b, &chat_ctx, &chat_choices[0], &use, &prompt);
}

static int one_cmpl_chunk(struct buf *b)
{
    return oai_write_completion_chunk(b, &cmpl_ctx, &cmpl_choices[0], &use);
}

static int one_sse_error(struct buf *b)
{
    struct oai_error e;
    oai_error_set(&e, 400, "n", "n: must be >= 1, got \"0\"\n");
    return oai_sse_error(b, &e);
}

static int one_models(struct buf *b)
{
    static const char *const names[] = {"a", "b"};
    return oai_write_models(b, names, 2, 1, 2, "r");
}

static int one_bytes(struct buf *b)
{
    return oai_response_json_utf8_bytes(b, "\xff\xc3\xa9 x", 5);
}

static int one_ids(struct buf *b)
{
    static const int32_t ids[] = {1, -22, 333};
    return oai_response_json_ids(b, ids, 3);
}

TEST(every_writer_at_every_limit)
{
    check_limits_exact(write_chat, "chat");
    check_limits_exact(write_cmpl, "cmpl");
    check_limits_exact(one_chat_chunk, "chat chunk");
    check_limits_exact(one_cmpl_chunk, "cmpl chunk");
    check_limits_exact(one_sse_error, "sse error");
    check_limits_exact(oai_sse_done, "done");
    check_limits_exact(one_models, "models");
    check_limits(write_chat_stream, "events chat");
    check_limits(write_cmpl_stream, "events cmpl");
    check_limits_exact(one_bytes, "bytes");
    check_limits_exact(one_ids, "ids");
}

TEST(random_bodies_parse)
{
    srand(3);
    for (int iter = 0; iter < 2000; iter++) {
        char text[128], tok[64];
        size_t tn = 0, kn = 0;
        for (int k = rand() % 12; k > 0; k--)
            tn += rand_piece(text + tn, 1);
        for (int k = rand() % 4; k > 0; k--)
            kn += rand_piece(tok + kn, 1);
        for (size_t k = 0; k < tn; k++) /* jansson takes no NUL in object keys */
            text[k] = text[k] ? text[k] : 'N';
        for (size_t k = 0; k < kn; k++)
            tok[k] = tok[k] ? tok[k] : 'N';
        struct oai_top_logprob t[3] = {
            {{tok, kn}, -(float)rand() / 7.0f}, {{text, tn / 2}, -INFINITY}, {{tok, kn}, NAN}};
        struct oai_token_logprob lp[2] = {{{tok, kn}, -1.0f / (float)(1 + rand()), false, t, 3, 7},
                                          {{text, tn}, 0, iter % 2 == 0, t, 2, 9}};
        struct oai_choice c = {
            .index = (uint32_t)iter,
            .text = {text, tn},
            .text_null = iter % 5 == 0,
            .role = iter % 3 == 0,
            .has_lp = iter % 4 != 0,
            .lp = lp,
            .n_lp = 2,
            .finish = (enum oai_finish)(iter % 5),
            .stop = {(iter % 3 == 1) ? OAI_STOP_STRING : OAI_STOP_TOKEN, {tok, kn}, -iter}};
        struct oai_resp_ctx ctx = {OAI_CHAT, "id", iter, {text, tn}, iter % 2 ? tok : NULL};
        struct buf b;
        buf_init(&b, 0);
        REQUIRE(oai_write_chat_completion(&b, &ctx, &c, 1, &use, NULL) == 0);
        json_t *j = parse(b.p, b.n);
        CHECK(j);
        json_decref(j);
        buf_reset(&b);
        REQUIRE(oai_write_completion(&b, &ctx, &c, 1, &use) == 0);
        j = parse(b.p, b.n);
        CHECK(j);
        json_decref(j);
        buf_reset(&b);
        REQUIRE(oai_write_chat_chunk(&b, &ctx, &c, &use, NULL) == 0);
        REQUIRE(oai_write_completion_chunk(&b, &ctx, &c, NULL) == 0);
        int n;
        CHECK(events_ok(b.p, b.n, &n) && n == 2);
        CHECK(utf8_valid(b.p, b.n));
        buf_deinit(&b);
    }
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
