"""End to end: `kiln serve` on stories260K (engine + frontend processes, real sockets), driven
by the official `openai` Python SDK, httpx (HTTP/1.1 and HTTP/2) and curl. References: the
model's recorded golden outputs and the SDK's own parsing of every response."""
import json
import os
import re
import signal
import ssl
import subprocess
import threading
import time

import httpx
import openai
import pytest

import engine_client as ec

GOLDEN = os.path.join(ec.STORIES, "golden")
NAME = "stories"


def golden(name):
    with open(os.path.join(GOLDEN, name)) as f:
        return json.load(f)


class Serve:
    """A `kiln serve` process on a free port."""

    def __init__(self, *flags, timeout=60):
        cmd = [ec.KILN, "serve", "--model", ec.STORIES, "--served-model-name", NAME,
               "--port", "0", "--frontends", "1", "--threads", "1", "--log-level", "warn"]
        self.proc = subprocess.Popen(cmd + list(flags), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"(https?)://[^:]+:(\d+)/v1", line)
        if not m:
            self.proc.kill()
            raise RuntimeError("kiln serve did not start: %r %s" % (line, self.proc.stderr.read()))
        self.port = int(m.group(2))
        self.base = "%s://127.0.0.1:%d" % (m.group(1), self.port)
        self.err = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.err.append(line)

    def client(self, **kw):
        return openai.OpenAI(base_url=self.base + "/v1", api_key=kw.pop("api_key", "none"),
                             max_retries=0, **kw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert not any("Sanitizer" in line for line in self.err), "".join(self.err)
        return self.proc.returncode


@pytest.fixture(scope="module")
def serve():
    s = Serve()
    yield s
    assert s.stop() == 0


def test_health_version_models(serve):
    assert httpx.get(serve.base + "/health").status_code == 200
    assert httpx.get(serve.base + "/version").json()["version"]
    models = serve.client().models.list()
    assert [m.id for m in models.data] == [NAME]


def test_prompt_with_nul_bytes(serve):
    # JSON allows \u0000; the tokenizer sees the NUL byte (byte fallback), as HF does
    from tokenizers import Tokenizer
    prompt = "Once\u0000 upon\u0000a time"
    want = Tokenizer.from_file(os.path.join(ec.STORIES, "tokenizer.json")).encode(prompt)
    r = serve.client().completions.create(model=NAME, prompt=prompt, max_tokens=2,
                                          temperature=0)
    assert r.usage.prompt_tokens == len(want.ids)
    r = serve.client().chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": prompt}], max_tokens=2)
    assert r.choices[0].finish_reason == "length"
    with pytest.raises(openai.BadRequestError):
        serve.client().chat.completions.create(
            model=NAME, messages=[{"role": "user", "content": "hi"}], max_tokens=2,
            tools=[{"type": "function", "function": {"name": "f"}}], tool_choice="none\u0000")


def test_completion_greedy_equals_golden(serve):
    g = golden("golden_prompt_once_upon_a_time.json")
    r = serve.client().completions.create(model=NAME, prompt=g["prompt"], temperature=0,
                                          max_tokens=g["max_new_tokens"])
    assert r.choices[0].text == g["generated_text"]
    assert r.choices[0].finish_reason == g["finish_reason"]
    assert r.usage.prompt_tokens == len(g["prompt_ids"])
    assert r.usage.completion_tokens == len(g["generated_ids"])
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.model == NAME and r.id.startswith("cmpl-")


def test_completion_prompt_as_ids(serve):
    g = golden("golden_prompt_tom_and_sue.json")
    r = serve.client().completions.create(model=NAME, prompt=g["prompt_ids"], temperature=0,
                                          max_tokens=g["max_new_tokens"],
                                          extra_body={"return_token_ids": True})
    assert r.choices[0].text == g["generated_text"]


def test_chat_greedy_equals_golden(serve):
    g = golden("golden_chat.json")
    r = serve.client().chat.completions.create(model=NAME, messages=g["messages"], temperature=0,
                                               max_tokens=g["max_new_tokens"])
    assert r.choices[0].message.content == g["content"]
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.tool_calls is None
    assert r.usage.prompt_tokens == len(g["prompt_ids"])


def test_streaming_text_equals_non_streaming(serve):
    c = serve.client()
    g = golden("golden_chat.json")
    whole = c.chat.completions.create(model=NAME, messages=g["messages"], temperature=0,
                                      max_tokens=40)
    chunks = list(c.chat.completions.create(model=NAME, messages=g["messages"], temperature=0,
                                            max_tokens=40, stream=True,
                                            stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == whole.choices[0].message.content
    finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
    assert finals[-1] == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 40
    p = golden("golden_prompt_once_upon_a_time.json")
    whole = c.completions.create(model=NAME, prompt=p["prompt"], temperature=0, max_tokens=30)
    parts = list(c.completions.create(model=NAME, prompt=p["prompt"], temperature=0,
                                      max_tokens=30, stream=True))
    assert "".join(x.choices[0].text for x in parts if x.choices) == whole.choices[0].text
    assert all(x.usage is None for x in parts)


def test_n3_with_seed_is_reproducible(serve):
    c = serve.client()
    kw = dict(model=NAME, prompt="Once upon a time", n=3, seed=42, temperature=1.0,
              max_tokens=24)
    a = c.completions.create(**kw)
    b = c.completions.create(**kw)
    assert [x.text for x in a.choices] == [x.text for x in b.choices]
    assert sorted(x.index for x in a.choices) == [0, 1, 2]
    assert len({x.text for x in a.choices}) > 1


def test_stop_strings(serve):
    c = serve.client()
    g = golden("golden_prompt_once_upon_a_time.json")
    full = g["generated_text"]
    stop = "Lily"
    cut = full.index(stop)
    r = c.completions.create(model=NAME, prompt=g["prompt"], temperature=0, max_tokens=64,
                             stop=[stop])
    assert r.choices[0].text == full[:cut]
    assert r.choices[0].finish_reason == "stop"
    r = c.completions.create(model=NAME, prompt=g["prompt"], temperature=0, max_tokens=64,
                             stop=stop, extra_body={"include_stop_str_in_output": True})
    assert r.choices[0].text == full[:cut + len(stop)]
    parts = list(c.completions.create(model=NAME, prompt=g["prompt"], temperature=0,
                                      max_tokens=64, stop=[stop], stream=True))
    assert "".join(x.choices[0].text for x in parts if x.choices) == full[:cut]


def test_chat_logprobs_follow_the_greedy_choice(serve):
    r = serve.client().chat.completions.create(
        model=NAME, messages=[{"role": "user", "content": "Tell me a story"}], temperature=0,
        max_tokens=10, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == 10
    for item in content:
        assert len(item.top_logprobs) == 3
        best = max(item.top_logprobs, key=lambda t: t.logprob)
        assert abs(best.logprob - item.logprob) < 1e-5
        assert item.logprob <= 0


def test_errors_have_the_openai_shape(serve):
    c = serve.client()
    with pytest.raises(openai.NotFoundError) as e:
        c.completions.create(model="nope", prompt="x", max_tokens=2)
    assert NAME in str(e.value)
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model=NAME, prompt="x", max_tokens=100000)
    assert "maximum context length" in str(e.value)
    with pytest.raises(openai.BadRequestError):
        c.completions.create(model=NAME, prompt="x", temperature=-1)
    r = httpx.post(serve.base + "/v1/completions", content=b"{bad json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "BadRequestError"
    r = httpx.post(serve.base + "/v1/completions", content=b"{}",
                   headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = httpx.post(serve.base + "/v1/completions", content=b"x" * (5 << 20),
                   headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = httpx.get(serve.base + "/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == 404


def test_http2_prior_knowledge_gives_the_same_answer(serve):
    g = golden("golden_prompt_once_upon_a_time.json")
    body = {"model": NAME, "prompt": g["prompt"], "temperature": 0, "max_tokens": 64}
    with httpx.Client(http1=False, http2=True) as h2:
        r = h2.post(serve.base + "/v1/completions", json=body)
        assert r.http_version == "HTTP/2"
        assert r.json()["choices"][0]["text"] == g["generated_text"]
    out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", serve.base + "/v1/completions",
                          "-H", "content-type: application/json", "-d", json.dumps(body)],
                         capture_output=True, text=True, timeout=30).stdout
    assert json.loads(out)["choices"][0]["text"] == g["generated_text"]


def test_api_key_is_required_on_v1():
    s = Serve("--api-key", "sekret")
    try:
        with pytest.raises(openai.AuthenticationError):
            s.client(api_key="wrong").completions.create(model=NAME, prompt="x", max_tokens=2)
        r = s.client(api_key="sekret").completions.create(model=NAME, prompt="x", max_tokens=2)
        assert r.choices[0].text is not None
        assert httpx.get(s.base + "/health").status_code == 200
    finally:
        assert s.stop() == 0


def metrics(serve):
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    text = httpx.get(serve.base + "/metrics").text
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = s.name + json.dumps(dict(sorted(s.labels.items())))
            out[key] = s.value
    return out


def metric(m, name, **labels):
    return sum(v for k, v in m.items()
               if k.split("{", 1)[0] == name and all(('"%s": "%s"' % kv) in k
                                                       for kv in labels.items()))


def test_tokenize_and_detokenize_match_the_tokenizer(serve):
    from tokenizers import Tokenizer
    hf = Tokenizer.from_file(os.path.join(ec.STORIES, "tokenizer.json"))
    text = "Once upon a time, a cat"
    want = hf.encode(text, add_special_tokens=True).ids
    r = httpx.post(serve.base + "/tokenize", json={"prompt": text}).json()
    assert r["tokens"] == want and r["count"] == len(want) and r["max_model_len"] == 512
    r = httpx.post(serve.base + "/detokenize", json={"tokens": want}).json()
    assert r["prompt"] == hf.decode(want, skip_special_tokens=True)
    g = golden("golden_chat.json")
    r = httpx.post(serve.base + "/tokenize", json={"messages": g["messages"]}).json()
    assert r["tokens"] == g["prompt_ids"]


def test_metrics_count_requests_and_tokens(serve):
    before = metrics(serve)
    c = serve.client()
    for _ in range(3):
        c.completions.create(model=NAME, prompt="Once", max_tokens=5, temperature=0,
                             extra_body={"ignore_eos": True})
    after = metrics(serve)
    done = metric(after, "kiln:request_success_total") - metric(before, "kiln:request_success_total")
    assert done == 3
    gen = (metric(after, "kiln:generation_tokens_total") -
           metric(before, "kiln:generation_tokens_total"))
    assert gen == 15
    assert metric(after, "kiln:time_to_first_token_seconds_count") >= 3
    assert metric(after, "kiln:http_requests_total", handler="/v1/completions",
                  status="200") >= 3


def test_100_concurrent_streams_on_one_http2_connection(serve):
    import asyncio

    async def run():
        async with httpx.AsyncClient(http1=False, http2=True, timeout=60) as h2:
            async def one(i):
                body = {"model": NAME, "prompt": "Once upon a time", "max_tokens": 16,
                        "temperature": 0, "stream": True}
                text = ""
                async with h2.stream("POST", serve.base + "/v1/completions", json=body) as r:
                    assert r.http_version == "HTTP/2"
                    async for line in r.aiter_lines():
                        if line.startswith("data: {"):
                            ch = json.loads(line[6:])["choices"]
                            text += ch[0]["text"] if ch else ""
                return text
            return await asyncio.gather(*[one(i) for i in range(100)])
    texts = asyncio.run(run())
    assert len(texts) == 100 and len(set(texts)) == 1 and texts[0]


def test_clients_that_drop_mid_stream_free_everything(serve):
    socks = []
    import socket
    body = json.dumps({"model": NAME, "prompt": "Once upon a time", "max_tokens": 400,
                       "temperature": 0, "stream": True, "ignore_eos": True}).encode()
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", serve.port))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        socks.append(s)
    for s in socks:
        s.recv(4096)  # the stream has begun
    busy = metrics(serve)
    for s in socks:
        s.close()
    t0 = time.time()
    while time.time() - t0 < 5:
        m = metrics(serve)
        if metric(m, "kiln:num_requests_running") == 0 and metric(m, "kiln:kv_cache_usage_perc") == 0:
            break
        time.sleep(0.1)
    took = time.time() - t0
    assert took < 2.0, (took, busy)


def test_engine_crash_fails_streams_and_recovers():
    s = Serve()
    try:
        c = s.client()
        stream = c.completions.create(model=NAME, prompt="Once", max_tokens=500, temperature=0,
                                      stream=True, extra_body={"ignore_eos": True})
        next(iter(stream))
        engine = [int(p) for p in subprocess.run(["pgrep", "-P", str(s.proc.pid), "-f", "engine"],
                                                capture_output=True, text=True).stdout.split()]
        assert engine
        os.kill(engine[0], signal.SIGKILL)
        with pytest.raises(openai.APIError):
            for _ in stream:
                pass
        deadline = time.time() + 30
        while time.time() < deadline:
            if httpx.get(s.base + "/health").status_code == 200:
                break
            time.sleep(0.2)
        r = c.completions.create(model=NAME, prompt="Once", max_tokens=4, temperature=0)
        assert r.choices[0].text
        assert s.proc.poll() is None
    finally:
        assert s.stop() == 0


def test_completion_defaults_echo_and_prompt_lists(serve):
    c = serve.client()
    r = c.completions.create(model=NAME, prompt="Once upon a time", temperature=0,
                             extra_body={"ignore_eos": True})
    assert r.usage.completion_tokens == 16  # the completions default
    g = golden("golden_prompt_once_upon_a_time.json")
    r = c.completions.create(model=NAME, prompt=g["prompt"], temperature=0, max_tokens=8,
                             echo=True)
    assert r.choices[0].text.startswith(g["prompt"])
    assert r.choices[0].text[len(g["prompt"]):] == g["generated_text"][:len(
        r.choices[0].text) - len(g["prompt"])]
    prompts = ["Once upon a time", "Tom and Sue"]
    r = c.completions.create(model=NAME, prompt=prompts, n=2, temperature=0.8, seed=3,
                             max_tokens=6)
    assert sorted(ch.index for ch in r.choices) == [0, 1, 2, 3]
    alone = c.completions.create(model=NAME, prompt=prompts[1], n=2, temperature=0.8, seed=3,
                                 max_tokens=6)
    by_index = {ch.index: ch.text for ch in r.choices}
    assert [by_index[2], by_index[3]] == [ch.text for ch in sorted(alone.choices,
                                                                   key=lambda x: x.index)]


def test_completion_logprobs_and_continuous_usage(serve):
    c = serve.client()
    from tokenizers import Tokenizer
    hf = Tokenizer.from_file(os.path.join(ec.STORIES, "tokenizer.json"))
    r = c.completions.create(model=NAME, prompt="Once upon a time", temperature=0, max_tokens=6,
                             logprobs=2, extra_body={"return_token_ids": True})
    lp = r.choices[0].logprobs
    ids = r.choices[0].model_extra["token_ids"]
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(ids) == 6
    # vLLM's convention: each token is decode([id]) (a SentencePiece decoder strips its space)
    assert lp.tokens == [hf.decode([i], skip_special_tokens=False) for i in ids]
    assert hf.decode(ids) == r.choices[0].text.strip()
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
    for tok, l, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert len(top) <= 2 and abs(max(top.values()) - l) < 1e-5
    chunks = list(c.completions.create(model=NAME, prompt="Once", temperature=0, max_tokens=5,
                                       stream=True, stream_options={"include_usage": True,
                                                                    "continuous_usage_stats": True},
                                       extra_body={"ignore_eos": True}))
    with_choices = [ch for ch in chunks if ch.choices]
    assert all(ch.usage is not None for ch in with_choices)
    counts = [ch.usage.completion_tokens for ch in with_choices]
    assert counts == sorted(counts) and counts[-1] == 5


def test_more_error_rows(serve):
    c = serve.client()
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model=NAME, prompt="x", n=2, temperature=0)
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model=NAME, prompt="x", max_tokens="ten")
    assert e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi"}],
                                  tools=[{"type": "function", "function": {"name": "f"}}])
    assert "not supported yet" in str(e.value)
    with pytest.raises(openai.BadRequestError):
        c.completions.create(model=NAME, prompt=[1, 2, 100000], max_tokens=2)
    r = httpx.get(serve.base + "/v1/completions")
    assert r.status_code == 405 and r.json()["error"]["type"] == "MethodNotAllowed"


def test_request_id_and_cors():
    s = Serve("--allowed-origins", "https://app.example")
    try:
        r = httpx.post(s.base + "/v1/completions", json={"model": NAME, "prompt": "x",
                                                         "max_tokens": 2},
                       headers={"X-Request-Id": "abc-123", "Origin": "https://app.example"})
        assert r.status_code == 200
        assert r.headers["x-request-id"] == "abc-123"
        assert r.json()["id"].endswith("abc-123")
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = httpx.options(s.base + "/v1/completions", headers={"Origin": "https://app.example"})
        assert r.status_code == 204 and "POST" in r.headers["access-control-allow-methods"]
        r = httpx.get(s.base + "/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    finally:
        assert s.stop() == 0


def test_sigterm_drains_in_flight_streams():
    s = Serve()
    c = s.client()
    stream = c.completions.create(model=NAME, prompt="Once", max_tokens=300, temperature=0,
                                  stream=True, extra_body={"ignore_eos": True})
    first = next(iter(stream))
    assert httpx.get(s.base + "/health").status_code == 200
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    try:  # not ready any more: 503, or no new connection taken at all
        assert httpx.get(s.base + "/health").status_code == 503
    except httpx.TransportError:
        pass
    text = first.choices[0].text + "".join(ch.choices[0].text for ch in stream if ch.choices)
    assert text
    assert s.proc.wait(30) == 0


def test_prompt_logprobs_and_echo_logprobs_match_a_numpy_forward_pass(serve):
    import numpy as np
    import reference
    g = golden("golden_prompt_tom_and_sue.json")
    ids = g["prompt_ids"]
    logits = reference.forward(reference.load(ec.STORIES), ids)
    ref = logits - logits.max(axis=1, keepdims=True)
    ref -= np.log(np.exp(ref).sum(axis=1, keepdims=True))
    c = serve.client()
    r = c.completions.create(model=NAME, prompt=ids, max_tokens=2, temperature=0,
                             extra_body={"prompt_logprobs": 2})
    plp = r.choices[0].model_extra["prompt_logprobs"]
    assert len(plp) == len(ids) and plp[0] is None
    for p in range(1, len(ids)):
        entry = plp[p][str(ids[p])]
        assert abs(entry["logprob"] - ref[p - 1, ids[p]]) < 1e-3
        best = int(np.argmax(ref[p - 1]))
        assert abs(plp[p][str(best)]["logprob"] - ref[p - 1, best]) < 1e-3
        assert plp[p][str(best)]["rank"] == 1
    r = c.completions.create(model=NAME, prompt=ids, max_tokens=3, temperature=0, echo=True,
                             logprobs=1)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(ids) + 3
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    for p in range(1, len(ids)):
        assert abs(lp.token_logprobs[p] - ref[p - 1, ids[p]]) < 1e-3


def test_chat_echo_prepends_the_last_assistant_message(serve):
    c = serve.client()
    msgs = [{"role": "user", "content": "Tell me a story"},
            {"role": "assistant", "content": "Once upon a time"}]
    kw = dict(model=NAME, messages=msgs, max_tokens=8, temperature=0,
              extra_body={"continue_final_message": True, "add_generation_prompt": False})
    plain = c.chat.completions.create(**kw).choices[0].message.content
    kw["extra_body"]["echo"] = True
    echoed = c.chat.completions.create(**kw).choices[0].message.content
    assert echoed == "Once upon a time" + plain
    chunks = list(c.chat.completions.create(stream=True, **kw))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == echoed


def test_a_crashed_frontend_is_restarted_on_the_same_port():
    s = Serve()
    try:
        def frontends():
            out = subprocess.run(["pgrep", "-P", str(s.proc.pid), "-f", "kiln frontend"],
                                 capture_output=True, text=True).stdout.split()
            return [int(p) for p in out]
        old = frontends()
        assert len(old) == 1
        os.kill(old[0], signal.SIGKILL)
        deadline = time.time() + 30
        while time.time() < deadline:
            new = frontends()
            if new and new != old:
                try:
                    if httpx.get(s.base + "/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
            time.sleep(0.2)
        r = s.client().completions.create(model=NAME, prompt="Once", max_tokens=3, temperature=0)
        assert r.choices[0].text and frontends() != old
    finally:
        assert s.stop() == 0


def test_clients_closing_as_their_answers_complete_harm_nothing():
    """Regression: a client gone just as its answer was written made the frontend's request
    receive on_abort after it had freed it (a double free, seen under h2load)."""
    import random
    import socket
    s = Serve()
    try:
        def frontends():
            return subprocess.run(["pgrep", "-P", str(s.proc.pid), "-f", "kiln frontend"],
                                  capture_output=True, text=True).stdout.split()
        before = frontends()
        body = json.dumps({"model": NAME, "prompt": "Once", "max_tokens": 1}).encode()
        req = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body
        rnd = random.Random(7)

        def hammer(k):
            for _ in range(150):
                c = socket.create_connection(("127.0.0.1", s.port))
                c.sendall(req * rnd.randint(1, 3))
                time.sleep(rnd.random() * 0.003)
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                c.close()  # an RST, often while the answer is being written
        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with httpx.Client(http1=False, http2=True) as h2:  # and the same over HTTP/2
            for _ in range(100):
                try:
                    h2.post(s.base + "/v1/completions", content=body,
                            headers={"content-type": "application/json"}, timeout=0.002)
                except httpx.TransportError:
                    pass
        assert frontends() == before, "a frontend crashed and was restarted"
        assert httpx.get(s.base + "/health").status_code == 200
    finally:
        assert s.stop() == 0


def test_per_request_chat_template_needs_trust():
    g = golden("golden_chat.json")
    tpl = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(openai.BadRequestError):
        s0 = Serve()
        try:
            s0.client().chat.completions.create(model=NAME, messages=g["messages"], max_tokens=2,
                                                extra_body={"chat_template": tpl})
        finally:
            assert s0.stop() == 0
    s = Serve("--trust-request-chat-template")
    try:
        r = httpx.post(s.base + "/tokenize", json={"messages": g["messages"],
                                                   "chat_template": tpl}).json()
        from tokenizers import Tokenizer
        hf = Tokenizer.from_file(os.path.join(ec.STORIES, "tokenizer.json"))
        import jinja2
        want = jinja2.Template(tpl).render(messages=g["messages"])
        assert r["tokens"] == hf.encode(want, add_special_tokens=False).ids
        c = s.client().chat.completions.create(model=NAME, messages=g["messages"], max_tokens=4,
                                               temperature=0, extra_body={"chat_template": tpl})
        assert c.usage.prompt_tokens == len(r["tokens"])
    finally:
        assert s.stop() == 0


def test_tls_with_alpn(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    s = Serve("--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    try:
        assert s.base.startswith("https://")
        g = golden("golden_prompt_once_upon_a_time.json")
        c = s.client(http_client=httpx.Client(verify=ssl.create_default_context(cafile=str(cert))))
        r = c.completions.create(model=NAME, prompt=g["prompt"], temperature=0,
                                 max_tokens=g["max_new_tokens"])
        assert r.choices[0].text == g["generated_text"]
        with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=str(cert))) as h2:
            r = h2.post(s.base + "/v1/completions", json={"model": NAME, "prompt": g["prompt"],
                                                          "temperature": 0, "max_tokens": 64})
            assert r.http_version == "HTTP/2"  # negotiated by ALPN
            assert r.json()["choices"][0]["text"] == g["generated_text"]
        with pytest.raises(httpx.TransportError):
            httpx.get(s.base.replace("https", "http") + "/health")
    finally:
        assert s.stop() == 0


def test_admission_control_sheds_with_503_and_retry_after():
    s = Serve("--max-in-flight", "2")
    try:
        c = s.client()
        streams = [c.completions.create(model=NAME, prompt="Once", max_tokens=500, n=64,
                                        temperature=1.0, stream=True,
                                        extra_body={"ignore_eos": True}) for _ in range(2)]
        for st in streams:
            next(iter(st))
        r = httpx.post(s.base + "/v1/completions", json={"model": NAME, "prompt": "x",
                                                         "max_tokens": 2})
        assert r.status_code == 503 and r.json()["error"]["type"] == "ServiceUnavailableError"
        assert 1 <= int(r.headers["retry-after"]) <= 10
        for st in streams:
            st.close()
        deadline = time.time() + 10
        while time.time() < deadline:
            r = httpx.post(s.base + "/v1/completions", json={"model": NAME, "prompt": "x",
                                                             "max_tokens": 2})
            if r.status_code == 200:
                break
            time.sleep(0.1)
        assert r.status_code == 200
    finally:
        assert s.stop() == 0


def test_a_step_longer_than_the_dead_time_is_not_a_dead_engine():
    # TinyLlama-1.1B shapes (dummy weights) and one long prompt in one step: seconds of
    # compute on a CPU, longer than the frontend's 3 s dead-engine time; the engine beats
    # from inside the forward pass, so the request completes instead of failing with "engine
    # is dead". The prompt is sized from a short request so that the step takes ~10 s on this
    # build (an ASan build computes ~10x slower).
    shapes = os.path.join(ec.FIXTURES, "shapes", "tinyllama-1.1b-chat")
    s = Serve("--model", shapes, "--load-format", "dummy", "--threads", "2",
              "--max-num-batched-tokens", "2048", "--max-model-len", "2048")
    try:
        c = s.client(timeout=300)
        t0 = time.monotonic()
        c.completions.create(model=NAME, prompt="hi " * 199, max_tokens=1, temperature=0)
        per_token = (time.monotonic() - t0) / 200
        n = max(64, min(1900, int(10.0 / per_token)))
        t0 = time.monotonic()
        r = c.completions.create(model=NAME, prompt="hello " * n, max_tokens=1, temperature=0)
        took = time.monotonic() - t0
        assert r.usage.prompt_tokens > n and r.choices[0].finish_reason == "length"
        assert not any("is dead" in line for line in s.err), "".join(s.err)
        if took < 3.5:
            pytest.skip("a %d-token step took %.1f s here: too short for the dead time" %
                        (n, took))
    finally:
        assert s.stop() == 0
