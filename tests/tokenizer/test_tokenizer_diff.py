"""Differential tests: kiln's tokenizer against the Hugging Face `tokenizers` package.

Every tokenizer in ../shared/fixtures/tokenizers (and stories260K) encodes 2,000 generated
strings (strings.py, fixed seed) with and without special tokens; the ids must equal HF's.
Decoding HF's ids must equal HF's decode (with and without skip_special_tokens), and the
incremental decoder's deltas must concatenate to the same text. Synthetic variants of real
tokenizer.json files exercise the normalizers, pre-tokenizers, added-token flags and
post-processors that the fixture files do not use.
"""
import copy
import json
import random
import subprocess
import zlib

import pytest
from tokenizers import Tokenizer

import strings

N_STRINGS = 2000
FIXTURE_TOKENIZERS = ["gpt2", "llama2", "llama3", "qwen2", "mistral-v3", "cl100k"]


def kiln_json(kiln, args, payload):
    p = subprocess.run([kiln] + args, input=json.dumps(payload).encode(), capture_output=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return json.loads(p.stdout)


def first_mismatches(items, limit=5):
    return "\n".join(repr(x) for x in items[:limit])


def check_encode(kiln, tokdir, tok, texts):
    for add_special in (True, False):
        args = ["tokenize", str(tokdir)] + ([] if add_special else ["--no-special"])
        got = kiln_json(kiln, args, texts)
        want = [e.ids for e in tok.encode_batch(texts, add_special_tokens=add_special)]
        bad = [(s, w, g) for s, w, g in zip(texts, want, got) if w != g]
        assert not bad, f"{len(bad)}/{len(texts)} differ (add_special={add_special}):\n" + \
            first_mismatches(bad)


def check_decode(kiln, tokdir, tok, id_lists, stream_ok=None):
    for skip in (False, True):
        flags = ["--skip-special"] if skip else []
        want = tok.decode_batch(id_lists, skip_special_tokens=skip)
        got = kiln_json(kiln, ["detokenize", str(tokdir)] + flags, id_lists)
        bad = [(ids, w, g) for ids, w, g in zip(id_lists, want, got) if w != g]
        assert not bad, f"decode differs (skip={skip}):\n" + first_mismatches(bad)
        deltas = kiln_json(kiln, ["detokenize", str(tokdir), "--stream"] + flags, id_lists)
        bad = [(ids, w, d) for i, (ids, w, d) in enumerate(zip(id_lists, want, deltas))
               if "".join(d) != w and (stream_ok is None or stream_ok[i])]
        assert not bad, f"incremental decode differs (skip={skip}):\n" + first_mismatches(bad)


def specials_of(tok):
    return [t.content for t in tok.get_added_tokens_decoder().values()]


@pytest.fixture(scope="module", params=FIXTURE_TOKENIZERS + ["stories260K"])
def fixture_tok(request, fixtures):
    name = request.param
    d = fixtures / ("models" if name == "stories260K" else "tokenizers") / name
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    texts = strings.generate(seed=1234, n=N_STRINGS, specials=specials_of(tok))
    return name, d, tok, texts


def test_encode_matches_hf(kiln, fixture_tok):
    name, d, tok, texts = fixture_tok
    check_encode(kiln, d, tok, texts)


def test_decode_and_stream_match_hf(kiln, fixture_tok):
    name, d, tok, texts = fixture_tok
    ids = [e.ids for e in tok.encode_batch(texts, add_special_tokens=True)]
    check_decode(kiln, d, tok, ids)
    # decode(encode(s)): kiln's own round trip equals HF's round trip
    ours = kiln_json(kiln, ["tokenize", str(d)], texts)
    assert kiln_json(kiln, ["detokenize", str(d)], ours) == \
        tok.decode_batch(ids, skip_special_tokens=False)


def byte_runs_valid(tok, ids, skip):
    """Whether every run of <0xNN> tokens in ids is valid UTF-8 (the one case where HF's
    decode replaces characters that a stream has already produced; see tokenizer.h)."""
    run = b""
    for i in list(ids) + [None]:
        s = tok.id_to_token(i) if i is not None else None
        if s is not None and skip and i in tok.get_added_tokens_decoder() and \
                tok.get_added_tokens_decoder()[i].special:
            continue
        if s is not None and len(s) == 6 and s.startswith("<0x") and s.endswith(">"):
            run += bytes([int(s[3:5], 16)])
            continue
        try:
            run.decode("utf-8")
        except UnicodeDecodeError:
            return False
        run = b""
    return True


def test_random_ids_decode_and_stream(kiln, fixture_tok):
    name, d, tok, texts = fixture_tok
    rng = random.Random(99)
    n_vocab = tok.get_vocab_size(with_added_tokens=True)
    id_lists = [[rng.randrange(n_vocab + 16) for _ in range(rng.randint(0, 40))]
                for _ in range(400)]
    ok = [byte_runs_valid(tok, ids, False) for ids in id_lists]
    check_decode(kiln, d, tok, id_lists, stream_ok=ok)


# ---- synthetic variants of real tokenizer.json files ----

def bl(prefix=False, regex=False):
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True,
            "use_regex": regex}


def split(pattern, behavior, invert=False, literal=False):
    return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern},
            "behavior": behavior, "invert": invert}


def seq(*pre):
    return {"type": "Sequence", "pretokenizers": list(pre)}


def nseq(*norms):
    return {"type": "Sequence", "normalizers": list(norms)}


BEHAVIORS = ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"]

GPT2_VARIANTS = {
    "whitespace": {"pre_tokenizer": seq({"type": "Whitespace"}, bl())},
    "whitespace_split_punct": {"pre_tokenizer": seq({"type": "WhitespaceSplit"},
                                                    {"type": "Punctuation"}, bl())},
    "punct_merged_prev": {"pre_tokenizer": seq({"type": "Punctuation",
                                                "behavior": "MergedWithPrevious"}, bl())},
    "digits_individual": {"pre_tokenizer": seq({"type": "Digits", "individual_digits": True},
                                               bl(regex=True))},
    "digits_contiguous": {"pre_tokenizer": seq({"type": "Digits", "individual_digits": False},
                                               bl())},
    "bert_pre": {"pre_tokenizer": seq({"type": "BertPreTokenizer"}, bl())},
    "char_delimiter": {"pre_tokenizer": seq({"type": "CharDelimiterSplit", "delimiter": "e"},
                                            bl())},
    "bytelevel_prefix_space": {"pre_tokenizer": bl(prefix=True, regex=True)},
    "literal_split": {"pre_tokenizer": seq(split(" ", "Removed", literal=True), bl())},
    "regex_word": {"pre_tokenizer": seq(split(r"\w+", "Isolated"), bl())},
    "regex_notword": {"pre_tokenizer": seq(split(r"[^\s\w]+", "Isolated"), bl())},
    "regex_caseless": {"pre_tokenizer": seq(split(r"(?i:the|'s)", "Isolated"), bl())},
    "regex_anchors": {"pre_tokenizer": seq(split(r"^\s+|\s+$", "Isolated"), bl())},
    "regex_props": {"pre_tokenizer": seq(split(r"\p{Lu}\p{Ll}+|\p{N}{1,3}", "Isolated"), bl())},
    "regex_dotall": {"pre_tokenizer": seq(split(r"(?m:a.b)|.", "Isolated"), bl())},
    "regex_hex": {"pre_tokenizer": seq(split(r"\h+", "Isolated"), bl())},
    "nfkc": {"normalizer": {"type": "NFKC"}},
    "nfd": {"normalizer": {"type": "NFD"}},
    "nfkd": {"normalizer": {"type": "NFKD"}},
    "nfc": {"normalizer": {"type": "NFC"}},
    "lowercase": {"normalizer": {"type": "Lowercase"}},
    "strip_both": {"normalizer": {"type": "Strip", "strip_left": True, "strip_right": True}},
    "strip_left": {"normalizer": {"type": "Strip", "strip_left": True, "strip_right": False}},
    "strip_accents": {"normalizer": nseq({"type": "NFKD"}, {"type": "Lowercase"},
                                         {"type": "StripAccents"})},
    "replace_literal": {"normalizer": {"type": "Replace", "pattern": {"String": "o"},
                                       "content": "0"}},
    "replace_regex": {"normalizer": {"type": "Replace", "pattern": {"Regex": r"\s+"},
                                     "content": " "}},
    "prepend": {"normalizer": {"type": "Prepend", "prepend": "@"}},
    "template": {"post_processor": {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [50256],
                                             "tokens": ["<|endoftext|>"]}}}},
    "bert_processing": {"post_processor": {"type": "BertProcessing", "sep": ["</s>", 50256],
                                           "cls": ["<s>", 50255]}},
}
for _b in BEHAVIORS:
    for _inv in (False, True):
        GPT2_VARIANTS[f"split_{_b}_{_inv}"] = {
            "pre_tokenizer": seq(split(r"\s+|\d", _b, _inv), bl())}

ADDED = [
    {"content": "<mask>", "lstrip": True, "rstrip": False, "single_word": False,
     "normalized": False, "special": True},
    {"content": "[X]", "lstrip": False, "rstrip": True, "single_word": False,
     "normalized": False, "special": True},
    {"content": "hello", "lstrip": False, "rstrip": False, "single_word": True,
     "normalized": True, "special": False},
    {"content": "WORLD", "lstrip": False, "rstrip": False, "single_word": False,
     "normalized": True, "special": False},
    {"content": "fox", "lstrip": True, "rstrip": True, "single_word": True,
     "normalized": False, "special": False},
    {"content": "<mask>", "lstrip": False, "rstrip": False, "single_word": False,
     "normalized": False, "special": True},
]
GPT2_VARIANTS["added_flags"] = {"added_tokens": ADDED}
GPT2_VARIANTS["added_flags_lowercase"] = {"added_tokens": ADDED,
                                          "normalizer": {"type": "Lowercase"}}

LLAMA2_VARIANTS = {}
for _scheme in ("always", "first", "never"):
    for _split in (False, True):
        LLAMA2_VARIANTS[f"metaspace_{_scheme}_{_split}"] = {
            "normalizer": None,
            "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                              "prepend_scheme": _scheme, "split": _split},
            "decoder": {"type": "Metaspace", "replacement": "\u2581",
                        "prepend_scheme": _scheme, "split": _split}}


def make_variant(fixtures, tmp_path, base, name, changes):
    spec = json.loads((fixtures / "tokenizers" / base / "tokenizer.json").read_text())
    spec = copy.deepcopy(spec)
    for k, v in changes.items():
        if k == "added_tokens":
            spec[k] = spec[k] + [dict(v, id=100000 + i) for i, v in enumerate(v)]
        else:
            spec[k] = v
    d = tmp_path / f"{base}-{name}"
    d.mkdir()
    text = json.dumps(spec, ensure_ascii=False)
    (d / "tokenizer.json").write_text(text, encoding="utf-8")
    return d, Tokenizer.from_str(text)


@pytest.mark.parametrize("name", sorted(GPT2_VARIANTS))
def test_gpt2_variant(kiln, fixtures, tmp_path, name):
    d, tok = make_variant(fixtures, tmp_path, "gpt2", name, GPT2_VARIANTS[name])
    # StripAccents uses an old Unicode table in HF: test it on old characters only
    texts = strings.generate(seed=zlib.crc32(name.encode()), n=300,
                             specials=["<|endoftext|>", "<mask>", "[X]", "hello", "WORLD",
                                       "fox", "world"], old_unicode=name == "strip_accents")
    check_encode(kiln, d, tok, texts)
    check_decode(kiln, d, tok, [e.ids for e in tok.encode_batch(texts)])


@pytest.mark.parametrize("name", sorted(LLAMA2_VARIANTS))
def test_llama2_variant(kiln, fixtures, tmp_path, name):
    d, tok = make_variant(fixtures, tmp_path, "llama2", name, LLAMA2_VARIANTS[name])
    texts = strings.generate(seed=7, n=300, specials=["<s>", "</s>", "<unk>"])
    check_encode(kiln, d, tok, texts)
    check_decode(kiln, d, tok, [e.ids for e in tok.encode_batch(texts)])


# ---- character classes, one code point at a time ----

CLASS_PATTERNS = [r"\w", r"[\w]", r"\W", r"\s", r"[\s]", r"\S", r"\d", r"\h", r"\p{L}",
                  r"\p{N}", r"[^\s\p{L}\p{N}]", r"(?i:s|k|'re|'ll)"]


@pytest.mark.parametrize("pattern", CLASS_PATTERNS + ["Whitespace", "Punctuation", "Digits"])
def test_char_classes_every_code_point(kiln, fixtures, tmp_path, pattern):
    """Every assigned code point (Unicode 14) alone, through a Split(pattern, Removed) or a
    character-class pre-tokenizer: kiln's class membership must equal HF's (Oniguruma's
    for regexes, Rust's for the others)."""
    if pattern == "Digits":
        pre = {"type": pattern, "individual_digits": True}
    elif pattern in ("Whitespace", "Punctuation"):
        pre = {"type": pattern}
    else:
        pre = split(pattern, "Removed")
    name = "class_" + str(zlib.crc32(pattern.encode()))
    d, tok = make_variant(fixtures, tmp_path, "gpt2", name, {"pre_tokenizer": seq(pre, bl())})
    texts = [chr(c) for c in strings.assigned_codepoints()] + ["\x00"] + \
        [chr(c) for c in range(0x1, 0x20)]
    got = kiln_json(kiln, ["tokenize", str(d), "--no-special"], texts)
    want = [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
    bad = [hex(ord(s)) for s, w, g in zip(texts, want, got) if w != g]
    assert not bad, f"{len(bad)} code points differ: {bad[:20]}"


STRIP_DECODERS = {
    "strip_stop": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 2, "stop": 1}]},
    "strip_per_token": {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "Strip", "content": " ", "start": 0, "stop": 1},
        {"type": "ByteFallback"}, {"type": "Fuse"}]},
}


@pytest.mark.parametrize("name", sorted(STRIP_DECODERS))
def test_strip_decoder_variants(kiln, fixtures, tmp_path, name):
    """Strip with stop > 0, after Fuse (whole text) and per token. HF panics when a string
    is shorter than `stop`, so such cases are left out."""
    d, tok = make_variant(fixtures, tmp_path, "llama2", name, {"decoder": STRIP_DECODERS[name]})
    texts = strings.generate(seed=11, n=300, specials=["<s>", "</s>"])
    ids = []
    for e in tok.encode_batch(texts):
        try:
            tok.decode(e.ids, skip_special_tokens=True)
            tok.decode(e.ids, skip_special_tokens=False)
            if name == "strip_per_token":  # every token must be at least one character long
                [tok.decode([i], skip_special_tokens=True) for i in e.ids]
        except BaseException:
            continue
        ids.append(e.ids)
    assert len(ids) > 200
    check_decode(kiln, d, tok, ids)
