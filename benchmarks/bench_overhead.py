"""Instrumentation overhead: a poolscope trial against the same executor driven bare.

poolscope records every item (two ``perf_counter_ns`` reads, a ``thread_time_ns`` read and the
current core) and ships the records back with each chunk's results; process workers also receive
the function once through a cloudpickle initializer. None of that may slow the run it measures,
or every figure poolscope reports would be about poolscope. This benchmark times, on the demo
workload (built-in ``cpu``, size 1,000,000, 40 items, 2 workers):

- **poolscope**: ``runner.run_trial(...)``'s ``wall_s`` — pool creation, every item, teardown —
  with the chunks poolscope's plan would make (``auto_chunksize(40, 2)`` = 5 for the pools);
- **bare**: the same executor driven directly with the same items and chunksize, timed with
  ``perf_counter`` around the whole thing: ``multiprocessing.Pool(2)`` created, ``.map(fn, items,
  chunksize=5)``, closed and joined; ``ThreadPool(2)`` likewise; a plain loop for ``serial``.

The two run as interleaved pairs (bare then poolscope, then poolscope then bare, …) after one
unrecorded warm-up pair, so drift and load hit both alike. Reported per executor: the median of
each, the ratio of the medians (poolscope / bare) and the median of the per-pair ratios.
Goal: both ratios ≤ 1.02. For reference: the ratio for poolscope timed from outside
``run_trial`` (which adds making the chunks and assembling the records into columns); a
distribution-free interval for the median pair ratio and the bare times' own spread, which say
whether the run could resolve 2% at all (on a shared 2-core VM it often cannot); and, for
``serial``, the share of the trial's wall time not covered by any item according to poolscope's
own records — a low-noise upper bound on what poolscope adds to a serial trial.

Run: ``python benchmarks/bench_overhead.py [--quick] [--pairs N]``; exit status 1 when a goal is
missed.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.pool import ThreadPool
from typing import Any

from rich.table import Table

from _common import Check, console, machine_line, median, print_checks
from poolscope import runner
from poolscope.backends import get_backend
from poolscope.workloads import resolve_workload

GOAL = 1.02
EXECUTORS = ("process-pool", "thread-pool", "serial")

Fn = Callable[[Any], Any]


def _time_pool_map(make_pool: Callable[[int], Any], fn: Fn, items: Sequence[Any],
                   workers: int, chunksize: int) -> float:
    """A pool created, mapped over the items, closed and joined: all of it timed."""
    t0 = time.perf_counter()
    pool = make_pool(workers)
    results = pool.map(fn, items, chunksize=chunksize)
    pool.close()
    pool.join()
    elapsed = time.perf_counter() - t0
    assert len(results) == len(items)
    return elapsed


def bare_process_pool(fn: Fn, items: Sequence[Any], workers: int, chunksize: int) -> float:
    return _time_pool_map(multiprocessing.get_context().Pool, fn, items, workers, chunksize)


def bare_thread_pool(fn: Fn, items: Sequence[Any], workers: int, chunksize: int) -> float:
    return _time_pool_map(ThreadPool, fn, items, workers, chunksize)


def bare_serial(fn: Fn, items: Sequence[Any], workers: int, chunksize: int) -> float:
    t0 = time.perf_counter()
    for item in items:
        fn(item)
    return time.perf_counter() - t0


BARE: dict[str, Callable[[Fn, Sequence[Any], int, int], float]] = {
    "process-pool": bare_process_pool,
    "thread-pool": bare_thread_pool,
    "serial": bare_serial,
}


def poolscope_trial(executor: str, fn: Fn, items: Sequence[Any], workers: int,
                    chunksize: int) -> tuple[float, float, float]:
    """One poolscope trial: run_trial's wall_s, perf_counter around making chunks + run_trial,
    and the trial's wall not covered by any item (per the records: serial's own bookkeeping)."""
    backend = get_backend(executor)
    t0 = time.perf_counter()
    chunks = runner.make_chunks(items, chunksize)
    trial = runner.run_trial(0, backend, fn, workers, chunks)
    outer = time.perf_counter() - t0
    if trial.status != "ok" or len(trial.items) != len(items):
        raise RuntimeError(f"{executor}: trial {trial.status}, {len(trial.items)} items, "
                           f"errors {trial.errors}")
    cols = trial.items
    outside = trial.wall_s - float((cols.end_ns - cols.start_ns).sum()) / 1e9
    return trial.wall_s, outer, outside


@dataclass
class Pairs:
    executor: str
    workers: int
    chunksize: int
    bare: list[float] = field(default_factory=list)
    poolscope: list[float] = field(default_factory=list)
    outer: list[float] = field(default_factory=list)
    outside: list[float] = field(default_factory=list)

    @property
    def ratio_of_medians(self) -> float:
        return median(self.poolscope) / median(self.bare)

    @property
    def pair_ratios(self) -> list[float]:
        return [p / b for p, b in zip(self.poolscope, self.bare, strict=True)]

    @property
    def outer_ratio(self) -> float:
        return median(self.outer) / median(self.bare)


def noise(values: Sequence[float]) -> float:
    """Median absolute deviation over the median: how much the same thing varies run to run."""
    mid = median(values)
    return median([abs(v - mid) for v in values]) / mid


def median_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """A distribution-free interval for the median: (low, high, coverage).

    The k-th smallest and k-th largest values, k the largest with coverage ≥ 95% (k = 1, the
    minimum and maximum, when there are too few values to reach 95%).
    """
    n = len(values)
    ordered = sorted(values)
    k = 1
    while k < n // 2 and 1 - 2 * _binom_cdf(k, n) >= 0.95:
        k += 1
    return ordered[k - 1], ordered[n - k], 1 - 2 * _binom_cdf(k - 1, n)


def _binom_cdf(k: int, n: int) -> float:
    """P(X ≤ k) for X ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n


def measure(executor: str, fn: Fn, items: Sequence[Any], workers: int, pairs: int) -> Pairs:
    backend = get_backend(executor)
    effective = backend.effective_workers(workers)
    # The chunksize poolscope's plan uses for this executor (serial runs as one worker).
    chunksize = runner.Plan(executors=(executor,), workers=(workers,)).chunksize_for(
        len(items), effective)
    bare = BARE[executor]
    result = Pairs(executor, effective, chunksize)
    bare(fn, items, effective, chunksize)  # warm-up pair, not recorded
    poolscope_trial(executor, fn, items, effective, chunksize)
    for i in range(pairs):
        for which in (("bare", "poolscope") if i % 2 == 0 else ("poolscope", "bare")):
            if which == "bare":
                result.bare.append(bare(fn, items, effective, chunksize))
            else:
                wall, outer, outside = poolscope_trial(executor, fn, items, effective,
                                                       chunksize)
                result.outside.append(outside / wall)
                result.poolscope.append(wall)
                result.outer.append(outer)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 pairs instead of 7")
    parser.add_argument("--pairs", type=int, default=None, help="interleaved pairs (at least 5)")
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executors", default=",".join(EXECUTORS),
                        help=f"comma-separated, from {', '.join(EXECUTORS)}")
    args = parser.parse_args(argv)
    pairs = args.pairs if args.pairs is not None else (5 if args.quick else 7)
    if pairs < 5:
        parser.error("--pairs must be at least 5")
    executors = [e.strip() for e in args.executors.split(",") if e.strip()]
    unknown = [e for e in executors if e not in BARE]
    if unknown:
        parser.error(f"unknown executor(s) {', '.join(unknown)}; choose from {', '.join(BARE)}")

    workload = resolve_workload("cpu", args.items, args.size)
    items = list(workload.items)
    console.print(f"[bold]bench_overhead[/bold]: {machine_line()}")
    console.print(f"workload cpu, size {args.size:,}, {len(items)} items, {args.workers} workers, "
                  f"{pairs} interleaved pairs per executor (after one warm-up pair)")

    results = [measure(e, workload.fn, items, args.workers, pairs) for e in executors]

    detail = Table(title="timings (seconds; medians over pairs)", title_justify="left")
    for name in ("executor", "workers", "chunksize", "bare", "poolscope wall_s",
                 "poolscope outer", "pair ratio interval", "bare noise"):
        detail.add_column(name, justify="left" if name == "executor" else "right")
    coverage = 0.0
    for r in results:
        low, high, coverage = median_interval(r.pair_ratios)
        detail.add_row(r.executor, str(r.workers), str(r.chunksize), f"{median(r.bare):.4f}",
                       f"{median(r.poolscope):.4f}", f"{median(r.outer):.4f}",
                       f"{low:.3f}–{high:.3f}", f"{noise(r.bare):.1%}")
    console.print(detail)
    console.print("bare noise: median absolute deviation of the bare times over their median. "
                  f"Pair ratio interval: a {coverage:.1%} distribution-free interval for the "
                  "median pair ratio; where it straddles the goal, this run cannot resolve it.")

    checks: list[Check] = []
    for r in results:
        rom = r.ratio_of_medians
        mpr = median(r.pair_ratios)
        checks.append(Check(f"{r.executor}: ratio of medians", f"{rom:.4f}", f"≤ {GOAL}",
                            rom <= GOAL))
        # The goal is on the ratio of medians; the pair ratio, with its interval above, shows
        # whether this run's noise can resolve a difference that small.
        checks.append(Check(f"{r.executor}: median pair ratio", f"{mpr:.4f}", "—", None))
        checks.append(Check(f"{r.executor}: outer / bare (reference)", f"{r.outer_ratio:.4f}",
                            "—", None))
        if r.executor == "serial":
            checks.append(Check("serial: wall outside items / wall (from records)",
                                f"{median(r.outside):.2%}", "—", None))
    return 0 if print_checks("instrumentation overhead (poolscope / bare)", checks) else 1


if __name__ == "__main__":
    sys.exit(main())
