/*
 * sampler_driver: draws tokens with the sampler for tests/worker/test_sampler_dist.py.
 *
 *   sampler_driver < input
 *
 * input: "vocab temperature top_k top_p min_p n_draws seed" then vocab logits, all
 * whitespace-separated. Draws n_draws tokens from the same logits at positions 0 ..
 * n_draws-1 (fresh randomness each, as along one sequence) and prints vocab lines, the
 * number of times each id was drawn. Exit status 1 on bad input.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker/sampler.h"

static int draw_all(const struct sampling_params *p, const float *logits, size_t vocab,
                    uint32_t n_draws, uint32_t *counts)
{
    struct sampler_scratch s;
    struct sampler_seq seq;
    float *work = malloc(vocab * sizeof *work);
    if (!work || sampler_scratch_init(&s, vocab) < 0)
        return 1;
    if (sampler_seq_init(&seq, p, 0, 0, NULL, 0, vocab) < 0)
        return 1;
    for (uint32_t i = 0; i < n_draws; i++) {
        memcpy(work, logits, vocab * sizeof *work);
        seq.n_generated = i;
        int32_t t;
        if (sampler_sample(&seq, work, NULL, 0, &s, &t, NULL) < 0)
            return 1;
        counts[t]++;
    }
    sampler_seq_deinit(&seq);
    sampler_scratch_deinit(&s);
    free(work);
    return 0;
}

int main(void)
{
    size_t vocab;
    struct sampling_params p = sampling_params_default();
    uint32_t n_draws;
    if (scanf("%zu %f %" SCNd32 " %f %f %" SCNu32 " %" SCNu64, &vocab, &p.temperature, &p.top_k,
              &p.top_p, &p.min_p, &n_draws, &p.seed) != 7 ||
        vocab == 0 || vocab > 1000000)
        return 1;
    p.has_seed = true;
    p.max_tokens = (int32_t)n_draws;
    float *logits = malloc(vocab * sizeof *logits);
    uint32_t *counts = calloc(vocab, sizeof *counts);
    if (!logits || !counts)
        return 1;
    for (size_t i = 0; i < vocab; i++)
        if (scanf("%f", &logits[i]) != 1)
            return 1;
    if (draw_all(&p, logits, vocab, n_draws, counts))
        return 1;
    for (size_t i = 0; i < vocab; i++)
        printf("%" PRIu32 "\n", counts[i]);
    free(logits);
    free(counts);
    return 0;
}
