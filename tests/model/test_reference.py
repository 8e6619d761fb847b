"""The NumPy reference forward pass (reference.py) against the recorded greedy outputs of the
real stories260K model, plus self-checks of the reference and of st_io. These need no C build.

The greedy goldens are checked by teacher forcing: one forward over prompt + generated ids gives
the logits at every position, and the argmax at position i must be the id at i + 1."""
import json

import numpy as np
import pytest

import reference
import st_io
import tiny_model

GOLDENS = ["golden_prompt_once_upon_a_time.json", "golden_prompt_tom_and_sue.json",
           "golden_chat.json"]


@pytest.fixture(scope="module")
def model(stories):
    return reference.load(stories)


def load_golden(stories, name):
    with open(stories / "golden" / name) as f:
        return json.load(f)


def top2_gaps(logits):
    top = np.sort(logits, axis=-1)
    return top[:, -1] - top[:, -2]


def test_bos_greedy_until_natural_stop(model, stories):
    g = load_golden(stories, "golden_greedy_ids.json")
    stop = g["natural_stop"]
    prompt = g["prompt_ids"]
    gen = stop["generated_ids_until_stop"]
    assert gen[-1] == stop["stop_token_id"] and len(gen) == stop["stop_index"] + 1
    assert gen[: g["max_new_tokens"]] == g["generated_ids"]
    seq = prompt + gen
    logits = reference.forward(model, seq)
    pred = logits.argmax(axis=-1)[len(prompt) - 1 : len(seq) - 1]
    assert pred.tolist() == gen
    # The stop: no stop id before index stop_index, the stop id exactly there.
    eos = reference.eos_ids(stories)
    assert eos == [2, 1]
    assert [i for i, t in enumerate(gen) if t in eos] == [stop["stop_index"]]
    gaps = top2_gaps(logits[len(prompt) - 1 : len(seq) - 1])
    first = gaps[: g["max_new_tokens"]]
    assert abs(first.min() - g["min_top2_logit_gap"]) < 1e-5
    assert int(first.argmin()) == g["min_top2_logit_gap_at"]
    assert abs(gaps.min() - stop["min_top2_logit_gap"]) < 1e-5


@pytest.mark.parametrize("name", GOLDENS)
def test_prompt_goldens(model, stories, name):
    g = load_golden(stories, name)
    prompt, gen = g["prompt_ids"], g["generated_ids"]
    assert len(gen) == g["max_new_tokens"] and g["finish_reason"] == "length"
    seq = prompt + gen
    logits = reference.forward(model, seq)
    steps = logits[len(prompt) - 1 : len(seq) - 1]
    assert steps.argmax(axis=-1).tolist() == gen
    assert not set(gen) & set(reference.eos_ids(stories)), "finish_reason length: no stop id"
    assert abs(top2_gaps(steps).min() - g["min_top2_logit_gap"]) < 1e-5
    if "first_step_logits_top5" in g:
        first = steps[0]
        order = np.argsort(-first)[:5]
        for (tok, val), got in zip(g["first_step_logits_top5"], order):
            assert int(got) == tok
            assert abs(first[tok] - val) < 1e-4


def test_greedy_with_kv_cache_matches_golden(model, stories):
    g = load_golden(stories, "golden_prompt_once_upon_a_time.json")
    out = reference.greedy(model, g["prompt_ids"], g["max_new_tokens"], reference.eos_ids(stories))
    assert out == g["generated_ids"]


def test_greedy_from_bos_stops_naturally(model, stories):
    g = load_golden(stories, "golden_greedy_ids.json")
    out = reference.greedy(model, [1], 1000, reference.eos_ids(stories))
    assert out == g["natural_stop"]["generated_ids_until_stop"]


# --- self-checks of the reference on tiny random models -------------------------------------

SCALINGS = {
    "none": None,
    "linear": {"rope_type": "linear", "factor": 2.0},
    "dynamic": {"rope_type": "dynamic", "factor": 4.0},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
}


@pytest.mark.parametrize("scaling", sorted(SCALINGS))
def test_reference_chunking_invariance(tmp_path, scaling):
    """Feeding a sequence in pieces through the KV cache gives the same logits as one forward:
    every RoPE variant (dynamic included) depends on the position only."""
    tiny_model.make_model(tmp_path, arch="MistralForCausalLM", sliding_window=7,
                          rope_scaling=SCALINGS[scaling], max_position_embeddings=24, seed=3)
    m = reference.load(tmp_path)
    ids = tiny_model.random_ids(40, m.vocab, seed=4)
    full = reference.forward(m, ids)
    cache = reference.KVCache(m)
    parts = [reference.forward(m, ids[a:b], cache) for a, b in [(0, 5), (5, 6), (6, 31), (31, 40)]]
    assert np.max(np.abs(np.concatenate(parts) - full)) < 1e-9


def test_reference_rope_variants(tmp_path):
    tiny_model.make_model(tmp_path / "a", seed=1, max_position_embeddings=24)
    plain = reference.load(tmp_path / "a")
    pos = np.arange(60)
    # linear: position / factor
    plain.rope_type, plain.rope = "linear", {"factor": 2.0}
    inv = plain._base_inv_freq()
    plain.rope_type = "default"
    np.testing.assert_allclose(pos[:, None] * inv, plain.angles(pos / 2.0), rtol=1e-12)
    # dynamic, the per-position variant: plain up to max_position_embeddings, then the base
    # grows with p + 1
    plain.rope_type, plain.rope = "dynamic", {"factor": 4.0}
    saved, reference.DYNAMIC_NTK = reference.DYNAMIC_NTK, "transformers"
    try:
        ang = plain.angles(pos)
    finally:
        reference.DYNAMIC_NTK = saved
    plain.rope_type = "default"
    base = plain.angles(pos)
    np.testing.assert_array_equal(ang[:24], base[:24])
    d = plain.head_dim
    p = 40
    theta = 10000.0 * (4.0 * (p + 1) / 24 - 3.0) ** (d / (d - 2))
    want = p / theta ** (np.arange(0, d, 2) / d)
    np.testing.assert_allclose(ang[p], want, rtol=1e-12)
    # kiln's convention (vLLM): one base for every position
    plain.rope_type = "dynamic"
    saved, reference.DYNAMIC_NTK = reference.DYNAMIC_NTK, "vllm"
    try:
        ang = plain.angles(pos)
    finally:
        reference.DYNAMIC_NTK = saved
    theta = 10000.0 * 13.0 ** (d / (d - 2))
    np.testing.assert_allclose(ang, pos[:, None] * theta ** (-np.arange(0, d, 2) / d), rtol=1e-12)
    # llama3 band by band, written as a scalar loop
    plain.rope_type = "llama3"
    plain.rope = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 64}
    got = plain._base_inv_freq()
    for i in range(d // 2):
        f = 10000.0 ** (-2 * i / d)
        wl = 2 * np.pi / f
        if wl < 16:
            want_i = f
        elif wl > 64:
            want_i = f / 8
        else:
            s = (64 / wl - 1) / 3
            want_i = (1 - s) * f / 8 + s * f
        assert abs(got[i] - want_i) <= 1e-15 * f


def test_reference_window_and_gqa(tmp_path):
    """A window at least the sequence length changes nothing; GQA equals MHA with each KV head
    repeated for its group of query heads."""
    cfg = tiny_model.make_config(arch="MistralForCausalLM", sliding_window=None)
    w = tiny_model.make_weights(cfg, seed=5)
    tiny_model.write_model(tmp_path / "nowin", cfg, w)
    cfg_w = dict(cfg, sliding_window=30)
    tiny_model.write_model(tmp_path / "win", cfg_w, w)
    ids = tiny_model.random_ids(30, cfg["vocab_size"], seed=6)
    a = reference.forward(reference.load(tmp_path / "nowin"), ids)
    b = reference.forward(reference.load(tmp_path / "win"), ids)
    assert np.max(np.abs(a - b)) < 1e-12
    cfg_m = dict(cfg, num_key_value_heads=cfg["num_attention_heads"])
    wm = dict(w)
    g = cfg["num_attention_heads"] // cfg["num_key_value_heads"]
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    for i in range(cfg["num_hidden_layers"]):
        for t in ("k_proj", "v_proj"):
            name = f"model.layers.{i}.self_attn.{t}.weight"
            heads = w[name].reshape(cfg["num_key_value_heads"], hd, -1)
            wm[name] = np.repeat(heads, g, axis=0).reshape(-1, cfg["hidden_size"])
    tiny_model.write_model(tmp_path / "mha", cfg_m, wm)
    c = reference.forward(reference.load(tmp_path / "mha"), ids)
    assert np.max(np.abs(a - c)) < 1e-12


# --- st_io ----------------------------------------------------------------------------------


def test_bf16_round_to_nearest_even():
    one = 1.0
    ulp = 2.0 ** -7  # BF16 spacing at 1.0
    x = np.array([one, one + ulp / 2, one + 3 * ulp / 2, one + ulp / 2 + 2.0 ** -20, -2.5,
                  3.0e38, np.inf], dtype=np.float32)
    got = st_io.round_to_dtype(x, "BF16")
    want = [one, one, one + 2 * ulp, one + ulp, -2.5, np.float32(3.0e38), np.inf]
    assert got[:5].tolist() == want[:5]
    assert got[5] == st_io.bf16_bits_to_f32(np.array([0x7F62], np.uint16))[0]
    assert got[6] == np.inf
    assert np.isnan(st_io.round_to_dtype(np.array([np.nan], np.float32), "BF16")[0])


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_st_io_round_trip_and_shards(tmp_path, dtype):
    cfg = tiny_model.make_config(dtype=dtype, layers=3)
    w = tiny_model.make_weights(cfg, seed=2)
    tiny_model.write_model(tmp_path / "one", cfg, w, dtype=dtype)
    tiny_model.write_model(tmp_path / "three", cfg, w, dtype=dtype, shards=3)
    one = st_io.read_model(tmp_path / "one")
    three = st_io.read_model(tmp_path / "three")
    assert len(st_io.model_files(tmp_path / "three")) == 3
    assert sorted(one) == sorted(three) == sorted(w)
    for name, a in w.items():
        np.testing.assert_array_equal(one[name], st_io.round_to_dtype(a, dtype))
        np.testing.assert_array_equal(three[name], one[name])
    assert set(st_io.read_dtypes(tmp_path / "one" / "model.safetensors").values()) == {dtype}
    with open(tmp_path / "one" / "model.safetensors", "rb") as f:
        n = int.from_bytes(f.read(8), "little")
    assert n % 8 == 0


def test_st_io_reads_the_stories_weights(stories):
    w = st_io.read_model(stories)
    assert len(w) == 47 and "lm_head.weight" not in w
    assert w["model.layers.0.self_attn.q_proj.weight"].shape == (64, 64)
    assert w["model.layers.0.self_attn.k_proj.weight"].shape == (32, 64)
