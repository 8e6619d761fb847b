/*
 * sampler: picks the next token of one sequence from its row of logits, with vLLM's (V1)
 * semantics for struct sampling_params.
 *
 * Per step, for one sequence, sampler_sample() applies in this order (vLLM V1's order):
 *   1. allowed_token_ids: every other id gets -inf;
 *   2. logit_bias: added to its ids;
 *   3. min_tokens: while fewer than min_tokens tokens were generated, the model's EOS ids and
 *      stop_token_ids get -inf (also with ignore_eos, as in vLLM, whose min_tokens processor
 *      masks all_stop_token_ids, which always holds the model's EOS);
 *   4. penalties: repetition_penalty on ids seen in the prompt or the output (a positive
 *      logit is divided by it, a non-positive one multiplied), then frequency_penalty *
 *      count and presence_penalty (once) subtracted for ids in the output;
 *   5. temperature < SAMPLER_GREEDY_EPS: argmax, ties to the lowest id; done;
 *   6. otherwise logits / temperature, then min_p (keeps p >= min_p * p_max), top_k (ties
 *      to the lower id), top_p over the renormalised survivors (keeps the shortest prefix in
 *      descending order whose mass reaches top_p), then one draw by inverse CDF over the
 *      survivors in ascending id order (so a row off by rounding, as the same sequence in
 *      another batch, gives the same token unless u falls within rounding of a boundary).
 *
 * Randomness is stateless: the draw for a sequence uses sampler_uniform(seed, choice,
 * n_generated), a hash of the three, so a seeded request gives the same tokens whatever else
 * shares its batch and whatever the engine did before.
 *
 * Cost per call, V = vocab, never a sort of V: greedy one vectorised max pass; full random
 * sampling one vectorised exp pass, a sum and a blocked prefix scan. With filters: top_k <=
 * 1024 one pass through a bounded heap (O(V) compares, O(log k) per insertion); otherwise
 * one exp pass and a gather of the survivors (min_p is the weight threshold p >= min_p *
 * p_max; top_p alone also drops the ids it must exclude for certain, weight <= (1 - top_p) *
 * Z / V), top_k > 1024 an expected-O(V) quickselect; then top_p is a quickselect that
 * descends by probability mass instead of by index: expected O(n) for n survivors whatever
 * the nucleus size, no sort of the vocabulary; then the draw: up to 1024 survivors are sorted
 * by id, more are scattered into a dense row (one O(V) pass). Candidates are visited in an order that
 * depends only on the row's values, so a row always gives the same token for the same draw.
 *
 * Logprobs follow vLLM V1's default logprobs_mode "raw_logprobs": log_softmax of the logits
 * as the model produced them, before any of the steps above (so neither penalties nor
 * temperature show in them). Prompt logprobs are raw too.
 *
 * Memory: struct sampler_scratch is sized for the vocabulary once (engine start);
 * struct sampler_seq allocates its token-count map when the sequence is added; nothing is
 * allocated per token. One thread per scratch; distinct sequences with distinct scratches
 * may be sampled in parallel.
 */
#ifndef KILN_SAMPLER_H
#define KILN_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "common/sampling_params.h"

#define SAMPLER_GREEDY_EPS 1e-5f /* temperature below this is greedy (vLLM's _SAMPLING_EPS) */

/* One (token id, logit) candidate; the scratch holds vocab of them. */
struct sampler_cand {
    float logit;
    int32_t id;
};

/* Workspace for one thread's calls, for one vocabulary size. */
struct sampler_scratch {
    size_t vocab;
    struct sampler_cand *cand; /* [vocab] */
    float *buf;                /* [vocab], fp32: exp weights */
    float *raw;                /* [vocab], fp32: the raw logits, kept for logprobs */
};

/* The per-sequence penalty bookkeeping: one entry per distinct id seen. */
struct sampler_count {
    int32_t id;
    uint8_t in_prompt; /* 1 when the id occurs in the prompt */
    uint32_t n_output; /* occurrences in the generated tokens */
};

/* Everything the sampler keeps for one sequence between steps. */
struct sampler_seq {
    struct sampling_params params; /* copy; its arrays must outlive the sequence */
    uint64_t seed;                 /* params.seed when has_seed, else the engine's */
    uint32_t choice;               /* index of this sequence among the request's n */
    uint32_t n_generated;          /* tokens appended so far: the draw's position */
    size_t vocab;
    /* token counts, only when a penalty is on (else NULL / 0): */
    struct sampler_count *counts; /* [max_counts], the first n_counts used */
    uint32_t n_counts, max_counts;
    int32_t *slots; /* [n_slots] open-addressing index into counts, -1 empty */
    uint32_t n_slots;
};

/* Logprobs of one position (a sampled token or a prompt token). */
struct sampler_logprobs {
    int32_t token;                          /* the chosen (or target) id */
    float logprob;                          /* its raw logprob */
    int32_t rank;                           /* 1 + number of ids with a larger raw logit */
    int32_t n_top;                          /* number of alternatives below, k */
    int32_t top_ids[SAMPLING_MAX_LOGPROBS]; /* descending logprob, ties to the lower id */
    float top_logprobs[SAMPLING_MAX_LOGPROBS];
};

/* sampler_scratch_init: allocates the workspace for vocabulary size vocab (> 0, < 2^31).
 * ERR_INVAL for a bad size, ERR_NOMEM. Free with sampler_scratch_deinit. */
int sampler_scratch_init(struct sampler_scratch *s, size_t vocab);

/* sampler_scratch_deinit: frees what init allocated; safe on a zeroed struct. */
void sampler_scratch_deinit(struct sampler_scratch *s);

/* sampler_seq_init: state for a new sequence: copies params (not its arrays), takes the seed
 * from params when has_seed else engine_seed, and, when a penalty is on, counts the prompt's
 * ids into a map sized for n_prompt + max_tokens distinct ids (at most vocab). Checks every
 * id of params' arrays and of the prompt against vocab: ERR_INVAL. ERR_NOMEM. Free with
 * sampler_seq_deinit. */
int sampler_seq_init(struct sampler_seq *seq, const struct sampling_params *params,
                     uint64_t engine_seed, uint32_t choice, const int32_t *prompt, size_t n_prompt,
                     size_t vocab);

/* sampler_seq_deinit: frees the count map; safe on a zeroed struct. */
void sampler_seq_deinit(struct sampler_seq *seq);

/* sampler_seq_append: records the generated token (after each step): n_generated + 1 and,
 * when penalties are on, its output count. ERR_INVAL for an id outside the vocabulary,
 * ERR_LIMIT when more distinct ids arrive than the map was sized for (more than
 * max_tokens appended); n_generated still advances. */
int sampler_seq_append(struct sampler_seq *seq, int32_t token);

/* sampler_uniform: the draw in [0, 1) for (seed, choice, position); a pure hash. */
double sampler_uniform(uint64_t seed, uint32_t choice, uint64_t position);

/* sampler_process_logits: steps 1 to 4 above on one row, in place (logits [vocab], fp32,
 * vocab == seq->vocab == s->vocab). eos_ids: the model's n_eos EOS ids (out-of-range ids are
 * ignored). Exposed so tests can check the formulas; sampler_sample calls it. */
void sampler_process_logits(const struct sampler_seq *seq, float *logits, const int32_t *eos_ids,
                            size_t n_eos, struct sampler_scratch *s);

/* sampler_sample: picks seq's next token from its row logits [vocab] (fp32, host; used as
 * workspace: overwritten). Writes the id to *token and, when seq->params.logprobs >= 0 and
 * lp is not NULL, the raw logprobs to *lp. Does not append: call sampler_seq_append after.
 * A row with every id masked (-inf) gives the lowest id. ERR_INVAL when the sizes differ. */
int sampler_sample(const struct sampler_seq *seq, float *logits, const int32_t *eos_ids,
                   size_t n_eos, struct sampler_scratch *s, int32_t *token,
                   struct sampler_logprobs *lp);

/* sampler_prompt_logprobs: raw logprobs of prompt tokens: for each of n_rows rows of logits
 * [n_rows][vocab] (fp32, not modified), the logprob and rank of targets[r] (the prompt's
 * next token) and the k (0..SAMPLING_MAX_LOGPROBS) most likely ids, into out[r].
 * ERR_INVAL for a bad k, size or target. */
int sampler_prompt_logprobs(const float *logits, size_t n_rows, const int32_t *targets, int32_t k,
                            struct sampler_scratch *s, struct sampler_logprobs *out);

#endif
