/* metrics: vLLM's serving metrics with NumPy's statistics (see metrics.h). */
#include "bench/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/rng.h"
#include "common/err.h"

/* NumPy's pairwise summation (numpy/_core/src/umath/loops_utils.h.src), so that means match
 * np.mean to the last bit rather than to a tolerance. */
static double pairwise_sum(const double *a, size_t n)
{
    if (n < 8) {
        double res = 0.0;
        for (size_t i = 0; i < n; i++)
            res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        size_t i;
        for (int j = 0; j < 8; j++)
            r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++)
                r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_percentile(const double *sorted, size_t n, double p)
{
    /* np.percentile: q = p / 100; the linear method's virtual index (n - 1) * q */
    double q = p / 100.0;
    double vi = (double)(n - 1) * q;
    double lo_f = floor(vi);
    size_t lo, hi;
    if (lo_f <= 0.0)
        lo = 0;
    else if (lo_f >= (double)(n - 1))
        lo = n - 1;
    else
        lo = (size_t)lo_f;
    hi = lo + 1 < n ? lo + 1 : n - 1;
    double t = vi - lo_f;
    if (vi < 0.0)
        t = 0.0;
    if (vi >= (double)(n - 1))
        return sorted[n - 1];
    double a = sorted[lo], b = sorted[hi], d = b - a;
    /* numpy's _lerp: from the nearer end, so t = 1 gives b exactly */
    return t >= 0.5 ? b - d * (1.0 - t) : a + d * t;
}

void bench_stat_compute(double *v, size_t n, const double *percentiles, int n_pct, double scale,
                        struct bench_stat *out)
{
    double zero = 0.0;
    memset(out, 0, sizeof *out);
    if (n == 0) {
        v = &zero;
        n = 1;
    }
    qsort(v, n, sizeof *v, cmp_double);
    double mean = pairwise_sum(v, n) / (double)n;
    double *dev = malloc(n * sizeof *dev);
    double var = 0.0;
    if (dev) {
        for (size_t i = 0; i < n; i++)
            dev[i] = (v[i] - mean) * (v[i] - mean);
        var = pairwise_sum(dev, n) / (double)n;
        free(dev);
    } else {
        for (size_t i = 0; i < n; i++)
            var += (v[i] - mean) * (v[i] - mean) / (double)n;
    }
    double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
    out->mean = mean * scale;
    out->median = median * scale;
    out->std = sqrt(var) * scale;
    for (int i = 0; i < n_pct && i < BENCH_MAX_PERCENTILES; i++)
        out->pct[i] = bench_percentile(v, n, percentiles[i]) * scale;
}

void bench_arrival_delays(struct rng *r, size_t n, double rate, double burstiness,
                          double *delay)
{
    for (size_t i = 0; i < n; i++) {
        if (isinf(rate))
            delay[i] = 0.0;
        else if (isinf(burstiness))
            delay[i] = 1.0 / rate;
        else
            delay[i] = rng_gamma(r, burstiness, 1.0 / (rate * burstiness));
    }
    for (size_t i = 1; i < n; i++)
        delay[i] += delay[i - 1];
    if (n > 0 && delay[n - 1] != 0.0) {
        double factor = ((double)n / rate) / delay[n - 1];
        for (size_t i = 0; i < n; i++)
            delay[i] *= factor;
    }
}

struct event {
    double t;
    int delta;
};

static int cmp_event(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    return (x->delta > y->delta) - (x->delta < y->delta); /* departures (-1) first */
}

/* peak_rates: vLLM's peak output tokens in a one-second bucket and the peak number of
 * requests in flight (a sweep over half-open [start, start + latency)). */
static int peak_rates(const struct bench_result *res, size_t n, struct bench_metrics *m)
{
    double min_start = INFINITY, max_end = -INFINITY;
    size_t n_ok = 0;
    for (size_t i = 0; i < n; i++) {
        if (!res[i].success)
            continue;
        n_ok++;
        if (res[i].start_time < min_start)
            min_start = res[i].start_time;
        if (res[i].start_time + res[i].latency > max_end)
            max_end = res[i].start_time + res[i].latency;
    }
    if (n_ok == 0)
        return 0;
    size_t buckets = (size_t)ceil(max_end - min_start) + 1;
    double *tokens = calloc(buckets, sizeof *tokens);
    struct event *ev = malloc(2 * n_ok * sizeof *ev);
    if (!tokens || !ev) {
        free(tokens);
        free(ev);
        return ERR_NOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct bench_result *r = &res[i];
        if (!r->success)
            continue;
        double t = r->start_time + r->ttft;
        for (size_t j = 0;; j++) {
            double b = trunc(t - min_start);
            if (b >= 0.0 && b < (double)buckets)
                tokens[(size_t)b] += 1.0;
            if (j == r->n_itl)
                break;
            t += r->itl[j];
        }
        ev[k++] = (struct event){r->start_time, 1};
        ev[k++] = (struct event){r->start_time + r->latency, -1};
    }
    qsort(ev, k, sizeof *ev, cmp_event);
    int cur = 0, peak = 0;
    for (size_t i = 0; i < k; i++) {
        cur += ev[i].delta;
        if (cur > peak)
            peak = cur;
    }
    double best = 0.0;
    for (size_t b = 0; b < buckets; b++)
        if (tokens[b] > best)
            best = tokens[b];
    m->max_output_tokens_per_s = best;
    m->max_concurrent_requests = peak;
    free(tokens);
    free(ev);
    return 0;
}

int bench_metrics_compute(const struct bench_result *res, size_t n, double duration,
                          const double *percentiles, int n_pct, const struct bench_slo *slo,
                          struct bench_metrics *m)
{
    memset(m, 0, sizeof *m);
    size_t n_itl = 0;
    for (size_t i = 0; i < n; i++)
        if (res[i].success)
            n_itl += res[i].n_itl;
    double *ttft = malloc((n + 1) * sizeof *ttft), *tpot = malloc((n + 1) * sizeof *tpot);
    double *e2el = malloc((n + 1) * sizeof *e2el), *itl = malloc((n_itl + 1) * sizeof *itl);
    int rc = ERR_NOMEM;
    if (!ttft || !tpot || !e2el || !itl)
        goto out;
    size_t n_tpot = 0, k = 0;
    long good = 0;
    for (size_t i = 0; i < n; i++) {
        const struct bench_result *r = &res[i];
        if (!r->success) {
            m->failed++;
            continue;
        }
        int out_len = r->output_tokens;
        m->total_output += out_len;
        m->total_input += r->prompt_len;
        double tp = 0.0; /* a one-token output counts as TPOT 0 for goodput */
        if (out_len > 1) {
            tp = (r->latency - r->ttft) / (double)(out_len - 1);
            tpot[n_tpot++] = tp;
        }
        for (size_t j = 0; j < r->n_itl; j++)
            itl[k++] = r->itl[j];
        ttft[m->completed] = r->ttft;
        e2el[m->completed] = r->latency;
        m->completed++;
        if (slo && (slo->ttft_ms >= 0 || slo->tpot_ms >= 0 || slo->e2el_ms >= 0)) {
            bool ok = (slo->ttft_ms < 0 || slo->ttft_ms / 1000.0 >= r->ttft) &&
                      (slo->tpot_ms < 0 || slo->tpot_ms / 1000.0 >= tp) &&
                      (slo->e2el_ms < 0 || slo->e2el_ms / 1000.0 >= r->latency);
            good += ok;
        }
    }
    m->request_throughput = m->completed / duration;
    m->request_goodput = (double)good / duration;
    m->output_throughput = (double)m->total_output / duration;
    m->total_token_throughput = (double)(m->total_input + m->total_output) / duration;
    bench_stat_compute(ttft, (size_t)m->completed, percentiles, n_pct, 1000.0, &m->ttft);
    bench_stat_compute(tpot, n_tpot, percentiles, n_pct, 1000.0, &m->tpot);
    bench_stat_compute(itl, k, percentiles, n_pct, 1000.0, &m->itl);
    bench_stat_compute(e2el, (size_t)m->completed, percentiles, n_pct, 1000.0, &m->e2el);
    rc = peak_rates(res, n, m);
out:
    free(ttft);
    free(tpot);
    free(e2el);
    free(itl);
    return rc;
}

int bench_result_add_itl(struct bench_result *r, double gap)
{
    if (r->n_itl == r->cap_itl) {
        size_t cap = r->cap_itl ? 2 * r->cap_itl : 64;
        double *p = realloc(r->itl, cap * sizeof *p);
        if (!p)
            return ERR_NOMEM;
        r->itl = p;
        r->cap_itl = cap;
    }
    r->itl[r->n_itl++] = gap;
    return 0;
}

void bench_result_deinit(struct bench_result *r)
{
    free(r->itl);
    free(r->generated_text);
    free(r->error);
    memset(r, 0, sizeof *r);
}
