"""End to end: the real `kiln engine` process on stories260K, driven over real ZeroMQ by a
frontend written in Python (engine_client.py, wire_py.py). References: the model's recorded
golden outputs, a NumPy forward pass (tests/model/reference.py) for logprobs, and the engine's
own answers for one request alone (the crowd must not change them)."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import engine_client as ec
import wire_py as w

GOLDEN = os.path.join(ec.STORIES, "golden")
CFG = json.load(open(os.path.join(ec.STORIES, "config.json")))
# KV bytes of one 16-token block on one rank: keys and values, fp32
BLOCK_BYTES = 2 * CFG["num_hidden_layers"] * 16 * CFG["num_key_value_heads"] * CFG["head_dim"] * 4


def golden(name):
    with open(os.path.join(GOLDEN, name)) as f:
        return json.load(f)


def workload(n, seed):
    """n requests: (prompt ids, max_tokens), BOS first, lengths 1 .. 300."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        plen = rnd.choice([1, 2, 15, 16, 17, 40, 100, 180, 300]) if i % 3 else rnd.randint(1, 64)
        prompt = [1] + [rnd.randrange(3, CFG["vocab_size"]) for _ in range(plen - 1)]
        out.append((prompt, rnd.randint(8, min(120, 511 - plen))))
    return out


def run_alone(engine, reqs, **sp):
    c = ec.Client(engine.addr)
    c.hello()
    out = []
    for prompt, max_tokens in reqs:
        rid = c.add(prompt, max_tokens=max_tokens, **sp)
        c.wait([rid])
        out.append(c.result(rid))
    c.close()
    return out


def run_crowd(engine, reqs, **sp):
    c = ec.Client(engine.addr)
    c.hello()
    rids = [c.add(prompt, max_tokens=max_tokens, **sp) for prompt, max_tokens in reqs]
    c.wait(rids, timeout=120)
    c.close()
    return [c.result(r) for r in rids]


def idle_stats(client, timeout=5.0):
    """Polls STATS (a HEARTBEAT is answered with one) until no KV block is in use and
    nothing runs or waits; returns the seconds that took, or None after timeout."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        client.stats.clear()
        client.send(w.heartbeat())
        client.poll(50)
        for s in client.stats:
            if s["kv_blocks_used"] == 0 and s["running"] == 0 and s["waiting"] == 0:
                return time.time() - t0
    return None


def preemptions(engine):
    """The preemptions a stopped engine reports in its last log line."""
    import re
    m = re.search(r"(\d+) preemptions", engine.final_log)
    assert m, engine.final_log
    return int(m.group(1))


def test_greedy_golden_outputs():
    with ec.Engine() as e:
        c = ec.Client(e.addr)
        hello = c.hello()
        assert hello["vocab_size"] == CFG["vocab_size"] and hello["state"] == "ready"
        assert hello["max_model_len"] == CFG["max_position_embeddings"]
        for name in ("golden_prompt_once_upon_a_time.json", "golden_prompt_tom_and_sue.json",
                     "golden_chat.json"):
            g = golden(name)
            rid = c.add(g["prompt_ids"], temperature=0.0, max_tokens=g["max_new_tokens"])
            c.wait([rid])
            r = c.result(rid)
            gen = g["generated_ids"]
            eos = [CFG["eos_token_id"]]
            # the golden keeps a final EOS (HF convention); the engine reports it as a token too
            assert r["ids"] == gen, name
            assert r["finish"] == ("stop" if gen and gen[-1] in eos else "length")
            assert r["prompt_tokens"] == len(g["prompt_ids"])
            assert r["generated_tokens"] == len(gen)
        c.close()


@pytest.mark.parametrize("flags", [
    (),
    # tiny steps: chunked prefill everywhere, few sequences at once
    ("--max-num-batched-tokens", "32", "--max-num-seqs", "8"),
    # a KV pool of 40 blocks: 64 requests preempt each other constantly
    ("--kv-cache-memory", str(40 * BLOCK_BYTES), "--max-num-batched-tokens", "64"),
], ids=["default", "small-steps", "preemption"])
def test_64_concurrent_greedy_requests_equal_each_alone(flags):
    reqs = workload(64, seed=1)
    with ec.Engine() as e:
        alone = run_alone(e, reqs, temperature=0.0)
    with ec.Engine(*flags) as e:
        crowd = run_crowd(e, reqs, temperature=0.0)
        log = e.stderr()
    for i, (a, b) in enumerate(zip(alone, crowd)):
        assert b["ids"] == a["ids"], "request %d differs in a crowd (%s)" % (i, flags)
        assert b["finish"] == a["finish"]
    assert "refused" not in log
    if "--kv-cache-memory" in flags:
        assert preemptions(e) > 0


def test_seeded_sampling_same_alone_and_in_a_crowd():
    reqs = workload(48, seed=2)
    sp = dict(temperature=0.9, top_p=0.95, top_k=40, seed=1234)
    with ec.Engine() as e:
        alone = run_alone(e, reqs[:12], **sp)
        again = run_alone(e, reqs[:12], **sp)
        crowd = run_crowd(e, reqs, **sp)
    for a, b, c in zip(alone, again, crowd):
        assert a["ids"] == b["ids"] == c["ids"]
    # and it is sampling, not greedy: some request leaves the greedy path
    with ec.Engine() as e:
        greedy = run_alone(e, reqs[:12], temperature=0.0)
    assert any(a["ids"] != g["ids"] for a, g in zip(alone, greedy))


def test_unseeded_requests_differ():
    prompt = [1, 300, 301]
    with ec.Engine() as e:
        c = ec.Client(e.addr)
        c.hello()
        rids = [c.add(prompt, temperature=1.0, max_tokens=32, ignore_eos=True) for _ in range(4)]
        c.wait(rids)
        outs = {tuple(c.result(r)["ids"]) for r in rids}
        c.close()
    assert len(outs) > 1


def test_n_choices_share_the_prompt_and_are_reproducible():
    prompt = workload(1, seed=3)[0][0] + [7] * 40
    with ec.Engine() as e:
        c = ec.Client(e.addr)
        c.hello()
        r1 = c.add(prompt, n=3, temperature=1.0, seed=99, max_tokens=24, ignore_eos=True)
        c.wait([r1])
        r2 = c.add(prompt, n=3, temperature=1.0, seed=99, max_tokens=24, ignore_eos=True)
        c.wait([r2])
        first = [c.result(r1, i)["ids"] for i in range(3)]
        second = [c.result(r2, i)["ids"] for i in range(3)]
        assert first == second
        assert len({tuple(x) for x in first}) == 3, "choices must draw independently"
        # the second request finds its prompt's full blocks in the prefix cache
        full = (len(prompt) - 1) // 16 * 16
        assert c.result(r2, 0)["cached_tokens"] == full
        c.close()


def test_tensor_parallel_2_gives_the_same_greedy_tokens():
    reqs = workload(24, seed=4)
    with ec.Engine() as e:
        one = run_crowd(e, reqs, temperature=0.0)
    with ec.Engine("--tensor-parallel-size", "2") as e:
        assert len(e.pids()) == 2, "rank 1 runs in its own process"
        two = run_crowd(e, reqs, temperature=0.0)
        assert "tensor-parallel 2" in e.stderr()
    for a, b in zip(one, two):
        assert a["ids"] == b["ids"]


def test_a_dead_rank_takes_the_engine_down():
    with ec.Engine("--tensor-parallel-size", "2") as e:
        pids = e.pids()
        c = ec.Client(e.addr)
        c.hello()
        c.add([1, 5, 6], temperature=0.0, max_tokens=400, ignore_eos=True)
        c.poll(200)
        os.kill(pids[1], signal.SIGKILL)
        e.proc.wait(10)  # exits loudly instead of hanging
        assert e.proc.returncode not in (0, None)
        c.close()


VANISHING_CLIENT = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
import engine_client as ec
c = ec.Client(sys.argv[1])
c.hello()
for i in range(8):
    c.add([1] + [5 + i] * 50, temperature=0.0, max_tokens=400, ignore_eos=True)
while not any(q["ids"] for q in c.seqs.values()):
    c.poll(20)
print("generating", flush=True)
time.sleep(60)
"""


def test_a_vanished_client_has_its_blocks_freed_within_a_second():
    with ec.Engine() as e:
        watcher = ec.Client(e.addr)
        watcher.hello()
        p = subprocess.Popen([sys.executable, "-c", VANISHING_CLIENT, e.addr,
                              os.path.dirname(ec.__file__)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "generating"
        watcher.stats.clear()
        watcher.send(w.heartbeat())
        while not watcher.stats:
            watcher.poll(20)
        assert watcher.stats[-1]["kv_blocks_used"] > 0 and watcher.stats[-1]["running"] == 8
        p.kill()
        p.wait()
        took = idle_stats(watcher, timeout=3.0)
        assert took is not None and took < 1.0, "blocks not freed in time (%s)" % took
        assert "disconnected" in e.stderr()
        watcher.close()


def test_abort_frees_blocks_and_stops_tokens():
    with ec.Engine() as e:
        c = ec.Client(e.addr)
        c.hello()
        rids = [c.add([1, 9, 10 + i] * 20, temperature=0.0, max_tokens=400, ignore_eos=True)
                for i in range(4)]
        while not all(c.result(r)["ids"] for r in rids):
            c.poll(20)
        c.abort(*rids[:3])
        c.poll(100)
        c.stats.clear()
        c.send(w.heartbeat())
        while not c.stats:
            c.poll(20)
        assert c.stats[-1]["running"] == 1 and c.stats[-1]["kv_blocks_used"] > 0
        c.abort(rids[3])
        assert idle_stats(c, timeout=2.0) is not None
        seen = {r: len(c.result(r)["ids"]) for r in rids}
        c.poll(300)
        assert {r: len(c.result(r)["ids"]) for r in rids} == seen
        c.close()


def test_engine_restart_is_seen_through_the_epoch():
    import tempfile
    d = tempfile.mkdtemp(prefix="kiln-e2e-")
    addr = "ipc://%s/restart.sock" % d
    first = ec.Engine(addr=addr)
    c = ec.Client(addr)
    h1 = c.hello()
    first.stop(kill=True)
    second = ec.Engine(addr=addr)
    try:
        deadline = time.time() + 15
        while len(c.hellos) < 2 and time.time() < deadline:
            c.send(w.heartbeat())
            c.poll(100)
        assert len(c.hellos) == 2, "no HELLO from the restarted engine"
        h2 = c.hellos[-1]
        assert h2["epoch"] != h1["epoch"] and h2["engine_id"] != h1["engine_id"]
        beats = [b for b in c.beats if b["epoch"] == h2["epoch"]]
        assert beats, "heartbeats carry the new epoch"
        rid = c.add([1, 2, 3], temperature=0.0, max_tokens=4, ignore_eos=True)
        c.wait([rid])
    finally:
        c.close()
        second.stop()


def test_logprobs_match_a_numpy_forward_pass():
    import reference
    model = reference.load(ec.STORIES)
    prompt = golden("golden_prompt_tom_and_sue.json")["prompt_ids"]
    with ec.Engine() as e:
        c = ec.Client(e.addr)
        c.hello()
        rid = c.add(prompt, temperature=0.0, max_tokens=12, ignore_eos=True, logprobs=5)
        c.wait([rid])
        r = c.result(rid)
        c.close()
    logits = reference.forward(model, prompt + r["ids"][:-1])[len(prompt) - 1:]
    logp = logits - logits.max(axis=1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    assert len(r["logprobs"]) == len(r["ids"]) == 12
    for k, (tok, (lp, tops)) in enumerate(zip(r["ids"], r["logprobs"])):
        assert tok == int(np.argmax(logits[k]))
        assert abs(lp - logp[k, tok]) < 1e-3
        want = np.argsort(-logp[k], kind="stable")[:5]
        assert [t for t, _ in tops] == list(want)
        for t, v in tops:
            assert abs(v - logp[k, t]) < 1e-3


def log_softmax(logits):
    x = logits - logits.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("flags", [(), ("--max-num-batched-tokens", "64")],
                         ids=["one-step", "chunked"])
def test_prompt_logprobs_match_a_numpy_forward_pass(flags):
    import reference
    prompt = workload(1, seed=6)[0][0][:1] + [random.Random(6).randrange(3, 512)
                                               for _ in range(299)]
    ref = log_softmax(reference.forward(reference.load(ec.STORIES), prompt))
    with ec.Engine(*flags) as e:
        c = ec.Client(e.addr)
        c.hello()
        warm = c.add(prompt, temperature=0.0, max_tokens=2)  # puts the prompt in the cache
        c.wait([warm])
        rid = c.add(prompt, n=2, temperature=0.0, max_tokens=3, prompt_logprobs=3)
        c.wait([rid])
        r = c.result(rid)
        assert "prompt_logprobs" not in c.result(rid, 1), "only the first choice carries them"
        assert c.result(rid, 1)["ids"] == r["ids"] == c.result(warm)["ids"] + r["ids"][2:]
        c.close()
    plp = r["prompt_logprobs"]
    assert len(plp) == len(prompt) - 1
    for p, (lp, tops) in enumerate(plp):
        assert abs(lp - ref[p, prompt[p + 1]]) < 1e-3
        want = np.argsort(-ref[p], kind="stable")[:3]
        assert [t for t, _ in tops] == list(want)


def test_prompt_logprobs_survive_preemption():
    reqs = [(prompt, 20) for prompt, _ in workload(12, seed=7) if len(prompt) > 20][:6]
    with ec.Engine() as e:
        alone = run_alone(e, reqs, temperature=0.0, prompt_logprobs=0, ignore_eos=True)
    with ec.Engine("--kv-cache-memory", str(24 * BLOCK_BYTES), "--max-model-len", "320",
                   "--max-num-batched-tokens", "48") as e:
        crowd = run_crowd(e, reqs, temperature=0.0, prompt_logprobs=0, ignore_eos=True)
    assert preemptions(e) > 0
    for (prompt, _), a, b in zip(reqs, alone, crowd):
        assert len(b["prompt_logprobs"]) == len(prompt) - 1
        assert b["ids"] == a["ids"]
        assert np.allclose([x for x, _ in a["prompt_logprobs"]],
                           [x for x, _ in b["prompt_logprobs"]], atol=1e-4)


def test_stop_token_ids_min_tokens_and_eos():
    g = golden("golden_prompt_once_upon_a_time.json")
    gen = g["generated_ids"]
    with ec.Engine() as e:
        c = ec.Client(e.addr)
        c.hello()
        stop_at = gen[5]
        r1 = c.add(g["prompt_ids"], temperature=0.0, max_tokens=64, stop=[stop_at])
        # min_tokens keeps the stop id from being chosen at first: a different continuation
        r2 = c.add(g["prompt_ids"], temperature=0.0, max_tokens=64, stop=[gen[0]], min_tokens=1)
        c.wait([r1, r2])
        a = c.result(r1)
        assert a["ids"] == gen[:gen.index(stop_at) + 1]
        assert a["finish"] == "stop" and a["stop_reason"] == stop_at
        b = c.result(r2)
        assert b["ids"][0] != gen[0]
        c.close()


def test_refusals_carry_a_reason():
    with ec.Engine("--max-waiting-seqs", "4", "--max-num-seqs", "2") as e:
        c = ec.Client(e.addr)
        c.hello()
        too_long = c.add([1] * 500, temperature=0.0, max_tokens=100)
        bad_id = c.add([1, CFG["vocab_size"]], temperature=0.0, max_tokens=4)
        many = [c.add([1, 4 + i], temperature=0.0, max_tokens=300, ignore_eos=True)
                for i in range(12)]
        c.wait([too_long, bad_id] + many, timeout=120)
        assert c.refused[too_long] == "invalid"
        assert c.refused[bad_id] == "invalid"
        assert sum(1 for r in many if c.refused.get(r) == "overloaded") >= 6
        assert sum(1 for r in many if r not in c.refused) >= 2
        c.close()


def test_drain_finishes_running_requests_and_refuses_new_ones():
    e = ec.Engine()
    c = ec.Client(e.addr)
    c.hello()
    rids = [c.add([1, 20 + i, 21], temperature=0.0, max_tokens=450, ignore_eos=True)
            for i in range(32)]
    while not all(c.result(r)["ids"] for r in rids):
        c.poll(20)
    e.proc.send_signal(signal.SIGTERM)
    while not any(b["state"] == "draining" for b in c.beats):
        c.send(w.heartbeat())
        c.poll(20)
    late = c.add([1, 22], temperature=0.0, max_tokens=4)
    c.wait(rids + [late], timeout=60)
    for r in rids:
        assert c.result(r)["finish"] == "length" and len(c.result(r)["ids"]) == 450
    assert c.refused[late] == "draining"
    assert e.proc.wait(20) == 0
    c.close()
    e.stop()


def test_garbage_on_the_socket_harms_no_request():
    rnd = random.Random(5)
    valid = w.add(1, [1, 2, 3], w.sampling(temperature=0.0, max_tokens=4))
    with ec.Engine() as e:
        bad = ec.Client(e.addr)
        for i in range(300):
            kind = i % 4
            if kind == 0:
                m = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 200)))
            elif kind == 1:  # a valid message cut short
                m = valid[:rnd.randrange(1, len(valid))]
            elif kind == 2:  # one byte flipped
                b = bytearray(valid)
                b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
                m = bytes(b)
            else:  # a huge count in a small message
                m = w.msg(w.ABORT, (2**31).to_bytes(4, "little"))
            bad.sock.send(m)
        time.sleep(0.2)  # what comes back to the garbage sender is not looked at
        good = ec.Client(e.addr)
        good.hello()
        rid = good.add(golden("golden_prompt_once_upon_a_time.json")["prompt_ids"],
                       temperature=0.0, max_tokens=64)
        good.wait([rid])
        assert good.result(rid)["ids"] == golden("golden_prompt_once_upon_a_time.json")["generated_ids"]
        assert e.proc.poll() is None
        good.close()
        bad.close()


@pytest.mark.parametrize("flags,words", [
    (("--kv-cache-memory", "lots"), "not a size"),
    (("--kv-cache-memory", "1000"), "cannot hold one sequence"),
    (("--tensor-parallel-size", "3"), "must divide"),
    (("--max-model-len", "100000"), "longer than the model"),
    (("--addr", "inproc://x"), "only ipc:// and tcp://"),
    (("--max-num-seqs", "0"), "max-num-seqs"),
    (("--bogus",), "bogus"),
])
def test_bad_flags_fail_at_start_with_a_reason(flags, words):
    p = subprocess.run([ec.KILN, "engine", "--model", ec.STORIES, "--addr",
                        "ipc:///tmp/kiln-e2e-bad.sock"] + list(flags),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode in (1, 2)
    assert words in p.stderr, p.stderr
    assert "ready" not in p.stdout


def test_a_missing_model_fails_at_start():
    p = subprocess.run([ec.KILN, "engine", "--model", "/nonexistent/model"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "/nonexistent/model" in p.stderr
