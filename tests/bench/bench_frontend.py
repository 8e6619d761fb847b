"""Helpers of bench_frontend.sh (the HTTP frontend under load, and the time it adds per request).

  bench_frontend.py h2load LABEL H2LOAD_OUTPUT LOG_FILE RESULTS_FILE KEY
      One line for an h2load run: requests/s (from its "finished in" line), latency mean, p50,
      p90, p99 and max from its --log-file (one "start_us <TAB> status <TAB> elapsed_us" line per
      request), and the failures: requests h2load counts failed, errored or timed out, and
      logged requests whose status is not 200. Appends KEY_rps and KEY_p99 to RESULTS_FILE. Exits 1
      on any failure or an empty log.

  bench_frontend.py model SRC_MODEL_DIR DST_DIR MAX_POSITIONS
      A model directory for --load-format dummy: SRC's tokenizer.json, tokenizer_config.json and
      generation_config.json, and its config.json with max_position_embeddings MAX_POSITIONS.

  bench_frontend.py ttft KILN MODEL_DIR URL ENGINE_ADDR MODEL_NAME RESULTS_FILE [N] [PROMPT_LEN]
      Time added by the frontend per request. The same request, a PROMPT_LEN-token prompt (1000)
      with max_tokens 1 and temperature 0, goes N times (50, after 5 not counted) over HTTP/1.1
      to URL (a kept-alive connection; streaming: time to the first data event with choices;
      and non-streaming: time to the whole body) and straight to the engine the frontend uses
      (a ZeroMQ DEALER at ENGINE_ADDR speaking the wire protocol of tests/e2e/wire_py.py: time
      to the first TOKENS entry of the request), in turn. Two prompts: token ids (the frontend
      only parses them) and text whose tokenization (by `KILN tokenize MODEL_DIR`) is about
      PROMPT_LEN tokens (the frontend tokenizes it; the engine gets those ids). Every request
      repeats one prompt, so after the first the engine serves it from its prefix cache and its
      time is short and steady; the frontend's work does not depend on that. Prints median and
      p90 of each and "added" = HTTP minus engine-direct; appends "added" to RESULTS_FILE.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

N_WARMUP = 5
STORY = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the "
         "sunshine. One day, she saw a big red ball in the park. She ran to the ball and kicked "
         "it very high. The ball flew over the tree and landed next to a small dog. The dog was "
         "happy and wagged his tail. Lily and the dog played together all day long. ")


def pct(values, p):
    """The p-th percentile, nearest rank, of values."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, -(-len(v) * p // 100) - 1))
    return v[int(k)]


def append_results(path, **kv):
    with open(path, "a") as f:
        for k, v in kv.items():
            f.write("%s=%s\n" % (k, v))


# ---- h2load ----

def h2load_report(label, out_path, log_path, results, key):
    out = open(out_path).read()
    rps, failed = None, 0
    for line in out.splitlines():
        if line.startswith("finished in"):
            rps = float(line.split(",")[1].split()[0])
        elif line.startswith("requests:"):
            # requests: T total, S started, D done, OK succeeded, F failed, E errored, TO timeout
            words = line.replace(",", "").split()
            count = {words[i + 1]: int(words[i]) for i in range(1, len(words) - 1, 2)}
            failed = count["failed"] + count["errored"] + count["timeout"]
    lat, bad = [], 0
    with open(log_path) as f:
        for line in f:
            _, status, elapsed_us = line.split("\t")
            lat.append(int(elapsed_us) / 1e3)
            bad += status != "200"
    if rps is None or not lat:
        print("  %-28s h2load printed no result or logged no request:\n%s" % (label, out))
        return 1
    print("  %-28s %8.0f req/s  latency ms: mean %6.2f p50 %6.2f p90 %6.2f p99 %6.2f max %7.2f"
          "  (%d requests)" % (label, rps, statistics.fmean(lat), pct(lat, 50), pct(lat, 90),
                               pct(lat, 99), max(lat), len(lat)))
    append_results(results, **{key + "_rps": "%.0f" % rps, key + "_p99": "%.2f" % pct(lat, 99)})
    if failed or bad:
        print("  FAILED: %d requests failed, errored or timed out, %d logged with a status other "
              "than 200" % (failed, bad))
        return 1
    return 0


# ---- the model directory ----

def make_model(src, dst, max_positions):
    os.makedirs(dst, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(os.path.join(src, name), os.path.join(dst, name))
    with open(os.path.join(src, "config.json")) as f:
        cfg = json.load(f)
    cfg["max_position_embeddings"] = int(max_positions)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return 0


# ---- clients ----

class Http:
    """One kept-alive HTTP/1.1 connection."""

    def __init__(self, url):
        hostport = url.split("//", 1)[1].split("/", 1)[0]
        host, port = hostport.rsplit(":", 1)
        self.host = hostport
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def request(self, path, body):
        return (b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (path.encode(), self.host.encode(), len(body))
                + body)

    def _more(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        self.buf += chunk

    def _head(self):
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
        return status, fields

    def _check(self, status, body):
        if status != 200:
            raise RuntimeError("HTTP %d: %s" % (status, body[:300]))

    def whole(self, req):
        """Sends req; the seconds to the whole body of a Content-Length response."""
        t0 = time.perf_counter()
        self.sock.sendall(req)
        status, fields = self._head()
        n = int(fields["content-length"])
        while len(self.buf) < n:
            self._more()
        t = time.perf_counter() - t0
        body, self.buf = self.buf[:n], self.buf[n:]
        self._check(status, body)
        return t

    def stream(self, req):
        """Sends a streaming req; the seconds to the first SSE data event with choices. Reads
        the rest of the (chunked) stream before it returns."""
        t0 = time.perf_counter()
        self.sock.sendall(req)
        status, fields = self._head()
        if fields.get("transfer-encoding") != "chunked":
            raise RuntimeError("HTTP %d, not a chunked stream: %s" % (status, fields))
        t_first = None
        while t_first is None:
            if b"data: {" in self.buf and b'"choices"' in self.buf:
                t_first = time.perf_counter() - t0
                break
            if b"\r\n0\r\n\r\n" in self.buf or self.buf.startswith(b"0\r\n\r\n"):
                break
            self._more()
        while not (self.buf.endswith(b"\r\n0\r\n\r\n") or self.buf == b"0\r\n\r\n"):
            self._more()
        body, self.buf = self.buf, b""
        self._check(status, body)
        if t_first is None or b"data: [DONE]" not in body:
            raise RuntimeError("a stream without a choices event or [DONE]: %r" % body[:300])
        return t_first


class Direct:
    """A frontend of our own on the engine: a DEALER speaking the wire protocol."""

    def __init__(self, addr):
        import zmq
        import wire_py as w
        self.w, self.zmq = w, zmq
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(addr)
        self.next_id = 1 << 40  # far from anything else; ids are per frontend anyway
        self.last_beat = 0.0
        self.beat()
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.sock.poll(100) and any(n == "hello" for n, _ in w.decode_all(self.sock.recv())):
                return
        raise RuntimeError("no HELLO from the engine at %s" % addr)

    def beat(self):
        self.sock.send(self.w.heartbeat())
        self.last_beat = time.time()

    def ttft(self, prompt):
        """The seconds from sending an ADD of prompt to the first TOKENS entry for it; waits
        for it to finish."""
        w = self.w
        if time.time() - self.last_beat > 1:
            self.beat()
        rid, self.next_id = self.next_id, self.next_id + 1
        msg = w.add(rid, prompt, w.sampling(temperature=0.0, max_tokens=1),
                    arrival_us=int(time.time() * 1e6))
        t0 = time.perf_counter()
        self.sock.send(msg)
        t_first = None
        deadline = time.time() + 30
        while time.time() < deadline:
            if not self.sock.poll(1000):
                continue
            t = time.perf_counter()
            for name, m in w.decode_all(self.sock.recv()):
                for s in m["seqs"] if name == "tokens" else ():
                    if s["request_id"] != rid:
                        continue
                    if s["finish"] == "error":
                        raise RuntimeError("the engine refused the request (%d)"
                                           % s["stop_reason"])
                    if t_first is None:
                        t_first = t - t0
                    if s["finish"] is not None:
                        return t_first
        raise RuntimeError("request %d did not finish within 30 s" % rid)


# ---- the added time ----

def text_of_tokens(kiln, model_dir, want):
    """Text of whole STORY sentences and words whose tokenization is want tokens or a few
    under, and its ids."""
    words = (STORY * (want // 40 + 2)).split(" ")

    def ids(n):
        text = " ".join(words[:n])
        out = subprocess.run([kiln, "tokenize", model_dir], input=json.dumps([text]),
                             capture_output=True, text=True, check=True).stdout
        return text, json.loads(out)[0]

    lo, hi = 1, len(words)  # the most words that stay within want tokens
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(ids(mid)[1]) <= want:
            lo = mid
        else:
            hi = mid - 1
    return ids(lo)


def ms(v):
    return "%.3f" % (v * 1e3)


def measure(http, direct, model, prompt, prompt_ids, n):
    """n rounds (after N_WARMUP) of: HTTP streaming, HTTP whole, engine direct."""
    stream = json.dumps({"model": model, "prompt": prompt, "max_tokens": 1, "temperature": 0,
                         "stream": True}).encode()
    whole = json.dumps({"model": model, "prompt": prompt, "max_tokens": 1,
                        "temperature": 0}).encode()
    req_stream = http.request("/v1/completions", stream)
    req_whole = http.request("/v1/completions", whole)
    t = {"stream": [], "whole": [], "direct": []}
    for i in range(N_WARMUP + n):
        row = (http.stream(req_stream), http.whole(req_whole), direct.ttft(prompt_ids))
        if i >= N_WARMUP:
            for k, v in zip(("stream", "whole", "direct"), row):
                t[k].append(v)
    return t


def ttft(kiln, model_dir, url, engine_addr, model, results, n=50, prompt_len=1000):
    n, prompt_len = int(n), int(prompt_len)
    http, direct = Http(url), Direct(engine_addr)
    ids = [1] + [3 + (i * 7919) % 509 for i in range(prompt_len - 1)]
    text, text_ids = text_of_tokens(kiln, model_dir, prompt_len)
    print("  (%d rounds after %d, each: HTTP/1.1 streaming, HTTP/1.1 whole, engine direct over "
          "ZeroMQ; times in ms;\n   added = HTTP streaming TTFT - engine-direct TTFT, at p50 and "
          "p90; one kept-alive connection)" % (n, N_WARMUP))
    print("  %-22s %9s %9s %9s %9s %9s %9s %9s %9s" % (
        "prompt", "http_p50", "http_p90", "whole_p50", "whole_p90", "eng_p50", "eng_p90",
        "added_p50", "added_p90"))
    for key, label, prompt, prompt_ids in (
            ("ids", "%d token ids" % len(ids), ids, ids),
            ("text", "text, %d tokens" % len(text_ids), text, text_ids)):
        t = measure(http, direct, model, prompt, prompt_ids, n)
        s, w, d = t["stream"], t["whole"], t["direct"]
        added50 = pct(s, 50) - pct(d, 50)
        added90 = pct(s, 90) - pct(d, 90)
        print("  %-22s %9s %9s %9s %9s %9s %9s %9s %9s" % (
            label, ms(pct(s, 50)), ms(pct(s, 90)), ms(pct(w, 50)), ms(pct(w, 90)),
            ms(pct(d, 50)), ms(pct(d, 90)), ms(added50), ms(added90)))
        print("  %-22s max: HTTP streaming %s, whole %s, engine direct %s" % (
            "", ms(max(s)), ms(max(w)), ms(max(d))))
        append_results(results, **{"added_%s_p50" % key: ms(added50),
                                   "added_%s_p90" % key: ms(added90),
                                   "added_%s_tokens" % key: len(prompt_ids)})
    return 0


def main(argv):
    cmds = {"h2load": (h2load_report, 5, 5), "model": (make_model, 3, 3), "ttft": (ttft, 6, 8)}
    if len(argv) < 2 or argv[1] not in cmds or not (
            cmds[argv[1]][1] <= len(argv) - 2 <= cmds[argv[1]][2]):
        print(__doc__, file=sys.stderr)
        return 2
    return cmds[argv[1]][0](*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
