"""How right poolscope's predictions are, on this machine: measured on one core, predicted for
two, then measured on two.

For each workload — the built-ins and the truth suite's — and for the thread and process
executors, this script, in ``--rounds`` interleaved rounds (the VM's speed drifts between
seconds, so one measurement of each would compare two machines):

1. restricts itself to one core (``os.sched_setaffinity``: every worker it starts inherits it)
   and runs ``serial``, ``thread`` and ``process`` with 1 and 2 workers through poolscope's API;
2. predicts ``thread ×2`` and ``process ×2`` on 2 cores from that run (``Result.predict``);
3. allows both cores and measures the same configurations, in the same process;

and prints the medians over the rounds of the predicted and the measured wall times, and the
error, predicted ÷ measured − 1. ``payload`` is predicted for processes only: its threads
trial (``len`` of a buffer in shared memory) lasts about a millisecond, pool start-up alone.

Goal (issue 17): median absolute error at most 15%, none over 30%. Run:
``python benchmarks/bench_predict.py [--quick] [--workloads a,b] [--repeat N] [--rounds N]
[--markdown]``.
Needs two usable cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

import poolscope
import truth_workloads
from _common import console, machine_line
from poolscope.workloads import BUILTIN_WORKLOADS

HERE = Path(__file__).resolve().parent
EXECUTORS = ("thread", "process")
GOAL_MEDIAN, GOAL_MAX = 0.15, 0.30


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[int], tuple[Callable[[Any], Any], Sequence[Any]]]  # count -> fn, items
    items: int
    quick_items: int
    executors: tuple[str, ...] = EXECUTORS


def builtin(name: str, items: int, quick: int, size: int | None = None,
            executors: tuple[str, ...] = EXECUTORS) -> Case:
    def make(count: int) -> tuple[Callable[[Any], Any], Sequence[Any]]:
        workload = BUILTIN_WORKLOADS[name].workload(count, size)
        return workload.fn, list(workload.items)

    return Case(name, make, items, quick, executors)


def truth(name: str, items: int, quick: int) -> Case:
    fn = getattr(truth_workloads, name)
    return Case(name, lambda count: (fn, list(range(count))), items, quick)


CASES = (
    builtin("cpu", 24, 8, 300_000),
    builtin("io", 40, 16, 20),
    builtin("hash", 24, 8),
    builtin("json", 24, 8),
    builtin("tiny", 20_000, 4_000),
    builtin("payload", 16, 6, executors=("process",)),
    truth("numpy_matmul", 12, 4),
    truth("py_compute", 16, 6),
    truth("zlib_compress", 16, 6),
    truth("sleep_io", 30, 10),
    truth("subprocess_wait", 16, 8),
    truth("mixed", 24, 8),
    truth("large_results", 12, 4),
    truth("gil_switching", 4_000, 1_000),
)


@dataclass(frozen=True)
class Row:
    case: str
    executor: str
    predicted_s: float
    measured_s: float
    bottleneck: str

    @property
    def error(self) -> float:
        return self.predicted_s / self.measured_s - 1


def measure(fn: Callable[[Any], Any], items: Sequence[Any], workers: Sequence[int],
            repeat: int) -> poolscope.Result:
    return poolscope.compare(fn, items, executors=["serial", *EXECUTORS],
                             workers=list(workers), repeat=repeat)


def wall(result: poolscope.Result, executor: str, workers: int) -> float:
    summary = result.summary
    row = summary[(summary["executor"] == executor) & (summary["workers"] == workers)]
    return float(row["wall_s"].iloc[0])


def run_case(case: Case, count: int, repeat: int, rounds: int, both: set[int]) -> list[Row]:
    fn, items = case.make(count)
    predicted: dict[str, list[float]] = {name: [] for name in case.executors}
    measured: dict[str, list[float]] = {name: [] for name in case.executors}
    bottleneck: dict[str, str] = {}
    for _ in range(rounds):
        os.sched_setaffinity(0, {min(both)})
        try:
            narrow = measure(fn, items, [1, 2], repeat)
        finally:
            os.sched_setaffinity(0, both)
        forecast = narrow.predict(cores=2, workers=[2], executors=list(case.executors))
        wide = measure(fn, items, [2], repeat)
        for executor in case.executors:
            hit = forecast[(forecast["executor"] == executor) & (forecast["workers"] == 2)]
            predicted[executor].append(float(hit["wall_s"].iloc[0]))
            measured[executor].append(wall(wide, executor, 2))
            bottleneck[executor] = str(hit["bottleneck"].iloc[0])
    return [Row(case.name, executor, statistics.median(predicted[executor]),
                statistics.median(measured[executor]), bottleneck[executor])
            for executor in case.executors]


def print_rows(rows: Sequence[Row], markdown: bool) -> None:
    errors = [abs(r.error) for r in rows]
    head = ["workload", "executor ×2", "predicted", "measured", "error", "bottleneck predicted"]
    lines = [[r.case, r.executor, f"{r.predicted_s * 1e3:.1f} ms", f"{r.measured_s * 1e3:.1f} ms",
              f"{r.error:+.0%}", r.bottleneck] for r in rows]
    verdict = (f"median |error| {statistics.median(errors):.0%} (goal ≤ {GOAL_MEDIAN:.0%}), "
               f"largest {max(errors):.0%} (goal ≤ {GOAL_MAX:.0%}), "
               f"{sum(e > GOAL_MAX for e in errors)} over {GOAL_MAX:.0%}")
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for line in lines:
            print("| " + " | ".join(line) + " |")
        print(f"\n{verdict}\n\n{machine_line()}")
        return
    table = Table(title="predicted on 2 cores from 1, then measured on 2")
    for name in head:
        table.add_column(name, justify="left" if name in ("workload", "bottleneck predicted")
                         else "right")
    for line in lines:
        table.add_row(*line)
    console.print(table)
    console.print(verdict)
    console.print(machine_line())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer items per workload")
    parser.add_argument("--workloads", help="comma-separated names [default: all]")
    parser.add_argument("--repeat", type=int, default=2,
                        help="trials per configuration in each measurement")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of (1 core, predict, 2 cores)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    both = os.sched_getaffinity(0)
    if len(both) < 2:
        print("bench_predict needs two usable cores", file=sys.stderr)
        return 2
    both = set(sorted(both)[:2])
    chosen = set(args.workloads.split(",")) if args.workloads else None
    rows: list[Row] = []
    for case in CASES:
        if chosen is not None and case.name not in chosen:
            continue
        items = case.quick_items if args.quick else case.items
        rows += run_case(case, items, args.repeat, args.rounds, both)
        console.print(f"{case.name}: " + ", ".join(
            f"{r.executor} {r.error:+.0%}" for r in rows[-len(case.executors):]), style="dim")
    print_rows(rows, args.markdown)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    raise SystemExit(main())
