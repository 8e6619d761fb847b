"""Runs the C side for the model tests: $KILN_BUILD/tests/model/forward_runner and
$KILN_BUILD/kiln generate. A missing binary fails the test (CI builds both before the tests
run), with a message saying what to build."""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT = 120


def build_dir():
    return ROOT / os.environ.get("KILN_BUILD", "build")


def _binary(rel):
    exe = build_dir() / rel
    if not exe.exists():
        pytest.fail(f"{exe} is missing: run make first (KILN_BUILD={build_dir()})", pytrace=False)
    return str(exe)


def runner_path():
    return _binary("tests/model/forward_runner")


def kiln_path():
    return _binary("kiln")


def run_runner_raw(model_dir, request, threads=None, block_size=None):
    """CompletedProcess of forward_runner on request (a dict, or str/bytes sent verbatim)."""
    args = [runner_path(), str(model_dir)]
    if threads is not None:
        args += ["--threads", str(threads)]
    if block_size is not None:
        args += ["--block-size", str(block_size)]
    if isinstance(request, dict):
        request = json.dumps(request)
    if isinstance(request, str):
        request = request.encode()
    return subprocess.run(args, input=request, capture_output=True, timeout=TIMEOUT)


def run_runner(model_dir, steps, num_blocks=None, shuffle_blocks=None, threads=None,
               block_size=None):
    """Runs the steps; returns the output's "steps" with each chunk's logits as a float64
    array [rows, vocab]. Fails the test (showing stderr) on a non-zero exit."""
    request = {"steps": steps}
    if num_blocks is not None:
        request["num_blocks"] = num_blocks
    if shuffle_blocks is not None:
        request["shuffle_blocks"] = shuffle_blocks
    p = run_runner_raw(model_dir, request, threads=threads, block_size=block_size)
    assert p.returncode == 0, (
        f"forward_runner exited {p.returncode} on {model_dir}:\n{p.stderr.decode(errors='replace')}"
    )
    out = json.loads(p.stdout)
    assert len(out["steps"]) == len(steps), "one output step per input step"
    result = []
    for step_in, step_out in zip(steps, out["steps"]):
        assert len(step_out) == len(step_in), "one output entry per chunk, in input order"
        chunks = []
        for cin, cout in zip(step_in, step_out):
            assert cout["seq"] == cin["seq"]
            rows = np.asarray(cout["logits"], dtype=np.float64)
            mode = cin.get("logits", "last")
            want = {"all": len(cin["ids"]), "last": 1, "none": 0}[mode]
            assert len(cout["logits"]) == want, f"logits={mode} over {len(cin['ids'])} ids"
            chunks.append({"seq": cout["seq"], "logits": rows})
        result.append(chunks)
    return result


def rows_by_position(steps, result):
    """{seq: {position: logit row}} for every row the runner returned ("all" and "last")."""
    length = {}
    rows = {}
    for step_in, step_out in zip(steps, result):
        for cin, cout in zip(step_in, step_out):
            s = cin["seq"]
            start = length.get(s, 0)
            n = len(cin["ids"])
            mode = cin.get("logits", "last")
            if mode == "all":
                positions = range(start, start + n)
            elif mode == "last":
                positions = [start + n - 1]
            else:
                positions = []
            for pos, row in zip(positions, cout["logits"]):
                rows.setdefault(s, {})[pos] = row
            length[s] = start + n
    return rows


def run_kiln(args, timeout=TIMEOUT):
    """(returncode, stdout, stderr) of `kiln ARGS`."""
    p = subprocess.run([kiln_path()] + [str(a) for a in args], capture_output=True,
                       timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", errors="replace"), p.stderr.decode(
        "utf-8", errors="replace")


def assert_close_rows(got, want, tol, what=""):
    """Every row of got within relative error tol (max|a-b| / max|b|) of the matching row."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = np.max(np.abs(got - want), axis=-1) / np.max(np.abs(want), axis=-1)
    worst = int(np.argmax(err))
    assert err[worst] < tol, f"{what}: row {worst} relative error {err[worst]:.3g} >= {tol}"
    return float(err[worst])
