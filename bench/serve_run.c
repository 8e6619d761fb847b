/*
 * serve_run: the benchmark's phases on one libevent loop: the initial test request, the
 * warm-ups, and the timed run with vLLM's arrivals and concurrency limit (see serve.h).
 */
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/rng.h"
#include "bench/serve_internal.h"
#include "common/err.h"
#include "common/tokenizer.h"

#define MODELS_BODY_MAX (1u << 20)

void bench_serve_opts_default(struct bench_serve_opts *o)
{
    memset(o, 0, sizeof *o);
    o->endpoint = "/v1/completions";
    bench_dataset_opts_default(&o->dataset);
    o->request_rate = INFINITY;
    o->burstiness = 1.0;
    o->temperature = -1.0;
    o->logprobs = -1;
    o->percentile_metrics = "ttft,tpot,itl,e2el";
    o->percentiles[0] = 90;
    o->percentiles[1] = 99;
    o->n_percentiles = 2;
    o->slo = (struct bench_slo){-1, -1, -1};
    o->ready_check_timeout_s = 600;
}

/* ---- one phase: a list of requests, their arrival offsets and a concurrency limit ---- */

struct phase {
    struct bench_runner *run;
    const struct bench_sample **samples;
    struct bench_result *results;
    struct breq *reqs;
    const double *delays; /* NULL: all arrive at once */
    double *arrived;
    size_t n, next, done;
    size_t *waiting, wait_head, wait_n;
    int in_flight, limit;
    double start, end;
    struct event *timer;
};

static void phase_send(struct phase *ph, size_t i);

static void phase_req_done(struct breq *q)
{
    struct phase *ph = q->ctx;
    ph->in_flight--;
    ph->done++;
    while (ph->wait_n && (ph->limit == 0 || ph->in_flight < ph->limit)) {
        size_t i = ph->waiting[ph->wait_head];
        ph->wait_head = (ph->wait_head + 1) % ph->n;
        ph->wait_n--;
        phase_send(ph, i);
    }
    if (ph->done == ph->n) {
        ph->end = hc_now();
        event_base_loopbreak(ph->run->base);
    }
}

static void phase_send(struct phase *ph, size_t i)
{
    struct breq *q = &ph->reqs[i];
    ph->in_flight++;
    q->run = ph->run;
    q->ctx = ph;
    q->res = &ph->results[i];
    q->sample = ph->samples[i];
    q->done = phase_req_done;
    q->res->queue_time = hc_now() - ph->arrived[i];
    (void)breq_start(q);
}

static void phase_arrive(struct phase *ph, size_t i)
{
    ph->arrived[i] = hc_now();
    if (ph->limit == 0 || ph->in_flight < ph->limit) {
        phase_send(ph, i);
        return;
    }
    ph->waiting[(ph->wait_head + ph->wait_n) % ph->n] = i;
    ph->wait_n++;
}

static void phase_tick(evutil_socket_t fd, short what, void *arg)
{
    struct phase *ph = arg;
    (void)fd;
    (void)what;
    double now = hc_now() - ph->start;
    while (ph->next < ph->n && (!ph->delays || ph->delays[ph->next] <= now))
        phase_arrive(ph, ph->next++);
    if (ph->next < ph->n) {
        double wait = ph->delays[ph->next] - (hc_now() - ph->start);
        if (wait < 0)
            wait = 0;
        struct timeval tv = {(time_t)wait, (suseconds_t)((wait - floor(wait)) * 1e6)};
        evtimer_add(ph->timer, &tv);
    }
}

/* phase_run: sends samples[i] at start + delays[i] (or all at once), at most `limit` in
 * flight, and returns when every one has ended; results[i] gets each outcome and *end (when
 * not NULL) the time the last one ended. */
static int phase_run(struct bench_runner *run, const struct bench_sample **samples,
                     struct bench_result *results, size_t n, const double *delays, int limit,
                     double *end)
{
    struct phase ph = {.run = run, .samples = samples, .results = results, .n = n,
                       .delays = delays, .limit = limit};
    ph.reqs = calloc(n, sizeof *ph.reqs);
    ph.arrived = calloc(n, sizeof *ph.arrived);
    ph.waiting = calloc(n, sizeof *ph.waiting);
    ph.timer = evtimer_new(run->base, phase_tick, &ph);
    int rc = ERR_NOMEM;
    if (ph.reqs && ph.arrived && ph.waiting && ph.timer) {
        ph.start = hc_now();
        phase_tick(-1, 0, &ph);
        /* loopbreak ends a dispatch with 0 once every request ended; anything else (an
         * error, or no event left that could end one) stops the phase */
        while (ph.done < n)
            if (event_base_dispatch(run->base) != 0)
                break;
        rc = ph.done == n ? 0 : ERR_STATE;
    }
    if (end)
        *end = ph.end;
    if (ph.timer)
        event_free(ph.timer);
    free(ph.reqs);
    free(ph.arrived);
    free(ph.waiting);
    return rc;
}

/* ---- GET /v1/models, for the default model name ---- */

struct get_ctx {
    struct event_base *base;
    int status, err;
    struct buf body;
};

static void get_headers(void *ud, int status)
{
    ((struct get_ctx *)ud)->status = status;
}

static void get_body(void *ud, const char *p, size_t n, double t)
{
    struct get_ctx *g = ud;
    (void)t;
    if (buf_append(&g->body, p, n))
        g->err = ERR_LIMIT;
}

static void get_done(void *ud, int err, const char *msg)
{
    struct get_ctx *g = ud;
    (void)msg;
    if (err)
        g->err = err;
    event_base_loopbreak(g->base);
}

static int first_model(struct bench_runner *run, char **out)
{
    static const struct hc_callbacks cb = {get_headers, get_body, get_done};
    struct get_ctx g = {.base = run->base};
    char path[600];
    snprintf(path, sizeof path, "%s/v1/models", run->tgt.prefix);
    buf_init(&g.body, MODELS_BODY_MAX);
    int rc = hc_request(run->hc, "GET", path, NULL, NULL, 0, run->auth_header, &cb, &g);
    if (rc == 0)
        event_base_dispatch(run->base);
    json_t *root = NULL;
    if (rc == 0 && !g.err && g.status == 200)
        root = json_loadb(g.body.p, g.body.n, 0, NULL);
    json_t *id = json_object_get(json_array_get(json_object_get(root, "data"), 0), "id");
    *out = json_is_string(id) ? strdup(json_string_value(id)) : NULL;
    json_decref(root);
    buf_deinit(&g.body);
    if (!*out) {
        fprintf(stderr, "kiln bench: no model found at %s (pass --model)\n", path);
        return ERR_NOTFOUND;
    }
    return 0;
}

/* ---- the benchmark ---- */

/* ready_check: the initial single-prompt test request, retried while the server cannot be
 * reached or answers 503, until the timeout. */
static int ready_check(struct bench_runner *run)
{
    const struct bench_serve_opts *o = run->o;
    const struct bench_sample *s = &run->ds.v[0];
    double t0 = hc_now();
    fprintf(stdout, "Starting initial single prompt test run...\n");
    for (;;) {
        struct bench_result r = {0};
        int rc = phase_run(run, &s, &r, 1, NULL, 0, NULL);
        bool retry = !r.success && r.error &&
                     (strncmp(r.error, "HTTP ", 5) != 0 || strncmp(r.error, "HTTP 503", 8) == 0);
        if (rc == 0 && r.success) {
            bench_result_deinit(&r);
            fprintf(stdout, "Initial test run completed.\n");
            return 0;
        }
        if (rc || !retry || hc_now() - t0 > o->ready_check_timeout_s) {
            fprintf(stderr,
                    "kiln bench: Initial test run failed - Please make sure benchmark "
                    "arguments are correctly specified. Error: %s\n",
                    r.error ? r.error : err_name(rc));
            bench_result_deinit(&r);
            return rc ? rc : ERR_STATE;
        }
        bench_result_deinit(&r);
        struct timeval one = {1, 0};
        event_base_loopexit(run->base, &one);
        event_base_dispatch(run->base);
    }
}

static int warm_up(struct bench_runner *run)
{
    int n = run->o->num_warmups;
    if (n <= 0)
        return 0;
    fprintf(stdout, "Warming up with %d requests...\n", n);
    const struct bench_sample **s = calloc((size_t)n, sizeof *s);
    struct bench_result *r = calloc((size_t)n, sizeof *r);
    int rc = ERR_NOMEM;
    if (s && r) {
        for (int i = 0; i < n; i++)
            s[i] = &run->ds.v[0];
        rc = phase_run(run, s, r, (size_t)n, NULL, run->o->max_concurrency, NULL);
        for (int i = 0; i < n; i++)
            bench_result_deinit(&r[i]);
    }
    free(s);
    free(r);
    if (rc == 0)
        fprintf(stdout, "Warmup run completed.\n");
    return rc;
}

/* py_float: a double as Python's str() prints it ("inf", "1.0", "0.25"). */
static const char *py_float(double x, char *b, size_t n)
{
    if (isinf(x))
        return x > 0 ? "inf" : "-inf";
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(b, n, "%.*g", prec, x);
        if (strtod(b, NULL) == x)
            break;
    }
    if (!strpbrk(b, ".en"))
        strncat(b, ".0", n - strlen(b) - 1);
    return b;
}

static int main_run(struct bench_runner *run)
{
    const struct bench_serve_opts *o = run->o;
    size_t n = run->ds.n;
    char a[64], b[64];
    fprintf(stdout, "Starting main benchmark run...\n");
    fprintf(stdout, "Traffic request rate: %s\n", py_float(o->request_rate, a, sizeof a));
    fprintf(stdout, "Burstiness factor: %s (%s)\n", py_float(o->burstiness, b, sizeof b),
            o->burstiness == 1.0 ? "Poisson process" : "Gamma distribution");
    if (o->max_concurrency > 0)
        fprintf(stdout, "Maximum request concurrency: %d\n", o->max_concurrency);
    else
        fprintf(stdout, "Maximum request concurrency: None\n");
    fflush(stdout);
    const struct bench_sample **s = calloc(n, sizeof *s);
    run->delays = calloc(n, sizeof *run->delays);
    run->results = calloc(n, sizeof *run->results);
    if (!s || !run->delays || !run->results) {
        free(s);
        return ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        s[i] = &run->ds.v[i];
    struct rng r;
    rng_seed(&r, o->dataset.seed ^ 0x61727269766573ULL); /* "arrives" */
    double start = hc_now(), end;
    bench_arrival_delays(&r, n, o->request_rate, o->burstiness, run->delays);
    int rc = phase_run(run, s, run->results, n, run->delays, o->max_concurrency, &end);
    run->duration = end - start;
    free(s);
    return rc;
}

static int setup(struct bench_runner *run)
{
    const struct bench_serve_opts *o = run->o;
    char err[512];
    int rc = bench_target_parse(o->base_url, o->endpoint, &run->tgt, err, sizeof err);
    if (rc) {
        fprintf(stderr, "kiln bench: %s\n", err);
        return rc;
    }
    if (!o->tokenizer) {
        fprintf(stderr, "kiln bench: --tokenizer DIR is required (the model's tokenizer)\n");
        return ERR_INVAL;
    }
    rc = tok_load_dir(o->tokenizer, &run->tok, err, sizeof err);
    if (rc) {
        fprintf(stderr, "kiln bench: %s\n", err);
        return rc;
    }
    run->enc = tok_enc_new(run->tok);
    if (!run->enc)
        return ERR_NOMEM;
    rc = bench_dataset_load(&o->dataset, run->tok, &run->ds, err, sizeof err);
    if (rc) {
        fprintf(stderr, "kiln bench: dataset: %s\n", err);
        return rc;
    }
    if (run->ds.n == 0) {
        fprintf(stderr, "kiln bench: the dataset has no prompts\n");
        return ERR_INVAL;
    }
    if (o->extra_body) {
        run->extra_body = json_loads(o->extra_body, 0, NULL);
        if (!json_is_object(run->extra_body)) {
            fprintf(stderr, "kiln bench: --extra-body must be a JSON object\n");
            return ERR_INVAL;
        }
    }
    const char *key = getenv("OPENAI_API_KEY");
    if (key && *key) {
        size_t kn = strlen(key) + 32;
        run->auth_header = malloc(kn);
        if (!run->auth_header)
            return ERR_NOMEM;
        snprintf(run->auth_header, kn, "Authorization: Bearer %s\r\n", key);
    }
    run->base = event_base_new();
    if (!run->base)
        return ERR_NOMEM;
    struct hc_config cfg = {.host = run->tgt.host, .port = run->tgt.port, .tls = run->tgt.tls,
                            .http2 = o->http2, .max_connections = 0,
                            .timeout_s = o->request_timeout_s};
    rc = hc_client_new(run->base, &cfg, &run->hc);
    if (rc) {
        fprintf(stderr, "kiln bench: cannot create the HTTP client: %s\n", err_name(rc));
        return rc;
    }
    return 0;
}

static void teardown(struct bench_runner *run)
{
    hc_client_free(run->hc);
    if (run->base)
        event_base_free(run->base);
    if (run->results)
        for (size_t i = 0; i < run->ds.n; i++)
            bench_result_deinit(&run->results[i]);
    free(run->results);
    free(run->delays);
    bench_dataset_free(&run->ds);
    json_decref(run->extra_body);
    free(run->auth_header);
    free(run->model_owned);
    if (run->enc)
        tok_enc_free(run->enc);
    if (run->tok)
        tok_free(run->tok);
}

int bench_serve_run(const struct bench_serve_opts *o, FILE *out)
{
    struct bench_runner run = {.o = o, .model = o->model};
    int rc = setup(&run);
    if (rc == 0 && !run.model) {
        rc = first_model(&run, &run.model_owned);
        run.model = run.model_owned;
    }
    if (rc == 0 && o->ready_check_timeout_s > 0)
        rc = ready_check(&run);
    if (rc == 0)
        rc = warm_up(&run);
    if (rc == 0)
        rc = main_run(&run);
    struct bench_metrics m;
    if (rc == 0)
        rc = bench_metrics_compute(run.results, run.ds.n, run.duration, o->percentiles,
                                   o->n_percentiles, &o->slo, &m);
    if (rc == 0) {
        bench_report_print(&run, &m, out);
        if (o->result_file)
            rc = bench_report_write(&run, &m, o->result_file);
    }
    teardown(&run);
    return rc;
}
