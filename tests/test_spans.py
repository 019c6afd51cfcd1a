"""Items too short to time one by one are timed in spans (probe.py), and spread back per item."""

from __future__ import annotations

import statistics
import time

import numpy as np
import pytest

import fault_workloads as faults
import poolscope
from poolscope.api import run_workload
from poolscope.measure.probe import STATUS_ERROR, Chunk, run_chunk, span_length
from poolscope.measure.runner import Plan, run_plan
from poolscope.model import ItemColumns
from poolscope.store import RunStore
from poolscope.workloads import Workload


def tiny(item: int) -> int:
    return sum(range(item % 7, 40))


def raise_every_thousand(item: int) -> int:
    if item % 1000 == 5:
        raise ValueError(f"item {item} is bad")
    return item


def test_short_items_are_timed_in_spans_that_add_up_per_item():
    record = run_chunk(tiny, Chunk(100, list(range(20_000))))
    assert record.spans, "1 µs items must be timed in spans"
    pairs = np.frombuffer(record.spans, np.int64).reshape(-1, 2)
    assert (pairs[:, 1] > 1).all()
    columns = ItemColumns.from_chunks([record], 0)
    assert columns.item.tolist() == list(range(100, 20_100))
    wall = columns.end_ns - columns.start_ns
    assert (wall >= 0).all() and (np.diff(columns.start_ns) >= 0).all()
    assert (columns.span > 1).mean() > 0.99  # only the first item(s) were timed alone
    for first, count in pairs:
        # Each span's items cover its measured edges exactly, and its CPU is all handed out.
        assert columns.start_ns[first] == record.start_ns[first]
        assert columns.end_ns[first + count - 1] == record.end_ns[first + count - 1]
        assert wall[first:first + count].sum() == (record.end_ns[first + count - 1]
                                                   - record.start_ns[first])
        assert (columns.span[first:first + count] == count).all()
        assert (columns.core[first:first + count] == record.core[first]).all()
    assert columns.cpu_ns.sum() == record.cpu_marks_ns[-1] - record.cpu_marks_ns[0]
    assert [r for r in record.results[:3]] == [tiny(0), tiny(1), tiny(2)]


def test_items_long_enough_are_each_timed_alone():
    record = run_chunk(time.sleep, Chunk(0, [0.002] * 20))
    assert record.spans is None
    columns = ItemColumns.from_chunks([record], 0)
    assert (columns.span == 1).all()
    assert ((columns.end_ns - columns.start_ns) >= 2_000_000).all()


def test_the_span_grows_as_items_shrink_and_is_one_for_long_items():
    assert span_length(50_000_000) == 1
    assert span_length(10_000) < span_length(1_000) <= span_length(100)


def test_a_failure_inside_a_span_is_its_own_items():
    record = run_chunk(raise_every_thousand, Chunk(0, list(range(5_000))))
    assert record.spans
    assert [e[0] for e in record.errors] == [5, 1005, 2005, 3005, 4005]
    assert np.flatnonzero(np.frombuffer(record.status, np.int8) == STATUS_ERROR).tolist() == [
        5, 1005, 2005, 3005, 4005]
    assert record.results[6] == 6 and record.results[5] is None


@pytest.mark.parametrize("name", ["process", "thread"])
def test_a_fault_inside_a_span_names_its_item(name):
    """Chunks of 3,000 short items: item 3 ends its process (or raises) in the middle of a
    span, and the board still names it."""
    fn = faults.os_exit_on_three if name == "process" else faults.raise_on_three
    items = [0, 1, 2, 3, *range(4, 3_000)]
    trials, _ = run_plan(Workload(fn=fn, items=items, target=fn.__name__),
                         Plan(executors=(name,), workers=(2,), chunksize=1_500))
    (trial,) = [t for t in trials if t.executor == name]
    named = [e for e in trial.errors if e["item"] is not None]
    assert [e["item"] for e in named] == [3], trial.errors
    kept = trial.items.item[trial.items.status == 0]
    assert len(kept) == len(items) - 1 and 3 not in kept


def test_spans_are_kept_in_the_store(tmp_path):
    with RunStore(tmp_path / "runs.db") as store:
        result = run_workload(Workload(fn=tiny, items=list(range(20_000)), target="tiny"),
                              executors="serial", repeat=1, store=store)
    again = poolscope.load(result.run_id, store=tmp_path / "runs.db")
    assert (result.items["span"] > 1).mean() > 0.9
    assert again.items["span"].tolist() == result.items["span"].tolist()
    assert np.allclose(again.items["wall_s"], result.items["wall_s"])


def test_a_serial_trial_of_short_items_costs_about_what_a_bare_loop_does():
    """Timing 1 µs items one by one made serial 3-4x a bare loop (and so two processes,
    which split that cost, looked faster than serial: the truth suite's tiny). Spans bring
    it near the loop; the margin is wide for a shared machine."""
    items = list(range(100_000))
    bare = []
    for _ in range(5):
        began = time.perf_counter()
        [tiny(item) for item in items]
        bare.append(time.perf_counter() - began)
    result = poolscope.compare(tiny, items, executors=["serial"], repeat=5)
    ratio = statistics.median(result.trials["wall_s"]) / statistics.median(bare)
    assert ratio < 1.8, f"serial trial {ratio:.2f}x a bare loop"
