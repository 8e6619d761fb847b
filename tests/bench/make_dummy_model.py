#!/usr/bin/env python3
"""Write a Hugging Face Llama model dir with seeded random weights at a real model's shapes.

    python3 tests/bench/make_dummy_model.py OUTDIR --shapes DIR [--dtype f16|bf16] [--seed N]

DIR is a shapes dir such as ../shared/fixtures/shapes/tinyllama-1.1b-chat (config.json,
generation_config.json, tokenizer.json, tokenizer_config.json, no weights). OUTDIR gets copies
of its JSON files (a tokenizer.json that only holds a relative path to the real file, as a
checkout without symlinks leaves a git symlink, is replaced by the file it names; config.json's
torch_dtype is set to the dtype written) plus model.safetensors with:

* every 2-D weight ~ normal(0, 0.02), biases (when config asks for them) likewise;
* every norm weight 1.0;
* no lm_head.weight when tie_word_embeddings is true.

The values are drawn per tensor from numpy's default_rng([seed, tensor index in name order]) in
fixed-size chunks, so a seed always gives the same file. BF16 is the top 16 bits of the float32
sample after round-to-nearest-even, F16 is numpy's float16 cast (also nearest-even). The file is
written tensor by tensor, chunk by chunk, so memory stays at a few tens of MB even for the
2.2 GB TinyLlama; it is written as model.safetensors.tmp and renamed at the end.

Unlike kiln's --load-format dummy, the weights are on disk, so other servers (the llama.cpp peer,
via tests/bench/hf_to_gguf.py) can serve exactly the same model.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

STD = 0.02
CHUNK = 1 << 22  # elements drawn per rng call (fixed: part of the output's definition)
COPY_EXT = (".json", ".jinja", ".model", ".txt")


def read_maybe_link(path):
    """Bytes of path; a short file holding only a relative path to a .json file is followed."""
    with open(path, "rb") as f:
        raw = f.read()
    text = raw.strip()
    if len(text) < 4096 and text.endswith(b".json") and b"\n" not in text and not text.startswith(b"{"):
        with open(os.path.join(os.path.dirname(path), text.decode("utf-8")), "rb") as f:
            raw = f.read()
    return raw


def tensor_specs(cfg):
    """[(name, shape, kind)] with kind 'normal' or 'ones', for a Llama config."""
    n_embd = cfg["hidden_size"]
    n_ff = cfg["intermediate_size"]
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads") or n_head
    head_dim = cfg.get("head_dim") or n_embd // n_head
    n_vocab = cfg["vocab_size"]
    attn_bias = bool(cfg.get("attention_bias", False))
    mlp_bias = bool(cfg.get("mlp_bias", False))
    specs = [("model.embed_tokens.weight", (n_vocab, n_embd), "normal"),
             ("model.norm.weight", (n_embd,), "ones")]
    if not cfg.get("tie_word_embeddings", False):
        specs.append(("lm_head.weight", (n_vocab, n_embd), "normal"))
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        specs += [
            (p + "input_layernorm.weight", (n_embd,), "ones"),
            (p + "post_attention_layernorm.weight", (n_embd,), "ones"),
            (p + "self_attn.q_proj.weight", (n_head * head_dim, n_embd), "normal"),
            (p + "self_attn.k_proj.weight", (n_kv * head_dim, n_embd), "normal"),
            (p + "self_attn.v_proj.weight", (n_kv * head_dim, n_embd), "normal"),
            (p + "self_attn.o_proj.weight", (n_embd, n_head * head_dim), "normal"),
            (p + "mlp.gate_proj.weight", (n_ff, n_embd), "normal"),
            (p + "mlp.up_proj.weight", (n_ff, n_embd), "normal"),
            (p + "mlp.down_proj.weight", (n_embd, n_ff), "normal"),
        ]
        if attn_bias:
            specs += [
                (p + "self_attn.q_proj.bias", (n_head * head_dim,), "normal"),
                (p + "self_attn.k_proj.bias", (n_kv * head_dim,), "normal"),
                (p + "self_attn.v_proj.bias", (n_kv * head_dim,), "normal"),
            ]
        if mlp_bias:
            specs += [
                (p + "mlp.gate_proj.bias", (n_ff,), "normal"),
                (p + "mlp.up_proj.bias", (n_ff,), "normal"),
                (p + "mlp.down_proj.bias", (n_embd,), "normal"),
            ]
    return sorted(specs)


def encode(a, dtype):
    """float32 array -> bytes in 'F16' or 'BF16' (round to nearest even)."""
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return (((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")).tobytes()  # samples are finite


def chunks(index, seed, kind, count):
    """float32 chunks of one tensor's values, in row-major order."""
    rng = np.random.default_rng([seed, index])
    done = 0
    while done < count:
        n = min(CHUNK, count - done)
        if kind == "ones":
            yield np.ones(n, dtype=np.float32)
        else:
            yield rng.standard_normal(n, dtype=np.float32) * np.float32(STD)
        done += n


def write_safetensors(path, specs, dtype, seed):
    header = {}
    offset = 0
    for name, shape, _ in specs:
        nbytes = int(np.prod(shape)) * 2
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for index, (name, shape, kind) in enumerate(specs):
            for c in chunks(index, seed, kind, int(np.prod(shape))):
                f.write(encode(c, dtype))
    os.replace(tmp, path)
    return offset


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--shapes", required=True, help="shapes dir (config.json, tokenizer files)")
    ap.add_argument("--dtype", choices=["f16", "bf16"], default="bf16")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    dtype = args.dtype.upper()
    os.makedirs(args.outdir, exist_ok=True)
    for fname in sorted(os.listdir(args.shapes)):
        src = os.path.join(args.shapes, fname)
        if not os.path.isfile(src) or not fname.endswith(COPY_EXT) or "safetensors" in fname:
            continue
        data = read_maybe_link(src)
        if fname == "config.json":
            cfg = json.loads(data)
            cfg["torch_dtype"] = {"F16": "float16", "BF16": "bfloat16"}[dtype]
            data = (json.dumps(cfg, indent=2) + "\n").encode("utf-8")
        with open(os.path.join(args.outdir, fname), "wb") as f:
            f.write(data)
    with open(os.path.join(args.outdir, "config.json")) as f:
        cfg = json.load(f)
    if cfg.get("model_type") != "llama":
        sys.exit(f"make_dummy_model: model_type {cfg.get('model_type')!r} is not 'llama'")
    index = os.path.join(args.outdir, "model.safetensors.index.json")
    if os.path.exists(index):
        os.remove(index)

    specs = tensor_specs(cfg)
    nbytes = write_safetensors(os.path.join(args.outdir, "model.safetensors"), specs, dtype, args.seed)
    n_params = sum(int(np.prod(s)) for _, s, _ in specs)
    print(f"make_dummy_model: {args.outdir}: {len(specs)} tensors, {n_params / 1e9:.3f} B params, "
          f"{nbytes / 1e9:.2f} GB {dtype}, seed {args.seed}", file=sys.stderr)


if __name__ == "__main__":
    main()
