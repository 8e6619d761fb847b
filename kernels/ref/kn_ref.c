/* kn_ref: plain C references of the model kernels. See kn_ref.h. */
#include "kernels/ref/kn_ref.h"

#include <math.h>
#include <string.h>

float kn_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t kn_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

uint16_t kn_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u)
        return sign | 0x7e00; /* NaN */
    if (a >= 0x477ff000u)     /* rounds to 65520 or more: infinity */
        return sign | 0x7c00;
    if (a < 0x38800000u) { /* below the smallest normal 2^-14: subnormal or zero */
        float m;
        memcpy(&m, &a, 4);
        /* m * 2^24 rounded to nearest even integer is the subnormal mantissa */
        float scaled = m * 0x1p24f;
        uint32_t q = (uint32_t)scaled;
        float rem = scaled - (float)q;
        if (rem > 0.5f || (rem == 0.5f && (q & 1)))
            q++;
        return sign | (uint16_t)q;
    }
    uint32_t e = (a >> 23) - 112, man = a & 0x7fffff;
    uint32_t h = (e << 10) | (man >> 13), rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
        h++; /* may carry into the exponent, which is right */
    return sign | (uint16_t)h;
}

float kn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        u = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        u = sign;
    } else { /* subnormal: value = man * 2^-24 */
        float f = (float)man * 0x1p-24f;
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* load_one: value i of src. memcpy, because weights mapped from a file are only as aligned
 * as its header length makes them. */
static float load_one(const void *src, enum kn_dtype t, size_t i)
{
    float f;
    uint16_t h;
    switch (t) {
    case KN_F32: memcpy(&f, (const char *)src + i * 4, 4); return f;
    case KN_F16: memcpy(&h, (const char *)src + i * 2, 2); return kn_f16_to_f32(h);
    case KN_BF16: memcpy(&h, (const char *)src + i * 2, 2); return kn_bf16_to_f32(h);
    }
    return 0;
}

float kn_ref_value(const void *src, enum kn_dtype t, size_t i)
{
    return load_one(src, t, i);
}

void kn_ref_to_f32(float *out, const void *src, enum kn_dtype t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = load_one(src, t, i);
}

void kn_ref_matmul(float *out, size_t ldo, const float *x, size_t ldx, size_t n, const void *w,
                   enum kn_dtype wt, size_t rows, size_t cols, const float *bias, int accumulate)
{
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < rows; r++) {
            double s = bias ? bias[r] : 0.0;
            for (size_t c = 0; c < cols; c++)
                s += (double)x[i * ldx + c] * load_one(w, wt, r * cols + c);
            out[i * ldo + r] = (float)(accumulate ? out[i * ldo + r] + s : s);
        }
}

void kn_ref_rmsnorm(float *out, size_t ldo, const float *x, size_t ldx, size_t n, size_t dim,
                    const float *w, float eps)
{
    for (size_t i = 0; i < n; i++) {
        double ss = 0;
        for (size_t j = 0; j < dim; j++)
            ss += (double)x[i * ldx + j] * x[i * ldx + j];
        float inv = (float)(1.0 / sqrt(ss / (double)dim + eps));
        for (size_t j = 0; j < dim; j++)
            out[i * ldo + j] = x[i * ldx + j] * inv * w[j];
    }
}

void kn_ref_rope(float *x, size_t ld, size_t n, size_t n_heads, size_t head_dim,
                 const float *cos_sin)
{
    size_t half = head_dim / 2;
    for (size_t i = 0; i < n; i++)
        for (size_t h = 0; h < n_heads; h++) {
            float *v = x + i * ld + h * head_dim;
            for (size_t j = 0; j < half; j++) {
                float c = cos_sin[(i * half + j) * 2], s = cos_sin[(i * half + j) * 2 + 1];
                float a = v[j], b = v[j + half];
                v[j] = a * c - b * s;
                v[j + half] = b * c + a * s;
            }
        }
}

void kn_ref_silu_mul(float *out, size_t ldo, const float *x, size_t ldx, size_t n, size_t dim)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++) {
            float g = x[i * ldx + j], u = x[i * ldx + dim + j];
            out[i * ldo + j] = g / (1.0f + expf(-g)) * u;
        }
}

void kn_ref_kv_store(const struct kn_paged_kv *kv, const float *k, size_t ldk, const float *v,
                     size_t ldv, size_t n, const int32_t *slot_mapping)
{
    size_t hd = kv->head_dim;
    for (size_t i = 0; i < n; i++)
        for (size_t h = 0; h < kv->n_kv_heads; h++) {
            size_t slot = (size_t)slot_mapping[i];
            for (size_t d = 0; d < hd; d++)
                kv->k[kn_kv_key_index(kv, slot, h, d)] = k[i * ldk + h * hd + d];
            memcpy(kv->v + kn_kv_value_index(kv, slot, h), v + i * ldv + h * hd,
                   hd * sizeof(float));
        }
}

void kn_ref_attention(float *out, size_t ldo, const float *q, size_t ldq, size_t n, size_t n_heads,
                      const struct kn_paged_kv *kv, const int32_t *pos, const int32_t *seq_of,
                      const int32_t *block_tables, size_t max_blocks, int window, float scale)
{
    size_t hd = kv->head_dim, bs = kv->block_size, group = n_heads / kv->n_kv_heads;
    for (size_t i = 0; i < n; i++) {
        const int32_t *table = block_tables + (size_t)seq_of[i] * max_blocks;
        size_t p = (size_t)pos[i];
        size_t first = window > 0 && p + 1 > (size_t)window ? p + 1 - (size_t)window : 0;
        for (size_t h = 0; h < n_heads; h++) {
            const float *qh = q + i * ldq + h * hd;
            float *oh = out + i * ldo + h * hd;
            double mx = -INFINITY, den = 0;
            double acc[1024] = {0};
            for (size_t j = first; j <= p; j++) {
                size_t slot = (size_t)table[j / bs] * bs + j % bs;
                const float *kj = kv->k + kn_kv_key_index(kv, slot, h / group, 0);
                const float *vj = kv->v + kn_kv_value_index(kv, slot, h / group);
                double s = 0;
                for (size_t d = 0; d < hd; d++)
                    s += (double)qh[d] * kj[d * kv->block_size];
                s *= scale;
                double m2 = s > mx ? s : mx, corr = exp(mx - m2), e = exp(s - m2);
                den = den * corr + e;
                for (size_t d = 0; d < hd; d++)
                    acc[d] = acc[d] * corr + e * vj[d];
                mx = m2;
            }
            for (size_t d = 0; d < hd; d++)
                oh[d] = (float)(acc[d] / den);
        }
    }
}
