"""What isolation costs: in-process executors run in poolscope's process against a child.

The CLI runs ``serial``, ``thread``, ``thread-pool`` and ``asyncio`` in a child process of the
same interpreter by default (backends/elsewhere.py's ``isolated``), so that a function that ends
its process cannot end the run. The child is kept for the run and timed by its own clock, so a
trial should cost what it costs in-process. This benchmark checks that on two workloads —
``tiny`` (20,000 near-empty items: every per-item and per-trial cost shows) and ``cpu`` (8 items
of about 10 ms) — by alternating runs with and without isolation (``--rounds`` pairs, each run
``repeat`` trials per executor) and reporting per executor the medians of:

- the trial's wall time, start-up (pool creation to the first item) and teardown;
- the run's elapsed time from outside, which includes starting the child (once per run).

The per-item time of a near-empty function differs between two processes of the same program by
up to 2× (memory layout, hash seed: measured 0.26–0.53 µs for ``tiny`` over six fresh
processes), so the ``tiny`` wall ratio says more about which processes the run drew than about
isolation; start-up, teardown and the ``cpu`` ratio are the figures to read.

Run: ``python benchmarks/bench_isolation.py [--rounds N] [--repeat K]``.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from rich.table import Table

from _common import console, machine_line, median
from poolscope.runner import Plan, run_plan
from poolscope.workloads import resolve_workload

EXECUTORS = ("serial", "thread", "thread-pool")
WORKLOADS = {"tiny": (20_000, None), "cpu": (8, 200_000)}


def one_run(name: str, isolate: bool, repeat: int) -> tuple[dict[str, list], float]:
    items, size = WORKLOADS[name]
    workload = resolve_workload(name, items, size=size)
    began = time.perf_counter()
    trials, _ = run_plan(workload, Plan(executors=EXECUTORS, workers=(2,), repeat=repeat,
                                        isolate=isolate))
    elapsed = time.perf_counter() - began
    by_executor: dict[str, list] = defaultdict(list)
    for trial in trials:
        assert trial.status == "ok", trial.errors
        by_executor[trial.executor].append(trial)
    return by_executor, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    console.print(machine_line())
    for name in WORKLOADS:
        trials: dict[bool, dict[str, list]] = {False: defaultdict(list), True: defaultdict(list)}
        elapsed: dict[bool, list[float]] = {False: [], True: []}
        for round_ in range(args.rounds):
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for isolate in order:
                found, took = one_run(name, isolate, args.repeat)
                elapsed[isolate].append(took)
                for executor, ts in found.items():
                    trials[isolate][executor].extend(ts)
        table = Table(title=f"{name}: in poolscope's process vs isolated (medians)")
        for column in ("executor", "wall in", "wall isolated", "ratio", "start-up in",
                       "start-up isolated", "teardown in", "teardown isolated"):
            table.add_column(column, justify="left" if column == "executor" else "right")
        for executor in EXECUTORS:
            def med(isolate: bool, field: str, executor: str = executor,
                    trials: dict[bool, dict[str, list]] = trials) -> float:
                return median([getattr(t, field) for t in trials[isolate][executor]])

            wall_in, wall_iso = med(False, "wall_s"), med(True, "wall_s")
            table.add_row(executor, f"{wall_in * 1e3:.2f} ms", f"{wall_iso * 1e3:.2f} ms",
                          f"{wall_iso / wall_in:.2f}",
                          f"{med(False, 'startup_s') * 1e3:.3f} ms",
                          f"{med(True, 'startup_s') * 1e3:.3f} ms",
                          f"{med(False, 'teardown_s') * 1e3:.3f} ms",
                          f"{med(True, 'teardown_s') * 1e3:.3f} ms")
        console.print(table)
        console.print(f"{name}: a run ({len(EXECUTORS)} executors × {args.repeat} trials) took "
                      f"{median(elapsed[False]):.2f} s in-process, "
                      f"{median(elapsed[True]):.2f} s isolated (medians of {args.rounds})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
