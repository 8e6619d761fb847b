"""Broken model directories: corrupted or truncated safetensors files, weights that do not fit
the config, and bad config.json values. Each must be refused by forward_runner (and kiln
generate) with exit status exactly 1 (no crash, no signal) and a one-line message that names
the file, tensor or field at fault. The wording is not asserted, only the names."""
import json
import shutil
import struct

import numpy as np
import pytest

import harness
import st_io
import tiny_model

REQUEST = {"steps": [[{"seq": 0, "ids": [3, 4, 5], "logits": "last"}]]}
ST = "model.safetensors"
Q0 = "model.layers.0.self_attn.q_proj.weight"
HIDDEN = 64


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A valid model: Llama, hidden 64, 8 heads / 4 KV heads, 2 layers, vocab 300, untied."""
    d = tmp_path_factory.mktemp("base")
    cfg = tiny_model.make_config(hidden=HIDDEN, heads=8, kv_heads=4, layers=2, vocab=300)
    weights = tiny_model.make_weights(cfg, seed=9)
    tiny_model.write_model(d, cfg, weights)
    return d, cfg, weights


@pytest.fixture
def broken(base, tmp_path):
    """A fresh copy of the base model to damage; returns its directory."""
    d = tmp_path / "model"
    shutil.copytree(base[0], d)
    return d


def refused(model_dir, *names):
    """forward_runner must exit 1 with a message containing every one of names."""
    p = harness.run_runner_raw(model_dir, REQUEST)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 1, f"exit {p.returncode} (want 1; negative = signal), stderr: {err}"
    assert err.startswith("forward_runner: "), err
    for name in names:
        assert name in err, f"{name!r} not in {err!r}"
    return err


def refused_any(model_dir, *choices):
    err = refused(model_dir)
    assert any(c in err for c in choices), f"none of {choices} in {err!r}"
    return err


def test_base_model_loads(base):
    harness.run_runner(base[0], REQUEST["steps"])


# --- safetensors bytes ----------------------------------------------------------------------


def raw(d):
    return (d / ST).read_bytes()


def split(blob):
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + n]), blob[8 + n :]


def write_raw(d, blob):
    (d / ST).write_bytes(blob)


@pytest.mark.parametrize("where", ["0", "4", "8", "mid-header", "end-of-header", "header+100",
                                   "mid-data", "last-byte"])
def test_truncated_file(broken, where):
    blob = raw(broken)
    (n,) = struct.unpack("<Q", blob[:8])
    cut = {"0": 0, "4": 4, "8": 8, "mid-header": 8 + n // 2, "end-of-header": 8 + n,
           "header+100": 8 + n + 100, "mid-data": (8 + n + len(blob)) // 2,
           "last-byte": len(blob) - 1}[where]
    write_raw(broken, blob[:cut])
    refused(broken, ST)


@pytest.mark.parametrize("length", ["huge", "big-endian", "zero", "plus-one", "minus-eight",
                                    "file-size"])
def test_bad_header_length(broken, length):
    blob = raw(broken)
    (n,) = struct.unpack("<Q", blob[:8])
    value = {"huge": 2**63 + 5, "big-endian": struct.unpack(">Q", blob[:8])[0], "zero": 0,
             "plus-one": n + 1, "minus-eight": n - 8, "file-size": len(blob)}[length]
    write_raw(broken, struct.pack("<Q", value) + blob[8:])
    refused(broken, ST)


@pytest.mark.parametrize("text", [b"not json", b"[1, 2, 3]", b'{"a": 1', b"\xff\xfe{}",
                                  b'{"x": {"dtype": "F32"}}'])
def test_header_not_a_valid_json_object(broken, text):
    _, data = split(raw(broken))
    text = text + b" " * (-len(text) % 8)
    write_raw(broken, struct.pack("<Q", len(text)) + text + data)
    refused(broken, ST)


def rewrite_header(d, name, **fields):
    header, data = split(raw(d))
    header[name].update(fields)
    write_raw(d, st_io.assemble(header, data))
    return header


def test_data_offsets_out_of_range(broken):
    header, data = split(raw(broken))
    b, e = header["model.norm.weight"]["data_offsets"]
    rewrite_header(broken, "model.norm.weight", data_offsets=[len(data) + 16, len(data) + 16 + e - b])
    refused(broken, "model.norm.weight")


def test_data_offsets_size_mismatch(broken):
    header, _ = split(raw(broken))
    b, e = header["model.norm.weight"]["data_offsets"]
    rewrite_header(broken, "model.norm.weight", data_offsets=[b, e - 4])
    refused(broken, "model.norm.weight")


def test_data_offsets_reversed(broken):
    header, _ = split(raw(broken))
    b, e = header["model.norm.weight"]["data_offsets"]
    rewrite_header(broken, "model.norm.weight", data_offsets=[e, b])
    refused(broken, "model.norm.weight")


def test_overlapping_tensors(broken):
    header, _ = split(raw(broken))
    a = "model.layers.0.input_layernorm.weight"
    rewrite_header(broken, "model.layers.0.post_attention_layernorm.weight",
                   data_offsets=header[a]["data_offsets"])
    refused(broken, ST)


@pytest.mark.parametrize("shape", [[-64], [64, -1], ["64"], 64, [2**62, 2**62]])
def test_bad_shape_in_header(broken, shape):
    rewrite_header(broken, "model.norm.weight", shape=shape)
    refused(broken, "model.norm.weight")


def test_unknown_dtype(broken):
    rewrite_header(broken, "model.norm.weight", dtype="X99")
    refused(broken, "model.norm.weight")


# --- tensors that do not fit the config -----------------------------------------------------


def rewrite_tensors(d, weights, change=None, drop=()):
    tensors = {n: (a, "F32") for n, a in weights.items() if n not in drop}
    for n, v in (change or {}).items():
        tensors[n] = v
    (d / ST).unlink()
    st_io.write_file(d / ST, tensors)


def test_wrong_shape_for_config(base, broken):
    w = base[2]
    rewrite_tensors(broken, w, change={Q0: (np.zeros((HIDDEN + 1, HIDDEN), np.float32), "F32")})
    refused(broken, Q0)


def test_transposed_projection(base, broken):
    name = "model.layers.1.mlp.down_proj.weight"
    rewrite_tensors(broken, base[2], change={name: (base[2][name].T.copy(), "F32")})
    refused(broken, name)


def test_embedding_rows_differ_from_vocab_size(base, broken):
    name = "model.embed_tokens.weight"
    rewrite_tensors(broken, base[2], change={name: (np.zeros((301, HIDDEN), np.float32), "F32")})
    refused(broken, name)


@pytest.mark.parametrize("name", ["model.layers.1.mlp.up_proj.weight", "model.norm.weight",
                                  "lm_head.weight", "model.embed_tokens.weight", Q0])
def test_missing_tensor(base, broken, name):
    rewrite_tensors(broken, base[2], drop=[name])
    refused(broken, name)


@pytest.mark.parametrize("dtype", ["I32", "I8", "F64"])
def test_unsupported_dtype(base, broken, dtype):
    name = "model.layers.0.post_attention_layernorm.weight"
    rewrite_tensors(broken, base[2], change={name: (np.ones(HIDDEN), dtype)})
    refused(broken, name)


def test_missing_weights_file(broken):
    (broken / ST).unlink()
    refused(broken, ST)


# --- sharded models -------------------------------------------------------------------------


@pytest.fixture
def sharded(base, tmp_path):
    d = tmp_path / "sharded"
    tiny_model.write_model(d, base[1], base[2], shards=2)
    return d


def test_sharded_base_loads(sharded):
    harness.run_runner(sharded, REQUEST["steps"])


def test_missing_shard(sharded):
    shard = "model-00002-of-00002.safetensors"
    (sharded / shard).unlink()
    refused(sharded, shard)


def test_truncated_shard(sharded):
    shard = "model-00001-of-00002.safetensors"
    blob = (sharded / shard).read_bytes()
    (sharded / shard).write_bytes(blob[: len(blob) // 2])
    refused(sharded, shard)


def test_index_not_json(sharded):
    (sharded / st_io.INDEX_NAME).write_text('{"weight_map": {')
    refused(sharded, st_io.INDEX_NAME)


def test_index_names_a_tensor_in_the_wrong_shard(sharded):
    index = json.loads((sharded / st_io.INDEX_NAME).read_text())
    wm = index["weight_map"]
    name = next(n for n, f in wm.items() if f.startswith("model-00001"))
    wm[name] = "model-00002-of-00002.safetensors"
    (sharded / st_io.INDEX_NAME).write_text(json.dumps(index))
    refused(sharded, name)


def test_index_shard_path_escapes_the_directory(sharded):
    index = json.loads((sharded / st_io.INDEX_NAME).read_text())
    name = next(iter(index["weight_map"]))
    index["weight_map"][name] = "../model-00001-of-00002.safetensors"
    (sharded / st_io.INDEX_NAME).write_text(json.dumps(index))
    refused(sharded)


# --- config.json ----------------------------------------------------------------------------

DELETE = object()

CONFIG_CASES = {
    # (changes, names of which the message must contain at least one)
    "missing hidden_size": ({"hidden_size": DELETE}, ["hidden_size"]),
    "missing intermediate_size": ({"intermediate_size": DELETE}, ["intermediate_size"]),
    "kv heads do not divide heads": ({"num_key_value_heads": 3}, ["num_key_value_heads"]),
    "vocab_size 0": ({"vocab_size": 0}, ["vocab_size"]),
    "negative layers": ({"num_hidden_layers": -1}, ["num_hidden_layers"]),
    "hidden_act gelu": ({"hidden_act": "gelu"}, ["hidden_act"]),
    "absurd hidden_size": ({"hidden_size": 1000000000}, ["hidden_size"]),
    "string hidden_size": ({"hidden_size": "64"}, ["hidden_size"]),
    "float layers": ({"num_hidden_layers": 2.5}, ["num_hidden_layers"]),
    "null heads": ({"num_attention_heads": None}, ["num_attention_heads"]),
    "odd head_dim": ({"head_dim": 7}, ["head_dim"]),
    "rms_norm_eps 0": ({"rms_norm_eps": 0}, ["rms_norm_eps"]),
    "negative rope_theta": ({"rope_theta": -1.0}, ["rope_theta"]),
    "mlp_bias true": ({"mlp_bias": True}, ["mlp_bias"]),
    "architecture": ({"architectures": ["GPT2LMHeadModel"]}, ["GPT2LMHeadModel", "architectures"]),
}


def write_config(d, changes):
    cfg = json.loads((d / "config.json").read_text())
    for k, v in changes.items():
        if v is DELETE:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (d / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config_value(broken, case):
    changes, names = CONFIG_CASES[case]
    write_config(broken, changes)
    refused_any(broken, *names)


def test_rope_scaling_yarn(broken):
    write_config(broken, {"rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                           "original_max_position_embeddings": 256}})
    refused_any(broken, "rope_scaling", "rope_type", "yarn")


def test_rope_scaling_llama3_missing_factor(broken):
    write_config(broken, {"rope_scaling": {"rope_type": "llama3", "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0,
                                           "original_max_position_embeddings": 64}})
    refused_any(broken, "factor", "rope_scaling")


def test_config_not_json(broken):
    (broken / "config.json").write_text('{"hidden_size": 64,')
    refused(broken, "config.json")


def test_config_missing(broken):
    (broken / "config.json").unlink()
    refused(broken, "config.json")


# --- through kiln generate ------------------------------------------------------------------


def generate_refused(model_dir, *names):
    rc, out, err = harness.run_kiln(["generate", "--model", model_dir, "--prompt", "hi",
                                     "--max-tokens", 4])
    assert rc == 1, f"exit {rc} (want 1; negative = signal), stderr: {err}"
    assert err.startswith("kiln generate: "), err
    for name in names:
        assert name in err, f"{name!r} not in {err!r}"


def test_generate_refuses_broken_weights(stories, tmp_path):
    d = tmp_path / "stories"
    shutil.copytree(stories, d, ignore=shutil.ignore_patterns("golden", "original"))
    w = st_io.read_model(stories)
    name = "model.layers.2.self_attn.k_proj.weight"
    (d / ST).unlink()
    st_io.write_file(d / ST, {n: (a, "F32") for n, a in w.items() if n != name})
    generate_refused(d, name)
    blob = (stories / ST).read_bytes()
    (d / ST).write_bytes(blob[: len(blob) - 1000])
    generate_refused(d, ST)
    (d / ST).write_bytes(blob)
    write_config(d, {"num_key_value_heads": 3})
    generate_refused(d, "num_key_value_heads")
