/*
 * bench_sampler: nanoseconds per sampler_sample call, one thread.
 *
 *   bench_sampler [iterations]
 *
 * For vocab 32000 (Llama 2) and 151936 (Qwen) and two logit shapes: "peaked" (uniform noise
 * in [-1, 1] plus +12 on 200 ids, so top_p 0.9 keeps < 200 tokens, like a confident model)
 * and "flat" (noise in [-3, 3]: top_p 0.9 keeps most of the vocabulary, the worst case),
 * times greedy, top_k 50, top_p 0.9 and full random sampling (temperature 1, no filter).
 * Each call first copies the row back (the sampler overwrites it); the copy alone is
 * printed as "memcpy" and is included in the other numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "worker/sampler.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng = 0x853c49e6748fea9bull;

static double urand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1p-53;
}

static void make_logits(float *l, size_t vocab, int peaked)
{
    double amp = peaked ? 1 : 3;
    for (size_t i = 0; i < vocab; i++)
        l[i] = (float)((urand() * 2 - 1) * amp);
    for (int i = 0; peaked && i < 200; i++)
        l[(size_t)(urand() * (double)vocab)] += 12;
}

/* time_one: ns per call of sampling with p (NULL: the copy alone). */
static double time_one(const struct sampling_params *p, const float *logits, float *work,
                       struct sampler_scratch *s, int iters)
{
    struct sampler_seq seq;
    if (p && sampler_seq_init(&seq, p, 1, 0, NULL, 0, s->vocab) < 0)
        return -1;
    volatile int32_t sink = 0;
    double t0 = now();
    for (int i = 0; i < iters; i++) {
        memcpy(work, logits, s->vocab * sizeof *work);
        if (p) {
            int32_t t;
            seq.n_generated = (uint32_t)i;
            sampler_sample(&seq, work, NULL, 0, s, &t, NULL);
            sink = t;
        } else {
            sink = (int32_t)work[i % s->vocab];
        }
    }
    double dt = now() - t0;
    (void)sink;
    if (p)
        sampler_seq_deinit(&seq);
    return dt / iters * 1e9;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 200;
    size_t vocabs[2] = {32000, 151936};
    struct sampling_params greedy = sampling_params_default(), top_k = greedy, top_p = greedy,
                           full = greedy;
    greedy.temperature = 0;
    top_k.top_k = 50;
    top_p.top_p = 0.9f;
    printf("%-8s %-7s %10s %10s %10s %10s %10s   (ns per sample)\n", "vocab", "logits", "memcpy",
           "greedy", "top_k=50", "top_p=0.9", "random");
    for (int v = 0; v < 2; v++)
        for (int peaked = 1; peaked >= 0; peaked--) {
            struct sampler_scratch s;
            float *l = malloc(vocabs[v] * sizeof *l), *work = malloc(vocabs[v] * sizeof *l);
            if (!l || !work || sampler_scratch_init(&s, vocabs[v]) < 0)
                return 1;
            make_logits(l, vocabs[v], peaked);
            printf("%-8zu %-7s %10.0f %10.0f %10.0f %10.0f %10.0f\n", vocabs[v],
                   peaked ? "peaked" : "flat", time_one(NULL, l, work, &s, iters),
                   time_one(&greedy, l, work, &s, iters), time_one(&top_k, l, work, &s, iters),
                   time_one(&top_p, l, work, &s, iters), time_one(&full, l, work, &s, iters));
            sampler_scratch_deinit(&s);
            free(l);
            free(work);
        }
    return 0;
}
