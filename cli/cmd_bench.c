/*
 * cmd_bench: `kiln bench serve`, the serving benchmark (bench/serve.h), with the flag names
 * of `vllm bench serve`.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/serve.h"
#include "cli/commands.h"
#include "common/cfg.h"
#include "common/err.h"

#define MAX_POSITIONAL 8

struct bench_flags {
    const char *base_url, *host, *endpoint, *model, *tokenizer, *label;
    long long port;
    int dataset_name;
    const char *dataset_path;
    long long num_prompts, input_len, output_len, prefix_len, sharegpt_output_len;
    long long jsonl_output_len, seed;
    double range_ratio;
    const char *request_rate, *burstiness;
    long long max_concurrency, num_warmups, logprobs;
    bool ignore_eos, http2, save_detailed;
    double temperature, ready_timeout, request_timeout;
    const char *extra_body, *percentile_metrics, *metric_percentiles, *goodput;
    const char *result_file;
};

#define F(name, type, field, def, lo, hi, choices, help)                                          \
    {name, type, offsetof(struct bench_flags, field), def, lo, hi, choices, help}

static const struct cfg_flag bench_flags[] = {
    F("base-url", CFG_STRING, base_url, NULL, 1, 0, NULL,
      "server URL, http[s]://host:port (default: http://HOST:PORT)"),
    F("host", CFG_STRING, host, "127.0.0.1", 1, 0, NULL, "server host, without --base-url"),
    F("port", CFG_INT, port, "8000", 1, 65535, NULL, "server port, without --base-url"),
    F("endpoint", CFG_STRING, endpoint, "/v1/completions", 1, 0, NULL,
      "/v1/completions or /v1/chat/completions"),
    F("model", CFG_STRING, model, NULL, 1, 0, NULL,
      "model name to request (default: the first of /v1/models)"),
    F("tokenizer", CFG_STRING, tokenizer, NULL, 1, 0, NULL,
      "directory with the model's tokenizer.json (required)"),
    F("label", CFG_STRING, label, NULL, 1, 0, NULL, "label of the result (default: backend)"),
    F("dataset-name", CFG_ENUM, dataset_name, "random", 1, 0, "random|sharegpt|jsonl",
      "where prompts come from"),
    F("dataset-path", CFG_STRING, dataset_path, NULL, 1, 0, NULL,
      "ShareGPT JSON or JSON-lines file"),
    F("num-prompts", CFG_INT, num_prompts, "1000", 1, 10000000, NULL, "requests to send"),
    F("random-input-len", CFG_INT, input_len, "1024", 1, 1 << 24, NULL,
      "random: prompt tokens"),
    F("random-output-len", CFG_INT, output_len, "128", 1, 1 << 24, NULL,
      "random: output tokens"),
    F("random-range-ratio", CFG_DOUBLE, range_ratio, "0", 0, 0.999999, NULL,
      "random: lengths drawn from [L*(1-r), L*(1+r)]"),
    F("random-prefix-len", CFG_INT, prefix_len, "0", 0, 1 << 24, NULL,
      "random: tokens of a prefix shared by every prompt"),
    F("sharegpt-output-len", CFG_INT, sharegpt_output_len, "-1", -1, 1 << 24, NULL,
      "sharegpt: fixed output tokens (-1: the second turn's length)"),
    F("jsonl-output-len", CFG_INT, jsonl_output_len, "256", -1, 1 << 24, NULL,
      "jsonl: output tokens (-1: each line's output_tokens)"),
    F("seed", CFG_INT, seed, "0", 0, 9.2e18, NULL, "seed of the dataset and the arrivals"),
    F("request-rate", CFG_STRING, request_rate, "inf", 1, 0, NULL,
      "requests per second, or inf to send all at once"),
    F("burstiness", CFG_STRING, burstiness, "1.0", 1, 0, NULL,
      "Gamma shape of the arrival gaps (1: Poisson; < 1 burstier; inf: uniform)"),
    F("max-concurrency", CFG_INT, max_concurrency, "0", 0, 1 << 20, NULL,
      "most requests in flight (0: no limit)"),
    F("num-warmups", CFG_INT, num_warmups, "0", 0, 1 << 20, NULL,
      "uncounted requests before the run"),
    F("ignore-eos", CFG_BOOL, ignore_eos, "false", 1, 0, NULL,
      "ask for exactly max_tokens (ignore_eos in the request)"),
    F("http2", CFG_BOOL, http2, "false", 1, 0, NULL,
      "HTTP/2 (h2c prior knowledge; ALPN over TLS) instead of HTTP/1.1"),
    F("temperature", CFG_DOUBLE, temperature, "-1", -1, 100, NULL,
      "sampling temperature to send (negative: the server's default)"),
    F("logprobs", CFG_INT, logprobs, "-1", -1, 100, NULL,
      "completions logprobs to ask for (-1: none)"),
    F("extra-body", CFG_STRING, extra_body, NULL, 1, 0, NULL,
      "JSON object merged into every request body"),
    F("percentile-metrics", CFG_STRING, percentile_metrics, "ttft,tpot,itl,e2el", 1, 0, NULL,
      "metrics to report percentiles of (ttft,tpot,itl,e2el)"),
    F("metric-percentiles", CFG_STRING, metric_percentiles, "90,99", 1, 0, NULL,
      "percentiles to report, comma-separated"),
    F("goodput", CFG_STRING, goodput, NULL, 1, 0, NULL,
      "SLOs as KEY:MS pairs (ttft, tpot, e2el), e.g. --goodput ttft:500 tpot:50"),
    F("result-file", CFG_STRING, result_file, NULL, 1, 0, NULL, "write the JSON result here"),
    F("save-detailed", CFG_BOOL, save_detailed, "false", 1, 0, NULL,
      "also keep the generated texts in the result file"),
    F("ready-check-timeout-sec", CFG_DOUBLE, ready_timeout, "600", 0, 1e6, NULL,
      "retry the initial test request this long (0: skip it)"),
    F("request-timeout", CFG_DOUBLE, request_timeout, "21600", 0, 1e7, NULL,
      "seconds one request may take (0: no limit)"),
};

#define USAGE "usage: kiln bench serve --tokenizer DIR [--base-url URL] [--model NAME] [flags]"

/* parse_rate: a positive number or "inf". */
static int parse_rate(const char *s, const char *flag, double *out)
{
    char *end;
    if (strcmp(s, "inf") == 0 || strcmp(s, "infinity") == 0) {
        *out = INFINITY;
        return 0;
    }
    double v = strtod(s, &end);
    if (end == s || *end || !(v > 0) || isinf(v)) {
        fprintf(stderr, "kiln bench: --%s must be a positive number or inf: %s\n", flag, s);
        return ERR_INVAL;
    }
    *out = v;
    return 0;
}

static int parse_percentiles(const char *s, struct bench_serve_opts *o)
{
    o->n_percentiles = 0;
    for (const char *p = s; *p;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || v < 0 || v > 100 || (*end && *end != ',') ||
            o->n_percentiles == BENCH_MAX_PERCENTILES) {
            fprintf(stderr, "kiln bench: --metric-percentiles: up to %d numbers in [0, 100]\n",
                    BENCH_MAX_PERCENTILES);
            return ERR_INVAL;
        }
        o->percentiles[o->n_percentiles++] = v;
        p = *end ? end + 1 : end;
    }
    return 0;
}

static int parse_metrics(const char *s)
{
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, ",");
        if (!((n == 4 && (!memcmp(p, "ttft", 4) || !memcmp(p, "tpot", 4) ||
                          !memcmp(p, "e2el", 4))) ||
              (n == 3 && !memcmp(p, "itl", 3)))) {
            fprintf(stderr, "kiln bench: --percentile-metrics takes ttft, tpot, itl, e2el\n");
            return ERR_INVAL;
        }
        p += n + (p[n] == ',');
    }
    return 0;
}

/* parse_slo: one KEY:MS pair of --goodput. */
static int parse_slo(const char *s, struct bench_slo *slo)
{
    const char *colon = strchr(s, ':');
    char *end;
    double v = colon ? strtod(colon + 1, &end) : -1;
    if (!colon || end == colon + 1 || *end || !(v >= 0)) {
        fprintf(stderr, "kiln bench: --goodput takes KEY:VALUE pairs, the value in ms: %s\n", s);
        return ERR_INVAL;
    }
    size_t kn = (size_t)(colon - s);
    if (kn == 4 && !memcmp(s, "ttft", 4))
        slo->ttft_ms = v;
    else if (kn == 4 && !memcmp(s, "tpot", 4))
        slo->tpot_ms = v;
    else if (kn == 4 && !memcmp(s, "e2el", 4))
        slo->e2el_ms = v;
    else {
        fprintf(stderr, "kiln bench: the goodput SLO name must be ttft, tpot or e2el: %s\n", s);
        return ERR_INVAL;
    }
    return 0;
}

/* parse_goodput: --goodput's pairs, separated by spaces or commas, plus the positional
 * arguments that follow it on the command line ("--goodput ttft:500 tpot:50"). */
static int parse_goodput(const char *s, char **pos, int npos, struct bench_slo *slo)
{
    char pair[128];
    for (const char *p = s; p && *p;) {
        p += strspn(p, " ,");
        size_t n = strcspn(p, " ,");
        if (n == 0)
            break;
        if (n >= sizeof pair)
            n = sizeof pair - 1;
        memcpy(pair, p, n);
        pair[n] = '\0';
        if (parse_slo(pair, slo))
            return ERR_INVAL;
        p += n;
    }
    for (int i = 1; i < npos; i++)
        if (parse_slo(pos[i], slo))
            return ERR_INVAL;
    return 0;
}

static int to_opts(const struct bench_flags *f, char **pos, int npos, char *url, size_t urln,
                   struct bench_serve_opts *o)
{
    static const char *const names[] = {"random", "sharegpt", "jsonl"};
    bench_serve_opts_default(o);
    if (f->base_url) {
        o->base_url = f->base_url;
    } else {
        snprintf(url, urln, strchr(f->host, ':') ? "http://[%s]:%lld" : "http://%s:%lld",
                 f->host, f->port);
        o->base_url = url;
    }
    o->endpoint = f->endpoint;
    o->model = f->model;
    o->tokenizer = f->tokenizer;
    o->label = f->label;
    struct bench_dataset_opts *d = &o->dataset;
    d->name = names[f->dataset_name];
    d->path = f->dataset_path;
    d->num_prompts = (int)f->num_prompts;
    d->random_input_len = (int)f->input_len;
    d->random_output_len = (int)f->output_len;
    d->random_range_ratio = f->range_ratio;
    d->random_prefix_len = (int)f->prefix_len;
    d->sharegpt_output_len = (int)f->sharegpt_output_len;
    d->jsonl_output_len = (int)f->jsonl_output_len;
    d->seed = (uint64_t)f->seed;
    if (f->dataset_name == 0 && f->dataset_path) {
        fprintf(stderr, "kiln bench: the random dataset takes no --dataset-path\n");
        return ERR_INVAL;
    }
    if (f->dataset_name != 0 && !f->dataset_path) {
        fprintf(stderr, "kiln bench: --dataset-name %s needs --dataset-path\n", d->name);
        return ERR_INVAL;
    }
    if (parse_rate(f->request_rate, "request-rate", &o->request_rate) ||
        parse_rate(f->burstiness, "burstiness", &o->burstiness) ||
        parse_percentiles(f->metric_percentiles, o) || parse_metrics(f->percentile_metrics))
        return ERR_INVAL;
    o->percentile_metrics = f->percentile_metrics;
    if ((f->goodput || npos > 1) && parse_goodput(f->goodput, pos, npos, &o->slo))
        return ERR_INVAL;
    o->max_concurrency = (int)f->max_concurrency;
    o->num_warmups = (int)f->num_warmups;
    o->ignore_eos = f->ignore_eos;
    o->http2 = f->http2;
    o->temperature = f->temperature;
    o->logprobs = (int)f->logprobs;
    o->extra_body = f->extra_body;
    o->result_file = f->result_file;
    o->save_texts = f->save_detailed;
    o->ready_check_timeout_s = f->ready_timeout;
    o->request_timeout_s = f->request_timeout;
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 1 || strcmp(argv[0], "serve") != 0) {
        bool help = argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"));
        fprintf(help ? stdout : stderr,
                "usage: kiln bench serve [flags]   (kiln bench serve --help for the flags)\n");
        return help ? 0 : 2;
    }
    struct bench_flags f;
    char *pos[MAX_POSITIONAL];
    int npos = 0;
    char err[256];
    size_t nf = sizeof bench_flags / sizeof *bench_flags;
    /* argv[0] is "serve": the first positional argument */
    int rc = cfg_parse(bench_flags, nf, &f, argc, argv, pos, MAX_POSITIONAL, &npos, err,
                       sizeof err);
    if (rc == CFG_HELP) {
        cfg_print_help(stdout, USAGE, bench_flags, nf);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "kiln bench: %s\n", err);
        cfg_print_help(stderr, USAGE, bench_flags, nf);
        return 2;
    }
    if (npos > 1 && !f.goodput) {
        fprintf(stderr, "kiln bench: unexpected argument '%s'\n", pos[1]);
        return 2;
    }
    struct bench_serve_opts o;
    char url[300];
    if (to_opts(&f, pos, npos, url, sizeof url, &o))
        return 2;
    return bench_serve_run(&o, stdout) ? 1 : 0;
}
