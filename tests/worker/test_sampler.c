/*
 * test_sampler: the sampler (worker/sampler.h) against hand-computed values of vLLM's
 * formulas and against log_softmax computed here in double: greedy and its ties, the
 * filters never emitting a token they exclude (excluded sets known by construction),
 * allowed ids, logit bias, min_tokens, the penalty formulas, the counter-based randomness,
 * raw logprobs, prompt logprobs, and the selection primitive against a full sort.
 * The empirical distributions are checked against NumPy in test_sampler_dist.py.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "tests/test.h"
#include "worker/sampler.h"
#include "worker/sampler_select.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static double urand(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * 0x1p-53;
}

static void rand_logits(float *l, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        l[i] = (float)((urand() * 2 - 1) * scale);
}

/* one_draw: a copy of logits through sampler_sample at position pos. */
static int32_t one_draw(struct sampler_seq *seq, struct sampler_scratch *s, const float *logits,
                        uint32_t pos, const int32_t *eos, size_t n_eos)
{
    float *work = malloc(s->vocab * sizeof *work);
    memcpy(work, logits, s->vocab * sizeof *work);
    seq->n_generated = pos;
    int32_t t = -1;
    int rc = sampler_sample(seq, work, eos, n_eos, s, &t, NULL);
    free(work);
    return rc < 0 ? rc : t;
}

/* histogram: n_draws draws at positions 0..n_draws-1 into counts [vocab]. */
static void histogram(const struct sampling_params *p, const float *logits, size_t vocab,
                      uint32_t n_draws, uint32_t *counts)
{
    struct sampler_scratch s;
    struct sampler_seq seq;
    memset(counts, 0, vocab * sizeof *counts);
    if (sampler_scratch_init(&s, vocab) < 0 || sampler_seq_init(&seq, p, 7, 0, NULL, 0, vocab))
        return;
    for (uint32_t i = 0; i < n_draws; i++) {
        int32_t t = one_draw(&seq, &s, logits, i, NULL, 0);
        if (t >= 0 && (size_t)t < vocab)
            counts[t]++;
    }
    sampler_seq_deinit(&seq);
    sampler_scratch_deinit(&s);
}

/* logs: logits[i] = log(p[i]) for a hand-written distribution. */
static void logs(float *l, const double *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        l[i] = (float)log(p[i]);
}

TEST(greedy_is_argmax)
{
    enum { V = 1000 };
    static float l[V];
    struct sampler_scratch s;
    REQUIRE(sampler_scratch_init(&s, V) == 0);
    struct sampling_params p = sampling_params_default();
    p.temperature = 0;
    struct sampler_seq seq;
    REQUIRE(sampler_seq_init(&seq, &p, 1, 0, NULL, 0, V) == 0);
    for (int rep = 0; rep < 20; rep++) {
        rand_logits(l, V, 5);
        size_t best = 0;
        for (size_t i = 0; i < V; i++)
            if (l[i] > l[best])
                best = i;
        CHECK_EQ(one_draw(&seq, &s, l, (uint32_t)rep, NULL, 0), best);
    }
    sampler_seq_deinit(&seq);
    sampler_scratch_deinit(&s);
}

TEST(greedy_ties_to_lowest_id)
{
    float l[8] = {0, 1, 3, -2, 3, 3, 0, 1};
    struct sampler_scratch s;
    REQUIRE(sampler_scratch_init(&s, 8) == 0);
    struct sampling_params p = sampling_params_default();
    p.temperature = 5e-6f; /* below vLLM's 1e-5: greedy */
    struct sampler_seq seq;
    REQUIRE(sampler_seq_init(&seq, &p, 1, 0, NULL, 0, 8) == 0);
    for (uint32_t pos = 0; pos < 10; pos++)
        CHECK_EQ(one_draw(&seq, &s, l, pos, NULL, 0), 2);
    sampler_seq_deinit(&seq);
    sampler_scratch_deinit(&s);
}

TEST(top_k_1_equals_greedy)
{
    enum { V = 500 };
    static float l[V];
    static uint32_t counts[V];
    rand_logits(l, V, 0.5); /* flat: an unfiltered draw would be spread out */
    size_t best = 0;
    for (size_t i = 0; i < V; i++)
        if (l[i] > l[best])
            best = i;
    struct sampling_params p = sampling_params_default();
    p.top_k = 1;
    histogram(&p, l, V, 500, counts);
    CHECK_EQ(counts[best], 500);
}

TEST(top_k_never_emits_excluded)
{
    double pr[8] = {0.05, 0.2, 0.1, 0.25, 0.15, 0.02, 0.13, 0.1};
    float l[8];
    uint32_t counts[8];
    logs(l, pr, 8);
    struct sampling_params p = sampling_params_default();
    p.top_k = 3; /* keeps ids 3, 1, 4 */
    histogram(&p, l, 8, 4000, counts);
    CHECK_EQ(counts[0] + counts[2] + counts[5] + counts[6] + counts[7], 0);
    CHECK(counts[3] > 0 && counts[1] > 0 && counts[4] > 0);
    CHECK_EQ(counts[1] + counts[3] + counts[4], 4000);
}

TEST(top_k_ties_to_lower_id)
{
    float l[6] = {1, 2, 2, 2, 2, 0};
    uint32_t counts[6];
    struct sampling_params p = sampling_params_default();
    p.top_k = 2; /* ids 1..4 tie: 1 and 2 are kept */
    histogram(&p, l, 6, 2000, counts);
    CHECK_EQ(counts[1] + counts[2], 2000);
    CHECK(counts[1] > 0 && counts[2] > 0);
}

TEST(top_p_never_emits_excluded)
{
    double pr[4] = {0.15, 0.5, 0.05, 0.3};
    float l[4];
    uint32_t counts[4];
    logs(l, pr, 4);
    struct sampling_params p = sampling_params_default();
    p.top_p = 0.7f; /* 0.5 (before: 0), 0.3 (before: 0.5 < 0.7); 0.15 has 0.8 before */
    histogram(&p, l, 4, 4000, counts);
    CHECK_EQ(counts[0] + counts[2], 0);
    CHECK(counts[1] > 0 && counts[3] > 0);
}

/* 300 equal tokens at scattered ids over a vocab of 5000 whose other logits are -30 (mass
 * 4700 * e^-30 / 300, about 1e-12): top_p 0.905 keeps the 272 lowest of the 300 ids (271
 * have mass 271/300 < 0.905 before them), which takes the chunked rounds past 64 and 256. */
TEST(top_p_large_nucleus_by_rounds)
{
    enum { V = 5000, N = 300 };
    static float l[V];
    static uint32_t counts[V];
    for (size_t i = 0; i < V; i++)
        l[i] = -30;
    for (size_t j = 0; j < N; j++)
        l[7 * j + 3] = 0;
    struct sampling_params p = sampling_params_default();
    p.top_p = 0.905f;
    histogram(&p, l, V, 20000, counts);
    uint32_t in = 0, seen = 0;
    for (size_t j = 0; j < 272; j++) {
        in += counts[7 * j + 3];
        seen += counts[7 * j + 3] > 0;
    }
    CHECK_EQ(in, 20000);
    CHECK(seen > 250); /* about 272 * (1 - e^-73) are expected */
    CHECK_EQ(counts[7 * 272 + 3], 0);
}

TEST(min_p_never_emits_excluded)
{
    double pr[4] = {0.5, 0.3, 0.15, 0.05};
    float l[4];
    uint32_t counts[4];
    logs(l, pr, 4);
    struct sampling_params p = sampling_params_default();
    p.min_p = 0.2f; /* threshold 0.1: keeps 0, 1, 2 */
    histogram(&p, l, 4, 4000, counts);
    CHECK_EQ(counts[3], 0);
    CHECK(counts[0] > 0 && counts[1] > 0 && counts[2] > 0);
    /* at temperature 0.5 the relative probs are p^2 / 0.25: 1, 0.36, 0.09, 0.01 */
    p.temperature = 0.5f;
    histogram(&p, l, 4, 4000, counts);
    CHECK_EQ(counts[2] + counts[3], 0);
    CHECK(counts[0] > 0 && counts[1] > 0);
}

TEST(allowed_token_ids_only)
{
    enum { V = 100 };
    float l[V];
    uint32_t counts[V];
    rand_logits(l, V, 1);
    int32_t allowed[3] = {5, 50, 97};
    l[5] = l[50] = l[97] = -5; /* unlikely before the mask */
    struct sampling_params p = sampling_params_default();
    p.allowed_token_ids = allowed;
    p.n_allowed_token_ids = 3;
    histogram(&p, l, V, 3000, counts);
    CHECK_EQ(counts[5] + counts[50] + counts[97], 3000);
    CHECK(counts[5] > 0 && counts[50] > 0 && counts[97] > 0);
}

TEST(logit_bias_blocks_and_forces)
{
    float l[5] = {4, 1, 0, -1, 2};
    uint32_t counts[5];
    int32_t ids[2] = {0, 3};
    float block_force[2] = {-100, 100};
    struct sampling_params p = sampling_params_default();
    p.logit_bias_ids = ids;
    p.logit_bias_values = block_force;
    p.n_logit_bias = 2;
    histogram(&p, l, 5, 1000, counts); /* 99 against at most 4: e^-95 */
    CHECK_EQ(counts[3], 1000);
    float block[2] = {-100, 0};
    p.logit_bias_values = block;
    histogram(&p, l, 5, 3000, counts);
    CHECK_EQ(counts[0], 0);
    CHECK(counts[4] > 0);
}

TEST(min_tokens_masks_eos_and_stop_ids)
{
    float l[6] = {0, 1, 9, 8, 2, 7}; /* eos 2, stop 3, then 5 */
    int32_t eos = 2, stop = 3;
    struct sampler_scratch s;
    REQUIRE(sampler_scratch_init(&s, 6) == 0);
    struct sampling_params p = sampling_params_default();
    p.temperature = 0;
    p.min_tokens = 3;
    p.stop_token_ids = &stop;
    p.n_stop_token_ids = 1;
    p.ignore_eos = true; /* vLLM masks the EOS during min_tokens anyway */
    struct sampler_seq seq;
    REQUIRE(sampler_seq_init(&seq, &p, 1, 0, NULL, 0, 6) == 0);
    for (int i = 0; i < 3; i++) {
        float work[6];
        memcpy(work, l, sizeof work);
        int32_t t = -1;
        CHECK_EQ(sampler_sample(&seq, work, &eos, 1, &s, &t, NULL), 0);
        CHECK_EQ(t, 5);
        CHECK_EQ(sampler_seq_append(&seq, t), 0);
    }
    float work[6];
    memcpy(work, l, sizeof work);
    int32_t t = -1;
    CHECK_EQ(sampler_sample(&seq, work, &eos, 1, &s, &t, NULL), 0);
    CHECK_EQ(t, 2);
    sampler_seq_deinit(&seq);
    sampler_scratch_deinit(&s);
}

static int close_to(float a, double b)
{
    return fabs((double)a - b) <= 1e-6 * (1 + fabs(b));
}

TEST(penalties_follow_the_formulas)
{
    /* prompt {0, 1}, output {2, 2, 3}; repetition 2, presence 0.5, frequency 0.25:
     *   id 0 (prompt, 2 > 0):    2 / 2                    = 1
     *   id 1 (prompt, -1 <= 0): -1 * 2                    = -2
     *   id 2 (output x2):        0.5 / 2 - 0.25 * 2 - 0.5 = -0.75
     *   id 3 (output x1):        3 / 2 - 0.25 - 0.5       = 0.75
     *   id 4 (unseen):           0 */
    float l[5] = {2, -1, 0.5f, 3, 0};
    int32_t prompt[2] = {0, 1};
    struct sampler_scratch s;
    REQUIRE(sampler_scratch_init(&s, 5) == 0);
    struct sampling_params p = sampling_params_default();
    p.repetition_penalty = 2;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    struct sampler_seq seq;
    REQUIRE(sampler_seq_init(&seq, &p, 1, 0, prompt, 2, 5) == 0);
    CHECK_EQ(sampler_seq_append(&seq, 2), 0);
    CHECK_EQ(sampler_seq_append(&seq, 2), 0);
    CHECK_EQ(sampler_seq_append(&seq, 3), 0);
    sampler_process_logits(&seq, l, NULL, 0, &s);
    double want[5] = {1, -2, -0.75, 0.75, 0};
    for (int i = 0; i < 5; i++)
        CHECK(close_to(l[i], want[i]));
    sampler_seq_deinit(&seq);
    sampler_scratch_deinit(&s);
}

TEST(presence_frequency_ignore_prompt_tokens)
{
    float l[3] = {1, 1, 1};
    int32_t prompt[2] = {0, 0};
    struct sampler_scratch s;
    REQUIRE(sampler_scratch_init(&s, 3) == 0);
    struct sampling_params p = sampling_params_default();
    p.presence_penalty = 1;
    p.frequency_penalty = -0.5f; /* negative: encourages: 1 - (-0.5 * 3) - 1 = 1.5 */
    struct sampler_seq seq;
    REQUIRE(sampler_seq_init(&seq, &p, 1, 0, prompt, 2, 3) == 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(sampler_seq_append(&seq, 1), 0);
    sampler_process_logits(&seq, l, NULL, 0, &s);
    CHECK(close_to(l[0], 1) && close_to(l[1], 1.5) && close_to(l[2], 1));
    sampler_seq_deinit(&seq);
    sampler_scratch_deinit(&s);
}

TEST(bias_applies_before_repetition_penalty)
{
    /* vLLM: bias first, then penalties: (1 + 1) / 2 = 1, not 1 / 2 + 1 = 1.5 */
    float l[2] = {1, 0};
    int32_t prompt[1] = {0}, bias_id = 0;
    float bias = 1;
    struct sampler_scratch s;
    REQUIRE(sampler_scratch_init(&s, 2) == 0);
    struct sampling_params p = sampling_params_default();
    p.repetition_penalty = 2;
    p.logit_bias_ids = &bias_id;
    p.logit_bias_values = &bias;
    p.n_logit_bias = 1;
    struct sampler_seq seq;
    REQUIRE(sampler_seq_init(&seq, &p, 1, 0, prompt, 1, 2) == 0);
    sampler_process_logits(&seq, l, NULL, 0, &s);
    CHECK(close_to(l[0], 1.0));
    sampler_seq_deinit(&seq);
    sampler_scratch_deinit(&s);
}

TEST(seeded_draws_are_reproducible_and_vary)
{
    enum { V = 64 };
    float l[V] = {0}; /* uniform */
    struct sampler_scratch s;
    REQUIRE(sampler_scratch_init(&s, V) == 0);
    struct sampling_params p = sampling_params_default();
    p.has_seed = true;
    p.seed = 1234;
    struct sampler_seq a, b, c;
    REQUIRE(sampler_seq_init(&a, &p, 1, 0, NULL, 0, V) == 0);
    REQUIRE(sampler_seq_init(&b, &p, 999, 0, NULL, 0, V) == 0); /* engine seed unused */
    REQUIRE(sampler_seq_init(&c, &p, 1, 1, NULL, 0, V) == 0);   /* another choice */
    int same_ab = 0, same_ac = 0, distinct = 0;
    int32_t first = one_draw(&a, &s, l, 0, NULL, 0);
    for (uint32_t pos = 0; pos < 200; pos++) {
        int32_t ta = one_draw(&a, &s, l, pos, NULL, 0), tb = one_draw(&b, &s, l, pos, NULL, 0);
        same_ab += ta == tb;
        same_ac += ta == one_draw(&c, &s, l, pos, NULL, 0);
        distinct += ta != first;
    }
    CHECK_EQ(same_ab, 200);
    CHECK(same_ac < 20); /* 200 / 64 expected */
    CHECK(distinct > 150);
    CHECK(sampler_uniform(1, 2, 3) == sampler_uniform(1, 2, 3));
    CHECK(sampler_uniform(1, 2, 3) != sampler_uniform(1, 2, 4));
    CHECK(sampler_uniform(1, 2, 3) != sampler_uniform(1, 3, 3));
    CHECK(sampler_uniform(1, 2, 3) != sampler_uniform(2, 2, 3));
    sampler_seq_deinit(&a);
    sampler_seq_deinit(&b);
    sampler_seq_deinit(&c);
    sampler_scratch_deinit(&s);
}

TEST(uniform_is_in_range_and_balanced)
{
    double sum = 0;
    int lo = 0;
    for (uint64_t i = 0; i < 100000; i++) {
        double u = sampler_uniform(42, 0, i);
        CHECK(u >= 0 && u < 1);
        sum += u;
        lo += u < 0.1;
    }
    CHECK(fabs(sum / 100000 - 0.5) < 0.005); /* sd 0.0009 */
    CHECK(abs(lo - 10000) < 500);            /* sd 95 */
}

/* log_softmax in double, for the references */
static void ref_log_softmax(const float *l, size_t n, double *out)
{
    double m = -INFINITY, sum = 0;
    for (size_t i = 0; i < n; i++)
        m = l[i] > m ? l[i] : m;
    for (size_t i = 0; i < n; i++)
        sum += exp((double)l[i] - m);
    for (size_t i = 0; i < n; i++)
        out[i] = (double)l[i] - m - log(sum);
}

/* check_lp: lp against the double reference ref [n]: the token's value and rank, and the top
 * k as the k largest (ties to lower ids) found by brute force. */
static void check_lp(const struct sampler_logprobs *lp, const double *ref, size_t n, int k)
{
    CHECK(fabs(lp->logprob - ref[lp->token]) < 1e-5);
    int rank = 0;
    for (size_t i = 0; i < n; i++)
        rank += ref[i] >= ref[lp->token];
    CHECK_EQ(lp->rank, rank);
    CHECK_EQ(lp->n_top, k);
    size_t prev = (size_t)-1;
    for (int j = 0; j < k && j < lp->n_top; j++) {
        size_t best = (size_t)-1;
        for (size_t i = 0; i < n; i++) {
            int after_prev =
                prev == (size_t)-1 || ref[i] < ref[prev] || (ref[i] == ref[prev] && i > prev);
            if (after_prev && (best == (size_t)-1 || ref[i] > ref[best]))
                best = i;
        }
        CHECK_EQ(lp->top_ids[j], best);
        CHECK(fabs(lp->top_logprobs[j] - ref[best]) < 1e-5);
        prev = best;
    }
}

TEST(logprobs_are_raw_log_softmax)
{
    enum { V = 1000 };
    static float l[V], work[V];
    static double ref[V];
    rand_logits(l, V, 8);
    ref_log_softmax(l, V, ref);
    struct sampler_scratch s;
    REQUIRE(sampler_scratch_init(&s, V) == 0);
    int32_t bias_id = 17, prompt[2] = {3, 4};
    float bias = 50;
    struct sampling_params p = sampling_params_default();
    p.logprobs = 5;
    p.temperature = 0.3f;
    p.top_k = 10;
    p.repetition_penalty = 1.5f;
    p.logit_bias_ids = &bias_id;
    p.logit_bias_values = &bias;
    p.n_logit_bias = 1;
    struct sampler_seq seq;
    REQUIRE(sampler_seq_init(&seq, &p, 1, 0, prompt, 2, V) == 0);
    memcpy(work, l, sizeof work);
    int32_t t = -1;
    struct sampler_logprobs lp;
    REQUIRE(sampler_sample(&seq, work, NULL, 0, &s, &t, &lp) == 0);
    CHECK_EQ(t, 17); /* the bias decides the token, not the logprobs */
    CHECK_EQ(lp.token, 17);
    check_lp(&lp, ref, V, 5);
    sampler_seq_deinit(&seq);
    sampler_scratch_deinit(&s);
}

TEST(prompt_logprobs_match_reference)
{
    enum { V = 300, R = 4 };
    static float l[R * V];
    static double ref[V];
    rand_logits(l, R * V, 6);
    l[2 * V + 7] = l[2 * V + 9] = 20; /* a tie at the top of row 2 */
    int32_t targets[R] = {0, 299, 9, 150};
    struct sampler_logprobs out[R];
    struct sampler_scratch s;
    REQUIRE(sampler_scratch_init(&s, V) == 0);
    REQUIRE(sampler_prompt_logprobs(l, R, targets, 3, &s, out) == 0);
    for (int r = 0; r < R; r++) {
        ref_log_softmax(l + r * V, V, ref);
        CHECK_EQ(out[r].token, targets[r]);
        check_lp(&out[r], ref, V, 3);
    }
    CHECK_EQ(out[2].rank, 2);
    CHECK_EQ(sampler_prompt_logprobs(l, R, targets, 21, &s, out), ERR_INVAL);
    targets[1] = V;
    CHECK_EQ(sampler_prompt_logprobs(l, R, targets, 3, &s, out), ERR_INVAL);
    sampler_scratch_deinit(&s);
}

static int cmp_desc(const void *pa, const void *pb)
{
    const struct sampler_cand *a = pa, *b = pb;
    if (a->logit != b->logit)
        return a->logit > b->logit ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

TEST(select_top_matches_full_sort)
{
    enum { N = 3000 };
    static struct sampler_cand c[N], ref[N];
    size_t ks[] = {1, 2, 50, 1499, 2999};
    for (int rep = 0; rep < 10; rep++)
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
            for (int i = 0; i < N; i++) /* few distinct values: many ties */
                c[i] = (struct sampler_cand){(float)(int)(urand() * (rep ? 40 : 2)), i};
            memcpy(ref, c, sizeof c);
            qsort(ref, N, sizeof *ref, cmp_desc);
            sampler_select_top(c, N, ks[ki]);
            sampler_select_sort(c, ks[ki]);
            int same = 1;
            for (size_t i = 0; i < ks[ki]; i++)
                same &= c[i].id == ref[i].id;
            CHECK(same);
        }
}

TEST(select_heap_matches_full_sort)
{
    enum { N = 2000 };
    static float x[N];
    static struct sampler_cand h[N], ref[N];
    for (int rep = 0; rep < 10; rep++) {
        size_t n_ref = 0;
        for (int i = 0; i < N; i++) {
            x[i] = (float)(int)(urand() * (rep ? 60 : 3)) - 20; /* many ties */
            if (i % 7 == 0)
                x[i] = -INFINITY;
            if (x[i] >= -10 && x[i] > -INFINITY) /* thr -10 */
                ref[n_ref++] = (struct sampler_cand){x[i], i};
        }
        qsort(ref, n_ref, sizeof *ref, cmp_desc);
        size_t k = rep == 9 ? N : (size_t)(1 + rep * 37);
        size_t n = sampler_select_heap(x, N, -10, k, h);
        CHECK_EQ(n, k < n_ref ? k : n_ref);
        sampler_select_sort(h, n);
        int same = 1;
        for (size_t i = 0; i < n; i++)
            same &= h[i].id == ref[i].id;
        CHECK(same);
    }
}

TEST(select_top_p_matches_sorted_prefix)
{
    enum { N = 1500 };
    static struct sampler_cand c[N], ref[N];
    for (int rep = 0; rep < 20; rep++) {
        double z = 0;
        for (int i = 0; i < N; i++) {
            float w = (float)exp((urand() - 1) * (rep % 2 ? 12 : 2));
            c[i] = (struct sampler_cand){i % 5 == 0 ? 0.0f : w, i};
            z += c[i].logit;
        }
        memcpy(ref, c, sizeof c);
        qsort(ref, N, sizeof *ref, cmp_desc);
        double target = (0.05 + 0.9 * urand()) * z, before = 0;
        size_t want = 0;
        while (want < N && before < target)
            before += ref[want++].logit;
        size_t n = sampler_select_top_p(c, N, target);
        CHECK_EQ(n, want);
        sampler_select_sort(c, n);
        int same = 1;
        for (size_t i = 0; i < n && i < want; i++)
            same &= c[i].id == ref[i].id;
        CHECK(same);
    }
}

TEST(select_exp_matches_libm)
{
    enum { N = 10007 };
    static float x[N], w[N];
    for (int i = 0; i < N; i++)
        x[i] = (float)(-100 * urand());
    x[3] = -INFINITY;
    x[4] = 0;
    x[5] = -86.9f;
    sampler_select_exp(x, N, 0.5f, 2.0f, w); /* exp((x - 0.5) * 2) */
    double worst = 0;
    int zero_ok = 1;
    for (int i = 0; i < N; i++) {
        double t = (double)((x[i] - 0.5f) * 2.0f), e = exp(t); /* the same fp32 argument */
        if (t > -86.9)
            worst = fmax(worst, fabs(w[i] - e) / e);
        else if (t < -87.1)
            zero_ok &= w[i] == 0;
    }
    CHECK(worst < 1e-6);
    CHECK(zero_ok);
    CHECK(w[3] == 0);
}

/* top_k above the heap's limit takes the quickselect path: ids ranked by their logit, the
 * 1000 lowest of 3000 never drawn; with top_p 0.5 as well the nucleus of those 2000 is
 * found here in double. */
TEST(large_top_k_and_top_p_never_emit_excluded)
{
    enum { V = 3000 };
    static float l[V];
    static uint32_t counts[V];
    for (int i = 0; i < V; i++)
        l[(i * 7) % V] = -0.001f * (float)i; /* rank i at id 7i mod V */
    struct sampling_params p = sampling_params_default();
    p.top_k = 2000;
    histogram(&p, l, V, 20000, counts);
    uint32_t bad = 0;
    for (int i = 2000; i < V; i++)
        bad += counts[(i * 7) % V];
    CHECK_EQ(bad, 0);
    p.top_p = 0.5f;
    double z = 0, before = 0;
    for (int i = 0; i < 2000; i++)
        z += exp(-0.001 * i);
    int keep = 0;
    while (before < 0.5 * z)
        before += exp(-0.001 * keep++);
    histogram(&p, l, V, 20000, counts);
    bad = 0;
    for (int i = keep + 1; i < V; i++) /* keep: the boundary may round either way */
        bad += counts[(i * 7) % V];
    CHECK_EQ(bad, 0);
    CHECK(counts[((keep - 2) * 7) % V] > 0 || counts[((keep - 3) * 7) % V] > 0);
}

/* Qwen's vocabulary with top_p 0.9: every draw lies in the nucleus found by a full sort
 * here (the sampler itself sorts only chunks; bench_sampler times it). */
TEST(qwen_vocab_top_p)
{
    enum { V = 151936 };
    float *l = malloc(V * sizeof *l);
    struct sampler_cand *ref = malloc(V * sizeof *ref);
    REQUIRE(l && ref);
    rand_logits(l, V, 1);
    for (int i = 0; i < 400; i++)
        l[(size_t)i * 379] += 8; /* 400 likely tokens, a long tail */
    for (size_t i = 0; i < V; i++)
        ref[i] = (struct sampler_cand){l[i], (int32_t)i};
    qsort(ref, V, sizeof *ref, cmp_desc);
    double z = 0, cum = 0;
    for (size_t i = 0; i < V; i++)
        z += exp(ref[i].logit - ref[0].logit);
    size_t keep = 0;
    while (keep < V && cum < 0.9 * z)
        cum += exp(ref[keep++].logit - ref[0].logit);
    char *in = calloc(V, 1);
    REQUIRE(in);
    for (size_t i = 0; i + 1 < keep; i++) /* the boundary token may round either way */
        in[ref[i].id] = 1;
    in[ref[keep - 1].id] = 2;
    struct sampler_scratch s;
    REQUIRE(sampler_scratch_init(&s, V) == 0);
    struct sampling_params p = sampling_params_default();
    p.top_p = 0.9f;
    struct sampler_seq seq;
    REQUIRE(sampler_seq_init(&seq, &p, 1, 0, NULL, 0, V) == 0);
    int ok = 1, tail = 0; /* the nucleus' tail beyond the 400 holds ~4% of its mass */
    for (uint32_t pos = 0; pos < 500; pos++) {
        int32_t t = one_draw(&seq, &s, l, pos, NULL, 0);
        ok &= t >= 0 && in[t];
        tail += t >= 0 && t % 379 != 0;
    }
    CHECK(ok);
    CHECK(tail > 0);   /* ~19 expected */
    CHECK(keep > 300); /* a large nucleus */
    sampler_seq_deinit(&seq);
    sampler_scratch_deinit(&s);
    free(in);
    free(ref);
    free(l);
}

TEST(seq_rejects_bad_ids_and_overflow)
{
    struct sampling_params p = sampling_params_default();
    struct sampler_seq seq;
    int32_t bad = 10, prompt[1] = {10};
    p.stop_token_ids = &bad;
    p.n_stop_token_ids = 1;
    CHECK_EQ(sampler_seq_init(&seq, &p, 1, 0, NULL, 0, 10), ERR_INVAL);
    p.n_stop_token_ids = 0;
    CHECK_EQ(sampler_seq_init(&seq, &p, 1, 0, prompt, 1, 10), ERR_INVAL);
    p.presence_penalty = 1;
    p.max_tokens = 2;
    REQUIRE(sampler_seq_init(&seq, &p, 1, 0, NULL, 0, 10) == 0);
    CHECK_EQ(sampler_seq_append(&seq, 10), ERR_INVAL);
    CHECK_EQ(sampler_seq_append(&seq, 1), 0);
    CHECK_EQ(sampler_seq_append(&seq, 1), 0);
    CHECK_EQ(sampler_seq_append(&seq, 2), 0);
    CHECK_EQ(sampler_seq_append(&seq, 3), ERR_LIMIT); /* a third distinct id */
    CHECK_EQ(seq.n_generated, 4);
    sampler_seq_deinit(&seq);
}

/* A row and the same row off by rounding (as after a prefix-cache hit or in another batch)
 * must give the same token for almost every draw under top_k, top_p and min_p: survivors
 * are drawn in id order, not in the order the selection left them. */
TEST(regression_filtered_draw_ignores_rounding_of_the_row)
{
    enum { V = 512, DRAWS = 2000 };
    float a[V], b[V];
    for (int i = 0; i < V; i++) /* many exact ties among the likely ids, as untrained rows */
        a[i] = i < 120 ? 2.0f : i < 240 ? 1.0f + (float)i * 1e-3f : -3.0f + (float)urand();
    for (int i = 0; i < V; i++)
        b[i] = a[i] * (1.0f + (float)(urand() - 0.5) * 2e-6f);
    struct sampler_scratch s;
    REQUIRE(sampler_scratch_init(&s, V) == 0);
    struct sampling_params variants[3];
    for (int k = 0; k < 3; k++) {
        variants[k] = sampling_params_default();
        variants[k].has_seed = true;
        variants[k].seed = 7;
    }
    variants[0].top_k = 200;
    variants[1].top_p = 0.9f;
    variants[2].min_p = 0.2f;
    for (int k = 0; k < 3; k++) {
        struct sampler_seq q;
        REQUIRE(sampler_seq_init(&q, &variants[k], 0, 0, NULL, 0, V) == 0);
        int same = 0;
        for (uint32_t pos = 0; pos < DRAWS; pos++)
            same += one_draw(&q, &s, a, pos, NULL, 0) == one_draw(&q, &s, b, pos, NULL, 0);
        if (same < DRAWS - 10)
            TEST_FAIL_AT("variant %d: %d of %d draws agree", k, same, DRAWS);
        sampler_seq_deinit(&q);
    }
    sampler_scratch_deinit(&s);
}

TEST(all_masked_row_gives_lowest_id)
{
    float l[4] = {1, 2, 3, 4};
    int32_t eos[4] = {0, 1, 2, 3};
    struct sampler_scratch s;
    REQUIRE(sampler_scratch_init(&s, 4) == 0);
    struct sampling_params p = sampling_params_default();
    p.min_tokens = 1;
    p.top_p = 0.5f;
    struct sampler_seq seq;
    REQUIRE(sampler_seq_init(&seq, &p, 1, 0, NULL, 0, 4) == 0);
    CHECK_EQ(one_draw(&seq, &s, l, 0, eos, 4), 0);
    sampler_seq_deinit(&seq);
    sampler_scratch_deinit(&s);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
