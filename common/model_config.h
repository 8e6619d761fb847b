/*
 * model_config: reads a Hugging Face model directory's config.json and
 * generation_config.json into plain structs, validated.
 *
 * Supported architectures: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (the
 * Llama-family decoder: RMSNorm, rotary embeddings, grouped-query attention, SwiGLU MLP).
 * Every value is checked for presence, type and a sane range before the struct is handed
 * out; a config that fails is refused with a one-line message naming the file and the
 * field ("config.json: num_key_value_heads: 3 does not divide num_attention_heads 8").
 * Absent optional fields take the defaults transformers gives them.
 *
 * The structs own no memory. Pure functions; any thread.
 */
#ifndef KILN_MODEL_CONFIG_H
#define KILN_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum model_arch {
    MODEL_ARCH_LLAMA,   /* LlamaForCausalLM */
    MODEL_ARCH_MISTRAL, /* MistralForCausalLM */
    MODEL_ARCH_QWEN2,   /* Qwen2ForCausalLM: q/k/v projections always have a bias */
};

enum rope_scaling_type {
    ROPE_SCALING_NONE,    /* absent, null, or rope_type "default" */
    ROPE_SCALING_LINEAR,  /* positions divided by factor */
    ROPE_SCALING_DYNAMIC, /* dynamic NTK: base grows once positions pass the original max */
    ROPE_SCALING_LLAMA3,  /* Llama 3.1 frequency-band rescaling */
};

#define MODEL_CONFIG_MAX_EOS 16

struct model_config {
    enum model_arch arch;
    char arch_name[64]; /* the architectures[0] string */
    int hidden_size;
    int intermediate_size;
    int num_layers;   /* num_hidden_layers */
    int num_heads;    /* num_attention_heads */
    int num_kv_heads; /* num_key_value_heads; null: num_heads; absent: transformers' class
                         default (Llama num_heads, Mistral 8, Qwen2 32) */
    int head_dim;     /* head_dim; defaults to hidden_size / num_heads */
    int vocab_size;
    int max_position_embeddings; /* default 2048 Llama, 131072 Mistral, 32768 Qwen2 */
    double rms_norm_eps;         /* default 1e-6 */
    double rope_theta;           /* default 10000 */
    enum rope_scaling_type rope_type;
    double rope_factor;           /* linear, dynamic, llama3; 1 otherwise */
    double rope_low_freq_factor;  /* llama3 */
    double rope_high_freq_factor; /* llama3 */
    int rope_original_max_pos;    /* original_max_position_embeddings: required by llama3;
                                     max_position_embeddings when absent */
    bool tie_word_embeddings;     /* default false */
    bool qkv_bias;                /* Llama: attention_bias; Mistral: never; Qwen2: always */
    bool o_bias;                  /* Llama attention_bias also puts a bias on o_proj */
    int sliding_window; /* 0: none. Mistral: sliding_window (absent: 4096, as transformers).
                           Qwen2: with use_sliding_window true, when max_window_layers is 0
                           (every layer slides; >= num_layers: none does) */
    int bos_token_id;   /* -1 when absent */
    int32_t eos_token_ids[MODEL_CONFIG_MAX_EOS]; /* eos_token_id, an int or a list */
    int num_eos;
    char torch_dtype[16]; /* torch_dtype (or dtype): "bfloat16", ..., or "" when absent */
};

/* Defaults a model ships for sampling; has_* false when the file does not set the field. */
struct generation_config {
    bool has_temperature, has_top_p, has_top_k, has_min_p, has_repetition_penalty,
        has_max_new_tokens;
    double temperature, top_p, min_p, repetition_penalty;
    int top_k;
    int max_new_tokens;
    int bos_token_id; /* -1 when absent */
    int32_t eos_token_ids[MODEL_CONFIG_MAX_EOS];
    int num_eos; /* 0 when absent */
};

/*
 * model_config_parse: parses config.json text[0..n) into *c. Returns 0, or ERR_PARSE
 * (not JSON, not an object, a field of the wrong type), ERR_UNSUPPORTED (another
 * architecture, hidden_act other than silu, mlp_bias true on Llama, an unknown rope_scaling
 * type, a quantization_config, a Qwen2 sliding window on some layers only),
 * ERR_RANGE (a value missing where required, absurd, or inconsistent with another), with
 * the message in err. Limits: text at most 1 MiB (ERR_LIMIT); hidden_size, intermediate_size
 * <= 1<<20; layers <= 1024; heads <= 1024, kv heads dividing heads; head_dim even and <=
 * 1024; vocab_size <= 1<<24; max_position_embeddings <= 1<<24; 0 < rms_norm_eps < 1;
 * rope_theta > 0 and finite; rope factors finite and > 0 (llama3: high > low). The rope
 * settings may also come in the newer rope_parameters object ({"rope_type", "rope_theta",
 * ...}). bos_token_id -1 and no eos ids when absent (not the class defaults).
 */
int model_config_parse(const char *text, size_t n, struct model_config *c, char *err,
                       size_t errlen);

/* model_config_load: reads DIR/config.json and parses it; ERR_IO when it cannot be read. */
int model_config_load(const char *dir, struct model_config *c, char *err, size_t errlen);

/*
 * generation_config_parse: parses generation_config.json text[0..n). Only the fields above
 * are read; others are ignored. ERR_PARSE on a field of the wrong type, ERR_RANGE on an
 * absurd value (temperature < 0, top_p outside (0, 1], negative ids, more than
 * MODEL_CONFIG_MAX_EOS eos ids).
 */
int generation_config_parse(const char *text, size_t n, struct generation_config *g, char *err,
                            size_t errlen);

/* generation_config_load: reads DIR/generation_config.json; a missing file is not an error
 * (every has_* false, ids absent). */
int generation_config_load(const char *dir, struct generation_config *g, char *err, size_t errlen);

#endif
