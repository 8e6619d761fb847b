"""Seeds for fuzz_tok_encode: the first byte picks the tokenizer, the rest is text.
Usage: seeds_tok_encode.py OUT"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tokenizer"))
import strings  # noqa: E402

out = pathlib.Path(sys.argv[1])
specials = ["<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>", "<s>", "</s>", "[INST]",
            "<|im_start|>", "<tool_call>"]
for i, s in enumerate(strings.generate(seed=5, n=60, specials=specials)):
    (out / f"seed-{i}").write_bytes(bytes([i % 256]) + s.encode())
(out / "seed-bad-utf8").write_bytes(b"\x01a\xff\xc3(\xe2\x82\xf0\x9f\x98\xed\xa0\x80z")
