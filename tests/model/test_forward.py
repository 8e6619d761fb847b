"""kiln's CPU forward pass (through tests/model/forward_runner) against the NumPy reference on
random tiny models that cover the supported shapes and options.

Each case prefills one prompt with logits for every position, then decodes two more tokens
(given ids, not sampled); every row must be within relative error 1e-3 (max|a-b| / max|b|) of
the reference's row. F16/BF16 models are compared against the reference run on the same rounded
weights (the reference reads the file), so the tolerance is the fp32 one.
"""
import json

import numpy as np
import pytest

import harness
import reference
import tiny_model

TOL = 1e-3

LLAMA3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
          "original_max_position_embeddings": 64}

# name -> (make_model keyword arguments, prompt length)
CASES = {
    # grouped-query attention, 2 query heads per KV head; untied lm_head; 3 layers
    "llama_gqa": (dict(heads=4, kv_heads=2, layers=3, vocab=397), 70),
    # multi-head (kv = heads), tied embeddings, eps 1e-6
    "llama_mha_tied": (dict(heads=4, kv_heads=4, tie=True, vocab=300, rms_norm_eps=1e-6), 50),
    # multi-query (one KV head), head_dim 24
    "llama_mqa": (dict(hidden=96, intermediate=200, heads=4, kv_heads=1, vocab=517), 45),
    # Qwen2: q/k/v biases, 6 heads / 2 KV heads, tied, theta 1e6
    "qwen2_bias": (dict(arch="Qwen2ForCausalLM", hidden=96, intermediate=236, heads=6,
                        kv_heads=2, vocab=611, tie=True, rope_theta=1e6, rms_norm_eps=1e-6), 60),
    # Llama with attention_bias true
    "llama_attention_bias": (dict(qkv_bias=True, vocab=353), 40),
    # Llama 3.1 rope scaling, prompt beyond original_max_position_embeddings (64); with theta
    # 500000 and head_dim 16 the frequencies fall in all three bands
    "llama3_rope": (dict(rope_scaling=LLAMA3, rope_theta=500000.0, max_position_embeddings=512,
                         vocab=401), 100),
    "linear_rope": (dict(rope_scaling={"rope_type": "linear", "factor": 2.0}, vocab=389), 60),
    # dynamic NTK: positions beyond max_position_embeddings (32) grow the base per position
    # (reference.py, DYNAMIC_NTK); the sequence stays within max_position_embeddings * factor
    # (128), the longest sequence vLLM allows for dynamic scaling
    "dynamic_rope": (dict(rope_scaling={"rope_type": "dynamic", "factor": 4.0},
                          max_position_embeddings=32, vocab=389), 80),
    # legacy "type" key instead of "rope_type"
    "linear_rope_legacy_key": (dict(rope_scaling={"type": "linear", "factor": 4.0}, vocab=389), 40),
    "f16": (dict(dtype="F16", vocab=397), 50),
    "bf16": (dict(dtype="BF16", vocab=397), 50),
    "bf16_qwen2_tied": (dict(arch="Qwen2ForCausalLM", dtype="BF16", tie=True, heads=4,
                             kv_heads=2, vocab=350), 50),
    "sharded": (dict(shards=3, layers=3, vocab=397), 40),
    # head_dim (16) != hidden / heads (12): q_proj [64, 48], o_proj [48, 64]
    "head_dim_16": (dict(hidden=48, intermediate=130, heads=4, kv_heads=2, head_dim=16,
                         vocab=397), 50),
    # Mistral sliding window smaller than the prompt
    "mistral_window": (dict(arch="MistralForCausalLM", sliding_window=16, vocab=397), 60),
    # Qwen2 with use_sliding_window true on every layer (max_window_layers 0)
    "qwen2_window": (dict(arch="Qwen2ForCausalLM", sliding_window=24, heads=4, kv_heads=2,
                          vocab=397), 60),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    made = {}

    def get(name):
        if name not in made:
            kwargs, _ = CASES[name]
            d = tmp_path_factory.mktemp(name)
            tiny_model.make_model(d, seed=sorted(CASES).index(name) + 11, **kwargs)
            made[name] = (d, reference.load(d))
        return made[name]

    return get


def sequence(name, m):
    """Prompt ids and two decode ids for a case, fixed per case."""
    n = CASES[name][1]
    ids = tiny_model.random_ids(n + 2, m.vocab, seed=len(name) * 7 + n)
    return ids[:n], ids[n:]


def check_case(models, name, threads=None, block_size=None):
    d, m = models(name)
    prompt, decode = sequence(name, m)
    steps = [[{"seq": 0, "ids": prompt, "logits": "all"}],
             [{"seq": 0, "ids": decode[:1], "logits": "all"}],
             [{"seq": 0, "ids": decode[1:], "logits": "last"}]]
    out = harness.run_runner(d, steps, threads=threads, block_size=block_size)
    got = np.concatenate([out[0][0]["logits"], out[1][0]["logits"], out[2][0]["logits"]])
    want = reference.forward(m, prompt + decode)
    harness.assert_close_rows(got, want, TOL, name)
    return got


@pytest.mark.parametrize("name", list(CASES))
def test_logits_match_reference(models, name):
    check_case(models, name)


@pytest.mark.parametrize("block_size", [8, 32])
@pytest.mark.parametrize("name", ["llama_gqa", "mistral_window", "dynamic_rope"])
def test_block_sizes(models, name, block_size):
    check_case(models, name, block_size=block_size)


def test_threads_agree(models):
    one = check_case(models, "llama_gqa", threads=1)
    two = check_case(models, "llama_gqa", threads=2)
    harness.assert_close_rows(two, one, 1e-5, "threads 2 vs 1")


def test_stories260K_logits(stories):
    """The real model: the golden chat prompt, every position."""
    with open(stories / "golden" / "golden_chat.json") as f:
        g = json.load(f)
    ids = g["prompt_ids"] + g["generated_ids"][:8]
    out = harness.run_runner(stories, [[{"seq": 0, "ids": ids, "logits": "all"}]])
    want = reference.forward(reference.load(stories), ids)
    harness.assert_close_rows(out[0][0]["logits"], want, TOL, "stories260K")
    pred = out[0][0]["logits"].argmax(axis=-1)[len(g["prompt_ids"]) - 1 : -1]
    assert pred.tolist() == g["generated_ids"][:8]


def test_logits_modes(models):
    d, m = models("llama_gqa")
    prompt, decode = sequence("llama_gqa", m)
    steps = [[{"seq": 5, "ids": prompt[:20], "logits": "none"}],
             [{"seq": 5, "ids": prompt[20:], "logits": "last"}],
             [{"seq": 5, "ids": decode, "logits": "all"}]]
    out = harness.run_runner(d, steps)  # checks the row counts per mode
    want = reference.forward(m, prompt + decode)
    harness.assert_close_rows(out[1][0]["logits"], want[len(prompt) - 1 : len(prompt)], TOL, "last")
    harness.assert_close_rows(out[2][0]["logits"], want[len(prompt):], TOL, "all")


def runner_error(model_dir, request):
    p = harness.run_runner_raw(model_dir, request)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 1, f"exit {p.returncode} (want 1), stderr: {err}"
    assert err.startswith("forward_runner: "), err
    return err


BAD_REQUESTS = {
    "a sequence twice in one step": {"steps": [[{"seq": 0, "ids": [5, 6], "logits": "last"},
                                                {"seq": 0, "ids": [7], "logits": "last"}]]},
    "token id = vocab_size": {"steps": [[{"seq": 0, "ids": [5, 397], "logits": "last"}]]},
    "negative token id": {"steps": [[{"seq": 0, "ids": [-1], "logits": "last"}]]},
    "unknown logits mode": {"steps": [[{"seq": 0, "ids": [5], "logits": "some"}]]},
    "empty chunk": {"steps": [[{"seq": 0, "ids": [], "logits": "last"}]]},
    # more KV blocks needed than the pool holds (100 tokens, 16 per block, 2 blocks)
    "KV pool too small": {"num_blocks": 2,
                          "steps": [[{"seq": 0, "ids": [5] * 100, "logits": "last"}]]},
    "not JSON": '{"steps": [[{"seq": 0, "ids": [5]',
}


@pytest.mark.parametrize("what", list(BAD_REQUESTS))
def test_runner_rejects_bad_requests(models, what):
    d, m = models("llama_gqa")
    assert m.vocab == 397
    runner_error(d, BAD_REQUESTS[what])
