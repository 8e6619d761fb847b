"""The sampler's empirical distributions against NumPy.

tests/model/sampler_driver draws N tokens (distinct positions, fixed seed, so the run is
deterministic) from a small hand-built logits vector; NumPy computes the distribution vLLM V1
defines for the same parameters: logits / temperature, softmax, min_p (p >= min_p * p_max),
top_k (ties to the lower id), top_p over the renormalised survivors (keep a token while the
mass before it is < top_p), renormalise. Excluded ids must never be drawn; the kept ones must
pass a chi-square test at significance 1e-6 (a real bug, e.g. a lost temperature or an
off-by-one in top_p, moves the statistic by hundreds).
"""
import math
import os
import pathlib
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
N_DRAWS = 20000
LOGITS = np.array([2.0, 1.5, 1.2, 1.0, 0.8, 0.3, 0.0, -0.5, -1.0, -2.0, 0.5, 1.1], np.float32)


def driver():
    exe = ROOT / os.environ.get("KILN_BUILD", "build") / "tests/model/sampler_driver"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: run make first", pytrace=False)
    return exe


def draw(logits, temperature, top_k, top_p, min_p, seed, n=N_DRAWS):
    head = f"{len(logits)} {temperature!r} {top_k} {top_p!r} {min_p!r} {n} {seed}\n"
    body = " ".join(repr(float(x)) for x in logits)
    p = subprocess.run([driver()], input=(head + body).encode(), capture_output=True, check=True)
    counts = np.array([int(x) for x in p.stdout.split()], np.int64)
    assert counts.shape == (len(logits),) and counts.sum() == n
    return counts


def target(logits, temperature, top_k, top_p, min_p):
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    keep = np.ones(len(p), bool)
    if min_p > 0:
        keep &= p >= min_p * p.max()
    order = np.lexsort((np.arange(len(p)), -z))  # descending, ties to the lower id
    if top_k > 0:
        ranked = [i for i in order if keep[i]]
        keep[:] = False
        keep[ranked[:top_k]] = True
    if top_p < 1:
        q = np.where(keep, p, 0) / np.where(keep, p, 0).sum()
        before = 0.0
        for i in order:
            if not keep[i]:
                continue
            # the test is only meaningful away from the rounding boundary
            assert abs(before - top_p) > 1e-5
            if before >= top_p:
                keep[i] = False
            before += q[i]
    out = np.where(keep, p, 0)
    return out / out.sum()


def chi2_threshold(df, z=4.753):  # one-sided 1e-6, Wilson-Hilferty
    a = 2.0 / (9 * df)
    return df * (1 - a + z * math.sqrt(a)) ** 3


CASES = [
    # temperature, top_k, top_p, min_p
    (0.7, 0, 1.0, 0.0),
    (1.3, 0, 1.0, 0.0),
    (0.7, 5, 1.0, 0.0),
    (0.7, 0, 0.8, 0.0),
    (0.7, 0, 1.0, 0.1),
    (1.0, 6, 0.9, 0.05),
    (0.7, 8, 0.75, 0.02),
]


@pytest.mark.parametrize("temperature,top_k,top_p,min_p", CASES)
def test_distribution_matches_numpy(temperature, top_k, top_p, min_p):
    want = target(LOGITS, temperature, top_k, top_p, min_p)
    got = draw(LOGITS, temperature, top_k, top_p, min_p, seed=12345)
    excluded = want == 0
    assert got[excluded].sum() == 0, f"excluded ids drawn: {np.nonzero(got * excluded)[0]}"
    kept = ~excluded
    expected = want[kept] * N_DRAWS
    stat = float((((got[kept] - expected) ** 2) / expected).sum())
    df = int(kept.sum()) - 1
    if df == 0:
        return
    assert stat < chi2_threshold(df), f"chi2 {stat:.1f} (df {df}): {got} vs {want * N_DRAWS}"


# 1500 ids: top_k above 1024 takes the quickselect path, top_p alone the pruning path
BIG = np.random.default_rng(2024).normal(0, 1.0, 1500).astype(np.float32)
# one id holding half the mass and 1499 equal ones: top_p 0.9 keeps the 1199 lowest of those,
# every one below the mean weight
HEAD_TAIL = np.array([math.log(1499.0)] + [0.0] * 1499, np.float32)
BIG_CASES = [
    (BIG, 1.0, 1200, 0.7, 0.0),
    (BIG, 0.8, 0, 0.6, 0.0),
    (BIG, 1.0, 0, 0.8, 0.15),
    (HEAD_TAIL, 1.0, 0, 0.9, 0.0),
]


@pytest.mark.parametrize("logits,temperature,top_k,top_p,min_p", BIG_CASES)
def test_large_vocab_distribution_matches_numpy(logits, temperature, top_k, top_p, min_p):
    want = target(logits, temperature, top_k, top_p, min_p)
    got = draw(logits, temperature, top_k, top_p, min_p, seed=99, n=40000)
    excluded = want == 0
    assert got[excluded].sum() == 0, f"excluded ids drawn: {np.nonzero(got * excluded)[0]}"
    kept = ~excluded
    expected = want[kept] * 40000
    assert expected.min() > 5  # the chi-square approximation holds
    stat = float((((got[kept] - expected) ** 2) / expected).sum())
    df = int(kept.sum()) - 1
    assert stat < chi2_threshold(df), f"chi2 {stat:.1f} (df {df})"


def test_seed_reproducible_and_seeds_differ():
    a = draw(LOGITS, 1.0, 0, 1.0, 0.0, seed=7, n=2000)
    b = draw(LOGITS, 1.0, 0, 1.0, 0.0, seed=7, n=2000)
    c = draw(LOGITS, 1.0, 0, 1.0, 0.0, seed=8, n=2000)
    assert (a == b).all()
    assert not (a == c).all()


def test_reference_itself():
    """The reference on hand-computed cases: 4 tokens with probabilities 0.5, 0.3, 0.15, 0.05."""
    lg = np.log(np.array([0.5, 0.3, 0.15, 0.05], np.float32))
    np.testing.assert_allclose(target(lg, 1.0, 2, 1.0, 0.0), [0.625, 0.375, 0, 0], atol=1e-6)
    np.testing.assert_allclose(target(lg, 1.0, 0, 0.7, 0.0), [0.625, 0.375, 0, 0], atol=1e-6)
    np.testing.assert_allclose(
        target(lg, 1.0, 0, 1.0, 0.2), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0], atol=1e-6
    )
