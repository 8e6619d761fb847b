/*
 * kn_ref: the plain C reference of each model kernel, on plain row-major fp32 arrays.
 *
 * These are the definitions the fast kernels are checked against: the CPU backend's SIMD
 * paths in tests/worker, the CUDA kernels in `make test-gpu`. They favour clarity over speed
 * (double accumulation where it costs nothing to read) and allocate nothing. Pure functions;
 * any thread.
 */
#ifndef KILN_KN_REF_H
#define KILN_KN_REF_H

#include <stddef.h>
#include <stdint.h>

/* kn_bf16_to_f32 / kn_f16_to_f32: widen one stored value; kn_f32_to_bf16 / kn_f32_to_f16
 * round to nearest even (NaN stays NaN, f16 overflows to infinity). */
float kn_bf16_to_f32(uint16_t h);
float kn_f16_to_f32(uint16_t h);
uint16_t kn_f32_to_bf16(float f);
uint16_t kn_f32_to_f16(float f);

/* Weight element types, as stored. */
enum kn_dtype { KN_F32, KN_F16, KN_BF16 };

/* kn_ref_to_f32: out[0..n) = the n stored values at src of type t, widened (src need not be
 * aligned). kn_ref_value: value i of src alone. */
float kn_ref_value(const void *src, enum kn_dtype t, size_t i);
void kn_ref_to_f32(float *out, const void *src, enum kn_dtype t, size_t n);

/*
 * kn_ref_matmul: out[i][r] (+)= sum_c x[i][c] * w[r][c] + bias[r], for i < n, r < rows.
 * x: [n][ldx] fp32, w: [rows][cols] row-major of type wt, bias: [rows] or NULL,
 * out: [n][ldo]; accumulate adds to out instead of overwriting.
 */
void kn_ref_matmul(float *out, size_t ldo, const float *x, size_t ldx, size_t n, const void *w,
                   enum kn_dtype wt, size_t rows, size_t cols, const float *bias, int accumulate);

/* kn_ref_rmsnorm: out[i][:dim] = x[i][:dim] / sqrt(mean(x[i]^2) + eps) * w, for i < n. */
void kn_ref_rmsnorm(float *out, size_t ldo, const float *x, size_t ldx, size_t n, size_t dim,
                    const float *w, float eps);

/*
 * kn_ref_rope: rotates, in place, n_heads heads of head_dim values starting at x[i] for each
 * token i < n (x: [n][ld]), in the Hugging Face rotate_half layout: value j pairs with value
 * j + head_dim/2. cos_sin: [n][head_dim/2][2] the cosine and sine of each token's angles.
 */
void kn_ref_rope(float *x, size_t ld, size_t n, size_t n_heads, size_t head_dim,
                 const float *cos_sin);

/* kn_ref_silu_mul: out[i][j] = silu(g[i][j]) * u[i][j] for i < n, j < dim, where g = x[i]
 * and u = x[i] + dim (x: [n][ldx], gate then up). */
void kn_ref_silu_mul(float *out, size_t ldo, const float *x, size_t ldx, size_t n, size_t dim);

/*
 * The paged KV cache, one pair per layer. Token position p of a sequence lives in block
 * block_table[p / block_size] at offset p % block_size; its slot is
 * block * block_size + offset. Within a block, keys are stored transposed, so that one
 * query's scores against a block are one vector operation per dimension, and values by
 * position, so that weighting them is one vector operation per position:
 *   k: [n_blocks][n_kv_heads][head_dim][block_size] fp32
 *   v: [n_blocks][n_kv_heads][block_size][head_dim] fp32
 */
struct kn_paged_kv {
    float *k, *v;
    size_t n_blocks, n_kv_heads, block_size, head_dim;
};

/* kn_kv_key_index: where dimension d of kv head h's key at slot s is in k. */
static inline size_t kn_kv_key_index(const struct kn_paged_kv *kv, size_t slot, size_t h, size_t d)
{
    size_t blk = slot / kv->block_size, off = slot % kv->block_size;
    return ((blk * kv->n_kv_heads + h) * kv->head_dim + d) * kv->block_size + off;
}

/* kn_kv_value_index: where kv head h's value (head_dim values) at slot s starts in v. */
static inline size_t kn_kv_value_index(const struct kn_paged_kv *kv, size_t slot, size_t h)
{
    size_t blk = slot / kv->block_size, off = slot % kv->block_size;
    return ((blk * kv->n_kv_heads + h) * kv->block_size + off) * kv->head_dim;
}

/* kn_ref_kv_store: writes token i's keys (k: [n][ldk], n_kv_heads*head_dim values) and
 * values to slot slot_mapping[i], for i < n. */
void kn_ref_kv_store(const struct kn_paged_kv *kv, const float *k, size_t ldk, const float *v,
                     size_t ldv, size_t n, const int32_t *slot_mapping);

/*
 * kn_ref_attention: causal grouped-query attention over the paged cache. For token i < n of
 * sequence seq_of[i] at position pos[i], query head h (q: [n][ldq], n_heads*head_dim values)
 * attends to the keys of kv head h / (n_heads / n_kv_heads) at positions j <= pos[i] (and
 * j > pos[i] - window when window > 0) read through block_tables[seq_of[i]] ([n_seqs]
 * [max_blocks]); softmax(q.k * scale) weights the values. out: [n][ldo].
 */
void kn_ref_attention(float *out, size_t ldo, const float *q, size_t ldq, size_t n, size_t n_heads,
                      const struct kn_paged_kv *kv, const int32_t *pos, const int32_t *seq_of,
                      const int32_t *block_tables, size_t max_blocks, int window, float scale);

#endif
