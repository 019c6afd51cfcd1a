"""What isolation costs: in-process executors in poolscope's process against isolated in a child.

The CLI runs ``serial``, ``thread``, ``thread-pool`` and ``asyncio`` in a child process of the
same interpreter by default (backends/elsewhere.py's ``isolated``), so that a function that ends
its process cannot end the run. The child is kept for the run, timed by its own clock, holds the
trial's chunks before the clock starts and keeps the results (a small sample goes back after
the clock stopped), so a trial should cost what it costs in-process. This benchmark checks that
on a matrix of workloads × executors:

- ``tiny``: 20,000 near-empty items (every per-item and per-chunk cost shows);
- ``cpu``: 8 items of about 10 ms of pure Python;
- ``results``: 8 items each returning 16 MiB (``zlib.decompress`` of 16 KiB: the result is
  written, not just allocated);
- ``arguments``: 8 items that are 8 MiB each (``zlib.crc32``: the argument is read);
- ``raising``: 20,000 items that all raise (``int("x")``: a ValueError each).

Per cell, trials run as interleaved pairs — isolated then in-process, then in-process then
isolated, … — through ``runner.run_trial`` with the same chunks (the plan's), one board, and
one kept child for the whole benchmark (as within a run), after one unrecorded warm-up pair.
Reported per cell: the median wall time of each side, and the median of the per-pair ratios
isolated ÷ in-process with a distribution-free interval (see bench_overhead.median_interval);
for reference the same median ratio of the trials' CPU time.
Goal: median pair ratio ≤ 1.03 on every cell.

The per-call time of a near-empty function can differ between two processes of the same
program (memory layout; the hash seed is shared, the child inherits PYTHONHASHSEED when set),
so on ``tiny`` and ``raising`` a ratio off 1 can belong to the processes drawn rather than to
isolation: ``--fresh-child N`` restarts the child every N pairs to show that spread.

Run: ``python benchmarks/bench_isolation.py [--pairs N] [--workloads a,b] [--executors a,b]``;
exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from _common import Check, console, machine_line, median, print_checks
from bench_overhead import median_interval
from poolscope.backends import Backend, resolve
from poolscope.backends.elsewhere import isolated
from poolscope.measure.board import Board
from poolscope.measure.runner import Plan, make_chunks, run_trial
from poolscope.workloads import resolve_workload

GOAL = 1.03
EXECUTORS = ("serial", "thread", "thread-pool")
MIB = 1 << 20


def _workloads() -> dict[str, tuple[Callable[[Any], Any], list[Any]]]:
    """name -> (function, items); functions that the child imports by reference."""
    tiny = resolve_workload("tiny", 20_000)
    cpu = resolve_workload("cpu", 8, size=200_000)
    return {
        "tiny": (tiny.fn, list(tiny.items)),
        "cpu": (cpu.fn, list(cpu.items)),
        "results": (zlib.decompress, [zlib.compress(bytes(16 * MIB))] * 8),
        "arguments": (zlib.crc32, [bytes([i]) * (8 * MIB) for i in range(8)]),
        "raising": (int, ["x"] * 20_000),
    }


@dataclass
class Cell:
    workload: str
    executor: str
    isolated: list[tuple[float, float]] = field(default_factory=list)  # (wall, CPU) seconds
    in_process: list[tuple[float, float]] = field(default_factory=list)

    def ratios(self, which: int = 0) -> list[float]:
        """Per pair, isolated ÷ in-process: wall (0) or CPU (1)."""
        return [i[which] / p[which] for i, p in zip(self.isolated, self.in_process, strict=True)]


def one_trial(cls: type[Backend], fn: Callable[[Any], Any], items: Sequence[Any],
              workers: int, board: Board) -> tuple[float, float]:
    chunksize = Plan(executors=(cls.name,), workers=(workers,)).chunksize_for(
        len(items), workers)
    trial = run_trial(0, cls, fn, workers, make_chunks(items, chunksize), board=board)
    if len(trial.items) != len(items) or trial.status == "failed":
        raise RuntimeError(f"{cls.name}: trial {trial.status}, {trial.errors[:2]}")
    return trial.wall_s, trial.cpu_s


def measure(name: str, executor: str, pairs: int, workers: int, fresh_every: int) -> Cell:
    fn, items = _workloads()[name]
    sides = {True: isolated(executor), False: resolve(executor)}
    effective = sides[False].effective_workers(workers)
    cell = Cell(name, executor)
    board = Board()
    sides[True].begin_run()  # one kept child, as within a run
    try:
        for side in (True, False):  # the warm-up pair: starts the child, not recorded
            one_trial(sides[side], fn, items, effective, board)
        for i in range(pairs):
            if fresh_every and i and i % fresh_every == 0:
                sides[True].end_run()
                sides[True].begin_run()
                one_trial(sides[True], fn, items, effective, board)  # the new child's start
            for side in ((True, False) if i % 2 == 0 else (False, True)):
                took = one_trial(sides[side], fn, items, effective, board)
                (cell.isolated if side else cell.in_process).append(took)
    finally:
        sides[True].end_run()
        board.close()
    return cell


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15, help="interleaved pairs per cell")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workloads", default=",".join(_workloads()))
    parser.add_argument("--executors", default=",".join(EXECUTORS))
    parser.add_argument("--fresh-child", type=int, default=0, metavar="N",
                        help="start a new child every N pairs (0: one child per cell)")
    args = parser.parse_args(argv)
    workloads = [w for w in args.workloads.split(",") if w]
    executors = [e for e in args.executors.split(",") if e]
    unknown = set(workloads) - set(_workloads())
    if unknown or args.pairs < 5:
        parser.error(f"unknown workload(s) {', '.join(sorted(unknown))}" if unknown
                     else "--pairs must be at least 5")
    console.print(f"[bold]bench_isolation[/bold]: {machine_line()}")
    console.print(f"{args.pairs} interleaved pairs per cell (after one warm-up pair), "
                  f"{args.workers} workers")
    cells = [measure(w, e, args.pairs, args.workers, args.fresh_child)
             for w in workloads for e in executors]
    table = Table(title="isolated ÷ in-process wall (medians)", title_justify="left")
    for column in ("workload", "executor", "in-process", "isolated", "pair ratio",
                   "interval", "CPU ratio"):
        table.add_column(column, justify="left" if column in ("workload", "executor")
                         else "right")
    checks = []
    for cell in cells:
        ratio = median(cell.ratios())
        low, high, coverage = median_interval(cell.ratios())
        table.add_row(cell.workload, cell.executor,
                      f"{median([w for w, _ in cell.in_process]) * 1e3:.2f} ms",
                      f"{median([w for w, _ in cell.isolated]) * 1e3:.2f} ms", f"{ratio:.3f}",
                      f"{low:.3f}–{high:.3f}", f"{median(cell.ratios(1)):.3f}")
        checks.append(Check(f"{cell.workload}, {cell.executor}", f"{ratio:.3f}", f"≤ {GOAL}",
                            ratio <= GOAL))
    console.print(table)
    console.print(f"interval: a {coverage:.1%} distribution-free interval for the median pair "
                  "ratio; where it straddles the goal, this run cannot resolve it. CPU ratio: "
                  "the same for the trials' CPU time (the child's, or this process's), which "
                  "other load on the machine moves less than wall time.")
    return 0 if print_checks("isolation (isolated ÷ in-process, median pair ratio)",
                             checks) else 1


if __name__ == "__main__":
    sys.exit(main())
