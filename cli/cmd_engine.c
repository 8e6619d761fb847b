/*
 * cmd_engine: `kiln engine --model DIR [flags]`: one engine (worker rank 0 and its
 * tensor-parallel ranks) serving frontends over ZeroMQ until SIGTERM or SIGINT. The first
 * signal drains (new requests are refused, running ones finish), a second one exits at once.
 * Prints "kiln engine: ready on ADDR" on stdout once it accepts frontends.
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "common/cfg.h"
#include "common/err.h"
#include "common/log.h"
#include "worker/engine.h"

struct engine_opts {
    const char *model, *served_name, *addr, *kv_cache_memory, *log_level;
    int load_format; /* 0 auto, 1 dummy */
    int policy;      /* 0 fcfs, 1 priority */
    long long threads, tp, block_size, max_num_seqs, max_num_batched_tokens, max_waiting,
        max_model_len, seed, frontend_timeout_ms;
    bool prefix_caching;
};

#define F(name, type, field, def, lo, hi, choices, help)                                           \
    {name, type, offsetof(struct engine_opts, field), def, lo, hi, choices, help}
static const struct cfg_flag engine_flags[] = {
    F("model", CFG_STRING, model, NULL, 1, 0, NULL, "model directory (config.json, *.safetensors)"),
    F("served-model-name", CFG_STRING, served_name, NULL, 1, 0, NULL,
      "the model's name in HELLO (default: --model as given)"),
    F("addr", CFG_STRING, addr, "ipc:///tmp/kiln-engine-0.sock", 1, 0, NULL,
      "ZeroMQ endpoint to bind: ipc:///path or tcp://host:port"),
    F("load-format", CFG_ENUM, load_format, "auto", 1, 0, "auto|dummy",
      "auto: safetensors weights; dummy: random weights of the config's shapes"),
    F("threads", CFG_INT, threads, "0", 0, 1024, NULL,
      "CPU threads per rank (0: the CPUs divided among the ranks)"),
    F("tensor-parallel-size", CFG_INT, tp, "1", 1, 64, NULL,
      "ranks (processes) sharing the model's heads and MLP columns"),
    F("block-size", CFG_INT, block_size, "16", 1, 4096, NULL, "tokens per KV-cache block"),
    F("kv-cache-memory", CFG_STRING, kv_cache_memory, "1GiB", 1, 0, NULL,
      "KV cache per rank: bytes, or with a suffix K, M, G, KiB, MiB, GiB"),
    F("max-num-seqs", CFG_INT, max_num_seqs, "256", 1, 65536, NULL, "sequences per step"),
    F("max-num-batched-tokens", CFG_INT, max_num_batched_tokens, "2048", 1, 1 << 20, NULL,
      "tokens per step (longer prompts are chunked)"),
    F("max-waiting-seqs", CFG_INT, max_waiting, "4096", 1, 1 << 20, NULL,
      "queued sequences before new requests are refused (the frontend answers 429)"),
    F("max-model-len", CFG_INT, max_model_len, "0", 0, 1 << 24, NULL,
      "longest prompt + output (0: the model's)"),
    F("scheduling-policy", CFG_ENUM, policy, "fcfs", 1, 0, "fcfs|priority",
      "fcfs: by arrival; priority: by the request's priority, then arrival"),
    F("enable-prefix-caching", CFG_BOOL, prefix_caching, "true", 1, 0, NULL,
      "reuse the KV of cached prompt prefixes (--no-enable-prefix-caching: off)"),
    F("seed", CFG_INT, seed, "-1", -1, 9e18, NULL,
      "engine seed for requests without one (-1: random at each start)"),
    F("frontend-timeout-ms", CFG_INT, frontend_timeout_ms, "5000", 100, 3600000, NULL,
      "a frontend silent this long has its requests aborted"),
    F("log-level", CFG_STRING, log_level, "info", 1, 0, NULL, "error|warn|info|debug"),
};
#undef F

#define N_FLAGS (sizeof engine_flags / sizeof *engine_flags)

static volatile sig_atomic_t stop_signals;

static void on_signal(int sig)
{
    (void)sig;
    stop_signals++;
}

/* parse_size: "123", "4K", "512MiB", "1GiB", "2G" -> bytes. Returns 0 or ERR_INVAL. */
static int parse_size(const char *s, size_t *out)
{
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno || *s == '-')
        return ERR_INVAL;
    static const struct {
        const char *suffix;
        unsigned long long mul;
    } units[] = {{"", 1},           {"K", 1000},        {"KB", 1000},     {"KiB", 1ull << 10},
                 {"M", 1000000},    {"MB", 1000000},    {"MiB", 1ull << 20}, {"G", 1000000000},
                 {"GB", 1000000000}, {"GiB", 1ull << 30}, {"T", 1000000000000ull},
                 {"TiB", 1ull << 40}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > SIZE_MAX / units[i].mul)
                return ERR_INVAL;
            *out = (size_t)(v * units[i].mul);
            return *out ? 0 : ERR_INVAL;
        }
    return ERR_INVAL;
}

/* to_config: the engine config from parsed flags; err says what is wrong. */
static int to_config(const struct engine_opts *o, struct engine_config *c, char *err, size_t n)
{
    *c = engine_config_default();
    c->model_dir = o->model;
    c->model_name = o->served_name;
    c->addr = o->addr;
    c->dummy = o->load_format == 1;
    c->threads = (int)o->threads;
    c->tp_size = (int)o->tp;
    c->block_size = (int)o->block_size;
    c->max_num_seqs = (int)o->max_num_seqs;
    c->max_num_batched_tokens = (int)o->max_num_batched_tokens;
    c->max_waiting = (int)o->max_waiting;
    c->max_model_len = (int)o->max_model_len;
    c->policy = o->policy ? SCHED_PRIORITY : SCHED_FCFS;
    c->enable_prefix_caching = o->prefix_caching;
    c->has_seed = o->seed >= 0;
    c->seed = (uint64_t)(o->seed >= 0 ? o->seed : 0);
    c->frontend_timeout_ms = (int)o->frontend_timeout_ms;
    enum log_level lvl;
    if (!o->model)
        return snprintf(err, n, "--model is required"), ERR_INVAL;
    if (parse_size(o->kv_cache_memory, &c->kv_cache_bytes))
        return snprintf(err, n, "--kv-cache-memory: '%s' is not a size", o->kv_cache_memory),
               ERR_INVAL;
    if (log_level_parse(o->log_level, &lvl))
        return snprintf(err, n, "--log-level: '%s' is not error|warn|info|debug", o->log_level),
               ERR_INVAL;
    log_config.level = lvl;
    return 0;
}

int cmd_engine(int argc, char **argv)
{
    struct engine_opts o;
    struct engine_config c;
    char err[1024];
    static const char usage[] = "usage: kiln engine --model DIR [flags]";
    int rc = cfg_parse(engine_flags, N_FLAGS, &o, argc, argv, NULL, 0, NULL, err, sizeof err);
    if (rc == CFG_HELP) {
        cfg_print_help(stdout, usage, engine_flags, N_FLAGS);
        return 0;
    }
    if (rc == 0)
        rc = to_config(&o, &c, err, sizeof err);
    if (rc) {
        fprintf(stderr, "kiln engine: %s\n", err);
        cfg_print_help(stderr, usage, engine_flags, N_FLAGS);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct engine *e;
    if ((rc = engine_new(&c, &e, err, sizeof err)) != 0) {
        fprintf(stderr, "kiln engine: %s\n", err);
        return 1;
    }
    engine_describe(e, err, sizeof err);
    log_info("%s", err);
    printf("kiln engine: ready on %s\n", engine_endpoint(e));
    fflush(stdout);
    rc = engine_run(e, &stop_signals, err, sizeof err);
    if (rc)
        fprintf(stderr, "kiln engine: fatal: %s\n", err);
    engine_free(e);
    return rc ? 1 : 0;
}
