/*
 * cpu_avx2: the CPU backend's AVX2/FMA/F16C kernels, compiled for those extensions whatever
 * the build's -march and only ever called after the CPU reported them (backend_cpu.c).
 *
 * matmul: up to CPU_MATVEC_MAX_N tokens it streams each weight panel once, widening bf16/f16
 * in registers, with two column streams per token for FMA latency (decode is bound by memory
 * bandwidth). Beyond, a blocked GEMM: per block of CPU_MC tokens and CPU_KC columns, each
 * panel slice is widened once into an L1-resident fp32 buffer and swept by a 6x16 register
 * micro-kernel (12 accumulators) over the tokens, whose block of x stays in L2.
 */
#pragma GCC target("avx2,fma,f16c")

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "worker/cpu_internal.h"

#define INLINE static inline __attribute__((always_inline))

#ifndef CPU_PREFETCH_COLS
#define CPU_PREFETCH_COLS 64 /* matvec: prefetch this many columns ahead in a panel */
#endif

/* load16: column c of panel pp as two fp32 vectors (rows 0-7, rows 8-15). */
INLINE void load16(enum kn_dtype dt, const void *pp, size_t c, __m256 *lo, __m256 *hi)
{
    if (dt == KN_BF16) {
        __m256i v = _mm256_loadu_si256((const __m256i *)((const uint16_t *)pp + c * 16));
        *lo = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
        *hi = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
    } else if (dt == KN_F16) {
        const uint16_t *h = (const uint16_t *)pp + c * 16;
        *lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
        *hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + 8)));
    } else {
        const float *f = (const float *)pp + c * 16;
        *lo = _mm256_loadu_ps(f);
        *hi = _mm256_loadu_ps(f + 8);
    }
}

/* store16: out[0..16) = acc (+ bias) (+ out when accumulating). */
INLINE void store16(float *o, __m256 lo, __m256 hi, const float *bias, int accumulate)
{
    if (bias) {
        lo = _mm256_add_ps(lo, _mm256_loadu_ps(bias));
        hi = _mm256_add_ps(hi, _mm256_loadu_ps(bias + 8));
    }
    if (accumulate) {
        lo = _mm256_add_ps(lo, _mm256_loadu_ps(o));
        hi = _mm256_add_ps(hi, _mm256_loadu_ps(o + 8));
    }
    _mm256_storeu_ps(o, lo);
    _mm256_storeu_ps(o + 8, hi);
}

/* matvec_panel: M tokens (M <= 4) against one whole panel; U column streams (1 or 2). */
INLINE void matvec_panel(enum kn_dtype dt, int M, int U, const struct cpu_mm *m, size_t p)
{
    const struct backend_mat *w = m->w;
    const char *pp = (const char *)w->data + p * w->cols * 16 * cpu_dtype_size(dt);
    __m256 a[2][4][2];
#pragma GCC unroll 8
    for (int u = 0; u < 2; u++) {
#pragma GCC unroll 8
        for (int t = 0; t < 4; t++)
            a[u][t][0] = a[u][t][1] = _mm256_setzero_ps();
    }
    size_t c = 0, cols = w->cols;
    if (U == 2)
        for (; c + 2 <= cols; c += 2) {
            _mm_prefetch((const char *)pp + (c + CPU_PREFETCH_COLS) * 16 * cpu_dtype_size(dt),
                         _MM_HINT_T0);
            __m256 w0l, w0h, w1l, w1h;
            load16(dt, pp, c, &w0l, &w0h);
            load16(dt, pp, c + 1, &w1l, &w1h);
#pragma GCC unroll 8
            for (int t = 0; t < M; t++) {
                __m256 b0 = _mm256_broadcast_ss(m->x + t * m->ldx + c);
                __m256 b1 = _mm256_broadcast_ss(m->x + t * m->ldx + c + 1);
                a[0][t][0] = _mm256_fmadd_ps(b0, w0l, a[0][t][0]);
                a[0][t][1] = _mm256_fmadd_ps(b0, w0h, a[0][t][1]);
                a[1][t][0] = _mm256_fmadd_ps(b1, w1l, a[1][t][0]);
                a[1][t][1] = _mm256_fmadd_ps(b1, w1h, a[1][t][1]);
            }
        }
    for (; c < cols; c++) {
        if ((c & 1) == 0)
            _mm_prefetch((const char *)pp + (c + CPU_PREFETCH_COLS) * 16 * cpu_dtype_size(dt),
                         _MM_HINT_T0);
        __m256 wl, wh;
        load16(dt, pp, c, &wl, &wh);
#pragma GCC unroll 8
        for (int t = 0; t < M; t++) {
            __m256 b = _mm256_broadcast_ss(m->x + t * m->ldx + c);
            a[0][t][0] = _mm256_fmadd_ps(b, wl, a[0][t][0]);
            a[0][t][1] = _mm256_fmadd_ps(b, wh, a[0][t][1]);
        }
    }
    const float *bias = w->bias ? w->bias + p * 16 : NULL;
#pragma GCC unroll 8
    for (int t = 0; t < M; t++)
        store16(m->out + t * m->ldo + p * 16, _mm256_add_ps(a[0][t][0], a[1][t][0]),
                _mm256_add_ps(a[0][t][1], a[1][t][1]), bias, m->accumulate);
}

/* ukernel: c[M][16] = start + xp[kc][6] . buf[kc][16], start being c when load_c, else 0,
 * plus bias when given. buf: fp32 [kc][16]; xp: a packed tile of x, 6 values per column
 * (rows beyond M unused). */
INLINE void ukernel(int M, const float *buf, size_t kc, const float *xp, float *c, size_t ldc,
                    int load_c, const float *bias)
{
    __m256 a[6][2];
#pragma GCC unroll 8
    for (int t = 0; t < M; t++) {
        a[t][0] = load_c ? _mm256_loadu_ps(c + t * ldc) : _mm256_setzero_ps();
        a[t][1] = load_c ? _mm256_loadu_ps(c + t * ldc + 8) : _mm256_setzero_ps();
    }
    for (size_t k = 0; k < kc; k++) {
        __m256 w0 = _mm256_load_ps(buf + k * 16), w1 = _mm256_load_ps(buf + k * 16 + 8);
#pragma GCC unroll 8
        for (int t = 0; t < M; t++) {
            __m256 b = _mm256_broadcast_ss(xp + k * 6 + t);
            a[t][0] = _mm256_fmadd_ps(b, w0, a[t][0]);
            a[t][1] = _mm256_fmadd_ps(b, w1, a[t][1]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < M; t++)
        store16(c + t * ldc, a[t][0], a[t][1], bias, 0);
}

/* ukernel6: ukernel for M = 6 with every accumulator a named variable, which is what keeps
 * GCC from spilling one of the 15 live vectors to the stack. */
INLINE void ukernel6(const float *buf, size_t kc, const float *xp, float *c, size_t ldc, int load_c,
                     const float *bias)
{
    __m256 a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51;
    if (load_c) {
        a00 = _mm256_loadu_ps(c), a01 = _mm256_loadu_ps(c + 8);
        a10 = _mm256_loadu_ps(c + ldc), a11 = _mm256_loadu_ps(c + ldc + 8);
        a20 = _mm256_loadu_ps(c + 2 * ldc), a21 = _mm256_loadu_ps(c + 2 * ldc + 8);
        a30 = _mm256_loadu_ps(c + 3 * ldc), a31 = _mm256_loadu_ps(c + 3 * ldc + 8);
        a40 = _mm256_loadu_ps(c + 4 * ldc), a41 = _mm256_loadu_ps(c + 4 * ldc + 8);
        a50 = _mm256_loadu_ps(c + 5 * ldc), a51 = _mm256_loadu_ps(c + 5 * ldc + 8);
    } else {
        a00 = a01 = a10 = a11 = a20 = a21 = _mm256_setzero_ps();
        a30 = a31 = a40 = a41 = a50 = a51 = _mm256_setzero_ps();
    }
    for (size_t k = 0; k < kc; k++, buf += 16, xp += 6) {
        __m256 w0 = _mm256_load_ps(buf), w1 = _mm256_load_ps(buf + 8), b;
        b = _mm256_broadcast_ss(xp);
        a00 = _mm256_fmadd_ps(b, w0, a00), a01 = _mm256_fmadd_ps(b, w1, a01);
        b = _mm256_broadcast_ss(xp + 1);
        a10 = _mm256_fmadd_ps(b, w0, a10), a11 = _mm256_fmadd_ps(b, w1, a11);
        b = _mm256_broadcast_ss(xp + 2);
        a20 = _mm256_fmadd_ps(b, w0, a20), a21 = _mm256_fmadd_ps(b, w1, a21);
        b = _mm256_broadcast_ss(xp + 3);
        a30 = _mm256_fmadd_ps(b, w0, a30), a31 = _mm256_fmadd_ps(b, w1, a31);
        b = _mm256_broadcast_ss(xp + 4);
        a40 = _mm256_fmadd_ps(b, w0, a40), a41 = _mm256_fmadd_ps(b, w1, a41);
        b = _mm256_broadcast_ss(xp + 5);
        a50 = _mm256_fmadd_ps(b, w0, a50), a51 = _mm256_fmadd_ps(b, w1, a51);
    }
    store16(c, a00, a01, bias, 0);
    store16(c + ldc, a10, a11, bias, 0);
    store16(c + 2 * ldc, a20, a21, bias, 0);
    store16(c + 3 * ldc, a30, a31, bias, 0);
    store16(c + 4 * ldc, a40, a41, bias, 0);
    store16(c + 5 * ldc, a50, a51, bias, 0);
}

/* pack_x: rows [i0, i0+mc) and columns [k0, k0+kc) of x as tiles of 6 rows, each
 * [kc][6] (the micro-kernel reads one contiguous stream, whatever x's row stride). */
static void pack_x(const struct cpu_mm *m, size_t i0, size_t mc, size_t k0, size_t kc, float *xp)
{
    for (size_t t = 0; t < mc; t += 6) {
        size_t rows = mc - t < 6 ? mc - t : 6;
        float *tile = xp + t * kc;
        for (size_t r = 0; r < rows; r++) {
            const float *src = m->x + (i0 + t + r) * m->ldx + k0;
            for (size_t k = 0; k < kc; k++)
                tile[k * 6 + r] = src[k];
        }
    }
}

/* widen_slice: columns [k0, k0+kc) of panel pp into buf as fp32 [kc][16], rows in order.
 * bf16 is widened with shifts only: a mask constant would stay live in a register across
 * the whole GEMM and push one of the micro-kernel's 15 vectors onto the stack. */
INLINE void widen_slice(enum kn_dtype dt, const void *pp, size_t k0, size_t kc, float *buf)
{
    for (size_t k = 0; k < kc; k++) {
        __m256 lo, hi;
        if (dt == KN_BF16) {
            __m256i v = _mm256_loadu_si256((const __m256i *)((const uint16_t *)pp + (k0 + k) * 16));
            lo = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
            hi = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_srli_epi32(v, 16), 16));
        } else {
            load16(dt, pp, k0 + k, &lo, &hi);
        }
        _mm256_store_ps(buf + k * 16, lo);
        _mm256_store_ps(buf + k * 16 + 8, hi);
    }
}

INLINE void gemm(enum kn_dtype dt, const struct cpu_mm *m, size_t p0, size_t p1, float *scratch)
{
    const struct backend_mat *w = m->w;
    size_t esz = cpu_dtype_size(dt), cols = w->cols;
    float *xp = scratch + CPU_KC * 16;
    for (size_t i0 = 0; i0 < m->n; i0 += CPU_MC) {
        size_t mc = m->n - i0 < CPU_MC ? m->n - i0 : CPU_MC;
        for (size_t k0 = 0; k0 < cols; k0 += CPU_KC) {
            size_t kc = cols - k0 < CPU_KC ? cols - k0 : CPU_KC;
            int first = k0 == 0;
            pack_x(m, i0, mc, k0, kc, xp);
            for (size_t p = p0; p < p1; p++) {
                const char *pp = (const char *)w->data + p * cols * 16 * esz;
                widen_slice(dt, pp, k0, kc, scratch);
                const float *bias = first && w->bias ? w->bias + p * 16 : NULL;
                int load_c = !first || m->accumulate;
                for (size_t t = 0; t < mc; t += 6) {
                    const float *x = xp + t * kc;
                    float *c = m->out + (i0 + t) * m->ldo + p * 16;
                    switch (mc - t < 6 ? mc - t : 6) {
                    case 1: ukernel(1, scratch, kc, x, c, m->ldo, load_c, bias); break;
                    case 2: ukernel(2, scratch, kc, x, c, m->ldo, load_c, bias); break;
                    case 3: ukernel(3, scratch, kc, x, c, m->ldo, load_c, bias); break;
                    case 4: ukernel(4, scratch, kc, x, c, m->ldo, load_c, bias); break;
                    case 5: ukernel(5, scratch, kc, x, c, m->ldo, load_c, bias); break;
                    default: ukernel6(scratch, kc, x, c, m->ldo, load_c, bias); break;
                    }
                }
            }
        }
    }
}

INLINE void matmul_dt(enum kn_dtype dt, const struct cpu_mm *m, size_t p0, size_t p1,
                      float *scratch)
{
    if (m->n > CPU_MATVEC_MAX_N) {
        gemm(dt, m, p0, p1, scratch);
        return;
    }
    for (size_t p = p0; p < p1; p++)
        switch (m->n) {
        case 1: matvec_panel(dt, 1, 2, m, p); break;
        case 2: matvec_panel(dt, 2, 2, m, p); break;
        case 3: matvec_panel(dt, 3, 1, m, p); break;
        case 4: matvec_panel(dt, 4, 1, m, p); break;
        default: break;
        }
}

static void avx2_matmul(const struct cpu_mm *m, size_t p0, size_t p1, float *scratch)
{
    switch (m->w->dtype) {
    case KN_BF16: matmul_dt(KN_BF16, m, p0, p1, scratch); break;
    case KN_F16: matmul_dt(KN_F16, m, p0, p1, scratch); break;
    case KN_F32: matmul_dt(KN_F32, m, p0, p1, scratch); break;
    }
}

/* exp8: e^x per lane, relative error ~2e-7; -inf and very negative x give 0. */
INLINE __m256 exp8(__m256 x)
{
    __m256 lo = _mm256_set1_ps(-87.3f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE float hmax8(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* lane_mask: lanes [0, n) of an 8-lane vector set (n may be <= 0 or >= 8). */
INLINE __m256i lane_mask(long n)
{
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n < 0 ? 0 : n > 8 ? 8 : n)), idx);
}

/* attend_chunk: nk <= 16 consecutive keys from slot0 (one cache block) for heads [0, nh) of
 * q: scores by one masked 16-key load per dimension of the transposed keys, then the online
 * softmax update and the weighted sum of the values. */
INLINE void attend_chunk(const struct kn_paged_kv *kv, size_t slot0, size_t nk, size_t g, size_t nh,
                         const float *q, float *acc, float *mx, float *den)
{
    size_t hd = kv->head_dim, bs = kv->block_size;
    const float *k0 = kv->k + kn_kv_key_index(kv, slot0, g, 0);
    const float *v0 = kv->v + kn_kv_value_index(kv, slot0, g);
    __m256i m0 = lane_mask((long)nk), m1 = lane_mask((long)nk - 8);
    __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (size_t h = 0; h < nh; h++) {
        const float *qh = q + h * hd;
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        for (size_t d = 0; d < hd; d++) {
            __m256 qd = _mm256_broadcast_ss(qh + d);
            s0 = _mm256_fmadd_ps(qd, _mm256_maskload_ps(k0 + d * bs, m0), s0);
            s1 = _mm256_fmadd_ps(qd, _mm256_maskload_ps(k0 + d * bs + 8, m1), s1);
        }
        s0 = _mm256_blendv_ps(ninf, s0, _mm256_castsi256_ps(m0));
        s1 = _mm256_blendv_ps(ninf, s1, _mm256_castsi256_ps(m1));
        float m2 = hmax8(_mm256_max_ps(s0, s1));
        m2 = m2 > mx[h] ? m2 : mx[h];
        __m256 mv = _mm256_set1_ps(m2);
        float p[16] __attribute__((aligned(32)));
        __m256 e0 = exp8(_mm256_sub_ps(s0, mv)), e1 = exp8(_mm256_sub_ps(s1, mv));
        _mm256_store_ps(p, e0);
        _mm256_store_ps(p + 8, e1);
        float corr = mx[h] == -INFINITY ? 0.0f : expf(mx[h] - m2);
        den[h] = den[h] * corr + hsum8(_mm256_add_ps(e0, e1));
        mx[h] = m2;
        float *ah = acc + h * hd;
        __m256 cv = _mm256_set1_ps(corr);
        for (size_t e = 0; e < hd; e += 8) {
            __m256 o = _mm256_mul_ps(_mm256_loadu_ps(ah + e), cv);
            for (size_t j = 0; j < nk; j++)
                o = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v0 + j * hd + e), o);
            _mm256_storeu_ps(ah + e, o);
        }
    }
}

void cpu_avx2_attend(const struct cpu_attn *a, size_t i, size_t h0, size_t h1)
{
    const struct kn_paged_kv *kv = a->kv;
    size_t hd = kv->head_dim, bs = kv->block_size, nh = h1 - h0;
    if (hd % 8 || nh > CPU_ATTN_MAX_HEADS || hd > 1024) {
        cpu_kernels_scalar.attend(a, i, h0, h1);
        return;
    }
    float q[CPU_ATTN_MAX_HEADS * 1024], acc[CPU_ATTN_MAX_HEADS * 1024];
    float mx[CPU_ATTN_MAX_HEADS], den[CPU_ATTN_MAX_HEADS];
    __m256 sc = _mm256_set1_ps(a->scale);
    for (size_t h = 0; h < nh; h++) {
        const float *src = a->q + i * a->ldq + (h0 + h) * hd;
        for (size_t e = 0; e < hd; e += 8)
            _mm256_storeu_ps(q + h * hd + e, _mm256_mul_ps(_mm256_loadu_ps(src + e), sc));
        memset(acc + h * hd, 0, hd * sizeof(float));
        mx[h] = -INFINITY;
        den[h] = 0;
    }
    size_t g = h0 / (a->n_heads / kv->n_kv_heads), p = (size_t)a->pos[i];
    const int32_t *table = a->block_tables + (size_t)a->seq_of[i] * a->max_blocks;
    for (size_t j = cpu_attn_first(a, p); j <= p;) {
        size_t end = (j / bs + 1) * bs;
        if (end > p + 1)
            end = p + 1;
        if (end > j + 16)
            end = j + 16;
        size_t slot0 = (size_t)table[j / bs] * bs + j % bs;
        attend_chunk(kv, slot0, end - j, g, nh, q, acc, mx, den);
        j = end;
    }
    for (size_t h = 0; h < nh; h++) {
        float *o = a->out + i * a->ldo + (h0 + h) * hd;
        __m256 inv = _mm256_set1_ps(1.0f / den[h]);
        for (size_t e = 0; e < hd; e += 8)
            _mm256_storeu_ps(o + e, _mm256_mul_ps(_mm256_loadu_ps(acc + h * hd + e), inv));
    }
}

static void avx2_silu_mul(float *out, const float *g, const float *u, size_t dim)
{
    size_t d = 0;
    for (; d + 8 <= dim; d += 8) {
        __m256 x = _mm256_loadu_ps(g + d);
        __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(out + d, _mm256_mul_ps(s, _mm256_loadu_ps(u + d)));
    }
    for (; d < dim; d++)
        out[d] = g[d] / (1.0f + expf(-g[d])) * u[d];
}

const struct cpu_kernels cpu_kernels_avx2 = {"avx2", avx2_matmul, cpu_avx2_attend, avx2_silu_mul};
