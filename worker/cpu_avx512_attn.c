/*
 * cpu_avx512_attn: the CPU backend's AVX-512 attention (cpu_kernels_avx512.attend), compiled
 * for AVX-512F whatever the build's -march and only ever called after the CPU reported it.
 *
 * One call is one token and the query heads of one kv head (up to CPU_ATTN_MAX_HEADS). The
 * keys go by in chunks of up to 16 consecutive positions of one cache block, so a chunk's
 * keys for one dimension are one masked zmm load (the cache keeps keys transposed, see
 * kn_kv_key_index) that every head of the group multiplies: per dimension one load and NH
 * FMAs, where the AVX2 kernel loads the keys again for each head. Then, per head, the online
 * softmax update of the 16 scores at once, and the weighted sum of the chunk's values into
 * accumulators held in registers 32 dimensions at a time (NH x 2 vectors).
 */
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "worker/cpu_internal.h"

#define INLINE static inline __attribute__((always_inline))
#define MAX_HEAD_DIM 256

_Static_assert(CPU_ATTN_MAX_HEADS == 8, "cpu_avx512_attend has a case per group size");

/* exp16: e^x per lane, relative error ~2e-7; -inf and very negative x give 0 (the same
 * polynomial as the AVX2 kernel's exp8). */
INLINE __m512 exp16(__m512 x)
{
    __m512 lo = _mm512_set1_ps(-87.3f);
    __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(88.3f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_maskz_mov_ps((__mmask16)~under, _mm512_mul_ps(p, _mm512_castsi512_ps(e)));
}

void cpu_avx512_silu_mul(float *out, const float *g, const float *u, size_t dim)
{
    size_t d = 0;
    for (; d + 16 <= dim; d += 16) {
        __m512 x = _mm512_loadu_ps(g + d);
        __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
        __m512 s = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_storeu_ps(out + d, _mm512_mul_ps(s, _mm512_loadu_ps(u + d)));
    }
    for (; d < dim; d++)
        out[d] = g[d] / (1.0f + expf(-g[d])) * u[d];
}

/* chunk: keys [slot0, slot0 + nk) (nk <= 16, one cache block) of kv head g for NH heads:
 * q [NH][hd] (scaled), acc [NH][hd], running max mx and denominator den per head. */
INLINE void chunk(int NH, const struct kn_paged_kv *kv, size_t slot0, size_t nk, size_t g,
                  const float *q, float *acc, float *mx, float *den)
{
    size_t hd = kv->head_dim, bs = kv->block_size;
    const float *k0 = kv->k + kn_kv_key_index(kv, slot0, g, 0);
    const float *v0 = kv->v + kn_kv_value_index(kv, slot0, g);
    __mmask16 mk = (__mmask16)((1u << nk) - 1);
    __m512 s[CPU_ATTN_MAX_HEADS];
#pragma GCC unroll 8
    for (int h = 0; h < NH; h++)
        s[h] = _mm512_setzero_ps();
    for (size_t d = 0; d < hd; d++) {
        __m512 kd = _mm512_maskz_loadu_ps(mk, k0 + d * bs);
#pragma GCC unroll 8
        for (int h = 0; h < NH; h++)
            s[h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * hd + d]), kd, s[h]);
    }
    float p[CPU_ATTN_MAX_HEADS][16] __attribute__((aligned(64)));
    float corr[CPU_ATTN_MAX_HEADS];
    __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int h = 0; h < NH; h++) {
        __m512 sv = _mm512_mask_mov_ps(ninf, mk, s[h]);
        float m2 = _mm512_reduce_max_ps(sv);
        m2 = m2 > mx[h] ? m2 : mx[h];
        __m512 e = exp16(_mm512_sub_ps(sv, _mm512_set1_ps(m2)));
        _mm512_store_ps(p[h], e);
        corr[h] = mx[h] == -INFINITY ? 0.0f : expf(mx[h] - m2);
        den[h] = den[h] * corr[h] + _mm512_reduce_add_ps(e);
        mx[h] = m2;
    }
    size_t e = 0;
    for (; e + 32 <= hd; e += 32) {
        __m512 o[CPU_ATTN_MAX_HEADS][2];
#pragma GCC unroll 8
        for (int h = 0; h < NH; h++) {
            __m512 c = _mm512_set1_ps(corr[h]);
            o[h][0] = _mm512_mul_ps(_mm512_loadu_ps(acc + h * hd + e), c);
            o[h][1] = _mm512_mul_ps(_mm512_loadu_ps(acc + h * hd + e + 16), c);
        }
        for (size_t j = 0; j < nk; j++) {
            __m512 va = _mm512_loadu_ps(v0 + j * hd + e),
                   vb = _mm512_loadu_ps(v0 + j * hd + e + 16);
#pragma GCC unroll 8
            for (int h = 0; h < NH; h++) {
                __m512 w = _mm512_set1_ps(p[h][j]);
                o[h][0] = _mm512_fmadd_ps(w, va, o[h][0]);
                o[h][1] = _mm512_fmadd_ps(w, vb, o[h][1]);
            }
        }
#pragma GCC unroll 8
        for (int h = 0; h < NH; h++) {
            _mm512_storeu_ps(acc + h * hd + e, o[h][0]);
            _mm512_storeu_ps(acc + h * hd + e + 16, o[h][1]);
        }
    }
    if (e < hd) { /* hd % 32 == 16: the last 16 dimensions */
        __m512 o[CPU_ATTN_MAX_HEADS];
#pragma GCC unroll 8
        for (int h = 0; h < NH; h++)
            o[h] = _mm512_mul_ps(_mm512_loadu_ps(acc + h * hd + e), _mm512_set1_ps(corr[h]));
        for (size_t j = 0; j < nk; j++) {
            __m512 va = _mm512_loadu_ps(v0 + j * hd + e);
#pragma GCC unroll 8
            for (int h = 0; h < NH; h++)
                o[h] = _mm512_fmadd_ps(_mm512_set1_ps(p[h][j]), va, o[h]);
        }
#pragma GCC unroll 8
        for (int h = 0; h < NH; h++)
            _mm512_storeu_ps(acc + h * hd + e, o[h]);
    }
}

/* attend_nh: the whole attention of token i for NH heads from h0 (q copied and scaled). */
INLINE void attend_nh(int NH, const struct cpu_attn *a, size_t i, size_t h0)
{
    const struct kn_paged_kv *kv = a->kv;
    size_t hd = kv->head_dim, bs = kv->block_size;
    float q[CPU_ATTN_MAX_HEADS * MAX_HEAD_DIM] __attribute__((aligned(64)));
    float acc[CPU_ATTN_MAX_HEADS * MAX_HEAD_DIM] __attribute__((aligned(64)));
    float mx[CPU_ATTN_MAX_HEADS], den[CPU_ATTN_MAX_HEADS];
    __m512 sc = _mm512_set1_ps(a->scale);
    for (int h = 0; h < NH; h++) {
        const float *src = a->q + i * a->ldq + (h0 + (size_t)h) * hd;
        for (size_t e = 0; e < hd; e += 16)
            _mm512_store_ps(q + h * hd + e, _mm512_mul_ps(_mm512_loadu_ps(src + e), sc));
        mx[h] = -INFINITY;
        den[h] = 0;
    }
    memset(acc, 0, (size_t)NH * hd * sizeof *acc);
    size_t g = h0 / (a->n_heads / kv->n_kv_heads), p = (size_t)a->pos[i];
    const int32_t *table = a->block_tables + (size_t)a->seq_of[i] * a->max_blocks;
    for (size_t j = cpu_attn_first(a, p); j <= p;) {
        size_t end = (j / bs + 1) * bs;
        if (end > p + 1)
            end = p + 1;
        if (end > j + 16)
            end = j + 16;
        chunk(NH, kv, (size_t)table[j / bs] * bs + j % bs, end - j, g, q, acc, mx, den);
        j = end;
    }
    for (int h = 0; h < NH; h++) {
        float *o = a->out + i * a->ldo + (h0 + (size_t)h) * hd;
        __m512 inv = _mm512_set1_ps(1.0f / den[h]);
        for (size_t e = 0; e < hd; e += 16)
            _mm512_storeu_ps(o + e, _mm512_mul_ps(_mm512_load_ps(acc + h * hd + e), inv));
    }
}

void cpu_avx512_attend(const struct cpu_attn *a, size_t i, size_t h0, size_t h1)
{
    size_t hd = a->kv->head_dim;
    if (hd % 16 || hd > MAX_HEAD_DIM || h1 - h0 > CPU_ATTN_MAX_HEADS) {
        cpu_avx2_attend(a, i, h0, h1);
        return;
    }
    switch (h1 - h0) {
    case 1: attend_nh(1, a, i, h0); break;
    case 2: attend_nh(2, a, i, h0); break;
    case 3: attend_nh(3, a, i, h0); break;
    case 4: attend_nh(4, a, i, h0); break;
    case 5: attend_nh(5, a, i, h0); break;
    case 6: attend_nh(6, a, i, h0); break;
    case 7: attend_nh(7, a, i, h0); break;
    case 8: attend_nh(8, a, i, h0); break;
    default: break;
    }
}
