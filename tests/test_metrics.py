"""The metric arithmetic, checked exactly on scripted trials (fake backend, fake clock)."""

from __future__ import annotations

import math

import pytest

from poolscope.analysis.metrics import summarize
from poolscope.backends.fake import FakeClock, ScriptedItem, scripted_backend
from poolscope.frames import items_frame, melted_frame, trials_frame
from poolscope.measure.runner import make_chunks, run_trial

MS = 1_000_000


def usage_script(*readings: tuple[float, float]):
    """A tree_usage() that returns the given (own, children) CPU seconds in turn."""
    values = iter(readings)
    return lambda: next(values)


def scripted_trials():
    clock = FakeClock()
    serial = scripted_backend("serial", [
        ScriptedItem(10 * MS + i * 100 * MS, 10 * MS + (i + 1) * 100 * MS, 100 * MS)
        for i in range(4)], clock, family="serial")
    process = scripted_backend("process", [
        ScriptedItem(50 * MS, 150 * MS, 100 * MS, pid=11, tid=1, core=0),
        ScriptedItem(150 * MS, 250 * MS, 100 * MS, pid=11, tid=1, core=0),
        ScriptedItem(50 * MS, 150 * MS, 100 * MS, pid=12, tid=1, core=1),
        ScriptedItem(150 * MS, 250 * MS, 100 * MS, pid=12, tid=1, core=1),
    ], clock, teardown_ns=50 * MS)
    thread = scripted_backend("thread", [
        ScriptedItem(0, 100 * MS, 50 * MS, pid=1, tid=7),
        ScriptedItem(100 * MS, 200 * MS, 50 * MS, pid=1, tid=7),
        ScriptedItem(0, 100 * MS, 50 * MS, pid=1, tid=8),
        ScriptedItem(100 * MS, 200 * MS, 50 * MS, pid=1, tid=8, error="boom"),
    ], clock, family="thread")
    chunks = make_chunks(list(range(4)), 1)
    return [
        run_trial(0, serial, abs, 1, chunks, clock=clock,
                  tree_usage=usage_script((1.0, 0.0), (1.4, 0.0))),
        run_trial(1, process, abs, 2, chunks, clock=clock,
                  tree_usage=usage_script((1.4, 0.0), (1.45, 0.4))),
        run_trial(2, thread, abs, 2, chunks, clock=clock,
                  tree_usage=usage_script((2.0, 0.0), (2.2, 0.0))),
    ]


def test_trial_level_numbers_come_from_the_script():
    serial, process, thread = scripted_trials()
    assert serial.wall_s == pytest.approx(0.41)
    assert serial.startup_s == pytest.approx(0.01)
    assert serial.cpu_s == pytest.approx(0.4)
    assert process.wall_s == pytest.approx(0.30)
    assert process.startup_s == pytest.approx(0.05)
    assert process.teardown_s == pytest.approx(0.05)
    assert process.cpu_s == pytest.approx(0.05 + 0.4)  # parent + reaped workers
    assert process.status == "ok"
    assert thread.status == "partial"
    assert thread.errors == [{"executor": "thread", "item": 3, "kind": "ScriptedError",
                              "message": "boom"}]


def test_summary_arithmetic_is_exact():
    summary = summarize(trials_frame(scripted_trials()), cores=2).set_index("executor")
    s, p, t = summary.loc["serial"], summary.loc["process"], summary.loc["thread"]
    assert s.speedup == pytest.approx(1.0)
    assert p.speedup == pytest.approx(0.41 / 0.30)
    assert p.efficiency == pytest.approx(0.41 / 0.30 / 2)
    assert s.efficiency == pytest.approx(1.0)  # one worker: min(workers, cores) = 1
    assert p.parallelism == pytest.approx(0.4 / 0.30)
    assert p.cpu_parallelism == pytest.approx(0.4 / 0.30)
    assert p.offcpu_fraction == pytest.approx(0.0)
    assert p.cpu_utilization == pytest.approx(0.45 / (0.30 * 2))
    assert t.offcpu_fraction == pytest.approx(0.5)
    assert t.parallelism == pytest.approx(0.4 / 0.2)
    assert t.cpu_parallelism == pytest.approx(0.2 / 0.2)
    assert t.errors == 1
    assert p.throughput == pytest.approx(4 / 0.30)
    assert p.startup_s == pytest.approx(0.05)
    assert p.teardown_s == pytest.approx(0.05)
    assert math.isnan(p.wall_ci_lo)  # one trial: no interval


def test_items_frame_has_the_design_columns_and_lanes():
    items = items_frame(scripted_trials())
    for column in ("item", "start_s", "end_s", "wall_s", "cpu_s", "pid", "tid", "host",
                   "core", "status", "error"):
        assert column in items.columns
    process = items[items["executor"] == "process"].sort_values("item")
    assert process["lane"].tolist() == [0, 0, 1, 1]
    assert process["start_s"].tolist() == pytest.approx([0.05, 0.15, 0.05, 0.15])
    failed = items[items["status"] == "error"]
    assert failed["item"].tolist() == [3]
    assert failed["error"].tolist() == ["ScriptedError: boom"]


def test_melted_frame_is_the_notebooks_view():
    melted = melted_frame(scripted_trials())
    assert list(melted.columns) == ["variable", "value", "type"]
    process = melted[melted["type"] == "process"]
    assert sorted(process["variable"].unique()) == ["worker  0", "worker  1"]
    # normalised per type: the first item of each type starts at 0, values are finish times
    assert sorted(process["value"]) == pytest.approx([0.1, 0.1, 0.2, 0.2])


def test_a_failed_trial_is_kept_out_of_the_metrics_and_the_recommendation():
    from poolscope.analysis.recommend import recommend
    from poolscope.backends.fake import ScriptedBackend

    clock = FakeClock()
    serial = scripted_backend("serial", [ScriptedItem(0, 100 * MS, 100 * MS)] * 2, clock,
                              family="serial")

    class Broken(ScriptedBackend):
        name = "broken"
        script = (ScriptedItem(0, 10 * MS, 10 * MS),)

        def run(self, chunks):
            yield from super().run(chunks[:1])
            raise RuntimeError("the pool broke")

    Broken.clock = clock
    chunks = make_chunks([0, 1], 1)
    trials = [run_trial(0, serial, abs, 1, chunks, clock=clock),
              run_trial(1, Broken, abs, 2, chunks, clock=clock)]
    assert trials[1].status == "failed" and len(trials[1].items) == 1  # what finished is kept
    assert trials[1].errors == [{"executor": "broken", "item": None, "kind": "RuntimeError",
                                 "message": "the pool broke"}]
    frame = trials_frame(trials)
    summary = summarize(frame, cores=2).set_index("executor")
    assert summary.loc["broken", "trials"] == 0
    assert math.isnan(summary.loc["broken", "wall_s"])
    assert summary.loc["broken", "errors"] == 1 and summary.loc["broken", "failed_trials"] == 1
    assert recommend(summary.reset_index(), frame, cores=2).executor == "serial"


def test_another_interpreters_speedup_is_against_its_own_serial():
    import pandas as pd

    from poolscope.analysis.metrics import summarize

    def rows(executor: str, workers: int, wall: float) -> list[dict]:
        return [{"executor": executor, "workers": workers, "chunksize": 1, "status": "ok",
                 "wall_s": wall * f, "cpu_s": wall, "items": 10, "parallelism": 1.0,
                 "cpu_parallelism": 1.0, "offcpu_fraction": 0.0, "startup_s": 0.0,
                 "teardown_s": 0.0, "peak_rss": 0, "errors": 0} for f in (0.99, 1.0, 1.01)]

    py313 = "/opt/python3.13/bin/python"
    trials = pd.DataFrame(rows("serial", 1, 1.0) + rows("thread", 2, 0.5)
                          + rows(f"serial@{py313}", 1, 2.0) + rows(f"thread@{py313}", 2, 0.5)
                          + rows("process@/elsewhere/python", 2, 0.25))
    speedup = summarize(trials, cores=2).set_index("executor")["speedup"]
    assert speedup["thread"] == pytest.approx(2.0)
    assert speedup[f"serial@{py313}"] == pytest.approx(1.0)
    assert speedup[f"thread@{py313}"] == pytest.approx(4.0)  # against serial@ the same python
    assert speedup["process@/elsewhere/python"] == pytest.approx(4.0)  # no serial@ there
