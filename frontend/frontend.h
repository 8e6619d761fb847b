/*
 * frontend: one HTTP frontend process: the OpenAI API of ../shared/API.md on one port
 * (frontend/http.h), in front of one or more engines (frontend/engine_link.h). It holds no
 * state that outlives a request: it parses and validates the request, renders the chat
 * template, tokenizes, sends the request to the least loaded engine, turns the engine's
 * tokens into text (frontend/text_stream.h) and answers with JSON or SSE.
 *
 * frontend_run builds everything on its own event base and runs until SIGTERM/SIGINT and
 * the drain that follows (OPERATIONS.md): /health turns 503, new requests get 503, in-flight
 * ones finish until shutdown_timeout_ms, the rest end with 503 or an SSE error; a second
 * signal ends at once.
 *
 * Threads: one; everything runs on the event loop.
 */
#ifndef KILN_FRONTEND_H
#define KILN_FRONTEND_H

#include <stdbool.h>
#include <stddef.h>

#define FRONTEND_MAX_NAMES 8
#define FRONTEND_MAX_KEYS 8
#define FRONTEND_MAX_ENGINES 16

struct frontend_config {
    const char *model_dir;   /* tokenizer.json, tokenizer_config.json, generation_config.json */
    const char *names[FRONTEND_MAX_NAMES]; /* served model names; the first is the default */
    size_t n_names;
    const char *host;
    int port;
    int listen_fd; /* >= 0: an already bound listening socket (kiln serve passes one) */
    const char *api_keys[FRONTEND_MAX_KEYS];
    size_t n_api_keys;
    const char *allowed_origins; /* comma-separated CORS origins, "*" for any; NULL: none */
    const char *ssl_certfile;    /* PEM certificate and key: the port speaks TLS (ALPN h2, */
    const char *ssl_keyfile;     /* http/1.1); NULL: cleartext */
    const char *engines[FRONTEND_MAX_ENGINES]; /* engine addresses (ipc:// or tcp://) */
    size_t n_engines;
    const char *chat_template;     /* a template file instead of tokenizer_config.json's */
    bool trust_request_chat_template;
    int max_logprobs;        /* top_logprobs / logprobs cap (20) */
    int max_in_flight;       /* completions and chats at once; past it 503 + Retry-After */
    int shutdown_timeout_ms; /* drain budget for in-flight requests */
    bool metrics_vllm_compat;
    const char *ready_fd_note; /* printed on stdout once listening ("" for nothing) */
};

/* frontend_config_default: port 8000 on 127.0.0.1, no keys, 20 logprobs, 30 s drain. */
struct frontend_config frontend_config_default(void);

/* frontend_run: serves until stopped (see the top of this file). Returns the process exit
 * status: 0 after a drain, 1 when it could not start (the reason went to stderr). */
int frontend_run(const struct frontend_config *c);

#endif
