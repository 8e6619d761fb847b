"""The benchmark's HTTP client (bench/http_client.c) through tests/benchserve/tool_http_get,
against servers nobody here wrote the protocol of: the `h2` package on asyncio for HTTP/2
(h2c with prior knowledge, and h2 over TLS with ALPN) and Python's http.server for HTTP/1.1
(cleartext and TLS). The servers stream Server-Sent Events with pauses and note when they
sent each one on CLOCK_MONOTONIC (time.monotonic), the clock the client stamps its reads
with, so the client's per-read times are checked against the moments the bytes left.
Binaries come from $KILN_BUILD (default "build") under the repository root."""
import asyncio
import hashlib
import http.server
import os
import pathlib
import re
import ssl
import subprocess
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = ROOT / os.environ.get("KILN_BUILD", "build") / "tests" / "benchserve" / "tool_http_get"

pytestmark = pytest.mark.skipif(not TOOL.exists(), reason="tool_http_get not built")

SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|runtime error:|UndefinedBehavior")
N_EVENTS = 5
DELAY = 0.03


def sse_events(body):
    """The data of each event of an SSE body (LF line ends, one data line per event)."""
    return [chunk[len(b"data: "):] for chunk in body.split(b"\n\n") if chunk]


def run_tool(*args, timeout=10):
    p = subprocess.run([str(TOOL), *map(str, args)], capture_output=True, timeout=timeout)
    err = p.stderr.decode(errors="replace")
    assert not SANITIZER.search(err), err
    return p.returncode, p.stdout, err


def read_times(path):
    """{request index: [(t, n), ...]} from tool_http_get --times."""
    out = {}
    for line in pathlib.Path(path).read_text().splitlines():
        i, t, n = line.split()
        out.setdefault(int(i), []).append((float(t), int(n)))
    return out


def event_arrivals(body, pieces):
    """When each event of the body had fully arrived: the time of the read holding its last
    byte."""
    ends, at = [], 0
    for chunk in body.split(b"\n\n")[:-1]:
        at += len(chunk) + 2
        ends.append(at)
    arrivals, got, k = [], 0, 0
    for t, n in pieces:
        got += n
        while k < len(ends) and ends[k] <= got:
            arrivals.append(t)
            k += 1
    assert got == len(body)
    return arrivals


def check_stream(body, pieces, sent):
    """The body holds N_EVENTS events in order, each read after the server sent it and soon
    after; `sent` maps event k to the server's send time."""
    events = sse_events(body)
    assert [e.split(b" ")[-1] for e in events] == [b"%d" % k for k in range(N_EVENTS)]
    arrivals = event_arrivals(body, pieces)
    assert len(arrivals) == N_EVENTS
    assert arrivals == sorted(arrivals)
    for k, t in enumerate(arrivals):
        assert t >= sent[k] - 1e-4, (k, t, sent[k])
        assert t - sent[k] < 0.5, (k, t, sent[k])
    # the pauses between events show up in the client's times: reads are stamped when they
    # happen, not when the response ends
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert min(gaps) > DELAY * 0.5, gaps


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def tls_context(certs, alpn):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certs)
    ctx.set_alpn_protocols(alpn)
    return ctx


# ---- an HTTP/2 server: h2 on asyncio, in a thread ----

class H2Server:
    """Answers POST with the length and SHA-256 of the body, /big with `big` bytes at once,
    /hang never, anything else with N_EVENTS SSE events DELAY apart, "data: <stream id> <k>"."""

    def __init__(self, max_streams=100, ssl_ctx=None, big=0):
        self.max_streams, self.big = max_streams, big
        self.n_conns, self.open, self.max_open = 0, 0, 0
        self.sent = {}  # stream id -> [send time of event k]
        self.client_settings, self.client_conn_window = None, None
        self.errors, self.resets = [], []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self.serve, "127.0.0.1", 0, ssl=ssl_ctx), self.loop).result(5)
        self.port = self.server.sockets[0].getsockname()[1]

    def close(self):
        async def stop():
            self.server.close()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def serve(self, reader, writer):
        self.n_conns += 1
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams})
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        bodies, windows = {}, asyncio.Event()
        try:
            while data := await reader.read(65536):
                for ev in conn.receive_data(data):
                    self.on_event(conn, writer, ev, bodies, windows)
                writer.write(conn.data_to_send())
                await writer.drain()
        except (h2.exceptions.ProtocolError, ConnectionError) as e:
            self.errors.append(repr(e))
        writer.close()

    def on_event(self, conn, writer, ev, bodies, windows):
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            self.client_settings = {k: v.new_value for k, v in ev.changed_settings.items()}
        elif isinstance(ev, h2.events.WindowUpdated):
            if ev.stream_id == 0:
                self.client_conn_window = conn.outbound_flow_control_window
            windows.set()
        elif isinstance(ev, h2.events.RequestReceived):
            self.open += 1
            self.max_open = max(self.max_open, self.open)
            bodies[ev.stream_id] = [dict(ev.headers), bytearray()]
        elif isinstance(ev, h2.events.DataReceived):
            bodies[ev.stream_id][1] += ev.data
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            headers, body = bodies.pop(ev.stream_id)
            if headers[b":path"] != b"/hang":
                asyncio.ensure_future(self.respond(conn, writer, ev.stream_id, headers, body))
        elif isinstance(ev, h2.events.StreamReset):
            self.resets.append((ev.stream_id, ev.error_code))
            self.open -= 1

    async def respond(self, conn, writer, sid, headers, body):
        path, method = headers[b":path"], headers[b":method"]
        if method == b"POST":
            out = b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
            conn.send_headers(sid, [(":status", "200")])
            conn.send_data(sid, out, end_stream=True)
        elif path == b"/big":
            conn.send_headers(sid, [(":status", "200")])
            frame = conn.max_outbound_frame_size
            for at in range(0, self.big, frame):  # never waits: the client's windows are big
                conn.send_data(sid, b"x" * min(frame, self.big - at))
            conn.end_stream(sid)
        else:
            conn.send_headers(sid, [(":status", "200"), ("content-type", "text/event-stream")])
            writer.write(conn.data_to_send())
            self.sent[sid] = []
            for k in range(N_EVENTS):
                await asyncio.sleep(DELAY)
                conn.send_data(sid, b"data: %d %d\n\n" % (sid, k))
                self.sent[sid].append(time.monotonic())
                writer.write(conn.data_to_send())
            conn.end_stream(sid)
        self.open -= 1
        writer.write(conn.data_to_send())


@pytest.fixture
def h2_server():
    servers = []

    def make(**kw):
        servers.append(H2Server(**kw))
        return servers[-1]
    yield make
    for s in servers:
        s.close()


def check_h2_streams(server, bodies_dir, times_file, count):
    times = read_times(times_file)
    for i in range(count):
        body = (bodies_dir / str(i)).read_bytes()
        sid = int(sse_events(body)[0].split(b" ")[0])
        assert all(e.split(b" ")[0] == b"%d" % sid for e in sse_events(body))
        check_stream(body, times[i], server.sent[sid])


def test_h2_streams_sse_events_in_order_with_read_times(h2_server, tmp_path):
    server = h2_server()
    rc, out, err = run_tool("--http2", "--times", tmp_path / "t", "127.0.0.1", server.port,
                            "/v1/completions")
    assert rc == 0, err
    status, body = out.split(b"\n", 1)
    assert status == b"200"
    check_stream(body, read_times(tmp_path / "t")[0], server.sent[1])
    assert server.errors == []


def test_h2_more_requests_than_max_concurrent_streams_wait(h2_server, tmp_path):
    server = h2_server(max_streams=3)
    (tmp_path / "b").mkdir()
    rc, out, err = run_tool("--http2", "--count", 10, "--times", tmp_path / "t", "--bodies",
                            tmp_path / "b", "127.0.0.1", server.port, "/stream")
    assert rc == 0, err
    done = [line.split() for line in out.decode().splitlines()]
    assert sorted(int(d[1]) for d in done) == list(range(10))
    assert all(d[2] == "0" and d[3] == "200" for d in done)
    assert server.n_conns == 1          # one connection, multiplexed
    assert server.max_open == 3         # as many streams as allowed, never more
    assert server.errors == []          # h2 refuses a stream past the limit
    check_h2_streams(server, tmp_path / "b", tmp_path / "t", 10)


def test_h2_windows_are_large_so_streaming_is_not_throttled(h2_server, tmp_path):
    big = 8 << 20
    server = h2_server(big=big)
    (tmp_path / "b").mkdir()
    rc, out, err = run_tool("--http2", "--count", 2, "--bodies", tmp_path / "b", "127.0.0.1",
                            server.port, "/big")
    assert rc == 0, err
    assert [(tmp_path / "b" / str(i)).read_bytes() == b"x" * big for i in range(2)] == [True] * 2
    assert server.client_settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] >= 16 << 20
    assert server.client_settings.get(h2.settings.SettingCodes.ENABLE_PUSH) == 0
    assert server.client_conn_window is not None and server.client_conn_window >= 16 << 20
    assert server.errors == []


def test_h2_request_body_larger_than_the_servers_window(h2_server, tmp_path):
    server = h2_server()
    body = bytes(range(256)) * 1200  # 300 KiB against the server's 64 KiB windows
    (tmp_path / "body").write_bytes(body)
    rc, out, err = run_tool("--http2", "127.0.0.1", server.port, "/v1/completions",
                            tmp_path / "body")
    assert rc == 0, err
    assert out == b"200\n%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())


def test_h2_body_limit(h2_server, tmp_path):
    server = h2_server(big=1 << 20)
    rc, out, err = run_tool("--http2", "--max-bytes", 100000, "127.0.0.1", server.port, "/big")
    assert rc == 1 and "ERR_LIMIT" in err


def test_h2_timeout_fails_the_request_and_resets_its_stream(h2_server, tmp_path):
    server = h2_server()
    t0 = time.monotonic()
    rc, out, err = run_tool("--http2", "--timeout", 0.3, "127.0.0.1", server.port, "/hang")
    assert rc == 1 and "ERR_IO" in err and "timed out" in err
    assert 0.29 < time.monotonic() - t0 < 3
    deadline = time.monotonic() + 2
    while not server.resets and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.resets == [(1, h2.errors.ErrorCodes.CANCEL)]


def test_h2_over_tls_alpn(h2_server, certs, tmp_path):
    server = h2_server(max_streams=2, ssl_ctx=tls_context(certs, ["h2"]))
    (tmp_path / "b").mkdir()
    rc, out, err = run_tool("--http2", "--tls", "--count", 4, "--times", tmp_path / "t",
                            "--bodies", tmp_path / "b", "localhost", server.port, "/stream")
    assert rc == 0, err
    assert server.n_conns == 1 and server.max_open == 2
    check_h2_streams(server, tmp_path / "b", tmp_path / "t", 4)


# ---- an HTTP/1.1 server: http.server, in a thread ----

class H1Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.server.conns.add(self.client_address)

    def do_GET(self):
        with self.server.lock:
            self.server.active += 1
            self.server.max_active = max(self.server.max_active, self.server.active)
        try:
            self.stream()
        finally:
            with self.server.lock:
                self.server.active -= 1

    def stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        sent = []
        for k in range(N_EVENTS):
            time.sleep(DELAY)
            ev = b"data: %s %d\n\n" % (self.path.encode(), k)
            sent.append(time.monotonic())
            self.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.server.sent[self.path] = sent

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        out = b"%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture
def h1_server():
    servers = []

    def make(ssl_ctx=None):
        s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H1Handler)
        s.daemon_threads = True
        s.conns, s.sent = set(), {}
        s.lock, s.active, s.max_active = threading.Lock(), 0, 0
        if ssl_ctx:
            s.socket = ssl_ctx.wrap_socket(s.socket, server_side=True)
        threading.Thread(target=s.serve_forever, daemon=True).start()
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.shutdown()
        s.server_close()


def test_h1_chunked_sse_stream_with_read_times(h1_server, tmp_path):
    server = h1_server()
    rc, out, err = run_tool("--times", tmp_path / "t", "127.0.0.1", server.server_address[1],
                            "/one")
    assert rc == 0, err
    status, body = out.split(b"\n", 1)
    assert status == b"200"
    check_stream(body, read_times(tmp_path / "t")[0], server.sent["/one"])


def test_h1_requests_share_a_keep_alive_connection(h1_server, tmp_path):
    server = h1_server()
    (tmp_path / "b").mkdir()
    rc, out, err = run_tool("--count", 4, "--max-connections", 1, "--bodies", tmp_path / "b",
                            "--times", tmp_path / "t", "127.0.0.1", server.server_address[1],
                            "/same")
    assert rc == 0, err
    assert len(server.conns) == 1
    # requests on one connection run one after another, in the order sent
    done = [int(line.split()[1]) for line in out.decode().splitlines()]
    assert done == [0, 1, 2, 3]
    times = read_times(tmp_path / "t")
    for i in range(4):
        assert sse_events((tmp_path / "b" / str(i)).read_bytes()) == [
            b"/same %d" % k for k in range(N_EVENTS)]
    assert all(times[i][-1][0] < times[i + 1][0][0] for i in range(3))


@pytest.mark.parametrize("cap", [2, 0])
def test_h1_max_connections_caps_the_pool(h1_server, tmp_path, cap):
    server = h1_server()
    rc, out, err = run_tool("--count", 6, "--max-connections", cap, "127.0.0.1",
                            server.server_address[1], "/pool")
    assert rc == 0, err
    assert len(out.decode().splitlines()) == 6
    want = cap or 6  # 0: a connection per request in flight
    assert len(server.conns) == want and server.max_active == want


def test_h1_post_body(h1_server, tmp_path):
    server = h1_server()
    body = os.urandom(100000)
    (tmp_path / "body").write_bytes(body)
    rc, out, err = run_tool("127.0.0.1", server.server_address[1], "/v1/completions",
                            tmp_path / "body")
    assert rc == 0, err
    assert out == b"200\n%d %s" % (len(body), hashlib.sha256(body).hexdigest().encode())


def test_h1_over_tls(h1_server, certs, tmp_path):
    server = h1_server(tls_context(certs, ["http/1.1"]))
    rc, out, err = run_tool("--tls", "--times", tmp_path / "t", "localhost",
                            server.server_address[1], "/tls")
    assert rc == 0, err
    status, body = out.split(b"\n", 1)
    assert status == b"200"
    check_stream(body, read_times(tmp_path / "t")[0], server.sent["/tls"])


def test_h2_over_tls_refused_when_the_server_only_speaks_http11(h1_server, certs):
    server = h1_server(tls_context(certs, ["http/1.1"]))
    rc, out, err = run_tool("--http2", "--tls", "localhost", server.server_address[1], "/x")
    assert rc == 1 and "ERR_UNSUPPORTED" in err


def test_h2_prior_knowledge_against_http11_fails_cleanly(h1_server):
    server = h1_server()
    rc, out, err = run_tool("--http2", "--timeout", 3, "127.0.0.1", server.server_address[1],
                            "/x")
    assert rc == 1 and "error 0:" in err
