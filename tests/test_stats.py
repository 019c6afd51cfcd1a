"""Statistics checked on samples from known distributions, and the verdict rules."""

from __future__ import annotations

import numpy as np
import pytest

from poolscope.analysis.stats import compare_samples, median_ci, modified_z, ratio_ci


@pytest.mark.parametrize(("name", "draw", "true_median"), [
    ("normal", lambda rng, n: rng.normal(10.0, 1.0, n), 10.0),
    ("lognormal", lambda rng, n: rng.lognormal(0.0, 0.5, n), 1.0),
])
def test_median_interval_covers_close_to_95_percent(name, draw, true_median):
    rng = np.random.default_rng(42)
    hits = 0
    runs = 300
    for seed in range(runs):
        lo, hi = median_ci(draw(rng, 30), resamples=500, seed=seed)
        hits += lo <= true_median <= hi
    assert 0.88 <= hits / runs <= 0.99, hits / runs


def test_ratio_interval_covers_the_true_ratio():
    rng = np.random.default_rng(7)
    hits = 0
    runs = 200
    for seed in range(runs):
        a = rng.normal(2.0, 0.1, 30)
        b = rng.normal(1.0, 0.05, 30)
        lo, hi = ratio_ci(a, b, resamples=500, seed=seed)
        hits += lo <= 2.0 <= hi
    assert 0.88 <= hits / runs <= 0.99, hits / runs


def test_no_interval_from_one_sample():
    assert median_ci([1.0]) is None
    assert ratio_ci([1.0, 2.0], [1.0]) is None


def test_modified_z_flags_only_the_outlier():
    z = modified_z([1.0, 1.02, 0.98, 1.01, 0.99, 3.0])
    assert (np.abs(z) > 3.5).tolist() == [False] * 5 + [True]
    assert modified_z([2.0, 2.0, 2.0]).tolist() == [0.0, 0.0, 0.0]


def test_verdicts():
    rng = np.random.default_rng(3)
    fast, slow = rng.normal(1.0, 0.02, 9), rng.normal(1.8, 0.02, 9)
    faster = compare_samples("A", fast, "B", slow)
    assert faster.verdict == "faster"
    assert faster.sentence().startswith("A is 1.8") and "(95% CI 1.7" in faster.sentence()
    assert compare_samples("B", slow, "A", fast).verdict == "slower"
    same = compare_samples("A", fast, "C", fast[::-1] * 1.001)
    assert same.verdict == "no measurable difference"
    assert same.sentence().startswith("no measurable difference between A and C")
    single = compare_samples("A", [1.0], "B", [2.0])
    assert single.verdict == "unknown" and "no verdict" in single.sentence()
