"""The response writers (frontend/oai_response.h) as the official openai SDK reads them.

$KILN_BUILD/tests/e2e/oai_response_driver writes bodies and SSE streams for cases drawn here
(random texts with every JSON escape class: control characters, quotes, backslashes, DEL,
U+2028/2029, astral characters, NUL, and byte strings that are not valid UTF-8, which must
arrive repaired as Python's errors="replace" repairs them). Each body is parsed by json and
validated by the SDK's own types (ChatCompletion, ChatCompletionChunk, Completion, Model) with
strict response validation; streams go through the SDK's SSE decoder and Stream class (an
httpx.MockTransport returns the bytes to client.chat.completions.create(stream=True)); an
error event must raise the SDK's APIError. Every value read back is compared with what was
asked. "abort" and the null entries of an echo'd completion are vLLM's and not in the SDK's
types, so those bodies go through the SDK's lenient (default) client instead.
"""
import json
import math
import os
import pathlib
import random
import re
import struct
import subprocess

import httpx
import openai
import pytest
from openai.types import Completion, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("KILN_BUILD", "build")
DRIVER = BUILD / "tests" / "e2e" / "oai_response_driver"

# characters of every escape class (no lone surrogates: they are not text)
CHARS = ([chr(c) for c in range(0x20)] + list('"\\/\x7f ab{}[]:,') +
         ["é", "€", "\u2028", "\u2029", "\ufeff", "\ufffd", "\uffff", "中", "😀", "\U0010ffff",
          "\u0080", "\u07ff", "\u0800"])
BAD = [b"\x80", b"\xc0", b"\xc0\x80", b"\xe2\x82", b"\xed\xa0\x80", b"\xff", b"\xf0\x9f\x98",
       b"\xf4\x90\x80\x80", b"\xc3"]


def run(cases):
    """Runs the driver on cases; [(rc, bytes)]."""
    if not DRIVER.exists():
        pytest.skip(f"{DRIVER} not built")
    p = subprocess.run([str(DRIVER)], input=json.dumps(cases).encode(), capture_output=True,
                       check=True)
    return [(r["rc"], bytes.fromhex(r["hex"])) for r in json.loads(p.stdout)]


def loads(text):
    """json.loads that refuses NaN and Infinity (not JSON, though Python reads them)."""
    def bad(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=bad)


def write(*ops):
    """The bytes the ops write into one buffer."""
    [(rc, out)] = run([{"ops": list(ops)}])
    assert rc == 0
    return out


def rand_text(rng, n=None, nul=True):
    n = rng.randrange(12) if n is None else n
    chars = CHARS if nul else CHARS[1:]
    return "".join(rng.choice(chars) for _ in range(n))


def rand_value(rng, nul=True):
    """A str, or bytes (maybe not UTF-8); see enc() and want()."""
    if rng.random() < 0.5:
        return rand_text(rng, nul=nul)
    parts = []
    for _ in range(rng.randrange(10)):
        if rng.random() < 0.3:
            parts.append(rng.choice(BAD))
        else:
            parts.append(rng.choice(CHARS[0 if nul else 1:]).encode())
    return b"".join(parts)


def enc(v):
    """The driver's form of a string."""
    return {"hex": v.hex()} if isinstance(v, bytes) else v


def want(v):
    """The text a client must read for v."""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def rand_lp(rng):
    r = rng.random()
    if r < 0.05:
        return "-inf"
    if r < 0.08:
        return "nan"
    if r < 0.1:
        return -1e30
    if r < 0.15:
        return -0.0
    return -rng.expovariate(0.5) * (1e-30 if r < 0.2 else 1)


def want_lp(x):
    """The logprob a client must read: float32, or -9999.0 for -inf/nan/below."""
    if isinstance(x, str) or math.isnan(x) or x < -9999.0:
        return -9999.0
    return f32(x)


def same_lp(got, x):
    return f32(got) == f32(want_lp(x)) and (got != -9999.0 or want_lp(x) == -9999.0)


def sdk(body, stream=False, strict=True):
    """An openai client whose every request is answered with body."""
    ctype = "text/event-stream" if stream else "application/json"

    def handle(request):
        return httpx.Response(200, content=body, headers={"content-type": ctype})

    return openai.OpenAI(base_url="http://kiln.test/v1", api_key="sk-test", max_retries=0,
                         http_client=httpx.Client(transport=httpx.MockTransport(handle)),
                         _strict_response_validation=strict)


def chat_create(client, **kw):
    return client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}],
                                          **kw)


def sse_events(body):
    """The data of each event; every event must be exactly b"data: <data>\\n\\n"."""
    text = body.decode("utf-8")
    assert text.endswith("\n\n")
    events = text[:-2].split("\n\n")
    for e in events:
        assert e.startswith("data: ") and "\n" not in e
    return [e[6:] for e in events]


# ---- random cases ----

def rand_ctx(rng, kind):
    return {"kind": kind, "id": ("chatcmpl-" if kind == "chat" else "cmpl-") + "%032x" %
            rng.getrandbits(128), "created": rng.randrange(2**40),
            "model": rand_value(rng), "fp": rng.choice([None, "fp_" + rand_text(rng, 4, False)])}


def enc_ctx(ctx):
    return dict(ctx, model=enc(ctx["model"]))


def rand_logprobs(rng, nullable):
    out = []
    for i in range(rng.randrange(5)):
        top = [[rand_value(rng), rand_lp(rng)] for _ in range(rng.randrange(4))]
        if top and rng.random() < 0.3:  # a token string twice
            top.append([top[0][0], rand_lp(rng)])
        null = nullable and i == 0 and rng.random() < 0.5
        out.append({"token": rand_value(rng), "logprob": None if null else rand_lp(rng),
                    "top": top, "text_offset": rng.randrange(1000)})
    return out


def enc_logprobs(lps):
    if lps is None:
        return None
    return [dict(e, token=enc(e["token"]), top=[[enc(t), lp] for t, lp in e["top"]])
            for e in lps]


def rand_prompt(rng):
    if rng.random() < 0.5:
        return None
    ids = [rng.randrange(-5, 200000) for _ in range(rng.randrange(6))]
    lps = None
    if rng.random() < 0.5:
        lps = [None] + [[[rng.choice(ids or [1]), rand_lp(rng), rng.randrange(4), rand_value(rng)]
                         for _ in range(rng.randrange(1, 4))] for _ in ids[1:]]
    return {"token_ids": ids if rng.random() < 0.7 else None, "logprobs": lps}


def enc_prompt(p):
    if p is None:
        return None
    lps = p["logprobs"]
    if lps is not None:
        lps = [None if pos is None else [[i, lp, r, enc(t)] for i, lp, r, t in pos]
               for pos in lps]
    return dict(p, logprobs=lps)


def rand_choice(rng, index, kind, finishes):
    return {"index": index,
            "text": None if kind == "chat" and rng.random() < 0.2 else rand_value(rng),
            "logprobs": rand_logprobs(rng, kind != "chat") if rng.random() < 0.6 else None,
            "finish": rng.choice(finishes),
            "stop": rng.choice([None, rng.randrange(-1, 2**31), rand_value(rng)]),
            "token_ids": rng.choice([None, [rng.randrange(10**6) for _ in range(3)]]),
            "prompt": rand_prompt(rng) if kind != "chat" else None}


def enc_choice(c):
    stop = c["stop"]
    return dict(c, text=None if c["text"] is None else enc(c["text"]),
                logprobs=enc_logprobs(c["logprobs"]),
                stop=enc(stop) if isinstance(stop, (str, bytes)) else stop,
                prompt=enc_prompt(c["prompt"]))


def rand_usage(rng):
    p = rng.randrange(10**6)
    return {"prompt_tokens": p, "completion_tokens": rng.randrange(10**6),
            "cached_tokens": rng.randrange(p + 1)}


# ---- checks ----

def check_usage(u, asked):
    assert u.prompt_tokens == asked["prompt_tokens"]
    assert u.completion_tokens == asked["completion_tokens"]
    assert u.total_tokens == asked["prompt_tokens"] + asked["completion_tokens"]
    assert u.prompt_tokens_details.cached_tokens == asked["cached_tokens"]


def check_stop(raw_choice, asked):
    stop = asked["stop"]
    if asked["finish"] is None and "stop_reason" not in raw_choice:
        return
    assert raw_choice["stop_reason"] == (want(stop) if isinstance(stop, (str, bytes)) else stop)


def check_chat_logprobs(got, asked):
    if asked is None:
        assert got is None
        return
    assert len(got.content) == len(asked)
    for g, a in zip(got.content, asked):
        assert g.token == want(a["token"])
        if a["logprob"] is None:
            assert g.logprob == -9999.0 and g.bytes is None and g.top_logprobs == []
            continue
        assert same_lp(g.logprob, a["logprob"])
        assert bytes(g.bytes) == want(a["token"]).encode()
        assert [(t.token, bytes(t.bytes)) for t in g.top_logprobs] == \
            [(want(t), want(t).encode()) for t, _ in a["top"]]
        assert all(same_lp(t.logprob, lp) for t, (_, lp) in zip(g.top_logprobs, a["top"]))


def check_cmpl_logprobs(got, asked):
    if asked is None:
        assert got is None
        return
    assert got["tokens"] == [want(a["token"]) for a in asked]
    assert got["text_offset"] == [a["text_offset"] for a in asked]
    for g, gt, a in zip(got["token_logprobs"], got["top_logprobs"], asked):
        if a["logprob"] is None:
            assert g is None and gt is None
            continue
        assert same_lp(g, a["logprob"])
        d = {}
        for t, lp in a["top"]:  # a Python dict: first place, last value
            d[want(t)] = lp
        assert list(gt) == list(d)
        assert all(same_lp(gt[k], d[k]) for k in d)


def check_prompt_ext(raw, asked):
    if asked is None:
        assert "prompt_token_ids" not in raw and "prompt_logprobs" not in raw
        return
    if asked["token_ids"] is None:
        assert "prompt_token_ids" not in raw
    else:
        assert raw["prompt_token_ids"] == asked["token_ids"]
    if asked["logprobs"] is None:
        assert "prompt_logprobs" not in raw
        return
    for g, a in zip(raw["prompt_logprobs"], asked["logprobs"], strict=True):
        if a is None:
            assert g is None
            continue
        d = {}
        for i, lp, rank, tok in a:
            d[str(i)] = {"logprob": lp, "rank": rank or None, "decoded_token": want(tok)}
        assert list(g) == list(d)
        for k, v in d.items():
            assert same_lp(g[k]["logprob"], v["logprob"])
            assert g[k]["rank"] == v["rank"] and g[k]["decoded_token"] == v["decoded_token"]


# ---- non-streaming ----

@pytest.mark.parametrize("seed", range(40))
def test_chat_body(seed):
    rng = random.Random(seed)
    strict = seed % 4 != 0
    finishes = ["stop", "length", "tool_calls"] if strict else ["abort", "stop"]
    ctx = rand_ctx(rng, "chat")
    choices = [rand_choice(rng, i, "chat", finishes) for i in range(rng.randrange(1, 4))]
    usage, prompt = rand_usage(rng), rand_prompt(rng)
    body = write({"op": "chat", "ctx": enc_ctx(ctx), "choices": [enc_choice(c) for c in choices],
                  "usage": usage, "prompt": enc_prompt(prompt)})
    raw = loads(body.decode("utf-8"))
    if strict:
        ChatCompletion.model_validate(raw)
    r = chat_create(sdk(body, strict=strict))
    assert isinstance(r, ChatCompletion)
    assert (r.id, r.object, r.created, r.model) == (ctx["id"], "chat.completion", ctx["created"],
                                                    want(ctx["model"]))
    assert r.system_fingerprint == ctx["fp"]
    check_usage(r.usage, usage)
    check_prompt_ext(raw, prompt)
    assert len(r.choices) == len(choices)
    for g, a, rc in zip(r.choices, choices, raw["choices"]):
        assert g.index == a["index"] and g.finish_reason == a["finish"]
        assert g.message.role == "assistant"
        assert g.message.content == (None if a["text"] is None else want(a["text"]))
        assert "tool_calls" not in rc["message"]
        check_chat_logprobs(g.logprobs, a["logprobs"])
        check_stop(rc, a)
        if a["token_ids"] is None:
            assert "token_ids" not in rc
        else:
            assert rc["token_ids"] == a["token_ids"]


@pytest.mark.parametrize("seed", range(40))
def test_completion_body(seed):
    rng = random.Random(1000 + seed)
    ctx = rand_ctx(rng, "completion")
    choices = [rand_choice(rng, i, "completion", ["stop", "length", "abort"])
               for i in range(rng.randrange(1, 4))]
    usage = rand_usage(rng)
    body = write({"op": "completion", "ctx": enc_ctx(ctx),
                  "choices": [enc_choice(c) for c in choices], "usage": usage})
    raw = loads(body.decode("utf-8"))
    lenient = any(c["finish"] == "abort" or
                  any(e["logprob"] is None for e in c["logprobs"] or []) for c in choices)
    if not lenient:
        Completion.model_validate(raw)
    r = sdk(body, strict=not lenient).completions.create(model="m", prompt="x")
    assert isinstance(r, Completion)
    assert (r.id, r.object, r.created, r.model) == (ctx["id"], "text_completion", ctx["created"],
                                                    want(ctx["model"]))
    check_usage(r.usage, usage)
    for g, a, rc in zip(r.choices, choices, raw["choices"], strict=True):
        assert g.index == a["index"] and g.finish_reason == a["finish"]
        assert g.text == ("" if a["text"] is None else want(a["text"]))
        check_cmpl_logprobs(rc["logprobs"], a["logprobs"])
        if a["logprobs"] is not None:
            assert g.logprobs.tokens == rc["logprobs"]["tokens"]
        check_stop(rc, a)
        check_prompt_ext(rc, a["prompt"])


# ---- streaming ----

def chat_stream_ops(rng, ctx, n, continuous):
    """A whole chat stream: per choice the role chunk, deltas, the finish chunk; usage; DONE.
    Returns (ops, asked) with asked[index] = {"text", "finish", "stop", "logprobs"}."""
    usage = rand_usage(rng)
    u = usage if continuous else None
    prompt = {"token_ids": [1, 2, 3], "logprobs": None}
    ops, asked = [], {}
    for i in range(n):
        ops.append({"op": "chat_chunk", "ctx": ctx, "usage": u,
                    "prompt": prompt if i == 0 else None,
                    "choice": {"index": i, "role": True, "text": ""}})
        asked[i] = {"text": "", "logprobs": [], "finish": rng.choice(["stop", "length"]),
                    "stop": rng.choice([None, 128009, rand_value(rng)])}
    live = list(range(n))
    while live:
        i = rng.choice(live)
        if rng.random() < 0.25:
            live.remove(i)
            a = asked[i]
            text = rand_value(rng) if rng.random() < 0.5 else None
            if text is not None:
                a["text"] += want(text)
            ops.append({"op": "chat_chunk", "ctx": ctx, "usage": u, "choice": enc_choice(
                {"index": i, "text": text, "logprobs": None, "finish": a["finish"],
                 "stop": a["stop"], "token_ids": None, "prompt": None})})
            continue
        text, lps = rand_value(rng), rand_logprobs(rng, False)
        asked[i]["text"] += want(text)
        asked[i]["logprobs"] += lps
        ops.append({"op": "chat_chunk", "ctx": ctx, "usage": u, "choice": enc_choice(
            {"index": i, "text": text, "logprobs": lps, "finish": None, "stop": None,
             "token_ids": [7], "prompt": None})})
    ops.append({"op": "usage_chunk", "ctx": ctx, "usage": usage})
    ops.append({"op": "sse_done"})
    return ops, asked, usage


@pytest.mark.parametrize("seed", range(25))
def test_chat_stream_through_sdk(seed):
    rng = random.Random(2000 + seed)
    ctx = rand_ctx(rng, "chat")
    continuous = seed % 2 == 1
    ops, asked, usage = chat_stream_ops(rng, enc_ctx(ctx), rng.randrange(1, 4), continuous)
    body = write(*ops)
    events = sse_events(body)
    assert events[-1] == "[DONE]" and len(events) == len(ops)
    for e in events[:-1]:
        ChatCompletionChunk.model_validate(loads(e))
    stream = chat_create(sdk(body, stream=True), stream=True,
                         stream_options={"include_usage": True})
    chunks = list(stream)
    assert len(chunks) == len(ops) - 1
    got = {i: {"text": "", "logprobs": [], "roles": []} for i in asked}
    for k, ch in enumerate(chunks):
        assert isinstance(ch, ChatCompletionChunk)
        assert (ch.id, ch.object, ch.created, ch.model) == (
            ctx["id"], "chat.completion.chunk", ctx["created"], want(ctx["model"]))
        if continuous or k == len(chunks) - 1:
            check_usage(ch.usage, usage)
        else:
            assert ch.usage is None
        if k == len(chunks) - 1:
            assert ch.choices == []
            continue
        assert len(ch.choices) == 1
        c = ch.choices[0]
        g = got[c.index]
        g["roles"].append(c.delta.role)
        g["text"] += c.delta.content or ""
        if c.logprobs is not None:
            g["logprobs"] += c.logprobs.content
        if c.finish_reason is not None:
            assert "finish" not in g
            g["finish"] = c.finish_reason
            g["stop"] = c.model_extra["stop_reason"]
        else:
            assert "stop_reason" not in c.model_extra
    assert chunks[0].model_extra["prompt_token_ids"] == [1, 2, 3]
    for i, a in asked.items():
        g = got[i]
        assert g["roles"][0] == "assistant" and set(g["roles"][1:]) <= {None}
        assert g["text"] == a["text"]
        assert g["finish"] == a["finish"]
        assert g["stop"] == (want(a["stop"]) if isinstance(a["stop"], (str, bytes)) else a["stop"])
        check_chat_logprobs(type("L", (), {"content": g["logprobs"]})(), a["logprobs"])


@pytest.mark.parametrize("seed", range(15))
def test_completion_stream_through_sdk(seed):
    rng = random.Random(3000 + seed)
    ctx = enc_ctx(rand_ctx(rng, "completion"))
    n = rng.randrange(1, 4)
    ops, asked = [], {i: {"text": "", "tokens": []} for i in range(n)}
    live = list(range(n))
    while live:
        i = rng.choice(live)
        done = rng.random() < 0.25
        if done:
            live.remove(i)
        text, lps = rand_value(rng), rand_logprobs(rng, False)
        asked[i]["text"] += want(text)
        asked[i]["tokens"] += [want(e["token"]) for e in lps]
        if done:
            asked[i]["finish"] = rng.choice(["stop", "length"])
            asked[i]["stop"] = rng.choice([None, 2, "\n\n"])
        ops.append({"op": "completion_chunk", "ctx": ctx, "choice": enc_choice(
            {"index": i, "text": text, "logprobs": lps, "finish": asked[i].get("finish") if done
             else None, "stop": asked[i].get("stop") if done else None, "token_ids": None,
             "prompt": None})})
    usage = rand_usage(rng)
    ops += [{"op": "usage_chunk", "ctx": ctx, "usage": usage}, {"op": "sse_done"}]
    body = write(*ops)
    assert len(sse_events(body)) == len(ops)
    chunks = list(sdk(body, stream=True, strict=False).completions.create(
        model="m", prompt="x", stream=True, stream_options={"include_usage": True}))
    assert len(chunks) == len(ops) - 1
    got = {i: {"text": "", "tokens": []} for i in range(n)}
    for ch in chunks[:-1]:
        assert isinstance(ch, Completion) and ch.object == "text_completion"
        assert ch.id == ctx["id"] and ch.usage is None
        [c] = ch.choices
        got[c.index]["text"] += c.text
        got[c.index]["tokens"] += c.logprobs.tokens
        if c.finish_reason:
            Completion.model_validate(ch.model_dump())
            got[c.index]["finish"] = c.finish_reason
            got[c.index]["stop"] = c.model_extra["stop_reason"]
    assert chunks[-1].choices == []
    check_usage(chunks[-1].usage, usage)
    assert got == asked


def test_error_event_raises_api_error():
    ctx = {"kind": "chat", "id": "chatcmpl-e", "created": 1, "model": "m", "fp": None}
    body = write({"op": "chat_chunk", "ctx": ctx, "choice": {"index": 0, "role": True, "text": ""}},
                 {"op": "chat_chunk", "ctx": ctx, "choice": {"index": 0, "text": "partial"}},
                 {"op": "sse_error", "status": 503, "param": None,
                  "message": "the engine died: \"rank 1\"\n"},
                 {"op": "sse_done"})
    assert body.endswith(b'data: [DONE]\n\n')
    assert loads(sse_events(body)[2]) == {"error": {
        "message": "the engine died: \"rank 1\" ", "type": "ServiceUnavailableError",
        "param": None, "code": 503}}
    seen = []
    with pytest.raises(openai.APIError) as exc:
        for ch in chat_create(sdk(body, stream=True), stream=True):
            seen.append(ch.choices[0].delta.content)
    assert seen == ["", "partial"]
    assert exc.value.message == "the engine died: \"rank 1\" "
    assert exc.value.body["type"] == "ServiceUnavailableError" and exc.value.body["code"] == 503
    # a completion stream too, with a param
    body = write({"op": "sse_error", "status": 400, "param": "max_tokens", "message": "too long"},
                 {"op": "sse_done"})
    with pytest.raises(openai.APIError) as exc:
        list(sdk(body, stream=True).completions.create(model="m", prompt="x", stream=True))
    assert exc.value.message == "too long" and exc.value.body["param"] == "max_tokens"


# ---- small endpoints ----

def test_models_through_sdk():
    names = ["kiln-model", "alias/é \"x\"", "中文"]
    body = write({"op": "models", "names": names, "created": 1700000000, "max_model_len": 8192,
                  "root": "/srv/models/llama"})
    page = sdk(body).models.list()
    got = list(page)
    assert [m.id for m in got] == names
    for m in got:
        assert isinstance(m, Model) and m.object == "model" and m.owned_by == "kiln"
        assert m.created == 1700000000
        assert m.model_extra["root"] == "/srv/models/llama"
        assert m.model_extra["max_model_len"] == 8192 and m.model_extra["parent"] is None
        [perm] = m.model_extra["permission"]
        assert perm["object"] == "model_permission" and re.fullmatch(r"modelperm-[0-9a-f]{32}",
                                                                      perm["id"])
    raw = loads(body)
    assert raw["object"] == "list"
    assert len({c["permission"][0]["id"] for c in raw["data"]}) == len(names)
    raw = loads(write({"op": "models", "names": ["x"], "created": 3, "max_model_len": 0}))
    assert raw["data"][0]["root"] is None and raw["data"][0]["max_model_len"] is None


@pytest.mark.parametrize("seed", range(10))
def test_tokenize_detokenize_version(seed):
    rng = random.Random(4000 + seed)
    ids = [rng.randrange(-2**31, 2**31) for _ in range(rng.randrange(8))]
    strs = [rand_value(rng) for _ in ids]
    text = rand_value(rng)
    version = rand_text(rng, 6, nul=False)
    [(r1, t1), (r2, t2), (r3, d), (r4, v)] = run([
        {"ops": [{"op": "tokenize", "ids": ids, "max_model_len": 4096,
                  "token_strs": [enc(s) for s in strs]}]},
        {"ops": [{"op": "tokenize", "ids": ids, "max_model_len": 8}]},
        {"ops": [{"op": "detokenize", "text": enc(text)}]},
        {"ops": [{"op": "version", "version": version}]}])
    assert r1 == r2 == r3 == r4 == 0
    assert loads(t1) == {"count": len(ids), "max_model_len": 4096, "tokens": ids,
                              "token_strs": [want(s) for s in strs]}
    assert loads(t2) == {"count": len(ids), "max_model_len": 8, "tokens": ids}
    assert loads(d) == {"prompt": want(text)}
    assert loads(v) == {"version": version}


def test_new_ids():
    cases = [{"ops": [{"op": "new_id", "kind": k}]} for k in ["chat", "completion"] * 50]
    suffixes = ["req-1", "a b\t\"c\\", "é", "x" * 100, "0123456789abcdef-" * 3]
    cases += [{"ops": [{"op": "new_id", "kind": "chat", "suffix": s}]} for s in suffixes]
    out = run(cases)
    ids = [o.decode() for rc, o in out[:100]]
    assert all(rc == 0 for rc, _ in out)
    assert all(re.fullmatch(r"chatcmpl-[0-9a-f]{32}", i) for i in ids[0::2])
    assert all(re.fullmatch(r"cmpl-[0-9a-f]{32}", i) for i in ids[1::2])
    assert len(set(ids)) == 100
    got = [o.decode() for _, o in out[100:]]
    expect = ["chatcmpl-" + "".join(ch if 0x21 <= ord(ch) <= 0x7e else "_" for ch in
                                    s.encode().decode("latin-1"))[:64] for s in suffixes]
    assert got == expect


def test_logprob_values_round_trip():
    rng = random.Random(5)
    vals = [rand_lp(rng) for _ in range(300)] + [-1e-45, -1.17e-38, -3.4e38, -9999.0, -9998.99,
                                                    -0.1, -1 / 3]
    vals += [struct.unpack("<f", struct.pack("<I", rng.getrandbits(23) | (rng.randrange(1, 140)
                                                                             << 23)))[0] * -1
             for _ in range(300)]
    lps = [{"token": "t", "logprob": v, "top": [["u", v]], "text_offset": 0} for v in vals]
    ctx = {"kind": "completion", "id": "cmpl-x", "created": 0, "model": "m", "fp": None}
    body = write({"op": "completion", "ctx": ctx, "choices": [
        {"index": 0, "text": "", "logprobs": lps, "finish": "stop"}]})
    raw = loads(body)["choices"][0]["logprobs"]
    for v, g, top in zip(vals, raw["token_logprobs"], raw["top_logprobs"], strict=True):
        assert isinstance(g, float) and same_lp(g, v) and same_lp(top["u"], v)
    # the text itself: shortest digits that read back as the same float32
    text = body.decode()
    for m in re.finditer(r'"token_logprobs":\[([^\]]*)\]', text):
        for t in m.group(1).split(","):
            if t != "-9999.0" and "e" not in t:
                assert len(t.lstrip("-").replace(".", "").strip("0")) <= 9
