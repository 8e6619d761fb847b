/*
 * libFuzzer driver: config.json and generation_config.json parsing. Any bytes must parse or
 * fail with a one-line message, never crash or leak; a config that parses must satisfy every
 * range model_config.h promises (the worker sizes its buffers from them).
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/model_config.h"

static void check_config(const struct model_config *c)
{
    if (c->hidden_size < 1 || c->hidden_size > 1 << 20 || c->intermediate_size < 1 ||
        c->intermediate_size > 1 << 20 || c->num_layers < 1 || c->num_layers > 1024 ||
        c->num_heads < 1 || c->num_heads > 1024 || c->num_kv_heads < 1 ||
        c->num_heads % c->num_kv_heads || c->head_dim < 2 || c->head_dim > 1024 ||
        c->head_dim % 2 || c->vocab_size < 1 || c->vocab_size > 1 << 24 ||
        c->max_position_embeddings < 1 || c->max_position_embeddings > 1 << 24)
        abort();
    if (!(c->rms_norm_eps > 0 && c->rms_norm_eps < 1) || !(c->rope_theta > 0) ||
        !isfinite(c->rope_theta) || !(c->rope_factor > 0) || !isfinite(c->rope_factor) ||
        c->rope_original_max_pos < 1 || c->sliding_window < 0 || c->num_eos < 0 ||
        c->num_eos > MODEL_CONFIG_MAX_EOS || c->bos_token_id < -1 ||
        !memchr(c->arch_name, 0, sizeof c->arch_name) ||
        !memchr(c->torch_dtype, 0, sizeof c->torch_dtype))
        abort();
    if (c->rope_type == ROPE_SCALING_LLAMA3 &&
        !(c->rope_high_freq_factor > c->rope_low_freq_factor && c->rope_low_freq_factor > 0))
        abort();
    for (int i = 0; i < c->num_eos; i++)
        if (c->eos_token_ids[i] < 0)
            abort();
}

static void check_generation(const struct generation_config *g)
{
    if ((g->has_temperature && !(g->temperature >= 0)) ||
        (g->has_top_p && !(g->top_p > 0 && g->top_p <= 1)) ||
        (g->has_min_p && !(g->min_p >= 0 && g->min_p <= 1)) ||
        (g->has_repetition_penalty && !(g->repetition_penalty > 0)) || g->top_k < 0 ||
        (g->has_max_new_tokens && g->max_new_tokens < 1) || g->num_eos < 0 ||
        g->num_eos > MODEL_CONFIG_MAX_EOS || g->bos_token_id < -1)
        abort();
}

static void check_err(int rc, const char *err, const char *file)
{
    if (rc && (!err[0] || strchr(err, '\n') || strncmp(err, file, strlen(file)) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct model_config c;
    struct generation_config g;
    char err[256];
    err[0] = '\0';
    int rc = model_config_parse((const char *)data, size, &c, err, sizeof err);
    check_err(rc, err, "config.json: ");
    if (rc == 0)
        check_config(&c);
    err[0] = '\0';
    rc = generation_config_parse((const char *)data, size, &g, err, sizeof err);
    check_err(rc, err, "generation_config.json: ");
    if (rc == 0)
        check_generation(&g);
    return 0;
}
