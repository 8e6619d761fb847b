"""Seeds for fuzz_tok_load: small but complete tokenizer.json files that use every component
kiln implements, built from the stories260K tokenizer. Usage: seeds_tok_load.py FIXTURES OUT"""
import copy
import json
import pathlib
import sys

fixtures, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
base = json.loads((fixtures / "models/stories260K/tokenizer.json").read_text())
bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
variants = {
    "spm": {},
    "split": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": r"\p{L}+|\s+(?!\S)|\d{1,3}"},
         "behavior": "Isolated", "invert": False},
        {"type": "Digits", "individual_digits": True}, {"type": "Punctuation"},
        {"type": "Whitespace"}, {"type": "WhitespaceSplit"}, bl]}},
    "metaspace": {"normalizer": {"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True,
                                                  "strip_right": True}]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581",
                          "prepend_scheme": "first", "split": True},
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always"}},
    "bytelevel": {"pre_tokenizer": bl, "decoder": bl, "post_processor": bl,
                  "normalizer": {"type": "NFC"}},
}
for name, changes in variants.items():
    d = copy.deepcopy(base)
    d.update(changes)
    (out / f"seed-{name}.json").write_text(json.dumps(d, ensure_ascii=False))
tiny = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "<unk>": 3},
                  "merges": [["a", "b"]], "unk_token": "<unk>", "fuse_unk": True,
                  "continuing_subword_prefix": "##", "end_of_word_suffix": "</w>"},
        "added_tokens": [{"id": 4, "content": "[X]", "lstrip": True, "rstrip": True,
                          "single_word": True, "normalized": True, "special": True}]}
(out / "seed-tiny.json").write_text(json.dumps(tiny))
