"""What the preflight costs a run that works, and how soon it stops one that cannot.

Before the trials, ``run_workload`` calls the function on its first item(s) where the trials
will run (preflight.py): in poolscope's process without isolation, in the isolated child —
which the run's in-process trials then take over — with it. This benchmark alternates whole runs
with and without the preflight (``--rounds`` pairs after one warm-up run, each pair in turn
led by one or the other; the "without" runs replace it by a no-op) and reports the median
elapsed time of each and their difference, on the ``cpu`` workload (8 items of about 10 ms,
serial + thread + process, 2 workers, ``--repeat`` trials each), in process and isolated.
Then it times, from outside, the CLI on a function whose every item raises (``def two(a, b)``,
20 items, four executors): start to exit code 1.

Run: ``python benchmarks/bench_preflight.py [--rounds N] [--repeat K]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.table import Table

from _common import console, machine_line, median
from poolscope import api
from poolscope.workloads import resolve_workload


def one_run(preflight: bool, isolate: bool, repeat: int) -> float:
    workload = resolve_workload("cpu", 8, size=200_000)
    saved = api.preflight
    if not preflight:
        api.preflight = lambda *args, **kwargs: None  # type: ignore[assignment]
    try:
        began = time.perf_counter()
        api.run_workload(workload, executors="serial,thread,process", workers=2, repeat=repeat,
                         isolate=isolate, explore_io=False)
        return time.perf_counter() - began
    finally:
        api.preflight = saved


def failing_cli(items: str = "20") -> tuple[float, int, str]:
    """The CLI on ``def two(a, b)``; with ``items="0"`` it stops at its first check (2): the
    CLI's own start-up, to compare with."""
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "two.py"
        target.write_text("def two(a, b):\n    return a + b\n", encoding="utf-8")
        began = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "poolscope", "run", f"{target}:two", "--items", items, "-e",
             "thread,process,process-spawn,process-forkserver", "--no-store"],
            capture_output=True, text=True, timeout=120, cwd=folder)
        return time.perf_counter() - began, done.returncode, done.stderr.splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    console.print(machine_line())
    table = Table(title="a working run: cpu, 8 items, serial + thread + process ×2",
                  title_justify="left")
    for column in ("where", "without preflight", "with preflight", "added"):
        table.add_column(column, justify="left" if column == "where" else "right")
    for isolate in (False, True):
        runs: dict[bool, list[float]] = {True: [], False: []}
        one_run(True, isolate, args.repeat)  # warm: imports and first calls are no one's cost
        for round_ in range(args.rounds):
            for preflight in ((True, False) if round_ % 2 else (False, True)):  # either first
                runs[preflight].append(one_run(preflight, isolate, args.repeat))
        without, with_ = median(runs[False]), median(runs[True])
        table.add_row("isolated child" if isolate else "in process", f"{without:.3f} s",
                      f"{with_:.3f} s", f"{(with_ - without) * 1e3:+.0f} ms")
    console.print(table)
    startup = median([failing_cli("0")[0] for _ in range(3)])
    seconds, code, first = failing_cli()
    console.print(f"def two(a, b), 20 items, thread,process,process-spawn,process-forkserver: "
                  f"exit {code} after {seconds:.2f} s; the CLI's start-up alone (--items 0, "
                  f"exit 2): {startup:.2f} s. {first}")


if __name__ == "__main__":
    main()
