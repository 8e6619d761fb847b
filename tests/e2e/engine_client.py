"""A test client of `kiln engine`: starts the real engine process (build/kiln engine) and talks
to it over real ZeroMQ (a pyzmq DEALER) in the wire protocol, encoded and decoded by
wire_py.py, which was written from wire.h independently of the C codec."""
import os
import shutil
import signal
import subprocess
import tempfile
import time

import zmq

import wire_py as w

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("KILN_BUILD", "build")
KILN = os.path.join(ROOT, BUILD, "kiln")
FIXTURES = os.environ.get("KILN_FIXTURES", os.path.join(ROOT, "..", "shared", "fixtures"))
STORIES = os.path.join(FIXTURES, "models", "stories260K")

ERRORS = {0: "internal", 1: "overloaded", 2: "invalid", 3: "draining"}


class Engine:
    """A `kiln engine` process bound to addr, or to a fresh ipc:// socket in a temporary
    directory."""

    def __init__(self, *flags, model=STORIES, addr=None, ready_timeout=60):
        self.dir = tempfile.mkdtemp(prefix="kiln-e2e-")
        self.addr = addr or "ipc://%s/engine.sock" % self.dir
        self.log = open(os.path.join(self.dir, "engine.log"), "w+")
        cmd = [KILN, "engine", "--model", model, "--addr", self.addr, "--threads", "1"]
        self.proc = subprocess.Popen(cmd + list(flags), stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        deadline = time.time() + ready_timeout
        line = self.proc.stdout.readline()
        if "ready on" not in line or time.time() > deadline:
            log = self.stderr()
            self.stop(kill=True)
            raise RuntimeError("engine did not start: %r\n%s" % (line, log))

    def stderr(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def pids(self):
        """The engine and its rank processes (children)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True).stdout.split()
        return [self.proc.pid] + [int(p) for p in out]

    def stop(self, kill=False, timeout=20):
        """Ends the engine (SIGTERM: drain; kill: SIGKILL); its log stays in final_log."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:
            self.final_log = self.stderr()
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        # under ASan (make SAN=address test) a memory error or leak in the engine fails the test
        assert "Sanitizer" not in self.final_log, self.final_log
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Client:
    """One frontend: a DEALER connected to an engine. Requests are tracked by id; tokens()
    collects TOKENS entries until the asked requests finish."""

    def __init__(self, addr, ctx=None):
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(addr)
        self.hellos, self.beats, self.stats = [], [], []
        self.seqs = {}      # (request id, choice) -> dict(ids, logprobs, finish, ...)
        self.n = {}         # request id -> choices
        self.refused = {}   # request id -> error name
        self.next_id = 1

    def close(self):
        self.sock.close(0)

    def send(self, *msgs):
        self.sock.send(b"".join(msgs))

    def hello(self, timeout=10):
        """Sends a heartbeat and waits for the engine's HELLO."""
        self.send(w.heartbeat())
        deadline = time.time() + timeout
        while not self.hellos and time.time() < deadline:
            self.poll(100)
        assert self.hellos, "no HELLO from the engine"
        return self.hellos[-1]

    def add(self, prompt, n=1, priority=0, **sp):
        rid = self.next_id
        self.next_id += 1
        self.n[rid] = n
        for c in range(n):
            self.seqs[(rid, c)] = dict(ids=[], logprobs=[], finish=None, stop_reason=-1)
        self.send(w.add(rid, prompt, w.sampling(**sp), n=n, priority=priority))
        return rid

    def abort(self, *rids):
        self.send(w.abort(list(rids)))

    def poll(self, timeout_ms):
        """Receives and files whatever arrives within timeout_ms. Returns messages seen."""
        seen = 0
        if not self.sock.poll(timeout_ms):
            return 0
        while self.sock.poll(0):
            for name, m in w.decode_all(self.sock.recv()):
                seen += 1
                if name == "hello":
                    self.hellos.append(m)
                elif name == "heartbeat":
                    self.beats.append(m)
                elif name == "stats":
                    self.stats.append(m)
                elif name == "tokens":
                    self._file(m["seqs"])
        return seen

    def _file(self, seqs):
        for s in seqs:
            rid = s["request_id"]
            if s["finish"] == "error":
                self.refused[rid] = ERRORS[s["stop_reason"]]
                for c in range(self.n.get(rid, 1)):
                    self.seqs.setdefault((rid, c), dict(ids=[], logprobs=[]))["finish"] = "error"
                continue
            q = self.seqs.setdefault((rid, s["choice"]), dict(ids=[], logprobs=[], finish=None))
            assert q["finish"] is None, "tokens after a finish"
            q["ids"] += s["ids"]
            if s["logprobs"] is not None:
                lps, tops = s["logprobs"]
                q["logprobs"] += list(zip(lps, tops))
            if s["prompt_logprobs"] is not None:
                lps, tops = s["prompt_logprobs"]
                q.setdefault("prompt_logprobs", []).extend(zip(lps, tops))
            q["finish"] = s["finish"]
            q["stop_reason"] = s["stop_reason"]
            q["prompt_tokens"] = s["prompt_tokens"]
            q["cached_tokens"] = s["cached_tokens"]
            q["generated_tokens"] = s["generated_tokens"]

    def done(self, rid):
        return all(self.seqs[(rid, c)]["finish"] is not None for c in range(self.n[rid]))

    def wait(self, rids, timeout=60):
        """Polls (sending heartbeats) until every request in rids finished."""
        deadline = time.time() + timeout
        last_beat = 0
        while not all(self.done(r) for r in rids):
            if time.time() > deadline:
                raise TimeoutError("requests %s did not finish" %
                                   [r for r in rids if not self.done(r)])
            if time.time() - last_beat > 1:
                self.send(w.heartbeat())
                last_beat = time.time()
            self.poll(50)

    def result(self, rid, choice=0):
        return self.seqs[(rid, choice)]
