#include "worker/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "worker/sampler_select.h"

int sampler_scratch_init(struct sampler_scratch *s, size_t vocab)
{
    memset(s, 0, sizeof *s);
    if (vocab == 0 || vocab > INT32_MAX)
        return ERR_INVAL;
    s->cand = malloc(vocab * sizeof *s->cand);
    s->buf = malloc(vocab * sizeof *s->buf);
    s->raw = malloc(vocab * sizeof *s->raw);
    if (!s->cand || !s->buf || !s->raw) {
        sampler_scratch_deinit(s);
        return ERR_NOMEM;
    }
    s->vocab = vocab;
    return 0;
}

void sampler_scratch_deinit(struct sampler_scratch *s)
{
    free(s->cand);
    free(s->buf);
    free(s->raw);
    memset(s, 0, sizeof *s);
}

static int ids_valid(const int32_t *ids, size_t n, size_t vocab)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= vocab)
            return 0;
    return 1;
}

static int params_valid(const struct sampling_params *p, size_t vocab)
{
    if ((p->n_stop_token_ids && !p->stop_token_ids) ||
        (p->n_logit_bias && (!p->logit_bias_ids || !p->logit_bias_values)) ||
        (p->n_allowed_token_ids && !p->allowed_token_ids) || p->n_allowed_token_ids > vocab)
        return 0;
    if (p->logprobs > SAMPLING_MAX_LOGPROBS || p->max_tokens < 0 || p->min_tokens < 0)
        return 0;
    return ids_valid(p->stop_token_ids, p->n_stop_token_ids, vocab) &&
           ids_valid(p->logit_bias_ids, p->n_logit_bias, vocab) &&
           ids_valid(p->allowed_token_ids, p->n_allowed_token_ids, vocab);
}

/* count_find: the count entry of id, inserting a zeroed one when absent; NULL when full. */
static struct sampler_count *count_find(struct sampler_seq *seq, int32_t id)
{
    uint32_t bits = 0;
    while ((1u << bits) < seq->n_slots)
        bits++;
    uint32_t mask = seq->n_slots - 1;
    uint32_t h = bits ? ((uint32_t)id * 0x9E3779B1u) >> (32 - bits) : 0;
    for (;; h = (h + 1) & mask) {
        int32_t e = seq->slots[h];
        if (e >= 0 && seq->counts[e].id == id)
            return &seq->counts[e];
        if (e < 0)
            break;
    }
    if (seq->n_counts == seq->max_counts)
        return NULL;
    seq->slots[h] = (int32_t)seq->n_counts;
    struct sampler_count *c = &seq->counts[seq->n_counts++];
    *c = (struct sampler_count){.id = id};
    return c;
}

/* counts_alloc: sizes the map for max distinct ids, slots a power of two >= 2 * max. */
static int counts_alloc(struct sampler_seq *seq, size_t max)
{
    size_t n_slots = 2;
    while (n_slots < 2 * max)
        n_slots *= 2;
    seq->counts = malloc(max * sizeof *seq->counts);
    seq->slots = malloc(n_slots * sizeof *seq->slots);
    if (!seq->counts || !seq->slots)
        return ERR_NOMEM;
    memset(seq->slots, 0xff, n_slots * sizeof *seq->slots);
    seq->max_counts = (uint32_t)max;
    seq->n_slots = (uint32_t)n_slots;
    return 0;
}

int sampler_seq_init(struct sampler_seq *seq, const struct sampling_params *params,
                     uint64_t engine_seed, uint32_t choice, const int32_t *prompt, size_t n_prompt,
                     size_t vocab)
{
    memset(seq, 0, sizeof *seq);
    if (vocab == 0 || vocab > INT32_MAX || !params_valid(params, vocab) || (n_prompt && !prompt) ||
        !ids_valid(prompt, n_prompt, vocab))
        return ERR_INVAL;
    seq->params = *params;
    seq->seed = params->has_seed ? params->seed : engine_seed;
    seq->choice = choice;
    seq->vocab = vocab;
    int rep = params->repetition_penalty != 1.0f;
    if (!rep && params->presence_penalty == 0.0f && params->frequency_penalty == 0.0f)
        return 0;
    size_t max = (rep ? n_prompt : 0) + (size_t)params->max_tokens;
    max = max < vocab ? max : vocab;
    max = max ? max : 1;
    int rc = counts_alloc(seq, max);
    if (rc < 0)
        goto fail_alloc;
    for (size_t i = 0; rep && i < n_prompt; i++)
        count_find(seq, prompt[i])->in_prompt = 1; /* never full: at most min(n, vocab) */
    return 0;
fail_alloc:
    sampler_seq_deinit(seq);
    return rc;
}

void sampler_seq_deinit(struct sampler_seq *seq)
{
    free(seq->counts);
    free(seq->slots);
    memset(seq, 0, sizeof *seq);
}

int sampler_seq_append(struct sampler_seq *seq, int32_t token)
{
    if (token < 0 || (size_t)token >= seq->vocab)
        return ERR_INVAL;
    seq->n_generated++;
    if (!seq->slots)
        return 0;
    struct sampler_count *c = count_find(seq, token);
    if (!c)
        return ERR_LIMIT;
    c->n_output++;
    return 0;
}

/* mix64: splitmix64's finaliser, a bijective avalanche of 64 bits. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double sampler_uniform(uint64_t seed, uint32_t choice, uint64_t position)
{
    uint64_t h = mix64(seed + 0x9e3779b97f4a7c15ull);
    h = mix64(h ^ ((uint64_t)choice + 0x632be59bd9b4e019ull));
    h = mix64(h ^ (position * 0xd6e8feb86659fd93ull + 0x8cb92ba72f3d8dd7ull));
    return (double)(h >> 11) * 0x1p-53;
}

static void mask_allowed(const struct sampling_params *p, float *logits, size_t vocab,
                         struct sampler_cand *save)
{
    for (uint32_t i = 0; i < p->n_allowed_token_ids; i++) {
        int32_t id = p->allowed_token_ids[i];
        save[i] = (struct sampler_cand){logits[id], id};
    }
    for (size_t i = 0; i < vocab; i++)
        logits[i] = -INFINITY;
    for (uint32_t i = 0; i < p->n_allowed_token_ids; i++)
        logits[save[i].id] = save[i].logit;
}

static void apply_penalties(const struct sampler_seq *seq, float *logits)
{
    const struct sampling_params *p = &seq->params;
    float rep = p->repetition_penalty, freq = p->frequency_penalty, pres = p->presence_penalty;
    for (uint32_t i = 0; i < seq->n_counts; i++) {
        const struct sampler_count *c = &seq->counts[i];
        float *l = &logits[c->id];
        if (c->in_prompt || c->n_output)
            *l = *l > 0 ? *l / rep : *l * rep;
        if (c->n_output) {
            *l -= freq * (float)c->n_output;
            *l -= pres;
        }
    }
}

void sampler_process_logits(const struct sampler_seq *seq, float *logits, const int32_t *eos_ids,
                            size_t n_eos, struct sampler_scratch *s)
{
    const struct sampling_params *p = &seq->params;
    if (p->n_allowed_token_ids)
        mask_allowed(p, logits, seq->vocab, s->cand);
    for (uint32_t i = 0; i < p->n_logit_bias; i++)
        logits[p->logit_bias_ids[i]] += p->logit_bias_values[i];
    if ((int64_t)seq->n_generated < (int64_t)p->min_tokens) {
        for (size_t i = 0; i < n_eos; i++)
            if (eos_ids[i] >= 0 && (size_t)eos_ids[i] < seq->vocab)
                logits[eos_ids[i]] = -INFINITY;
        for (uint32_t i = 0; i < p->n_stop_token_ids; i++)
            logits[p->stop_token_ids[i]] = -INFINITY;
    }
    if (seq->slots)
        apply_penalties(seq, logits);
}

/* draw_weights: inverse-CDF draw of an index of w [n] (n >= 1, sum > 0) with u in [0, 1). */
static size_t draw_weights(const float *w, size_t n, double u)
{
    /* whole blocks of 64 are skipped by their sums (short dependency chains), then the
     * block that holds the target is scanned one weight at a time */
    double target = u * sampler_select_sum(w, n), acc = 0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        double block = sampler_select_sum(w + i, 64);
        if (acc + block > target)
            break;
        acc += block;
    }
    for (; i < n; i++) {
        acc += w[i];
        if (acc > target)
            return i;
    }
    size_t last = n - 1; /* rounding: the last index with weight */
    while (last > 0 && w[last] == 0)
        last--;
    return last;
}

static int cmp_cand_id(const void *a, const void *b)
{
    int32_t x = ((const struct sampler_cand *)a)->id, y = ((const struct sampler_cand *)b)->id;
    return (x > y) - (x < y);
}

#define SORT_MAX_N 1024 /* survivors up to this are sorted by id; more are scattered */

/* draw_in_id_order: the draw among the n survivors c (weights in .logit) in ascending id
 * order. The selections leave survivors in an order that depends on how their values
 * compare, so two rows that differ only by rounding (the same sequence computed in another
 * batch, or after a prefix-cache hit) could order them differently and, with the same u,
 * pick far apart tokens. In id order only the weights matter: a draw flips only when u
 * falls within rounding of a boundary. Survivors are sorted (n log n, n small) or scattered
 * into a dense row (one O(vocab) pass, as the gather was). */
static int32_t draw_in_id_order(struct sampler_cand *c, size_t n, size_t vocab, double u,
                                struct sampler_scratch *s)
{
    if (n <= SORT_MAX_N) {
        qsort(c, n, sizeof *c, cmp_cand_id);
        for (size_t i = 0; i < n; i++)
            s->buf[i] = c[i].logit;
        return c[draw_weights(s->buf, n, u)].id;
    }
    memset(s->buf, 0, vocab * sizeof *s->buf);
    for (size_t i = 0; i < n; i++)
        s->buf[c[i].id] = c[i].logit;
    return (int32_t)draw_weights(s->buf, vocab, u);
}

#define HEAP_MAX_K 1024 /* top_k up to this uses the bounded heap, above it quickselect */

/* gather_top_k: the top_k best ids passing min_p's threshold thr into s->cand with their
 * weights e^((logit - m) * inv_t) in .logit; returns how many. */
static size_t gather_top_k(const float *logits, size_t vocab, float thr, size_t k, float m,
                           float inv_t, struct sampler_scratch *s)
{
    struct sampler_cand *c = s->cand;
    size_t n = sampler_select_heap(logits, vocab, thr, k, c);
    for (size_t i = 0; i < n; i++)
        s->buf[i] = c[i].logit;
    sampler_select_exp(s->buf, n, m, inv_t, s->buf);
    for (size_t i = 0; i < n; i++)
        c[i].logit = s->buf[i];
    return n;
}

/* gather_all: every id passing thr with its weight into s->cand. With top_p alone (prune),
 * also drops ids that top_p must exclude for certain: weight <= (1 - top_p) Z / vocab (all
 * the ids at or below it weigh at most (1 - top_p) Z together), and sets *z to Z, the mass
 * over thr; otherwise *z is left alone. Returns how many. */
static size_t gather_all(const struct sampling_params *p, const float *logits, size_t vocab,
                         float thr, float m, int prune, double *z, struct sampler_scratch *s)
{
    float *w = s->buf, floor = 0;
    sampler_select_exp(logits, vocab, m, 1.0f / p->temperature, w);
    if (prune) {
        if (thr > -INFINITY) {
            *z = 0;
            for (size_t i = 0; i < vocab; i++)
                *z += logits[i] >= thr ? w[i] : 0;
        } else {
            *z = sampler_select_sum(w, vocab);
        }
        floor = (float)((1.0 - (double)p->top_p) * *z / (double)vocab);
    }
    size_t n = 0;
    for (size_t i = 0; i < vocab; i++)
        if (w[i] > floor && logits[i] >= thr)
            s->cand[n++] = (struct sampler_cand){w[i], (int32_t)i};
    return n;
}

/* draw_filtered: min_p, top_k, top_p, then the draw; m is the row's (finite) max. From the
 * gather on, candidates carry their weight e^((logit - m) / T), ordered like the logits. */
static int32_t draw_filtered(const struct sampling_params *p, const float *logits, size_t vocab,
                             float m, double u, struct sampler_scratch *s)
{
    float thr = p->min_p > 0 ? m + p->temperature * logf(p->min_p) : -INFINITY;
    struct sampler_cand *c = s->cand;
    size_t n, k = p->top_k > 0 && (size_t)p->top_k < vocab ? (size_t)p->top_k : 0;
    double z = -1;
    if (k && k <= HEAP_MAX_K) {
        n = gather_top_k(logits, vocab, thr, k, m, 1.0f / p->temperature, s);
    } else {
        n = gather_all(p, logits, vocab, thr, m, !k && p->top_p < 1.0f, &z, s);
        if (k && k < n) {
            sampler_select_top(c, n, k);
            n = k;
        }
    }
    if (n == 0) /* only with NaN logits: the row's max always passes */
        return -1;
    if (p->top_p < 1.0f) {
        if (z < 0) { /* Z over the top_k survivors; gather_all gave it otherwise */
            for (size_t i = 0; i < n; i++)
                s->buf[i] = c[i].logit;
            z = sampler_select_sum(s->buf, n);
        }
        n = sampler_select_top_p(c, n, (double)p->top_p * z);
    }
    return draw_in_id_order(c, n, vocab, u, s);
}

int sampler_sample(const struct sampler_seq *seq, float *logits, const int32_t *eos_ids,
                   size_t n_eos, struct sampler_scratch *s, int32_t *token,
                   struct sampler_logprobs *lp)
{
    const struct sampling_params *p = &seq->params;
    size_t vocab = s->vocab;
    if (seq->vocab != vocab || vocab == 0)
        return ERR_INVAL;
    int want_lp = lp && p->logprobs >= 0;
    if (want_lp)
        memcpy(s->raw, logits, vocab * sizeof *logits);
    sampler_process_logits(seq, logits, eos_ids, n_eos, s);
    size_t best = sampler_select_argmax(logits, vocab);
    float m = logits[best];
    int32_t tok = (int32_t)best;
    if (p->temperature >= SAMPLER_GREEDY_EPS && m > -INFINITY) {
        double u = sampler_uniform(seq->seed, seq->choice, seq->n_generated);
        int filtered =
            (p->top_k > 0 && (size_t)p->top_k < vocab) || p->top_p < 1.0f || p->min_p > 0;
        if (filtered) {
            tok = draw_filtered(p, logits, vocab, m, u, s);
            tok = tok < 0 ? (int32_t)best : tok;
        } else {
            sampler_select_exp(logits, vocab, m, 1.0f / p->temperature, s->buf);
            tok = (int32_t)draw_weights(s->buf, vocab, u);
        }
    }
    *token = tok;
    if (want_lp)
        sampler_select_logprobs(s->raw, vocab, sampler_select_lse(s->raw, vocab), tok, p->logprobs,
                                s->cand, lp);
    return 0;
}

int sampler_prompt_logprobs(const float *logits, size_t n_rows, const int32_t *targets, int32_t k,
                            struct sampler_scratch *s, struct sampler_logprobs *out)
{
    size_t vocab = s->vocab;
    if (k < 0 || k > SAMPLING_MAX_LOGPROBS || vocab == 0 || (n_rows && (!logits || !targets)))
        return ERR_INVAL;
    if (!ids_valid(targets, n_rows, vocab))
        return ERR_INVAL;
    for (size_t r = 0; r < n_rows; r++) {
        const float *row = logits + r * vocab;
        sampler_select_logprobs(row, vocab, sampler_select_lse(row, vocab), targets[r], k, s->cand,
                                &out[r]);
    }
    return 0;
}
