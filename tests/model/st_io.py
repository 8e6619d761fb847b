"""Minimal safetensors reading and writing with numpy, json and struct (no safetensors package).

File layout: an 8-byte little-endian header length N, N bytes of JSON header
({"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
"__metadata__": {...}}), then the data section; offsets are relative to the data section.

Reading gives float32 arrays for F32, F16 and BF16 tensors (exact: every F16 and BF16 value is
a float32 value). Writing rounds float32 to F16 (numpy, round-to-nearest-even) or BF16 (the
upper 16 bits of float32 after round-to-nearest-even on the lower 16).
"""
import json
import os
import struct

import numpy as np

_NP_DTYPES = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("u1"),
}

INDEX_NAME = "model.safetensors.index.json"


# ---------------------------------------------------------------------------------------------
# dtype conversion


def f32_to_bf16_bits(a):
    """float32 array -> uint16 array of BF16 bits, round-to-nearest-even (NaN stays NaN)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    u = a.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) & 0xFFFF
    bits = rounded.astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        bits[nan] = ((u[nan] >> 16) | 0x0040).astype(np.uint16)  # keep sign, force quiet NaN
    return bits


def bf16_bits_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_to_dtype(a, dtype):
    """The float32 values a tensor of this dtype stores for float32 input a."""
    a = np.asarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.copy()
    if dtype == "F16":
        return a.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return bf16_bits_to_f32(f32_to_bf16_bits(a)).reshape(a.shape)
    raise ValueError(f"unsupported dtype {dtype}")


def encode_tensor(a, dtype):
    """Bytes of array a stored as dtype ('F32', 'F16', 'BF16', or an integer dtype)."""
    if dtype == "BF16":
        return f32_to_bf16_bits(np.asarray(a, dtype=np.float32)).tobytes()
    if dtype not in _NP_DTYPES:
        raise ValueError(f"unsupported dtype {dtype}")
    return np.ascontiguousarray(np.asarray(a).astype(_NP_DTYPES[dtype])).tobytes()


def decode_tensor(raw, dtype, shape):
    if dtype == "BF16":
        return bf16_bits_to_f32(np.frombuffer(raw, dtype="<u2")).reshape(shape)
    if dtype not in _NP_DTYPES:
        raise ValueError(f"unsupported dtype {dtype}")
    arr = np.frombuffer(raw, dtype=_NP_DTYPES[dtype]).reshape(shape)
    if dtype in ("F32", "F16", "F64"):
        return arr.astype(np.float32)
    return arr.copy()


# ---------------------------------------------------------------------------------------------
# reading


def read_header(path):
    """(header dict, data section start offset) of one file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
    return header, 8 + n


def read_file(path):
    """name -> array (float32 for float dtypes) for every tensor of one .safetensors file."""
    header, start = read_header(path)
    with open(path, "rb") as f:
        blob = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = decode_tensor(blob[start + b : start + e], info["dtype"], info["shape"])
    return out


def read_dtypes(path):
    header, _ = read_header(path)
    return {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}


def model_files(model_dir):
    """The .safetensors files of a model directory (the shards the index names, or the one)."""
    index = os.path.join(model_dir, INDEX_NAME)
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        return [os.path.join(model_dir, s) for s in sorted(set(weight_map.values()))]
    return [os.path.join(model_dir, "model.safetensors")]


def read_model(model_dir):
    """name -> float32 array over every shard of a model directory."""
    out = {}
    for path in model_files(model_dir):
        out.update(read_file(path))
    return out


# ---------------------------------------------------------------------------------------------
# writing


def build_bytes(tensors, metadata=None):
    """The bytes of a .safetensors file holding tensors: name -> (array, dtype string)."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        arr, dtype = tensors[name]
        raw = encode_tensor(arr, dtype)
        header[name] = {
            "dtype": dtype,
            "shape": [int(d) for d in np.shape(arr)],
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    if metadata is not None:
        header["__metadata__"] = metadata
    return assemble(header, b"".join(chunks))


def assemble(header, data):
    """File bytes from a header dict and the data section (header padded to 8 bytes)."""
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def write_file(path, tensors, metadata=None):
    if metadata is None:
        metadata = {"format": "pt"}
    with open(path, "wb") as f:
        f.write(build_bytes(tensors, metadata))


def write_sharded(model_dir, tensors, shards):
    """Writes tensors over `shards` files model-0000i-of-0000n.safetensors plus
    model.safetensors.index.json; with shards == 1 writes model.safetensors alone."""
    if shards <= 1:
        write_file(os.path.join(model_dir, "model.safetensors"), tensors)
        return
    names = sorted(tensors)
    if shards > len(names):
        raise ValueError("more shards than tensors")
    sizes = {n: len(encode_tensor(*tensors[n])) for n in names}
    total = sum(sizes.values())
    # Greedy contiguous split into roughly equal byte counts, each shard non-empty.
    groups = [[] for _ in range(shards)]
    acc = 0
    g = 0
    for i, n in enumerate(names):
        remaining = len(names) - i
        if g < shards - 1 and groups[g] and (
            acc >= total * (g + 1) / shards or remaining <= shards - 1 - g
        ):
            g += 1
        groups[g].append(n)
        acc += sizes[n]
    weight_map = {}
    for i, group in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        write_file(os.path.join(model_dir, fname), {n: tensors[n] for n in group})
        for n in group:
            weight_map[n] = fname
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    with open(os.path.join(model_dir, INDEX_NAME), "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
