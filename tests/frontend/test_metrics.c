/*
 * test_metrics: frontend/metrics: the rendered lines for known updates (names, labels,
 * escaping, number format, cumulative buckets), engine restarts that must not make a
 * counter go down, the bounded HTTP label set, bucket bounds from max_model_len, argument
 * errors, and a render that fails at the buffer's limit leaving the buffer as it was.
 * tests/frontend/test_metrics_prom.py checks the whole text against prometheus_client.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "frontend/metrics.h"
#include "tests/test.h"

static struct metrics m;
static struct buf out;

static const char *render(void)
{
    buf_reset(&out);
    if (metrics_render(&m, &out))
        return "";
    return out.p;
}

/* value: the value text of the sample line starting with `sample` (name and labels), or
 * "(none)". */
static const char *value(const char *text, const char *sample)
{
    static char v[64];
    size_t n = strlen(sample);
    for (const char *p = text; *p; p = strchr(p, '\n') + 1) {
        if (strncmp(p, sample, n) == 0 && p[n] == ' ') {
            size_t k = strcspn(p + n + 1, "\n");
            snprintf(v, sizeof v, "%.*s", (int)k, p + n + 1);
            return v;
        }
        if (!strchr(p, '\n'))
            break;
    }
    return "(none)";
}

static int count_lines(const char *text, const char *start)
{
    int n = 0;
    size_t k = strlen(start);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        n += strncmp(p, start, k) == 0;
    return n;
}

#define L "{model_name=\"m\"}"

TEST(init_errors)
{
    char name[METRICS_MAX_NAME + 2];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    CHECK_EQ(metrics_init(&m, name, false), ERR_LIMIT);
    name[METRICS_MAX_NAME] = '\0';
    CHECK_EQ(metrics_init(&m, name, false), 0);
    CHECK_EQ(metrics_init(&m, NULL, false), ERR_INVAL);
    CHECK_EQ(metrics_init(&m, "bad \xff utf-8", false), ERR_INVAL);
}

TEST(empty_rendering)
{
    REQUIRE(metrics_init(&m, "m", false) == 0);
    const char *t = render();
    CHECK_STREQ(value(t, "kiln:num_requests_running" L), "0.0");
    CHECK_STREQ(value(t, "kiln:kv_cache_usage_perc" L), "0.0");
    CHECK_STREQ(value(t, "kiln:prompt_tokens_total" L), "0.0");
    CHECK(strstr(t, "# HELP kiln:prompt_tokens_total Number of prefill tokens processed.\n"
                    "# TYPE kiln:prompt_tokens_total counter\n"));
    CHECK(strstr(t, "# TYPE kiln:iteration_tokens_total histogram\n"));
    CHECK(strstr(t, "# TYPE kiln:http_requests_total counter\n"));
    CHECK_STREQ(value(t, "kiln:request_success_total{finished_reason=\"abort\",model_name=\"m\"}"),
                "0.0");
    CHECK_STREQ(value(t, "kiln:time_to_first_token_seconds_bucket{le=\"+Inf\",model_name=\"m\"}"),
                "0.0");
    CHECK_EQ(count_lines(t, "kiln:http_requests_total"), 0);
    CHECK_EQ(count_lines(t, "vllm:"), 0);
    CHECK_EQ(count_lines(t, "# TYPE "), 17);
    CHECK_EQ(count_lines(t, "# HELP "), 17);
}

TEST(model_name_escaped)
{
    REQUIRE(metrics_init(&m, "a\"b\\c\nd/é", false) == 0);
    CHECK_STREQ(value(render(), "kiln:num_requests_waiting{model_name=\"a\\\"b\\\\c\\nd/é\"}"),
                "0.0");
}

TEST(histogram_buckets_cumulative)
{
    REQUIRE(metrics_init(&m, "m", false) == 0);
    metrics_first_token(&m, 0.001); /* on a bound: that bucket */
    metrics_first_token(&m, 0.0011);
    metrics_first_token(&m, 0.02);
    metrics_first_token(&m, 5000.0); /* past the last bound */
    metrics_first_token(&m, -1.0);   /* a clock step: counts as 0 */
    metrics_first_token(&m, NAN);    /* ignored */
    metrics_first_token(&m, INFINITY);
    const char *t = render();
#define B(le) value(t, "kiln:time_to_first_token_seconds_bucket{le=\"" le "\",model_name=\"m\"}")
    CHECK_STREQ(B("0.001"), "2.0");
    CHECK_STREQ(B("0.005"), "3.0");
    CHECK_STREQ(B("0.01"), "3.0");
    CHECK_STREQ(B("0.02"), "4.0");
    CHECK_STREQ(B("2560.0"), "4.0");
    CHECK_STREQ(B("+Inf"), "5.0");
#undef B
    CHECK_STREQ(value(t, "kiln:time_to_first_token_seconds_count" L), "5.0");
    CHECK_STREQ(value(t, "kiln:time_to_first_token_seconds_sum" L), "5000.0221");
    CHECK_EQ(count_lines(t, "kiln:time_to_first_token_seconds_bucket"), 23);
    CHECK_EQ(count_lines(t, "kiln:inter_token_latency_seconds_bucket"), 20);
    CHECK_EQ(count_lines(t, "kiln:e2e_request_latency_seconds_bucket"), 22);
    CHECK_EQ(count_lines(t, "kiln:iteration_tokens_total_bucket"), 14);
}

TEST(number_format_is_prometheus_clients)
{
    REQUIRE(metrics_init(&m, "m", false) == 0);
    metrics_token_gap(&m, 0.1);
    metrics_token_gap(&m, 0.2);
    metrics_first_token(&m, 1e-5);
    metrics_request_done(&m, METRICS_FINISH_STOP, 0, 0, 123456789.5, 1e16);
    REQUIRE(metrics_engine_totals(&m, 0, 1, 1000000, 1234567, 999999) == 0);
    const char *t = render();
    CHECK_STREQ(value(t, "kiln:inter_token_latency_seconds_sum" L), "0.30000000000000004");
    CHECK_STREQ(value(t, "kiln:time_to_first_token_seconds_sum" L), "1e-05");
    CHECK_STREQ(value(t, "kiln:e2e_request_latency_seconds_sum" L), "1.234567895e+08");
    CHECK_STREQ(value(t, "kiln:request_queue_time_seconds_sum" L), "1e+16");
    CHECK_STREQ(value(t, "kiln:prefix_cache_queries_total" L), "1e+06");
    CHECK_STREQ(value(t, "kiln:prefix_cache_hits_total" L), "1.234567e+06");
    CHECK_STREQ(value(t, "kiln:num_preemptions_total" L), "999999.0");
    CHECK(strstr(t, "kiln:request_prompt_tokens_bucket{le=\"100000.0\",model_name=\"m\"} 1.0\n"));
    CHECK(strstr(t, "kiln:request_prompt_tokens_bucket{le=\"+Inf\",model_name=\"m\"} 1.0\n"));
}

TEST(request_done_and_iteration)
{
    REQUIRE(metrics_init(&m, "m", false) == 0);
    metrics_iteration(&m, 100, 0);
    metrics_iteration(&m, 0, 7);
    metrics_iteration(&m, 20000, 1);
    metrics_request_done(&m, METRICS_FINISH_LENGTH, 100, 7, 2.0, 0.5);
    metrics_request_done(&m, (enum metrics_finish)42, 3, 0, 0.1, 0.0);
    const char *t = render();
    CHECK_STREQ(value(t, "kiln:prompt_tokens_total" L), "20100.0");
    CHECK_STREQ(value(t, "kiln:generation_tokens_total" L), "8.0");
    CHECK_STREQ(value(t, "kiln:iteration_tokens_total_bucket{le=\"8.0\",model_name=\"m\"}"), "1.0");
    CHECK_STREQ(value(t, "kiln:iteration_tokens_total_bucket{le=\"128.0\",model_name=\"m\"}"),
                "2.0");
    CHECK_STREQ(value(t, "kiln:iteration_tokens_total_bucket{le=\"16384.0\",model_name=\"m\"}"),
                "2.0");
    CHECK_STREQ(value(t, "kiln:iteration_tokens_total_count" L), "3.0");
    CHECK_STREQ(value(t, "kiln:request_success_total{finished_reason=\"length\",model_name=\"m\"}"),
                "1.0");
    CHECK_STREQ(value(t, "kiln:request_success_total{finished_reason=\"error\",model_name=\"m\"}"),
                "1.0");
    CHECK_STREQ(value(t, "kiln:request_generation_tokens_bucket{le=\"5.0\",model_name=\"m\"}"),
                "1.0");
    CHECK_STREQ(value(t, "kiln:request_generation_tokens_bucket{le=\"10.0\",model_name=\"m\"}"),
                "2.0");
    CHECK_STREQ(value(t, "kiln:e2e_request_latency_seconds_sum" L), "2.1");
    CHECK_STREQ(value(t, "kiln:request_queue_time_seconds_bucket{le=\"0.3\",model_name=\"m\"}"),
                "1.0");
}

TEST(engine_gauges_sum_over_engines)
{
    REQUIRE(metrics_init(&m, "m", false) == 0);
    CHECK_EQ(metrics_engine_load(&m, 0, 3, 1, 25, 100), 0);
    CHECK_EQ(metrics_engine_load(&m, 5, 4, 2, 75, 100), 0);
    CHECK_EQ(metrics_engine_load(&m, METRICS_MAX_ENGINES, 1, 1, 1, 1), ERR_RANGE);
    CHECK_EQ(metrics_engine_load(&m, 0, 9, 9, 101, 100), ERR_INVAL); /* nothing changes */
    const char *t = render();
    CHECK_STREQ(value(t, "kiln:num_requests_running" L), "7.0");
    CHECK_STREQ(value(t, "kiln:num_requests_waiting" L), "3.0");
    CHECK_STREQ(value(t, "kiln:kv_cache_usage_perc" L), "0.5");
    CHECK_EQ(metrics_engine_gone(&m, 5), 0);
    CHECK_EQ(metrics_engine_gone(&m, METRICS_MAX_ENGINES), ERR_RANGE);
    t = render();
    CHECK_STREQ(value(t, "kiln:num_requests_running" L), "3.0");
    CHECK_STREQ(value(t, "kiln:kv_cache_usage_perc" L), "0.25");
}

static double total(const char *name)
{
    char sample[128];
    snprintf(sample, sizeof sample, "kiln:%s_total" L, name);
    return strtod(value(render(), sample), NULL);
}

TEST(engine_restart_counters_never_decrease)
{
    REQUIRE(metrics_init(&m, "m", false) == 0);
    CHECK_EQ(metrics_engine_totals(&m, 0, 111, 1000, 400, 2), 0);
    CHECK_EQ(metrics_engine_totals(&m, 1, 222, 50, 10, 0), 0);
    CHECK(total("prefix_cache_queries") == 1050);
    CHECK_EQ(metrics_engine_totals(&m, 0, 111, 1500, 500, 3), 0);
    CHECK(total("prefix_cache_queries") == 1550);
    /* engine 0 restarts (new epoch) with small totals: 1500 is kept */
    CHECK_EQ(metrics_engine_totals(&m, 0, 333, 20, 5, 0), 0);
    CHECK(total("prefix_cache_queries") == 1570);
    CHECK(total("prefix_cache_hits") == 515);
    CHECK(total("num_preemptions") == 3);
    /* the same epoch going down: that counter alone is rebased */
    CHECK_EQ(metrics_engine_totals(&m, 0, 333, 20, 1, 1), 0);
    CHECK(total("prefix_cache_queries") == 1570);
    CHECK(total("prefix_cache_hits") == 516);
    CHECK(total("num_preemptions") == 4);
    /* engine 1 dies; its replacement starts from 0 with any epoch */
    CHECK_EQ(metrics_engine_gone(&m, 1), 0);
    CHECK(total("prefix_cache_queries") == 1570);
    CHECK_EQ(metrics_engine_totals(&m, 1, 222, 7, 0, 0), 0);
    CHECK(total("prefix_cache_queries") == 1577);
    CHECK_EQ(metrics_engine_totals(&m, 99, 1, 1, 1, 1), ERR_RANGE);
}

TEST(engine_counters_random_monotonic)
{
    REQUIRE(metrics_init(&m, "m", false) == 0);
    uint64_t v[4][3] = {{0}}, epoch[4] = {0};
    double prev[3] = {0};
    const char *names[3] = {"prefix_cache_queries", "prefix_cache_hits", "num_preemptions"};
    srand(7);
    for (int step = 0; step < 2000; step++) {
        int e = rand() % 4, r = rand() % 20;
        if (r == 0) {
            REQUIRE(metrics_engine_gone(&m, (uint32_t)e) == 0);
            memset(v[e], 0, sizeof v[e]);
            continue;
        }
        for (int k = 0; k < 3; k++)
            v[e][k] = r == 1 ? (uint64_t)(rand() % 10) : v[e][k] + (uint64_t)(rand() % 100);
        epoch[e] += r == 1;
        REQUIRE(metrics_engine_totals(&m, (uint32_t)e, epoch[e], v[e][0], v[e][1], v[e][2]) == 0);
        for (int k = 0; k < 3 && step % 50 == 0; k++) {
            double now = total(names[k]);
            CHECK(now >= prev[k]);
            prev[k] = now;
        }
    }
}

TEST(max_model_len_bounds)
{
    REQUIRE(metrics_init(&m, "m", false) == 0);
    CHECK_EQ(metrics_set_max_model_len(&m, 0), ERR_RANGE);
    CHECK_EQ(metrics_set_max_model_len(&m, 50), 0);
    const char *t = render();
    CHECK_EQ(count_lines(t, "kiln:request_prompt_tokens_bucket"), 7); /* 1 2 5 10 20 50 +Inf */
    CHECK_EQ(count_lines(t, "kiln:request_generation_tokens_bucket"), 7);
    CHECK_EQ(metrics_set_max_model_len(&m, UINT32_MAX), 0); /* 1 .. 2e9: 29 bounds */
    t = render();
    CHECK_EQ(count_lines(t, "kiln:request_prompt_tokens_bucket"), 30);
    CHECK(strstr(t, "kiln:request_prompt_tokens_bucket{le=\"2e+09\",model_name=\"m\"} 0.0\n"));
    CHECK_EQ(metrics_set_max_model_len(&m, 4096), 0);
    metrics_iteration(&m, 5, 5); /* not a token-count histogram */
    CHECK_EQ(metrics_set_max_model_len(&m, 8192), 0);
    metrics_request_done(&m, METRICS_FINISH_STOP, 10, 1, 1, 0);
    CHECK_EQ(metrics_set_max_model_len(&m, 9999), 0); /* the same bounds: 1 .. 5000 */
    CHECK_EQ(metrics_set_max_model_len(&m, 20000), ERR_STATE);
    CHECK_EQ(count_lines(render(), "kiln:request_prompt_tokens_bucket"), 13); /* .. 5000 +Inf */
}

TEST(http_labels_bounded)
{
    REQUIRE(metrics_init(&m, "m", false) == 0);
    metrics_http(&m, "/v1/chat/completions", "POST", 200);
    metrics_http(&m, "/v1/chat/completions", "POST", 200);
    metrics_http(&m, "/v1/chat/completions", "POST", 429);
    metrics_http(&m, "/v1/embeddings", "POST", 404);
    metrics_http(&m, NULL, NULL, 1000);
    metrics_http(&m, "/health", "BREW", 418);
    const char *t = render();
#define H(h, k, s)                                                                                 \
    value(t, "kiln:http_requests_total{handler=\"" h "\",method=\"" k                              \
             "\",model_name=\"m\",status=\"" s "\"}")
    CHECK_STREQ(H("/v1/chat/completions", "POST", "200"), "2.0");
    CHECK_STREQ(H("/v1/chat/completions", "POST", "429"), "1.0");
    CHECK_STREQ(H("other", "POST", "404"), "1.0");
    CHECK_STREQ(H("other", "other", "other"), "1.0");
    CHECK_STREQ(H("/health", "other", "4xx"), "1.0");
#undef H
    CHECK_EQ(count_lines(t, "kiln:http_requests_total{"), 5);
    srand(3);
    for (int i = 0; i < 100000; i++) {
        char path[32], method[16];
        snprintf(path, sizeof path, "/x%d", rand());
        snprintf(method, sizeof method, "M%d", rand() % 50);
        metrics_http(&m, path, method, rand() % 1000);
    }
    t = render();
    CHECK(count_lines(t, "kiln:http_requests_total{") <= 5 + METRICS_HTTP_STATUSES);
}

TEST(vllm_compat_copies)
{
    REQUIRE(metrics_init(&m, "m", true) == 0);
    metrics_http(&m, "/v1/models", "GET", 200);
    metrics_http(&m, "/v1/models", "GET", 204);
    metrics_http(&m, "/v1/models", "GET", 404);
    metrics_iteration(&m, 3, 4);
    const char *t = render();
    CHECK_EQ(count_lines(t, "# TYPE kiln:"), 17);
    CHECK_EQ(count_lines(t, "# TYPE vllm:"), 16);
    CHECK(strstr(t, "# TYPE http_requests_total counter\n"));
    CHECK_STREQ(value(t, "vllm:prompt_tokens_total" L), "3.0");
    CHECK_STREQ(value(t, "vllm:generation_tokens_total" L), "4.0");
    CHECK_STREQ(value(t, "http_requests_total{handler=\"/v1/models\",method=\"GET\","
                         "model_name=\"m\",status=\"2xx\"}"),
                "2.0");
    CHECK_STREQ(value(t, "http_requests_total{handler=\"/v1/models\",method=\"GET\","
                         "model_name=\"m\",status=\"4xx\"}"),
                "1.0");
    CHECK_STREQ(value(t, "kiln:http_requests_total{handler=\"/v1/models\",method=\"GET\","
                         "model_name=\"m\",status=\"204\"}"),
                "1.0");
}

TEST(render_appends_and_fails_cleanly)
{
    REQUIRE(metrics_init(&m, "m", true) == 0);
    struct buf b;
    buf_init(&b, 0);
    REQUIRE(buf_append_str(&b, "HTTP/1.1 200 OK\r\n\r\n") == 0);
    REQUIRE(metrics_render(&m, &b) == 0);
    CHECK(strncmp(b.p, "HTTP/1.1 200 OK\r\n\r\n# HELP kiln:", 30) == 0);
    size_t size = b.n - strlen("HTTP/1.1 200 OK\r\n\r\n");
    buf_deinit(&b);

    buf_init(&b, strlen("head") + size - 1); /* one byte short */
    REQUIRE(buf_append_str(&b, "head") == 0);
    CHECK_EQ(metrics_render(&m, &b), ERR_LIMIT);
    CHECK_EQ(b.n, 4);
    CHECK_STREQ(b.p, "head");
    b.limit = strlen("head") + size;
    CHECK_EQ(metrics_render(&m, &b), 0);
    CHECK_EQ(b.n, strlen("head") + size);
    buf_deinit(&b);
}

TEST(updates_are_cheap)
{
    /* Many updates of every kind: they only touch fixed arrays (ASan would see a stray
     * write), and the totals come out exact. */
    REQUIRE(metrics_init(&m, "m", false) == 0);
    for (int i = 0; i < 1000000; i++) {
        metrics_token_gap(&m, 0.001 * (i % 100));
        metrics_iteration(&m, 1, 1);
        metrics_http(&m, "/v1/completions", "POST", 200);
    }
    const char *t = render();
    CHECK_STREQ(value(t, "kiln:inter_token_latency_seconds_count" L), "1e+06");
    CHECK_STREQ(value(t, "kiln:generation_tokens_total" L), "1e+06");
    buf_deinit(&out);
}

int main(int argc, char **argv)
{
    buf_init(&out, 0);
    int rc = test_main(argc, argv);
    buf_deinit(&out);
    return rc;
}
