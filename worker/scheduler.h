/*
 * scheduler: the engine's iteration-level continuous-batching scheduler (vLLM's behaviour,
 * kiln's code). It decides, one step at a time, which tokens of which sequences the model
 * computes, under a token budget (max_num_batched_tokens) and a sequence cap (max_num_seqs),
 * allocating KV blocks through worker/kv_blocks.h. It does no I/O and calls no model.
 *
 * The engine loop drives it:
 *   scheduler_add / scheduler_abort      (between steps, as messages arrive)
 *   scheduler_schedule(s, &step)         -> the batch (scheduler_step_batch: a model_batch)
 *   model_forward + sampler_sample        for each logit row, with step.seqs[..]->sampler
 *   scheduler_commit(s, &step, sampled, &ev) -> tokens, finishes; then the next step
 *
 * Steps. Each step first gives one decode token to every running sequence that has a single
 * token left to compute (in admission order), then prompt chunks, in this order: running
 * sequences whose prompt is partly computed (admission order), then waiting sequences
 * (FCFS: arrival then add order; PRIORITY: lower priority value, then arrival, then add
 * order), admitted while the budget and max_num_seqs allow. A chunk is as long as the
 * remaining budget allows (chunked prefill: a long prompt spans several steps). A sequence
 * whose computed tokens reach its full length gets a logit row (its last token); a partial
 * chunk gets none. Admission calls kv_blocks_seq_new, which shares the longest cached
 * prefix, so cached prompt tokens are never computed again.
 *
 * Preemption by recompute. When kv_blocks_append fails (ERR_LIMIT) for a running sequence,
 * the scheduler preempts a victim, FCFS: the most recently admitted running sequence;
 * PRIORITY: the running sequence with the largest (priority, arrival, add order), as vLLM.
 * The victim's blocks are released: kv_blocks_seq_free when it has nothing scheduled in the
 * current step (its cached full blocks stay in the prefix cache, so recompute mostly hits),
 * kv_blocks_seq_abort when it already had tokens appended this step (they were never
 * computed, so their blocks must not stay cached). If the victim had been given tokens in
 * this step they are taken back (the budget is returned). The victim keeps its generated
 * tokens and its sampler state; it goes back to the FRONT of the waiting queue (PRIORITY:
 * to its place by its key) and, when admitted again, its "prompt" is prompt + generated so
 * far. This repeats until the allocation fits or the failing sequence preempted itself.
 * Once anything was preempted in a step, no waiting sequence is admitted in that step.
 *
 * Prompt logprobs. For a request with prompt_logprobs >= 0, its choice 0 is computed without
 * prefix-cache hits (as vLLM) and every prompt position p < n_prompt - 1 gets a logit row
 * (the logits predicting prompt token p + 1), at most max_prompt_logprob_rows per step: a
 * chunk is cut short to fit. These rows follow the sampling rows in the model batch's
 * logit_rows (step.plp_seq, step.plp_pos say whose they are); a sequence preempted and
 * recomputed gets rows only for positions it had not had before (n_plp_done).
 *
 * n > 1 choices. Each choice is an independent sequence (its own tokens, sampler state with
 * choice = its index, KV slot), all added at once and admitted in order. They share the
 * prompt's full blocks through the prefix cache: kv_blocks registers a block at the append
 * that fills it, so a choice admitted after (even in the same step as) the first reuses every
 * full prompt block; only the partial last block and the last token are computed per choice.
 * With prefix caching disabled the choices are still correct, only not shared.
 *
 * Sampler state. Each struct sched_seq embeds its struct sampler_seq, initialised by
 * scheduler_add (sampler_seq_init with the request's copied params, its choice index and the
 * prompt) and appended to by scheduler_commit (sampler_seq_append). The engine samples logit
 * row i with step.seqs[step.logit_seq[i]]->sampler and must not modify it.
 *
 * Memory. scheduler_new allocates every per-step array (sized from the config and the
 * kv_blocks geometry); scheduler_add allocates the request (its prompt copies, params arrays,
 * sampler maps); nothing else allocates. A request's memory is freed when its last sequence
 * finishes (in scheduler_commit) or it is aborted. kv_blocks is borrowed, must outlive the
 * scheduler, and is used only through the scheduler while it lives.
 *
 * Threads: single-threaded; the engine thread owns it. Between scheduler_schedule and
 * scheduler_commit only const accessors may be called (add and abort answer ERR_STATE).
 */
#ifndef KILN_SCHEDULER_H
#define KILN_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sampling_params.h"
#include "worker/kv_blocks.h"
#include "worker/model.h"
#include "worker/sampler.h"

#define SCHED_MAX_EOS 8 /* model EOS ids at most */

enum sched_policy { SCHED_FCFS = 0, SCHED_PRIORITY = 1 };

struct scheduler_config {
    int32_t max_num_batched_tokens; /* token budget per step, >= 1 */
    int32_t max_num_seqs;           /* sequences per step (and running), >= 1 */
    int32_t max_waiting;            /* waiting sequences at most (scheduler_add's limit) */
    int32_t max_model_len;          /* prompt + generated tokens at most */
    int32_t block_size;             /* must equal kv_blocks' block size */
    enum sched_policy policy;
    size_t vocab;                   /* for sampler_seq_init, > 0 */
    int32_t eos_ids[SCHED_MAX_EOS]; /* the model's EOS ids */
    uint32_t n_eos;                 /* how many of eos_ids are used */
    int32_t max_prompt_logprob_rows; /* prompt-logprob logit rows per step; 0: requests asking
                                        for prompt logprobs are refused (ERR_UNSUPPORTED) */
};

/* A request as the engine hands it over; everything is copied by scheduler_add. */
struct sched_request {
    uint64_t id;                          /* unique among live requests */
    uint32_t key;                         /* opaque to the scheduler: the engine's peer handle */
    const int32_t *prompt;                /* [n_prompt] token ids */
    size_t n_prompt;                      /* >= 1 */
    const struct sampling_params *params; /* copied with its arrays */
    uint32_t n;                           /* choices, >= 1 */
    int32_t priority;                     /* PRIORITY policy: lower runs first */
    uint64_t arrival;                     /* arrival time (any monotonic unit) */
    uint64_t engine_seed;                 /* the seed when params->has_seed is false */
};

enum sched_finish { SCHED_NOT_FINISHED = 0, SCHED_STOP, SCHED_LENGTH, SCHED_ABORT };

struct sched_req; /* private: one request and its sequences */

/* One sequence (one choice of a request). The engine reads it; only the scheduler writes. */
struct sched_seq {
    struct sched_req *req;
    uint64_t request_id;
    uint32_t key;
    uint32_t choice;            /* index among the request's n */
    struct sampler_seq sampler; /* sample this sequence's logit rows with it */
    int32_t *tokens;            /* [n_prompt + max_tokens]: prompt, then generated */
    size_t n_prompt;            /* the request's prompt */
    size_t n_tokens;            /* prompt + generated so far */
    size_t n_computed;          /* tokens whose KV is computed (or cached) */
    uint32_t n_sched;           /* tokens scheduled in the current step */
    int32_t kv_slot;            /* kv_blocks sequence, -1 when waiting or finished */
    uint32_t n_cached;          /* prompt tokens found cached at its first admission */
    uint32_t n_admissions;      /* 1 + times it was preempted and admitted again */
    uint32_t n_plp_done;        /* prompt positions whose prompt logprobs were computed */
    uint32_t n_sched_plp;       /* prompt-logprob rows scheduled in the current step */
    int state;                  /* private */
    uint64_t order;             /* private: add order */
};

/* The next step, in the scheduler's preallocated arrays (valid until the next schedule). */
struct sched_step {
    size_t n_tokens;
    const int32_t *ids;          /* [n_tokens] */
    const int32_t *pos;          /* [n_tokens] */
    const int32_t *seq_of;       /* [n_tokens], < n_seqs */
    const int32_t *slot_mapping; /* [n_tokens] */
    size_t n_seqs;
    const int32_t *block_tables; /* [n_seqs][max_blocks], copies; entries past a table unused */
    size_t max_blocks;
    struct sched_seq *const *seqs; /* [n_seqs] the batch's sequences */
    size_t n_logits;
    const int32_t *logit_rows; /* [n_logits] token index of each logit row */
    const int32_t *logit_seq;  /* [n_logits] batch sequence of each logit row */
    size_t n_plp;              /* prompt-logprob rows, after the n_logits sampling rows */
    const int32_t *plp_seq;    /* [n_plp] batch sequence of each (choice 0 of its request) */
    const int32_t *plp_pos;    /* [n_plp] prompt position p: the row predicts token p + 1 */
    size_t n_decode;           /* sequences computing a single token */
    size_t n_preempted;        /* sequences preempted while building this step */
};

/* One sampled token of one sequence, as scheduler_commit reports it. */
struct sched_event {
    uint64_t request_id;
    uint32_t key;
    uint32_t choice;
    int32_t token;
    enum sched_finish finish; /* SCHED_NOT_FINISHED while the sequence goes on */
    int32_t stop_reason;      /* the stop_token_ids entry that stopped it, else -1 */
    bool request_done;        /* this was the request's last live sequence */
    uint32_t n_prompt;        /* the request's prompt tokens */
    uint32_t n_cached;        /* prompt tokens found in the prefix cache at first admission */
    uint32_t n_generated;     /* tokens generated by this sequence so far */
};

struct sched_events {
    size_t n;
    const struct sched_event *ev; /* [n], in the scheduler's memory until the next commit */
};

struct sched_stats {
    size_t n_running;       /* sequences holding KV blocks */
    size_t n_waiting;       /* sequences in the waiting queue (new and preempted) */
    size_t n_requests;      /* live requests */
    double kv_usage;        /* blocks in use / blocks */
    double prefix_hit_rate; /* kv_blocks hit tokens / query tokens (0 when none) */
    uint64_t n_preemptions; /* since scheduler_new */
};

struct scheduler;

/*
 * scheduler_new: a scheduler over kb for config c (copied). Checks c (every count >= 1,
 * block_size equal to kb's, max_num_seqs <= kb's sequence slots, max_model_len within kb's
 * table width, n_eos <= SCHED_MAX_EOS, vocab > 0, max_prompt_logprob_rows in 0 ..
 * max_num_batched_tokens): ERR_RANGE; ERR_NOMEM. Allocates every
 * per-step array. Free with scheduler_free.
 */
int scheduler_new(const struct scheduler_config *c, struct kv_blocks *kb, struct scheduler **out);

/* scheduler_free: aborts every request (freeing their KV sequences) and frees s; NULL ok. */
void scheduler_free(struct scheduler *s);

/*
 * scheduler_add: queues request r (copies its prompt and params with their arrays) as r->n
 * waiting sequences. Returns 0; ERR_LIMIT when the waiting queue would exceed max_waiting
 * (the frontend answers 429); ERR_RANGE when the prompt is empty, n is 0 or above
 * max_waiting, max_tokens < 1, n_prompt + max_tokens exceeds max_model_len or the KV pool;
 * ERR_INVAL for a NULL pointer or an id outside the vocabulary; ERR_STATE when the id is
 * already live or a step is open; ERR_UNSUPPORTED for prompt logprobs when the config has no
 * rows for them; ERR_NOMEM. The reason goes to err (may be NULL). Nothing changes on error.
 */
int scheduler_add(struct scheduler *s, const struct sched_request *r, char *err, size_t errlen);

/* scheduler_abort: removes request id wherever its sequences are (waiting or running) and
 * frees their KV blocks and the request now. Returns 0, ERR_NOTFOUND when it is not live
 * (finished already), ERR_STATE between schedule and commit. */
int scheduler_abort(struct scheduler *s, uint64_t request_id);

/*
 * scheduler_schedule: builds the next step into *out (see the top of this file), appending
 * the scheduled tokens to the KV sequences and preempting when blocks run out. A step with
 * n_tokens 0 means nothing can run (no request). Returns 0, or ERR_STATE when the previous
 * step was not committed. Every non-empty step must be committed before the next call.
 */
int scheduler_schedule(struct scheduler *s, struct sched_step *out);

/*
 * scheduler_commit: ends step (the one scheduler_schedule returned): its tokens count as
 * computed; sampled[i] (one per logit row) is appended to the sequence of row i and to its
 * sampler state; stop conditions are checked as vLLM V1 does: length first (max_tokens,
 * max_model_len), then, once min_tokens are generated, EOS (unless ignore_eos) and
 * stop_token_ids. A finished sequence frees its KV blocks at once, and its request when it
 * was the last one. *ev gets one event per logit row. Returns 0; ERR_STATE when no step is
 * open; ERR_INVAL (nothing committed) when a sampled id is outside the vocabulary.
 */
int scheduler_commit(struct scheduler *s, const struct sched_step *step, const int32_t *sampled,
                     struct sched_events *ev);

/* scheduler_step_batch: the model_batch of step (pointers into step's arrays); its logit
 * rows are the n_logits sampling rows, then the n_plp prompt-logprob rows. */
struct model_batch scheduler_step_batch(const struct sched_step *step);

/* scheduler_stats: queue lengths, KV usage and prefix-cache hit rate. */
struct sched_stats scheduler_stats(const struct scheduler *s);

#endif
