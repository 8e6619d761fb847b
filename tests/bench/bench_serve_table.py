#!/usr/bin/env python3
"""The side-by-side table of `make bench-serve`: kiln against llama.cpp's llama-server and
llama-cpp-python's server (whichever ran), from the vLLM-format result files
tests/bench/bench_serve.sh leaves in DIR.

    python3 tests/bench/bench_serve_table.py DIR MODEL...

Rows per model: single-request decode tokens/s (1000 / median TPOT), TTFT of the long prompt
(median), and at concurrency 1, 8 and 32 on random 256-in/128-out: output throughput and the
median / p90 / p99 of TPOT and ITL. Ratio = kiln / llama.cpp for rates, llama.cpp / kiln for
times, so above 1.00x always means kiln is better.

A workload run in several rounds (MODEL-SERVER-NAME-rK.json, the servers taking turns) shows
the median over rounds of each value, the ratio of those medians, and the lowest and highest
ratio of one round's pair of runs.
"""
import glob
import json
import os
import re
import statistics
import sys


def load(d, model, server, name):
    """The rounds of one workload on one server, in round order (empty when none ran)."""
    pat = os.path.join(d, "%s-%s-%s-r*.json" % (model, server, name))
    found = []
    for p in glob.glob(pat):
        m = re.search(r"-r(\d+)\.json$", p)
        if m:
            with open(p) as f:
                found.append((int(m.group(1)), json.load(f)))
    return [r for _, r in sorted(found, key=lambda x: x[0])]


def fmt(v):
    return "-" if v is None else "%.2f" % v if v < 10 else "%.1f" % v


PEERS = (("llamacpp", "llama-server"), ("llamacpp-python", "llama-cpp-python"))
WORKLOADS = ("decode", "ttft", "c1", "c8", "c32")


def ratio_of(k, l, higher_better):
    return k / l if higher_better else l / k


def rows(d, model, peers):
    """Table rows: (label, kiln's value, then per peer: value, ratio, round spread)."""
    out = []

    def row(label, name, key, higher_better, fn=None):
        def values(server):
            runs = [r for r in load(d, model, server, name) if r.get("completed", 0) > 0]
            return [fn(r) if fn else r[key] for r in runs]

        ks = values("kiln")
        k = statistics.median(ks) if ks else None
        cells = [fmt(k)]
        for peer in peers:
            ls = values(peer)
            l = statistics.median(ls) if ls else None
            ratio, spread = "-", ""
            if k and l:
                ratio = "%.2fx" % ratio_of(k, l, higher_better)
            pairs = [ratio_of(a, b, higher_better) for a, b in zip(ks, ls) if a and b]
            if len(pairs) > 1:
                spread = "%.2f-%.2f" % (min(pairs), max(pairs))
            cells += [fmt(l), ratio, spread]
        out.append([label] + cells)

    r = None
    for server in ("kiln",) + tuple(peers):
        r = r or (load(d, model, server, "ttft") or [None])[0]
    long = r["input_lens"][0] if r else "?"
    row("decode, 1 request (tok/s)", "decode", None, True, lambda r: 1000.0 / r["median_tpot_ms"])
    row("TTFT, %s-token prompt (ms)" % long, "ttft", "median_ttft_ms", False)
    for c in (1, 8, 32):
        name = "c%d" % c
        row("c=%d output throughput (tok/s)" % c, name, "output_throughput", True)
        for stat in ("median", "p90", "p99"):
            row("c=%d TPOT %s (ms)" % (c, stat), name, "%s_tpot_ms" % stat, False)
        for stat in ("median", "p99"):
            row("c=%d ITL %s (ms)" % (c, stat), name, "%s_itl_ms" % stat, False)
        row("c=%d TTFT median (ms)" % c, name, "median_ttft_ms", False)
    return out


def main():
    d, models = sys.argv[1], sys.argv[2:]
    for model in models:
        peers = [p for p in PEERS if any(load(d, model, p[0], w) for w in WORKLOADS)]
        print()
        print("%s: kiln serve vs %s (same weights, same prompts)"
              % (model, " and ".join(title for _, title in peers) or "no peer"))
        head = "%-32s %10s" % ("", "kiln")
        for _, title in peers:
            head += " %16s %6s %10s" % (title, "ratio", "rounds")
        print(head)
        for cells in rows(d, model, [name for name, _ in peers]):
            line = "%-32s %10s" % tuple(cells[:2])
            for i in range(len(peers)):
                line += " %16s %6s %10s" % tuple(cells[2 + 3 * i: 5 + 3 * i])
            print(line.rstrip())
        p = os.path.join(d, "%s-steal.txt" % model)
        if os.path.exists(p):
            with open(p) as f:
                print("(%s)" % f.read().strip())
    print()
    print("(ratio above 1.00x: kiln is better; rates are kiln/peer, times peer/kiln;")
    print(" rounds: the lowest and highest ratio of one round's pair of runs)")


if __name__ == "__main__":
    main()
