"""The concurrency step function and its exact binned means."""

from __future__ import annotations

import numpy as np
import pytest

from poolscope.frames import concurrency, concurrency_binned


def test_steps_count_items_in_progress() -> None:
    times, level = concurrency(np.array([0.0, 0.0, 1.0]), np.array([2.0, 1.0, 3.0]))
    assert times.tolist() == [0.0, 1.0, 2.0, 3.0]
    # At t=1 one item ends and another starts: one step, level stays 2.
    assert level.tolist() == [2.0, 2.0, 1.0, 0.0]


def test_weights_give_items_computing() -> None:
    _, level = concurrency(np.array([0.0, 1.0]), np.array([1.0, 2.0]), np.array([0.5, 0.25]))
    assert level.tolist() == [0.5, 0.25, 0.0]


def test_binned_mean_equals_area_of_the_steps() -> None:
    rng = np.random.default_rng(3)
    start = rng.uniform(0, 10, 500)
    end = start + rng.exponential(0.5, 500)
    edges = np.linspace(0, float(end.max()), 37)
    means = concurrency_binned(start, end, edges)
    # Total area = Σ item durations, whatever the binning.
    assert np.sum(means * np.diff(edges)) == pytest.approx(float(np.sum(end - start)), rel=1e-9)
    # A bin that lies inside one long item's span only sees that item.
    one = concurrency_binned(np.array([0.0]), np.array([4.0]), np.array([1.0, 2.0, 5.0]))
    assert one.tolist() == pytest.approx([1.0, 2.0 / 3.0])


def test_empty_input() -> None:
    times, level = concurrency(np.zeros(0), np.zeros(0))
    assert len(times) == len(level) == 0
    assert concurrency_binned(np.zeros(0), np.zeros(0), np.array([0.0, 1.0])).tolist() == [0.0]
