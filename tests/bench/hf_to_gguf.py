#!/usr/bin/env python3
"""Convert a Llama-architecture Hugging Face model directory to a GGUF file for llama.cpp.

    python3 tests/bench/hf_to_gguf.py MODEL_DIR OUT.gguf [--outtype f32|f16|bf16]

This is the weight converter of the serving benchmark's peer (llama.cpp's llama-server), so
that the peer serves exactly the weights kiln serves. It is written for this project (it only
uses numpy, the `gguf` package's GGUFWriter and the standard library) and handles what the
benchmark needs:

* config.json with model_type "llama" (LlamaForCausalLM): no rope scaling other than
  "linear", optional attention/MLP biases, optional explicit head_dim, tied or untied
  embeddings;
* weights in one model.safetensors or shards named by model.safetensors.index.json, stored as
  F32, F16 or BF16; they are read through memory maps and written tensor by tensor, so a
  multi-GB model converts in little memory;
* a SentencePiece-style BPE tokenizer.json with byte fallback (Llama 1/2, TinyLlama,
  Mistral, the llama2.c vocabularies), written as llama.cpp's "llama" (SPM) tokenizer.

Weights: the rows of q_proj and k_proj are permuted from HF's rotate-half RoPE layout (dimension
i pairs with i + head_dim/2) back to the interleaved-pair layout llama.cpp's llama architecture
uses (dimension 2i pairs with 2i+1). Every other tensor is copied as it is, in the output dtype
(default: the source dtype; norms and biases are always F32). F32 -> F16 and F32 -> BF16 round
to nearest even.

Tokenizer: llama.cpp's SPM tokenizer merges, over and over, the adjacent pair whose
concatenation is a vocabulary token of the highest score (leftmost on ties), then maps symbols
that are not tokens to <0xNN> byte tokens. HF's BPE merges the pair of lowest merge rank. So
each token that a merge produces gets the score -(1 + the lowest rank of the merges producing
it); tokens no merge produces (specials, bytes, single characters) get 0. For tokenizer.json
files converted from SentencePiece, whose merges list every split of every token, the two
algorithms then agree; the converter warns when the merges are not complete in that sense.

Extra stop ids: generation_config.json may list several eos ids (the stories260K fixture stops
at [2, 1]); the first id besides the tokenizer's eos is written as eot_token_id and a second as
eom_token_id, which llama.cpp also treats as end of generation (--no-extra-eog turns this off).
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np

try:
    import gguf
except ImportError:  # pragma: no cover - message for people running it by hand
    sys.exit("hf_to_gguf: the `gguf` package is needed: pip install gguf")

# ---------------------------------------------------------------------------------------------
# input files

INDEX_NAME = "model.safetensors.index.json"
_ST_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}


def read_json(model_dir, name, required=True):
    """A JSON file of the model dir. A file that only holds a short relative path to another
    .json file (a git symlink checked out without symlink support, as the fixture shapes ship
    tokenizer.json) is followed."""
    path = os.path.join(model_dir, name)
    if not os.path.exists(path):
        if required:
            raise SystemExit(f"hf_to_gguf: {path} is missing")
        return None
    with open(path, "rb") as f:
        raw = f.read()
    text = raw.strip()
    if len(text) < 4096 and text.endswith(b".json") and b"\n" not in text and not text.startswith(b"{"):
        target = os.path.join(os.path.dirname(path), text.decode("utf-8"))
        with open(target, "rb") as f:
            raw = f.read()
    return json.loads(raw.decode("utf-8"))


class SafetensorsDir:
    """Tensors of a model dir's .safetensors file(s), as read-only memory maps of the raw
    stored values (float32 for F32, float16 for F16, uint16 bit patterns for BF16)."""

    def __init__(self, model_dir):
        index = os.path.join(model_dir, INDEX_NAME)
        if os.path.exists(index):
            with open(index) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        else:
            files = ["model.safetensors"]
        self.entries = {}
        for fname in files:
            path = os.path.join(model_dir, fname)
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n).decode("utf-8"))
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                if name in self.entries:
                    raise SystemExit(f"hf_to_gguf: tensor {name} appears twice")
                b, e = info["data_offsets"]
                self.entries[name] = (path, info["dtype"], tuple(info["shape"]), 8 + n + b, e - b)

    def names(self):
        return list(self.entries)

    def dtype(self, name):
        return self.entries[name][1]

    def shape(self, name):
        return self.entries[name][2]

    def raw(self, name):
        path, dtype, shape, offset, nbytes = self.entries[name]
        if dtype not in _ST_DTYPES:
            raise SystemExit(f"hf_to_gguf: tensor {name} has unsupported dtype {dtype}")
        np_dtype = _ST_DTYPES[dtype]
        count = int(np.prod(shape)) if shape else 1
        if count * np_dtype.itemsize != nbytes:
            raise SystemExit(f"hf_to_gguf: tensor {name}: {nbytes} bytes for shape {shape} {dtype}")
        if count == 0:
            return np.zeros(shape, dtype=np_dtype)
        return np.memmap(path, dtype=np_dtype, mode="r", offset=offset, shape=shape)


# ---------------------------------------------------------------------------------------------
# dtype conversion


def to_f32(raw, src_dtype):
    if src_dtype == "BF16":
        return (np.asarray(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
    return np.asarray(raw, dtype=np.float32)


def f32_to_bf16_bits(a):
    """float32 -> uint16 BF16 bit patterns, round to nearest even (NaN stays a quiet NaN)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    u = a.view(np.uint32)
    rounded = ((u.astype(np.uint64) + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        rounded[nan] = ((u[nan] >> 16) | 0x0040).astype(np.uint16)
    return rounded


def convert_dtype(raw, src_dtype, out_dtype):
    """Array of raw stored values (see SafetensorsDir.raw) -> array to write for out_dtype
    ('F32': float32, 'F16': float16, 'BF16': uint16 bit patterns)."""
    if src_dtype == out_dtype:
        return np.ascontiguousarray(raw)
    f = to_f32(raw, src_dtype)
    if out_dtype == "F32":
        return np.ascontiguousarray(f)
    if out_dtype == "F16":
        return f.astype(np.float16)
    if out_dtype == "BF16":
        return f32_to_bf16_bits(f)
    raise ValueError(out_dtype)


_GGML_TYPES = {
    "F32": gguf.GGMLQuantizationType.F32,
    "F16": gguf.GGMLQuantizationType.F16,
    "BF16": gguf.GGMLQuantizationType.BF16,
}
_FILE_TYPES = {
    "F32": gguf.LlamaFileType.ALL_F32,
    "F16": gguf.LlamaFileType.MOSTLY_F16,
    "BF16": gguf.LlamaFileType.MOSTLY_BF16,
}
_ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2}


# ---------------------------------------------------------------------------------------------
# weights


def permute_rotate_half_to_interleaved(w, n_head):
    """Rows of a q/k projection (or its bias) from HF's rotate-half RoPE layout to the
    interleaved layout: within each head, row j < head_dim/2 moves to 2j and row
    head_dim/2 + j to 2j + 1."""
    rows = w.shape[0]
    head_dim = rows // n_head
    return (
        w.reshape(n_head, 2, head_dim // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


_LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.bias": "attn_output.bias",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
    "mlp.gate_proj.bias": "ffn_gate.bias",
    "mlp.up_proj.bias": "ffn_up.bias",
    "mlp.down_proj.bias": "ffn_down.bias",
}
_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)$")


def plan_tensors(st, cfg):
    """[(gguf name, hf name, permute heads or None)] in llama.cpp's usual order."""
    n_layer = cfg["num_hidden_layers"]
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads") or n_head
    tied = bool(cfg.get("tie_word_embeddings", False))
    names = set(st.names())
    plan = []
    used = set()

    def take(hf, gg, heads=None, required=True):
        if hf not in names:
            if required:
                raise SystemExit(f"hf_to_gguf: tensor {hf} is missing")
            return
        plan.append((gg, hf, heads))
        used.add(hf)

    take("model.embed_tokens.weight", "token_embd.weight")
    for i in range(n_layer):
        for suffix, gg in _LAYER_MAP.items():
            heads = None
            if suffix.startswith("self_attn.q_proj"):
                heads = n_head
            elif suffix.startswith("self_attn.k_proj"):
                heads = n_kv
            take(f"model.layers.{i}.{suffix}", f"blk.{i}.{gg}", heads, required=suffix.endswith("weight"))
    take("model.norm.weight", "output_norm.weight")
    if tied:
        used.add("lm_head.weight")  # a tied checkpoint may still carry a copy; llama.cpp reuses token_embd
    else:
        take("lm_head.weight", "output.weight")

    for name in names - used:
        m = _LAYER_RE.match(name)
        if name.endswith("rotary_emb.inv_freq"):
            continue
        if m and int(m.group(1)) >= n_layer:
            raise SystemExit(f"hf_to_gguf: tensor {name} is beyond num_hidden_layers={n_layer}")
        raise SystemExit(f"hf_to_gguf: unexpected tensor {name}")
    return plan


# ---------------------------------------------------------------------------------------------
# tokenizer


def _token_text(spec):
    if spec is None:
        return None
    if isinstance(spec, dict):
        return spec.get("content")
    return spec


def _merge_pair(m):
    if isinstance(m, str):
        parts = m.split(" ")
        if len(parts) != 2:
            raise SystemExit(f"hf_to_gguf: cannot read merge {m!r}")
        return parts[0], parts[1]
    return m[0], m[1]


_BYTE_RE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")


def build_vocab(tok_json, tok_cfg, cfg, gen_cfg, extra_eog=True, warn=print):
    """The tokenizer metadata: dict with tokens, scores, types, special ids and flags."""
    model = tok_json.get("model") or {}
    if model.get("type") != "BPE" or not model.get("byte_fallback", False):
        raise SystemExit(
            "hf_to_gguf: only SentencePiece-style BPE tokenizers with byte_fallback are supported "
            f"(model type {model.get('type')!r}, byte_fallback {model.get('byte_fallback')!r})"
        )
    vocab = dict(model["vocab"])
    added = tok_json.get("added_tokens") or []
    added_by_id = {}
    for a in added:
        added_by_id[a["id"]] = a
        if a["content"] not in vocab:
            vocab[a["content"]] = a["id"]

    n_vocab = cfg.get("vocab_size") or (max(vocab.values()) + 1)
    by_id = {}
    for text, i in vocab.items():
        if i in by_id and by_id[i] != text:
            raise SystemExit(f"hf_to_gguf: token id {i} is both {by_id[i]!r} and {text!r}")
        by_id[i] = text
    if max(by_id) >= n_vocab:
        raise SystemExit(f"hf_to_gguf: token id {max(by_id)} >= vocab_size {n_vocab}")

    merges = [_merge_pair(m) for m in model.get("merges") or []]
    best_rank = {}
    for rank, (a, b) in enumerate(merges):
        t = a + b
        if t not in vocab:
            warn(f"hf_to_gguf: warning: merge {a!r} {b!r} makes {t!r}, which is not in the vocab")
            continue
        best_rank.setdefault(t, rank)

    # SPM merges every pair whose concatenation is a token; HF only the listed merges.
    merge_set = set(merges)
    added_texts = {a["content"] for a in added}
    missing = 0
    for t in vocab:
        if t in added_texts or _BYTE_RE.match(t):
            continue
        for k in range(1, len(t)):
            if t[:k] in vocab and t[k:] in vocab and (t[:k], t[k:]) not in merge_set:
                missing += 1
    if missing:
        warn(
            f"hf_to_gguf: warning: {missing} token splits are not listed as merges; llama.cpp's "
            "SPM tokenizer may merge pairs HF's BPE would not"
        )

    unk_text = _token_text(tok_cfg.get("unk_token")) or model.get("unk_token")
    unk_id = vocab.get(unk_text) if unk_text is not None else None

    tokens, scores, types = [], [], []
    for i in range(n_vocab):
        text = by_id.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            scores.append(-1e9)
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(text)
        scores.append(-float(best_rank[text] + 1) if text in best_rank else 0.0)
        if i == unk_id:
            types.append(gguf.TokenType.UNKNOWN)
        elif i in added_by_id:
            types.append(gguf.TokenType.CONTROL if added_by_id[i].get("special") else gguf.TokenType.USER_DEFINED)
        elif _BYTE_RE.match(text):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)

    def special_id(key, cfg_key):
        text = _token_text(tok_cfg.get(key))
        if text is not None and text in vocab:
            return vocab[text]
        v = cfg.get(cfg_key)
        if isinstance(v, list):
            v = v[0] if v else None
        return v

    bos_id = special_id("bos_token", "bos_token_id")
    eos_id = special_id("eos_token", "eos_token_id")
    pad_text = _token_text(tok_cfg.get("pad_token"))
    pad_id = vocab.get(pad_text) if pad_text is not None else None

    # add_bos / add_eos: tokenizer_config.json, else the post-processor's template.
    post = tok_json.get("post_processor") or {}
    single = post.get("single") or [] if post.get("type") == "TemplateProcessing" else []
    seq = [("Sequence" in s) for s in single]
    first_seq = seq.index(True) if True in seq else len(single)
    add_bos = tok_cfg.get("add_bos_token")
    if add_bos is None:
        add_bos = first_seq > 0
    add_eos = tok_cfg.get("add_eos_token")
    if add_eos is None:
        add_eos = first_seq < len(single) - 1

    # add_space_prefix: a Prepend("▁") normalizer, or a Metaspace pre-tokenizer that prepends.
    def walk(node, kind):
        if not node:
            return []
        if node.get("type") == "Sequence":
            out = []
            for sub in node.get(kind) or []:
                out += walk(sub, kind)
            return out
        return [node]

    add_space_prefix = False
    for n in walk(tok_json.get("normalizer"), "normalizers"):
        if n.get("type") == "Prepend" and n.get("prepend") == "\u2581":
            add_space_prefix = True
    for n in walk(tok_json.get("pre_tokenizer"), "pretokenizers"):
        if n.get("type") == "Metaspace":
            scheme = n.get("prepend_scheme", "always" if n.get("add_prefix_space", True) else "never")
            add_space_prefix = add_space_prefix or scheme != "never"

    extra = []
    if extra_eog and gen_cfg:
        ids = gen_cfg.get("eos_token_id")
        ids = ids if isinstance(ids, list) else [ids] if ids is not None else []
        extra = [i for i in ids if i != eos_id]
        if len(extra) > 2:
            warn(f"hf_to_gguf: warning: only two extra stop ids fit (eot, eom); dropping {extra[2:]}")
            extra = extra[:2]

    return {
        "tokens": tokens,
        "scores": scores,
        "types": [int(t) for t in types],
        "bos_id": bos_id,
        "eos_id": eos_id,
        "unk_id": unk_id,
        "pad_id": pad_id,
        "eot_id": extra[0] if len(extra) > 0 else None,
        "eom_id": extra[1] if len(extra) > 1 else None,
        "add_bos": bool(add_bos),
        "add_eos": bool(add_eos),
        "add_space_prefix": add_space_prefix,
        "chat_template": tok_cfg.get("chat_template"),
    }


# ---------------------------------------------------------------------------------------------
# conversion


def convert(model_dir, out_path, outtype=None, extra_eog=True, log=print):
    cfg = read_json(model_dir, "config.json")
    if cfg.get("model_type") != "llama":
        raise SystemExit(f"hf_to_gguf: model_type {cfg.get('model_type')!r} is not 'llama'")
    tok_json = read_json(model_dir, "tokenizer.json")
    tok_cfg = read_json(model_dir, "tokenizer_config.json", required=False) or {}
    gen_cfg = read_json(model_dir, "generation_config.json", required=False) or {}

    st = SafetensorsDir(model_dir)
    plan = plan_tensors(st, cfg)

    src_types = {st.dtype(hf) for _, hf, _ in plan if len(st.shape(hf)) >= 2}
    if outtype is None:
        if len(src_types) != 1:
            raise SystemExit(f"hf_to_gguf: mixed source dtypes {sorted(src_types)}; pass --outtype")
        outtype = src_types.pop()
    outtype = outtype.upper()
    if outtype not in _GGML_TYPES:
        raise SystemExit(f"hf_to_gguf: unsupported --outtype {outtype}")

    n_embd = cfg["hidden_size"]
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads") or n_head
    head_dim = cfg.get("head_dim") or n_embd // n_head
    vocab = build_vocab(tok_json, tok_cfg, cfg, gen_cfg, extra_eog=extra_eog, warn=log)
    n_vocab = len(vocab["tokens"])
    emb_shape = st.shape("model.embed_tokens.weight")
    if emb_shape != (n_vocab, n_embd):
        raise SystemExit(f"hf_to_gguf: embed_tokens shape {emb_shape} != ({n_vocab}, {n_embd})")

    w = gguf.GGUFWriter(out_path, "llama")
    w.add_name(os.path.basename(os.path.normpath(model_dir)))
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(n_embd)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_rope_dimension_count(head_dim)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    if head_dim != n_embd // n_head:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    w.add_rope_freq_base(float(cfg.get("rope_theta", 10000.0)))
    scaling = cfg.get("rope_scaling")
    if scaling:
        kind = scaling.get("rope_type") or scaling.get("type")
        if kind == "linear":
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(float(scaling["factor"]))
        elif kind != "default":
            raise SystemExit(f"hf_to_gguf: rope_scaling type {kind!r} is not supported")
    w.add_vocab_size(n_vocab)
    w.add_file_type(_FILE_TYPES[outtype])

    w.add_tokenizer_model("llama")
    w.add_token_list(vocab["tokens"])
    w.add_token_scores(vocab["scores"])
    w.add_token_types(vocab["types"])
    for key, fn in (
        ("bos_id", w.add_bos_token_id),
        ("eos_id", w.add_eos_token_id),
        ("unk_id", w.add_unk_token_id),
        ("pad_id", w.add_pad_token_id),
        ("eot_id", w.add_eot_token_id),
        ("eom_id", w.add_eom_token_id),
    ):
        if vocab[key] is not None:
            fn(int(vocab[key]))
    w.add_add_bos_token(vocab["add_bos"])
    w.add_add_eos_token(vocab["add_eos"])
    w.add_add_space_prefix(vocab["add_space_prefix"])
    if vocab["chat_template"]:
        w.add_chat_template(vocab["chat_template"])

    # Tensor infos first, then the data one tensor at a time (memory: one tensor).
    jobs = []
    for gg, hf, heads in plan:
        shape = st.shape(hf)
        dt = outtype if len(shape) >= 2 else "F32"
        nbytes = int(np.prod(shape)) * _ITEMSIZE[dt]
        np_dtype = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}[dt]
        w.add_tensor_info(gg, shape, np.dtype(np_dtype), nbytes, raw_dtype=_GGML_TYPES[dt])
        jobs.append((gg, hf, heads, dt))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for gg, hf, heads, dt in jobs:
        raw = st.raw(hf)
        if heads is not None:
            raw = permute_rotate_half_to_interleaved(np.asarray(raw), heads)
        data = convert_dtype(raw, st.dtype(hf), dt)
        w.write_tensor_data(data)
        del raw, data
    w.close()
    log(f"hf_to_gguf: wrote {out_path} ({len(jobs)} tensors, {outtype}, vocab {n_vocab})")
    return out_path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", help="Hugging Face model directory (Llama architecture)")
    ap.add_argument("out", help="output .gguf path")
    ap.add_argument("--outtype", choices=["f32", "f16", "bf16"], default=None,
                    help="dtype of 2-D weights (default: the source dtype); norms are always f32")
    ap.add_argument("--no-extra-eog", action="store_true",
                    help="do not write generation_config's extra eos ids as eot/eom ids")
    args = ap.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    convert(args.model_dir, args.out, args.outtype, extra_eog=not args.no_extra_eog, log=log)


if __name__ == "__main__":
    main()
