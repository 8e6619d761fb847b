"""Differential test of frontend/text_stream against Hugging Face `tokenizers`.

For random generated id sequences (encoded random text with multi-byte characters split
across byte-fallback or byte-level tokens, random vocabulary ids, special ids), random
chunkings, random stop strings (substrings of the decoded text and strings that never occur),
with and without a prompt to prime the detokenizer, the concatenated deltas of
tests/e2e/text_stream_driver must equal:

    T = decode(gen)                                     without a prompt
    T = decode(prompt + gen)[len(decode(prompt)):]      with one

cut before (or after, include_stop_str_in_output) the stop string occurrence that ends first
in T (ties: the earlier stop in the list); every delta must be whole UTF-8 characters; the
stream reports the matched stop and the count of ids fed up to the one completing it.
The logprob token strings are checked against vLLM's rules computed with HF decode.
"""
import os
import pathlib
import random
import re
import subprocess
import zlib

import pytest
from tokenizers import Tokenizer

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = pathlib.Path(os.environ.get("KILN_FIXTURES", ROOT.parent / "shared" / "fixtures"))
BUILD = ROOT / os.environ.get("KILN_BUILD", "build")
DRIVER = BUILD / "tests" / "e2e" / "text_stream_driver"
FFFD = "\ufffd"

TOKENIZERS = {
    "llama3": FIXTURES / "tokenizers" / "llama3",  # byte-level BPE
    "qwen2": FIXTURES / "tokenizers" / "qwen2",  # byte-level, non-special added tokens
    "gpt2": FIXTURES / "tokenizers" / "gpt2",  # byte-level, clean_up_tokenization_spaces
    "llama2": FIXTURES / "tokenizers" / "llama2",  # SentencePiece legacy, byte fallback
    "mistral-v3": FIXTURES / "tokenizers" / "mistral-v3",  # Metaspace, byte fallback
    "stories260K": FIXTURES / "models" / "stories260K",  # tiny SentencePiece vocabulary
}
CASES = int(os.environ.get("KILN_TEXT_STREAM_CASES", "250"))
SEED = int(os.environ.get("KILN_TEXT_STREAM_SEED", "1"))

PIECES = ["hello", "world", "the", " a", "Once", " upon", " ", "  ", "\n", "\n\n", ".", ",",
          "!", "?", "é", "日本語", "😀", "👩‍👩‍👧", "ñandú", "Ω", "\t", "ß", "€", "<", ">",
          "''", "’", "12345", " don't", "I'm", " x", "ab", "abab", "—", "ŋ", "한국어", "🦀🦀"]


def rand_text(rng):
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 16)))


class Hf:
    def __init__(self, name):
        self.name = name
        self.tok = Tokenizer.from_file(str(TOKENIZERS[name] / "tokenizer.json"))
        vocab = self.tok.get_vocab()
        added = self.tok.get_added_tokens_decoder()
        self.special = sorted(i for i, a in added.items() if a.special)
        self.bytes = sorted(i for s, i in vocab.items() if re.fullmatch(r"<0x[0-9A-F]{2}>", s))
        byte_set = set(self.bytes)
        # byte-fallback runs that are not UTF-8 are the one place tok_stream differs from
        # HF (tokenizer.h): random ids skip the <0xNN> tokens; encoded text has valid runs
        self.plain = sorted(i for i in vocab.values() if i not in byte_set and i not in added)

    def decode(self, ids, skip):
        return self.tok.decode(ids, skip_special_tokens=skip)

    def encode(self, text, special=False):
        return self.tok.encode(text, add_special_tokens=special).ids

    def rand_gen(self, rng):
        ids = []
        for _ in range(rng.randint(1, 8)):
            r = rng.random()
            if r < 0.55:
                ids += self.encode(rand_text(rng))
            elif r < 0.85:
                ids += rng.sample(self.plain, rng.randint(1, 4))
            elif self.special:
                ids.append(rng.choice(self.special))
        return ids


@pytest.fixture(scope="module", params=list(TOKENIZERS))
def hf(request):
    if not DRIVER.exists():
        pytest.fail(f"{DRIVER} is missing: run make first")
    return Hf(request.param)


def run_driver(name, lines):
    res = subprocess.run([str(DRIVER), str(TOKENIZERS[name])], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    out = res.stdout.splitlines()
    assert len(out) == len(lines)
    return out


def unhex(w):
    return b"" if w == "-" else bytes.fromhex(w)


def hexs(b):
    return b.hex() if b else "-"


def reference(hf, prompt, gen, skip):
    """The text the stream must produce before stop strings are applied."""
    if not prompt:
        return hf.decode(gen, skip).encode()
    head = hf.decode(prompt, skip).encode()
    whole = hf.decode(prompt + gen, skip).encode()
    assert whole.startswith(head)
    return whole[len(head):]


def first_stop(text, stops, include):
    """(cut, stop index) of the occurrence that ends first; ties: lower index."""
    best = None
    for k, s in enumerate(stops):
        at = text.find(s)
        if at >= 0 and (best is None or at + len(s) < best[0]):
            best = (at + len(s), k)
    if best is None:
        return len(text), -1
    end, k = best
    return (end if include else end - len(stops[k])), k


def make_case(hf, rng):
    gen = hf.rand_gen(rng)
    prompt = []
    if rng.random() < 0.5:
        prompt = hf.encode(rand_text(rng), special=True)
        if hf.special and rng.random() < 0.3:
            prompt.append(rng.choice(hf.special))
    skip = rng.random() < 0.7
    include = rng.random() < 0.3
    text = reference(hf, prompt, gen, skip)
    chars = text.decode()
    stops = []
    for _ in range(rng.choice([0, 1, 1, 2, 3, 5])):
        if chars and rng.random() < 0.8:
            a = rng.randrange(len(chars))
            stops.append(chars[a:a + rng.randint(1, 6)].encode())
        else:
            stops.append(rng.choice(["zzq", "\n\n\n", "ÆØ", "END"]).encode())
    chunks = [rng.randint(1, 4) for _ in range(len(gen))]
    line = ["T", str(int(skip)), str(int(include)), "0", str(len(stops))]
    line += [hexs(s) for s in stops]
    line += [str(len(prompt))] + [str(i) for i in prompt]
    line += [str(len(gen))] + [str(i) for i in gen]
    line += [str(len(chunks))] + [str(c) for c in chunks]
    return dict(prompt=prompt, gen=gen, skip=skip, include=include, stops=stops, text=text,
                line=" ".join(line))


def tokens_to_stop(hf, case, end):
    """The fewest ids whose text holds text[:end], a text ending in an unfinished character
    not counting (as vLLM's DecodeStream waits); None when U+FFFD muddles it."""
    if FFFD.encode() in case["text"]:
        return None
    for k in range(1, len(case["gen"]) + 1):
        t = reference(hf, case["prompt"], case["gen"][:k], case["skip"])
        if not t.endswith(FFFD.encode()) and t.startswith(case["text"][:end]):
            return k
    return None


def test_stream_matches_hf_decode_with_stop_strings(hf):
    rng = random.Random(SEED + zlib.crc32(hf.name.encode()))
    cases = [make_case(hf, rng) for _ in range(CASES)]
    out = run_driver(hf.name, [c["line"] for c in cases])
    n_stopped = 0
    for c, line in zip(cases, out):
        w = line.split()
        assert not w[-1].startswith("ERR"), (c, line)
        stopped, index, n_tokens, n_chars, nd = int(w[0]), int(w[1]), int(w[2]), int(w[3]), int(w[4])
        deltas = [unhex(x) for x in w[5:5 + nd]]
        for d in deltas:
            d.decode()  # whole UTF-8 characters only
        got = b"".join(deltas)
        cut, k = first_stop(c["text"], c["stops"], c["include"])
        ctx = dict(name=hf.name, prompt=c["prompt"], gen=c["gen"], skip=c["skip"],
                   include=c["include"], stops=c["stops"], text=c["text"], got=got)
        assert got == c["text"][:cut], ctx
        assert index == k and stopped == (k >= 0), ctx
        assert n_chars == len(got.decode()), ctx
        if k >= 0:
            n_stopped += 1
            end = c["text"].find(c["stops"][k]) + len(c["stops"][k])
            want = tokens_to_stop(hf, c, end)
            assert want is None or n_tokens == want, (ctx, n_tokens, want)
        else:
            assert n_tokens == len(c["gen"]), ctx
    assert n_stopped > CASES // 4  # the stop paths were exercised


def test_split_characters_across_chunks(hf):
    """Multi-byte characters whose bytes span tokens, every chunking of 1..3, stop strings
    made of those characters."""
    text = "a日本語😀é€👩‍👩‍👧 한국어!🦀"
    gen = hf.encode(text)
    full = reference(hf, [], gen, True)
    lines, want = [], []
    for size in (1, 2, 3):
        for stop in ("語😀", "😀", "€👩", "🦀", "!"):
            s = stop.encode()
            line = f"T 1 0 0 1 {s.hex()} 0 {len(gen)} {' '.join(map(str, gen))} "
            line += f"{len(gen)} " + " ".join([str(size)] * len(gen))
            lines.append(line)
            want.append(full[:full.find(s)] if s in full else full)
    for line, exp in zip(run_driver(hf.name, lines), want):
        w = line.split()
        got = b"".join(unhex(x) for x in w[5:5 + int(w[4])])
        assert got == exp, (hf.name, line, got, exp)


def clean_up_tokenization(s):
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
                 (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"),
                 (" 're", "'re")):
        s = s.replace(a, b)
    return s


def vllm_logprob_token(hf, cand, i, prev, clean):
    """vllm/v1/engine/logprobs.py: convert_ids_list_to_tokens + _verify_tokens."""
    def dec(ids):
        s = hf.decode(ids, False)
        return clean_up_tokenization(s) if clean else s
    s = dec([cand[i]])
    if not s.endswith(FFFD):
        return s
    if i > 0:
        s = dec(cand[i - 1:i + 1])
        if not s.endswith(FFFD):
            return s
    if prev >= 0:
        s = dec([prev] + (cand[i - 1:i + 1] if i > 0 else [cand[i]]))
        if not s.endswith(FFFD):
            return s
    return ""


def test_logprob_token_strings(hf):
    rng = random.Random(11)
    clean = hf.name == "gpt2"  # its tokenizer_config.json has clean_up_tokenization_spaces
    n = hf.tok.get_vocab_size()
    lines, want = [], []
    pool = hf.bytes + hf.special + hf.encode("é日本😀 don't , . I'm") + rng.sample(range(n), 40)
    for _ in range(300):
        cand = [rng.choice(pool) for _ in range(rng.randint(1, 5))]
        i = rng.randrange(len(cand))
        prev = rng.choice([-1, rng.choice(pool)])
        lines.append(f"L {int(clean)} {prev} {i} {len(cand)} {' '.join(map(str, cand))}")
        want.append(vllm_logprob_token(hf, cand, i, prev, clean))
    for id_ in pool:
        lines.append(f"S {int(clean)} {id_}")
        s = hf.decode([id_], False)
        want.append(clean_up_tokenization(s) if clean else s)
    for line, got, exp in zip(lines, run_driver(hf.name, lines), want):
        assert unhex(got.strip()).decode() == exp, (hf.name, line, got, exp)
