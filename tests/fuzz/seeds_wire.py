"""Seeds for fuzz_wire: valid wire messages of every type (common/wire.h), one per file, and
a file of all of them back to back. Encoded here from the layout in wire.h, independently of
the C encoder, so a seed the decoder refuses is a disagreement worth a look.
Usage: seeds_wire.py OUT"""
import pathlib
import struct
import sys

out = pathlib.Path(sys.argv[1])
HELLO, ADD, ABORT, TOKENS, STATS, HEARTBEAT = range(1, 7)


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


def add(request_id, prompt, sp, n=1, priority=0, guided=b""):
    body = struct.pack("<QQiI", request_id, 1_700_000_000_123_456, priority, n) + ids(prompt)
    return msg(ADD, body + sp + struct.pack("<I", len(guided)) + guided)


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


NINF = float("-inf")
seeds = {
    "hello": hello(),
    "hello_fatal": hello(b"meta-llama/Llama-3.1-8B-Instruct", 3),
    "add_default": add(1, [1, 15043, 3186], sampling()),
    "add_full": add(2, list(range(1, 40)),
                    sampling(0.7, 0.9, 40, 0.05, 1.1, 0.5, -0.5, seed=1234, ignore_eos=True,
                             max_tokens=100, min_tokens=3, logprobs=5, prompt_logprobs=2,
                             stop=[2, 13], bias=[(50, -100.0), (51, 2.5)], allowed=[1, 2, 3]),
                    n=3, priority=-2, guided=b'{"type":"json_schema"}'),
    "abort": msg(ABORT, struct.pack("<I3Q", 3, 1, 2, 2**64 - 1)),
    "tokens": tokens([
        seq(1, [42]),
        seq(2, [7, 8], 1, 8, lp=([-0.25, NINF], [[(7, -0.25), (9, -2.0)], [(8, NINF), (1, -3.0)]])),
        seq(3, [], 2, plp=([-1.5, -0.5, -4.0], [[], [], []]), choice=1),
    ]),
    "stats": msg(STATS, struct.pack("<QQIIIIQQ", 99, 12345, 3, 1, 100, 1024, 50, 200)),
    "heartbeat": msg(HEARTBEAT, struct.pack("<QQBIIII", 99, 12345, 1, 3, 1, 100, 1024)),
}
seeds["all"] = b"".join(seeds.values())
out.mkdir(parents=True, exist_ok=True)
for name, data in seeds.items():
    (out / ("seed_" + name)).write_bytes(data)
