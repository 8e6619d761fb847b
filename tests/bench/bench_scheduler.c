/*
 * bench_scheduler: microseconds per decode step of the scheduler (scheduler_schedule +
 * scheduler_commit, fake sampled tokens, no model), one thread.
 *
 *   bench_scheduler [steps]
 *
 * 256 sequences with distinct prompts of 100 to 500 tokens (block size 16) are pre-filled
 * (not timed), then every step decodes one token for each of them; prints the mean and p99
 * microseconds per step over the timed steps (default 2000). The target: < 200 us.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "worker/kv_blocks.h"
#include "worker/scheduler.h"

#define N_SEQS 256
#define BS 16
#define VOCAB 32000

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* add_all: N_SEQS requests with prompts of 100..500 tokens and room for steps tokens. */
static int add_all(struct scheduler *s, int steps)
{
    static int32_t prompt[500];
    struct sampling_params p = sampling_params_default();
    p.max_tokens = steps + 64;
    p.ignore_eos = true;
    uint32_t x = 12345;
    for (int r = 0; r < N_SEQS; r++) {
        size_t n = 100 + (size_t)(r * 97) % 401;
        for (size_t i = 0; i < n; i++) {
            x = x * 1664525u + 1013904223u;
            prompt[i] = (int32_t)(3 + (x >> 8) % (VOCAB - 3));
        }
        struct sched_request q = {.id = (uint64_t)r,
                                  .prompt = prompt,
                                  .n_prompt = n,
                                  .params = &p,
                                  .n = 1,
                                  .arrival = (uint64_t)r};
        char err[128];
        int rc = scheduler_add(s, &q, err, sizeof err);
        if (rc) {
            fprintf(stderr, "bench_scheduler: add: %s\n", err);
            return rc;
        }
    }
    return 0;
}

/* one_step: schedule + commit with fake tokens; returns the step's logit rows or < 0. */
static long one_step(struct scheduler *s, int32_t *sampled, uint32_t salt)
{
    struct sched_step st;
    struct sched_events ev;
    if (scheduler_schedule(s, &st))
        return -1;
    for (size_t i = 0; i < st.n_logits; i++)
        sampled[i] = (int32_t)(3 + (salt * 2654435761u + (uint32_t)i * 40503u) % (VOCAB - 3));
    if (st.n_tokens && scheduler_commit(s, &st, sampled, &ev))
        return -1;
    return (long)st.n_logits;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 2000;
    if (steps < 1)
        steps = 2000;
    int32_t max_len = 500 + steps + 64;
    struct kv_blocks_config k = {.n_blocks = N_SEQS * ((max_len + BS - 1) / BS + 1),
                                 .block_size = BS,
                                 .max_seqs = N_SEQS,
                                 .max_blocks_per_seq = (max_len + BS - 1) / BS};
    void *mem = malloc(kv_blocks_bytes(&k));
    struct kv_blocks *kb;
    struct scheduler *s = NULL;
    struct scheduler_config c = {.max_num_batched_tokens = 8192,
                                 .max_num_seqs = N_SEQS,
                                 .max_waiting = 1024,
                                 .max_model_len = max_len,
                                 .block_size = BS,
                                 .vocab = VOCAB,
                                 .eos_ids = {2},
                                 .n_eos = 1};
    int32_t *sampled = malloc(N_SEQS * sizeof *sampled);
    double *t = malloc((size_t)steps * sizeof *t);
    if (!mem || !sampled || !t || kv_blocks_init(mem, kv_blocks_bytes(&k), &k, &kb) ||
        scheduler_new(&c, kb, &s) || add_all(s, steps)) {
        fprintf(stderr, "bench_scheduler: setup failed\n");
        return 1;
    }
    uint32_t salt = 1;
    while (scheduler_stats(s).n_waiting > 0 || one_step(s, sampled, salt) < N_SEQS)
        if (one_step(s, sampled, salt++) < 0)
            return 1;
    double sum = 0;
    for (int i = 0; i < steps; i++) {
        double t0 = now_us();
        long n = one_step(s, sampled, salt++);
        t[i] = now_us() - t0;
        sum += t[i];
        if (n != N_SEQS) {
            fprintf(stderr, "bench_scheduler: step %d had %ld sequences\n", i, n);
            return 1;
        }
    }
    qsort(t, (size_t)steps, sizeof *t, cmp_double);
    struct sched_stats st = scheduler_stats(s);
    printf("scheduler: %d seqs decoding, block size %d, %d steps: mean %.1f us/step, p99 %.1f "
           "us/step (kv usage %.0f%%)\n",
           N_SEQS, BS, steps, sum / steps, t[(size_t)steps * 99 / 100], st.kv_usage * 100);
    scheduler_free(s);
    free(mem);
    free(sampled);
    free(t);
    return 0;
}
