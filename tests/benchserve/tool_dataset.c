/*
 * tool_dataset: loads a benchmark dataset (bench/dataset.h) and prints it, for
 * tests/benchserve/test_dataset_py.py to check against Hugging Face `tokenizers`.
 *
 *   tool_dataset TOKENIZER_DIR NAME [--path P] [--num-prompts N] [--input-len N]
 *                [--output-len N] [--range-ratio R] [--prefix-len N]
 *                [--sharegpt-output-len N] [--jsonl-output-len N] [--seed N]
 *
 * stdout: one JSON object per sample, {"prompt", "prompt_len", "output_len"}, then
 * {"token_mismatch": N}. Exit 0; 1 when loading fails (message and ERR_* name on stderr);
 * 2 on bad arguments.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/dataset.h"
#include "common/err.h"
#include "common/tokenizer.h"

static int usage(void)
{
    fprintf(stderr, "usage: tool_dataset TOKENIZER_DIR NAME [--path P] [--num-prompts N] "
                    "[--input-len N] [--output-len N] [--range-ratio R] [--prefix-len N] "
                    "[--sharegpt-output-len N] [--jsonl-output-len N] [--seed N]\n");
    return 2;
}

/* parse_flag: applies one "--flag value" pair to o; 0, or -1 for an unknown flag. */
static int parse_flag(struct bench_dataset_opts *o, const char *f, const char *v)
{
    if (strcmp(f, "--path") == 0)
        o->path = v;
    else if (strcmp(f, "--num-prompts") == 0)
        o->num_prompts = atoi(v);
    else if (strcmp(f, "--input-len") == 0)
        o->random_input_len = atoi(v);
    else if (strcmp(f, "--output-len") == 0)
        o->random_output_len = atoi(v);
    else if (strcmp(f, "--range-ratio") == 0)
        o->random_range_ratio = strtod(v, NULL);
    else if (strcmp(f, "--prefix-len") == 0)
        o->random_prefix_len = atoi(v);
    else if (strcmp(f, "--sharegpt-output-len") == 0)
        o->sharegpt_output_len = atoi(v);
    else if (strcmp(f, "--jsonl-output-len") == 0)
        o->jsonl_output_len = atoi(v);
    else if (strcmp(f, "--seed") == 0)
        o->seed = strtoull(v, NULL, 10);
    else
        return -1;
    return 0;
}

static int print_dataset(const struct bench_dataset *d)
{
    for (size_t i = 0; i < d->n; i++) {
        json_t *o = json_pack("{s:s%,s:i,s:i}", "prompt", d->v[i].prompt, d->v[i].prompt_n,
                              "prompt_len", d->v[i].prompt_len, "output_len", d->v[i].output_len);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!s)
            return -1;
        puts(s);
        free(s);
    }
    printf("{\"token_mismatch\": %ld}\n", d->token_mismatch);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || (argc - 3) % 2 != 0)
        return usage();
    struct bench_dataset_opts o;
    bench_dataset_opts_default(&o);
    o.name = argv[2];
    for (int i = 3; i + 1 < argc; i += 2)
        if (parse_flag(&o, argv[i], argv[i + 1]) != 0)
            return usage();
    char err[512];
    struct tokenizer *tok;
    int rc = tok_load_dir(argv[1], &tok, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "tool_dataset: %s\n", err);
        return 1;
    }
    struct bench_dataset d;
    rc = bench_dataset_load(&o, tok, &d, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "tool_dataset: %s: %s\n", err_name(rc), err);
        tok_free(tok);
        return 1;
    }
    rc = print_dataset(&d);
    bench_dataset_free(&d);
    tok_free(tok);
    return rc ? 1 : 0;
}
