/*
 * metrics: the frontend process's Prometheus metrics, rendered for GET /metrics in the text
 * exposition format 0.0.4 (API.md, Metrics).
 *
 * Every family is named "kiln:<name>" and labelled model_name="<served name>"; with the vLLM
 * compatibility flag each is rendered a second time as "vllm:<name>" so vLLM's dashboards and
 * routers work unchanged (the HTTP counter's second copy is vLLM's unprefixed
 * http_requests_total with status classes "2xx", as prometheus-fastapi-instrumentator emits
 * it). Names, help texts and histogram buckets are vLLM's (vllm/v1/metrics/loggers.py). The
 * text is what prometheus_client's generate_latest writes for the same values, without its
 * _created samples: counter families are "x_total" in HELP, TYPE and samples; labels sorted
 * by name; values as Go's strconv prints floats ("1.0", "0.25", "1e+06", "+Inf").
 *
 * What feeds what:
 *   engine STATS / HEARTBEAT  metrics_engine_load (gauges), metrics_engine_totals (counters)
 *   a TOKENS message          metrics_iteration, metrics_first_token, metrics_token_gap
 *   a request's end           metrics_request_done
 *   each HTTP response        metrics_http
 * Gauges are summed over the engines that reported (kv_cache_usage_perc is the fraction of all
 * their KV blocks in use, 0..1). Engine counters arrive as the engine's own cumulative totals;
 * a new epoch, a total that goes down, or metrics_engine_gone mean the engine restarted, and
 * what it had counted is kept, so the rendered counters never decrease.
 *
 * Memory: struct metrics is fixed-size caller storage (about 10 KiB); nothing is allocated
 * after metrics_init and no update allocates. The label sets are bounded: the HTTP counter
 * has a fixed table of handlers (API.md's paths and "other"), methods (GET POST OPTIONS HEAD
 * and "other") and statuses (the codes kiln sends, then "1xx".."5xx", then "other"), and a
 * cell is rendered once it has counted a request.
 *
 * Threads: one (the frontend's event loop); no call takes a lock. The fields of struct
 * metrics are private to metrics.c.
 */
#ifndef KILN_METRICS_H
#define KILN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define METRICS_MAX_NAME 256 /* bytes of the served model name */
#define METRICS_MAX_ENGINES 16
#define METRICS_MAX_BUCKETS 32 /* finite bucket bounds of one histogram */
#define METRICS_DEFAULT_MAX_MODEL_LEN 131072

#define METRICS_HTTP_HANDLERS 9  /* 8 API.md paths + "other" */
#define METRICS_HTTP_METHODS 5   /* GET POST OPTIONS HEAD other */
#define METRICS_HTTP_STATUSES 20 /* 14 codes, 1xx..5xx, other */

/* Why a request ended: vLLM's FinishReason values ("stop", "length", "abort", "error"). */
enum metrics_finish {
    METRICS_FINISH_STOP = 0, /* EOS, a stop id or string (also a finish_reason "tool_calls") */
    METRICS_FINISH_LENGTH,
    METRICS_FINISH_ABORT,
    METRICS_FINISH_ERROR,
    METRICS_FINISH_N_
};

enum metrics_hist_id {
    METRICS_H_PROMPT = 0, /* request_prompt_tokens */
    METRICS_H_GENERATION, /* request_generation_tokens */
    METRICS_H_ITERATION,  /* iteration_tokens_total */
    METRICS_H_TTFT,       /* time_to_first_token_seconds */
    METRICS_H_ITL,        /* inter_token_latency_seconds */
    METRICS_H_E2E,        /* e2e_request_latency_seconds */
    METRICS_H_QUEUE,      /* request_queue_time_seconds */
    METRICS_H_N_
};

/* The engine counters fed as cumulative totals. */
enum metrics_engine_counter {
    METRICS_EC_PREFIX_QUERIES = 0,
    METRICS_EC_PREFIX_HITS,
    METRICS_EC_PREEMPTIONS,
    METRICS_EC_N_
};

struct metrics_hist {
    uint64_t bucket[METRICS_MAX_BUCKETS + 1]; /* observations per bucket, not cumulative;
                                                 bucket[n_bounds] is the +Inf one */
    uint64_t count;
    double sum;
};

struct metrics_engine {
    bool load_seen;   /* gauges reported since start or metrics_engine_gone */
    bool totals_seen; /* totals reported since start or metrics_engine_gone */
    uint64_t epoch;
    uint32_t running, waiting, kv_used, kv_total;
    uint64_t last[METRICS_EC_N_]; /* the engine's latest cumulative totals */
};

struct metrics {
    char label[2 * METRICS_MAX_NAME + 1]; /* the model name, escaped for a label value */
    bool vllm_compat;
    bool tokens_observed; /* a token-count histogram has an observation: bounds are fixed */
    uint32_t max_model_len;
    uint32_t n_token_bounds;
    double token_bounds[METRICS_MAX_BUCKETS]; /* 1, 2, 5, 10, ... <= max_model_len */
    struct metrics_hist hist[METRICS_H_N_];
    uint64_t prompt_tokens, generation_tokens;
    uint64_t success[METRICS_FINISH_N_];
    uint64_t banked[METRICS_EC_N_]; /* totals of engines that restarted */
    struct metrics_engine engine[METRICS_MAX_ENGINES];
    uint64_t http[METRICS_HTTP_HANDLERS][METRICS_HTTP_METHODS][METRICS_HTTP_STATUSES];
};

/* metrics_init: empty metrics for the served name model_name (any bytes up to
 * METRICS_MAX_NAME; it is escaped), token-count buckets for METRICS_DEFAULT_MAX_MODEL_LEN, and
 * the vllm: copies when vllm_compat. Returns 0, ERR_INVAL (model_name NULL or not UTF-8) or
 * ERR_LIMIT (too long). */
int metrics_init(struct metrics *m, const char *model_name, bool vllm_compat);

/* metrics_set_max_model_len: the token-count histograms' bounds become vLLM's 1-2-5 series
 * up to max_model_len (>= 1), as the engine's HELLO says. Returns 0, ERR_RANGE (0) or
 * ERR_STATE (different bounds after a token count was observed; nothing changes). */
int metrics_set_max_model_len(struct metrics *m, uint32_t max_model_len);

/* metrics_iteration: one engine step's output as this frontend saw it (one TOKENS message):
 * prompt tokens of the sequences whose prefill it completed and tokens generated. Adds them
 * to prompt_tokens_total and generation_tokens_total and observes their sum in
 * iteration_tokens_total, as vLLM does per step. */
void metrics_iteration(struct metrics *m, uint32_t prompt_tokens, uint32_t generation_tokens);

/* metrics_first_token: a request's time to first token, in seconds. A value that is not
 * finite is ignored; a negative one (a clock step) counts as 0. The same for the other
 * seconds arguments below. */
void metrics_first_token(struct metrics *m, double ttft_s);

/* metrics_token_gap: the time between two consecutive token messages of one choice. */
void metrics_token_gap(struct metrics *m, double itl_s);

/* metrics_request_done: a request ended (once per request): counts it under its finish
 * reason (an out-of-range value counts as "error") and observes its prompt and generated
 * token counts, end-to-end latency and time spent waiting in the engine's queue. */
void metrics_request_done(struct metrics *m, enum metrics_finish finish, uint32_t prompt_tokens,
                          uint32_t generation_tokens, double e2e_s, double queue_s);

/* metrics_http: one HTTP response: path is the request target without the query (an unknown
 * one or NULL counts as "other"), method as received ("other" unless GET POST OPTIONS HEAD),
 * status the response code (one kiln does not send counts under its class "4xx", a value
 * outside 100..599 under "other"). */
void metrics_http(struct metrics *m, const char *path, const char *method, int status);

/* metrics_engine_load: engine `engine`'s load from STATS or HEARTBEAT. Returns 0, ERR_RANGE
 * (engine >= METRICS_MAX_ENGINES) or ERR_INVAL (kv_blocks_used > kv_blocks_total); nothing
 * changes on failure. */
int metrics_engine_load(struct metrics *m, uint32_t engine, uint32_t running, uint32_t waiting,
                        uint32_t kv_blocks_used, uint32_t kv_blocks_total);

/* metrics_engine_totals: engine `engine`'s cumulative counters since its start `epoch`
 * (prefix cache queried and hit tokens, preemptions). A different epoch than last time
 * means a restart: the previous totals are kept and the new ones added on top; a total
 * lower than the last one with the same epoch is treated the same way for that counter.
 * Returns 0 or ERR_RANGE (engine >= METRICS_MAX_ENGINES). */
int metrics_engine_totals(struct metrics *m, uint32_t engine, uint64_t epoch,
                          uint64_t prefix_queries, uint64_t prefix_hits, uint64_t preemptions);

/* metrics_engine_gone: engine `engine` died or was dropped: its load leaves the gauges, its
 * totals are kept in the counters, and its next report starts afresh. Returns 0 or
 * ERR_RANGE. */
int metrics_engine_gone(struct metrics *m, uint32_t engine);

/* metrics_render: appends the exposition text (Content-Type "text/plain; version=0.0.4;
 * charset=utf-8") to b. Returns 0, ERR_LIMIT or ERR_NOMEM; on failure b is as it was. */
int metrics_render(const struct metrics *m, struct buf *b);

#endif
