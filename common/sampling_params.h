/*
 * sampling_params: how one request's tokens are chosen, as the engine receives it (the wire
 * decoder fills it, the sampler reads it). Plain data: the arrays point into the memory of
 * whoever filled the struct (a decoded message, an arena) and live as long as it.
 *
 * Semantics follow vLLM's SamplingParams (../shared/API.md lists the HTTP fields):
 *   temperature 0 is greedy; top_k <= 0 is off; top_p 1 is off; min_p 0 is off;
 *   repetition_penalty 1 is off (> 1 makes tokens already in the prompt or output less
 *   likely: a positive logit is divided by it, a negative one multiplied); presence and
 *   frequency penalties subtract from the logits of tokens already generated (presence
 *   once, frequency times the count); logit_bias adds to the logits of its ids;
 *   allowed_token_ids, when given, masks every other id; min_tokens keeps EOS and the stop
 *   ids from being chosen until that many tokens were generated; logprobs -1 asks for none,
 *   k >= 0 for the chosen token's logprob and the k most likely alternatives.
 */
#ifndef KILN_SAMPLING_PARAMS_H
#define KILN_SAMPLING_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

#define SAMPLING_MAX_LOGPROBS 20  /* top alternatives per token at most */
#define SAMPLING_MAX_STOP_IDS 128 /* stop_token_ids at most */
#define SAMPLING_MAX_BIAS 1024    /* logit_bias entries at most */

struct sampling_params {
    float temperature;        /* >= 0 */
    float top_p;              /* (0, 1] */
    int32_t top_k;            /* <= 0: off */
    float min_p;              /* [0, 1] */
    float repetition_penalty; /* > 0 */
    float presence_penalty;   /* [-2, 2] */
    float frequency_penalty;  /* [-2, 2] */
    bool has_seed;
    uint64_t seed;      /* with has_seed; else the engine draws one */
    int32_t max_tokens; /* >= 1 */
    int32_t min_tokens; /* >= 0 */
    bool ignore_eos;
    int32_t logprobs;        /* -1, or 0 .. SAMPLING_MAX_LOGPROBS */
    int32_t prompt_logprobs; /* -1, or 0 .. SAMPLING_MAX_LOGPROBS */
    const int32_t *stop_token_ids;
    uint32_t n_stop_token_ids;
    const int32_t *logit_bias_ids; /* with logit_bias_values: n_logit_bias pairs */
    const float *logit_bias_values;
    uint32_t n_logit_bias;
    const int32_t *allowed_token_ids; /* NULL or n_allowed_token_ids ids */
    uint32_t n_allowed_token_ids;
};

/* sampling_params_default: greedy off (temperature 1), every filter off, max_tokens 16,
 * no logprobs, no arrays. */
static inline struct sampling_params sampling_params_default(void)
{
    struct sampling_params p = {0};
    p.temperature = 1.0f;
    p.top_p = 1.0f;
    p.repetition_penalty = 1.0f;
    p.max_tokens = 16;
    p.logprobs = -1;
    p.prompt_logprobs = -1;
    return p;
}

#endif
