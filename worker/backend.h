/*
 * backend: the one interface between the model code and the hardware that runs it.
 *
 * A backend owns device memory, weight matrices in its own layout, and the kernels of a
 * Llama-family step. model_forward.c calls nothing else, so the same model code runs on
 * the CPU backend (backend_cpu.c) and, later, the CUDA one. Activations are fp32 arrays in
 * device memory from ops->alloc, row-major with an explicit leading dimension (ld, in
 * elements). Shapes use n for tokens.
 *
 * Matrices: a weight matrix [rows][cols] (out = x W^T) is handed over once, in the file's
 * dtype, and kept in the backend's layout and dtype (bf16 stays bf16). Several row blocks
 * may be stacked into one matrix (q, k and v projections; gate and up), each with an
 * optional bias. An output written by matmul has room for BACKEND_ROW_ALIGN-rounded rows:
 * the padding columns are written with zeros.
 *
 * Threads: a backend is driven by one thread at a time (it may use others inside).
 */
#ifndef KILN_BACKEND_H
#define KILN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/ref/kn_ref.h"

#define BACKEND_ROW_ALIGN 16
#define BACKEND_ROUND_ROWS(r)                                                                      \
    (((r) + BACKEND_ROW_ALIGN - 1) / BACKEND_ROW_ALIGN * BACKEND_ROW_ALIGN)

struct backend;
struct backend_mat;

/* One stacked block of a matrix: rows x cols values in dtype, row r column c at element
 * r * src_cols + col0 + c of data (src_cols 0 means cols: a whole row-major tensor; a
 * tensor-parallel shard takes a column range of a wider one), or, when data is NULL,
 * deterministic random values uniform in [-scale, scale] drawn from seed (for
 * --load-format dummy). bias: rows values in bias_dtype, or NULL. */
struct backend_mat_part {
    const void *data;
    enum kn_dtype dtype;
    size_t rows;
    size_t src_cols, col0;
    const void *bias;
    enum kn_dtype bias_dtype;
    uint64_t seed;
    float scale;
};

#define BACKEND_MAT_MAX_PARTS 4

struct backend_mat_desc {
    size_t cols;
    enum kn_dtype dtype; /* the storage type the backend keeps */
    int n_parts;
    struct backend_mat_part parts[BACKEND_MAT_MAX_PARTS];
};

struct backend_ops {
    const char *name;
    /* destroy: frees the backend and everything it still owns. */
    void (*destroy)(struct backend *b);
    /* alloc: zeroed device memory, or NULL. dealloc frees it (NULL allowed). */
    void *(*alloc)(struct backend *b, size_t bytes);
    void (*dealloc)(struct backend *b, void *p);
    /* upload: host -> device; download: device -> host. */
    void (*upload)(struct backend *b, void *dst, const void *src, size_t bytes);
    void (*download)(struct backend *b, void *dst, const void *src, size_t bytes);
    /* mat_new: builds a matrix from d (all parts must have d->cols columns). Returns 0,
     * ERR_NOMEM, or ERR_INVAL for an empty or oversized description. */
    int (*mat_new)(struct backend *b, const struct backend_mat_desc *d, struct backend_mat **out);
    void (*mat_free)(struct backend *b, struct backend_mat *m);
    /* mat_bytes: memory the matrix holds (for reporting). */
    size_t (*mat_bytes)(const struct backend_mat *m);
    /* embed: out[i][:cols] = row ids[i] of table (a matrix used as an embedding table);
     * ids must be < the table's rows (the caller checks). */
    void (*embed)(struct backend *b, float *out, size_t ldo, const int32_t *ids, size_t n,
                  const struct backend_mat *table);
    /* rmsnorm: as kn_ref_rmsnorm; w is device memory of dim floats. */
    void (*rmsnorm)(struct backend *b, float *out, size_t ldo, const float *x, size_t ldx, size_t n,
                    size_t dim, const float *w, float eps);
    /* matmul: out[i][r] (+)= x[i] . W[r] + bias[r] for i < n and every stacked row r;
     * ldo >= BACKEND_ROUND_ROWS(rows), x has cols valid values per row. */
    void (*matmul)(struct backend *b, float *out, size_t ldo, const float *x, size_t ldx, size_t n,
                   const struct backend_mat *w, int accumulate);
    /* rope, silu_mul, kv_store, attention: as their kn_ref_ counterparts. */
    void (*rope)(struct backend *b, float *x, size_t ld, size_t n, size_t n_heads, size_t head_dim,
                 const float *cos_sin);
    void (*silu_mul)(struct backend *b, float *out, size_t ldo, const float *x, size_t ldx,
                     size_t n, size_t dim);
    void (*kv_store)(struct backend *b, const struct kn_paged_kv *kv, const float *k, size_t ldk,
                     const float *v, size_t ldv, size_t n, const int32_t *slot_mapping);
    void (*attention)(struct backend *b, float *out, size_t ldo, const float *q, size_t ldq,
                      size_t n, size_t n_heads, const struct kn_paged_kv *kv, const int32_t *pos,
                      const int32_t *seq_of, const int32_t *block_tables, size_t max_blocks,
                      int window, float scale);
};

struct backend {
    const struct backend_ops *ops;
};

/* SIMD levels of the CPU backend; BACKEND_SIMD_AUTO picks the best the CPU has. */
enum backend_simd {
    BACKEND_SIMD_AUTO,
    BACKEND_SIMD_SCALAR,
    BACKEND_SIMD_AVX2,
    BACKEND_SIMD_AVX512
};

/*
 * backend_cpu_new: the CPU backend with n_threads threads (0: one per online CPU) and the
 * given SIMD level. Returns 0 and *out, ERR_UNSUPPORTED when the CPU lacks the level asked
 * for, ERR_NOMEM.
 */
int backend_cpu_new(int n_threads, enum backend_simd simd, struct backend **out);

/* backend_cpu_simd_name: "avx512", "avx2" or "scalar": what a CPU backend runs. */
const char *backend_cpu_simd_name(const struct backend *b);

#endif
