/*
 * cpu_internal: what the CPU backend's files share: the packed matrix layout, the job
 * structs its parallel loops hand to the SIMD kernels, and the kernel table picked at
 * start-up (scalar, AVX2, AVX-512). Used by backend_cpu*.c and cpu_*.c only.
 *
 * Packed matrix: rows (all stacked parts) are padded to a multiple of 16 and cut into
 * panels of 16 rows; panel p holds, for each column c, the 16 values of rows 16p..16p+15,
 * so a kernel streams a panel front to back: [n_panels][cols][16]. In bf16 the 16 values
 * are interleaved (row j and row j+8 share a 32-bit lane: low half row j), so that a shift
 * and a mask widen one 32-byte load into the two fp32 vectors of rows 0-7 and 8-15. f16 and
 * f32 panels keep rows in order. Padding rows are zeros.
 */
#ifndef KILN_CPU_INTERNAL_H
#define KILN_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/ref/kn_ref.h"
#include "worker/backend.h"

#define CPU_PANEL 16

struct backend_mat {
    enum kn_dtype dtype;
    size_t rows, cols; /* rows: all parts stacked, unpadded */
    size_t n_panels;
    void *data;  /* [n_panels][cols][16] of dtype */
    float *bias; /* [n_panels * 16] or NULL */
    size_t bytes;
};

/* cpu_panel_slot: where row r (r < 16) of a panel sits among its 16 values. */
static inline size_t cpu_panel_slot(enum kn_dtype t, size_t r)
{
    return t == KN_BF16 ? (r < 8 ? 2 * r : 2 * (r - 8) + 1) : r;
}

static inline size_t cpu_dtype_size(enum kn_dtype t)
{
    return t == KN_F32 ? 4 : 2;
}

/* One matmul: out[i][r] (+)= x[i] . W[r] + bias[r] (see backend.h). */
struct cpu_mm {
    float *out;
    size_t ldo;
    const float *x;
    size_t ldx;
    size_t n;
    const struct backend_mat *w;
    int accumulate;
};

/* One attention call (see kn_ref_attention). */
struct cpu_attn {
    float *out;
    size_t ldo;
    const float *q;
    size_t ldq;
    size_t n, n_heads;
    const struct kn_paged_kv *kv;
    const int32_t *pos, *seq_of, *block_tables;
    size_t max_blocks;
    int window;
    float scale;
};

#define CPU_KC 256 /* GEMM: columns per block (a panel slice of 16 KB in fp32) */
#define CPU_MC 192 /* GEMM: tokens per block (packed x: 192 KB, in L2) */
/* scratch per thread: the AVX2 GEMM's widened panel slice, then its packed x block (the
 * AVX-512 GEMM widens in registers and packs x at the start) */
#define CPU_SCRATCH_FLOATS (CPU_KC * 16 + CPU_MC * CPU_KC)
#define CPU_MATVEC_MAX_N 4   /* up to this many tokens, stream the weights once per token group */
#define CPU_ATTN_MAX_HEADS 8 /* query heads of one kv head processed together */

struct cpu_kernels {
    const char *name;
    /* matmul over panels [p0, p1); scratch: CPU_SCRATCH_FLOATS floats, 32-byte aligned. */
    void (*matmul)(const struct cpu_mm *m, size_t p0, size_t p1, float *scratch);
    /* attention for token i and query heads [h0, h1) (all of one kv head). */
    void (*attend)(const struct cpu_attn *a, size_t i, size_t h0, size_t h1);
    /* out[d] = silu(g[d]) * u[d] for d < dim (silu(x) = x / (1 + e^-x)). */
    void (*silu_mul)(float *out, const float *g, const float *u, size_t dim);
};

extern const struct cpu_kernels cpu_kernels_scalar;
extern const struct cpu_kernels cpu_kernels_avx2;
extern const struct cpu_kernels cpu_kernels_avx512;

/* cpu_avx2_attend: the AVX2 attention kernel (cpu_kernels_avx2.attend), shared with the
 * AVX-512 table. */
void cpu_avx2_attend(const struct cpu_attn *a, size_t i, size_t h0, size_t h1);

/* cpu_avx512_attend: the AVX-512 attention kernel (cpu_kernels_avx512.attend); head dims
 * that are not a multiple of 16 or exceed 256 go to cpu_avx2_attend. */
void cpu_avx512_attend(const struct cpu_attn *a, size_t i, size_t h0, size_t h1);

/* cpu_avx512_silu_mul: cpu_kernels_avx512.silu_mul. */
void cpu_avx512_silu_mul(float *out, const float *g, const float *u, size_t dim);

/* cpu_attn_first: the first key position token i sees. */
static inline size_t cpu_attn_first(const struct cpu_attn *a, size_t p)
{
    return a->window > 0 && p + 1 > (size_t)a->window ? p + 1 - (size_t)a->window : 0;
}

#endif
