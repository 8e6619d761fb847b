"""Batch invariance of kiln's forward pass (through tests/model/forward_runner): a token's logits
must not depend on what else is in the step, on how its prompt was split into chunks across
steps, on the order of chunks in a step, or on which KV blocks the sequence got.

The same three sequences (prompt + three decode ids each) run
  * alone: each in its own runner process, prompt in one step, then one decode step per token;
  * together: all prompts in one step, then all three decode tokens of a round in one step;
  * interleaved: prompts split into uneven chunks (1 token to 36) spread over steps, mixed with
    other sequences' chunks and decode tokens, chunk order varying within a step;
  * together again with blocks handed out in order (shuffle_blocks false) and a small pool.
Rows of the same (sequence, position) must agree within relative error 1e-5
(max|a-b| / max|b|): the goal is bitwise equality, but 1e-5 (about 100 float32 ulps of the
largest logit) leaves room for a reduction whose order legitimately depends on the split, e.g.
attention over a different number of KV blocks. Every run must also match the reference within
1e-3, like test_forward.py.
"""
import numpy as np
import pytest

import harness
import reference
import tiny_model

SAME = 1e-5
TOL = 1e-3

MODELS = {
    "llama_gqa": dict(heads=4, kv_heads=2, layers=2, vocab=397),
    "mistral_window": dict(arch="MistralForCausalLM", sliding_window=12, heads=4, kv_heads=1,
                           vocab=397),
    "dynamic_rope": dict(rope_scaling={"rope_type": "dynamic", "factor": 4.0},
                         max_position_embeddings=32, vocab=389),
}
PROMPT_LENGTHS = {0: 45, 1: 30, 2: 70}
DECODE = 3


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    tiny_model.make_model(d, seed=21, **MODELS[request.param])
    m = reference.load(d)
    seqs = {}
    for s, n in PROMPT_LENGTHS.items():
        ids = tiny_model.random_ids(n + DECODE, m.vocab, seed=100 + s)
        seqs[s] = (ids[:n], ids[n:])
    want = {s: reference.forward(m, p + dec) for s, (p, dec) in seqs.items()}
    return d, seqs, want


def chunk(s, ids, mode="all"):
    return {"seq": s, "ids": list(ids), "logits": mode}


def as_matrix(rows, s, n):
    return np.stack([rows[s][p] for p in range(n)])


def check_all(rows, seqs, want, what):
    for s, (p, dec) in seqs.items():
        n = len(p) + len(dec)
        assert sorted(rows[s]) == list(range(n)), f"{what}: seq {s} positions"
        harness.assert_close_rows(as_matrix(rows, s, n), want[s], TOL, f"{what} seq {s}")


def run(d, steps, **kw):
    out = harness.run_runner(d, steps, **kw)
    return harness.rows_by_position(steps, out)


def alone(d, seqs):
    rows = {}
    for s, (p, dec) in seqs.items():
        steps = [[chunk(s, p)]] + [[chunk(s, [t])] for t in dec]
        rows.update(run(d, steps))
    return rows


def together_steps(seqs, order=(0, 1, 2)):
    steps = [[chunk(s, seqs[s][0]) for s in order]]
    for i in range(DECODE):
        steps.append([chunk(s, [seqs[s][1][i]]) for s in order])
    return steps


def interleaved_steps(seqs):
    (a, ad), (b, bd), (c, cd) = seqs[0], seqs[1], seqs[2]
    return [
        [chunk(0, a[0:7])],
        [chunk(0, a[7:23]), chunk(1, b[0:1])],
        [chunk(1, b[1:2]), chunk(2, c[0:33]), chunk(0, a[23:45])],
        [chunk(0, ad[0:1]), chunk(1, b[2:30]), chunk(2, c[33:34])],
        [chunk(2, c[34:70]), chunk(0, ad[1:2]), chunk(1, bd[0:1])],
        [chunk(1, bd[1:2]), chunk(2, cd[0:1])],
        [chunk(0, ad[2:3]), chunk(1, bd[2:3]), chunk(2, cd[1:2])],
        [chunk(2, cd[2:3])],
    ]


def compare(rows, base, seqs, what):
    for s, (p, dec) in seqs.items():
        n = len(p) + len(dec)
        harness.assert_close_rows(as_matrix(rows, s, n), as_matrix(base, s, n), SAME,
                                  f"{what} vs alone, seq {s}")


def test_alone_together_interleaved(case):
    d, seqs, want = case
    base = alone(d, seqs)
    check_all(base, seqs, want, "alone")
    together = run(d, together_steps(seqs))
    check_all(together, seqs, want, "together")
    compare(together, base, seqs, "together")
    reordered = run(d, together_steps(seqs, order=(2, 0, 1)))
    compare(reordered, base, seqs, "together, chunks reordered")
    inter = run(d, interleaved_steps(seqs))
    check_all(inter, seqs, want, "interleaved")
    compare(inter, base, seqs, "interleaved")


def test_block_order_and_pool_size(case):
    d, seqs, want = case
    base = run(d, together_steps(seqs))
    ordered = run(d, together_steps(seqs), shuffle_blocks=False)
    compare(ordered, base, seqs, "unshuffled blocks")
    # 3 + 3 + 5 blocks of 16 are needed; a pool of 16 leaves little slack
    small = run(d, interleaved_steps(seqs), num_blocks=16, shuffle_blocks=True)
    compare(small, base, seqs, "16-block pool")
    check_all(small, seqs, want, "16-block pool")


def test_last_and_none_modes_in_a_mixed_step(case):
    d, seqs, want = case
    (a, ad), (b, bd), (c, cd) = seqs[0], seqs[1], seqs[2]
    steps = [
        [chunk(0, a[:20], "none"), chunk(1, b, "last"), chunk(2, c[:1], "all")],
        [chunk(2, c[1:], "last"), chunk(0, a[20:], "last")],
        [chunk(0, ad[:1], "last"), chunk(1, bd[:1], "none"), chunk(2, cd[:1], "last")],
    ]
    rows = run(d, steps)
    assert sorted(rows[0]) == [len(a) - 1, len(a)]
    assert sorted(rows[1]) == [len(b) - 1]
    assert sorted(rows[2]) == [0, len(c) - 1, len(c)]
    for s, positions in rows.items():
        for pos, row in positions.items():
            harness.assert_close_rows(row[None], want[s][pos][None], TOL, f"seq {s} pos {pos}")
