"""The classification rules, on scripted trials from the fake backend (no real executor)."""

from __future__ import annotations

import pytest

from poolscope.analysis.classify import classify
from poolscope.analysis.metrics import summarize
from poolscope.backends.fake import FakeClock, ScriptedItem, scripted_backend
from poolscope.frames import items_frame, trials_frame
from poolscope.runner import make_chunks, run_trial

MS = 1_000_000
US = 1_000
FAMILIES = {"serial": "serial", "thread": "thread", "process": "process"}


def scripted_run(item_wall: int, item_cpu: int, thread_wall_total: int,
                 process_wall_total: int, n: int = 8):
    """Serial items back to back; thread and process trials finishing at the given times."""
    clock = FakeClock()

    def backend(name, family, total, workers):
        per_lane = n // workers
        step = total // per_lane
        script = [ScriptedItem(lane_item * step, (lane_item + 1) * step,
                               item_cpu, pid=lane + 10, tid=lane + 1)
                  for lane in range(workers) for lane_item in range(per_lane)]
        return scripted_backend(name, script, clock, family=family)

    chunks = make_chunks(list(range(n)), 1)
    trials = [run_trial(0, backend("serial", "serial", item_wall * n, 1), abs, 1, chunks,
                        clock=clock),
              run_trial(1, backend("thread", "thread", thread_wall_total, 2), abs, 2, chunks,
                        clock=clock),
              run_trial(2, backend("process", "process", process_wall_total, 2), abs, 2,
                        chunks, clock=clock)]
    return summarize(trials_frame(trials), cores=2), items_frame(trials)


@pytest.mark.parametrize(("case", "args", "transfer", "kind"), [
    ("holds the GIL", (10 * MS, 10 * MS, 80 * MS, 40 * MS), None, "cpu-bound"),
    ("threads scale", (10 * MS, 10 * MS, 40 * MS, 40 * MS), None, "gil-releasing"),
    # 1.33× "faster" than serial, yet only 1.13 items computing at once: the GIL held, the
    # baseline was slow (noise), not the threads parallel.
    ("threads one at a time", (10 * MS, 8_500 * US, 60 * MS, 40 * MS), None, "cpu-bound"),
    ("mostly waiting", (10 * MS, 1 * MS, 40 * MS, 40 * MS), None, "io-bound"),
    ("some waiting", (10 * MS, 7 * MS, 80 * MS, 50 * MS), None, "mixed"),
    ("tiny items", (20 * US, 20 * US, 200 * US, 900 * US), None, "overhead-bound"),
    ("big arguments", (1 * MS, 1 * MS, 8 * MS, 30 * MS), (8 << 20, 3e-3), "transfer-bound"),
    ("big but cheap to move", (10 * MS, 10 * MS, 80 * MS, 40 * MS), (8 << 20, 1e-3),
     "cpu-bound"),
])
def test_rules(case, args, transfer, kind):
    summary, items = scripted_run(*args)
    bytes_, seconds = transfer if transfer else (None, None)
    result = classify(summary, items, FAMILIES, bytes_, seconds)
    assert result.kind == kind, (case, result.evidence)
    assert any("off the CPU" in line for line in result.evidence)


def test_no_baseline_is_unknown():
    summary, items = scripted_run(10 * MS, 10 * MS, 80 * MS, 40 * MS)
    summary = summary[summary["executor"] != "serial"]
    assert classify(summary, items, FAMILIES).kind == "unknown"
