/*
 * backend_cpu: the CPU implementation of struct backend_ops (backend.h).
 *
 * Every op splits its work over the backend's thread pool (tokens, weight panels, or
 * (token, kv head) pairs) and calls the kernel table picked at creation: AVX-512 (matmul;
 * attention too) when the CPU has AVX-512F/BW/VL, else AVX2/FMA/F16C when it has
 * them, else portable C. Weights are packed once at load into the panel
 * layout of cpu_internal.h, in huge-page-advised anonymous memory. The backend allocates
 * nothing after start-up except through alloc and mat_new.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/err.h"
#include "worker/backend.h"
#include "worker/cpu_internal.h"
#include "worker/threadpool.h"

#define HUGE_ALIGN (2u << 20)
#define SERIAL_TOKENS 8   /* row-wise ops on fewer tokens run on the calling thread */
#define SERIAL_MACS 65536 /* so do matmuls and attention with less work than this */

struct backend_cpu {
    struct backend base;
    struct threadpool *pool;
    const struct cpu_kernels *k;
    float *scratch; /* [n_threads][CPU_SCRATCH_FLOATS], 64-byte aligned */
};

static struct backend_cpu *cpu_of(struct backend *b)
{
    return (struct backend_cpu *)b;
}

/* big_alloc: zeroed memory aligned for huge pages when large. */
static void *big_alloc(size_t bytes)
{
    size_t align = bytes >= HUGE_ALIGN ? HUGE_ALIGN : 64;
    size_t rounded = (bytes + align - 1) / align * align;
    void *p = NULL;
    if (rounded == 0 || posix_memalign(&p, align, rounded) != 0)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (align == HUGE_ALIGN)
        madvise(p, rounded, MADV_HUGEPAGE);
#endif
    memset(p, 0, rounded);
    return p;
}

/* The header in front of a cpu_alloc block: the mapping to give back. */
struct map_header {
    void *base;
    size_t len;
};

#define MAP_HEADER 64 /* bytes reserved before each block for its header (keeps 64 alignment) */

/* cpu_alloc: device memory is a private anonymous mapping: zero by construction, so a large
 * KV pool costs resident memory only for the pages a step writes (no memset at start-up). */
static void *cpu_alloc(struct backend *b, size_t bytes)
{
    (void)b;
    size_t align = bytes >= HUGE_ALIGN ? HUGE_ALIGN : 64;
    if (bytes > SIZE_MAX / 2)
        return NULL;
    size_t len = MAP_HEADER + bytes + align;
    void *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    uintptr_t p = ((uintptr_t)base + MAP_HEADER + align - 1) / align * align;
#ifdef MADV_HUGEPAGE
    if (align == HUGE_ALIGN)
        madvise((void *)p, bytes, MADV_HUGEPAGE);
#endif
    struct map_header *h = (struct map_header *)(p - MAP_HEADER);
    h->base = base;
    h->len = len;
    return (void *)p;
}

static void cpu_dealloc(struct backend *b, void *p)
{
    (void)b;
    if (!p)
        return;
    const struct map_header *h = (const struct map_header *)((char *)p - MAP_HEADER);
    munmap(h->base, h->len);
}

static void cpu_copy(struct backend *b, void *dst, const void *src, size_t bytes)
{
    (void)b;
    if (bytes)
        memmove(dst, src, bytes);
}

/* ---- matrices ---- */

/* uniform: a deterministic value in [-1, 1) for element idx of the stream seed. */
static float uniform(uint64_t seed, uint64_t idx)
{
    uint64_t z = seed + (idx + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 40) * 0x1p-23 - 1.0);
}

static float part_value(const struct backend_mat_part *pt, size_t cols, size_t r, size_t c)
{
    if (!pt->data)
        return uniform(pt->seed, (uint64_t)r * cols + c) * pt->scale;
    return kn_ref_value(pt->data, pt->dtype,
                        r * (pt->src_cols ? pt->src_cols : cols) + pt->col0 + c);
}

struct pack_job {
    const struct backend_mat_desc *d;
    struct backend_mat *m;
};

/* pack_panel: writes panel p of job->m from the description's parts. */
static void pack_panel(const struct pack_job *job, size_t p)
{
    const struct backend_mat_desc *d = job->d;
    struct backend_mat *m = job->m;
    size_t esz = cpu_dtype_size(m->dtype), cols = m->cols;
    char *pp = (char *)m->data + p * cols * 16 * esz;
    for (size_t r16 = 0; r16 < 16; r16++) {
        size_t row = p * 16 + r16, base = 0;
        int k = 0;
        while (k < d->n_parts && row >= base + d->parts[k].rows)
            base += d->parts[k++].rows;
        if (k == d->n_parts)
            break; /* padding rows stay zero */
        const struct backend_mat_part *pt = &d->parts[k];
        size_t r = row - base, slot = cpu_panel_slot(m->dtype, r16);
        int same = pt->data && pt->dtype == m->dtype;
        const char *src = same ? (const char *)pt->data +
                                     (r * (pt->src_cols ? pt->src_cols : cols) + pt->col0) * esz
                               : NULL;
        for (size_t c = 0; c < cols; c++) {
            char *dst = pp + (c * 16 + slot) * esz;
            if (same) {
                memcpy(dst, src + c * esz, esz);
                continue;
            }
            float v = part_value(pt, cols, r, c);
            if (m->dtype == KN_F32)
                memcpy(dst, &v, 4);
            else {
                uint16_t h = m->dtype == KN_BF16 ? kn_f32_to_bf16(v) : kn_f32_to_f16(v);
                memcpy(dst, &h, 2);
            }
        }
    }
}

static void pack_loop(void *ctx, int i, int n)
{
    const struct pack_job *job = ctx;
    long b, e;
    threadpool_split((long)job->m->n_panels, 1, i, n, &b, &e);
    for (long p = b; p < e; p++)
        pack_panel(job, (size_t)p);
}

static int pack_bias(const struct backend_mat_desc *d, struct backend_mat *m)
{
    int any = 0;
    for (int k = 0; k < d->n_parts; k++)
        any |= d->parts[k].bias != NULL;
    if (!any)
        return 0;
    m->bias = big_alloc(m->n_panels * 16 * sizeof(float));
    if (!m->bias)
        return ERR_NOMEM;
    size_t row = 0;
    for (int k = 0; k < d->n_parts; k++) {
        const struct backend_mat_part *pt = &d->parts[k];
        if (pt->bias)
            kn_ref_to_f32(m->bias + row, pt->bias, pt->bias_dtype, pt->rows);
        row += pt->rows;
    }
    m->bytes += m->n_panels * 16 * sizeof(float);
    return 0;
}

static int cpu_mat_new(struct backend *b, const struct backend_mat_desc *d,
                       struct backend_mat **out)
{
    size_t rows = 0;
    if (d->n_parts < 1 || d->n_parts > BACKEND_MAT_MAX_PARTS || d->cols == 0)
        return ERR_INVAL;
    for (int k = 0; k < d->n_parts; k++)
        rows += d->parts[k].rows;
    if (rows == 0 || rows > (1u << 26) || d->cols > (1u << 26))
        return ERR_INVAL;
    struct backend_mat *m = calloc(1, sizeof *m);
    if (!m)
        return ERR_NOMEM;
    m->dtype = d->dtype;
    m->rows = rows;
    m->cols = d->cols;
    m->n_panels = (rows + 15) / 16;
    m->bytes = m->n_panels * 16 * d->cols * cpu_dtype_size(d->dtype);
    m->data = big_alloc(m->bytes);
    if (!m->data || pack_bias(d, m) != 0) {
        free(m->data);
        free(m);
        return ERR_NOMEM;
    }
    struct pack_job job = {d, m};
    threadpool_run(cpu_of(b)->pool, pack_loop, &job);
    *out = m;
    return 0;
}

static void cpu_mat_free(struct backend *b, struct backend_mat *m)
{
    (void)b;
    if (!m)
        return;
    free(m->data);
    free(m->bias);
    free(m);
}

static size_t cpu_mat_bytes(const struct backend_mat *m)
{
    return m->bytes;
}

/* ---- ops ---- */

static void cpu_embed(struct backend *b, float *out, size_t ldo, const int32_t *ids, size_t n,
                      const struct backend_mat *t)
{
    (void)b;
    size_t esz = cpu_dtype_size(t->dtype);
    for (size_t i = 0; i < n; i++) {
        size_t row = (size_t)ids[i], slot = cpu_panel_slot(t->dtype, row % 16);
        const char *pp = (const char *)t->data + (row / 16) * t->cols * 16 * esz;
        for (size_t c = 0; c < t->cols; c++) {
            const char *src = pp + (c * 16 + slot) * esz;
            uint16_t h;
            switch (t->dtype) {
            case KN_F32: memcpy(&out[i * ldo + c], src, 4); break;
            case KN_F16: memcpy(&h, src, 2), out[i * ldo + c] = kn_f16_to_f32(h); break;
            case KN_BF16: memcpy(&h, src, 2), out[i * ldo + c] = kn_bf16_to_f32(h); break;
            }
        }
    }
}

struct rows_job {
    float *out;
    size_t ldo;
    const float *x;
    size_t ldx;
    size_t n, dim, heads;
    const float *w; /* rmsnorm weight or rope cos_sin */
    float eps;
    const struct cpu_kernels *k;
};

/* run_rows: calls fn over token ranges, in parallel when there are enough tokens. */
static void run_rows(struct backend_cpu *c, threadpool_fn fn, struct rows_job *j)
{
    if (j->n < SERIAL_TOKENS)
        fn(j, 0, 1);
    else
        threadpool_run(c->pool, fn, j);
}

static void rmsnorm_rows(void *ctx, int i, int n)
{
    struct rows_job *j = ctx;
    long b, e;
    threadpool_split((long)j->n, 1, i, n, &b, &e);
    for (long t = b; t < e; t++) {
        const float *x = j->x + (size_t)t * j->ldx;
        float *o = j->out + (size_t)t * j->ldo;
        float ss = 0;
        for (size_t d = 0; d < j->dim; d++)
            ss += x[d] * x[d];
        float inv = 1.0f / sqrtf(ss / (float)j->dim + j->eps);
        for (size_t d = 0; d < j->dim; d++)
            o[d] = x[d] * inv * j->w[d];
    }
}

static void cpu_rmsnorm(struct backend *b, float *out, size_t ldo, const float *x, size_t ldx,
                        size_t n, size_t dim, const float *w, float eps)
{
    struct rows_job j = {
        .out = out, .ldo = ldo, .x = x, .ldx = ldx, .n = n, .dim = dim, .w = w, .eps = eps};
    run_rows(cpu_of(b), rmsnorm_rows, &j);
}

static void rope_rows(void *ctx, int i, int n)
{
    struct rows_job *j = ctx;
    long b, e;
    threadpool_split((long)j->n, 1, i, n, &b, &e);
    size_t half = j->dim / 2;
    for (long t = b; t < e; t++)
        kn_ref_rope(j->out + (size_t)t * j->ldo, j->ldo, 1, j->heads, j->dim,
                    j->w + (size_t)t * half * 2);
}

static void cpu_rope(struct backend *b, float *x, size_t ld, size_t n, size_t n_heads,
                     size_t head_dim, const float *cos_sin)
{
    struct rows_job j = {
        .out = x, .ldo = ld, .n = n, .dim = head_dim, .heads = n_heads, .w = cos_sin};
    run_rows(cpu_of(b), rope_rows, &j);
}

static void silu_rows(void *ctx, int i, int n)
{
    struct rows_job *j = ctx;
    long b, e;
    threadpool_split((long)j->n, 1, i, n, &b, &e);
    for (long t = b; t < e; t++) {
        const float *g = j->x + (size_t)t * j->ldx;
        j->k->silu_mul(j->out + (size_t)t * j->ldo, g, g + j->dim, j->dim);
    }
}

static void cpu_silu_mul(struct backend *b, float *out, size_t ldo, const float *x, size_t ldx,
                         size_t n, size_t dim)
{
    struct rows_job j = {
        .out = out, .ldo = ldo, .x = x, .ldx = ldx, .n = n, .dim = dim, .k = cpu_of(b)->k};
    run_rows(cpu_of(b), silu_rows, &j);
}

static void cpu_kv_store(struct backend *b, const struct kn_paged_kv *kv, const float *k,
                         size_t ldk, const float *v, size_t ldv, size_t n,
                         const int32_t *slot_mapping)
{
    (void)b;
    kn_ref_kv_store(kv, k, ldk, v, ldv, n, slot_mapping);
}

struct mm_job {
    struct backend_cpu *c;
    struct cpu_mm mm;
};

static void matmul_loop(void *ctx, int i, int n)
{
    struct mm_job *j = ctx;
    long b, e;
    threadpool_split((long)j->mm.w->n_panels, 1, i, n, &b, &e);
    if (b < e)
        j->c->k->matmul(&j->mm, (size_t)b, (size_t)e,
                        j->c->scratch + (size_t)i * CPU_SCRATCH_FLOATS);
}

static void cpu_matmul(struct backend *b, float *out, size_t ldo, const float *x, size_t ldx,
                       size_t n, const struct backend_mat *w, int accumulate)
{
    struct mm_job j = {cpu_of(b), {out, ldo, x, ldx, n, w, accumulate}};
    if (n == 0)
        return;
    if (w->n_panels * 16 * w->cols * n < SERIAL_MACS)
        matmul_loop(&j, 0, 1);
    else
        threadpool_run(j.c->pool, matmul_loop, &j);
}

struct attn_job {
    struct backend_cpu *c;
    struct cpu_attn a;
    size_t chunks; /* head chunks per kv head */
};

static void attn_loop(void *ctx, int i, int n)
{
    struct attn_job *j = ctx;
    size_t group = j->a.n_heads / j->a.kv->n_kv_heads, per_tok = j->a.kv->n_kv_heads * j->chunks;
    /* units dealt in turn, not in ranges: a prompt's later tokens see more keys */
    for (size_t u = (size_t)i; u < j->a.n * per_tok; u += (size_t)n) {
        size_t t = u / per_tok, r = u % per_tok;
        size_t g = r / j->chunks, ch = r % j->chunks;
        size_t h0 = g * group + ch * CPU_ATTN_MAX_HEADS;
        size_t h1 =
            h0 + CPU_ATTN_MAX_HEADS < (g + 1) * group ? h0 + CPU_ATTN_MAX_HEADS : (g + 1) * group;
        j->c->k->attend(&j->a, t, h0, h1);
    }
}

static void cpu_attention(struct backend *b, float *out, size_t ldo, const float *q, size_t ldq,
                          size_t n, size_t n_heads, const struct kn_paged_kv *kv,
                          const int32_t *pos, const int32_t *seq_of, const int32_t *block_tables,
                          size_t max_blocks, int window, float scale)
{
    size_t group = n_heads / kv->n_kv_heads;
    struct attn_job j = {
        cpu_of(b),
        {out, ldo, q, ldq, n, n_heads, kv, pos, seq_of, block_tables, max_blocks, window, scale},
        (group + CPU_ATTN_MAX_HEADS - 1) / CPU_ATTN_MAX_HEADS};
    if (n * n_heads * kv->head_dim * 64 < SERIAL_MACS)
        attn_loop(&j, 0, 1);
    else if (n)
        threadpool_run(j.c->pool, attn_loop, &j);
}

static void cpu_destroy(struct backend *b)
{
    struct backend_cpu *c = cpu_of(b);
    threadpool_free(c->pool);
    free(c->scratch);
    free(c);
}

static const struct backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .dealloc = cpu_dealloc,
    .upload = cpu_copy,
    .download = cpu_copy,
    .mat_new = cpu_mat_new,
    .mat_free = cpu_mat_free,
    .mat_bytes = cpu_mat_bytes,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .matmul = cpu_matmul,
    .rope = cpu_rope,
    .silu_mul = cpu_silu_mul,
    .kv_store = cpu_kv_store,
    .attention = cpu_attention,
};

static int cpu_has_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

static int cpu_has_avx512(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

int backend_cpu_new(int n_threads, enum backend_simd simd, struct backend **out)
{
    const struct cpu_kernels *k = &cpu_kernels_scalar;
    if ((simd == BACKEND_SIMD_AVX2 && !cpu_has_avx2()) ||
        (simd == BACKEND_SIMD_AVX512 && !cpu_has_avx512()))
        return ERR_UNSUPPORTED;
    if (simd == BACKEND_SIMD_AVX2 || (simd == BACKEND_SIMD_AUTO && cpu_has_avx2()))
        k = &cpu_kernels_avx2;
    if ((simd == BACKEND_SIMD_AVX512 || simd == BACKEND_SIMD_AUTO) && cpu_has_avx512())
        k = &cpu_kernels_avx512;
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    struct backend_cpu *c = calloc(1, sizeof *c);
    if (!c)
        return ERR_NOMEM;
    c->base.ops = &cpu_ops;
    c->k = k;
    c->scratch = big_alloc((size_t)n_threads * CPU_SCRATCH_FLOATS * sizeof(float));
    int rc = c->scratch ? threadpool_new(n_threads, &c->pool) : ERR_NOMEM;
    if (rc) {
        free(c->scratch);
        free(c);
        return rc;
    }
    *out = &c->base;
    return 0;
}

const char *backend_cpu_simd_name(const struct backend *b)
{
    return ((const struct backend_cpu *)b)->k->name;
}
