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

``--components ROUNDS`` measures instead where process-pool's fixed cost per trial goes: the
bare pool forked from a process that loaded only the workload, the same from this process, then
each thing poolscope adds (the initializer, the probe and records, the board, ``run_trial``);
``--cli-parent`` first loads what the CLI has loaded when its trials run.

Run: ``python benchmarks/bench_overhead.py [--quick] [--pairs N] [--components ROUNDS
[--cli-parent]]``; exit status 1 when a goal is missed.
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
from poolscope.backends import get_backend
from poolscope.measure import runner
from poolscope.measure.board import Board
from poolscope.measure.runner import auto_chunksize
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
                    chunksize: int, board: Any) -> tuple[float, float, float]:
    """One poolscope trial: run_trial's wall_s, perf_counter around making chunks + run_trial,
    and the trial's wall not covered by any item (per the records: serial's own bookkeeping).
    ``board``: one for all of an executor's trials, as a run has."""
    backend = get_backend(executor)
    t0 = time.perf_counter()
    chunks = runner.make_chunks(items, chunksize)
    trial = runner.run_trial(0, backend, fn, workers, chunks, board=board)
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
    with Board() as board:
        bare(fn, items, effective, chunksize)  # warm-up pair, not recorded
        poolscope_trial(executor, fn, items, effective, chunksize, board)
        for i in range(pairs):
            for which in (("bare", "poolscope") if i % 2 == 0 else ("poolscope", "bare")):
                if which == "bare":
                    result.bare.append(bare(fn, items, effective, chunksize))
                else:
                    wall, outer, outside = poolscope_trial(executor, fn, items, effective,
                                                           chunksize, board)
                    result.outside.append(outside / wall)
                    result.poolscope.append(wall)
                    result.outer.append(outer)
    return result


# --- --components: where a process-pool trial's fixed cost goes -------------------------------
# Each variant adds one thing poolscope does to the one before, all driven like the bare pool:
# perf_counter around pool creation, every item, close and join.


class _Stamped:
    """The function, returning when its item started (the bare variants' first item)."""

    def __init__(self, fn: Fn) -> None:
        self.fn = fn

    def __call__(self, item: Any) -> int:
        started = time.perf_counter_ns()
        self.fn(item)
        return started


def _bare_variant(initializer: bool, probe: bool, board: Any) -> Callable[..., tuple[float, float]]:
    import cloudpickle

    from poolscope.measure.shipping import install_function, run_installed_chunk

    def run(fn: Fn, items: Sequence[Any], workers: int, chunksize: int) -> tuple[float, float]:
        chunks = runner.make_chunks(items, chunksize)
        if board is not None:
            board.begin_trial()
            chunks = [c._replace(board=board.path) for c in chunks]
        t0 = time.perf_counter_ns()
        extra = ({"initializer": install_function, "initargs": (cloudpickle.dumps(fn),)}
                 if initializer else {})
        pool = multiprocessing.get_context().Pool(workers, **extra)
        if probe:
            firsts = [r.start_ns[0] for r in pool.imap_unordered(run_installed_chunk, chunks)]
        else:
            firsts = pool.map(_Stamped(fn), items, chunksize=chunksize)
        pool.close()
        pool.join()
        return (time.perf_counter_ns() - t0) / 1e9, (min(firsts) - t0) / 1e9

    return run


# The bare pool again, in a process that has loaded only the workload (as a user's script
# that imports its function): it prints its wall and start-up, timed as _bare_variant's.
_LEAN_SCRIPT = """
import multiprocessing, sys, time
from poolscope.workloads import resolve_workload

class Stamped:
    def __init__(self, fn):
        self.fn = fn
    def __call__(self, item):
        started = time.perf_counter_ns()
        self.fn(item)
        return started

n, size, workers, chunksize, rounds = map(int, sys.argv[1:])
workload = resolve_workload("cpu", n, size)
items = list(workload.items)
for _ in range(rounds):
    t0 = time.perf_counter_ns()
    pool = multiprocessing.get_context().Pool(workers)
    firsts = pool.map(Stamped(workload.fn), items, chunksize=chunksize)
    pool.close()
    pool.join()
    print((time.perf_counter_ns() - t0) / 1e9, (min(firsts) - t0) / 1e9)
"""


def _lean_variant(size: int) -> Callable[..., tuple[float, float]]:
    import subprocess

    def run(fn: Fn, items: Sequence[Any], workers: int, chunksize: int) -> tuple[float, float]:
        out = subprocess.run(
            [sys.executable, "-c", _LEAN_SCRIPT, str(len(items)), str(size), str(workers),
             str(chunksize), "2"], capture_output=True, text=True, check=True, timeout=300)
        wall, startup = out.stdout.split("\n")[1].split()  # its second pool: warm, as ours
        return float(wall), float(startup)

    return run


def _poolscope_variant(board: Any) -> Callable[..., tuple[float, float]]:
    def run(fn: Fn, items: Sequence[Any], workers: int, chunksize: int) -> tuple[float, float]:
        trial = runner.run_trial(0, get_backend("process-pool"), fn, workers,
                                 runner.make_chunks(items, chunksize), board=board)
        return trial.wall_s, trial.startup_s

    return run


def components(fn: Fn, items: Sequence[Any], workers: int, rounds: int, size: int) -> int:
    """Time each variant ``rounds`` times, interleaved (the order reversed every other round),
    and print the median wall and start-up (pool creation to the first item) of each, with
    what each step adds to the one before. The first row forks its workers from a process
    that loaded only the workload; the others from this one (see --cli-parent)."""
    import resource

    chunksize = auto_chunksize(len(items), workers)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    with Board() as board:
        variants = {
            "bare Pool, from a process with only the workload": _lean_variant(size),
            f"bare Pool, from this process ({rss} MiB)": _bare_variant(False, False, None),
            "+ the initializer (function by cloudpickle)": _bare_variant(True, False, None),
            "+ the probe and records (run_installed_chunk)": _bare_variant(True, True, None),
            "+ the board (what each worker runs)": _bare_variant(True, True, board),
            "poolscope trial (run_trial)": _poolscope_variant(board),
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
        for run in variants.values():  # warm-up, not recorded
            run(fn, items, workers, chunksize)
        for i in range(rounds):
            for name in (list(variants) if i % 2 == 0 else list(variants)[::-1]):
                times[name].append(variants[name](fn, items, workers, chunksize))
    table = Table(title=f"process-pool: fixed cost by component (medians of {rounds} rounds)",
                  title_justify="left")
    for column in ("variant", "wall", "adds", "start-up", "adds "):
        table.add_column(column, justify="left" if column == "variant" else "right")
    previous = None
    for name, pairs in times.items():
        wall, startup = median([w for w, _ in pairs]), median([s for _, s in pairs])
        adds = ("—", "—") if previous is None else (
            f"{(wall - previous[0]) * 1e3:+.2f} ms", f"{(startup - previous[1]) * 1e3:+.2f} ms")
        table.add_row(name, f"{wall * 1e3:.2f} ms", adds[0], f"{startup * 1e3:.2f} ms", adds[1])
        previous = (wall, startup)
    console.print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 pairs instead of 7")
    parser.add_argument("--pairs", type=int, default=None, help="interleaved pairs (at least 5)")
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executors", default=",".join(EXECUTORS),
                        help=f"comma-separated, from {', '.join(EXECUTORS)}")
    parser.add_argument("--components", type=int, default=0, metavar="ROUNDS",
                        help="instead: where process-pool's fixed cost goes, over ROUNDS rounds")
    parser.add_argument("--cli-parent", action="store_true",
                        help="with --components: load what the CLI has loaded first")
    args = parser.parse_args(argv)
    if args.components:
        if args.cli_parent:  # what the CLI's process has loaded when its trials run (pandas
            # and the pictures come after them: api.py)
            import poolscope.api
            import poolscope.cli
            import poolscope.present.progress  # noqa: F401
            from poolscope.measure import native

            native.pools()  # as api.run_workload reads its own pools (threadpoolctl loaded)
        workload = resolve_workload("cpu", args.items, args.size)
        console.print(f"[bold]bench_overhead --components[/bold]: {machine_line()}")
        console.print(f"workload cpu, size {args.size:,}, {args.items} items, "
                      f"{args.workers} workers")
        return components(workload.fn, list(workload.items), args.workers, args.components,
                          args.size)
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
