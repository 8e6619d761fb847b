"""Random tiny Llama-family model directories (config.json, generation_config.json, weights) for
differential tests of the forward pass against reference.py.

Weights use scales that keep activations and logits well conditioned: matrices are
normal * gain / sqrt(fan_in), norm weights 1 +- 0.1, biases about 0.1, the embedding rows about
0.5 in RMS. Logits then have a spread of a few units, so a relative error per row
(max|a - b| / max|b|) is meaningful. Weights are drawn in float32 and stored as F32, F16 or BF16;
the reference reads them back from the file, so both sides see the same rounded values.
"""
import json
import os

import numpy as np

import st_io

_MODEL_TYPES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
}
_TORCH_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}

BOS_ID = 1
EOS_ID = 2


def make_config(
    *,
    arch="LlamaForCausalLM",
    hidden=64,
    intermediate=172,
    layers=2,
    heads=4,
    kv_heads=2,
    head_dim=None,
    vocab=397,
    tie=False,
    qkv_bias=False,
    rope_theta=10000.0,
    rope_scaling=None,
    dtype="F32",
    rms_norm_eps=1e-5,
    max_position_embeddings=512,
    sliding_window=None,
):
    """The config.json dict of a model with these parameters (standard HF field names)."""
    if arch not in _MODEL_TYPES:
        raise ValueError(f"unknown architecture {arch}")
    cfg = {
        "architectures": [arch],
        "model_type": _MODEL_TYPES[arch],
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": vocab,
        "max_position_embeddings": max_position_embeddings,
        "rms_norm_eps": rms_norm_eps,
        "rope_theta": rope_theta,
        "rope_scaling": rope_scaling,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "attention_dropout": 0.0,
        "tie_word_embeddings": tie,
        "use_cache": True,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "torch_dtype": _TORCH_DTYPES[dtype],
    }
    if head_dim is not None:
        cfg["head_dim"] = head_dim
    if arch == "LlamaForCausalLM":
        cfg["attention_bias"] = qkv_bias
        cfg["mlp_bias"] = False
        cfg["pretraining_tp"] = 1
        if sliding_window is not None:
            raise ValueError("LlamaForCausalLM has no sliding window")
    elif arch == "MistralForCausalLM":
        cfg["sliding_window"] = sliding_window
        if qkv_bias:  # transformers' MistralAttention has no biases whatever the config says
            raise ValueError("MistralForCausalLM has no attention biases")
    else:  # Qwen2: q/k/v biases always; a window, when given, covers every layer
        cfg["use_sliding_window"] = sliding_window is not None
        cfg["sliding_window"] = sliding_window or max_position_embeddings
        cfg["max_window_layers"] = 0 if sliding_window is not None else layers
    return cfg


def has_qkv_bias(cfg):
    return cfg["architectures"][0] == "Qwen2ForCausalLM" or has_o_bias(cfg)


def has_o_bias(cfg):
    """Llama's attention_bias puts a bias on all four projections (transformers)."""
    return cfg["architectures"][0] == "LlamaForCausalLM" and bool(cfg.get("attention_bias", False))


def make_weights(cfg, seed=0):
    """name -> float32 array of random weights for config dict cfg."""
    rng = np.random.default_rng(seed)
    hidden = cfg["hidden_size"]
    inter = cfg["intermediate_size"]
    heads = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads", heads)
    hd = cfg.get("head_dim") or hidden // heads
    vocab = cfg["vocab_size"]

    def mat(rows, cols, gain=1.0):
        return (rng.standard_normal((rows, cols)) * (gain / np.sqrt(cols))).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def bias(n):
        return (0.1 * rng.standard_normal(n)).astype(np.float32)

    w = {"model.embed_tokens.weight": (0.5 * rng.standard_normal((vocab, hidden))).astype(np.float32)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = norm(hidden)
        # q and k a little larger so that attention is not uniform and positions matter
        w[p + "self_attn.q_proj.weight"] = mat(heads * hd, hidden, 1.5)
        w[p + "self_attn.k_proj.weight"] = mat(kv * hd, hidden, 1.5)
        w[p + "self_attn.v_proj.weight"] = mat(kv * hd, hidden)
        if has_qkv_bias(cfg):
            w[p + "self_attn.q_proj.bias"] = bias(heads * hd)
            w[p + "self_attn.k_proj.bias"] = bias(kv * hd)
            w[p + "self_attn.v_proj.bias"] = bias(kv * hd)
        w[p + "self_attn.o_proj.weight"] = mat(hidden, heads * hd)
        if has_o_bias(cfg):
            w[p + "self_attn.o_proj.bias"] = bias(hidden)
        w[p + "post_attention_layernorm.weight"] = norm(hidden)
        w[p + "mlp.gate_proj.weight"] = mat(inter, hidden)
        w[p + "mlp.up_proj.weight"] = mat(inter, hidden)
        w[p + "mlp.down_proj.weight"] = mat(hidden, inter)
    w["model.norm.weight"] = norm(hidden)
    if not cfg.get("tie_word_embeddings", False):
        w["lm_head.weight"] = mat(vocab, hidden, 2.0)
    return w


def write_model(model_dir, cfg, weights, dtype="F32", shards=1, generation_config=None):
    """Writes config.json, generation_config.json and the weights (all stored as dtype)."""
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    if generation_config is None:
        generation_config = {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"]}
    with open(os.path.join(model_dir, "generation_config.json"), "w") as f:
        json.dump(generation_config, f, indent=2)
    st_io.write_sharded(model_dir, {n: (a, dtype) for n, a in weights.items()}, shards)


def make_model(
    model_dir,
    *,
    arch="LlamaForCausalLM",
    hidden=64,
    intermediate=172,
    layers=2,
    heads=4,
    kv_heads=2,
    head_dim=None,
    vocab=397,
    tie=False,
    qkv_bias=False,
    rope_theta=10000.0,
    rope_scaling=None,
    dtype="F32",
    shards=1,
    seed=0,
    rms_norm_eps=1e-5,
    max_position_embeddings=512,
    sliding_window=None,
):
    """Writes a random tiny model into model_dir (created if needed); returns its config dict."""
    cfg = make_config(
        arch=arch,
        hidden=hidden,
        intermediate=intermediate,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab=vocab,
        tie=tie,
        qkv_bias=qkv_bias,
        rope_theta=rope_theta,
        rope_scaling=rope_scaling,
        dtype=dtype,
        rms_norm_eps=rms_norm_eps,
        max_position_embeddings=max_position_embeddings,
        sliding_window=sliding_window,
    )
    write_model(model_dir, cfg, make_weights(cfg, seed), dtype=dtype, shards=shards)
    return cfg


def random_ids(n, vocab, seed, low=3):
    """n token ids in [low, vocab) (avoiding the special ids 0..2), deterministic in seed."""
    rng = np.random.default_rng(seed)
    return [int(x) for x in rng.integers(low, vocab, size=n)]
