#!/usr/bin/env python3
"""The side-by-side table of `make bench-serve`: kiln against llama.cpp's llama-server, from
the vLLM-format result files tests/bench/bench_serve.sh leaves in DIR.

    python3 tests/bench/bench_serve_table.py DIR MODEL...

Rows per model: single-request decode tokens/s (1000 / median TPOT), TTFT of the long prompt
(median), and at concurrency 1, 8 and 32 on random 256-in/128-out: output throughput and the
median / p90 / p99 of TPOT and ITL. Ratio = kiln / llama.cpp for rates, llama.cpp / kiln for
times, so above 1.00x always means kiln is better.
"""
import json
import os
import sys


def load(d, model, server, name):
    p = os.path.join(d, "%s-%s-%s.json" % (model, server, name))
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def fmt(v, unit):
    return "-" if v is None else ("%.1f %s" % (v, unit)).strip()


def rows(d, model):
    out = []

    def row(label, name, key, unit, higher_better, fn=None):
        vals = []
        for server in ("kiln", "llamacpp"):
            r = load(d, model, server, name)
            if r is None or r.get("completed", 0) == 0:
                vals.append(None)
                continue
            v = fn(r) if fn else r[key]
            vals.append(v)
        k, l = vals
        ratio = "-"
        if k and l:
            ratio = "%.2fx" % (k / l if higher_better else l / k)
        out.append((label, fmt(k, unit), fmt(l, unit), ratio))

    r = load(d, model, "kiln", "ttft") or load(d, model, "llamacpp", "ttft")
    long = r["input_lens"][0] if r else "?"
    row("decode, 1 request (tok/s)", "decode", None, "", True,
        lambda r: 1000.0 / r["median_tpot_ms"])
    row("TTFT, %s-token prompt (ms)" % long, "ttft", "median_ttft_ms", "", False)
    for c in (1, 8, 32):
        name = "c%d" % c
        row("c=%d output throughput (tok/s)" % c, name, "output_throughput", "", True)
        for stat in ("median", "p90", "p99"):
            row("c=%d TPOT %s (ms)" % (c, stat), name, "%s_tpot_ms" % stat, "", False)
        for stat in ("median", "p99"):
            row("c=%d ITL %s (ms)" % (c, stat), name, "%s_itl_ms" % stat, "", False)
        row("c=%d TTFT median (ms)" % c, name, "median_ttft_ms", "", False)
    return out


def main():
    d, models = sys.argv[1], sys.argv[2:]
    for model in models:
        print()
        print("%s: kiln serve vs llama.cpp llama-server (same weights, same prompts)" % model)
        print("%-34s %14s %14s %9s" % ("", "kiln", "llama.cpp", "kiln/peer"))
        for label, k, l, ratio in rows(d, model):
            print("%-34s %14s %14s %9s" % (label, k, l, ratio))
        steal = []
        for server in ("kiln", "llamacpp"):
            p = os.path.join(d, "%s-%s-steal.txt" % (model, server))
            if os.path.exists(p):
                with open(p) as f:
                    steal.append(f.read().strip())
        if steal:
            print("(%s)" % "; ".join(steal))
    print()
    print("(ratio above 1.00x: kiln is better; rates are kiln/llama.cpp, times llama.cpp/kiln)")


if __name__ == "__main__":
    main()
