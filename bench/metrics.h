/*
 * metrics: the serving metrics of `vllm bench serve`, computed from per-request timings with
 * the same definitions (vllm/benchmarks/serve.py, calculate_metrics):
 *
 *   TTFT    time from sending a request to its first streamed event that has choices
 *   ITL     the gaps between consecutive such events (every gap of every request)
 *   TPOT    per request with more than one output token: (latency - TTFT) / (tokens - 1)
 *   E2EL    latency: from sending to the last event with choices
 *   throughputs   completed requests, output tokens and input + output tokens over the
 *                 benchmark's duration (first send to last completion)
 *   goodput       completed requests meeting every given SLO (TTFT, TPOT with 0 for one-token
 *                 outputs, E2EL; value <= SLO) per second
 *
 * Statistics are NumPy's: mean, population standard deviation, median, and percentiles with
 * np.percentile's default linear interpolation; an empty list counts as [0]. Failed requests
 * count only in `failed` (and as 0 output tokens). Pure computations; no I/O.
 */
#ifndef KILN_BENCH_METRICS_H
#define KILN_BENCH_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#define BENCH_MAX_PERCENTILES 8

/* bench_result: one request's outcome (vLLM's RequestFuncOutput). Times in seconds. */
struct bench_result {
    bool success;
    double start_time;  /* when it was sent, on the benchmark's clock */
    double queue_time;  /* waiting for --max-concurrency before it was sent */
    double ttft;        /* 0 unless success */
    double latency;     /* to the last event with choices */
    double *itl;        /* gaps between events with choices, n_itl of them */
    size_t n_itl, cap_itl;
    int prompt_len;     /* the dataset's count, or the server's usage.prompt_tokens */
    int output_tokens;  /* usage.completion_tokens, or the tokenizer's count of the text */
    char *generated_text;
    char *error;        /* NULL on success */
};

/* bench_stat: one metric's statistics in milliseconds. */
struct bench_stat {
    double mean, median, std;
    double pct[BENCH_MAX_PERCENTILES]; /* at bench_metrics_opts.percentiles, in order */
};

/* bench_slo: --goodput KEY:MS pairs; a negative value means not given. */
struct bench_slo {
    double ttft_ms, tpot_ms, e2el_ms;
};

struct bench_metrics {
    int completed, failed;
    long total_input, total_output;
    double request_throughput, request_goodput, output_throughput, total_token_throughput;
    struct bench_stat ttft, tpot, itl, e2el;
    double max_output_tokens_per_s; /* most tokens in any one-second bucket */
    int max_concurrent_requests;    /* peak of overlapping [start, start + latency) */
};

/* bench_percentile: np.percentile(v, p) with the default linear method, over v[0..n)
 * sorted ascending (n >= 1, 0 <= p <= 100), with NumPy's lerp (exact at both ends). */
double bench_percentile(const double *sorted, size_t n, double p);

/* bench_stat_compute: mean, median, population std and the given percentiles of v[0..n),
 * scaled by `scale` (1000 for seconds to ms); n == 0 gives zeros (NumPy on [0]). v is
 * sorted in place. */
void bench_stat_compute(double *v, size_t n, const double *percentiles, int n_pct, double scale,
                        struct bench_stat *out);

/* bench_arrival_delays: vLLM's arrival schedule for n requests: with rate == INFINITY all
 * at 0; with burstiness == INFINITY a constant 1/rate gap; otherwise Gamma(burstiness,
 * 1/(rate*burstiness)) gaps drawn with rng_gamma. The gaps are summed into send times
 * (delay[0] is the first gap) and, when the last is non-zero, rescaled so the last send is
 * at exactly n / rate seconds. rate > 0, burstiness > 0. */
struct rng;
void bench_arrival_delays(struct rng *r, size_t n, double rate, double burstiness,
                          double *delay);

/* bench_metrics_compute: the metrics of results[0..n) over `duration` seconds (> 0).
 * slo may be NULL (no goodput). Returns 0 or ERR_NOMEM. */
int bench_metrics_compute(const struct bench_result *results, size_t n, double duration,
                          const double *percentiles, int n_pct, const struct bench_slo *slo,
                          struct bench_metrics *out);

/* bench_result_add_itl: appends one gap to r->itl. Returns 0 or ERR_NOMEM. */
int bench_result_add_itl(struct bench_result *r, double gap);

/* bench_result_deinit: frees r's arrays and strings. */
void bench_result_deinit(struct bench_result *r);

#endif
