"""The kiln wire protocol (common/wire.h) in Python, written from the layout in wire.h and
independently of the C codec: the fuzz seeds and the end-to-end test client use it, so a
disagreement between the two implementations shows up as a refused seed or a failed test.

Encoders return bytes; decode_all(buf) returns a list of (type_name, dict) for every message
in a buffer of messages back to back, and raises ValueError on anything malformed."""
import struct

HELLO, ADD, ABORT, TOKENS, STATS, HEARTBEAT = range(1, 7)
NAMES = {HELLO: "hello", ADD: "add", ABORT: "abort", TOKENS: "tokens", STATS: "stats",
         HEARTBEAT: "heartbeat"}
FINISH = {0: None, 1: "stop", 2: "length", 3: "abort", 4: "error"}
STATE = {0: "starting", 1: "ready", 2: "draining", 3: "fatal"}


def msg(mtype, body):
    return struct.pack("<4sHHI", b"KLN1", 1, mtype, len(body)) + body


def ids(values):
    return struct.pack("<I%di" % len(values), len(values), *values)


def string(s):
    return struct.pack("<I", len(s)) + s


def hello(model=b"stories260K", state=1):
    return msg(HELLO, struct.pack("<HQQ", 1, 0xABCDEF, 1_700_000_000_000_000) + string(model) +
               struct.pack("<7IB", 512, 32000, 16, 64, 2048, 20, 1000, state))


def sampling(temperature=1.0, top_p=1.0, top_k=0, min_p=0.0, rep=1.0, pres=0.0, freq=0.0,
             seed=None, ignore_eos=False, max_tokens=16, min_tokens=0, logprobs=-1,
             prompt_logprobs=-1, stop=(), bias=(), allowed=()):
    flags = (1 if seed is not None else 0) | (2 if ignore_eos else 0)
    b = struct.pack("<ffiffffBQiiii", temperature, top_p, top_k, min_p, rep, pres, freq, flags,
                    seed or 0, max_tokens, min_tokens, logprobs, prompt_logprobs)
    b += ids(stop) + struct.pack("<I", len(bias))
    for token, value in bias:
        b += struct.pack("<if", token, value)
    return b + ids(allowed)


def add(request_id, prompt, sp, n=1, priority=0, guided=b"", arrival_us=1_700_000_000_123_456):
    body = struct.pack("<QQiI", request_id, arrival_us, priority, n) + ids(prompt)
    return msg(ADD, body + sp + struct.pack("<I", len(guided)) + guided)


def abort(request_ids):
    return msg(ABORT, struct.pack("<I%dQ" % len(request_ids), len(request_ids), *request_ids))


def heartbeat(epoch=0, step=0, state=1, running=0, waiting=0, used=0, total=1):
    return msg(HEARTBEAT, struct.pack("<QQBIIII", epoch, step, state, running, waiting, used, total))


def logprobs(lps, tops):
    """lps: one logprob per token; tops: per token a list of (id, logprob), all one length."""
    n_top = len(tops[0]) if tops else 0
    b = struct.pack("<B%df" % len(lps), n_top, *lps)
    for alternatives in tops:
        for token, lp in alternatives:
            b += struct.pack("<if", token, lp)
    return b


def seq(request_id, new, finish=0, stop_reason=-1, lp=None, plp=None, choice=0):
    flags = (1 if lp is not None else 0) | (2 if plp is not None else 0)
    b = struct.pack("<QIBBiIII", request_id, choice, finish, flags, stop_reason, 5, 2, len(new))
    b += ids(new)
    if lp is not None:
        b += logprobs(*lp)
    if plp is not None:
        b += struct.pack("<I", len(plp[0])) + logprobs(*plp)
    return b


def tokens(seqs):
    return msg(TOKENS, struct.pack("<I", len(seqs)) + b"".join(seqs))


class _Reader:
    def __init__(self, body):
        self.b, self.at = body, 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        if self.at + size > len(self.b):
            raise ValueError("truncated body")
        v = struct.unpack_from(fmt, self.b, self.at)
        self.at += size
        return v

    def array(self, code):
        (n,) = self.take("<I")
        return list(self.take("<%d%s" % (n, code))) if n else []

    def logprobs(self, n):
        (n_top,) = self.take("<B")
        lps = list(self.take("<%df" % n)) if n else []
        tops = [[self.take("<if") for _ in range(n_top)] for _ in range(n)]
        return lps, tops


def _decode_hello(r):
    version, engine_id, epoch = r.take("<HQQ")
    (n,) = r.take("<I")
    model = r.take("<%ds" % n)[0].decode()
    vals = r.take("<7IB")
    keys = ("max_model_len", "vocab_size", "block_size", "max_num_seqs",
            "max_num_batched_tokens", "max_logprobs", "max_waiting")
    d = dict(zip(keys, vals[:7]), proto_version=version, engine_id=engine_id, epoch=epoch,
             model=model, state=STATE[vals[7]])
    return d


def _decode_tokens(r):
    (n,) = r.take("<I")
    out = []
    for _ in range(n):
        rid, choice, finish, flags, stop, n_prompt, n_cached, n_gen = r.take("<QIBBiIII")
        new = r.array("i")
        s = dict(request_id=rid, choice=choice, finish=FINISH[finish], stop_reason=stop,
                 prompt_tokens=n_prompt, cached_tokens=n_cached, generated_tokens=n_gen,
                 ids=new, logprobs=None, prompt_logprobs=None)
        if flags & 1:
            s["logprobs"] = r.logprobs(len(new))
        if flags & 2:
            (npos,) = r.take("<I")
            s["prompt_logprobs"] = r.logprobs(npos)
        out.append(s)
    return {"seqs": out}


def _decode_stats(r):
    keys = ("epoch", "step", "running", "waiting", "kv_blocks_used", "kv_blocks_total",
            "prefix_hit_tokens", "prefix_query_tokens")
    return dict(zip(keys, r.take("<QQIIIIQQ")))


def _decode_heartbeat(r):
    v = r.take("<QQBIIII")
    return dict(epoch=v[0], step=v[1], state=STATE[v[2]], running=v[3], waiting=v[4],
                kv_blocks_used=v[5], kv_blocks_total=v[6])


_DECODERS = {HELLO: _decode_hello, TOKENS: _decode_tokens, STATS: _decode_stats,
             HEARTBEAT: _decode_heartbeat}


def decode_all(buf):
    """Every message of buf (engine -> frontend types), as (name, fields) pairs."""
    out, at = [], 0
    while at < len(buf):
        if at + 12 > len(buf):
            raise ValueError("truncated header")
        magic, version, mtype, n = struct.unpack_from("<4sHHI", buf, at)
        if magic != b"KLN1" or version != 1 or mtype not in _DECODERS:
            raise ValueError("bad header %r %d %d" % (magic, version, mtype))
        body = buf[at + 12: at + 12 + n]
        if len(body) != n:
            raise ValueError("truncated body")
        r = _Reader(body)
        fields = _DECODERS[mtype](r)
        if r.at != n:
            raise ValueError("trailing bytes in a %s body" % NAMES[mtype])
        out.append((NAMES[mtype], fields))
        at += 12 + n
    return out
