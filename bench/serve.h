/*
 * serve: `kiln bench serve`, an OpenAI-API load generator with the behaviour and the metric
 * definitions of `vllm bench serve` (see bench/metrics.h for the metrics).
 *
 * It loads the dataset with the model's tokenizer, checks the endpoint with one request
 * (retried until --ready-check-timeout-sec), sends --num-warmups uncounted requests, then
 * sends every prompt at its arrival time (bench_arrival_delays), at most --max-concurrency
 * at a time (later arrivals wait, FIFO), each a streamed request with
 * stream_options.include_usage, and records per request the send time, the time of each
 * streamed event with choices, and usage. It prints vLLM's result block to `out` and, with
 * result_file, writes vLLM's JSON result (metrics and per-request data).
 */
#ifndef KILN_BENCH_SERVE_H
#define KILN_BENCH_SERVE_H

#include <stdbool.h>
#include <stdio.h>

#include "bench/dataset.h"
#include "bench/metrics.h"

struct bench_serve_opts {
    const char *base_url;       /* http[s]://host[:port][/prefix] */
    const char *endpoint;       /* /v1/completions or /v1/chat/completions */
    const char *model;          /* the served model name; NULL: the first of /v1/models */
    const char *tokenizer;      /* directory with tokenizer.json */
    const char *label;          /* the result's label (default: the backend) */
    struct bench_dataset_opts dataset;
    double request_rate;        /* requests/s; INFINITY: all at once */
    double burstiness;          /* Gamma shape; 1: Poisson */
    int max_concurrency;        /* 0: unlimited */
    int num_warmups;
    bool ignore_eos;
    bool http2;                 /* h2c with prior knowledge (ALPN h2 over TLS) */
    double temperature;         /* < 0: not sent (the server's default) */
    int logprobs;               /* < 0: not sent */
    const char *extra_body;     /* a JSON object merged into every request body, or NULL */
    const char *percentile_metrics; /* "ttft,tpot,itl,e2el" (any subset) */
    double percentiles[BENCH_MAX_PERCENTILES];
    int n_percentiles;
    struct bench_slo slo;       /* --goodput; negative fields: not given */
    const char *result_file;    /* NULL: no file */
    bool save_texts;            /* keep generated_texts in the result file */
    double ready_check_timeout_s; /* 0: no initial test request */
    double request_timeout_s;   /* per request; 0: none */
};

/* bench_serve_opts_default: vLLM's defaults (random dataset, rate inf, burstiness 1, no
 * concurrency limit, /v1/completions, percentiles 90 and 99 of ttft, tpot, itl, e2el). */
void bench_serve_opts_default(struct bench_serve_opts *o);

/* bench_serve_run: runs the benchmark. Returns 0 when it ran (failed requests are counted
 * in the result, not an error), or a negative ERR_* code with a message on stderr: bad
 * options, tokenizer or dataset errors, the initial test request failing, an unwritable
 * result file. */
int bench_serve_run(const struct bench_serve_opts *o, FILE *out);

#endif
