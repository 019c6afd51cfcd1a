"""The truth suite: is poolscope's default verdict within 10% of the best bare configuration?

For each reference workload in ``truth_workloads.py`` this script:

1. runs the real CLI the way a user does — ``poolscope run benchmarks/truth_workloads.py:NAME
   --items N --json OUT --no-store`` with default options (isolation on, ``--repeat auto``) and
   only ``--max-time`` set so the suite stays short — and reads ``recommendation`` (executor,
   workers, chunksize) from the JSON;
2. times bare, with no poolscope code, in interleaved rounds (A B C A B C …, median of
   ``--rounds``): a plain loop, ThreadPoolExecutor with the core count (and 8 and 32 workers
   for the kinds that wait), ProcessPoolExecutor with the core count and about four chunks per
   worker, and the configuration poolscope recommended, run as its executor's plain library;
3. prints the bare times, the recommendation, its bare time ÷ the best bare time and "right"
   when that is at most 1.10 ("WRONG" otherwise, or when there is no recommendation).

Run: ``python benchmarks/bench_truth.py [--quick] [--workloads a,b] [--rounds N]
[--max-time S] [--keep DIR] [--markdown] [--check]``. Exit status 0 (it is a benchmark), or
with ``--check`` 1 when any verdict is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import truth_workloads
from _common import console, machine_line, median

HERE = Path(__file__).resolve().parent
WORKLOADS_FILE = HERE / "truth_workloads.py"
MARGIN = 1.10  # a recommendation within 10% of the best bare time is right
IO_THREADS = (8, 32)  # more threads tried bare for the kinds that wait
UNCHUNKED = ("serial",)  # its bare run takes no chunksize
# The table is wider than a terminal: a file or CI log gets all of it.
wide = Console(highlight=False, width=None if sys.stdout.isatty() else 170)

Fn = Callable[[Any], Any]


@dataclass(frozen=True)
class Case:
    """A reference workload: its function's name, what it stands for, and how many items."""

    name: str
    kind: str
    items: int
    quick_items: int
    waits: bool = False  # I/O-like: more threads than cores may pay


CASES = (
    Case("py_compute", "pure-Python compute", 16, 6),
    Case("hash_buffer", "C releasing the GIL (hashlib)", 16, 6),
    Case("zlib_compress", "C releasing the GIL (zlib)", 16, 6),
    Case("sleep_io", "blocking I/O (sleep)", 30, 10, waits=True),
    Case("subprocess_wait", "subprocess waits", 16, 8, waits=True),
    Case("tiny", "tiny items", 200_000, 20_000),
    Case("large_args", "8 MB arguments", 24, 6),
    Case("large_results", "16 MB results", 16, 4),
    Case("numpy_matmul", "native-threaded numpy", 8, 4),
    Case("mixed", "mixed compute and sleep", 24, 8, waits=True),
    Case("gil_switching", "threads lose to serial", 8_000, 2_000),
)


@dataclass(frozen=True)
class Config:
    """An executor, its worker count and chunksize (None: the executor's own default)."""

    executor: str
    workers: int
    chunksize: int | None = None

    @property
    def label(self) -> str:
        if self.executor == "serial":
            return "serial"
        chunk = f" c{self.chunksize}" if self.chunksize and self.chunksize > 1 else ""
        return f"{self.executor} ×{self.workers}{chunk}"


# --- the bare harness: no poolscope code from here to the end of `time_bare` -----------------


def _in_chunks(fn: Fn, items: Sequence[Any], chunksize: int | None) -> tuple[Fn, list[Any]]:
    """With a chunksize, the work handed over a chunk at a time, as poolscope's trials and its
    code to paste do (``run_chunk``); without one, item by item, as a user's first try would."""
    if not chunksize:
        return fn, list(items)
    return (lambda chunk: [fn(item) for item in chunk],
            [items[i:i + chunksize] for i in range(0, len(items), chunksize)])


def _flat(results: list[Any], chunksize: int | None) -> list[Any]:
    return [r for chunk in results for r in chunk] if chunksize else results


async def _gather_in_threads(fn: Fn, items: Sequence[Any], workers: int,
                             chunksize: int | None) -> list[Any]:
    """asyncio with a plain function: to_thread, at most ``workers`` at once."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(workers))
    limit = asyncio.Semaphore(workers)
    task, work = _in_chunks(fn, items, chunksize)

    async def one(piece: Any) -> Any:
        async with limit:
            return await asyncio.to_thread(task, piece)

    return _flat(await asyncio.gather(*(one(piece) for piece in work)), chunksize)


BARE = ("serial", "thread", "thread-pool", "process", "process-fork", "process-spawn",
        "process-forkserver", "process-pool", "asyncio", "loky")


def bare_map(config: Config, fn: Fn, items: Sequence[Any]) -> list[Any]:
    """Run ``fn`` over ``items`` as a user would write poolscope's executor ``config.executor``
    with the standard library (or loky), nothing of poolscope's: the code poolscope hands over
    to paste (``recommendation.code``) does the same."""
    name, workers, chunksize = config.executor, config.workers, config.chunksize
    if name == "serial":
        return [fn(item) for item in items]
    if name == "thread":  # ThreadPoolExecutor.map ignores chunksize: chunks by hand
        task, work = _in_chunks(fn, items, chunksize)
        with ThreadPoolExecutor(workers) as threads:
            return _flat(list(threads.map(task, work)), chunksize)
    if name == "thread-pool":
        with ThreadPool(workers) as pool:  # leaving the block terminates the pool
            return pool.map(fn, items, chunksize)
    if name == "process-pool":
        with multiprocessing.Pool(workers) as pool:
            return pool.map(fn, items, chunksize)
    if name == "process" or name.startswith("process-"):
        method = name.partition("-")[2] or None
        context = multiprocessing.get_context(method)
        with ProcessPoolExecutor(workers, mp_context=context) as processes:
            return list(processes.map(fn, items, chunksize=chunksize or 1))
    if name == "asyncio":
        return asyncio.run(_gather_in_threads(fn, items, workers, chunksize))
    if name == "loky":  # fresh per run, as the pasted script's reusable pool is on its run
        import loky

        with loky.ProcessPoolExecutor(workers) as processes:
            return list(processes.map(fn, items, chunksize=chunksize or 1))
    raise ValueError(f"no bare equivalent for executor {name!r}")


def time_bare(configs: Sequence[Config], fn: Fn, items: Sequence[Any],
              rounds: int) -> dict[Config, list[float]]:
    """Interleaved rounds (the order rotates each round); each run's results are kept until
    its clock stops, then dropped outside the timed span."""
    times: dict[Config, list[float]] = {c: [] for c in configs}
    for round_ in range(rounds):
        shift = round_ % len(configs)
        for config in [*configs[shift:], *configs[:shift]]:
            gc.collect()
            began = time.perf_counter()
            results = bare_map(config, fn, items)
            times[config].append(time.perf_counter() - began)
            assert len(results) == len(items)
            del results
    return times


# --- poolscope's verdict, through the real CLI -----------------------------------------------


@dataclass
class Verdict:
    """What ``poolscope run`` recommended (``config`` None: no recommendation or no result)."""

    config: Config | None
    classification: str = "?"
    inconclusive: bool = False
    problem: str = ""  # why there is no recommendation
    seconds: float = 0.0  # how long the CLI ran


def item_args(case: Case, count: int, folder: Path) -> tuple[list[str], list[Any]]:
    """The CLI's item options and the same items for the bare runs."""
    if case.name != "large_args":
        return ["--items", str(count)], list(range(count))
    path = folder / "large_args.jsonl"
    truth_workloads._write_items(str(path), count)
    with path.open(encoding="utf-8") as f:
        return ["--items-from", str(path)], [json.loads(line) for line in f]


def poolscope_verdict(case: Case, items: list[str], max_time: float, folder: Path) -> Verdict:
    """Run ``poolscope run`` with default options; keep its terminal output beside its JSON."""
    out = folder / f"{case.name}.json"
    out.unlink(missing_ok=True)  # a kept folder's old result must not pass for this run's
    command = [sys.executable, "-m", "poolscope", "run", f"{WORKLOADS_FILE}:{case.name}",
               *items, "--json", str(out), "--no-store", "--max-time", str(max_time), "-q"]
    began = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=20 * max_time + 300, env={**os.environ, "COLUMNS": "100"})
    except subprocess.TimeoutExpired:
        return Verdict(None, problem="the CLI timed out", seconds=time.perf_counter() - began)
    seconds = time.perf_counter() - began
    (folder / f"{case.name}.txt").write_text(done.stdout + done.stderr, encoding="utf-8")
    if not out.exists():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Verdict(None, problem=f"exit {done.returncode}: {last}", seconds=seconds)
    result = json.loads(out.read_text(encoding="utf-8"))
    rec = result.get("recommendation")
    kind = str(result.get("classification"))
    if not rec:
        return Verdict(None, kind, problem="no recommendation", seconds=seconds)
    config = Config(rec["executor"], int(rec["workers"]), rec.get("chunksize"))
    if config.executor in UNCHUNKED:  # the same bare run whatever the chunksize
        config = Config(config.executor, config.workers)
    return Verdict(config, kind, bool(rec.get("inconclusive")), seconds=seconds)


# --- one workload, the table -----------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    verdict: Verdict
    medians: dict[Config, float] = field(default_factory=dict)
    noise: float = 0.0  # the widest half-range of a configuration's rounds ÷ its median

    @property
    def best(self) -> Config:
        return min(self.medians, key=self.medians.__getitem__)

    @property
    def ratio(self) -> float:
        rec = self.verdict.config
        if rec is None or rec not in self.medians:
            return math.nan
        return self.medians[rec] / self.medians[self.best]

    @property
    def right(self) -> bool:
        return self.ratio <= MARGIN  # False for NaN


def baseline_configs(case: Case, cores: int, items: int) -> list[Config]:
    """Serial, threads (more of them for kinds that wait) and processes with Pool's chunks."""
    threads = [cores, *(n for n in IO_THREADS if case.waits and n > cores)]
    chunks = max(1, math.ceil(items / (4 * cores)))
    return [Config("serial", 1), *(Config("thread", n) for n in threads),
            Config("process", cores, chunks)]


def run_case(case: Case, args: argparse.Namespace, cores: int, folder: Path,
             scratch: Path) -> Outcome:
    count = case.quick_items if args.quick else case.items
    cli_items, items = item_args(case, count, scratch)
    verdict = poolscope_verdict(case, cli_items, args.max_time, folder)
    configs = baseline_configs(case, cores, count)
    if verdict.config is not None and verdict.config.executor not in BARE:
        verdict.problem = f"no bare equivalent of {verdict.config.label}"
        verdict.config = None
    if verdict.config is not None and verdict.config not in configs:
        configs.append(verdict.config)
    fn = getattr(truth_workloads, case.name)
    times = time_bare(configs, fn, items, args.rounds)
    outcome = Outcome(case, verdict, {c: median(t) for c, t in times.items()},
                      max((max(t) - min(t)) / 2 / median(t) for t in times.values()))
    console.print(f"{case.name} ({case.kind}): {describe(outcome)} "
                  f"(poolscope took {verdict.seconds:.0f} s)")
    return outcome


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.2f} s"


def describe(outcome: Outcome) -> str:
    bare = ", ".join(f"{c.label} {seconds(t)}" for c, t in outcome.medians.items())
    rec = outcome.verdict.config
    said = rec.label if rec else outcome.verdict.problem
    ratio = f" ({outcome.ratio:.2f}× best)" if rec else ""
    return f"bare {bare}; poolscope: {said} → {'right' if outcome.right else 'WRONG'}{ratio}"


def table_rows(outcomes: Sequence[Outcome], cores: int) -> tuple[list[str], list[list[str]]]:
    """The table's header and one row of plain cells per workload."""
    columns = ["serial", f"thread ×{cores}", *(f"thread ×{n}" for n in IO_THREADS),
               f"process ×{cores}"]
    header = ["workload", *columns, "bare noise", "best", "poolscope says", "class",
              "its bare time", "÷ best", "verdict"]
    rows = []
    for o in outcomes:
        by_label: dict[str, float] = {}
        for c, t in o.medians.items():  # the baseline configurations come first
            by_label.setdefault(f"{c.executor} ×{c.workers}" if c.workers > 1 else c.label, t)
        rec = o.verdict.config
        said = (rec.label + (" (inconclusive)" if o.verdict.inconclusive else "")
                if rec else o.verdict.problem)
        rows.append([o.case.name, *(seconds(by_label.get(c)) for c in columns),
                     f"±{o.noise:.0%}", o.best.label,
                     said, o.verdict.classification,
                     seconds(o.medians.get(rec)) if rec else "–",
                     f"{o.ratio:.2f}" if rec else "–", "right" if o.right else "WRONG"])
    return header, rows


def print_table(outcomes: Sequence[Outcome], cores: int, rounds: int, markdown: bool) -> None:
    header, rows = table_rows(outcomes, cores)
    table = Table(title=f"truth suite: bare medians of {rounds} interleaved rounds",
                  title_justify="left")
    for column in header:
        table.add_column(column)
    for row in rows:
        verdict = "[green]right[/green]" if row[-1] == "right" else "[bold red]WRONG[/bold red]"
        table.add_row(*row[:-1], verdict)
    wide.print(table)
    console.print("bare noise: the widest half-range of one configuration's rounds ÷ its "
                  "median; well above 10%, the rounds cannot tell a 10% difference")
    wrong = [o.case.name for o in outcomes if not o.right]
    console.print(f"{len(outcomes) - len(wrong)} of {len(outcomes)} right"
                  + (f"; wrong: {', '.join(wrong)}" if wrong else ""))
    if markdown:
        lines = [header, ["---"] * len(header), *rows]
        print("\n" + "\n".join("| " + " | ".join(line) + " |" for line in lines))


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", help="comma-separated names (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer items: a smoke test")
    parser.add_argument("--rounds", type=int, help="bare rounds per configuration "
                        "(default 5, 3 with --quick)")
    parser.add_argument("--max-time", type=float, help="poolscope's --max-time per workload "
                        "(default 20 s, 4 s with --quick)")
    parser.add_argument("--keep", type=Path, help="keep each run's JSON and terminal output here")
    parser.add_argument("--markdown", action="store_true", help="also print the table as "
                        "Markdown (for docs/benchmarks.md)")
    parser.add_argument("--check", action="store_true", help="exit 1 when any verdict is wrong")
    args = parser.parse_args(argv)
    known = {c.name: c for c in CASES}
    names = [n.strip() for n in args.workloads.split(",") if n.strip()] if (
        args.workloads is not None) else list(known)
    unknown = [n for n in names if n not in known]
    if not names:
        parser.error(f"--workloads names none; known: {', '.join(known)}")
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(known)}")
    args.cases = [known[n] for n in names]
    if args.rounds is None:
        args.rounds = 3 if args.quick else 5
    if args.max_time is None:
        args.max_time = 4.0 if args.quick else 20.0
    if args.rounds < 1 or args.max_time <= 0:
        parser.error("--rounds must be at least 1 and --max-time more than 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        return run_suite(args)
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


def run_suite(args: argparse.Namespace) -> int:
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count()) or 1
    console.print(machine_line())
    with tempfile.TemporaryDirectory(prefix="truth-") as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        outcomes = [run_case(case, args, cores, folder, Path(scratch))
                    for case in args.cases]
    console.print(machine_line())
    print_table(outcomes, cores, args.rounds, args.markdown)
    return 1 if args.check and not all(o.right for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
