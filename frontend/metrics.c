#include "frontend/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/utf8.h"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- vLLM's histogram bounds (vllm/v1/metrics/loggers.py) ---------------------------- */

static const double ttft_bounds[] = {0.001, 0.005, 0.01, 0.02,  0.04,  0.06,  0.08, 0.1,
                                     0.25,  0.5,   0.75, 1.0,   2.5,   5.0,   7.5,  10.0,
                                     20.0,  40.0,  80.0, 160.0, 640.0, 2560.0};
static const double itl_bounds[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                    0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
static const double latency_bounds[] = {0.3,  0.5,   0.8,   1.0,   1.5,   2.0,    2.5,
                                        5.0,  10.0,  15.0,  20.0,  30.0,  40.0,   50.0,
                                        60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
static const double iteration_bounds[] = {1,   8,    16,   32,   64,   128,  256,
                                          512, 1024, 2048, 4096, 8192, 16384};

/* ---- the HTTP label table ------------------------------------------------------------ */

static const char *const http_handlers[METRICS_HTTP_HANDLERS] = {"/v1/chat/completions",
                                                                 "/v1/completions",
                                                                 "/v1/models",
                                                                 "/tokenize",
                                                                 "/detokenize",
                                                                 "/health",
                                                                 "/version",
                                                                 "/metrics",
                                                                 "other"};
static const char *const http_methods[METRICS_HTTP_METHODS] = {"GET", "POST", "OPTIONS", "HEAD",
                                                               "other"};
#define HTTP_N_CODES 14
static const int http_codes[HTTP_N_CODES] = {200, 204, 400, 401, 404, 405, 409,
                                             413, 415, 429, 431, 500, 501, 503};
static const char *const http_statuses[METRICS_HTTP_STATUSES] = {
    "200", "204", "400", "401", "404", "405", "409", "413", "415", "429",
    "431", "500", "501", "503", "1xx", "2xx", "3xx", "4xx", "5xx", "other"};
#define HTTP_OTHER_STATUS (METRICS_HTTP_STATUSES - 1)

_Static_assert(HTTP_N_CODES + 6 == METRICS_HTTP_STATUSES, "status table");
_Static_assert(COUNT_OF(ttft_bounds) <= METRICS_MAX_BUCKETS, "ttft bounds");
_Static_assert(COUNT_OF(latency_bounds) <= METRICS_MAX_BUCKETS, "latency bounds");

static const char *const finish_names[METRICS_FINISH_N_] = {"stop", "length", "abort", "error"};

/* ---- the families, in rendering order ------------------------------------------------ */

enum fam_kind {
    FAM_RUNNING,
    FAM_WAITING,
    FAM_KV_USAGE,
    FAM_ENGINE_COUNTER, /* arg: enum metrics_engine_counter */
    FAM_PROMPT_TOKENS,
    FAM_GENERATION_TOKENS,
    FAM_SUCCESS,
    FAM_HIST, /* arg: enum metrics_hist_id */
    FAM_HTTP
};

struct family {
    const char *name; /* without the prefix; a counter's without "_total" */
    const char *help;
    enum fam_kind kind;
    int arg;
};

static const struct family families[] = {
    {"num_requests_running", "Number of requests in model execution batches.", FAM_RUNNING, 0},
    {"num_requests_waiting", "Number of requests waiting to be processed.", FAM_WAITING, 0},
    {"kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", FAM_KV_USAGE, 0},
    {"prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
     FAM_ENGINE_COUNTER, METRICS_EC_PREFIX_QUERIES},
    {"prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
     FAM_ENGINE_COUNTER, METRICS_EC_PREFIX_HITS},
    {"num_preemptions", "Cumulative number of preemption from the engine.", FAM_ENGINE_COUNTER,
     METRICS_EC_PREEMPTIONS},
    {"prompt_tokens", "Number of prefill tokens processed.", FAM_PROMPT_TOKENS, 0},
    {"generation_tokens", "Number of generation tokens processed.", FAM_GENERATION_TOKENS, 0},
    {"request_success", "Count of successfully processed requests.", FAM_SUCCESS, 0},
    {"request_prompt_tokens", "Number of prefill tokens processed.", FAM_HIST, METRICS_H_PROMPT},
    {"request_generation_tokens", "Number of generation tokens processed.", FAM_HIST,
     METRICS_H_GENERATION},
    {"iteration_tokens_total", "Histogram of number of tokens per engine_step.", FAM_HIST,
     METRICS_H_ITERATION},
    {"time_to_first_token_seconds", "Histogram of time to first token in seconds.", FAM_HIST,
     METRICS_H_TTFT},
    {"inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", FAM_HIST,
     METRICS_H_ITL},
    {"e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", FAM_HIST,
     METRICS_H_E2E},
    {"request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
     FAM_HIST, METRICS_H_QUEUE},
    {"http_requests_total", "Total number of requests by method, status and handler.", FAM_HTTP, 0},
};

static bool fam_is_counter(const struct family *f)
{
    return f->kind == FAM_ENGINE_COUNTER || f->kind == FAM_PROMPT_TOKENS ||
           f->kind == FAM_GENERATION_TOKENS || f->kind == FAM_SUCCESS;
}

/* ---- set-up -------------------------------------------------------------------------- */

/* build_1_2_5: vLLM's build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to max. */
static uint32_t build_1_2_5(double *out, uint32_t max)
{
    static const double mant[3] = {1, 2, 5};
    uint32_t n = 0;
    for (double p10 = 1;; p10 *= 10) {
        for (int i = 0; i < 3; i++) {
            double v = mant[i] * p10;
            if (v > max || n == METRICS_MAX_BUCKETS)
                return n;
            out[n++] = v;
        }
    }
}

static int escape_label(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        const char *rep = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
        size_t k = rep ? 2 : 1;
        if (n + k >= cap)
            return ERR_LIMIT;
        if (rep)
            memcpy(out + n, rep, 2);
        else
            out[n] = *s;
        n += k;
    }
    out[n] = '\0';
    return 0;
}

int metrics_init(struct metrics *m, const char *model_name, bool vllm_compat)
{
    memset(m, 0, sizeof *m);
    if (!model_name || !utf8_valid(model_name, strlen(model_name)))
        return ERR_INVAL;
    if (strlen(model_name) > METRICS_MAX_NAME)
        return ERR_LIMIT;
    int rc = escape_label(m->label, sizeof m->label, model_name);
    if (rc)
        return rc;
    m->vllm_compat = vllm_compat;
    m->max_model_len = METRICS_DEFAULT_MAX_MODEL_LEN;
    m->n_token_bounds = build_1_2_5(m->token_bounds, m->max_model_len);
    return 0;
}

int metrics_set_max_model_len(struct metrics *m, uint32_t max_model_len)
{
    if (max_model_len == 0)
        return ERR_RANGE;
    double b[METRICS_MAX_BUCKETS];
    uint32_t n = build_1_2_5(b, max_model_len);
    bool same = n == m->n_token_bounds && memcmp(b, m->token_bounds, n * sizeof *b) == 0;
    if (!same && m->tokens_observed)
        return ERR_STATE;
    memcpy(m->token_bounds, b, sizeof b);
    m->n_token_bounds = n;
    m->max_model_len = max_model_len;
    return 0;
}

/* ---- updates ------------------------------------------------------------------------- */

static const double *hist_bounds(const struct metrics *m, int id, uint32_t *n)
{
    switch (id) {
    case METRICS_H_PROMPT:
    case METRICS_H_GENERATION: *n = m->n_token_bounds; return m->token_bounds;
    case METRICS_H_ITERATION: *n = COUNT_OF(iteration_bounds); return iteration_bounds;
    case METRICS_H_TTFT: *n = COUNT_OF(ttft_bounds); return ttft_bounds;
    case METRICS_H_ITL: *n = COUNT_OF(itl_bounds); return itl_bounds;
    default: *n = COUNT_OF(latency_bounds); return latency_bounds;
    }
}

/* observe: v goes into the first bucket whose bound is >= v (Prometheus "le"). */
static void observe(struct metrics *m, int id, double v)
{
    uint32_t n;
    const double *b = hist_bounds(m, id, &n);
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (v <= b[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    struct metrics_hist *h = &m->hist[id];
    h->bucket[lo]++;
    h->count++;
    h->sum += v;
}

static void observe_seconds(struct metrics *m, int id, double s)
{
    if (!isfinite(s))
        return;
    observe(m, id, s < 0 ? 0 : s);
}

void metrics_iteration(struct metrics *m, uint32_t prompt_tokens, uint32_t generation_tokens)
{
    m->prompt_tokens += prompt_tokens;
    m->generation_tokens += generation_tokens;
    observe(m, METRICS_H_ITERATION, (double)prompt_tokens + (double)generation_tokens);
}

void metrics_first_token(struct metrics *m, double ttft_s)
{
    observe_seconds(m, METRICS_H_TTFT, ttft_s);
}

void metrics_token_gap(struct metrics *m, double itl_s)
{
    observe_seconds(m, METRICS_H_ITL, itl_s);
}

void metrics_request_done(struct metrics *m, enum metrics_finish finish, uint32_t prompt_tokens,
                          uint32_t generation_tokens, double e2e_s, double queue_s)
{
    unsigned f = (unsigned)finish;
    m->success[f < METRICS_FINISH_N_ ? f : METRICS_FINISH_ERROR]++;
    m->tokens_observed = true;
    observe(m, METRICS_H_PROMPT, prompt_tokens);
    observe(m, METRICS_H_GENERATION, generation_tokens);
    observe_seconds(m, METRICS_H_E2E, e2e_s);
    observe_seconds(m, METRICS_H_QUEUE, queue_s);
}

static int http_status_index(int status)
{
    for (int i = 0; i < HTTP_N_CODES; i++)
        if (http_codes[i] == status)
            return i;
    if (status >= 100 && status <= 599)
        return HTTP_N_CODES + status / 100 - 1;
    return HTTP_OTHER_STATUS;
}

static int table_index(const char *const *table, int n, const char *s)
{
    if (s)
        for (int i = 0; i < n - 1; i++)
            if (strcmp(table[i], s) == 0)
                return i;
    return n - 1; /* "other" */
}

void metrics_http(struct metrics *m, const char *path, const char *method, int status)
{
    int h = table_index(http_handlers, METRICS_HTTP_HANDLERS, path);
    int k = table_index(http_methods, METRICS_HTTP_METHODS, method);
    m->http[h][k][http_status_index(status)]++;
}

int metrics_engine_load(struct metrics *m, uint32_t engine, uint32_t running, uint32_t waiting,
                        uint32_t kv_blocks_used, uint32_t kv_blocks_total)
{
    if (engine >= METRICS_MAX_ENGINES)
        return ERR_RANGE;
    if (kv_blocks_used > kv_blocks_total)
        return ERR_INVAL;
    struct metrics_engine *e = &m->engine[engine];
    e->load_seen = true;
    e->running = running;
    e->waiting = waiting;
    e->kv_used = kv_blocks_used;
    e->kv_total = kv_blocks_total;
    return 0;
}

int metrics_engine_totals(struct metrics *m, uint32_t engine, uint64_t epoch,
                          uint64_t prefix_queries, uint64_t prefix_hits, uint64_t preemptions)
{
    if (engine >= METRICS_MAX_ENGINES)
        return ERR_RANGE;
    struct metrics_engine *e = &m->engine[engine];
    const uint64_t v[METRICS_EC_N_] = {prefix_queries, prefix_hits, preemptions};
    bool restart = e->totals_seen && e->epoch != epoch;
    for (int i = 0; i < METRICS_EC_N_; i++) {
        /* What the engine counted before it restarted is banked; its new totals add to it. */
        if (restart || v[i] < e->last[i])
            m->banked[i] += e->last[i];
        e->last[i] = v[i];
    }
    e->epoch = epoch;
    e->totals_seen = true;
    return 0;
}

int metrics_engine_gone(struct metrics *m, uint32_t engine)
{
    if (engine >= METRICS_MAX_ENGINES)
        return ERR_RANGE;
    struct metrics_engine *e = &m->engine[engine];
    for (int i = 0; i < METRICS_EC_N_; i++)
        m->banked[i] += e->last[i];
    memset(e, 0, sizeof *e);
    return 0;
}

/* ---- number formatting --------------------------------------------------------------- */

/* py_repr: Python's repr() of the finite d: the shortest digits that read back as d (the
 * correctly rounded ones), fixed notation for decimal exponents -4..15, else scientific
 * ("1e-05", "1.5e+16"). out has room for 32 bytes. */
static void py_repr(double d, char *out)
{
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, d);
        if (strtod(e, NULL) == d)
            break;
    }
    const char *s = e;
    if (*s == '-')
        *out++ = *s++;
    char dig[24];
    int nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s != '.')
            dig[nd++] = *s;
    int x = atoi(s + 1);
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    if (x < -4 || x >= 16) {
        *out++ = dig[0];
        if (nd > 1)
            *out++ = '.';
        memcpy(out, dig + 1, (size_t)nd - 1);
        out += nd - 1;
        sprintf(out, "e%c%02d", x < 0 ? '-' : '+', abs(x));
    } else if (x >= 0) {
        for (int i = 0; i <= x; i++)
            *out++ = i < nd ? dig[i] : '0';
        *out++ = '.';
        for (int i = x + 1; i < nd; i++)
            *out++ = dig[i];
        if (nd <= x + 1)
            *out++ = '0';
        *out = '\0';
    } else {
        *out++ = '0';
        *out++ = '.';
        for (int i = 0; i < -x - 1; i++)
            *out++ = '0';
        memcpy(out, dig, (size_t)nd);
        out[nd] = '\0';
    }
}

/* fmt_float: d as prometheus_client writes it (floatToGoString): "+Inf", "-Inf", "NaN", else
 * Python's repr, except that a positive value with more than 6 integer digits switches to
 * an exponent as Go does ("1e+06", "1.2345678e+07"). out has room for 40 bytes. */
static void fmt_float(double d, char *out)
{
    if (isnan(d)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(d)) {
        strcpy(out, d > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (d == floor(d) && fabs(d) < 1e6) { /* the common case: counts */
        snprintf(out, 40, "%.1f", d);
        return;
    }
    py_repr(d, out);
    const char *dot = strchr(out, '.');
    int ip = dot ? (int)(dot - out) : -1; /* integer digits */
    if (d <= 0 || ip <= 6)
        return;
    char mant[40];
    int n = 0;
    mant[n++] = out[0];
    mant[n++] = '.';
    for (const char *s = out + 1; *s; s++)
        if (*s != '.')
            mant[n++] = *s;
    while (n > 0 && (mant[n - 1] == '0' || mant[n - 1] == '.'))
        n--;
    snprintf(out, 40, "%.*se+%02d", n, mant, ip - 1);
}

/* ---- rendering ----------------------------------------------------------------------- */

struct out {
    struct buf *b;
    int rc; /* the first failure; later writes do nothing */
};

static void out_str(struct out *o, const char *s)
{
    if (!o->rc)
        o->rc = buf_append_str(o->b, s);
}

static void out_value(struct out *o, double v)
{
    char s[40];
    fmt_float(v, s);
    out_str(o, " ");
    out_str(o, s);
    out_str(o, "\n");
}

/* out_cat3: three strings in a row. */
static void out_cat3(struct out *o, const char *a, const char *b, const char *c)
{
    out_str(o, a);
    out_str(o, b);
    out_str(o, c);
}

static void out_model_label(struct out *o, const struct metrics *m)
{
    out_str(o, "model_name=\"");
    out_str(o, m->label);
    out_str(o, "\"");
}

/* out_sample: "<name><suffix>{model_name="..."} v", a sample labelled only with model_name. */
static void out_sample(struct out *o, const struct metrics *m, const char *name, const char *suffix,
                       double v)
{
    out_str(o, name);
    out_str(o, suffix);
    out_str(o, "{");
    out_model_label(o, m);
    out_str(o, "}");
    out_value(o, v);
}

static void render_hist(struct out *o, const struct metrics *m, const char *name, int id)
{
    uint32_t n;
    const double *b = hist_bounds(m, id, &n);
    const struct metrics_hist *h = &m->hist[id];
    uint64_t cum = 0;
    for (uint32_t i = 0; i <= n; i++) {
        char le[40];
        cum += h->bucket[i];
        fmt_float(i < n ? b[i] : INFINITY, le);
        out_cat3(o, name, "_bucket{le=\"", le);
        out_str(o, "\",");
        out_model_label(o, m);
        out_str(o, "}");
        out_value(o, (double)cum);
    }
    out_sample(o, m, name, "_count", (double)h->count);
    out_sample(o, m, name, "_sum", h->sum);
}

static void render_success(struct out *o, const struct metrics *m, const char *name)
{
    for (int i = 0; i < METRICS_FINISH_N_; i++) {
        out_cat3(o, name, "{finished_reason=\"", finish_names[i]);
        out_str(o, "\",");
        out_model_label(o, m);
        out_str(o, "}");
        out_value(o, (double)m->success[i]);
    }
}

static void out_http_sample(struct out *o, const struct metrics *m, const char *name, int h, int k,
                            const char *status, uint64_t v)
{
    out_str(o, name);
    out_str(o, "{handler=\"");
    out_str(o, http_handlers[h]);
    out_str(o, "\",method=\"");
    out_str(o, http_methods[k]);
    out_str(o, "\",");
    out_model_label(o, m);
    out_str(o, ",status=\"");
    out_str(o, status);
    out_str(o, "\"}");
    out_value(o, (double)v);
}

/* status_class: 1..5 for a status index, 0 for "other". */
static int status_class(int s)
{
    if (s < HTTP_N_CODES)
        return http_codes[s] / 100;
    return s < HTTP_OTHER_STATUS ? s - HTTP_N_CODES + 1 : 0;
}

/* render_http: the cells that counted a request; grouped by status class ("2xx") for the
 * vLLM copy, as prometheus-fastapi-instrumentator groups them. */
static void render_http(struct out *o, const struct metrics *m, const char *name, bool grouped)
{
    static const char *const classes[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    for (int h = 0; h < METRICS_HTTP_HANDLERS; h++) {
        for (int k = 0; k < METRICS_HTTP_METHODS; k++) {
            const uint64_t *cell = m->http[h][k];
            if (!grouped) {
                for (int s = 0; s < METRICS_HTTP_STATUSES; s++)
                    if (cell[s])
                        out_http_sample(o, m, name, h, k, http_statuses[s], cell[s]);
                continue;
            }
            for (int c = 1; c <= 6; c++) { /* 1xx..5xx, then other */
                uint64_t sum = 0;
                for (int s = 0; s < METRICS_HTTP_STATUSES; s++)
                    if (status_class(s) == c % 6)
                        sum += cell[s];
                if (sum)
                    out_http_sample(o, m, name, h, k, classes[c % 6], sum);
            }
        }
    }
}

/* engine_value: a gauge or engine counter over every engine. */
static double engine_value(const struct metrics *m, enum fam_kind kind, int arg)
{
    uint64_t total = kind == FAM_ENGINE_COUNTER ? m->banked[arg] : 0, blocks = 0;
    for (int i = 0; i < METRICS_MAX_ENGINES; i++) {
        const struct metrics_engine *e = &m->engine[i];
        switch (kind) {
        case FAM_RUNNING: total += e->running; break;
        case FAM_WAITING: total += e->waiting; break;
        case FAM_KV_USAGE:
            total += e->kv_used;
            blocks += e->kv_total;
            break;
        default: total += e->last[arg]; break;
        }
    }
    if (kind == FAM_KV_USAGE)
        return blocks ? (double)total / (double)blocks : 0.0;
    return (double)total;
}

static void render_family(struct out *o, const struct metrics *m, const struct family *f,
                          const char *prefix, bool vllm_copy)
{
    const char *total = fam_is_counter(f) ? "_total" : "";
    const char *type = f->kind == FAM_HIST ? "histogram" : "counter";
    if (f->kind == FAM_RUNNING || f->kind == FAM_WAITING || f->kind == FAM_KV_USAGE)
        type = "gauge";
    if (f->kind == FAM_HTTP && vllm_copy)
        prefix = ""; /* vLLM's own http_requests_total has no prefix */
    char name[64];
    snprintf(name, sizeof name, "%s%s%s", prefix, f->name, total);
    out_str(o, "# HELP ");
    out_cat3(o, name, " ", f->help);
    out_str(o, "\n# TYPE ");
    out_cat3(o, name, " ", type);
    out_str(o, "\n");
    switch (f->kind) {
    case FAM_HIST: render_hist(o, m, name, f->arg); break;
    case FAM_SUCCESS: render_success(o, m, name); break;
    case FAM_HTTP: render_http(o, m, name, vllm_copy); break;
    case FAM_PROMPT_TOKENS: out_sample(o, m, name, "", (double)m->prompt_tokens); break;
    case FAM_GENERATION_TOKENS: out_sample(o, m, name, "", (double)m->generation_tokens); break;
    default: out_sample(o, m, name, "", engine_value(m, f->kind, f->arg)); break;
    }
}

int metrics_render(const struct metrics *m, struct buf *b)
{
    struct out o = {b, 0};
    size_t n0 = b->n;
    for (size_t i = 0; i < COUNT_OF(families); i++)
        render_family(&o, m, &families[i], "kiln:", false);
    if (m->vllm_compat)
        for (size_t i = 0; i < COUNT_OF(families); i++)
            render_family(&o, m, &families[i], "vllm:", true);
    if (o.rc) {
        b->n = n0;
        if (b->cap)
            b->p[n0] = '\0';
    }
    return o.rc;
}
