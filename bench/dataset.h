/*
 * dataset: the benchmark's prompts, built the way `vllm bench serve` builds them.
 *
 *   random    input/output lengths drawn uniformly from [floor(L*(1-r)), ceil(L*(1+r))]
 *             (input after subtracting the tokens the tokenizer adds itself); each prompt
 *             is the token ids (offset + i + arange(len)) % |allowed| over the vocabulary
 *             without special tokens and tokens that are parts of UTF-8 characters (see
 *             dataset.c), after an optional shared random prefix, decoded to text
 *             and re-encoded, truncated or extended (at most 10 tries) until the text encodes
 *             to exactly the target length.
 *   sharegpt  a ShareGPT JSON file: entries with at least two turns, shuffled by the seed;
 *             prompt = first turn, output length = tokens of the second turn (or the fixed
 *             --sharegpt-output-len); pairs with prompt < 4 or output < 4 tokens (the latter
 *             unless fixed), prompt > 1024 or prompt + output > 2048 are skipped; when too few
 *             remain, samples are repeated (drawn by the seed) up to num_prompts.
 *   jsonl     one JSON object per line with "prompt" (string) and optionally
 *             "output_tokens" (integer, used when output_len is -1); lines are taken in
 *             order, repeated when fewer than num_prompts.
 *
 * Token counts come from the model's tokenizer (common/tokenizer.h). Files are untrusted:
 * sizes are bounded and malformed input fails with a message naming the line or entry.
 */
#ifndef KILN_BENCH_DATASET_H
#define KILN_BENCH_DATASET_H

#include <stddef.h>
#include <stdint.h>

struct tokenizer;

struct bench_sample {
    char *prompt;    /* NUL-terminated UTF-8 */
    size_t prompt_n; /* bytes */
    int prompt_len;  /* tokens, without the tokenizer's own special tokens (random) or with
                        them (sharegpt: as vLLM counts tokenizer(prompt)) */
    int output_len;  /* tokens to ask for (max_tokens) */
};

struct bench_dataset {
    struct bench_sample *v;
    size_t n;
    long token_mismatch; /* random: tokens more (+) or fewer (-) than asked, over all prompts */
};

struct bench_dataset_opts {
    const char *name;      /* "random", "sharegpt" or "jsonl" */
    const char *path;      /* file, for sharegpt and jsonl */
    int num_prompts;       /* > 0 */
    int random_input_len;  /* default 1024 */
    int random_output_len; /* default 128 */
    double random_range_ratio; /* [0, 1), default 0 */
    int random_prefix_len; /* default 0 */
    int sharegpt_output_len; /* -1: from the second turn */
    int jsonl_output_len;  /* -1: from "output_tokens"; default 256 */
    uint64_t seed;
};

/* bench_dataset_opts_default: vLLM's defaults (random 1024 in / 128 out, ratio 0, prefix 0,
 * 1000 prompts, seed 0, sharegpt -1, jsonl 256). */
void bench_dataset_opts_default(struct bench_dataset_opts *o);

/* bench_dataset_load: builds o->num_prompts samples into *out. Returns 0, or ERR_INVAL /
 * ERR_IO / ERR_PARSE / ERR_LIMIT / ERR_NOMEM with a message in err. */
int bench_dataset_load(const struct bench_dataset_opts *o, const struct tokenizer *tok,
                       struct bench_dataset *out, char *err, size_t errlen);

/* bench_dataset_free: frees the samples; *d is left empty. */
void bench_dataset_free(struct bench_dataset *d);

#endif
