/*
 * oai_request: the JSON body of POST /v1/chat/completions, /v1/completions, /tokenize and
 * /detokenize -> a validated struct oai_request, or an OpenAI error (oai_error.h) naming the
 * field at fault. ../shared/API.md is the contract: every field it lists is checked for its
 * type and range here, before any byte of a response is sent; unknown fields are ignored;
 * features of a later release (tools, tool_choice other than "none", response_format other
 * than text, structured_outputs, guided_*) are refused with 400 "... not supported yet".
 *
 * Hostile bodies: before jansson sees the bytes, a pre-scan bounds the nesting depth and the
 * number of JSON values (413 RequestTooLarge, as API.md files "too deep"); jansson rejects
 * invalid UTF-8 and "\u0000" in strings (400). Every other allocation comes from the
 * caller's arena, so a request frees in one go and its size is capped by the arena's limit
 * (413 when passed).
 *
 * Types: JSON numbers only for numbers (no "0.5" strings), an integer field also takes a
 * real with an integral value (16.0, as pydantic does), booleans are true/false only, null
 * means "not given" for every optional field.
 *
 * Ownership: the struct and its arrays live in the arena; the jansson root is kept alive
 * until the arena is reset or freed (arena_defer), and strings point into it. Pure
 * functions: any thread, one arena per call.
 */
#ifndef KILN_OAI_REQUEST_H
#define KILN_OAI_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/arena.h"
#include "common/model_config.h"
#include "common/sampling_params.h"
#include "common/str.h"
#include "frontend/oai_error.h"

struct json_t;

enum oai_kind {
    OAI_CHAT,       /* POST /v1/chat/completions */
    OAI_COMPLETION, /* POST /v1/completions */
    OAI_TOKENIZE,   /* POST /tokenize: a prompt or messages */
    OAI_DETOKENIZE, /* POST /detokenize */
};

/* What the server allows; oai_limits_default gives the starting values of OPERATIONS.md. */
struct oai_limits {
    int32_t vocab_size;                  /* ids must be in [0, vocab_size); 0: unchecked */
    int32_t max_model_len;               /* context length, tokens (oai_request_fit_length) */
    int32_t max_logprobs;                /* top_logprobs, logprobs, prompt_logprobs at most (20) */
    int32_t max_n;                       /* n at most (128) */
    int32_t max_stop;                    /* stop strings at most (16) */
    int32_t max_depth;                   /* JSON nesting depth at most (64) */
    size_t max_nodes;                    /* JSON values at most (1 << 20) */
    const char *const *served_names;     /* [n_served]; the first is the default model */
    size_t n_served;                     /* 0: any model name is accepted */
    const struct generation_config *gen; /* defaults of generation_config.json, or NULL */
    bool trust_request_chat_template;    /* --trust-request-chat-template */
};

/* oai_limits_default: the values in parentheses above; no vocab check, max_model_len 2048,
 * no served names, no generation_config. */
struct oai_limits oai_limits_default(void);

/* One completion prompt: text, or token ids given by the client (ids != NULL). */
struct oai_prompt {
    struct str text;
    const int32_t *ids; /* [n_ids], each in [0, vocab_size) */
    uint32_t n_ids;
};

struct oai_request {
    enum oai_kind kind;
    const struct json_t *root; /* the parsed body (lives as long as the arena) */
    struct str model;          /* the name the client used (echoed back), or served_names[0] */
    size_t model_index;        /* index in served_names */

    /* chat and completion */
    bool stream;
    bool include_usage;          /* stream_options.include_usage */
    bool continuous_usage_stats; /* stream_options.continuous_usage_stats */
    int32_t n;                   /* choices per prompt, 1 .. max_n */
    bool echo;
    bool max_tokens_set;       /* false (chat only): the rest of the context, see fit_length */
    struct sampling_params sp; /* max_tokens valid when max_tokens_set; logprobs -1 or k */
    const struct str *stop;    /* [n_stop] stop strings, none empty */
    uint32_t n_stop;
    bool include_stop_str_in_output;
    bool skip_special_tokens;           /* default true */
    bool spaces_between_special_tokens; /* default true */
    int32_t priority;                   /* default 0; lower runs first */
    struct str request_id;              /* client's "request_id", {NULL, 0} when absent */
    bool return_token_ids;
    int32_t truncate_prompt_tokens; /* 0: none; -1: max_model_len; else keep the last k */

    /* completion (and tokenize with a prompt) */
    const struct oai_prompt *prompts; /* [n_prompts] >= 1 */
    uint32_t n_prompts;

    /* chat (and tokenize with messages) */
    const struct json_t *messages; /* validated: non-empty array of message objects */
    const struct json_t *tools;    /* tokenize only: array passed to the template, or NULL */
    bool add_generation_prompt;    /* default true */
    bool continue_final_message;
    bool add_special_tokens;                   /* chat false, completion/tokenize-prompt true */
    struct str chat_template;                  /* per-request template (trusted), or empty */
    const struct json_t *chat_template_kwargs; /* object, or NULL */

    /* tokenize / detokenize */
    bool return_token_strs;
    const int32_t *tokens; /* detokenize: [n_tokens], each in [0, vocab_size) */
    uint32_t n_tokens;
};

/*
 * oai_request_parse: parses and validates body[0..n) as a request of `kind` under lim into
 * *out (all memory from a). Defaults: model served_names[0]; n 1; temperature, top_p,
 * top_k, min_p, repetition_penalty from lim->gen when it has them, else 1, 1, off, 0, 1;
 * completion max_tokens 16; chat max_tokens unset; skip_special_tokens true; for chat
 * add_generation_prompt true and add_special_tokens false.
 *
 * Returns 0, or fills *err and returns ERR_INVAL (400 BadRequestError: malformed JSON, a
 * wrong type, a value out of range, an unsupported feature; param = the field),
 * ERR_NOTFOUND (404 NotFoundError, param "model", the message lists the served names),
 * ERR_LIMIT (413 RequestTooLarge: too deep, too many values, the arena's limit),
 * ERR_NOMEM (503: malloc failed). *out is unspecified on failure.
 */
int oai_request_parse(enum oai_kind kind, const char *body, size_t n, const struct oai_limits *lim,
                      struct arena *a, struct oai_request *out, struct oai_error *err);

/*
 * oai_request_fit_length: once the prompt is tokenized (n_prompt tokens, the longest prompt
 * of the request, after truncate_prompt_tokens was applied by the caller), checks it against
 * lim->max_model_len and settles max_tokens: unset becomes the rest of the context, capped by
 * generation_config's max_new_tokens. Returns 0, or ERR_INVAL with the 400 of API.md ("This model's
 * maximum context length is N tokens. However, you requested M output tokens and your prompt
 * contains P input tokens, ...", param "max_tokens"; or param "input_tokens" when the prompt alone
 * fills the context).
 */
int oai_request_fit_length(struct oai_request *r, const struct oai_limits *lim, uint32_t n_prompt,
                           struct oai_error *err);

/*
 * oai_request_prescan: checks body[0..n) without parsing it: nesting depth of arrays and
 * objects at most max_depth and at most max_nodes values (counted from the structural
 * characters outside strings). Returns 0 or ERR_LIMIT (413, err says which limit). Bytes
 * that are not JSON pass: jansson judges them.
 */
int oai_request_prescan(const char *body, size_t n, int32_t max_depth, size_t max_nodes,
                        struct oai_error *err);

#endif
