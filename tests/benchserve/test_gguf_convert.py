"""The serving benchmark's peer: tests/bench/hf_to_gguf.py (HF Llama dir -> GGUF for llama.cpp)
and tests/bench/make_dummy_model.py (seeded random weights at a real model's shapes).

Without llama-server these check the GGUF file itself: every tensor equals the safetensors
tensor (the q/k row permutation undone here independently), the metadata equals config.json, the
vocabulary equals tokenizer.json, and a Python copy of llama.cpp's SPM tokenizer algorithm run on
the converted vocabulary and scores gives the ids HF `tokenizers` gives.

With a llama-server binary (env KILN_LLAMA_SERVER, else build/peer/llama-server, as
tests/bench/peer_llamacpp.sh builds it) they also serve the converted stories260K and check the
greedy outputs against the fixture's golden files and /tokenize against HF `tokenizers`.
"""
import heapq
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
tokenizers = pytest.importorskip("tokenizers")

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (ROOT / "tests" / "bench", ROOT / "tests" / "model"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import hf_to_gguf  # noqa: E402
import make_dummy_model  # noqa: E402
import st_io  # noqa: E402
import tiny_model  # noqa: E402

FIXTURES = pathlib.Path(os.environ.get("KILN_FIXTURES", ROOT.parent / "shared" / "fixtures"))
STORIES = FIXTURES / "models" / "stories260K"
GOLDEN = STORIES / "golden"
TINYLLAMA_SHAPES = FIXTURES / "shapes" / "tinyllama-1.1b-chat"

TOKENIZE_STRINGS = [
    "Once upon a time",
    "Tom and Sue went to the beach. Tom saw a big crab",
    "Hello world",
    " leading space",
    "two  spaces,   three   and trailing ",
    "line one\nline two\n\n\ttab",
    "Lily's mom said, \"Don't worry!\" (ok?) 12345 + 678 = 999",
    "caf\u00e9 na\u00efve \u00fcber \u4e2d\u6587 \U0001F600 \u0416\u0443\u043a",
    "<s>user\nhi</s><s>assistant\n",
    "x</s>y <unk> z",
    "\u2581already\u2581escaped",
    "a",
    " ",
]


def _llama_spm_vectors():
    """(text, ids) pairs of llama.cpp's llama-spm tokenizer vectors (HF Llama 2 ids, no BOS)."""
    d = FIXTURES / "vectors" / "llama.cpp"
    inp, out = d / "ggml-vocab-llama-spm.gguf.inp", d / "ggml-vocab-llama-spm.gguf.out"
    if not inp.exists():
        return []
    texts = inp.read_bytes().decode("utf-8").split("\n__ggml_vocab_test__\n")[:-1]
    ids = [[int(x) for x in line.split()] for line in out.read_bytes().decode("utf-8").split("\n")[: len(texts)]]
    assert len(texts) == len(ids) == 46
    return list(zip(texts, ids))


def _need(path):
    if not path.exists():
        pytest.skip(f"{path} is missing: set KILN_FIXTURES")


def _hf_to_gguf_rows(n_head, head_dim):
    """perm with gguf_rows[perm] == hf_rows: HF row h*d + j (j < d/2) sits at gguf row
    h*d + 2j, HF row h*d + d/2 + j at h*d + 2j + 1 (written out here, not via reshape)."""
    perm = []
    for h in range(n_head):
        for j in range(head_dim):
            half = head_dim // 2
            perm.append(h * head_dim + (2 * j if j < half else 2 * (j - half) + 1))
    return np.array(perm)


def _gguf_values(t):
    data = np.asarray(t.data)
    if t.tensor_type == gguf.GGMLQuantizationType.BF16:
        bits = np.ascontiguousarray(data).view(np.uint16)  # GGUFReader gives BF16 as raw bytes
        return st_io.bf16_bits_to_f32(bits).reshape(bits.shape)
    return data.astype(np.float32)


def _field(reader, key):
    f = reader.fields[key]
    return f.contents()


def _check_model(model_dir, gguf_path, outtype):
    """Every tensor of gguf_path equals model_dir's safetensors tensor rounded to outtype."""
    cfg = json.loads((model_dir / "config.json").read_text())
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads") or n_head
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    hf = st_io.read_model(str(model_dir))
    reader = gguf.GGUFReader(str(gguf_path))
    tensors = {t.name: t for t in reader.tensors}

    expect = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}
    if not cfg.get("tie_word_embeddings", False):
        expect["output.weight"] = "lm_head.weight"
    layer = {
        "attn_norm.weight": "input_layernorm.weight",
        "attn_q.weight": "self_attn.q_proj.weight",
        "attn_k.weight": "self_attn.k_proj.weight",
        "attn_v.weight": "self_attn.v_proj.weight",
        "attn_output.weight": "self_attn.o_proj.weight",
        "attn_q.bias": "self_attn.q_proj.bias",
        "attn_k.bias": "self_attn.k_proj.bias",
        "attn_v.bias": "self_attn.v_proj.bias",
        "attn_output.bias": "self_attn.o_proj.bias",
        "ffn_norm.weight": "post_attention_layernorm.weight",
        "ffn_gate.weight": "mlp.gate_proj.weight",
        "ffn_up.weight": "mlp.up_proj.weight",
        "ffn_down.weight": "mlp.down_proj.weight",
    }
    for i in range(cfg["num_hidden_layers"]):
        for g, h in layer.items():
            if f"model.layers.{i}.{h}" in hf:
                expect[f"blk.{i}.{g}"] = f"model.layers.{i}.{h}"
    assert sorted(tensors) == sorted(expect)
    assert set(expect.values()) | ({"lm_head.weight"} & set(hf)) == set(hf)

    want_type = {"F32": "F32", "F16": "F16", "BF16": "BF16"}[outtype]
    for gname, hname in expect.items():
        t = tensors[gname]
        src = hf[hname]
        # GGUF lists dims fastest first: (in, out) for a (out, in) HF matrix.
        assert list(t.shape) == list(reversed(src.shape)), gname
        one_d = src.ndim == 1
        assert t.tensor_type.name == ("F32" if one_d else want_type), gname
        got = _gguf_values(t).reshape(src.shape)
        if ".attn_q." in gname or ".attn_k." in gname:
            heads = n_head if ".attn_q." in gname else n_kv
            got = got[_hf_to_gguf_rows(heads, head_dim)]
        want = src if one_d else st_io.round_to_dtype(src, outtype)
        np.testing.assert_array_equal(got, want, err_msg=gname)
    return reader


# ---------------------------------------------------------------------------------------------
# a Python copy of llama.cpp's SPM tokenizer (llm_tokenizer_spm_session + the space prefix)


class SpmTokenizer:
    def __init__(self, tokens, scores, types, add_space_prefix=True):
        self.index = {t: i for i, t in enumerate(tokens)}
        self.scores = scores
        self.add_space_prefix = add_space_prefix
        self.specials = sorted(
            (t for t, ty in zip(tokens, types) if ty in (2, 3, 4)), key=len, reverse=True
        )

    def _session(self, text):
        syms = list(text)  # UTF-8 characters
        nxt = list(range(1, len(syms))) + [-1]
        prv = list(range(-1, len(syms) - 1))
        heap = []

        def add(left, right):
            if left == -1 or right == -1:
                return
            t = syms[left] + syms[right]
            tid = self.index.get(t)
            if tid is None:
                return
            heapq.heappush(heap, (-self.scores[tid], left, right, len(t)))

        for i in range(1, len(syms)):
            add(i - 1, i)
        while heap:
            _, left, right, size = heapq.heappop(heap)
            if not syms[left] or not syms[right] or len(syms[left]) + len(syms[right]) != size:
                continue
            syms[left] += syms[right]
            syms[right] = ""
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prv[nxt[right]] = left
            add(prv[left], left)
            add(left, nxt[left])
        out = []
        i = 0 if syms else -1
        while i != -1:
            s = syms[i]
            if s in self.index:
                out.append(self.index[s])
            else:
                out += [self.index["<0x%02X>" % b] for b in s.encode("utf-8")]
            i = nxt[i]
        return out

    def encode(self, text, bos_id=None):
        out = [bos_id] if bos_id is not None else []
        # split out special tokens (parse_special), leftmost-longest
        frags = []
        rest = text
        while rest:
            hits = [(rest.find(s), -len(s), s) for s in self.specials if s and rest.find(s) >= 0]
            if not hits:
                frags.append(("text", rest))
                break
            pos, _, s = min(hits)
            if pos:
                frags.append(("text", rest[:pos]))
            frags.append(("special", s))
            rest = rest[pos + len(s):]
        prev_special = True
        for kind, frag in frags:
            if kind == "special":
                out.append(self.index[frag])
                prev_special = True
                continue
            t = (" " if self.add_space_prefix and prev_special else "") + frag
            out += self._session(t.replace(" ", "\u2581"))
            prev_special = False
        return out


def _vocab_of(model_dir):
    tok_json = hf_to_gguf.read_json(str(model_dir), "tokenizer.json")
    tok_cfg = hf_to_gguf.read_json(str(model_dir), "tokenizer_config.json")
    cfg = hf_to_gguf.read_json(str(model_dir), "config.json")
    gen = hf_to_gguf.read_json(str(model_dir), "generation_config.json", required=False)
    warnings = []
    v = hf_to_gguf.build_vocab(tok_json, tok_cfg, cfg, gen, warn=warnings.append)
    return tok_json, v, warnings


# ---------------------------------------------------------------------------------------------
# tests without llama-server


@pytest.fixture(scope="module")
def stories_gguf(tmp_path_factory):
    _need(STORIES / "config.json")
    out = tmp_path_factory.mktemp("gguf") / "stories260K.gguf"
    hf_to_gguf.convert(str(STORIES), str(out), log=lambda m: None)
    return out


def test_stories_tensors_equal_safetensors(stories_gguf):
    _check_model(STORIES, stories_gguf, "F32")


def test_stories_metadata_equals_config(stories_gguf):
    cfg = json.loads((STORIES / "config.json").read_text())
    r = gguf.GGUFReader(str(stories_gguf))
    assert _field(r, "general.architecture") == "llama"
    want = {
        "llama.context_length": cfg["max_position_embeddings"],
        "llama.embedding_length": cfg["hidden_size"],
        "llama.block_count": cfg["num_hidden_layers"],
        "llama.feed_forward_length": cfg["intermediate_size"],
        "llama.rope.dimension_count": cfg["head_dim"],
        "llama.attention.head_count": cfg["num_attention_heads"],
        "llama.attention.head_count_kv": cfg["num_key_value_heads"],
        "llama.vocab_size": cfg["vocab_size"],
        "general.file_type": 0,
    }
    for k, v in want.items():
        assert _field(r, k) == v, k
    assert _field(r, "llama.attention.layer_norm_rms_epsilon") == pytest.approx(cfg["rms_norm_eps"], rel=1e-6)
    assert _field(r, "llama.rope.freq_base") == cfg["rope_theta"]
    assert "output.weight" not in {t.name for t in r.tensors}  # tied embeddings


def test_stories_tokenizer_metadata(stories_gguf):
    r = gguf.GGUFReader(str(stories_gguf))
    tok = json.loads((STORIES / "tokenizer.json").read_text())
    tcfg = json.loads((STORIES / "tokenizer_config.json").read_text())
    vocab = tok["model"]["vocab"]
    tokens = _field(r, "tokenizer.ggml.tokens")
    types = _field(r, "tokenizer.ggml.token_type")
    scores = _field(r, "tokenizer.ggml.scores")
    assert _field(r, "tokenizer.ggml.model") == "llama"
    assert len(tokens) == len(vocab) == 512
    assert {t: i for i, t in enumerate(tokens)} == vocab
    for i, t in enumerate(tokens):
        if t == "<unk>":
            assert types[i] == gguf.TokenType.UNKNOWN
        elif t in ("<s>", "</s>"):
            assert types[i] == gguf.TokenType.CONTROL
        elif t.startswith("<0x") and len(t) == 6:
            assert types[i] == gguf.TokenType.BYTE and i == 3 + int(t[3:5], 16)
        else:
            assert types[i] == gguf.TokenType.NORMAL, t
    # merge priority: a token made by an earlier merge scores higher
    merged = [a + b for a, b in (m.split(" ") if isinstance(m, str) else m for m in tok["model"]["merges"])]
    ranked = [scores[vocab[t]] for t in dict.fromkeys(merged)]
    assert all(x > y for x, y in zip(ranked, ranked[1:]))
    assert _field(r, "tokenizer.ggml.bos_token_id") == vocab[tcfg["bos_token"]] == 1
    assert _field(r, "tokenizer.ggml.eos_token_id") == vocab[tcfg["eos_token"]] == 2
    assert _field(r, "tokenizer.ggml.unknown_token_id") == 0
    assert _field(r, "tokenizer.ggml.eot_token_id") == 1  # generation_config's second stop id
    assert _field(r, "tokenizer.ggml.add_bos_token") is tcfg["add_bos_token"]
    assert _field(r, "tokenizer.ggml.add_eos_token") is tcfg["add_eos_token"]
    assert _field(r, "tokenizer.ggml.add_space_prefix") is True
    assert _field(r, "tokenizer.chat_template") == tcfg["chat_template"]


@pytest.mark.parametrize("model", ["stories260K", "tinyllama-1.1b-chat"])
def test_spm_algorithm_on_converted_vocab_matches_hf(model):
    d = STORIES if model == "stories260K" else TINYLLAMA_SHAPES
    _need(d / "tokenizer.json")
    tok_json, v, warnings = _vocab_of(d)
    assert not warnings
    hf = tokenizers.Tokenizer.from_str(json.dumps(tok_json))
    spm = SpmTokenizer(v["tokens"], v["scores"], v["types"], v["add_space_prefix"])
    strings = list(TOKENIZE_STRINGS)
    for name in ("golden_prompt_once_upon_a_time.json", "golden_prompt_tom_and_sue.json", "golden_chat.json"):
        g = json.loads((GOLDEN / name).read_text()) if (GOLDEN / name).exists() else {}
        strings += [g[k] for k in ("prompt", "rendered_prompt", "generated_text", "content") if k in g]
    if (STORIES / "golden" / "golden_greedy.txt").exists():
        strings.append((STORIES / "golden" / "golden_greedy.txt").read_text())
    for s in strings:
        assert spm.encode(s) == hf.encode(s, add_special_tokens=False).ids, repr(s)
        assert spm.encode(s, bos_id=v["bos_id"]) == hf.encode(s).ids, repr(s)
    if model != "stories260K":
        vectors = _llama_spm_vectors()
        for s, ids in vectors:
            assert spm.encode(s) == ids, repr(s)


@pytest.mark.parametrize("outtype", ["F32", "F16", "BF16"])
def test_untied_sharded_bf16_with_biases(tmp_path, outtype):
    """A tiny untied model stored as BF16 in two shards, q/k/v/o biases, head_dim != 8."""
    _need(STORIES / "tokenizer.json")
    d = tmp_path / "model"
    tiny_model.make_model(str(d), vocab=512, tie=False, dtype="BF16", shards=2, heads=4, kv_heads=2,
                          hidden=64, qkv_bias=True, layers=2)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(STORIES / f, d / f)
    out = tmp_path / "m.gguf"
    hf_to_gguf.convert(str(d), str(out), outtype=outtype.lower(), log=lambda m: None)
    r = _check_model(d, out, outtype)
    assert "output.weight" in {t.name for t in r.tensors}
    assert _field(r, "general.file_type") == {"F32": 0, "F16": 1, "BF16": 32}[outtype]
    # generation_config has a single eos id: no eot written
    assert "tokenizer.ggml.eot_token_id" not in r.fields


def test_stories_f16_and_bf16_outtypes(tmp_path):
    _need(STORIES / "config.json")
    for outtype in ("F16", "BF16"):
        out = tmp_path / f"s-{outtype}.gguf"
        hf_to_gguf.convert(str(STORIES), str(out), outtype=outtype, log=lambda m: None)
        _check_model(STORIES, out, outtype)


def test_dummy_model_streams_seeded_weights(tmp_path):
    """make_dummy_model at a small made-up shape: files, dtypes, values, determinism, and
    that hf_to_gguf converts it."""
    _need(TINYLLAMA_SHAPES / "tokenizer.json")
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    for f in ("tokenizer_config.json", "generation_config.json"):
        shutil.copy(TINYLLAMA_SHAPES / f, shapes / f)
    # tokenizer.json as a link-holding file, the way the fixture shapes ship it
    link = os.path.relpath(FIXTURES / "tokenizers" / "llama2" / "tokenizer.json", shapes)
    (shapes / "tokenizer.json").write_text(link)
    cfg = json.loads((TINYLLAMA_SHAPES / "config.json").read_text())
    cfg.update(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2)
    (shapes / "config.json").write_text(json.dumps(cfg))

    outs = {}
    for name, dtype, seed in (("a", "bf16", 7), ("b", "bf16", 7), ("c", "f16", 8)):
        out = tmp_path / name
        make_dummy_model.main([str(out), "--shapes", str(shapes), "--dtype", dtype, "--seed", str(seed)])
        outs[name] = out
    a, b, c = outs["a"], outs["b"], outs["c"]
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert (a / "tokenizer.json").read_bytes() == (FIXTURES / "tokenizers" / "llama2" / "tokenizer.json").read_bytes()
    assert json.loads((a / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert json.loads((c / "config.json").read_text())["torch_dtype"] == "float16"
    assert set(st_io.read_dtypes(str(a / "model.safetensors")).values()) == {"BF16"}
    assert set(st_io.read_dtypes(str(c / "model.safetensors")).values()) == {"F16"}

    w = st_io.read_model(str(c))
    n_vocab = cfg["vocab_size"]
    assert w["model.embed_tokens.weight"].shape == (n_vocab, 64)
    assert w["lm_head.weight"].shape == (n_vocab, 64)
    assert w["model.layers.1.self_attn.k_proj.weight"].shape == (2 * 16, 64)
    assert w["model.layers.0.mlp.down_proj.weight"].shape == (64, 96)
    assert len(w) == 3 + 2 * 9
    for n, x in w.items():
        if n.endswith("norm.weight"):
            assert (x == 1.0).all(), n
        else:
            assert abs(float(x.std()) - 0.02) < 0.002 and abs(float(x.mean())) < 0.002, n
    wa = st_io.read_model(str(a))
    assert not np.array_equal(wa["lm_head.weight"], w["lm_head.weight"])

    out = tmp_path / "a.gguf"
    hf_to_gguf.convert(str(a), str(out), log=lambda m: None)
    _check_model(a, out, "BF16")


# ---------------------------------------------------------------------------------------------
# with llama-server


def _llama_server():
    p = os.environ.get("KILN_LLAMA_SERVER") or str(ROOT / "build" / "peer" / "llama-server")
    return p if os.path.isfile(p) and os.access(p, os.X_OK) else None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    def __init__(self, binary, gguf_path, log_path):
        self.port = _free_port()
        self.cmd = [binary, "-m", str(gguf_path), "--host", "127.0.0.1", "--port", str(self.port),
                    "-c", "512", "-np", "1", "-t", "2"]
        self.log = open(log_path, "wb")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = t0 + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.proc.returncode}); see {log_path}")
            try:
                if self.get("/health").get("status") == "ok":
                    break
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"llama-server not ready after 120 s; see {log_path}")
            time.sleep(0.1)
        self.startup_s = time.monotonic() - t0

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return json.load(r)

    def post(self, path, body):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.load(r)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def server(stories_gguf):
    binary = _llama_server()
    if binary is None:
        pytest.skip("no llama-server (set KILN_LLAMA_SERVER or run tests/bench/peer_llamacpp.sh)")
    s = _Server(binary, stories_gguf, stories_gguf.parent / "llama-server.log")
    print(f"\nllama-server: {' '.join(s.cmd)}\nready in {s.startup_s:.2f} s")
    yield s
    s.close()


GREEDY = {"temperature": 0, "cache_prompt": False}


@pytest.mark.parametrize("name", ["golden_prompt_once_upon_a_time.json", "golden_prompt_tom_and_sue.json"])
def test_server_greedy_prompts_match_golden(server, name):
    g = json.loads((GOLDEN / name).read_text())
    assert server.post("/tokenize", {"content": g["prompt"], "add_special": True})["tokens"] == g["prompt_ids"]
    d = server.post("/completion", {"prompt": g["prompt"], "n_predict": g["max_new_tokens"],
                                    "return_tokens": True, **GREEDY})
    assert d["tokens"] == g["generated_ids"]
    assert d["content"] == g["generated_text"]
    d = server.post("/v1/completions", {"prompt": g["prompt"], "max_tokens": g["max_new_tokens"], **GREEDY})
    assert d["choices"][0]["text"] == g["generated_text"]
    assert d["choices"][0]["finish_reason"] == g["finish_reason"] == "length"


def test_server_greedy_from_bos_matches_golden(server):
    g = json.loads((GOLDEN / "golden_greedy_ids.json").read_text())
    d = server.post("/completion", {"prompt": g["prompt_ids"], "n_predict": g["max_new_tokens"],
                                    "return_tokens": True, **GREEDY})
    assert d["tokens"] == g["generated_ids"]
    # natural stop: BOS (generation_config's second eos id, written as eot_token_id)
    stop = g["natural_stop"]
    d = server.post("/completion", {"prompt": g["prompt_ids"], "n_predict": 512 - 1,
                                    "return_tokens": True, **GREEDY})
    assert d["tokens"] == stop["generated_ids_until_stop"]  # llama.cpp lists the stop token too
    assert d["stop_type"] == "eos"
    assert d["content"].lstrip(" ") == stop["text_until_stop"]  # HF's decode strips the first space


def test_server_chat_matches_golden(server):
    g = json.loads((GOLDEN / "golden_chat.json").read_text())
    d = server.post("/completion", {"prompt": g["prompt_ids"], "n_predict": g["max_new_tokens"],
                                    "return_tokens": True, **GREEDY})
    assert d["tokens"] == g["generated_ids"]
    d = server.post("/v1/chat/completions", {"messages": g["messages"], "max_tokens": g["max_new_tokens"],
                                             **GREEDY})
    assert d["usage"]["prompt_tokens"] == len(g["prompt_ids"])
    assert d["choices"][0]["message"]["content"] == g["content"]


def test_server_tokenize_matches_hf(server):
    hf = tokenizers.Tokenizer.from_file(str(STORIES / "tokenizer.json"))
    for s in TOKENIZE_STRINGS:
        for add in (True, False):
            got = server.post("/tokenize", {"content": s, "add_special": add})["tokens"]
            assert got == hf.encode(s, add_special_tokens=add).ids, (s, add)


def test_server_tokenize_llama2_vocab_matches_hf(tmp_path):
    """The 32000-piece Llama 2 vocabulary (TinyLlama's) in llama.cpp: a tiny random model with
    that tokenizer, /tokenize of the llama-spm vectors and the strings above against HF."""
    binary = _llama_server()
    if binary is None:
        pytest.skip("no llama-server (set KILN_LLAMA_SERVER or run tests/bench/peer_llamacpp.sh)")
    _need(TINYLLAMA_SHAPES / "tokenizer.json")
    d = tmp_path / "model"
    tiny_model.make_model(str(d), vocab=32000, tie=True, layers=1, hidden=64, heads=4, kv_heads=2)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (d / f).write_bytes(make_dummy_model.read_maybe_link(str(TINYLLAMA_SHAPES / f)))
    out = tmp_path / "m.gguf"
    hf_to_gguf.convert(str(d), str(out), log=lambda m: None)
    hf = tokenizers.Tokenizer.from_file(str(d / "tokenizer.json"))
    s = _Server(binary, out, tmp_path / "llama-server.log")
    try:
        for text, ids in _llama_spm_vectors():
            assert s.post("/tokenize", {"content": text, "add_special": False})["tokens"] == ids, repr(text)
        for text in TOKENIZE_STRINGS + ["<|user|>\nHi there</s>\n<|assistant|>\n"]:
            for add in (True, False):
                got = s.post("/tokenize", {"content": text, "add_special": add})["tokens"]
                assert got == hf.encode(text, add_special_tokens=add).ids, (text, add)
    finally:
        s.close()
