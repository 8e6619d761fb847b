/*
 * frontend_internal: the frontend process's state, shared by frontend.c (set-up, signals,
 * drain), routes.c (HTTP dispatch and the small endpoints) and generate.c (completions and
 * chat). Nothing else includes it.
 */
#ifndef KILN_FRONTEND_INTERNAL_H
#define KILN_FRONTEND_INTERNAL_H

#include <jansson.h>

#include "common/model_config.h"
#include "common/tokenizer.h"
#include "frontend/engine_link.h"
#include "frontend/frontend.h"
#include "frontend/http.h"
#include "frontend/metrics.h"
#include "frontend/oai_request.h"
#include "templates/chat_template.h"

struct gen;

struct fe {
    struct frontend_config cfg;
    struct event_base *base;
    struct http_server *http;
    struct mq_context *mq;
    struct engine_link *link;
    struct tokenizer *tok;
    struct tok_enc *enc; /* the loop's one encoder */
    struct chat_templates ct;
    json_t *template_vars; /* bos_token, eos_token for the chat template */
    bool clean_up;         /* tokenizer_config.json clean_up_tokenization_spaces */
    struct generation_config gen;
    struct oai_limits lim; /* vocab and max_model_len follow the engines' HELLO */
    bool draining;
    int signals;
    struct event *sig_term, *sig_int, *tick;
    uint64_t drain_deadline_ms;
    struct gen *live; /* generations in flight (a list, for drain and shutdown) */
    size_t n_live;
    uint64_t started_s; /* unix time of start ("created" of /v1/models) */
    bool max_len_set;   /* metrics know the engines' max_model_len */
    struct metrics metrics;
};

/* fe_now_ms: a monotonic clock in milliseconds. */
uint64_t fe_now_ms(void);

/* routes_on_request: the http_handler callback: auth, CORS, dispatch. */
void routes_on_request(struct http_request *r, void *ctx);

/* routes_on_abort: the http_handler callback for a client that went away. */
void routes_on_abort(struct http_request *r, void *ctx);

/* routes_respond_error: answers r with the OpenAI error e (JSON body, its status). */
void routes_respond_error(struct fe *fe, struct http_request *r, const struct oai_error *e);

/* routes_respond_json: answers r with status and a JSON body (plus the common headers). */
void routes_respond_json(struct fe *fe, struct http_request *r, int status, const char *body,
                         size_t len);

/* routes_headers: the headers every response of r carries (X-Request-Id, CORS, and the
 * content type given); returns how many were written to h (at most 8). */
size_t routes_headers(struct fe *fe, const struct http_request *r, const char *content_type,
                      struct http_header *h);

/* gen_start: POST /v1/completions and /v1/chat/completions (kind): validate, render,
 * tokenize, submit, then answer as the tokens come. */
void gen_start(struct fe *fe, struct http_request *r, enum oai_kind kind);

/* gen_abort: the client of r's generation went away: abort it in the engine, free it. */
void gen_abort(struct fe *fe, struct http_request *r);

/* gen_fail_all: ends every live generation now (shutdown): 503 or an SSE error. */
void gen_fail_all(struct fe *fe);

/* gen_tokenize: POST /tokenize (prompt or messages). */
void gen_tokenize(struct fe *fe, struct http_request *r);

/* gen_detokenize: POST /detokenize. */
void gen_detokenize(struct fe *fe, struct http_request *r);

/* gen_render_prompt: renders r's chat messages through the chat template into out.
 * Returns 0 or ERR_INVAL with e filled (400). */
int gen_render_prompt(struct fe *fe, const struct oai_request *q, struct buf *out,
                      struct oai_error *e);

/* The engine link's callbacks (generate.c). */
void gen_on_tokens(void *req, const struct wire_seq_out *s, bool done);
void gen_on_fail(void *req, int why);

#endif
