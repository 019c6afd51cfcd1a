"""The run history's speed: storing a 1,000,000-item trial, and listing 10,000 runs.

- **store a trial**: one serial trial of 1,000,000 `tiny` items is run with its chunk records
  kept (runner.make_chunks with the default chunking, 4 chunks, and with chunks of 1,000 items,
  1,000 chunks: a pool's worst case), then written as a run does — begin_run, add_chunk per
  chunk (each its own transaction), end_trial, end_run — into a fresh store file. Timed: the
  writes only. Then read back whole with load(). Goal: store in ≤ 3 s.
- **history**: 10,000 runs inserted through begin_run/end_run into a fresh store, then
  ``history()`` over all of them (no limit), as ``poolscope history --limit 0`` would. Goal:
  ≤ 0.5 s.

Run: ``python benchmarks/bench_store.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from _common import Check, console, machine_line, print_checks
from poolscope.backends import get_backend
from poolscope.environment import collect_environment
from poolscope.measure.probe import ChunkRecord
from poolscope.measure.runner import make_chunks, run_trial
from poolscope.result import Result
from poolscope.store import RunStore
from poolscope.workloads import resolve_workload

ITEMS = 1_000_000
RUNS = 10_000


def store_trial(folder: Path, chunksize: int) -> tuple[float, float, int]:
    workload = resolve_workload("tiny", ITEMS)
    records: list[ChunkRecord] = []
    trial = run_trial(0, get_backend("serial"), workload.fn, 1,
                      make_chunks(list(workload.items), chunksize),
                      on_chunk=lambda index, record: records.append(record))
    env = collect_environment()
    path = folder / f"trial-{chunksize}.db"
    t0 = time.perf_counter()
    with RunStore(path) as store:
        store.begin_run("bench", "2026-01-01T00:00:00+00:00", "tiny", ITEMS, ["serial"], env, {})
        for record in records:
            store.add_chunk("bench", 0, record)
        store.end_trial("bench", trial)
        result = Result(run_id="bench", target="tiny", n_items=ITEMS, trial_results=[trial],
                        environment=env, options={})
        store.end_run(result)
    written = time.perf_counter() - t0
    t1 = time.perf_counter()
    with RunStore(path) as store:
        loaded = store.load("bench")
    read = time.perf_counter() - t1
    assert len(loaded.trial_results[0].items) == ITEMS
    return written, read, path.stat().st_size


def history(folder: Path) -> float:
    env = collect_environment()
    path = folder / "history.db"
    with RunStore(path) as store:
        store.db.execute("BEGIN")  # bulk set-up in one transaction; not what is timed
        for i in range(RUNS):
            store.db.execute(
                "INSERT INTO runs (run_id, started_at, target, status, n_items, executors, "
                "best, environment, options, pid, host) VALUES (?, ?, ?, 'complete', 40, "
                "'serial,thread,process', 'process ×2', ?, '{}', 1, 'bench')",
                (f"run-{i:05d}", f"2026-01-01T00:{i // 600:02d}:{i // 10 % 60:02d}+00:00",
                 "cpu" if i % 2 else "io", __import__("json").dumps(env)))
        store.db.execute("COMMIT")
    times = []
    for _ in range(3):
        with RunStore(path) as store:
            t0 = time.perf_counter()
            rows = store.history(limit=None)
            times.append(time.perf_counter() - t0)
        assert len(rows) == RUNS
    return sorted(times)[1]


def main() -> int:
    console.print(f"bench_store: {machine_line()}")
    checks = []
    with tempfile.TemporaryDirectory() as folder:
        for chunksize, label in ((250_000, "4 chunks"), (1_000, "1,000 chunks")):
            written, read, size = store_trial(Path(folder), chunksize)
            console.print(f"1,000,000-item trial in {label}: stored in {written:.2f} s, "
                          f"loaded in {read:.2f} s, {size / ITEMS:.1f} B per item on disk")
            checks.append(Check(f"store a 1,000,000-item trial ({label})", f"{written:.2f} s",
                                "≤ 3 s", written <= 3.0))
            checks.append(Check(f"load it back ({label})", f"{read:.2f} s", "—", None))
        listed = history(Path(folder))
        checks.append(Check(f"history over {RUNS:,} runs", f"{listed:.3f} s", "≤ 0.5 s",
                            listed <= 0.5))
    return 0 if print_checks("run history (SQLite)", checks) else 1


if __name__ == "__main__":
    sys.exit(main())
