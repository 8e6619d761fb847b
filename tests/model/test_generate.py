"""`kiln generate` on the real stories260K model against its recorded greedy outputs.

Conventions the tests rely on: greedy at temperature 0 (the default); a text prompt is encoded
with the model's tokenizer with special tokens (BOS first; an empty prompt is BOS alone);
--prompt-ids are used verbatim; generation stops at any eos id of generation_config.json
(here [2, 1]; the model ends a story with BOS) and the stop id is not printed (vLLM's
behaviour for EOS); --ids prints the generated ids (not the prompt's) as one JSON array.
The printed text is decode(prompt + generated) minus decode(prompt), special tokens skipped;
one trailing newline after it is allowed.
"""
import json
import shutil

import pytest

import harness

PROMPT_GOLDENS = ["golden_prompt_once_upon_a_time.json", "golden_prompt_tom_and_sue.json"]


def golden(stories, name):
    with open(stories / "golden" / name) as f:
        return json.load(f)


def generate(stories, *args):
    rc, out, err = harness.run_kiln(["generate", "--model", stories, *args])
    assert rc == 0, f"kiln generate {' '.join(map(str, args))} exited {rc}: {err}"
    return out


def generate_ids(stories, *args):
    out = generate(stories, *args, "--ids")
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"--ids prints one line, got {out!r}"
    ids = json.loads(lines[0])
    assert isinstance(ids, list) and all(isinstance(t, int) for t in ids)
    return ids


def strip_newline(out):
    return out[:-1] if out.endswith("\n") else out


def test_greedy_from_bos(stories):
    g = golden(stories, "golden_greedy_ids.json")
    n = g["max_new_tokens"]
    assert generate_ids(stories, "--prompt", "", "--max-tokens", n) == g["generated_ids"]
    assert generate_ids(stories, "--prompt-ids", "[1]", "--max-tokens", n) == g["generated_ids"]
    assert strip_newline(generate(stories, "--prompt", "", "--max-tokens", n)) == g["text"]
    with open(stories / "golden" / "golden_greedy.txt") as f:
        assert g["text"] == f.read()


def test_natural_stop_excludes_the_stop_id(stories):
    stop = golden(stories, "golden_greedy_ids.json")["natural_stop"]
    until = stop["generated_ids_until_stop"]
    assert until[-1] == stop["stop_token_id"] == 1
    ids = generate_ids(stories, "--prompt", "", "--max-tokens", 500)
    assert ids == until[:-1]
    text = strip_newline(generate(stories, "--prompt", "", "--max-tokens", 500))
    assert text == stop["text_until_stop"]
    # a budget that ends exactly at the stop token: the stop id is still not printed
    assert generate_ids(stories, "--prompt", "", "--max-tokens", len(until)) == until[:-1]


@pytest.mark.parametrize("name", PROMPT_GOLDENS)
def test_text_prompts(stories, name):
    g = golden(stories, name)
    n = g["max_new_tokens"]
    assert generate_ids(stories, "--prompt", g["prompt"], "--max-tokens", n) == g["generated_ids"]
    text = strip_newline(generate(stories, "--prompt", g["prompt"], "--max-tokens", n))
    assert text == g["generated_text"]
    ids = generate_ids(stories, "--prompt-ids", json.dumps(g["prompt_ids"]), "--max-tokens", n)
    assert ids == g["generated_ids"]


def test_chat_prompt_ids(stories):
    g = golden(stories, "golden_chat.json")
    ids = generate_ids(stories, "--prompt-ids", json.dumps(g["prompt_ids"]), "--max-tokens",
                       g["max_new_tokens"])
    assert ids == g["generated_ids"]


def test_max_tokens_cuts_greedy_output(stories):
    g = golden(stories, "golden_greedy_ids.json")
    assert generate_ids(stories, "--prompt", "", "--max-tokens", 10) == g["generated_ids"][:10]
    assert generate_ids(stories, "--prompt", "", "--max-tokens", 1) == g["generated_ids"][:1]


def test_seeded_sampling(stories):
    args = ["--prompt", "Once upon a time", "--max-tokens", 64, "--temperature", 0.8]
    a = generate_ids(stories, *args, "--seed", 7)
    b = generate_ids(stories, *args, "--seed", 7)
    c = generate_ids(stories, *args, "--seed", 8)
    assert a == b, "the same seed must give the same ids"
    assert a != c, "another seed should give other ids over 64 tokens"
    for ids in (a, c):
        assert 0 < len(ids) <= 64 and all(0 <= t < 512 for t in ids)
        assert 1 not in ids and 2 not in ids, "stop ids are not printed"


def generate_error(model_dir, *args):
    rc, out, err = harness.run_kiln(["generate", "--model", model_dir, *args])
    assert rc == 1, f"exit {rc} (want 1), stderr: {err}"
    assert err.startswith("kiln generate: "), err
    return err


def test_missing_model_files(stories, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    err = generate_error(empty, "--prompt", "hi", "--max-tokens", 4)
    assert "config.json" in err or "tokenizer.json" in err or "model.safetensors" in err
    generate_error(tmp_path / "does-not-exist", "--prompt", "hi", "--max-tokens", 4)
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    for f in ("config.json", "generation_config.json", "tokenizer.json",
              "tokenizer_config.json"):
        shutil.copy(stories / f, no_weights / f)
    err = generate_error(no_weights, "--prompt", "hi", "--max-tokens", 4)
    assert "model.safetensors" in err
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    for f in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy(stories / f, no_tok / f)
    err = generate_error(no_tok, "--prompt", "hi", "--max-tokens", 4)
    assert "tokenizer.json" in err
