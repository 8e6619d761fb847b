/*
 * rope: the rotary-embedding frequencies of a model and the per-token angle table.
 *
 * rope_inv_freq applies the config's rope scaling to the base frequencies
 * theta^(-2i/head_dim), i < head_dim/2:
 *   linear   inv_freq / factor (positions divided by factor);
 *   dynamic  dynamic NTK as vLLM computes it: the base is fixed at the value Hugging Face
 *            would use for a sequence of factor * max_position_embeddings tokens,
 *            theta * (factor^2 - factor + 1)^(d / (d - 2)), so that cached keys never
 *            change (Hugging Face recomputes the base from the current length instead);
 *   llama3   Llama 3.1's bands: wavelengths above original_max / low_freq_factor are
 *            divided by factor, below original_max / high_freq_factor kept, and blended
 *            between.
 * Angles are computed in double precision. Pure functions; any thread.
 */
#ifndef KILN_ROPE_H
#define KILN_ROPE_H

#include <stddef.h>
#include <stdint.h>

#include "common/model_config.h"

/* rope_inv_freq: inv_freq[0 .. head_dim/2) for config c. */
void rope_inv_freq(const struct model_config *c, double *inv_freq);

/* rope_cos_sin: out[i][j] = {cos, sin}(pos[i] * inv_freq[j]) for i < n, j < half
 * (out: [n][half][2] floats). */
void rope_cos_sin(const double *inv_freq, size_t half, const int32_t *pos, size_t n, float *out);

#endif
