"""The request parser against the official openai SDK.

The SDK builds the request bodies (its client points at an httpx.MockTransport that keeps
the JSON it sends; no network), for hand-picked and for randomly drawn parameter
combinations, vLLM extensions passed as extra_body the way users pass them. Each body goes
through $KILN_BUILD/tests/e2e/oai_request_driver (oai_request_parse), and what the parser
made of it must be what the SDK was asked for, with API.md's defaults for the rest. Bodies
the parser refuses must be refused with the status and param expected, and the error body
kiln would send must be understood by the SDK: the right exception class, message, type,
param and code.
"""
import json
import math
import os
import pathlib
import random
import subprocess

import httpx
import openai
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("KILN_BUILD", "build")
DRIVER = BUILD / "tests" / "e2e" / "oai_request_driver"

VOCAB = 32000
SERVED = ["kiln-model", "alias"]
LIMITS = {"vocab_size": VOCAB, "max_model_len": 8192, "served": SERVED}
MSGS = [{"role": "user", "content": "Hello"}]

# Fields of the parse and their defaults (API.md) when the request does not give them.
DEFAULTS = {
    "n": 1, "stream": False, "include_usage": False, "continuous_usage_stats": False,
    "echo": False, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0,
    "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
    "seed": None, "min_tokens": 0, "ignore_eos": False, "logprobs": -1,
    "prompt_logprobs": -1, "stop_token_ids": [], "logit_bias": {},
    "allowed_token_ids": None, "stop": [], "include_stop_str_in_output": False,
    "skip_special_tokens": True, "spaces_between_special_tokens": True, "priority": 0,
    "request_id": None, "return_token_ids": False, "truncate_prompt_tokens": 0,
}
FLOATS = {"temperature", "top_p", "min_p", "repetition_penalty", "presence_penalty",
          "frequency_penalty"}


class Capture:
    """An openai client whose transport records each request body."""

    def __init__(self, status=200, reply=None):
        self.bodies = []
        self.status = status
        self.reply = reply
        self.client = openai.OpenAI(
            base_url="http://kiln.test/v1", api_key="sk-test", max_retries=0,
            http_client=httpx.Client(transport=httpx.MockTransport(self.handle)))

    def handle(self, request):
        body = request.content.decode()
        self.bodies.append((request.url.path, body))
        if self.reply is not None:
            return httpx.Response(self.status, json=self.reply)
        if json.loads(body).get("stream"):
            return httpx.Response(200, text="data: [DONE]\n\n",
                                  headers={"content-type": "text/event-stream"})
        obj = "chat.completion" if request.url.path.endswith("chat/completions") else \
            "text_completion"
        return httpx.Response(200, json={"id": "x", "object": obj, "created": 0,
                                         "model": "m", "choices": []})

    def send(self, kind, kwargs):
        """The body the SDK sends for create(**kwargs)."""
        api = self.client.chat.completions if kind == "chat" else self.client.completions
        res = api.create(**kwargs)
        if kwargs.get("stream"):
            for _ in res:
                pass
        return self.bodies[-1][1]


def run_driver(cases):
    assert DRIVER.exists(), f"{DRIVER} is missing: build it with make"
    out = subprocess.run([str(DRIVER)], input=json.dumps(cases), capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def merged(kwargs):
    """kwargs as the body has them: extra_body merged, the rest as given."""
    k = {key: v for key, v in kwargs.items() if key != "extra_body"}
    k.update(kwargs.get("extra_body") or {})
    return k


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7)


def expected(kind, kw):
    """What the parse must hold for the body built from kw (merged)."""
    want = dict(DEFAULTS)
    for key in DEFAULTS:
        if kw.get(key) is not None:
            want[key] = kw[key]
    if kw.get("top_k") == -1:
        want["top_k"] = 0
    if isinstance(kw.get("stop"), str):
        want["stop"] = [kw["stop"]]
    if kw.get("logit_bias"):
        want["logit_bias"] = {str(int(k)): float(v) for k, v in kw["logit_bias"].items()}
    so = kw.get("stream_options") or {}
    want["include_usage"] = bool(so.get("include_usage"))
    want["continuous_usage_stats"] = bool(so.get("continuous_usage_stats"))
    want["model"] = kw.get("model") or SERVED[0]
    if kind == "chat":
        mt = kw.get("max_completion_tokens")
        want["max_tokens"] = mt if mt is not None else kw.get("max_tokens")
        want["logprobs"] = (kw.get("top_logprobs") or 0) if kw.get("logprobs") else -1
        want["messages"] = kw["messages"]
        want["add_generation_prompt"] = kw.get("add_generation_prompt", True)
        want["add_special_tokens"] = kw.get("add_special_tokens", False)
    else:
        want["max_tokens"] = kw["max_tokens"] if kw.get("max_tokens") is not None else 16
        want["logprobs"] = kw["logprobs"] if kw.get("logprobs") is not None else -1
        want["add_special_tokens"] = kw.get("add_special_tokens", True)
        p = kw["prompt"]
        if isinstance(p, str):
            want["prompts"] = [{"text": p}]
        elif isinstance(p[0], int):
            want["prompts"] = [{"ids": p}]
        elif isinstance(p[0], str):
            want["prompts"] = [{"text": s} for s in p]
        else:
            want["prompts"] = [{"ids": ids} for ids in p]
    return want


def check_parse(kind, kw, got):
    want = expected(kind, kw)
    for key, w in want.items():
        g = got[key]
        if key in FLOATS:
            assert close(g, w), (key, g, w, kw)
        elif key == "logit_bias":
            assert set(g) == set(w) and all(close(g[k], w[k]) for k in w), (g, w, kw)
        else:
            assert g == w, (key, g, w, kw)


# ---- hand-picked combinations ----

CHAT_CASES = [
    {"model": "kiln-model", "messages": MSGS},
    {"model": "alias", "messages": MSGS, "temperature": 0.0},
    {"model": "kiln-model", "messages": MSGS, "temperature": 0.7, "top_p": 0.9, "n": 4,
     "seed": 1234, "max_tokens": 50, "stop": "\n\n", "presence_penalty": 0.5,
     "frequency_penalty": -0.5},
    {"model": "kiln-model", "messages": MSGS, "max_completion_tokens": 20, "max_tokens": 99},
    {"model": "kiln-model", "messages": MSGS, "max_completion_tokens": None},
    {"model": "kiln-model", "messages": MSGS, "logprobs": True, "top_logprobs": 5},
    {"model": "kiln-model", "messages": MSGS, "logprobs": True},
    {"model": "kiln-model", "messages": MSGS, "logprobs": False, "top_logprobs": 0},
    {"model": "kiln-model", "messages": MSGS, "logit_bias": {"31999": -100, "7": 2.5}},
    {"model": "kiln-model", "messages": MSGS, "stream": True},
    {"model": "kiln-model", "messages": MSGS, "stream": True,
     "stream_options": {"include_usage": True}},
    {"model": "kiln-model", "messages": MSGS, "stream": True,
     "extra_body": {"stream_options": {"include_usage": True,
                                       "continuous_usage_stats": True}}},
    {"model": "kiln-model", "messages": MSGS, "stop": ["a", "b", "c"], "user": "u-1",
     "seed": -5, "response_format": {"type": "text"}, "tool_choice": "none",
     "parallel_tool_calls": True, "metadata": {"k": "v"}, "store": False},
    {"model": "kiln-model", "messages": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "a"},
                                     {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get", "arguments": "{\"x\": 1}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        {"role": "user", "content": "thanks", "name": "bob"}]},
    {"model": "kiln-model", "messages": MSGS, "extra_body": {
        "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.1, "min_tokens": 3,
        "ignore_eos": True, "stop_token_ids": [2, 32000 - 1], "allowed_token_ids": [5, 6],
        "include_stop_str_in_output": True, "skip_special_tokens": False,
        "spaces_between_special_tokens": False, "priority": 3, "request_id": "r-1",
        "return_token_ids": True, "truncate_prompt_tokens": 100, "prompt_logprobs": 2,
        "add_generation_prompt": False, "add_special_tokens": True, "echo": True,
        "chat_template_kwargs": {"enable_thinking": False}}},
    {"model": "kiln-model", "messages": MSGS, "extra_body": {"top_k": -1}},
    {"model": "kiln-model", "messages": MSGS, "extra_body": {
        "continue_final_message": True, "add_generation_prompt": False}},
]

COMPLETION_CASES = [
    {"model": "kiln-model", "prompt": "Once upon a time"},
    {"model": "alias", "prompt": ["a", "b", "c"], "n": 2, "temperature": 0.5},
    {"model": "kiln-model", "prompt": [1, 2, 3], "max_tokens": 5},
    {"model": "kiln-model", "prompt": [[1, 2], [3], [31999]], "max_tokens": None},
    {"model": "kiln-model", "prompt": "x", "logprobs": 3, "echo": True},
    {"model": "kiln-model", "prompt": "x", "logprobs": 0},
    {"model": "kiln-model", "prompt": "x", "stop": ["END"], "seed": 0, "top_p": 0.5,
     "frequency_penalty": 2, "presence_penalty": -2, "best_of": 1, "suffix": None},
    {"model": "kiln-model", "prompt": "x", "stream": True,
     "stream_options": {"include_usage": True}},
    {"model": "kiln-model", "prompt": "x", "logit_bias": {"1": 1}, "user": "u"},
    {"model": "kiln-model", "prompt": "x", "extra_body": {
        "top_k": 5, "min_p": 0.2, "repetition_penalty": 0.9, "add_special_tokens": False,
        "stop_token_ids": [0], "min_tokens": 2, "prompt_logprobs": 0}},
]


def run_valid(kind, cases):
    cap = Capture()
    bodies = [cap.send(kind, kw) for kw in cases]
    results = run_driver([{"kind": kind, "body": b, "limits": LIMITS} for b in bodies])
    for kw, body, res in zip(cases, bodies, results):
        assert "ok" in res, (body, res)
        check_parse(kind, merged(kw), res["ok"])
    return len(cases)


def test_chat_sdk_bodies():
    run_valid("chat", CHAT_CASES)


def test_completion_sdk_bodies():
    run_valid("completion", COMPLETION_CASES)


# ---- random combinations ----

def draw_common(rng, kw):
    pools = {
        "temperature": [0.0, 0.01, 0.5, 1.0, 1.7, 2],
        "top_p": [0.01, 0.3, 1.0, 1],
        "presence_penalty": [-2.0, -0.3, 0, 1.5, 2],
        "frequency_penalty": [-2, 0.25, 2.0],
        "seed": [0, 1, -1, 2**63 - 1, -2**63, 123456789],
        "stop": ["x", "\n", ["a"], ["<|end|>", "###", "é"], [str(i) for i in range(16)]],
        "logit_bias": [{"0": 100}, {str(VOCAB - 1): -100, "17": 0.5}],
        "user": ["someone"],
    }
    for key, values in pools.items():
        if rng.random() < 0.35:
            kw[key] = rng.choice(values)
    extra = {}
    xpools = {
        "top_k": [-1, 0, 1, 50, 100000], "min_p": [0, 0.1, 1], "min_tokens": [0, 1, 4],
        "repetition_penalty": [0.5, 1, 1.3], "ignore_eos": [True, False],
        "stop_token_ids": [[], [1, 2], [VOCAB - 1]], "allowed_token_ids": [[3], [4, 5, 6]],
        "include_stop_str_in_output": [True], "skip_special_tokens": [False, True],
        "spaces_between_special_tokens": [False], "priority": [-3, 0, 7],
        "request_id": ["abc-123"], "return_token_ids": [True],
        "truncate_prompt_tokens": [-1, 1, 8192], "prompt_logprobs": [0, 5, 20],
    }
    for key, values in xpools.items():
        if rng.random() < 0.2:
            extra[key] = rng.choice(values)
    if rng.random() < 0.3:
        kw["stream"] = True
        if rng.random() < 0.5:
            kw["stream_options"] = {"include_usage": rng.random() < 0.5}
        extra.pop("prompt_logprobs", None)  # not with streams
    if rng.random() < 0.3:
        kw["n"] = rng.choice([1, 2, 128])
        if kw["n"] > 1 and kw.get("temperature", 1.0) == 0:
            kw["temperature"] = 0.8
    if extra:
        kw["extra_body"] = extra
    return kw


def draw_chat(rng):
    kw = {"model": rng.choice(SERVED), "messages": rng.choice([
        MSGS, [{"role": "system", "content": "s"}] + MSGS,
        [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        MSGS + [{"role": "assistant", "content": "Hi!"}, {"role": "user", "content": "?"}]])}
    draw_common(rng, kw)
    if rng.random() < 0.3:
        kw[rng.choice(["max_tokens", "max_completion_tokens"])] = rng.choice([1, 16, 4096])
    if rng.random() < 0.25:
        kw["logprobs"] = True
        if rng.random() < 0.5:
            kw["top_logprobs"] = rng.choice([0, 1, 20])
    mt = kw.get("max_completion_tokens", kw.get("max_tokens"))
    if mt is not None and (kw.get("extra_body") or {}).get("min_tokens", 0) > mt:
        kw["extra_body"]["min_tokens"] = mt
    return kw


def draw_completion(rng):
    kw = {"model": rng.choice(SERVED), "prompt": rng.choice([
        "Hello", ["a", "bb"], [1, 2, 3], [[4], [5, 6]], [VOCAB - 1], "é" * 3])}
    draw_common(rng, kw)
    if rng.random() < 0.4:
        kw["max_tokens"] = rng.choice([1, 16, 100])
    if rng.random() < 0.3:
        kw["logprobs"] = rng.choice([0, 1, 5, 20])
    if rng.random() < 0.2:
        kw["echo"] = True
    mt = kw.get("max_tokens") or 16
    if (kw.get("extra_body") or {}).get("min_tokens", 0) > mt:
        kw["extra_body"]["min_tokens"] = mt
    return kw


@pytest.mark.parametrize("seed", range(4))
def test_random_sdk_bodies(seed):
    rng = random.Random(seed)
    run_valid("chat", [draw_chat(rng) for _ in range(150)])
    run_valid("completion", [draw_completion(rng) for _ in range(150)])


# ---- refusals, and the SDK reading kiln's error bodies ----

BAD = [
    # (kind, kwargs, status, param)
    ("chat", {"model": "gpt-4o", "messages": MSGS}, 404, "model"),
    ("completion", {"model": "nope", "prompt": "x"}, 404, "model"),
    ("chat", {"model": "kiln-model", "messages": []}, 400, "messages"),
    ("chat", {"model": "kiln-model", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}, 400, "messages"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "temperature": -0.5}, 400,
     "temperature"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "top_p": 1.5}, 400, "top_p"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "n": 0}, 400, "n"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "n": 129}, 400, "n"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "n": 2, "temperature": 0}, 400, "n"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "top_logprobs": 3}, 400,
     "top_logprobs"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "logprobs": True, "top_logprobs": 21},
     400, "top_logprobs"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "presence_penalty": 2.5}, 400,
     "presence_penalty"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "frequency_penalty": -2.5}, 400,
     "frequency_penalty"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "logit_bias": {"32000": 1}}, 400,
     "logit_bias"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "logit_bias": {"5": 101}}, 400,
     "logit_bias"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "stop": [str(i) for i in range(17)]},
     400, "stop"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "stop": ""}, 400, "stop"),
    ("chat", {"model": "kiln-model", "messages": MSGS,
              "stream_options": {"include_usage": True}}, 400, "stream_options"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "max_completion_tokens": 0}, 400,
     "max_completion_tokens"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "tools": [
        {"type": "function", "function": {"name": "f", "parameters": {}}}]}, 400, "tools"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "tool_choice": "auto"}, 400,
     "tool_choice"),
    ("chat", {"model": "kiln-model", "messages": MSGS,
              "response_format": {"type": "json_object"}}, 400, "response_format"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "response_format": {
        "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}},
     400, "response_format"),
    ("chat", {"model": "kiln-model", "messages": MSGS,
              "extra_body": {"guided_json": {"type": "object"}}}, 400, "guided_json"),
    ("chat", {"model": "kiln-model", "messages": MSGS,
              "extra_body": {"structured_outputs": {"regex": "a+"}}}, 400,
     "structured_outputs"),
    ("chat", {"model": "kiln-model", "messages": MSGS,
              "extra_body": {"continue_final_message": True}}, 400, "continue_final_message"),
    ("chat", {"model": "kiln-model", "messages": MSGS,
              "extra_body": {"chat_template": "{{ 1 }}"}}, 400, "chat_template"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "extra_body": {"top_k": -7}}, 400,
     "top_k"),
    ("chat", {"model": "kiln-model", "messages": MSGS,
              "extra_body": {"allowed_token_ids": [32000]}}, 400, "allowed_token_ids"),
    ("chat", {"model": "kiln-model", "messages": MSGS, "max_tokens": 4,
              "extra_body": {"min_tokens": 5}}, 400, "min_tokens"),
    ("completion", {"model": "kiln-model", "prompt": ""}, 400, "prompt"),
    ("completion", {"model": "kiln-model", "prompt": []}, 400, "prompt"),
    ("completion", {"model": "kiln-model", "prompt": [1, 32000]}, 400, "prompt"),
    ("completion", {"model": "kiln-model", "prompt": "x", "suffix": "y"}, 400, "suffix"),
    ("completion", {"model": "kiln-model", "prompt": "x", "logprobs": 21}, 400, "logprobs"),
    ("completion", {"model": "kiln-model", "prompt": "x", "best_of": 3}, 400, "best_of"),
    ("completion", {"model": "kiln-model", "prompt": "x", "max_tokens": -1}, 400,
     "max_tokens"),
    ("completion", {"model": "kiln-model", "prompt": "x", "stream": True,
                    "extra_body": {"prompt_logprobs": 1}}, 400, "prompt_logprobs"),
]

SDK_CLASS = {400: openai.BadRequestError, 404: openai.NotFoundError,
             401: openai.AuthenticationError, 429: openai.RateLimitError,
             500: openai.InternalServerError, 503: openai.InternalServerError}


def sdk_reads(kind, status, error_body):
    """Has the SDK receive kiln's error body; returns the exception it raises."""
    cap = Capture(status=status, reply=error_body)
    with pytest.raises(openai.APIStatusError) as info:
        if kind == "chat":
            cap.client.chat.completions.create(model="kiln-model", messages=MSGS)
        else:
            cap.client.completions.create(model="kiln-model", prompt="x")
    return info.value


def test_refusals_and_sdk_errors():
    cap = Capture()
    bodies = [cap.send(kind, kw) for kind, kw, _, _ in BAD]
    results = run_driver([{"kind": kind, "body": b, "limits": LIMITS}
                          for (kind, _, _, _), b in zip(BAD, bodies)])
    for (kind, kw, status, param), body, res in zip(BAD, bodies, results):
        assert res.get("status") == status, (kw, body, res)
        err = res["error"]["error"]
        assert set(err) == {"message", "type", "param", "code"}
        assert err["param"] == param and err["code"] == status, (kw, err)
        assert err["message"], err
        if status == 404:
            assert all(name in err["message"] for name in SERVED)
        exc = sdk_reads(kind, status, res["error"])
        assert isinstance(exc, SDK_CLASS[status]), (type(exc), status)
        assert exc.status_code == status
        assert exc.param == param and exc.type == err["type"]
        assert str(exc.code) == str(status)  # the SDK types code as Optional[str]
        assert err["message"] in exc.message


def test_limits_and_malformed_bodies():
    deep = '{"messages": ' + "[" * 70 + "]" * 70 + "}"
    cases = [
        ("chat", deep, {}, 413, None),
        ("chat", deep, {"max_depth": 128}, 400, "messages"),
        ("completion", '{"prompt": [' + ",".join(["1"] * 5000) + "]}", {"max_nodes": 1000},
         413, None),
        ("chat", "{not json", {}, 400, None),
        ("chat", '{"messages": "\xff"}', {}, 400, "messages"),
        ("chat", "[]", {}, 400, None),
    ]
    results = run_driver([{"kind": k, "body": b, "limits": dict(LIMITS, **extra)}
                          for k, b, extra, _, _ in cases])
    for (kind, _, _, status, param), res in zip(cases, results):
        assert res.get("status") == status, res
        assert res["error"]["error"]["param"] == param
        exc = sdk_reads(kind, status, res["error"])
        assert exc.status_code == status
        assert exc.type == ("RequestTooLarge" if status == 413 else "BadRequestError")


def test_generation_config_defaults_and_fit():
    gen = {"temperature": 0.6, "top_p": 0.9, "top_k": 20, "min_p": 0.01,
           "repetition_penalty": 1.05, "max_new_tokens": 512}
    lim = dict(LIMITS, gen=gen)
    cap = Capture()
    unset = cap.send("chat", {"model": "kiln-model", "messages": MSGS})
    given = cap.send("chat", {"model": "kiln-model", "messages": MSGS, "temperature": 1.0,
                              "top_p": 1.0, "extra_body": {"top_k": 0}, "max_tokens": 600})
    res = run_driver([
        {"kind": "chat", "body": unset, "limits": lim, "n_prompt": 100},
        {"kind": "chat", "body": unset, "limits": lim, "n_prompt": 8000},
        {"kind": "chat", "body": given, "limits": lim, "n_prompt": 100},
        {"kind": "chat", "body": given, "limits": lim, "n_prompt": 7600},
        {"kind": "chat", "body": unset, "limits": lim, "n_prompt": 8192},
    ])
    ok = res[0]["ok"]
    for key in ("temperature", "top_p", "min_p", "repetition_penalty"):
        assert close(ok[key], gen[key]), key
    assert ok["top_k"] == 20 and ok["max_tokens"] == 512
    assert res[1]["ok"]["max_tokens"] == 192
    g = res[2]["ok"]
    assert g["temperature"] == 1.0 and g["top_p"] == 1.0 and g["top_k"] == 0
    assert g["max_tokens"] == 600
    assert res[3]["status"] == 400 and res[3]["error"]["error"]["param"] == "max_tokens"
    assert "However, you requested 600 output tokens and your prompt contains 7600 input " \
           "tokens, for a total of 8200 tokens." in res[3]["error"]["error"]["message"]
    assert res[4]["status"] == 400 and res[4]["error"]["error"]["param"] == "input_tokens"
