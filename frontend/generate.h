/*
 * generate: one completion or chat request in the frontend, from the parsed body to the last
 * byte of its answer: prompt (chat template, tokenizer), one engine request per prompt with
 * n choices, text per choice (frontend/text_stream.h: detokenization, stop strings; a stop
 * string that matches ends its choice and, once every choice of the prompt has ended, the
 * engine request is aborted), logprobs, usage, and the answer: one JSON body, or SSE events
 * sent as the engine's tokens arrive (one event per engine step per choice).
 *
 * Failures: a refusal by the engine before any byte was sent becomes its HTTP status (429
 * overloaded, 400 invalid, 503 draining or no engine); after the stream began, an SSE error
 * event then [DONE]. A client that goes away has its engine requests aborted at once.
 *
 * The functions are declared in frontend_internal.h (they need the process state); this
 * header holds what the request keeps, for generate.c and generate_out.c.
 */
#ifndef KILN_GENERATE_H
#define KILN_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/tokenizer.h"
#include "frontend/frontend_internal.h"
#include "frontend/oai_response.h"
#include "frontend/text_stream.h"

/* One generated position's logprobs, as the engine sent them. */
struct gen_lp {
    int32_t id;
    float logprob;
    uint32_t n_top;
    int32_t top_ids[SAMPLING_MAX_LOGPROBS];
    float top_lps[SAMPLING_MAX_LOGPROBS];
};

struct gen_choice {
    uint32_t index; /* prompt * n + choice: the OpenAI choice index */
    struct text_stream ts;
    bool ts_live;
    struct buf text;      /* non-streaming: the whole text; streaming: this event's delta */
    struct tok_ids ids;   /* generated ids */
    struct gen_lp *lps;   /* [n_lps] when logprobs were asked */
    size_t n_lps, cap_lps;
    size_t lp_sent;       /* streaming: logprobs already sent */
    size_t ids_sent;      /* streaming: ids already sent (return_token_ids) */
    size_t chars_sent;    /* streaming: code points of text already sent (text_offset) */
    bool done;
    uint64_t t_last_ms;   /* when its last tokens arrived (inter-token latency) */
    enum oai_finish finish; /* OAI_FINISH_NONE until done */
    int32_t stop_token;   /* stop_reason as a token id, or -1 */
    bool stop_string;     /* stop_reason is ts.stop[ts.stop_index] */
};

struct gen_prompt {
    struct gen *g;
    struct tok_ids ids;
    uint64_t rid;       /* the engine link's id; 0 once finished or aborted */
    uint32_t n_cached;  /* prompt tokens the engine found cached */
    uint32_t n_open;    /* choices not ended */
    struct gen_lp *plps; /* [n_plps] prompt positions 0.. (each predicts the next token) */
    size_t n_plps, cap_plps;
    bool first_seen;    /* its first tokens arrived (prefill done) */
};

struct gen {
    struct gen *prev, *next; /* fe->live */
    struct fe *fe;
    struct http_request *r; /* NULL once answered or gone */
    struct oai_request q;
    struct gen_prompt *prompts; /* [q.n_prompts] (1 for chat) */
    uint32_t n_prompts;
    struct gen_choice *choices; /* [n_prompts * q.n] */
    uint32_t n_choices, n_open;
    bool streaming;
    bool show_plp;  /* the client asked for prompt_logprobs */
    bool echo_lp;   /* completions echo with logprobs: prompt positions lead the logprobs */
    bool begun; /* the stream's headers went out: errors become SSE events */
    bool opened; /* the stream's first events (gen_out_begin) went out, with the first
                    output, as vLLM sends them: a chat role chunk is not a first token */
    char id[OAI_RESP_ID_MAX];
    int64_t created;
    struct buf out; /* the response or this round's events */
    uint64_t t_start_ms, t_first_ms;
};

/* gen_out_final: the whole non-streaming body of g into g->out. 0 or ERR_NOMEM/ERR_LIMIT. */
int gen_out_final(struct gen *g);

/* gen_out_begin: the stream's first events (chat: the role of every choice) into g->out. */
int gen_out_begin(struct gen *g);

/* gen_out_delta: choice c's event for this round (its new text in c->text, its new logprobs
 * from c->lp_sent, its finish when done) into g->out; nothing when there is nothing new. */
int gen_out_delta(struct gen *g, struct gen_choice *c);

/* gen_out_end: the usage event (include_usage) and [DONE] into g->out. */
int gen_out_end(struct gen *g);

#endif
