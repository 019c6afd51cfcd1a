"""The cost of the statistics and of a sweep's analysis, on runs of 1,000,000 items.

Two synthetic runs are built from scripted trial records (numpy arrays shaped exactly like the
runner's, with realistic spreads) so that only the analysis is timed, not any executor:

- **run**: 3 executors × 5 trials × 200,000 items (1,000,000 item records per executor, 3 M in
  all): the summary with its bootstrap intervals (wall, speedup, efficiency), outliers, noise
  warnings, the classification, the cost model and the recommendation with its comparisons;
- **sweep**: 2 executors × 4 worker counts × 3 chunksizes plus serial, 5 trials each, 1,000,000
  item records in all: the same, plus the scaling table and Amdahl fits.

Each analysis runs on a fresh Result (nothing cached), median of 3 builds; the statistics alone
(summary, comparisons, warnings: the part that does not depend on the item count) are timed too.
Goal (set here; the issue asks for the figures): under 5 s each.
Run: ``python benchmarks/bench_analysis.py [--quick]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from _common import Check, console, machine_line, median, print_checks
from poolscope.environment import collect_environment
from poolscope.model import ItemColumns, TrialResult
from poolscope.result import Result, TransferSample

GOAL_S = 5.0


def trial(index: int, executor: str, workers: int, chunksize: int, n: int,
          rng: np.random.Generator) -> TrialResult:
    per_item = 2e-6 * (1 + 0.1 * rng.standard_normal())
    wall_ns = (rng.gamma(20, 1 / 20, n) * per_item * 1e9 / workers).astype(np.int64) + 1
    lane = np.arange(n) % workers
    start = np.zeros(n, np.int64)
    for w in range(workers):  # items of one lane back to back
        mask = lane == w
        start[mask] = np.concatenate([[1000], np.cumsum(wall_ns[mask])[:-1] + 1000])
    end = start + wall_ns
    cols = ItemColumns(item=np.arange(n, dtype=np.int64), start_ns=start, end_ns=end,
                       cpu_ns=(wall_ns * 0.95).astype(np.int64),
                       core=(lane % 2).astype(np.int16), status=np.zeros(n, np.int8),
                       pid=(1000 + lane).astype(np.int32), tid=(1 + lane).astype(np.int64))
    wall = float(end.max()) / 1e9 * 1.02
    return TrialResult(index=index, executor=executor, workers=workers, chunksize=chunksize,
                       repeat=index, wall_s=wall, cpu_s=wall * workers * 0.9,
                       startup_s=1e-6, teardown_s=wall * 0.01, peak_rss=100 << 20,
                       status="ok", host="bench", items=cols)


def make_result(configs: Sequence[tuple[str, int, int]], items_per_config: int, trials: int,
                sweep: bool) -> Result:
    rng = np.random.default_rng(0)
    results = []
    n = items_per_config // trials
    for _ in range(trials):
        for executor, workers, chunksize in configs:
            results.append(trial(len(results), executor, workers, chunksize, n, rng))
    env = collect_environment()
    env["cpu_count"] = 2
    return Result(run_id="bench", target="tiny", n_items=n, trial_results=results,
                  environment=env, options={"sweep": sweep, "chunksize": [1, 64, "auto"]},
                  transfer=TransferSample(22.0, 1e-6))


def analyse(result: Result, sweep: bool) -> tuple[float, float]:
    """Seconds for the whole analysis, and for the statistics alone (summary and warnings)."""
    t0 = time.perf_counter()
    _ = result.trials
    t1 = time.perf_counter()
    _ = result.summary, result.warnings
    t2 = time.perf_counter()
    _ = result.classification, result.costs, result.recommendation
    if sweep:
        _ = result.scaling, result.amdahl
    return time.perf_counter() - t0, t2 - t1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 build instead of 3")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else 3
    console.print(f"bench_analysis: {machine_line()}")
    run_configs = [("serial", 1, 1), ("thread", 2, 64), ("process", 2, 64)]
    sweep_configs = [("serial", 1, 1)] + [
        (executor, workers, chunk) for executor in ("thread", "process")
        for workers in (1, 2, 4, 8) for chunk in (1, 64, 4096)]
    checks = []
    for name, configs, per_config, sweep in (
            ("run", run_configs, 1_000_000, False),
            ("sweep", sweep_configs, 1_000_000 // len(sweep_configs), True)):
        totals, stats = [], []
        for _ in range(repeat):
            result = make_result(configs, per_config, 5, sweep)
            records = sum(len(t.items) for t in result.trial_results)
            total, statistics = analyse(result, sweep)
            totals.append(total)
            stats.append(statistics)
        console.print(f"{name}: {len(configs)} configurations × 5 trials, {records:,} item "
                      f"records; statistics {median(stats):.3f} s, whole analysis "
                      f"{median(totals):.2f} s")
        checks.append(Check(f"{name}: statistics (summary, intervals, warnings)",
                            f"{median(stats):.3f} s", "—", None))
        checks.append(Check(f"{name}: whole analysis", f"{median(totals):.2f} s",
                            f"≤ {GOAL_S:.0f} s", median(totals) <= GOAL_S))
    return 0 if print_checks("statistics and sweep analysis", checks) else 1


if __name__ == "__main__":
    sys.exit(main())
