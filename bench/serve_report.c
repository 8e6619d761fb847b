/*
 * serve_report: the benchmark's output: vLLM's printed result block and its JSON result file
 * (key names of vllm/benchmarks/serve.py, with the per-request data of --save-detailed).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench/serve_internal.h"
#include "common/err.h"

struct metric_def {
    const char *key;    /* ttft */
    const char *name;   /* TTFT */
    const char *header; /* Time to First Token */
};

static const struct metric_def metric_defs[] = {
    {"ttft", "TTFT", "Time to First Token"},
    {"tpot", "TPOT", "Time per Output Token (excl. 1st token)"},
    {"itl", "ITL", "Inter-token Latency"},
    {"e2el", "E2EL", "End-to-end Latency"},
};

static const struct bench_stat *metric_stat(const struct bench_metrics *m, int i)
{
    const struct bench_stat *s[] = {&m->ttft, &m->tpot, &m->itl, &m->e2el};
    return s[i];
}

/* selected: whether `key` is in the comma-separated list. */
static bool selected(const char *list, const char *key)
{
    size_t kn = strlen(key);
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        if (n == kn && memcmp(p, key, n) == 0)
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

/* pct_word: vLLM's name of a percentile: "99" for 99.0, "99.9" otherwise. */
static const char *pct_word(double p, char *b, size_t n)
{
    if (p == floor(p))
        snprintf(b, n, "%d", (int)p);
    else
        snprintf(b, n, "%.15g", p);
    return b;
}

/* centered: Python's "{s:{c}^{n}}": s centered in n columns, the odd fill on the right. */
static void centered(FILE *out, const char *s, char c, int n)
{
    int len = (int)strlen(s), pad = n > len ? n - len : 0;
    for (int i = 0; i < pad / 2; i++)
        fputc(c, out);
    fputs(s, out);
    for (int i = 0; i < pad - pad / 2; i++)
        fputc(c, out);
    fputc('\n', out);
}

static void row_int(FILE *out, const char *label, long v)
{
    fprintf(out, "%-40s %-10ld\n", label, v);
}

static void row_f(FILE *out, const char *label, double v)
{
    fprintf(out, "%-40s %-10.2f\n", label, v);
}

void bench_report_print(const struct bench_runner *run, const struct bench_metrics *m,
                        FILE *out)
{
    const struct bench_serve_opts *o = run->o;
    bool goodput = o->slo.ttft_ms >= 0 || o->slo.tpot_ms >= 0 || o->slo.e2el_ms >= 0;
    centered(out, " Serving Benchmark Result ", '=', 50);
    row_int(out, "Successful requests:", m->completed);
    row_int(out, "Failed requests:", m->failed);
    if (o->max_concurrency > 0)
        row_int(out, "Maximum request concurrency:", o->max_concurrency);
    if (!isinf(o->request_rate))
        row_f(out, "Request rate configured (RPS):", o->request_rate);
    row_f(out, "Benchmark duration (s):", run->duration);
    row_int(out, "Total input tokens:", m->total_input);
    row_int(out, "Total generated tokens:", m->total_output);
    row_f(out, "Request throughput (req/s):", m->request_throughput);
    if (goodput)
        row_f(out, "Request goodput (req/s):", m->request_goodput);
    row_f(out, "Output token throughput (tok/s):", m->output_throughput);
    row_f(out, "Peak output token throughput (tok/s):", m->max_output_tokens_per_s);
    row_f(out, "Peak concurrent requests:", m->max_concurrent_requests);
    row_f(out, "Total token throughput (tok/s):", m->total_token_throughput);
    for (int i = 0; i < 4; i++) {
        const struct metric_def *d = &metric_defs[i];
        if (!selected(o->percentile_metrics, d->key))
            continue;
        const struct bench_stat *s = metric_stat(m, i);
        char label[96], pw[32];
        centered(out, d->header, '-', 50);
        snprintf(label, sizeof label, "Mean %s (ms):", d->name);
        row_f(out, label, s->mean);
        snprintf(label, sizeof label, "Median %s (ms):", d->name);
        row_f(out, label, s->median);
        for (int k = 0; k < o->n_percentiles; k++) {
            snprintf(label, sizeof label, "P%s %s (ms):",
                     pct_word(o->percentiles[k], pw, sizeof pw), d->name);
            row_f(out, label, s->pct[k]);
        }
    }
    for (int i = 0; i < 50; i++)
        fputc('=', out);
    fputc('\n', out);
    fflush(out);
}

/* result_json: the result object, in vLLM's key order. */
static json_t *result_json(const struct bench_runner *run, const struct bench_metrics *m)
{
    const struct bench_serve_opts *o = run->o;
    bool goodput = o->slo.ttft_ms >= 0 || o->slo.tpot_ms >= 0 || o->slo.e2el_ms >= 0;
    json_t *r = json_object();
    char date[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y%m%d-%H%M%S", &tm);
    const char *backend = run->tgt.chat ? "openai-chat" : "openai";
    json_object_set_new(r, "date", json_string(date));
    json_object_set_new(r, "endpoint_type", json_string(backend));
    json_object_set_new(r, "backend", json_string(backend));
    json_object_set_new(r, "label", json_string(o->label ? o->label : backend));
    json_object_set_new(r, "model_id", json_string(run->model));
    json_object_set_new(r, "tokenizer_id", json_string(o->tokenizer));
    json_object_set_new(r, "num_prompts", json_integer((json_int_t)run->ds.n));
    json_object_set_new(r, "request_rate", isinf(o->request_rate)
                                               ? json_string("inf")
                                               : json_real(o->request_rate));
    json_object_set_new(r, "burstiness", json_real(o->burstiness));
    json_object_set_new(r, "max_concurrency",
                        o->max_concurrency > 0 ? json_integer(o->max_concurrency) : json_null());
    json_object_set_new(r, "duration", json_real(run->duration));
    json_object_set_new(r, "completed", json_integer(m->completed));
    json_object_set_new(r, "failed", json_integer(m->failed));
    json_object_set_new(r, "total_input_tokens", json_integer(m->total_input));
    json_object_set_new(r, "total_output_tokens", json_integer(m->total_output));
    json_object_set_new(r, "request_throughput", json_real(m->request_throughput));
    json_object_set_new(r, "request_goodput",
                        goodput ? json_real(m->request_goodput) : json_null());
    json_object_set_new(r, "output_throughput", json_real(m->output_throughput));
    json_object_set_new(r, "total_token_throughput", json_real(m->total_token_throughput));
    json_t *in = json_array(), *outl = json_array(), *ttfts = json_array(), *itls = json_array();
    json_t *lat = json_array(), *st = json_array(), *qt = json_array(), *texts = json_array();
    json_t *errs = json_array();
    for (size_t i = 0; i < run->ds.n; i++) {
        const struct bench_result *x = &run->results[i];
        json_array_append_new(in, json_integer(x->prompt_len));
        json_array_append_new(outl, json_integer(x->success ? x->output_tokens : 0));
        json_array_append_new(ttfts, json_real(x->ttft));
        json_t *g = json_array();
        for (size_t k = 0; k < x->n_itl; k++)
            json_array_append_new(g, json_real(x->itl[k]));
        json_array_append_new(itls, g);
        json_array_append_new(lat, json_real(x->latency));
        json_array_append_new(st, json_real(x->start_time));
        json_array_append_new(qt, json_real(x->queue_time));
        json_array_append_new(texts, json_string(x->generated_text ? x->generated_text : ""));
        json_array_append_new(errs, json_string(x->error ? x->error : ""));
    }
    json_object_set_new(r, "input_lens", in);
    json_object_set_new(r, "output_lens", outl);
    json_object_set_new(r, "ttfts", ttfts);
    json_object_set_new(r, "itls", itls);
    json_object_set_new(r, "latencies", lat);
    json_object_set_new(r, "start_times", st);
    json_object_set_new(r, "queue_times", qt);
    if (o->save_texts)
        json_object_set_new(r, "generated_texts", texts);
    else
        json_decref(texts);
    json_object_set_new(r, "errors", errs);
    json_object_set_new(r, "max_output_tokens_per_s", json_real(m->max_output_tokens_per_s));
    json_object_set_new(r, "max_concurrent_requests", json_integer(m->max_concurrent_requests));
    for (int i = 0; i < 4; i++) {
        const struct metric_def *d = &metric_defs[i];
        if (!selected(o->percentile_metrics, d->key))
            continue;
        const struct bench_stat *s = metric_stat(m, i);
        char key[64], pw[32];
        snprintf(key, sizeof key, "mean_%s_ms", d->key);
        json_object_set_new(r, key, json_real(s->mean));
        snprintf(key, sizeof key, "median_%s_ms", d->key);
        json_object_set_new(r, key, json_real(s->median));
        snprintf(key, sizeof key, "std_%s_ms", d->key);
        json_object_set_new(r, key, json_real(s->std));
        for (int k = 0; k < o->n_percentiles; k++) {
            snprintf(key, sizeof key, "p%s_%s_ms", pct_word(o->percentiles[k], pw, sizeof pw),
                     d->key);
            json_object_set_new(r, key, json_real(s->pct[k]));
        }
    }
    return r;
}

int bench_report_write(const struct bench_runner *run, const struct bench_metrics *m,
                       const char *path)
{
    json_t *r = result_json(run, m);
    if (!r)
        return ERR_NOMEM;
    int rc = json_dump_file(r, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(r);
    if (rc) {
        fprintf(stderr, "kiln bench: cannot write %s\n", path);
        return ERR_IO;
    }
    return 0;
}
