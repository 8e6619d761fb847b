/*
 * cpu_avx512: the CPU backend's AVX-512 matmul, compiled for AVX-512F whatever the build's
 * -march and only ever called after the CPU reported it (backend_cpu.c). Its attention is
 * in cpu_avx512_attn.c.
 *
 * A panel's 16 rows are exactly one zmm vector, so: up to MATVEC_MAX_N (8) tokens the weights
 * stream once, widened in registers, two column streams per token (16 accumulators: a decode
 * batch of 8 costs little more than one); beyond, a blocked GEMM (blocks of CPU_MC tokens and
 * CPU_KC columns, x packed per block in tiles of 12 tokens, [kc][12]) sweeping panels in
 * pairs with a micro-kernel of up to 12 tokens x 2 panels: 24 accumulators of the 32
 * registers; per column two weight loads, widened in registers (f16 and bf16 are not copied
 * out to fp32 first: on Zen 5 the conversions hide under the FMAs, and the copy cost 3-18%),
 * and 12 broadcasts for 24 FMAs. A call's x tile (12 KB) and the pair's columns (16 KB in
 * f16) stay in L1; while a pair computes, the next pair's columns are prefetched into L2 and
 * each call fetches the rows of c the next one reads. An odd last panel goes alone.
 */
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")

#include <immintrin.h>
#include <string.h>

#include "worker/cpu_internal.h"

#define INLINE static inline __attribute__((always_inline))
#define MR 12 /* tokens per packed x tile and per micro-kernel call; CPU_MC must be a multiple */
#define MATVEC_MAX_N 8 /* up to this many tokens, stream the weights once per token group */

_Static_assert(CPU_MC % MR == 0, "CPU_MC must hold whole tiles");

#ifndef CPU_PREFETCH_COLS
#define CPU_PREFETCH_COLS 64
#endif

/* load16: column c of panel pp as one fp32 vector, rows 0-15 in order (bf16 panels hold
 * rows r and r + 8 in one 32-bit word, see cpu_internal.h). */
INLINE __m512 load16(enum kn_dtype dt, const void *pp, size_t c)
{
    if (dt == KN_BF16) {
        __m256i v = _mm256_loadu_si256((const __m256i *)((const uint16_t *)pp + c * 16));
        __m256 lo = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
        __m256 hi = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_srli_epi32(v, 16), 16));
        return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)),
                                                   _mm256_castps_pd(hi), 1));
    }
    if (dt == KN_F16)
        return _mm512_cvtph_ps(
            _mm256_loadu_si256((const __m256i *)((const uint16_t *)pp + c * 16)));
    return _mm512_loadu_ps((const float *)pp + c * 16);
}

/* store16: out[0..16) = acc (+ bias) (+ out when accumulating). */
INLINE void store16(float *o, __m512 a, const float *bias, int accumulate)
{
    if (bias)
        a = _mm512_add_ps(a, _mm512_loadu_ps(bias));
    if (accumulate)
        a = _mm512_add_ps(a, _mm512_loadu_ps(o));
    _mm512_storeu_ps(o, a);
}

/* matvec_panel: M tokens (M <= MATVEC_MAX_N) against one whole panel, two column streams. */
INLINE void matvec_panel(enum kn_dtype dt, int M, const struct cpu_mm *m, size_t p)
{
    const struct backend_mat *w = m->w;
    size_t esz = cpu_dtype_size(dt), cols = w->cols;
    const char *pp = (const char *)w->data + p * cols * 16 * esz;
    __m512 a[2][MATVEC_MAX_N];
#pragma GCC unroll 8
    for (int t = 0; t < MATVEC_MAX_N; t++)
        a[0][t] = a[1][t] = _mm512_setzero_ps();
    size_t c = 0;
    for (; c + 2 <= cols; c += 2) {
        _mm_prefetch(pp + (c + CPU_PREFETCH_COLS) * 16 * esz, _MM_HINT_T0);
        __m512 w0 = load16(dt, pp, c), w1 = load16(dt, pp, c + 1);
#pragma GCC unroll 8
        for (int t = 0; t < M; t++) {
            a[0][t] = _mm512_fmadd_ps(_mm512_set1_ps(m->x[t * m->ldx + c]), w0, a[0][t]);
            a[1][t] = _mm512_fmadd_ps(_mm512_set1_ps(m->x[t * m->ldx + c + 1]), w1, a[1][t]);
        }
    }
    for (; c < cols; c++) {
        __m512 w0 = load16(dt, pp, c);
#pragma GCC unroll 8
        for (int t = 0; t < M; t++)
            a[0][t] = _mm512_fmadd_ps(_mm512_set1_ps(m->x[t * m->ldx + c]), w0, a[0][t]);
    }
    const float *bias = w->bias ? w->bias + p * 16 : NULL;
#pragma GCC unroll 8
    for (int t = 0; t < M; t++)
        store16(m->out + t * m->ldo + p * 16, _mm512_add_ps(a[0][t], a[1][t]), bias, m->accumulate);
}

/* ukernel: rows [0, M) of c (M <= T) = start + xp[kc][MR] . w[kc][16], start being c when
 * load_c, else 0, plus bias when given (an odd last panel). w: the panel's columns from k0,
 * in dt, widened in registers. T (4, 8 or 12, a constant at each call) rows are computed
 * (packed rows past M are zero); only M rows are read and written. */
INLINE void ukernel(enum kn_dtype dt, int T, int M, const void *w, size_t kc, const float *xp,
                    float *c, size_t ldc, int load_c, const float *bias)
{
    __m512 a[MR];
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        a[t] = _mm512_setzero_ps();
    for (size_t k = 0; k < kc; k++, xp += MR) {
        __m512 w0 = load16(dt, w, k);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++)
            a[t] = _mm512_fmadd_ps(_mm512_set1_ps(xp[t]), w0, a[t]);
    }
    for (int t = 0; t < M; t++)
        store16(c + t * ldc, a[t], bias, load_c);
}

/* ukernel2: ukernel over two panels at once for up to 12 tokens (T = 4, 8 or 12): 2T
 * accumulators, two weight loads and T broadcasts per column, so the FMAs, not the loads,
 * set the pace. xp is a packed tile ([kc][MR]). pf, when not NULL, is (kc >> shift) lines that
 * a later call will need from memory, fetched into L2 one every 1 << shift columns meanwhile. */
INLINE void ukernel2(enum kn_dtype wdt, int T, int M, const void *buf0, const void *buf1, size_t kc,
                     const float *xp, float *c0, float *c1, size_t ldc, int load_c,
                     const float *bias0, const float *bias1, const char *pf, int shift)
{
    __m512 a[12][2];
#pragma GCC unroll 16
    for (int t = 0; t < T; t++)
        a[t][0] = a[t][1] = _mm512_setzero_ps();
    for (size_t k = 0; k < kc; k++, xp += MR) {
        if (pf && (k & ((1u << shift) - 1)) == 0)
            _mm_prefetch(pf + (k >> shift) * 64, _MM_HINT_T1);
        __m512 w0 = load16(wdt, buf0, k), w1 = load16(wdt, buf1, k);
#pragma GCC unroll 16
        for (int t = 0; t < T; t++) {
            __m512 b = _mm512_set1_ps(xp[t]);
            a[t][0] = _mm512_fmadd_ps(b, w0, a[t][0]);
            a[t][1] = _mm512_fmadd_ps(b, w1, a[t][1]);
        }
    }
    for (int t = 0; t < M; t++) {
        store16(c0 + t * ldc, a[t][0], bias0, load_c);
        store16(c1 + t * ldc, a[t][1], bias1, load_c);
    }
}

/* pair_tile: one tile of `rows` (<= MR) tokens against a pair of panels, by the micro-kernel
 * sized to it (see ukernel2; s0 and s1 are the panels' columns from k0 in wdt). */
INLINE void pair_tile(enum kn_dtype wdt, int rows, const void *s0, const void *s1, size_t kc,
                      const float *x, float *c, size_t ldc, int load_c, const float *b0,
                      const float *b1, const char *pf, int shift)
{
    if (rows > 8)
        ukernel2(wdt, 12, rows, s0, s1, kc, x, c, c + 16, ldc, load_c, b0, b1, pf, shift);
    else if (rows > 4)
        ukernel2(wdt, 8, rows, s0, s1, kc, x, c, c + 16, ldc, load_c, b0, b1, pf, shift);
    else
        ukernel2(wdt, 4, rows, s0, s1, kc, x, c, c + 16, ldc, load_c, b0, b1, pf, shift);
}

/* pack_x: rows [i0, i0+mc) and columns [k0, k0+kc) of x as tiles of MR rows, each [kc][MR],
 * rows past mc in the last tile zero. A row is read 16 columns at a time (scattered into the
 * tile) while the next row is fetched: x is a whole activation (megabytes), mostly not in
 * L1, and a row's kc columns are too short a stream for the hardware prefetcher. */
static void pack_x(const struct cpu_mm *m, size_t i0, size_t mc, size_t k0, size_t kc, float *xp)
{
    const __m512i idx =
        _mm512_setr_epi32(0, MR, 2 * MR, 3 * MR, 4 * MR, 5 * MR, 6 * MR, 7 * MR, 8 * MR, 9 * MR,
                          10 * MR, 11 * MR, 12 * MR, 13 * MR, 14 * MR, 15 * MR);
    for (size_t t = 0; t < mc; t += MR) {
        size_t rows = mc - t < MR ? mc - t : MR;
        float *tile = xp + t * kc;
        if (rows < MR)
            memset(tile, 0, kc * MR * sizeof *tile);
        for (size_t r = 0; r < rows; r++) {
            const float *src = m->x + (i0 + t + r) * m->ldx + k0;
            const char *next = (const char *)(src + (t + r + 1 < mc ? m->ldx : 0));
            size_t k = 0;
            for (; k + 16 <= kc; k += 16) {
                _mm_prefetch(next + k * 4, _MM_HINT_T0);
                _mm512_i32scatter_ps(tile + k * MR + r, idx, _mm512_loadu_ps(src + k), 4);
            }
            for (; k < kc; k++)
                tile[k * MR + r] = src[k];
        }
    }
}

INLINE void gemm(enum kn_dtype dt, const struct cpu_mm *m, size_t p0, size_t p1, float *scratch)
{
    const struct backend_mat *w = m->w;
    size_t esz = cpu_dtype_size(dt), cols = w->cols;
    float *xp = scratch; /* the packed x block */
    for (size_t i0 = 0; i0 < m->n; i0 += CPU_MC) {
        size_t mc = m->n - i0 < CPU_MC ? m->n - i0 : CPU_MC;
        for (size_t k0 = 0; k0 < cols; k0 += CPU_KC) {
            size_t kc = cols - k0 < CPU_KC ? cols - k0 : CPU_KC;
            int first = k0 == 0;
            int load_c = !first || m->accumulate;
            pack_x(m, i0, mc, k0, kc, xp);
            size_t p = p0;
            for (; p + 2 <= p1; p += 2) { /* panels in pairs */
                const char *pp = (const char *)w->data + p * cols * 16 * esz;
                size_t tiles = (mc + MR - 1) / MR;
                const char *s0 = pp + k0 * 16 * esz, *s1 = pp + (cols + k0) * 16 * esz;
                const float *b0 = first && w->bias ? w->bias + p * 16 : NULL;
                const float *b1 = b0 ? b0 + 16 : NULL;
                /* the next pair's two slices (slice bytes each), a call's share at a time: a
                 * line every 4 columns, or every 2 or every one when there are fewer tiles */
                const char *next = p + 4 <= p1 ? pp + 2 * cols * 16 * esz + k0 * 16 * esz : NULL;
                int shift = tiles >= 4 ? 2 : tiles >= 2 ? 1 : 0;
                size_t slice = kc * 16 * esz, share = (kc >> shift) * 64;
                for (size_t t = 0, j = 0; t < mc; t += MR, j++) {
                    int rows = (int)(mc - t < MR ? mc - t : MR);
                    const float *x = xp + t * kc;
                    float *c = m->out + (i0 + t) * m->ldo + p * 16;
                    size_t off = j * share;
                    /* the next tile's rows of c, which the loop reads next */
                    for (size_t r = t + MR; r < t + 2 * MR && r < mc; r++) {
                        _mm_prefetch((const char *)(c + (r - t) * m->ldo), _MM_HINT_T0);
                        _mm_prefetch((const char *)(c + (r - t) * m->ldo + 16), _MM_HINT_T0);
                    }
                    const char *pf = !next || off >= 2 * slice ? NULL
                                     : off < slice             ? next + off
                                                   : next + cols * 16 * esz + off - slice;
                    pair_tile(dt, rows, s0, s1, kc, x, c, m->ldo, load_c, b0, b1, pf, shift);
                }
            }
            for (; p < p1; p++) {
                const char *pp = (const char *)w->data + (p * cols + k0) * 16 * esz;
                const float *bias = first && w->bias ? w->bias + p * 16 : NULL;
                for (size_t t = 0; t < mc; t += MR) {
                    int rows = (int)(mc - t < MR ? mc - t : MR);
                    const float *x = xp + t * kc;
                    float *c = m->out + (i0 + t) * m->ldo + p * 16;
                    if (rows > 8)
                        ukernel(dt, 12, rows, pp, kc, x, c, m->ldo, load_c, bias);
                    else if (rows > 4)
                        ukernel(dt, 8, rows, pp, kc, x, c, m->ldo, load_c, bias);
                    else
                        ukernel(dt, 4, rows, pp, kc, x, c, m->ldo, load_c, bias);
                }
            }
        }
    }
}

INLINE void matmul_dt(enum kn_dtype dt, const struct cpu_mm *m, size_t p0, size_t p1,
                      float *scratch)
{
    if (m->n > MATVEC_MAX_N) {
        gemm(dt, m, p0, p1, scratch);
        return;
    }
    for (size_t p = p0; p < p1; p++)
        switch (m->n) {
        case 1: matvec_panel(dt, 1, m, p); break;
        case 2: matvec_panel(dt, 2, m, p); break;
        case 3: matvec_panel(dt, 3, m, p); break;
        case 4: matvec_panel(dt, 4, m, p); break;
        case 5: matvec_panel(dt, 5, m, p); break;
        case 6: matvec_panel(dt, 6, m, p); break;
        case 7: matvec_panel(dt, 7, m, p); break;
        case 8: matvec_panel(dt, 8, m, p); break;
        default: break;
        }
}

static void avx512_matmul(const struct cpu_mm *m, size_t p0, size_t p1, float *scratch)
{
    switch (m->w->dtype) {
    case KN_BF16: matmul_dt(KN_BF16, m, p0, p1, scratch); break;
    case KN_F16: matmul_dt(KN_F16, m, p0, p1, scratch); break;
    case KN_F32: matmul_dt(KN_F32, m, p0, p1, scratch); break;
    }
}

const struct cpu_kernels cpu_kernels_avx512 = {"avx512", avx512_matmul, cpu_avx512_attend,
                                               cpu_avx512_silu_mul};
