"""The benchmark datasets (bench/dataset.c) against Hugging Face `tokenizers`.

tests/benchserve/tool_dataset prints the samples kiln builds; the token counts are checked
here with the HF tokenizer of the same directory, and the ShareGPT filtering with a Python
copy of vLLM's is_valid_sequence (vllm/benchmarks/dataset_utils.py)."""
import json
import math
import os
import pathlib
import random
import subprocess

import pytest
from tokenizers import Tokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = pathlib.Path(os.environ.get("KILN_FIXTURES", ROOT.parent / "shared" / "fixtures"))
TOOL = ROOT / os.environ.get("KILN_BUILD", "build") / "tests" / "benchserve" / "tool_dataset"

TOKENIZERS = ["models/stories260K", "shapes/tinyllama-1.1b-chat", "tokenizers/llama3",
              "tokenizers/mistral-v3", "tokenizers/qwen2", "tokenizers/gpt2"]


def hf_tokenizer(rel):
    """The HF tokenizer of a fixture directory (a tokenizer.json holding a relative path, a
    git link checked out as a file, is followed)."""
    path = FIXTURES / rel / "tokenizer.json"
    head = path.read_bytes()[:512].strip()
    if not head.startswith(b"{"):
        path = (path.parent / head.decode()).resolve()
    return Tokenizer.from_file(str(path))


def run_tool(rel, name, **flags):
    assert TOOL.exists(), f"{TOOL} is missing: run make first"
    args = [str(TOOL), str(FIXTURES / rel), name]
    for k, v in flags.items():
        args += ["--" + k.replace("_", "-"), str(v)]
    p = subprocess.run(args, capture_output=True, timeout=300)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def load(rel, name, **flags):
    rc, out, err = run_tool(rel, name, **flags)
    assert rc == 0, err
    lines = [json.loads(x) for x in out.splitlines()]
    assert "token_mismatch" in lines[-1]
    return lines[:-1], lines[-1]["token_mismatch"]


def is_valid_sequence(prompt_len, output_len, min_len=4, max_prompt_len=1024,
                      max_total_len=2048, skip_min_output_len_check=False):
    """vLLM's vllm/benchmarks/dataset_utils.py, as published."""
    prompt_too_short = prompt_len < min_len
    output_too_short = (not skip_min_output_len_check) and (output_len < min_len)
    prompt_too_long = prompt_len > max_prompt_len
    combined_too_long = (prompt_len + output_len) > max_total_len
    return not (prompt_too_short or output_too_short or prompt_too_long or combined_too_long)


# ---- random ----

@pytest.mark.parametrize("rel", TOKENIZERS)
@pytest.mark.parametrize("input_len,output_len,ratio,prefix", [(64, 16, 0.5, 4), (200, 8, 0.0, 0)])
def test_random_prompts_encode_to_prompt_len(rel, input_len, output_len, ratio, prefix):
    hf = hf_tokenizer(rel)
    samples, mismatch = load(rel, "random", num_prompts=24, input_len=input_len,
                             output_len=output_len, range_ratio=ratio, prefix_len=prefix, seed=3)
    assert len(samples) == 24
    num_special = len(hf.encode("").ids)  # num_special_tokens_to_add
    real = max(0, input_len - num_special)
    in_lo, in_hi = prefix + math.floor(real * (1 - ratio)), prefix + math.ceil(real * (1 + ratio))
    out_lo = max(math.floor(output_len * (1 - ratio)), 1)
    out_hi = max(math.ceil(output_len * (1 + ratio)), 1)
    total = 0
    for s in samples:
        ids = hf.encode(s["prompt"], add_special_tokens=False).ids
        assert len(ids) == s["prompt_len"], s["prompt"]
        assert out_lo <= s["output_len"] <= out_hi
        if mismatch == 0:
            assert in_lo <= s["prompt_len"] <= in_hi
        if ratio == 0:
            total += s["prompt_len"] - in_lo
    if ratio == 0:
        assert total == mismatch


@pytest.mark.parametrize("rel", ["tokenizers/llama3", "shapes/tinyllama-1.1b-chat"])
def test_random_long_prompts(rel):
    hf = hf_tokenizer(rel)
    samples, mismatch = load(rel, "random", num_prompts=6, input_len=1024, output_len=128,
                             seed=17)
    for s in samples:
        assert len(hf.encode(s["prompt"], add_special_tokens=False).ids) == s["prompt_len"]
        assert s["output_len"] == 128
    if mismatch == 0:
        assert {s["prompt_len"] for s in samples} == {1024 - len(hf.encode("").ids)}


# ---- sharegpt ----

WORDS = ["cat", "dog", "river", "the", "a", "über", "naïve", "東京", "données", "🙂", "if",
         "x = 1;", "\n", "  ", "ließ", "Привет", "lorem", "ipsum", ",", "."]


def sharegpt_entries(seed):
    """Conversations on each side of each bound, in several scripts."""
    rnd = random.Random(seed)
    entries = []
    for i in range(90):
        n_prompt = rnd.choice([0, 1, 2, 3, 5, 20, 300, 900, 1100, 1500])
        n_out = rnd.choice([0, 1, 2, 3, 5, 40, 700, 1200, 2000])
        prompt = f"{i}: " + " ".join(rnd.choice(WORDS) for _ in range(n_prompt))
        completion = " ".join(rnd.choice(WORDS) for _ in range(n_out))
        if i % 3 == 0:
            prompt = prompt[:2 + i % 5]
        entries.append({"conversations": [{"from": "human", "value": prompt},
                                          {"from": "gpt", "value": completion},
                                          {"from": "human", "value": "more"}]})
    entries.append({"conversations": [{"from": "human", "value": "only one turn here"}]})
    entries.append({"id": "no conversations"})
    return entries


@pytest.mark.parametrize("rel", ["tokenizers/llama3", "shapes/tinyllama-1.1b-chat",
                                 "tokenizers/qwen2"])
@pytest.mark.parametrize("fixed", [None, 2])
def test_sharegpt_matches_vllm_filtering(rel, fixed, tmp_path):
    hf = hf_tokenizer(rel)
    entries = sharegpt_entries(7)
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(entries))
    valid = {}
    for e in entries:
        conv = e.get("conversations", [])
        if len(conv) < 2:
            continue
        prompt, completion = conv[0]["value"], conv[1]["value"]
        prompt_len = len(hf.encode(prompt).ids)  # tokenizer(prompt).input_ids
        output_len = len(hf.encode(completion).ids) if fixed is None else fixed
        if is_valid_sequence(prompt_len, output_len, skip_min_output_len_check=fixed is not None):
            valid[prompt] = (prompt_len, output_len)
    assert 5 <= len(valid) < 80  # the generator makes both kinds
    n = len(valid) + 25
    flags = {"num_prompts": n, "seed": 4}
    if fixed is not None:
        flags["sharegpt_output_len"] = fixed
    samples, _ = load(rel, "sharegpt", path=path, **flags)
    assert len(samples) == n
    # every valid entry exactly once (shuffled) before the copies
    assert sorted(s["prompt"] for s in samples[:len(valid)]) == sorted(valid)
    for s in samples:
        assert s["prompt"] in valid
        assert (s["prompt_len"], s["output_len"]) == valid[s["prompt"]]
    assert [s["prompt"] for s in samples[:len(valid)]] != [
        e["conversations"][0]["value"] for e in entries
        if e.get("conversations", [{}])[0].get("value") in valid]


# ---- jsonl ----

def test_jsonl_counts_and_repeats(tmp_path):
    rel = "tokenizers/mistral-v3"
    hf = hf_tokenizer(rel)
    rows = [{"prompt": "What is the capital of India?", "output_tokens": 10},
            {"prompt": "Ünïcödé 東京 🙂 and\nnew lines", "output_tokens": 1520},
            {"prompt": "[INST] a literal control token [/INST]", "output_tokens": 819}]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=i % 2 == 0)
                              for i, r in enumerate(rows)) + "\n\n")
    samples, _ = load(rel, "jsonl", path=path, num_prompts=7, jsonl_output_len=-1)
    assert len(samples) == 7
    for i, s in enumerate(samples):
        r = rows[i % 3]
        assert s["prompt"] == r["prompt"]
        assert s["output_len"] == r["output_tokens"]
        assert s["prompt_len"] == len(hf.encode(r["prompt"]).ids)  # with <s>, as vLLM
    samples, _ = load(rel, "jsonl", path=path, num_prompts=2)
    assert [s["output_len"] for s in samples] == [256, 256]  # vLLM's --custom-output-len


def test_jsonl_error_names_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "output_tokens": 3}\n\n{"prompt": "b", "output_tokens": 0}\n')
    rc, out, err = run_tool("models/stories260K", "jsonl", path=path, num_prompts=1,
                            jsonl_output_len=-1)
    assert rc == 1 and "ERR_PARSE" in err and f"{path}:3:" in err and out == ""
