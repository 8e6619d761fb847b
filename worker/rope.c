/* rope: rotary-embedding frequencies and angles. See rope.h. */
#include "worker/rope.h"

#include <math.h>

void rope_inv_freq(const struct model_config *c, double *inv_freq)
{
    size_t half = (size_t)c->head_dim / 2;
    double d = c->head_dim, base = c->rope_theta, f = c->rope_factor;
    if (c->rope_type == ROPE_SCALING_DYNAMIC)
        base *= pow(f * f - f + 1.0, d / (d - 2.0));
    for (size_t i = 0; i < half; i++)
        inv_freq[i] = 1.0 / pow(base, (double)(2 * i) / d);
    if (c->rope_type == ROPE_SCALING_LINEAR)
        for (size_t i = 0; i < half; i++)
            inv_freq[i] /= f;
    if (c->rope_type != ROPE_SCALING_LLAMA3)
        return;
    double old = c->rope_original_max_pos, lo = c->rope_low_freq_factor,
           hi = c->rope_high_freq_factor;
    double low_wavelen = old / lo, high_wavelen = old / hi;
    for (size_t i = 0; i < half; i++) {
        double wavelen = 2.0 * M_PI / inv_freq[i];
        if (wavelen < high_wavelen)
            continue;
        if (wavelen > low_wavelen) {
            inv_freq[i] /= f;
            continue;
        }
        double smooth = (old / wavelen - lo) / (hi - lo);
        inv_freq[i] = (1.0 - smooth) * inv_freq[i] / f + smooth * inv_freq[i];
    }
}

void rope_cos_sin(const double *inv_freq, size_t half, const int32_t *pos, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < half; j++) {
            double a = (double)pos[i] * inv_freq[j];
            out[(i * half + j) * 2] = (float)cos(a);
            out[(i * half + j) * 2 + 1] = (float)sin(a);
        }
}
