/*
 * test_metrics: vLLM's serving metrics on hand-computed timings: TTFT, TPOT, ITL, E2EL,
 * throughputs, goodput, peaks; NumPy's percentile interpolation; the Gamma arrival schedule
 * and its rescaling. (tests/benchserve/test_metrics_numpy.py checks the statistics against
 * NumPy itself on random data.)
 */
#include <math.h>
#include <stdlib.h>

#include "bench/metrics.h"
#include "bench/rng.h"
#include "tests/test.h"

#define NEAR(a, b) (fabs((double)(a) - (double)(b)) <= 1e-9 * (1.0 + fabs((double)(b))))

TEST(percentile_linear_interpolation_by_hand)
{
    double v[] = {1, 2, 3, 4};
    CHECK(NEAR(bench_percentile(v, 4, 50), 2.5));
    /* index (4 - 1) * 0.9 = 2.7: 3 + 0.7 * (4 - 3) */
    CHECK(NEAR(bench_percentile(v, 4, 90), 3.7));
    CHECK(NEAR(bench_percentile(v, 4, 99), 3.97));
    CHECK(NEAR(bench_percentile(v, 4, 25), 1.75));
    CHECK(bench_percentile(v, 4, 0) == 1.0);
    CHECK(bench_percentile(v, 4, 100) == 4.0);
    double one[] = {5};
    CHECK(bench_percentile(one, 1, 0) == 5.0);
    CHECK(bench_percentile(one, 1, 99) == 5.0);
    CHECK(bench_percentile(one, 1, 100) == 5.0);
    double two[] = {10, 20};
    CHECK(NEAR(bench_percentile(two, 2, 99), 19.9));
}

TEST(stat_of_empty_list_is_numpy_on_zero)
{
    double pct[] = {50, 99};
    struct bench_stat s;
    bench_stat_compute(NULL, 0, pct, 2, 1000.0, &s);
    CHECK(s.mean == 0 && s.median == 0 && s.std == 0 && s.pct[0] == 0 && s.pct[1] == 0);
}

TEST(stat_mean_median_population_std)
{
    double v[] = {0.4, 0.1, 0.3, 0.2};
    double pct[] = {99};
    struct bench_stat s;
    bench_stat_compute(v, 4, pct, 1, 1000.0, &s);
    CHECK(NEAR(s.mean, 250));
    CHECK(NEAR(s.median, 250));
    /* deviations +-150, +-50 ms: variance (2*22500 + 2*2500) / 4 = 12500 */
    CHECK(NEAR(s.std, sqrt(12500.0)));
    CHECK(NEAR(s.pct[0], 397)); /* index 2.97: 300 + 0.97 * 100 */
}

static struct bench_result ok_result(double start, double ttft, const double *itl, size_t n,
                                     double latency, int out, int prompt)
{
    struct bench_result r = {.success = true, .start_time = start, .ttft = ttft,
                             .latency = latency, .output_tokens = out, .prompt_len = prompt};
    for (size_t i = 0; i < n; i++)
        CHECK(bench_result_add_itl(&r, itl[i]) == 0);
    return r;
}

TEST(metrics_by_hand)
{
    double itl1[] = {0.02, 0.03, 0.05}, itl2[] = {0.1};
    struct bench_result r[3];
    r[0] = ok_result(0.0, 0.1, itl1, 3, 0.2, 4, 10);
    r[1] = ok_result(0.05, 0.3, itl2, 1, 0.4, 2, 20);
    r[2] = (struct bench_result){.success = false, .prompt_len = 99, .output_tokens = 7};
    double pct[] = {90, 99};
    struct bench_slo slo = {200, 50, -1};
    struct bench_metrics m;
    REQUIRE(bench_metrics_compute(r, 3, 1.0, pct, 2, &slo, &m) == 0);
    CHECK_EQ(m.completed, 2);
    CHECK_EQ(m.failed, 1);
    CHECK_EQ(m.total_input, 30); /* failed requests count no tokens */
    CHECK_EQ(m.total_output, 6);
    CHECK(NEAR(m.request_throughput, 2.0));
    CHECK(NEAR(m.output_throughput, 6.0));
    CHECK(NEAR(m.total_token_throughput, 36.0));
    /* TTFT 100 and 300 ms */
    CHECK(NEAR(m.ttft.mean, 200) && NEAR(m.ttft.median, 200) && NEAR(m.ttft.std, 100));
    CHECK(NEAR(m.ttft.pct[1], 298)); /* 100 + 0.99 * 200 */
    /* TPOT: (0.2 - 0.1) / 3 and (0.4 - 0.3) / 1 */
    CHECK(NEAR(m.tpot.mean, (100.0 / 3 + 100.0) / 2));
    CHECK(NEAR(m.tpot.pct[1], 100.0 / 3 + 0.99 * (100 - 100.0 / 3)));
    /* ITL: every gap of every request: 20, 30, 50, 100 ms */
    CHECK(NEAR(m.itl.mean, 50) && NEAR(m.itl.median, 40));
    CHECK(NEAR(m.itl.pct[0], 85)); /* index 2.7: 50 + 0.7 * 50 */
    CHECK(NEAR(m.e2el.mean, 300) && NEAR(m.e2el.median, 300));
    /* goodput: only the first meets TTFT <= 200 ms and TPOT <= 50 ms */
    CHECK(NEAR(m.request_goodput, 1.0));
    /* all six tokens land in the first second; both requests overlap */
    CHECK(NEAR(m.max_output_tokens_per_s, 6));
    CHECK_EQ(m.max_concurrent_requests, 2);
    for (int i = 0; i < 3; i++)
        bench_result_deinit(&r[i]);
}

TEST(one_token_outputs_have_no_tpot_but_count_zero_for_goodput)
{
    struct bench_result r[2];
    r[0] = ok_result(0, 0.5, NULL, 0, 0.5, 1, 5);
    r[1] = ok_result(0, 0.2, NULL, 0, 0.2, 1, 5);
    double pct[] = {50};
    struct bench_slo slo = {-1, 0, -1}; /* TPOT <= 0 ms: only TPOT-less requests pass */
    struct bench_metrics m;
    REQUIRE(bench_metrics_compute(r, 2, 2.0, pct, 1, &slo, &m) == 0);
    CHECK(m.tpot.mean == 0 && m.tpot.pct[0] == 0); /* empty list: NumPy on [0] */
    CHECK(NEAR(m.request_goodput, 1.0));            /* 2 good over 2 s */
    CHECK(m.itl.mean == 0);
    bench_result_deinit(&r[0]);
    bench_result_deinit(&r[1]);
}

TEST(peaks_bucket_tokens_by_second_and_sweep_half_open_intervals)
{
    double gaps[] = {0.5, 0.5, 0.5};
    struct bench_result r[2];
    /* tokens at 0.2, 0.7, 1.2, 1.7; the second request starts when the first ends */
    r[0] = ok_result(10.0, 0.2, gaps, 3, 1.7, 4, 1);
    r[1] = ok_result(11.7, 0.1, NULL, 0, 0.1, 1, 1); /* token at 1.8 */
    double pct[] = {50};
    struct bench_metrics m;
    REQUIRE(bench_metrics_compute(r, 2, 2.0, pct, 1, NULL, &m) == 0);
    CHECK(NEAR(m.max_output_tokens_per_s, 3)); /* second 1: 1.2, 1.7, 1.8 */
    CHECK_EQ(m.max_concurrent_requests, 1);    /* [10, 11.7) and [11.7, 11.8) */
    CHECK(m.request_goodput == 0);             /* no SLO given */
    bench_result_deinit(&r[0]);
    bench_result_deinit(&r[1]);
}

TEST(arrivals_all_at_once_and_uniform)
{
    struct rng r;
    rng_seed(&r, 1);
    double d[4];
    bench_arrival_delays(&r, 4, INFINITY, 1.0, d);
    CHECK(d[0] == 0 && d[1] == 0 && d[2] == 0 && d[3] == 0);
    bench_arrival_delays(&r, 4, 4.0, INFINITY, d);
    CHECK(NEAR(d[0], 0.25) && NEAR(d[1], 0.5) && NEAR(d[2], 0.75) && NEAR(d[3], 1.0));
}

TEST(arrivals_gamma_rescaled_so_the_last_is_at_n_over_rate)
{
    struct rng r;
    rng_seed(&r, 7);
    for (int k = 0; k < 3; k++) {
        double burst[] = {0.25, 1.0, 4.0};
        size_t n = 1000;
        double *d = malloc(n * sizeof *d);
        REQUIRE(d);
        bench_arrival_delays(&r, n, 8.0, burst[k], d);
        CHECK(NEAR(d[n - 1], 1000.0 / 8.0));
        CHECK(d[0] > 0);
        for (size_t i = 1; i < n; i++)
            CHECK(d[i] >= d[i - 1]);
        free(d);
    }
}

TEST(arrival_gaps_follow_the_gamma_shape)
{
    /* Gamma(b, 1/(R b)) gaps: after rescaling the mean gap is 1/R exactly and the squared
     * coefficient of variation stays 1/b; 40000 gaps put the estimate within ~2% */
    struct rng r;
    rng_seed(&r, 11);
    size_t n = 40000;
    double *d = malloc(n * sizeof *d);
    REQUIRE(d);
    double burst[] = {0.5, 1.0, 3.0};
    for (int k = 0; k < 3; k++) {
        bench_arrival_delays(&r, n, 10.0, burst[k], d);
        double sum = 0, sq = 0, prev = 0;
        for (size_t i = 0; i < n; i++) {
            double g = d[i] - prev;
            prev = d[i];
            sum += g;
            sq += g * g;
        }
        double mean = sum / n, var = sq / n - mean * mean;
        CHECK(NEAR(mean, 0.1));
        double cv2 = var / (mean * mean);
        CHECK(fabs(cv2 * burst[k] - 1.0) < 0.06);
    }
    free(d);
}

TEST(gamma_deviates_have_the_right_moments)
{
    struct rng r;
    rng_seed(&r, 3);
    double shapes[] = {0.3, 1.0, 2.5, 9.0};
    for (int k = 0; k < 4; k++) {
        double s = shapes[k], scale = 2.0, sum = 0, sq = 0;
        int n = 200000;
        for (int i = 0; i < n; i++) {
            double x = rng_gamma(&r, s, scale);
            CHECK(x >= 0);
            sum += x;
            sq += x * x;
        }
        double mean = sum / n, var = sq / n - mean * mean;
        CHECK(fabs(mean / (s * scale) - 1) < 0.02);
        CHECK(fabs(var / (s * scale * scale) - 1) < 0.05);
    }
}

TEST(rng_int_is_inclusive_and_uniform)
{
    struct rng r;
    rng_seed(&r, 5);
    int count[5] = {0};
    for (int i = 0; i < 50000; i++) {
        int64_t v = rng_int(&r, 3, 7);
        REQUIRE(v >= 3 && v <= 7);
        count[v - 3]++;
    }
    for (int i = 0; i < 5; i++)
        CHECK(abs(count[i] - 10000) < 500);
    struct rng a, b;
    rng_seed(&a, 42);
    rng_seed(&b, 42);
    for (int i = 0; i < 100; i++)
        CHECK(rng_u64(&a) == rng_u64(&b));
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
