/*
 * cmd_frontend: `kiln frontend --model DIR --engine ADDR[,ADDR...] [flags]`: one HTTP
 * frontend process (frontend/frontend.h) serving the OpenAI API on --port (or on an
 * inherited listening socket, --listen-fd, as `kiln serve` starts it) in front of the
 * engines at --engine. Prints "kiln frontend: listening on PORT" once it accepts requests.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "common/cfg.h"
#include "common/err.h"
#include "common/log.h"
#include "frontend/frontend.h"

struct fe_opts {
    const char *model, *names, *host, *engines, *api_key, *origins, *chat_template, *log_level,
        *certfile, *keyfile;
    long long port, listen_fd, max_logprobs, shutdown_timeout, max_in_flight;
    bool trust_template;
    int metrics_compat; /* 0 none, 1 vllm */
};

#define F(name, type, field, def, lo, hi, choices, help)                                           \
    {name, type, offsetof(struct fe_opts, field), def, lo, hi, choices, help}
static const struct cfg_flag fe_flags[] = {
    F("model", CFG_STRING, model, NULL, 1, 0, NULL,
      "model directory (tokenizer.json, tokenizer_config.json, generation_config.json)"),
    F("served-model-name", CFG_STRING, names, NULL, 1, 0, NULL,
      "comma-separated names clients use (default: --model as given)"),
    F("host", CFG_STRING, host, "127.0.0.1", 1, 0, NULL, "address to listen on"),
    F("port", CFG_INT, port, "8000", 0, 65535, NULL, "port to listen on (0: any)"),
    F("listen-fd", CFG_INT, listen_fd, "-1", -1, 1 << 20, NULL,
      "an inherited listening socket to serve instead of --host/--port"),
    F("engine", CFG_STRING, engines, "ipc:///tmp/kiln-engine-0.sock", 1, 0, NULL,
      "comma-separated engine addresses (ipc:// or tcp://)"),
    F("api-key", CFG_STRING, api_key, NULL, 1, 0, NULL,
      "comma-separated keys required on /v1 (also KILN_API_KEY)"),
    F("allowed-origins", CFG_STRING, origins, NULL, 1, 0, NULL,
      "comma-separated CORS origins, or * (default: none)"),
    F("chat-template", CFG_STRING, chat_template, NULL, 1, 0, NULL,
      "a chat template file instead of tokenizer_config.json's"),
    F("ssl-certfile", CFG_STRING, certfile, NULL, 1, 0, NULL,
      "PEM certificate: serve TLS (ALPN h2, http/1.1) instead of cleartext"),
    F("ssl-keyfile", CFG_STRING, keyfile, NULL, 1, 0, NULL, "PEM private key of --ssl-certfile"),
    F("trust-request-chat-template", CFG_BOOL, trust_template, "false", 1, 0, NULL,
      "allow a per-request chat_template"),
    F("max-logprobs", CFG_INT, max_logprobs, "20", 0, 20, NULL, "top logprobs at most"),
    F("max-in-flight", CFG_INT, max_in_flight, "4096", 1, 1 << 20, NULL,
      "completions and chats in flight at once; more get 503 with Retry-After"),
    F("shutdown-timeout", CFG_INT, shutdown_timeout, "30", 0, 3600, NULL,
      "seconds in-flight requests may finish after SIGTERM"),
    F("metrics-compat", CFG_ENUM, metrics_compat, "none", 1, 0, "none|vllm",
      "vllm: also expose vllm:-prefixed metrics"),
    F("log-level", CFG_STRING, log_level, "info", 1, 0, NULL, "error|warn|info|debug"),
};
#undef F

#define N_FLAGS (sizeof fe_flags / sizeof *fe_flags)

/* split: the comma-separated items of s (modified in place) into out[0..max). */
static size_t split(char *s, const char **out, size_t max)
{
    size_t n = 0;
    for (char *tok = strtok(s, ","); tok && n < max; tok = strtok(NULL, ","))
        if (*tok)
            out[n++] = tok;
    return n;
}

/* to_config: c from o; the list strings are copied into store (kept by the caller). */
static int to_config(const struct fe_opts *o, struct frontend_config *c, char *store[3],
                     char *err, size_t errlen)
{
    *c = frontend_config_default();
    enum log_level lvl;
    if (!o->model)
        return snprintf(err, errlen, "--model is required"), ERR_INVAL;
    if (log_level_parse(o->log_level, &lvl))
        return snprintf(err, errlen, "--log-level: '%s' is not a level", o->log_level), ERR_INVAL;
    log_config.level = lvl;
    const char *keys = o->api_key ? o->api_key : getenv("KILN_API_KEY");
    store[0] = strdup(o->names ? o->names : o->model);
    store[1] = strdup(o->engines);
    store[2] = strdup(keys ? keys : "");
    if (!store[0] || !store[1] || !store[2])
        return snprintf(err, errlen, "out of memory"), ERR_NOMEM;
    c->model_dir = o->model;
    c->n_names = split(store[0], c->names, FRONTEND_MAX_NAMES);
    c->n_engines = split(store[1], c->engines, FRONTEND_MAX_ENGINES);
    c->n_api_keys = split(store[2], c->api_keys, FRONTEND_MAX_KEYS);
    c->host = o->host;
    c->port = (int)o->port;
    c->listen_fd = (int)o->listen_fd;
    c->allowed_origins = o->origins;
    c->ssl_certfile = o->certfile;
    c->ssl_keyfile = o->keyfile;
    if (!o->certfile != !o->keyfile)
        return snprintf(err, errlen, "--ssl-certfile and --ssl-keyfile go together"), ERR_INVAL;
    c->chat_template = o->chat_template;
    c->trust_request_chat_template = o->trust_template;
    c->max_logprobs = (int)o->max_logprobs;
    c->max_in_flight = (int)o->max_in_flight;
    c->shutdown_timeout_ms = (int)o->shutdown_timeout * 1000;
    c->metrics_vllm_compat = o->metrics_compat == 1;
    c->ready_fd_note = "kiln frontend: listening on";
    if (!c->n_names || !c->n_engines)
        return snprintf(err, errlen, "--served-model-name and --engine need a value"), ERR_INVAL;
    return 0;
}

int cmd_frontend(int argc, char **argv)
{
    struct fe_opts o;
    struct frontend_config c;
    char err[512], *store[3] = {NULL, NULL, NULL};
    static const char usage[] = "usage: kiln frontend --model DIR --engine ADDR [flags]";
    int rc = cfg_parse(fe_flags, N_FLAGS, &o, argc, argv, NULL, 0, NULL, err, sizeof err);
    if (rc == CFG_HELP) {
        cfg_print_help(stdout, usage, fe_flags, N_FLAGS);
        return 0;
    }
    if (rc == 0)
        rc = to_config(&o, &c, store, err, sizeof err);
    if (rc) {
        fprintf(stderr, "kiln frontend: %s\n", err);
        cfg_print_help(stderr, usage, fe_flags, N_FLAGS);
        for (int i = 0; i < 3; i++)
            free(store[i]);
        return 2;
    }
    rc = frontend_run(&c);
    for (int i = 0; i < 3; i++)
        free(store[i]);
    return rc;
}
