"""The classification rules, on scripted trials from the fake backend (no real executor)."""

from __future__ import annotations

import pytest

from poolscope.analysis.classify import classify
from poolscope.analysis.metrics import summarize
from poolscope.backends.fake import FakeClock, ScriptedItem, scripted_backend
from poolscope.frames import items_frame, trials_frame
from poolscope.measure.runner import make_chunks, run_trial

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


# --- rule 0: native threads computing beside the item's own thread ------------------------------

def _native(threads: int) -> dict:
    pool = {"user_api": "blas", "internal_api": "openblas", "prefix": "libopenblas",
            "num_threads": threads}
    return {"executors": {"serial": {"pools": [pool]}}}


def _with_process_cpu(summary, ratio: float):
    """The serial trial's process CPU set to ``ratio`` × its wall (8 items back to back)."""
    summary = summary.copy()
    serial = summary["executor"] == "serial"
    summary.loc[serial, "cpu_s"] = ratio * summary.loc[serial, "wall_s"]
    return summary


@pytest.mark.parametrize(("case", "args", "ratio", "threads", "kind"), [
    # OpenBLAS on 2 threads: the item's thread computes all along, the other one beside it
    ("BLAS on two threads", (10 * MS, 10 * MS, 80 * MS, 40 * MS), 1.9, 2, "native-threaded"),
    # a loaded machine: the item's thread waits for its BLAS threads, which looks like I/O
    ("waiting for its own threads", (10 * MS, 3 * MS, 80 * MS, 40 * MS), 0.6, 2,
     "native-threaded"),
    ("capped at one thread", (10 * MS, 10 * MS, 80 * MS, 40 * MS), 1.0, 1, "cpu-bound"),
    ("a pool loaded, idle", (10 * MS, 1 * MS, 40 * MS, 40 * MS), 0.12, 2, "io-bound"),
    ("no pool", (10 * MS, 10 * MS, 80 * MS, 40 * MS), 1.9, 0, "cpu-bound"),
    ("tiny items", (20 * US, 20 * US, 200 * US, 900 * US), 1.9, 2, "overhead-bound"),
])
def test_native_threads_rule(case, args, ratio, threads, kind):
    summary, items = scripted_run(*args)
    native = _native(threads) if threads else None
    result = classify(_with_process_cpu(summary, ratio), items, FAMILIES, native=native)
    assert result.kind == kind, (case, result.evidence)
    if kind == "native-threaded":
        line = result.evidence[-1]
        assert line.startswith(f"items used {ratio:.1f}× their wall time in CPU, ")
        assert "native threads (OpenBLAS, 2 threads)" in line and "--native-threads 1" in line
