"""Seeds for fuzz_safetensors: the stories260K weights as shipped, and small files that use
every dtype, empty tensors, scalars, metadata and header padding.
Usage: seeds_safetensors.py FIXTURES OUT"""
import json
import pathlib
import struct
import sys

fixtures, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
SIZES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
         "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def build(tensors, metadata=None, pad=0):
    """tensors: (name, dtype, shape) in data order; returns the file's bytes."""
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape in tensors:
        n = SIZES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8 + pad)
    return struct.pack("<Q", len(text)) + text + bytes((i * 7 + 1) & 255 for i in range(offset))


seeds = {
    "stories260K": (fixtures / "models/stories260K/model.safetensors").read_bytes(),
    "empty": build([]),
    "metadata": build([], {"format": "pt", "note": "x"}),
    "dtypes": build([(f"t.{d.lower()}", d, [2, 3]) for d in SIZES], {"format": "pt"}),
    "zero": build([("a", "F32", [0, 4]), ("b", "BF16", [3]), ("c", "I8", [])]),
    "layer": build([("model.layers.0.self_attn.q_proj.weight", "BF16", [8, 8]),
                    ("model.layers.0.self_attn.q_proj.bias", "BF16", [8]),
                    ("model.norm.weight", "F16", [8]), ("lm_head.weight", "F32", [4, 8])],
                   pad=16),
}
for name, data in seeds.items():
    (out / f"seed-{name}.safetensors").write_bytes(data)
