"""`kiln bench serve` end to end against a real `kiln serve` (stories260K): the run, its
printed block and its JSON result, with the metrics recomputed here from the per-request
timings by vLLM's definitions using NumPy."""
import json
import os
import re
import signal
import subprocess
import threading

import numpy as np
import pytest

BUILD = os.environ.get("KILN_BUILD", "build")
KILN = os.path.join(BUILD, "kiln")
FIXTURES = os.environ.get("KILN_FIXTURES", os.path.join("..", "shared", "fixtures"))
STORIES = os.path.join(FIXTURES, "models", "stories260K")
NAME = "stories260K"


class Server:
    def __init__(self):
        cmd = [KILN, "serve", "--model", STORIES, "--served-model-name", NAME, "--port", "0",
               "--frontends", "1", "--threads", "1", "--log-level", "warn"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://[^:]+:(\d+)/v1", line)
        if not m:
            self.proc.kill()
            raise RuntimeError("kiln serve did not start: %r" % line)
        self.base = "http://127.0.0.1:%s" % m.group(1)
        self.err = []
        threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True).start()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert not any("Sanitizer" in line for line in self.err), "".join(self.err)


@pytest.fixture(scope="module")
def server():
    s = Server()
    yield s
    s.stop()


def bench(server, tmp_path, *flags, model=NAME, check=True):
    out = tmp_path / "result.json"
    cmd = [KILN, "bench", "serve", "--base-url", server.base, "--tokenizer", STORIES,
           "--result-file", str(out), "--temperature", "0"] + \
        (["--model", model] if model else []) + list(flags)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    result = json.loads(out.read_text()) if out.exists() else None
    return p, result


def vllm_metrics(r, percentiles=(90, 99)):
    """vLLM's calculate_metrics over the per-request data of a result file, with NumPy."""
    ok = [i for i, e in enumerate(r["errors"]) if not e]
    ttfts = [r["ttfts"][i] for i in ok]
    e2els = [r["latencies"][i] for i in ok]
    itls = [g for i in ok for g in r["itls"][i]]
    tpots = [(r["latencies"][i] - r["ttfts"][i]) / (r["output_lens"][i] - 1)
             for i in ok if r["output_lens"][i] > 1]
    out = {}
    for name, v in (("ttft", ttfts), ("tpot", tpots), ("itl", itls), ("e2el", e2els)):
        out["mean_%s_ms" % name] = np.mean(v or 0) * 1000
        out["median_%s_ms" % name] = np.median(v or 0) * 1000
        out["std_%s_ms" % name] = np.std(v or 0) * 1000
        for p in percentiles:
            out["p%d_%s_ms" % (p, name)] = np.percentile(v or 0, p) * 1000
    dur = r["duration"]
    out["completed"] = len(ok)
    out["request_throughput"] = len(ok) / dur
    out["output_throughput"] = sum(r["output_lens"]) / dur
    out["total_token_throughput"] = (sum(r["input_lens"][i] for i in ok)
                                     + sum(r["output_lens"])) / dur
    return out


def check_consistent(r, n, out_len=None, chat=False):
    assert r["completed"] == n and r["failed"] == 0
    assert len(r["ttfts"]) == len(r["itls"]) == len(r["latencies"]) == n
    for i in range(n):
        # TTFT + the gaps = the latency to the last event (one clock)
        assert r["ttfts"][i] + sum(r["itls"][i]) == pytest.approx(r["latencies"][i], abs=1e-9)
        assert 0 < r["ttfts"][i] <= r["latencies"][i]
        assert all(g >= 0 for g in r["itls"][i])
        if out_len is not None:
            assert r["output_lens"][i] == out_len
            # kiln streams one event per token with text (a token ending inside a UTF-8
            # character waits for the next): at most out_len - 1 gaps; chat's role chunk
            # comes with the first token and counts as the first event, as with vLLM
            gaps = out_len - (0 if chat else 1)
            assert gaps // 2 <= len(r["itls"][i]) <= gaps
    want = vllm_metrics(r)
    for k, v in want.items():
        assert r[k] == pytest.approx(v, rel=1e-9, abs=1e-9), k
    starts, ends = r["start_times"], [s + l for s, l in zip(r["start_times"], r["latencies"])]
    assert r["duration"] >= max(ends) - min(starts)


def test_random_dataset_completions(server, tmp_path):
    p, r = bench(server, tmp_path, "--dataset-name", "random", "--random-input-len", "32",
                 "--random-output-len", "16", "--num-prompts", "24", "--max-concurrency", "4",
                 "--ignore-eos", "--seed", "3", "--num-warmups", "2")
    check_consistent(r, 24, out_len=16)
    # the server's usage counts the prompt: 31 random tokens + BOS, more when the random
    # bytes of stories260K's byte-fallback vocabulary re-encode longer (as with vLLM)
    assert np.median(r["input_lens"]) == 32 and min(r["input_lens"]) >= 32
    assert r["total_output_tokens"] == 24 * 16
    # never more than --max-concurrency in flight
    assert 1 <= r["max_concurrent_requests"] <= 4
    assert r["max_concurrency"] == 4 and r["request_rate"] == "inf"
    text = p.stdout
    for line in ["============ Serving Benchmark Result ============",
                 "Successful requests:                     24        ",
                 "Failed requests:                         0         ",
                 "Maximum request concurrency:             4         ",
                 "Total generated tokens:                  384       ",
                 "---------------Time to First Token----------------",
                 "-----Time per Output Token (excl. 1st token)------",
                 "---------------Inter-token Latency----------------",
                 "----------------End-to-end Latency----------------"]:
        assert line in text.splitlines(), line
    assert "Warming up with 2 requests..." in text
    m = re.search(r"^Mean TTFT \(ms\):\s+(\S+)", text, re.M)
    assert float(m.group(1)) == pytest.approx(r["mean_ttft_ms"], abs=0.006)


def test_http2_and_chat_endpoint(server, tmp_path):
    _, r = bench(server, tmp_path, "--http2", "--endpoint", "/v1/chat/completions",
                 "--random-input-len", "24", "--random-output-len", "8", "--num-prompts", "16",
                 "--ignore-eos", "--max-concurrency", "8")
    check_consistent(r, 16, out_len=8, chat=True)
    assert r["backend"] == "openai-chat"
    assert all(n > 24 for n in r["input_lens"])  # the chat template adds tokens


def test_request_rate_spreads_arrivals(server, tmp_path):
    n, rate = 20, 40.0
    _, r = bench(server, tmp_path, "--random-input-len", "16", "--random-output-len", "4",
                 "--num-prompts", str(n), "--request-rate", str(rate), "--burstiness", "0.5",
                 "--ignore-eos", "--seed", "9")
    check_consistent(r, n, out_len=4)
    starts = sorted(r["start_times"])
    # the last arrival is rescaled to n / rate after the start; the first comes after one gap
    assert starts[-1] - starts[0] <= n / rate + 0.05
    assert starts[-1] - starts[0] >= 0.3 * n / rate
    assert r["request_rate"] == rate and r["burstiness"] == 0.5


def test_goodput(server, tmp_path):
    p, r = bench(server, tmp_path, "--random-input-len", "16", "--random-output-len", "32",
                 "--num-prompts", "12", "--ignore-eos", "--goodput", "ttft:100000",
                 "tpot:0.05")
    # vLLM's rule, recomputed: good when every SLO holds (value <= SLO), TPOT being 0 for
    # a one-token output
    good = 0
    for ttft, lat, n in zip(r["ttfts"], r["latencies"], r["output_lens"]):
        tpot = (lat - ttft) / (n - 1) if n > 1 else 0.0
        good += ttft <= 100.0 and tpot <= 0.00005
    assert r["request_goodput"] == pytest.approx(good / r["duration"])
    assert "Request goodput (req/s):" in p.stdout
    _, r = bench(server, tmp_path, "--random-input-len", "16", "--random-output-len", "6",
                 "--num-prompts", "12", "--ignore-eos", "--goodput", "ttft:100000")
    assert r["request_goodput"] == pytest.approx(12 / r["duration"])
    _, r = bench(server, tmp_path, "--random-input-len", "16", "--random-output-len", "6",
                 "--num-prompts", "12", "--ignore-eos", "--goodput", "e2el:0")
    assert r["request_goodput"] == 0  # no request ends in zero time


def test_sharegpt_and_jsonl(server, tmp_path):
    conv = [{"conversations": [{"from": "human", "value": "Once upon a time there was a"},
                               {"from": "gpt", "value": "little girl who liked to play"}]},
            {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "x"}]},
            {"conversations": [{"from": "human", "value": "The cat sat on the mat and"}]}]
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(conv))
    _, r = bench(server, tmp_path, "--dataset-name", "sharegpt", "--dataset-path", str(path),
                 "--num-prompts", "5", "--ignore-eos")
    # one valid pair, oversampled to five
    check_consistent(r, 5)
    assert len(set(r["input_lens"])) == 1
    lines = tmp_path / "prompts.jsonl"
    lines.write_text('{"prompt": "Lily and Tom went"}\n\n{"prompt": "The sun", "output_tokens": 3}\n')
    _, r = bench(server, tmp_path, "--dataset-name", "jsonl", "--dataset-path", str(lines),
                 "--num-prompts", "4", "--jsonl-output-len", "5", "--ignore-eos")
    check_consistent(r, 4, out_len=5)


def test_default_model_from_v1_models(server, tmp_path):
    _, r = bench(server, tmp_path, "--random-input-len", "8", "--random-output-len", "2",
                 "--num-prompts", "2", model=None)
    assert r["model_id"] == NAME and r["completed"] == 2


def test_failures_are_counted_and_reported(server, tmp_path):
    # 600 output tokens do not fit stories260K's 512 positions: every request is refused
    p, r = bench(server, tmp_path, "--random-input-len", "16", "--random-output-len", "600",
                 "--num-prompts", "3", "--ready-check-timeout-sec", "0")
    assert r["completed"] == 0 and r["failed"] == 3
    assert all(e.startswith("HTTP 400") for e in r["errors"])
    # with the initial test request, the run stops before it starts
    p, r = bench(server, tmp_path, "--random-input-len", "16", "--random-output-len", "600",
                 "--num-prompts", "3", check=False)
    assert p.returncode == 1 and "Initial test run failed" in p.stderr


def test_unreachable_server_fails_fast(tmp_path):
    class Nowhere:
        base = "http://127.0.0.1:9"
    p, _ = bench(Nowhere, tmp_path, "--num-prompts", "1", "--ready-check-timeout-sec", "1",
                 check=False)
    assert p.returncode == 1 and "Initial test run failed" in p.stderr


@pytest.mark.parametrize("flags", [["--request-rate", "0"], ["--request-rate", "abc"],
                                   ["--burstiness", "-1"], ["--metric-percentiles", "101"],
                                   ["--percentile-metrics", "ttft,nope"],
                                   ["--goodput", "latency:5"],
                                   ["--dataset-name", "sharegpt"],
                                   ["--endpoint", "/v1/models"]])
def test_bad_flags_are_usage_errors(tmp_path, flags):
    class Nowhere:
        base = "http://127.0.0.1:9"
    p, _ = bench(Nowhere, tmp_path, *flags, check=False)
    assert p.returncode in (1, 2) and p.stderr
