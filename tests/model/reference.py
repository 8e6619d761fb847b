"""A NumPy reference forward pass of the Llama-family decoder (HF LlamaForCausalLM semantics,
also MistralForCausalLM and Qwen2ForCausalLM), written from the model equations, in float64.

Per layer, for hidden states x [T, hidden]:
    h = rmsnorm(x) * input_layernorm          rmsnorm(x) = x / sqrt(mean(x^2) + eps)
    q, k, v = h Wq^T (+bq), h Wk^T (+bk), h Wv^T (+bv)      heads, kv_heads, head_dim
    q, k = rope(q), rope(k)                   HF rotate_half layout (below)
    a = softmax(q k^T / sqrt(head_dim) + mask) v             query head j uses kv head
                                                             j // (heads / kv_heads)
    x = x + a Wo^T
    h = rmsnorm(x) * post_attention_layernorm
    x = x + Wdown (silu(Wgate h) * (Wup h))
then logits = (rmsnorm(x) * norm) W^T, W = lm_head.weight, or embed_tokens.weight when tied.

Rotary embeddings (rotate_half / "neox" layout): dimension i < head_dim/2 pairs with
i + head_dim/2; inv_freq[i] = base^(-2i/head_dim); for a token at position p and angle
t = p * inv_freq[i]: (x_i, x_{i+d/2}) -> (x_i cos t - x_{i+d/2} sin t, x_{i+d/2} cos t + x_i sin t).
rope_scaling (config.json "rope_type", or the legacy "type"):
  * linear  (transformers _compute_linear_scaling_rope_parameters): inv_freq / factor, i.e. the
    position divided by factor.
  * llama3  (transformers _compute_llama3_parameters): wavelen = 2 pi / inv_freq; with
    L = original_max_position_embeddings: wavelen < L / high_freq_factor keeps inv_freq,
    wavelen > L / low_freq_factor uses inv_freq / factor, and in between
    s = (L / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor),
    inv_freq * ((1 - s) / factor + s).
  * dynamic (dynamic NTK). transformers' _compute_dynamic_ntk_parameters computes, for the
    current sequence length seq_len and M = config max_position_embeddings,
        base' = rope_theta * (factor * max(seq_len, M) / M - (factor - 1)) ** (d / (d - 2))
    and its dynamic_rope_update recomputes inv_freq whenever a forward call reaches a longer
    seq_len (max position id + 1); the KV cache keeps keys as they were rotated. A server with a
    paged KV cache cannot re-rotate cached keys, so kiln does what vLLM does
    (DynamicNTKScalingRotaryEmbedding): ONE FIXED BASE FOR EVERY POSITION,
    rope_theta * (factor^2 - factor + 1) ** (d / (d - 2)), which is transformers' base' for
    seq_len = factor * M; positions reach factor * M. That is the default here
    (DYNAMIC_NTK = "vllm"). DYNAMIC_NTK = "transformers" switches the reference to the
    per-position variant (the token at position p rotated with base' for seq_len = p + 1: plain
    RoPE up to M), which equals transformers for sequences of length <= M and for
    token-by-token decoding, but not vLLM.
    M is max_position_embeddings, as in
    transformers (rope_scaling's original_max_position_embeddings is not read for dynamic; the
    tiny test models leave it out). d is head_dim (newer transformers; older versions used
    hidden_size // num_attention_heads, the same for every model without an explicit head_dim).

Sliding window (MistralForCausalLM sliding_window, absent: 4096, null: none; Qwen2 only with
use_sliding_window true, on layers i >= max_window_layers): a query at position p sees keys at positions j with p - window < j <= p, i.e. the last `window`
positions including its own. This is transformers' masking_utils.sliding_window_overlay
(kv_idx > q_idx - sliding_window) and vLLM's flash-attention window (sliding_window - 1, 0).
"""
import json
import os

import numpy as np

import st_io

# Which dynamic-NTK convention the reference (and so every test) follows; see the module
# docstring. "vllm" (kiln's choice): one fixed base for all positions,
# rope_theta * (factor^2 - factor + 1)^(d/(d-2)). "transformers": per-position base.
DYNAMIC_NTK = "vllm"


class Model:
    """Config and float64 weights of one model directory."""

    def __init__(self, model_dir):
        self.dir = str(model_dir)
        with open(os.path.join(self.dir, "config.json")) as f:
            cfg = json.load(f)
        self.config = cfg
        self.arch = cfg["architectures"][0]
        self.hidden = cfg["hidden_size"]
        self.layers = cfg["num_hidden_layers"]
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg.get("num_key_value_heads") or self.heads
        self.head_dim = cfg.get("head_dim") or self.hidden // self.heads
        self.vocab = cfg["vocab_size"]
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.theta = cfg.get("rope_theta", 10000.0)
        self.max_pos = cfg.get("max_position_embeddings", 2048)
        self.tie = cfg.get("tie_word_embeddings", False)
        # transformers: Qwen2 has q/k/v biases; Llama's attention_bias adds biases to q/k/v and
        # o; Mistral has none whatever the config says.
        llama_bias = self.arch == "LlamaForCausalLM" and bool(cfg.get("attention_bias", False))
        self.qkv_bias = self.arch == "Qwen2ForCausalLM" or llama_bias
        self.o_bias = llama_bias
        # Sliding window per layer (None: full causal attention). Mistral: sliding_window for
        # every layer (absent: transformers' default 4096; null or 0: none). Qwen2: only with
        # use_sliding_window, on layers i >= max_window_layers (default 28), as transformers.
        self.windows = [None] * self.layers
        if self.arch == "MistralForCausalLM":
            w = cfg["sliding_window"] if "sliding_window" in cfg else 4096
            self.windows = [w or None] * self.layers
        elif self.arch == "Qwen2ForCausalLM" and cfg.get("use_sliding_window", False):
            first = cfg.get("max_window_layers", 28)
            w = cfg.get("sliding_window") or None
            self.windows = [w if i >= first else None for i in range(self.layers)]
        rs = cfg.get("rope_scaling") or {}
        self.rope_type = rs.get("rope_type", rs.get("type", "default"))
        self.rope = rs
        if self.rope_type not in ("default", "linear", "dynamic", "llama3"):
            raise ValueError(f"unsupported rope_scaling type {self.rope_type}")
        raw = st_io.read_model(self.dir)
        self.w = {k: v.astype(np.float64) for k, v in raw.items()}
        self.out_w = self.w["model.embed_tokens.weight"] if self.tie else self.w["lm_head.weight"]
        self._inv_freq = self._base_inv_freq()

    def _base_inv_freq(self):
        d = self.head_dim
        inv = self.theta ** (-np.arange(0, d, 2, dtype=np.float64) / d)
        if self.rope_type == "linear":
            inv = inv / self.rope["factor"]
        elif self.rope_type == "llama3":
            factor = self.rope["factor"]
            lo = self.rope["low_freq_factor"]
            hi = self.rope["high_freq_factor"]
            old = self.rope["original_max_position_embeddings"]
            wavelen = 2 * np.pi / inv
            smooth = (old / wavelen - lo) / (hi - lo)
            mid = inv * ((1 - smooth) / factor + smooth)
            inv = np.where(wavelen < old / hi, inv, np.where(wavelen > old / lo, inv / factor, mid))
        return inv

    def angles(self, positions):
        """Rotation angles [n, head_dim/2] for integer positions."""
        p = np.asarray(positions, dtype=np.float64)
        if self.rope_type != "dynamic":
            return p[:, None] * self._inv_freq[None, :]
        d = self.head_dim
        factor = self.rope["factor"]
        exps = -np.arange(0, d, 2, dtype=np.float64) / d
        if DYNAMIC_NTK == "vllm":
            base = self.theta * (factor * factor - factor + 1) ** (d / (d - 2))
            return p[:, None] * (base ** exps)[None, :]
        m = self.max_pos
        seq_len = np.maximum(p + 1, m)
        base = self.theta * (factor * seq_len / m - (factor - 1)) ** (d / (d - 2))
        return p[:, None] * base[:, None] ** exps[None, :]


class KVCache:
    """Rotated keys and values of one sequence, per layer: [length, kv_heads, head_dim]."""

    def __init__(self, model):
        shape = (0, model.kv_heads, model.head_dim)
        self.k = [np.zeros(shape) for _ in range(model.layers)]
        self.v = [np.zeros(shape) for _ in range(model.layers)]
        self.length = 0


def load(model_dir):
    return Model(model_dir)


def _rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _rope(x, cos, sin):
    """x [n, h, d]; cos, sin [n, d/2]."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def _silu(x):
    return x / (1.0 + np.exp(-x))


def _attention(m, q, k, v, qpos, kpos, window=None):
    """q [n, heads, d], k/v [t, kv, d]; causal (and windowed) over absolute positions."""
    n, t = q.shape[0], k.shape[0]
    g = m.heads // m.kv_heads
    qg = q.reshape(n, m.kv_heads, g, m.head_dim)
    scores = np.einsum("nkgd,tkd->kgnt", qg, k) / np.sqrt(m.head_dim)
    allowed = kpos[None, :] <= qpos[:, None]
    if window:
        allowed &= kpos[None, :] > qpos[:, None] - window
    scores = np.where(allowed[None, None], scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    out = np.einsum("kgnt,tkd->nkgd", p, v)
    return out.reshape(n, m.heads * m.head_dim)


def forward(model, ids, cache=None):
    """Logits [len(ids), vocab] (float64) for ids continuing the sequence in cache (or a new
    sequence from position 0 when cache is None). model: a Model or a model directory."""
    m = model if isinstance(model, Model) else Model(model)
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or len(ids) == 0:
        raise ValueError("ids must be a non-empty list")
    if cache is None:
        cache = KVCache(m)
    n = len(ids)
    qpos = cache.length + np.arange(n)
    kpos = np.arange(cache.length + n)
    ang = m.angles(qpos)
    cos, sin = np.cos(ang), np.sin(ang)
    w = m.w
    x = w["model.embed_tokens.weight"][ids]
    for i in range(m.layers):
        p = f"model.layers.{i}."
        h = _rmsnorm(x, w[p + "input_layernorm.weight"], m.eps)
        q = h @ w[p + "self_attn.q_proj.weight"].T
        k = h @ w[p + "self_attn.k_proj.weight"].T
        v = h @ w[p + "self_attn.v_proj.weight"].T
        if m.qkv_bias:
            q += w[p + "self_attn.q_proj.bias"]
            k += w[p + "self_attn.k_proj.bias"]
            v += w[p + "self_attn.v_proj.bias"]
        q = _rope(q.reshape(n, m.heads, m.head_dim), cos, sin)
        k = _rope(k.reshape(n, m.kv_heads, m.head_dim), cos, sin)
        v = v.reshape(n, m.kv_heads, m.head_dim)
        cache.k[i] = np.concatenate([cache.k[i], k])
        cache.v[i] = np.concatenate([cache.v[i], v])
        a = _attention(m, q, cache.k[i], cache.v[i], qpos, kpos, m.windows[i])
        x = x + a @ w[p + "self_attn.o_proj.weight"].T
        if m.o_bias:
            x = x + w[p + "self_attn.o_proj.bias"]
        h = _rmsnorm(x, w[p + "post_attention_layernorm.weight"], m.eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (_silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    cache.length += n
    x = _rmsnorm(x, w["model.norm.weight"], m.eps)
    return x @ m.out_w.T


def greedy(model, prompt_ids, max_new, eos_ids=()):
    """Greedy (argmax) continuation of prompt_ids: the generated ids, at most max_new of them.
    Stops after emitting an id in eos_ids; that stop id is the last element of the result
    (HF generate's convention; kiln's --ids output leaves it out)."""
    m = model if isinstance(model, Model) else Model(model)
    cache = KVCache(m)
    logits = forward(m, prompt_ids, cache)
    out = []
    eos = set(eos_ids)
    while len(out) < max_new:
        tok = int(np.argmax(logits[-1]))
        out.append(tok)
        if tok in eos:
            break
        logits = forward(m, [tok], cache)
    return out


def eos_ids(model_dir):
    """Stop ids: generation_config.json's eos_token_id, else config.json's (int or list)."""
    for name in ("generation_config.json", "config.json"):
        path = os.path.join(str(model_dir), name)
        if os.path.exists(path):
            with open(path) as f:
                e = json.load(f).get("eos_token_id")
            if e is not None:
                return list(e) if isinstance(e, list) else [e]
    return []


def rel_err(a, b):
    """max|a - b| / max|b| of two logit rows (or arrays)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
