"""kiln bench's statistics against NumPy's (np.mean, np.median, np.std, np.percentile with
the default linear method), as vLLM computes them, on random data of many sizes."""
import os
import subprocess

import numpy as np
import pytest

BUILD = os.environ.get("KILN_BUILD", "build")
TOOL = os.path.join(BUILD, "tests", "benchserve", "tool_stats")
PCTS = [0, 1, 25, 50, 90, 99, 99.9, 100]


def run_tool(values):
    text = "\n".join(repr(float(v)) for v in values) + "\n"
    out = subprocess.run([TOOL, ",".join(str(p) for p in PCTS)], input=text,
                         capture_output=True, text=True, check=True).stdout.split()
    return [float(x) for x in out]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 16, 127, 128, 129, 300, 1000, 4099])
def test_statistics_match_numpy(n):
    rng = np.random.default_rng(n)
    for values in (rng.exponential(0.05, n), rng.normal(3, 1, n), rng.integers(0, 5, n) * 0.1):
        values = [float(v) for v in values]
        got = run_tool(values)
        want = [np.mean(values), np.median(values), np.std(values)]
        want += [np.percentile(values, p) for p in PCTS]
        # percentiles and medians are exact; sums may differ from NumPy's SIMD order in
        # the last bits
        for g, w, name in zip(got, want, ["mean", "median", "std"] + PCTS):
            assert g == pytest.approx(float(w), rel=1e-13, abs=1e-15), (name, n)
        for g, w in zip(got[3:], want[3:]):
            assert g == float(w), (n, PCTS)


def test_empty_is_numpy_on_zero():
    got = run_tool([])
    assert got == [0.0] * (3 + len(PCTS))
