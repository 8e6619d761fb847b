/*
 * cpu_scalar: the CPU backend's portable kernels, for CPUs without AVX2 (and as the
 * baseline the SIMD kernels are tested against). Same packed layout and the same
 * arithmetic order per output as cpu_avx2.c where that is cheap: fp32 accumulation.
 */
#include <math.h>
#include <string.h>

#include "worker/cpu_internal.h"

/* panel_row: widens column c of panel pp (16 values) into w[16], in row order. */
static void panel_row(const struct backend_mat *m, const void *pp, size_t c, float w[16])
{
    switch (m->dtype) {
    case KN_F32: memcpy(w, (const float *)pp + c * 16, 16 * sizeof(float)); break;
    case KN_F16:
        for (size_t r = 0; r < 16; r++)
            w[r] = kn_f16_to_f32(((const uint16_t *)pp)[c * 16 + r]);
        break;
    case KN_BF16:
        for (size_t r = 0; r < 16; r++)
            w[r] = kn_bf16_to_f32(((const uint16_t *)pp)[c * 16 + cpu_panel_slot(KN_BF16, r)]);
        break;
    }
}

static void scalar_matmul(const struct cpu_mm *m, size_t p0, size_t p1, float *scratch)
{
    const struct backend_mat *w = m->w;
    size_t esz = cpu_dtype_size(w->dtype);
    (void)scratch;
    for (size_t p = p0; p < p1; p++) {
        const char *pp = (const char *)w->data + p * w->cols * 16 * esz;
        for (size_t i = 0; i < m->n; i++) {
            float acc[16] = {0}, wr[16];
            const float *x = m->x + i * m->ldx;
            for (size_t c = 0; c < w->cols; c++) {
                panel_row(w, pp, c, wr);
                for (size_t r = 0; r < 16; r++)
                    acc[r] += x[c] * wr[r];
            }
            float *o = m->out + i * m->ldo + p * 16;
            for (size_t r = 0; r < 16; r++) {
                float v = acc[r] + (w->bias ? w->bias[p * 16 + r] : 0.0f);
                o[r] = m->accumulate ? o[r] + v : v;
            }
        }
    }
}

static void scalar_attend(const struct cpu_attn *a, size_t i, size_t h0, size_t h1)
{
    const struct kn_paged_kv *kv = a->kv;
    size_t hd = kv->head_dim, bs = kv->block_size, group = a->n_heads / kv->n_kv_heads;
    const int32_t *table = a->block_tables + (size_t)a->seq_of[i] * a->max_blocks;
    size_t p = (size_t)a->pos[i];
    for (size_t h = h0; h < h1; h++) {
        const float *q = a->q + i * a->ldq + h * hd;
        float *o = a->out + i * a->ldo + h * hd;
        float mx = -INFINITY, den = 0;
        memset(o, 0, hd * sizeof(float));
        for (size_t j = cpu_attn_first(a, p); j <= p; j++) {
            size_t slot = (size_t)table[j / bs] * bs + j % bs;
            const float *k = kv->k + kn_kv_key_index(kv, slot, h / group, 0);
            const float *v = kv->v + kn_kv_value_index(kv, slot, h / group);
            float s = 0;
            for (size_t d = 0; d < hd; d++)
                s += q[d] * k[d * bs];
            s *= a->scale;
            float m2 = s > mx ? s : mx, corr = expf(mx - m2), e = expf(s - m2);
            den = den * corr + e;
            for (size_t d = 0; d < hd; d++)
                o[d] = o[d] * corr + e * v[d];
            mx = m2;
        }
        for (size_t d = 0; d < hd; d++)
            o[d] /= den;
    }
}

static void scalar_silu_mul(float *out, const float *g, const float *u, size_t dim)
{
    for (size_t d = 0; d < dim; d++)
        out[d] = g[d] / (1.0f + expf(-g[d])) * u[d];
}

const struct cpu_kernels cpu_kernels_scalar = {"scalar", scalar_matmul, scalar_attend,
                                               scalar_silu_mul};
