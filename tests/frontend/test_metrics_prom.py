"""frontend/metrics against the official prometheus_client.

Scripts of metric updates (hand-written and randomly drawn: requests, token gaps, HTTP
responses, engine load and cumulative totals with engine restarts) go through
$KILN_BUILD/tests/e2e/metrics_driver, which prints metrics_render's text at each `render`.
Every rendering must:

* parse with prometheus_client.parser.text_string_to_metric_families, with exactly the
  families, types, help texts, label sets and values a Python model of the same script
  computes (histogram buckets cumulative over vLLM's bounds, +Inf equal to _count, sums,
  counters that never decrease across an engine restart);
* equal byte for byte what prometheus_client's generate_latest writes for a registry holding
  the same values (created samples off), so the format details (counter "_total" names,
  sorted labels, "1.0" / "1e+06" numbers, escaping) are the official client's;
* carry the vllm: copies (and vLLM's unprefixed http_requests_total) only with --compat.
"""
import math
import os
import pathlib
import random
import subprocess

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = ROOT / os.environ.get("KILN_BUILD", "build")
DRIVER = BUILD / "tests" / "e2e" / "metrics_driver"
CASES = int(os.environ.get("KILN_METRICS_CASES", "40"))

ERR_INVAL, ERR_RANGE, ERR_STATE = -2, -8, -9
MAX_ENGINES = 16
DEFAULT_MAX_MODEL_LEN = 131072

# vLLM's bounds (vllm/v1/metrics/loggers.py).
TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
        10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]
ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
       20.0, 40.0, 80.0]
LATENCY = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
           120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]
ITERATION = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]


def buckets_125(max_value):
    out, e = [], 0
    while True:
        for m in (1, 2, 5):
            if m * 10 ** e > max_value:
                return out
            out.append(m * 10 ** e)
        e += 1


REASONS = ["stop", "length", "abort", "error"]
HANDLERS = ["/v1/chat/completions", "/v1/completions", "/v1/models", "/tokenize",
            "/detokenize", "/health", "/version", "/metrics", "other"]
METHODS = ["GET", "POST", "OPTIONS", "HEAD", "other"]
CODES = [200, 204, 400, 401, 404, 405, 409, 413, 415, 429, 431, 500, 501, 503]
STATUSES = [str(c) for c in CODES] + ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]
CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"]

# (name, help, type, what): rendering order; a counter's name without "_total".
FAMILIES = [
    ("num_requests_running", "Number of requests in model execution batches.", "gauge", "running"),
    ("num_requests_waiting", "Number of requests waiting to be processed.", "gauge", "waiting"),
    ("kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", "gauge", "kv"),
    ("prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
     "counter", 0),
    ("prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.", "counter", 1),
    ("num_preemptions", "Cumulative number of preemption from the engine.", "counter", 2),
    ("prompt_tokens", "Number of prefill tokens processed.", "counter", "prompt"),
    ("generation_tokens", "Number of generation tokens processed.", "counter", "gen"),
    ("request_success", "Count of successfully processed requests.", "counter", "success"),
    ("request_prompt_tokens", "Number of prefill tokens processed.", "histogram", "h_prompt"),
    ("request_generation_tokens", "Number of generation tokens processed.", "histogram",
     "h_gen"),
    ("iteration_tokens_total", "Histogram of number of tokens per engine_step.", "histogram",
     "h_iter"),
    ("time_to_first_token_seconds", "Histogram of time to first token in seconds.",
     "histogram", "h_ttft"),
    ("inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", "histogram",
     "h_itl"),
    ("e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.",
     "histogram", "h_e2e"),
    ("request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.",
     "histogram", "h_queue"),
    ("http_requests", "Total number of requests by method, status and handler.", "counter",
     "http"),
]


def status_index(code):
    if code in CODES:
        return CODES.index(code)
    if 100 <= code <= 599:
        return len(CODES) + code // 100 - 1
    return len(STATUSES) - 1


def status_class(idx):
    if idx < len(CODES):
        return f"{CODES[idx] // 100}xx"
    return STATUSES[idx] if STATUSES[idx] != "other" else "other"


class Model:
    """What the rendering must say after the script so far (API.md, metrics.h)."""

    def __init__(self, name, compat):
        self.name, self.compat = name, compat
        self.max_model_len = DEFAULT_MAX_MODEL_LEN
        self.obs = {k: [] for k in ("h_prompt", "h_gen", "h_iter", "h_ttft", "h_itl", "h_e2e",
                                    "h_queue")}
        self.prompt = self.gen = 0
        self.success = dict.fromkeys(REASONS, 0)
        self.banked = [0, 0, 0]
        self.engines = {}  # index -> {"load": (r, w, u, t) or None, "epoch", "last": [q, h, p]}
        self.http = {}  # (handler index, method index, status index) -> count

    def bounds(self, key):
        return {"h_prompt": buckets_125(self.max_model_len),
                "h_gen": buckets_125(self.max_model_len), "h_iter": ITERATION, "h_ttft": TTFT,
                "h_itl": ITL, "h_e2e": LATENCY, "h_queue": LATENCY}[key]

    def seconds(self, key, s):
        if math.isfinite(s):
            self.obs[key].append(max(0.0, s))

    def engine(self, i):
        return self.engines.setdefault(i, {"load": None, "epoch": None, "last": [0, 0, 0]})

    def apply(self, w):
        """Applies one command; returns the return code the driver must report."""
        c = w[0]
        if c == "iter":
            p, g = int(w[1]), int(w[2])
            self.prompt += p
            self.gen += g
            self.obs["h_iter"].append(float(p + g))
        elif c == "ttft":
            self.seconds("h_ttft", float(w[1]))
        elif c == "itl":
            self.seconds("h_itl", float(w[1]))
        elif c == "done":
            r = w[1] if w[1] in REASONS else "error"
            self.success[r] += 1
            self.obs["h_prompt"].append(float(int(w[2])))
            self.obs["h_gen"].append(float(int(w[3])))
            self.seconds("h_e2e", float(w[4]))
            self.seconds("h_queue", float(w[5]))
        elif c == "http":
            h = HANDLERS.index(w[1]) if w[1] in HANDLERS[:-1] else len(HANDLERS) - 1
            m = METHODS.index(w[2]) if w[2] in METHODS[:-1] else len(METHODS) - 1
            key = (h, m, status_index(int(w[3])))
            self.http[key] = self.http.get(key, 0) + 1
        elif c == "load":
            i, r, wt, u, t = map(int, w[1:])
            if i >= MAX_ENGINES:
                return ERR_RANGE
            if u > t:
                return ERR_INVAL
            self.engine(i)["load"] = (r, wt, u, t)
        elif c == "totals":
            i, epoch, *v = map(int, w[1:])
            if i >= MAX_ENGINES:
                return ERR_RANGE
            e = self.engine(i)
            restart = e["epoch"] is not None and e["epoch"] != epoch
            for k in range(3):
                if restart or v[k] < e["last"][k]:
                    self.banked[k] += e["last"][k]
                e["last"][k] = v[k]
            e["epoch"] = epoch
        elif c == "gone":
            i = int(w[1])
            if i >= MAX_ENGINES:
                return ERR_RANGE
            e = self.engines.pop(i, None)
            if e:
                for k in range(3):
                    self.banked[k] += e["last"][k]
        elif c == "maxlen":
            n = int(w[1])
            if n == 0:
                return ERR_RANGE
            observed = self.obs["h_prompt"] or self.obs["h_gen"]
            if observed and buckets_125(n) != buckets_125(self.max_model_len):
                return ERR_STATE
            self.max_model_len = n
        return 0

    def scalar(self, what):
        loads = [e["load"] for e in self.engines.values() if e["load"]]
        if what == "running":
            return sum(x[0] for x in loads)
        if what == "waiting":
            return sum(x[1] for x in loads)
        if what == "kv":
            used, total = sum(x[2] for x in loads), sum(x[3] for x in loads)
            return used / total if total else 0.0
        if what == "prompt":
            return self.prompt
        if what == "gen":
            return self.gen
        return self.banked[what] + sum(e["last"][what] for e in self.engines.values())

    def http_samples(self, grouped):
        """[(labels, value)] in the rendering order: handler, method, status (or class)."""
        out = []
        for h in range(len(HANDLERS)):
            for m in range(len(METHODS)):
                if not grouped:
                    for s in range(len(STATUSES)):
                        if self.http.get((h, m, s)):
                            out.append(((HANDLERS[h], METHODS[m], STATUSES[s]),
                                        self.http[(h, m, s)]))
                    continue
                for cls in CLASSES:
                    n = sum(v for (hh, mm, s), v in self.http.items()
                            if hh == h and mm == m and status_class(s) == cls)
                    if n:
                        out.append(((HANDLERS[h], METHODS[m], cls), n))
        return out

    def registry(self):
        """A prometheus_client registry with the same families and values."""
        reg = CollectorRegistry()
        for prefix in ["kiln:"] + (["vllm:"] if self.compat else []):
            for name, doc, typ, what in FAMILIES:
                self.register(reg, prefix, name, doc, typ, what)
        return reg

    def register(self, reg, prefix, name, doc, typ, what):
        mn = self.name
        if what == "http":
            grouped = prefix == "vllm:"
            full = "http_requests" if grouped else prefix + name
            c = Counter(full, doc, ["handler", "method", "model_name", "status"], registry=reg)
            for (h, m, s), v in self.http_samples(grouped):
                c.labels(h, m, mn, s).inc(v)
        elif what == "success":
            c = Counter(prefix + name, doc, ["finished_reason", "model_name"], registry=reg)
            for r in REASONS:
                c.labels(r, mn).inc(self.success[r])
        elif typ == "histogram":
            h = Histogram(prefix + name, doc, ["model_name"], buckets=self.bounds(what),
                          registry=reg).labels(mn)
            for v in self.obs[what]:
                h.observe(v)
        elif typ == "gauge":
            Gauge(prefix + name, doc, ["model_name"], registry=reg).labels(mn).set(
                self.scalar(what))
        else:
            Counter(prefix + name, doc, ["model_name"], registry=reg).labels(mn).inc(
                self.scalar(what))


def run_driver(name, compat, script):
    args = [str(DRIVER), name] + (["--compat"] if compat else [])
    p = subprocess.run(args, input="\n".join(script) + "\n", capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    renders, rcs, cur = [], {}, []
    for line in p.stdout.splitlines(keepends=True):
        if line == "=== end\n":
            renders.append("".join(cur))
            cur = []
        elif line.startswith("=== rc "):
            _, _, ln, code = line.split()
            rcs[int(ln)] = int(code)
        else:
            cur.append(line)
    assert not cur, "output after the last render"
    return renders, rcs


def reference_text(model):
    prometheus_client.disable_created_metrics()
    try:
        return prometheus_client.generate_latest(model.registry()).decode()
    finally:
        prometheus_client.enable_created_metrics()


def families_of(text):
    """{family name: (type, documentation, {(sample name, sorted labels): value})}."""
    out = {}
    for fam in text_string_to_metric_families(text):
        assert fam.name not in out, f"family {fam.name} twice"
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples}
        out[fam.name] = (fam.type, fam.documentation, samples)
    return out


def check_histograms(families, model):
    """Independent of prometheus_client: cumulative buckets over the right bounds."""
    for prefix in ["kiln:"] + (["vllm:"] if model.compat else []):
        for name, _, typ, what in FAMILIES:
            if typ != "histogram":
                continue
            _, _, samples = families[prefix + name]
            obs, bounds = model.obs[what], model.bounds(what)
            buckets = sorted(((float(dict(lab)["le"]), v) for (n, lab), v in samples.items()
                              if n.endswith("_bucket")))
            assert [b for b, _ in buckets] == [float(b) for b in bounds] + [math.inf]
            counts = [v for _, v in buckets]
            assert counts == sorted(counts), "buckets not cumulative"
            for le, v in buckets:
                assert v == sum(1 for x in obs if x <= le)
            lab = (("model_name", model.name),)
            assert samples[(prefix + name + "_count", lab)] == len(obs) == counts[-1]
            assert samples[(prefix + name + "_sum", lab)] == pytest.approx(math.fsum(obs),
                                                                           rel=1e-9, abs=1e-12)


def check_render(text, model, previous):
    ref = reference_text(model)
    got = families_of(text)
    assert got == families_of(ref)
    assert text == ref
    check_histograms(got, model)
    # Counters (and histogram counts) never decrease between renderings.
    for fname, (typ, _, samples) in got.items():
        if typ not in ("counter", "histogram") or fname not in previous:
            continue
        for key, v in previous[fname][2].items():
            if key[0].endswith("_sum"):
                continue
            assert samples.get(key, 0) >= v, f"{key} went down: {v} -> {samples.get(key)}"
    return got


def run_and_check(name, compat, script):
    renders, rcs = run_driver(name, compat, script)
    model, previous, k, want_rcs = Model(name, compat), {}, 0, {}
    for ln, line in enumerate(script, 1):
        w = line.split()
        if w[0] == "render":
            previous = check_render(renders[k], model, previous)
            k += 1
            continue
        rc = model.apply(w)
        if rc:
            want_rcs[ln] = rc
    assert k == len(renders)
    assert rcs == want_rcs
    return renders


def rand_seconds(rng, bounds):
    r = rng.random()
    if r < 0.03:
        return rng.choice(["nan", "inf", "-inf", "-0.5"])
    if r < 0.2:
        return repr(rng.choice(bounds))  # exactly on a bound: goes into that bucket
    return repr(rng.uniform(0, bounds[-1] * 1.2) * rng.choice([1e-3, 1e-2, 0.1, 1]))


class Engines:
    """Engines whose cumulative counters grow, restart (new epoch) and die."""

    def __init__(self, rng):
        self.rng, self.state = rng, {}

    def step(self):
        rng = self.rng
        i = rng.choice([0, 0, 1, 2, 3, MAX_ENGINES, 20] if rng.random() < 0.1 else [0, 1, 2, 3])
        st = self.state.setdefault(i, {"epoch": rng.randrange(1 << 40), "v": [0, 0, 0]})
        r = rng.random()
        if r < 0.05:
            self.state.pop(i, None)
            return f"gone {i}"
        if r < 0.12:  # restart: a new epoch, small totals again
            st["epoch"] += 1
            st["v"] = [rng.randrange(50) for _ in range(3)]
        elif r < 0.15:  # the same epoch going down: only that counter is rebased
            k = rng.randrange(3)
            st["v"][k] = rng.randrange(max(1, st["v"][k] + 1))
        elif r < 0.55:
            q = rng.randrange(5000)
            st["v"] = [st["v"][0] + q, st["v"][1] + rng.randrange(q + 1),
                       st["v"][2] + (rng.random() < 0.2)]
        else:
            total = rng.choice([0, 1000, 4096, 12345])
            used = rng.randrange(total + 1) if total else 0
            if rng.random() < 0.03:
                used = total + 1  # refused with ERR_INVAL
            return f"load {i} {rng.randrange(300)} {rng.randrange(100)} {used} {total}"
        return f"totals {i} {st['epoch']} {' '.join(map(str, st['v']))}"


def rand_script(rng, n):
    eng, out = Engines(rng), []
    if rng.random() < 0.5:
        out.append(f"maxlen {rng.choice([1, 7, 100, 2048, 4096, 32768, 1000000, 4000000000])}")
    for _ in range(n):
        r = rng.random()
        if r < 0.2:
            out.append(f"iter {rng.randrange(3000)} {rng.randrange(300)}")
        elif r < 0.3:
            out.append(f"ttft {rand_seconds(rng, TTFT)}")
        elif r < 0.45:
            out.append(f"itl {rand_seconds(rng, ITL)}")
        elif r < 0.55:
            reason = rng.choice(REASONS + ["7"])
            out.append(f"done {reason} {rng.randrange(200000)} {rng.randrange(5000)} "
                       f"{rand_seconds(rng, LATENCY)} {rand_seconds(rng, LATENCY)}")
        elif r < 0.7:
            path = rng.choice(HANDLERS[:-1] + ["/", "/v1/embeddings", "-", "/metrics/x"])
            method = rng.choice(METHODS[:-1] + ["DELETE", "get", "-"])
            status = rng.choice(CODES + [201, 302, 422, 504, 99, 600, 0])
            out.append(f"http {path} {method} {status}")
        elif r < 0.93:
            out.append(eng.step())
        elif r < 0.95:
            out.append(f"maxlen {rng.choice([0, 2048, 131072])}")
        else:
            out.append("render")
    out.append("render")
    return out


@pytest.fixture(scope="module", autouse=True)
def driver_built():
    if not DRIVER.exists():
        pytest.fail(f"{DRIVER} is missing: run make")


@pytest.mark.parametrize("compat", [False, True])
def test_empty(compat):
    (text,), _ = run_driver("m", compat, ["render"])
    run_and_check("m", compat, ["render"])
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "kiln:prompt_tokens" in names and "kiln:http_requests" in names
    assert any(n.startswith("vllm:") for n in names) == compat
    assert ("http_requests" in names) == compat


def test_engine_restart_keeps_counters():
    script = [
        "totals 0 7 100 40 2", "totals 1 9 10 5 0", "load 0 3 1 50 100", "load 1 2 0 0 300",
        "render",
        "totals 0 7 150 60 3",   # grows: 160 queries in all
        "totals 0 8 20 10 0",    # restarted: 150 kept, 20 on top
        "render",
        "totals 0 8 5 10 0",     # same epoch, queries went down: rebased
        "gone 1",                # engine 1's 10 queries kept, its load gone
        "render",
        "totals 1 1 1 1 1", "load 1 0 0 0 0", "render",
    ]
    renders = run_and_check("llama", True, script)
    want = [(110, 45, 2, 5, 0.125), (180, 75, 3, 5, 0.125), (185, 75, 3, 3, 0.5),
            (186, 76, 4, 3, 0.5)]
    for text, (q, h, p, run, kv) in zip(renders, want):
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        for prefix in ("kiln:", "vllm:"):
            val = {n: fams[prefix + n].samples[0].value for n in
                   ("prefix_cache_queries", "prefix_cache_hits", "num_preemptions",
                    "num_requests_running", "kv_cache_usage_perc")}
            assert val == {"prefix_cache_queries": q, "prefix_cache_hits": h,
                           "num_preemptions": p, "num_requests_running": run,
                           "kv_cache_usage_perc": kv}


def test_request_histograms_and_names():
    script = ["maxlen 1000", "iter 12 0", "ttft 0.25", "itl 0.01", "itl 0.0125", "iter 0 2",
              "done stop 12 3 1.5 0.001", "done length 5000 1000 7680.5 0.3", "done 9 1 1 -2 0",
              "maxlen 2000", "http /v1/completions POST 200", "http /v1/completions POST 200",
              "http /nope GET 404", "http /v1/models PUT 302", "http - - 0", "render"]
    (text,) = run_and_check("org/model \"q\" \\ x\ny", True, script)
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    succ = {s.labels["finished_reason"]: s.value for s in fams["kiln:request_success"].samples}
    assert succ == {"stop": 1, "length": 1, "abort": 0, "error": 1}
    assert {s.labels["model_name"] for s in fams["kiln:prompt_tokens"].samples} == {
        "org/model \"q\" \\ x\ny"}
    les = [s.labels["le"] for s in fams["vllm:request_prompt_tokens"].samples
           if s.name.endswith("_bucket")]
    assert les == ["1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "100.0", "200.0", "500.0",
                   "1000.0", "+Inf"]
    http = {(s.labels["handler"], s.labels["method"], s.labels["status"]): s.value
            for s in fams["kiln:http_requests"].samples}
    assert http == {("/v1/completions", "POST", "200"): 2, ("other", "GET", "404"): 1,
                    ("/v1/models", "other", "3xx"): 1, ("other", "other", "other"): 1}
    grouped = {(s.labels["handler"], s.labels["method"], s.labels["status"]): s.value
               for s in fams["http_requests"].samples}
    assert grouped == {("/v1/completions", "POST", "2xx"): 2, ("other", "GET", "4xx"): 1,
                       ("/v1/models", "other", "3xx"): 1, ("other", "other", "other"): 1}
    assert "kiln:prompt_tokens_total{model_name=" in text
    assert "# TYPE vllm:generation_tokens_total counter" in text


def test_http_label_set_is_bounded():
    rng = random.Random(5)
    script = [f"http /p{rng.randrange(10 ** 6)} M{rng.randrange(99)} {rng.randrange(1000)}"
              for _ in range(3000)] + ["render"]
    (text,) = run_and_check("m", False, script)
    fam = next(f for f in text_string_to_metric_families(text)
               if f.name == "kiln:http_requests")
    assert 0 < len(fam.samples) <= len(STATUSES)
    assert sum(s.value for s in fam.samples) == 3000


def test_bad_model_names():
    for name in ["x" * 257, "\udcff"]:
        p = subprocess.run([str(DRIVER), name], input="render\n", capture_output=True,
                           text=True, errors="surrogateescape")
        assert p.returncode == 0 and p.stdout.startswith("=== rc 0 ")
    (text,) = run_and_check("x" * 256, False, ["render"])
    assert "x" * 256 in text


@pytest.mark.parametrize("seed", range(CASES))
def test_random_scripts(seed):
    rng = random.Random(seed)
    run_and_check(rng.choice(["m", "meta-llama/Llama-3.1-8B-Instruct", "a\"b\\c", "é日本"]),
                  seed % 2 == 1, rand_script(rng, rng.randrange(20, 400)))
