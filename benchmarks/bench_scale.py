"""Scale: memory per item record and the time to turn a million records into frames.

poolscope keeps per-item records as flat numpy columns (``model.ItemColumns``), never an object
per item, so a run of millions of tiny items must stay small in memory and quick to analyse. This
benchmark runs one ``serial`` trial of 1,000,000 ``tiny`` items and reports:

- **bytes per item held by the records**: ``trial.items.nbytes / n`` (the columns' buffers);
- **bytes per item retained, by tracemalloc**: a second trial of the same items run under
  ``tracemalloc`` (items and chunks made before tracing starts, after a small warm-up run so that
  lazy imports and caches are not counted); the traced memory still held once ``run_trial``
  returned, with the trial alive, over ``n``. tracemalloc sees numpy's buffers, so this counts
  everything the trial keeps, columns and Python objects alike; the peak during the trial is
  printed for reference;
- **time to build the frames and summary**: ``api.run_workload(..., executors="serial",
  baseline=False)`` gives a Result; the time of its first ``.items``, ``.trials`` and ``.summary``
  (each a cached property: the items frame, the trials frame and ``analysis.metrics.summarize``).
  Measured on fresh copies of the Result (the caches start empty). The first build, the one a
  user waits for, is slower than later ones (fresh memory is faulted in); both it and the median
  of the builds are held to the goal.

Goals: ≤ 100 bytes per item (both memory figures); frames and summary built in ≤ 2 s.

Run: ``python benchmarks/bench_scale.py [--quick] [--items N]``; exit status 1 when a goal is
missed.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import time
import tracemalloc
from collections.abc import Sequence

from _common import Check, console, machine_line, median, print_checks
from poolscope.api import run_workload
from poolscope.backends import get_backend
from poolscope.measure import runner
from poolscope.result import Result
from poolscope.workloads import Workload, resolve_workload

GOAL_BYTES = 100.0
GOAL_FRAMES_S = 2.0


def build_frames(result: Result) -> tuple[float, float, float]:
    """Seconds to build ``.items``, ``.trials`` and ``.summary`` on a fresh copy of ``result``."""
    fresh = dataclasses.replace(result)  # a new instance: its cached properties are empty
    t0 = time.perf_counter()
    items = fresh.items
    t1 = time.perf_counter()
    trials = fresh.trials
    t2 = time.perf_counter()
    summary = fresh.summary
    t3 = time.perf_counter()
    if len(items) != result.n_items or len(trials) != 1 or len(summary) != 1:
        raise RuntimeError(f"unexpected frames: {len(items)} item rows, {len(trials)} trials, "
                           f"{len(summary)} summary rows")
    return t1 - t0, t2 - t1, t3 - t2


def traced_trial(workload: Workload) -> tuple[int, int, int, int]:
    """(items, bytes retained by the trial, peak bytes during it, ItemColumns.nbytes)."""
    items = list(workload.items)
    backend = get_backend("serial")
    chunks = runner.make_chunks(items, runner.auto_chunksize(len(items), 1))
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        trial = runner.run_trial(0, backend, workload.fn, 1, chunks)
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if trial.status != "ok" or len(trial.items) != len(items):
        raise RuntimeError(f"trial {trial.status}: {len(trial.items)} of {len(items)} items")
    return len(items), after - before, peak - before, trial.items.nbytes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 frame build instead of 3")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=None, help="frame builds to time")
    args = parser.parse_args(argv)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeat < 1 or args.items < 1:
        parser.error("--repeat and --items must be at least 1")

    console.print(f"[bold]bench_scale[/bold]: {machine_line()}")
    console.print(f"workload tiny, {args.items:,} items, one serial trial; frames built {repeat}×")

    # Warm-up: imports, pandas' lazy paths and poolscope's caches, on a small run.
    small = run_workload(resolve_workload("tiny", 1000), executors="serial", baseline=False)
    build_frames(small)

    workload = resolve_workload("tiny", args.items)
    t0 = time.perf_counter()
    result = run_workload(workload, executors="serial", baseline=False)
    run_s = time.perf_counter() - t0
    trial = result.trial_results[0]
    n = len(trial.items)
    if trial.status != "ok" or n != args.items:
        raise RuntimeError(f"trial {trial.status}: {n} of {args.items} items")
    column_bytes = trial.items.nbytes / n

    timings = [build_frames(result) for _ in range(repeat)]
    totals = [sum(t) for t in timings]
    frame_bytes = result.items.memory_usage(deep=True).sum() / n

    traced_n, retained, peak, nbytes = traced_trial(workload)
    retained_per_item = retained / traced_n

    checks = [
        Check("trial wall (run_trial) / whole run_workload",
              f"{trial.wall_s:.2f} s / {run_s:.2f} s", "—", None),
        Check("records: ItemColumns.nbytes per item", f"{column_bytes:.1f} B",
              f"≤ {GOAL_BYTES:.0f} B", column_bytes <= GOAL_BYTES),
        Check("records: retained per item (tracemalloc)", f"{retained_per_item:.1f} B",
              f"≤ {GOAL_BYTES:.0f} B", retained_per_item <= GOAL_BYTES),
        Check("peak during the trial per item (tracemalloc)", f"{peak / traced_n:.1f} B", "—",
              None),
        Check("items frame per item (memory_usage deep)", f"{frame_bytes:.1f} B", "—", None),
        Check("first build: .items / .trials / .summary",
              " / ".join(f"{v:.3f}" for v in timings[0]) + " s", "—", None),
        Check("frames and summary, first build (total)", f"{totals[0]:.3f} s",
              f"≤ {GOAL_FRAMES_S:.0f} s", totals[0] <= GOAL_FRAMES_S),
    ]
    if repeat > 1:
        checks.append(Check(f"frames and summary, median of {repeat} builds",
                            f"{median(totals):.3f} s", f"≤ {GOAL_FRAMES_S:.0f} s",
                            median(totals) <= GOAL_FRAMES_S))
    if nbytes / traced_n != column_bytes:  # the traced trial must hold the same columns
        raise RuntimeError("the traced trial's columns differ from the timed trial's")
    return 0 if print_checks(f"scale ({n:,} items, tiny, serial)", checks) else 1


if __name__ == "__main__":
    sys.exit(main())
