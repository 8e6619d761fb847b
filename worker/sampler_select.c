#include "worker/sampler_select.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* better: a comes before b: a larger logit, or the same logit and a smaller id. */
static inline int better(const struct sampler_cand *a, const struct sampler_cand *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static inline void swap_cand(struct sampler_cand *c, ptrdiff_t i, ptrdiff_t j)
{
    struct sampler_cand t = c[i];
    c[i] = c[j];
    c[j] = t;
}

/* median3: the median of c[lo], c[mid], c[hi] (by value), sorting those three in place. */
static struct sampler_cand median3(struct sampler_cand *c, ptrdiff_t lo, ptrdiff_t hi)
{
    ptrdiff_t mid = lo + (hi - lo) / 2;
    if (better(&c[mid], &c[lo]))
        swap_cand(c, lo, mid);
    if (better(&c[hi], &c[lo]))
        swap_cand(c, lo, hi);
    if (better(&c[hi], &c[mid]))
        swap_cand(c, mid, hi);
    return c[mid];
}

void sampler_select_top(struct sampler_cand *c, size_t n, size_t k)
{
    if (k == 0 || k >= n)
        return;
    /* Hoare's FIND with a median-of-three pivot: afterwards c[t] is the (t+1)-th best and
     * everything before it is better. The pivot is an element of [lo, hi], so both scans
     * stop inside the range. */
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, t = (ptrdiff_t)k - 1;
    while (lo < hi) {
        struct sampler_cand piv = median3(c, lo, hi);
        ptrdiff_t i = lo, j = hi;
        do {
            while (better(&c[i], &piv))
                i++;
            while (better(&piv, &c[j]))
                j--;
            if (i <= j) {
                swap_cand(c, i, j);
                i++;
                j--;
            }
        } while (i <= j);
        if (j < t)
            lo = i;
        if (t < i)
            hi = j;
    }
}

/* heap_push / heap_replace: a binary heap whose root h[0] is the worst candidate. */
static void heap_push(struct sampler_cand *h, size_t len, struct sampler_cand c)
{
    size_t i = len;
    while (i > 0 && better(&h[(i - 1) / 2], &c)) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static void heap_replace(struct sampler_cand *h, size_t len, struct sampler_cand c)
{
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, w = l;
        if (l >= len)
            break;
        if (l + 1 < len && better(&h[l], &h[l + 1]))
            w = l + 1;
        if (!better(&c, &h[w]))
            break;
        h[i] = h[w];
        i = w;
    }
    h[i] = c;
}

size_t sampler_select_heap(const float *x, size_t n, float thr, size_t k, struct sampler_cand *h)
{
    size_t len = 0;
    for (size_t i = 0; i < n && k > 0; i++) {
        float v = x[i];
        if (!(v >= thr) || v == -INFINITY)
            continue;
        struct sampler_cand c = {v, (int32_t)i};
        if (len < k)
            heap_push(h, len++, c);
        else if (v > h[0].logit) /* equal: c has the larger id, so it is worse */
            heap_replace(h, len, c);
    }
    return len;
}

static int cmp_cand(const void *pa, const void *pb)
{
    const struct sampler_cand *a = pa, *b = pb;
    return better(a, b) ? -1 : better(b, a) ? 1 : 0;
}

void sampler_select_sort(struct sampler_cand *c, size_t n)
{
    if (n > 1)
        qsort(c, n, sizeof *c, cmp_cand);
}

/* exp(t) for t <= 0: t = k ln2 + r with |r| <= ln2 / 2, e^r by its Taylor polynomial to r^6
 * (relative error < 2e-7), 2^k from the exponent bits; t <= -87 (-inf, NaN) gives 0. The
 * SSE2 path below does the same operations in the same order, so both give the same bits. */
#define EXP_LOG2E 1.44269504f
#define EXP_LN2_HI 0.693145752f
#define EXP_LN2_LO 1.42860677e-6f
#define EXP_ROUND 12582912.0f /* 1.5 * 2^23: adding and subtracting it rounds to an integer */

static inline float exp_one(float t0)
{
    float t = t0 > -87.0f ? t0 : -87.0f;
    float kf = (t * EXP_LOG2E + EXP_ROUND) - EXP_ROUND;
    float r = (t - kf * EXP_LN2_HI) - kf * EXP_LN2_LO;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union {
        int32_t i;
        float f;
    } two_k = {((int32_t)kf + 127) * (1 << 23)};
    return t0 > -87.0f ? p * two_k.f : 0.0f;
}

#ifdef __SSE2__
static inline __m128 exp_sse2(__m128 t0)
{
    __m128 lim = _mm_set1_ps(-87.0f), round = _mm_set1_ps(EXP_ROUND);
    __m128 live = _mm_cmpgt_ps(t0, lim);
    __m128 t = _mm_max_ps(t0, lim); /* NaN: lim */
    __m128 kf = _mm_sub_ps(_mm_add_ps(_mm_mul_ps(t, _mm_set1_ps(EXP_LOG2E)), round), round);
    __m128 r = _mm_sub_ps(_mm_sub_ps(t, _mm_mul_ps(kf, _mm_set1_ps(EXP_LN2_HI))),
                          _mm_mul_ps(kf, _mm_set1_ps(EXP_LN2_LO)));
    __m128 p = _mm_set1_ps(1.0f / 720);
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.0f / 120));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.0f / 24));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.0f / 6));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(0.5f));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.0f));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.0f));
    __m128i k = _mm_add_epi32(_mm_cvttps_epi32(kf), _mm_set1_epi32(127));
    __m128 two_k = _mm_castsi128_ps(_mm_slli_epi32(k, 23));
    return _mm_and_ps(_mm_mul_ps(p, two_k), live);
}
#endif

void sampler_select_exp(const float *x, size_t n, float m, float scale, float *w)
{
    size_t i = 0;
#ifdef __SSE2__
    __m128 vm = _mm_set1_ps(m), vs = _mm_set1_ps(scale);
    for (; i + 4 <= n; i += 4)
        _mm_storeu_ps(w + i, exp_sse2(_mm_mul_ps(_mm_sub_ps(_mm_loadu_ps(x + i), vm), vs)));
#endif
    for (; i < n; i++)
        w[i] = exp_one((x[i] - m) * scale);
}

size_t sampler_select_argmax(const float *x, size_t n)
{
    float m = -INFINITY;
    size_t i = 0;
#ifdef __SSE2__
    __m128 m0 = _mm_set1_ps(-INFINITY), m1 = m0;
    for (; i + 8 <= n; i += 8) {
        m0 = _mm_max_ps(m0, _mm_loadu_ps(x + i));
        m1 = _mm_max_ps(m1, _mm_loadu_ps(x + i + 4));
    }
    float lanes[4];
    _mm_storeu_ps(lanes, _mm_max_ps(m0, m1));
    for (int j = 0; j < 4; j++)
        m = lanes[j] > m ? lanes[j] : m;
#endif
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    i = 0;
#ifdef __SSE2__
    for (__m128 vm = _mm_set1_ps(m); i + 4 <= n; i += 4)
        if (_mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(x + i), vm)))
            break;
#endif
    for (; i < n; i++)
        if (x[i] == m)
            return i;
    return 0;
}

double sampler_select_sum(const float *w, size_t n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += w[i];
        s1 += w[i + 1];
        s2 += w[i + 2];
        s3 += w[i + 3];
    }
    for (; i < n; i++)
        s0 += w[i];
    return (s0 + s1) + (s2 + s3);
}

size_t sampler_select_top_p(struct sampler_cand *c, size_t n, double target)
{
    /* Hoare's FIND again, steered by mass instead of by index: before is the mass of
     * c[0..lo), all better than c[lo..hi], and stays < target; the boundary (the last
     * candidate whose preceding mass is < target) lies in c[lo..hi]. */
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1;
    double before = 0;
    while (lo < hi) {
        struct sampler_cand piv = median3(c, lo, hi);
        ptrdiff_t i = lo, j = hi;
        do {
            while (better(&c[i], &piv))
                i++;
            while (better(&piv, &c[j]))
                j--;
            if (i <= j) {
                swap_cand(c, i, j);
                i++;
                j--;
            }
        } while (i <= j);
        double left = 0;
        for (ptrdiff_t t = lo; t <= j; t++)
            left += c[t].logit;
        if (before + left >= target) {
            hi = j;
            continue;
        }
        before += left;
        if (j + 2 == i) { /* the pivot sits alone between the halves */
            before += c[j + 1].logit;
            if (before >= target)
                return (size_t)j + 2;
        }
        lo = i;
    }
    return (size_t)(lo <= hi ? lo : hi) + 1; /* lo > hi: rounding, keep through hi */
}

double sampler_select_lse(const float *logits, size_t n)
{
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++)
        m = logits[i] > m ? logits[i] : m;
    if (m == -INFINITY)
        return -INFINITY;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += expf(logits[i] - m);
    return (double)m + log(sum);
}

void sampler_select_logprobs(const float *logits, size_t vocab, double lse, int32_t token,
                             int32_t k, struct sampler_cand *cand, struct sampler_logprobs *lp)
{
    float x = logits[token];
    int32_t rank = 0;
    for (size_t i = 0; i < vocab; i++)
        rank += logits[i] >= x;
    lp->token = token;
    lp->logprob = (float)((double)x - lse);
    lp->rank = rank;
    lp->n_top = k;
    if (k <= 0)
        return;
    for (size_t i = 0; i < vocab; i++)
        cand[i] = (struct sampler_cand){logits[i], (int32_t)i};
    sampler_select_top(cand, vocab, (size_t)k);
    size_t kk = (size_t)k < vocab ? (size_t)k : vocab;
    sampler_select_sort(cand, kk);
    lp->n_top = (int32_t)kk;
    for (size_t i = 0; i < kk; i++) {
        lp->top_ids[i] = cand[i].id;
        lp->top_logprobs[i] = (float)((double)cand[i].logit - lse);
    }
}
