"""Seeds for fuzz_wire: valid wire messages of every type (common/wire.h), one per file, and
a file of all of them back to back. Encoded by tests/e2e/wire_py.py from the layout in wire.h,
independently of the C encoder, so a seed the decoder refuses is a disagreement worth a look.
Usage: seeds_wire.py OUT"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "e2e"))
from wire_py import ABORT, STATS, HEARTBEAT, msg, hello, sampling, add, seq, tokens  # noqa: E402
import struct  # noqa: E402

out = pathlib.Path(sys.argv[1])
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
