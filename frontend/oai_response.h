/*
 * oai_response: the bodies kiln answers with, as the official openai SDKs and vLLM's users
 * read them (../shared/API.md, "Responses" and "Endpoints"): chat completions and text
 * completions, whole or as Server-Sent Events, the usage chunk, SSE errors and [DONE], and the
 * small bodies of /v1/models, /tokenize, /detokenize and /version.
 *
 * The writers append to a struct buf and are on the per-token path: JSON is written directly
 * (oai_response_json.h), never through jansson. Each returns 0, ERR_LIMIT (b's limit) or
 * ERR_NOMEM, and on failure leaves b as it was (a failed event is never half sent).
 * Non-streaming bodies are bare JSON; every streaming writer appends one whole event,
 * exactly "data: <json>\n\n". Strings (content, tokens, stop strings, the model name, ids)
 * are escaped and repaired to valid UTF-8 (U+FFFD) when they are not.
 *
 * Conventions (vLLM's where OpenAI has none):
 * - Logprobs are float32 values written in the shortest text that reads back exactly; -inf
 *   (and anything below -9999, NaN) is written -9999.0, as vLLM clamps them.
 * - Chat: "message" has "role" and "content" (a string, or null) and never a "tool_calls"
 *   key; every choice has "logprobs" (null or {"content": [...]}), "finish_reason" and
 *   "stop_reason" (the stop string, the stop token id, or null). A body always has "usage"
 *   with "prompt_tokens_details": {"cached_tokens"} and "system_fingerprint" (null when
 *   ctx has none). vLLM's return_token_ids adds "token_ids" per choice and, for chat,
 *   "prompt_token_ids" on the body; prompt_logprobs adds "prompt_logprobs" (chat: on the
 *   body; completions: per choice, with "prompt_token_ids").
 * - Chunks: one choice per chunk, with "logprobs" and "finish_reason" (null until the end);
 *   "stop_reason" only on the chunk that carries a finish_reason; "usage" only when given
 *   (continuous_usage_stats) and on the usage chunk, whose "choices" is [];
 *   "system_fingerprint" only when ctx has one; vLLM's "prompt_token_ids" when given (the
 *   first chunk: chat on the chunk, completions in the choice).
 *
 * Nothing here is kept: every pointer is read during the call only. Pure functions (except
 * oai_response_new_id, which reads the kernel's random source); any thread.
 */
#ifndef KILN_OAI_RESPONSE_H
#define KILN_OAI_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/str.h"
#include "frontend/oai_error.h"
#include "frontend/oai_request.h"

#define OAI_RESP_ID_SUFFIX_MAX 64 /* bytes of a client's X-Request-Id kept in the id */
#define OAI_RESP_ID_MAX 80        /* an id's bytes, the NUL included */

/* What every body and chunk of one response repeats. */
struct oai_resp_ctx {
    enum oai_kind kind;             /* OAI_CHAT or OAI_COMPLETION */
    const char *id;                 /* NUL-terminated: oai_response_new_id's */
    int64_t created;                /* unix seconds, the same in every chunk */
    struct str model;               /* the model name the client used */
    const char *system_fingerprint; /* NUL-terminated, or NULL */
};

enum oai_finish {
    OAI_FINISH_NONE, /* null: not finished (chunks) */
    OAI_FINISH_STOP, /* EOS, a stop string, a stop token */
    OAI_FINISH_LENGTH,
    OAI_FINISH_TOOL_CALLS,
    OAI_FINISH_ABORT,
};

/* stop_reason: null, the stop string that matched, or the stop token id. */
struct oai_stop_reason {
    enum { OAI_STOP_NONE, OAI_STOP_STRING, OAI_STOP_TOKEN } kind;
    struct str str; /* OAI_STOP_STRING */
    int32_t token;  /* OAI_STOP_TOKEN */
};

/* One alternative of a position: its token string and logprob. */
struct oai_top_logprob {
    struct str token;
    float logprob;
};

/*
 * One position's logprobs. token is its string (text_stream_logprob_token); chat writes
 * "bytes" from it. null: no logprobs at this position (a completion echo's first prompt
 * token): completions write null for token_logprobs[i] and top_logprobs[i], chat writes
 * vLLM's {"token", "logprob": -9999.0, "bytes": null, "top_logprobs": []}. Completions' top
 * logprobs are an object {token: logprob}: a token string that comes twice is written once,
 * where it first comes, with its last logprob (a Python dict).
 */
struct oai_token_logprob {
    struct str token;
    float logprob;
    bool null;
    const struct oai_top_logprob *top; /* [n_top] */
    size_t n_top;
    uint32_t text_offset; /* completions: text_stream_text_offsets's */
};

/* One candidate of a prompt position in vLLM's prompt_logprobs: "<id>": {"logprob", "rank",
 * "decoded_token"}. An id that comes twice is written once (first place, last value). */
struct oai_prompt_logprob_entry {
    int32_t id;
    float logprob;
    int32_t rank;     /* >= 1; 0 writes null */
    struct str token; /* decoded_token */
};

/* One prompt position: n == 0 writes null (the first prompt token always is). */
struct oai_prompt_logprob {
    const struct oai_prompt_logprob_entry *e; /* [n] */
    size_t n;
};

/* vLLM's prompt extensions: "prompt_token_ids" (return_token_ids) and "prompt_logprobs". */
struct oai_prompt_info {
    bool has_token_ids;
    const int32_t *token_ids; /* [n_token_ids] */
    size_t n_token_ids;
    bool has_logprobs;
    const struct oai_prompt_logprob *logprobs; /* [n_logprobs] positions */
    size_t n_logprobs;
};

struct oai_usage {
    uint32_t prompt_tokens;
    uint32_t completion_tokens;
    uint32_t cached_tokens; /* prompt tokens found in the prefix cache */
};

/*
 * One choice of a body, or a chunk's one choice. text is the chat content (or delta content)
 * or the completion text; text_null makes chat content null in a body, leaves "content" out
 * of a chunk's delta, and is "" for completions. role: a chat chunk's delta carries "role":
 * "assistant" (the first chunk of each choice). has_lp false writes "logprobs": null.
 */
struct oai_choice {
    uint32_t index;
    struct str text;
    bool text_null;
    bool role;
    bool has_lp;
    const struct oai_token_logprob *lp; /* [n_lp]: this body's or this chunk's positions */
    size_t n_lp;
    enum oai_finish finish;
    struct oai_stop_reason stop; /* written with a finish */
    bool has_token_ids;          /* "token_ids" (return_token_ids): this body's or chunk's */
    const int32_t *token_ids;    /* [n_token_ids] */
    size_t n_token_ids;
    const struct oai_prompt_info *prompt; /* completions only: this choice's prompt, or NULL */
};

/*
 * oai_response_new_id: a response id into out: "chatcmpl-" (OAI_CHAT) or "cmpl-" (any other
 * kind) followed by the client's suffix (X-Request-Id, or the body's request_id, as vLLM
 * takes them) when suffix[0..n) is not empty, else by 32 random hex digits. The suffix is cut
 * to OAI_RESP_ID_SUFFIX_MAX bytes and every byte outside '!'..'~' becomes '_', so the id is
 * printable ASCII without spaces. Returns 0, or ERR_IO when the random source failed (out is
 * then "" ).
 */
int oai_response_new_id(enum oai_kind kind, const char *suffix, size_t n,
                        char out[OAI_RESP_ID_MAX]);

/* oai_write_chat_completion: the body of a non-streaming chat completion: object
 * "chat.completion", choices c[0..n) in that order, usage u (required), and prompt's
 * "prompt_token_ids" / "prompt_logprobs" when prompt is not NULL. */
int oai_write_chat_completion(struct buf *b, const struct oai_resp_ctx *ctx,
                              const struct oai_choice *c, size_t n, const struct oai_usage *u,
                              const struct oai_prompt_info *prompt);

/* oai_write_completion: the body of a non-streaming text completion: object
 * "text_completion", choices c[0..n) (text, completions logprobs, finish, stop_reason, and
 * each choice's prompt extensions), usage u (required). */
int oai_write_completion(struct buf *b, const struct oai_resp_ctx *ctx, const struct oai_choice *c,
                         size_t n, const struct oai_usage *u);

/* oai_write_chat_chunk: one "chat.completion.chunk" event with the one choice c (its delta:
 * role, content; its logprobs, finish and stop_reason, token_ids), cumulative usage u when not
 * NULL, and prompt's "prompt_token_ids" when prompt is not NULL and has them. */
int oai_write_chat_chunk(struct buf *b, const struct oai_resp_ctx *ctx, const struct oai_choice *c,
                         const struct oai_usage *u, const struct oai_prompt_info *prompt);

/* oai_write_completion_chunk: one "text_completion" chunk event with the one choice c (text,
 * logprobs, finish, stop_reason, token_ids, c->prompt's prompt_token_ids), usage u when not
 * NULL. */
int oai_write_completion_chunk(struct buf *b, const struct oai_resp_ctx *ctx,
                               const struct oai_choice *c, const struct oai_usage *u);

/* oai_write_usage_chunk: the include_usage event: "choices": [] and usage u, object by
 * ctx->kind ("chat.completion.chunk" or "text_completion"). */
int oai_write_usage_chunk(struct buf *b, const struct oai_resp_ctx *ctx, const struct oai_usage *u);

/* oai_sse_error: the event "data: {"error": {...}}\n\n" of e (oai_error_json's body). */
int oai_sse_error(struct buf *b, const struct oai_error *e);

/* oai_sse_done: the stream's last event, "data: [DONE]\n\n". */
int oai_sse_done(struct buf *b);

/*
 * oai_write_models: the /v1/models body {"object": "list", "data": [cards]}, one card per
 * served name: {"id", "object": "model", "created", "owned_by": "kiln", "root", "parent":
 * null, "max_model_len", "permission": [vLLM's one model_permission object]}. root is the
 * model directory (NULL: null); max_model_len <= 0 writes null. The permission id is derived
 * from the name, so the body is the same on every call.
 */
int oai_write_models(struct buf *b, const char *const *names, size_t n, int64_t created,
                     int32_t max_model_len, const char *root);

/* oai_write_tokenize: the /tokenize body {"count", "max_model_len", "tokens"[,
 * "token_strs"]}; token_strs[0..n) is written when not NULL. */
int oai_write_tokenize(struct buf *b, const int32_t *ids, size_t n, int32_t max_model_len,
                       const struct str *token_strs);

/* oai_write_detokenize: the /detokenize body {"prompt": text}. */
int oai_write_detokenize(struct buf *b, const char *text, size_t n);

/* oai_write_version: the /version body {"version": version}. */
int oai_write_version(struct buf *b, const char *version);

#endif
