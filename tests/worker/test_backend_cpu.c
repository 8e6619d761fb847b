/*
 * test_backend_cpu: the CPU backend's kernels (AVX2 and scalar) against the plain C
 * references in kernels/ref, and the references' conversions against the CPU's own F16C
 * instructions. Shapes are chosen to cross every blocking boundary: rows not a multiple of
 * 16, columns not a multiple of the GEMM's column block, token counts on both sides of the
 * matvec/GEMM switch and of the micro-kernel's 6 rows.
 */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "kernels/ref/kn_ref.h"
#include "tests/test.h"
#include "worker/backend.h"
#include "worker/threadpool.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static void *rand_weights(enum kn_dtype t, size_t n)
{
    void *w = malloc(n * (t == KN_F32 ? 4 : 2));
    for (size_t i = 0; i < n; i++) {
        float v = frand();
        if (t == KN_F32)
            ((float *)w)[i] = v;
        else if (t == KN_BF16)
            ((uint16_t *)w)[i] = kn_f32_to_bf16(v);
        else
            ((uint16_t *)w)[i] = kn_f32_to_f16(v);
    }
    return w;
}

/* max_rel: max |a - b| over max |b|. */
static double max_rel(const float *a, const float *b, size_t n, size_t ld, size_t cols)
{
    double num = 0, den = 1e-30;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < cols; j++) {
            double d = fabs((double)a[i * ld + j] - b[i * ld + j]);
            num = d > num ? d : num;
            den = fabs(b[i * ld + j]) > den ? fabs(b[i * ld + j]) : den;
        }
    return num / den;
}

/* check_matmul: one shape through the backend vs kn_ref_matmul (parts stacked). */
static void check_matmul(struct backend *b, enum kn_dtype t, size_t rows0, size_t rows1,
                         size_t cols, size_t n, int bias, int accumulate)
{
    void *w0 = rand_weights(t, rows0 * cols), *w1 = rand_weights(t, rows1 * cols);
    float *b0 = malloc(rows0 * 4), *b1 = malloc(rows1 * 4);
    for (size_t i = 0; i < rows0; i++)
        b0[i] = frand();
    for (size_t i = 0; i < rows1; i++)
        b1[i] = frand();
    struct backend_mat_desc d = {.cols = cols, .dtype = t, .n_parts = 2};
    d.parts[0] = (struct backend_mat_part){
        .data = w0, .dtype = t, .rows = rows0, .bias = bias ? b0 : NULL, .bias_dtype = KN_F32};
    d.parts[1] = (struct backend_mat_part){
        .data = w1, .dtype = t, .rows = rows1, .bias = bias ? b1 : NULL, .bias_dtype = KN_F32};
    struct backend_mat *m;
    REQUIRE(b->ops->mat_new(b, &d, &m) == 0);
    size_t rows = rows0 + rows1, ldo = BACKEND_ROUND_ROWS(rows) + 3, ldx = cols + 5;
    float *x = malloc(n * ldx * 4), *got = malloc(n * ldo * 4), *want = malloc(n * ldo * 4);
    for (size_t i = 0; i < n * ldx; i++)
        x[i] = frand();
    for (size_t i = 0; i < n * ldo; i++)
        got[i] = want[i] = frand();
    b->ops->matmul(b, got, ldo, x, ldx, n, m, accumulate);
    kn_ref_matmul(want, ldo, x, ldx, n, w0, t, rows0, cols, bias ? b0 : NULL, accumulate);
    kn_ref_matmul(want + rows0, ldo, x, ldx, n, w1, t, rows1, cols, bias ? b1 : NULL, accumulate);
    double err = max_rel(got, want, n, ldo, rows);
    if (err > 2e-5)
        TEST_FAIL_AT("matmul %s dtype %d rows %zu+%zu cols %zu n %zu bias %d acc %d: rel err %g",
                     backend_cpu_simd_name(b), t, rows0, rows1, cols, n, bias, accumulate, err);
    for (size_t i = 0; i < n; i++) /* padding columns are written with zeros */
        for (size_t r = rows; r < BACKEND_ROUND_ROWS(rows); r++)
            CHECK(got[i * ldo + r] == (accumulate ? want[i * ldo + r] : 0.0f) || !accumulate);
    b->ops->mat_free(b, m);
    free(w0), free(w1), free(b0), free(b1), free(x), free(got), free(want);
}

static void matmul_suite(enum backend_simd simd)
{
    struct backend *b;
    int rc = backend_cpu_new(2, simd, &b);
    if (rc == ERR_UNSUPPORTED)
        return;
    REQUIRE(rc == 0);
    enum kn_dtype types[3] = {KN_BF16, KN_F16, KN_F32};
    size_t ns[] = {1, 2, 3, 4, 5, 6, 7, 9, 13, 20, 97, 100};
    for (int ti = 0; ti < 3; ti++)
        for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
            check_matmul(b, types[ti], 37, 11, 300, ns[k], k & 1, 0);
            check_matmul(b, types[ti], 16, 32, 64, ns[k], 1, 1);
        }
    check_matmul(b, KN_BF16, 5, 1, 1, 3, 0, 0);
    check_matmul(b, KN_BF16, 64, 64, 600, 130, 1, 1); /* several column blocks */
    check_matmul(b, KN_F16, 64, 48, 520, 203, 1, 0);  /* and token blocks (CPU_MC 192) */
    b->ops->destroy(b);
}

TEST(matmul_avx2_matches_reference)
{
    matmul_suite(BACKEND_SIMD_AVX2);
}

TEST(matmul_avx512_matches_reference)
{
    matmul_suite(BACKEND_SIMD_AVX512);
}

TEST(matmul_scalar_matches_reference)
{
    matmul_suite(BACKEND_SIMD_SCALAR);
}

/* check_attention: n tokens of 3 sequences with scrambled block tables. */
static void check_attention(struct backend *b, size_t heads, size_t kv_heads, size_t hd, size_t bs,
                            int window)
{
    enum { SEQS = 3, MAXB = 16 }; /* 70 positions in blocks of 5 need 14 */
    size_t lens[SEQS] = {1, 37, 70}, n_blocks = SEQS * MAXB;
    struct kn_paged_kv kv = {NULL, NULL, n_blocks, kv_heads, bs, hd};
    size_t cache = n_blocks * kv_heads * bs * hd;
    kv.k = malloc(cache * 4), kv.v = malloc(cache * 4);
    for (size_t i = 0; i < cache; i++)
        kv.k[i] = frand(), kv.v[i] = frand();
    int32_t tables[SEQS * MAXB];
    for (size_t i = 0; i < SEQS * MAXB; i++) /* a permutation of the pool */
        tables[i] = (int32_t)((i * 7 + 5) % n_blocks);
    /* the query tokens: every position of seq 0, the last 9 of seq 1, 3 scattered of seq 2 */
    int32_t pos[16], seq_of[16];
    size_t n = 0;
    pos[n] = 0, seq_of[n++] = 0;
    for (size_t p = lens[1] - 9; p < lens[1]; p++)
        pos[n] = (int32_t)p, seq_of[n++] = 1;
    pos[n] = 5, seq_of[n++] = 2, pos[n] = 33, seq_of[n++] = 2, pos[n] = 69, seq_of[n++] = 2;
    size_t ldq = heads * hd + 4, ldo = heads * hd + 2;
    float *q = malloc(n * ldq * 4), *got = malloc(n * ldo * 4), *want = malloc(n * ldo * 4);
    for (size_t i = 0; i < n * ldq; i++)
        q[i] = frand() * 2;
    float scale = 1.0f / sqrtf((float)hd);
    b->ops->attention(b, got, ldo, q, ldq, n, heads, &kv, pos, seq_of, tables, MAXB, window, scale);
    kn_ref_attention(want, ldo, q, ldq, n, heads, &kv, pos, seq_of, tables, MAXB, window, scale);
    double err = max_rel(got, want, n, ldo, heads * hd);
    if (err > 1e-5)
        TEST_FAIL_AT("attention %s heads %zu/%zu hd %zu bs %zu window %d: rel err %g",
                     backend_cpu_simd_name(b), heads, kv_heads, hd, bs, window, err);
    free(kv.k), free(kv.v), free(q), free(got), free(want);
}

/* open_level: the backend at SIMD level l (0 AVX-512, 1 AVX2, 2 scalar), or NULL when this CPU
 * lacks it (any other failure fails the test that asked). */
static struct backend *open_level(int l)
{
    static const enum backend_simd levels[3] = {BACKEND_SIMD_AVX512, BACKEND_SIMD_AVX2,
                                                BACKEND_SIMD_SCALAR};
    struct backend *b = NULL;
    int rc = backend_cpu_new(2, levels[l], &b);
    if (rc && rc != ERR_UNSUPPORTED)
        TEST_FAIL_AT("backend_cpu_new(level %d): %d", l, rc);
    return rc ? NULL : b;
}

TEST(attention_matches_reference)
{
    for (int l = 0; l < 3; l++) {
        struct backend *b = open_level(l);
        if (!b)
            continue;
        check_attention(b, 8, 4, 8, 16, 0);    /* stories260K's shape */
        check_attention(b, 8, 8, 64, 16, 0);   /* MHA */
        check_attention(b, 12, 1, 16, 8, 0);   /* MQA, more than 8 heads per kv head */
        check_attention(b, 4, 2, 12, 16, 0);   /* head_dim not a multiple of 8 */
        check_attention(b, 4, 2, 32, 32, 20);  /* sliding window */
        check_attention(b, 4, 2, 32, 5, 7);    /* odd block size */
        check_attention(b, 32, 4, 64, 16, 0);  /* TinyLlama's shape: 8 heads per kv head */
        check_attention(b, 28, 4, 128, 16, 0); /* Qwen2.5-7B's: 7 heads per kv head */
        check_attention(b, 8, 2, 48, 16, 0);   /* head_dim 16 past a multiple of 32 */
        check_attention(b, 4, 4, 256, 16, 0);  /* the largest head_dim of the AVX-512 kernel */
        check_attention(b, 2, 1, 272, 16, 0);  /* beyond it */
        b->ops->destroy(b);
    }
}

/* silu_mul at every SIMD level against libm in double, over the range where the exponential
 * saturates as well (rows of [g | u], more tokens than run on one thread, a ragged width). */
TEST(silu_mul_matches_libm)
{
    enum { N = 11, DIM = 37, LDX = 2 * DIM + 3, LDO = DIM + 1 };
    static const float edge[] = {-1000.0f, -100.0f, -88.5f, -87.0f, -20.0f, -1e-8f, 0.0f,
                                 1e-8f,    0.5f,    20.0f,  87.0f,  88.5f,  100.0f};
    float x[N * LDX], got[N * LDO];
    for (size_t i = 0; i < N * LDX; i++)
        x[i] = frand() * 12;
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++)
        x[i] = x[LDX + 16 + i] = edge[i];
    for (int l = 0; l < 3; l++) {
        struct backend *b = open_level(l);
        if (!b)
            continue;
        b->ops->silu_mul(b, got, LDO, x, LDX, N, DIM);
        for (size_t t = 0; t < N; t++)
            for (size_t d = 0; d < DIM; d++) {
                double g = x[t * LDX + d], u = x[t * LDX + DIM + d];
                double want = g / (1.0 + exp(-g)) * u, v = got[t * LDO + d];
                if (fabs(v - want) > 1e-6 * fabs(want) + 1e-30)
                    TEST_FAIL_AT("silu_mul %s token %zu dim %zu g %g: %g, want %g",
                                 backend_cpu_simd_name(b), t, d, g, v, want);
            }
        b->ops->destroy(b);
    }
}

/* the CPU's own conversions: the reference for kn_f16_to_f32 and kn_f32_to_f16 */
__attribute__((target("f16c"))) static float hw_h2f(uint16_t h)
{
    return _cvtsh_ss(h);
}

__attribute__((target("f16c"))) static uint16_t hw_f2h(float f)
{
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

TEST(f16_conversions_match_f16c)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("f16c"))
        return;
    for (uint32_t h = 0; h < 65536; h++) {
        float hw = hw_h2f((uint16_t)h), sw = kn_f16_to_f32((uint16_t)h);
        if (memcmp(&hw, &sw, 4) != 0 && !(isnan(hw) && isnan(sw)))
            TEST_FAIL_AT("f16 %04x: F16C %g, kn %g", h, (double)hw, (double)sw);
    }
    for (int i = 0; i < 2000000; i++) {
        rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t u = (uint32_t)(rng_state >> 32);
        float f;
        memcpy(&f, &u, 4);
        if (isnan(f))
            continue;
        uint16_t hw = hw_f2h(f), sw = kn_f32_to_f16(f);
        if (hw != sw) {
            TEST_FAIL_AT("f32 %08x: F16C %04x, kn %04x", u, hw, sw);
            break;
        }
    }
#endif
}

TEST(bf16_rounds_to_nearest_even)
{
    CHECK_EQ(kn_f32_to_bf16(1.0f), 0x3f80);
    float f;
    uint32_t u = 0x3f808000; /* exactly halfway between 0x3f80 and 0x3f81: to even */
    memcpy(&f, &u, 4);
    CHECK_EQ(kn_f32_to_bf16(f), 0x3f80);
    u = 0x3f818000; /* halfway between 0x3f81 and 0x3f82: to even 0x3f82 */
    memcpy(&f, &u, 4);
    CHECK_EQ(kn_f32_to_bf16(f), 0x3f82);
    CHECK(kn_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(isnan(kn_bf16_to_f32(kn_f32_to_bf16(NAN))));
}

TEST(dummy_weights_are_deterministic_and_embed_gathers_rows)
{
    struct backend *b;
    REQUIRE(backend_cpu_new(2, BACKEND_SIMD_AUTO, &b) == 0);
    struct backend_mat_desc d = {.cols = 40, .dtype = KN_BF16, .n_parts = 1};
    d.parts[0] = (struct backend_mat_part){.rows = 35, .seed = 7, .scale = 0.5f};
    struct backend_mat *m1, *m2;
    REQUIRE(b->ops->mat_new(b, &d, &m1) == 0);
    REQUIRE(b->ops->mat_new(b, &d, &m2) == 0);
    int32_t ids[3] = {0, 34, 17};
    float e1[3 * 40], e2[3 * 40];
    b->ops->embed(b, e1, 40, ids, 3, m1);
    b->ops->embed(b, e2, 40, ids, 3, m2);
    CHECK(memcmp(e1, e2, sizeof e1) == 0);
    float mx = 0;
    for (int i = 0; i < 120; i++)
        mx = fabsf(e1[i]) > mx ? fabsf(e1[i]) : mx;
    CHECK(mx > 0.3f && mx <= 0.5f);
    /* a row gathered by embed equals x . W with x the unit vector: matmul's view of it */
    float x[40 * 35] = {0}, out[35 * 48];
    for (int r = 0; r < 35; r++)
        x[r * 40 + (r % 40)] = 1.0f;
    b->ops->matmul(b, out, 48, x, 40, 35, m1, 0);
    for (int k = 0; k < 3; k++) /* out[r][ids[k]] = W[ids[k]][r % 40] */
        for (int r = 0; r < 35; r++)
            CHECK(out[r * 48 + ids[k]] == e1[k * 40 + (r % 40)]);
    b->ops->mat_free(b, m1);
    b->ops->mat_free(b, m2);
    b->ops->destroy(b);
}

TEST(threadpool_splits_cover_the_range)
{
    for (long total = 0; total < 50; total++)
        for (int n = 1; n < 6; n++) {
            long covered = 0, prev_end = 0;
            for (int i = 0; i < n; i++) {
                long b, e;
                threadpool_split(total, 4, i, n, &b, &e);
                CHECK(b == prev_end);
                CHECK(e >= b);
                CHECK(b % 4 == 0 || b == total);
                covered += e - b;
                prev_end = e;
            }
            CHECK_EQ(covered, total);
        }
}

static void count_calls(void *ctx, int i, int n)
{
    int *hits = ctx;
    __atomic_fetch_add(&hits[i], 1, __ATOMIC_RELAXED);
    (void)n;
}

TEST(threadpool_runs_every_index_once_per_loop)
{
    struct threadpool *p;
    REQUIRE(threadpool_new(3, &p) == 0);
    int hits[3] = {0};
    for (int k = 0; k < 1000; k++)
        threadpool_run(p, count_calls, hits);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(hits[i], 1000);
    threadpool_free(p);
}

int main(int argc, char **argv)
{
    return test_main(argc, argv);
}
