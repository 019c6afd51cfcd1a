"""``poolscope.map`` against the best bare configuration: is picking while working worth it?

Issue 15's acceptance point 3: the whole ``poolscope.map(fn, items)`` wall, calibration
included, against the best bare configuration timed in the same run, ≤ 1.15× on runs of 5 s or
more and ≤ 1.3× + 50 ms on short ones, and never more than 5% + 50 ms slower than plain serial
``map``. Cases:

- **short**: every truth-suite workload (``truth_workloads.py``) at the truth suite's item count
  (``bench_truth.CASES``; ``large_args``' 8 MB string items made as the truth suite makes them);
- **long**: ``cpu_bound`` (pure-Python arithmetic), ``gil_releasing`` (SHA-256, which releases
  the GIL), ``io_bound`` (10 ms ``time.sleep``) from ``auto_workloads.py`` and ``tiny_items``
  (the truth suite's ``tiny``, ~1 µs), each sized at start-up from a serial sample so that plain
  serial map takes at least 5 s (2 s with ``--quick``, which then does not measure the 5 s
  criterion).

For each case, interleaved rounds (A B C … then B C … A, median of ``--rounds``):

- ``poolscope.map(fn, items)`` with default options, timed whole (calibration, pool start and
  stop, the result list);
- bare, no poolscope code: ``list(map(fn, items))``; ``ThreadPoolExecutor(min(32, cores + 4))
  .map`` in a ``with`` (start and shutdown timed), and for the kinds that wait 32 and 64 threads
  too; ``multiprocessing.Pool(cores).map(fn, items, chunksize)`` in a ``with`` with about four
  chunks per worker. **Best bare**: the fastest of these.

Every run's results are checked against the first serial run's (length, then each result; large
bytes and strings by length and hash, floats to 1e-6 relative): a wrong result is reported and
misses the goal. Two shortcuts keep the suite short, neither able to drop the best bare
configuration: with 100,000 items or more, a thread pool whose first 10,000 items take over 3×
serial's is left out (``ThreadPoolExecutor.map`` makes a future per item: millions of near-empty
items would take minutes and gigabytes; its time shown is the prefix's, scaled, marked ``~``);
and after the first round, a bare pool more than 2× slower than the fastest bare run of that
round runs no more rounds (its time is its one round's).

Run: ``python benchmarks/bench_auto.py [--quick] [--cases a,b|short|long] [--rounds N]
[--markdown] [--check]``. Exit status 0 (it is a benchmark), or with ``--check`` 1 when any goal
is missed.
"""

from __future__ import annotations

import argparse
import gc
import math
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import auto_workloads
import bench_truth
import poolscope
import truth_workloads
from _common import console, machine_line, median
from poolscope.automap import MapDecision

LONG_S = 5.0  # a long case's serial time, at least
QUICK_LONG_S = 2.0
SIZE_MARGIN = 1.15  # long cases are sized to this × their target, against a slower round
SAMPLE_S = 0.5  # serial sample that sizes a long case
SAMPLE_REPEATS = 2  # the sample again, this many times: the fastest counts
LONG_GOAL = 1.15  # × best bare
SHORT_GOAL = (1.3, 0.05)  # × best bare + seconds
SERIAL_GOAL = (1.05, 0.05)  # × serial + seconds
WAIT_THREADS = (32, 64)  # more threads tried bare for the kinds that wait
SCREEN_FROM = 100_000  # items from which thread pools are screened on a prefix
SCREEN_ITEMS = 10_000
SCREEN_FACTOR = 3.0
DROP_FACTOR = 2.0  # after round 1, bare pools this much slower than the fastest stop
# The table is wider than a terminal: a file or CI log gets all of it.
wide = Console(highlight=False, width=None if sys.stdout.isatty() else 240)

Fn = Callable[[Any], Any]


@dataclass
class Case:
    """A workload, its function, how many items and whether it is a long case."""

    name: str
    kind: str
    fn: Fn
    items: int = 0  # long cases: set by `size_long`
    long: bool = False
    waits: bool = False  # I/O-like: more threads than cores may pay
    per_item_s: float = 0.0  # long cases: the serial sample's time per item


def short_cases() -> list[Case]:
    return [Case(c.name, c.kind, getattr(truth_workloads, c.name), c.items, waits=c.waits)
            for c in bench_truth.CASES]


def long_cases() -> list[Case]:
    return [Case("cpu_bound", "pure-Python arithmetic", auto_workloads.cpu_bound, long=True),
            Case("gil_releasing", "SHA-256: C releasing the GIL", auto_workloads.gil_releasing,
                 long=True),
            Case("io_bound", "10 ms time.sleep", auto_workloads.io_bound, long=True,
                 waits=True),
            Case("tiny_items", "~1 µs items (truth's tiny)", truth_workloads.tiny, long=True)]


def size_long(case: Case, target_s: float) -> None:
    """Time serial batches of growing size until one takes ``SAMPLE_S``, then that batch
    ``SAMPLE_REPEATS`` times more; size the case from the fastest (other load only slows a
    batch: the slowest would size the case short of its target once the load is gone)."""
    count = 1
    while True:
        elapsed = _serial_sample(case.fn, count)
        if elapsed >= SAMPLE_S:
            break
        count *= 2 if elapsed > SAMPLE_S / 8 else 8
    elapsed = min([elapsed, *(_serial_sample(case.fn, count) for _ in range(SAMPLE_REPEATS))])
    case.per_item_s = elapsed / count
    case.items = max(1, math.ceil(target_s * SIZE_MARGIN / case.per_item_s))


def _serial_sample(fn: Fn, count: int) -> float:
    gc.collect()
    began = time.perf_counter()
    list(map(fn, range(count)))  # as the bare serial run does
    return time.perf_counter() - began


# --- configurations and the bare runs -------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """``map`` (poolscope.map, defaults) or a bare executor, its workers and chunksize."""

    name: str  # "map", "serial", "thread", "process-pool"
    workers: int = 1
    chunksize: int | None = None

    @property
    def label(self) -> str:
        if self.name in ("map", "serial"):
            return self.name
        return f"{self.name} ×{self.workers}"


def configs_for(case: Case, cores: int) -> list[Config]:
    """Serial first (its first run is the results' reference), then map, threads, processes."""
    threads = [min(32, cores + 4)]
    threads += [n for n in WAIT_THREADS if case.waits and n > threads[0]]
    chunks = max(1, math.ceil(case.items / (4 * cores)))
    return [Config("serial"), Config("map"), *(Config("thread", n) for n in threads),
            Config("process-pool", cores, chunks)]


def run_config(config: Config, fn: Fn, items: Sequence[Any],
               decisions: list[MapDecision]) -> list[Any]:
    if config.name == "map":
        return poolscope.map(fn, items, decision=decisions)
    if config.name == "serial":
        return list(map(fn, items))
    if config.name == "thread":
        with ThreadPoolExecutor(config.workers) as threads:
            return list(threads.map(fn, items))
    if config.name == "process-pool":
        with multiprocessing.Pool(config.workers) as pool:  # leaving it terminates the pool
            return pool.map(fn, items, config.chunksize)
    raise ValueError(config.name)


# --- checking results ----------------------------------------------------------------------


def fingerprint(results: list[Any]) -> list[Any]:
    """The results, with large bytes and strings as (type, length, hash): small to keep."""
    if results and isinstance(results[0], bytes | str):
        return [(type(v).__name__, len(v), hash(v)) if isinstance(v, bytes | str) and
                len(v) > 256 else v for v in results]
    return results


def mismatch(reference: list[Any], got: list[Any]) -> str | None:
    """Why ``got`` is not the reference's results (None: they are the same)."""
    if len(got) != len(reference):
        return f"{len(got)} results for {len(reference)} items"
    if got == reference:
        return None
    for index, (want, have) in enumerate(zip(reference, got, strict=True)):
        if want == have or (isinstance(want, float) and isinstance(have, float) and
                            math.isclose(want, have, rel_tol=1e-6, abs_tol=1e-9)):
            continue
        return f"item {index}: {str(have)[:40]!r}, serial map gave {str(want)[:40]!r}"
    return None


# --- timing one case -----------------------------------------------------------------------


@dataclass
class Runs:
    """One configuration's runs: times, map's decisions, wrong results, failures."""

    times: list[float] = field(default_factory=list)
    decisions: list[MapDecision] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    estimate: float | None = None  # screened out: the prefix's time scaled to every item

    @property
    def seconds(self) -> float:
        if self.times:
            return median(self.times)
        return self.estimate if self.estimate is not None else math.nan


def timed(config: Config, fn: Fn, items: Sequence[Any], runs: Runs) -> list[Any] | None:
    """One run: its wall time kept, its results returned (None when it raised)."""
    gc.collect()
    began = time.perf_counter()
    try:
        results = run_config(config, fn, items, runs.decisions)
    except Exception as exc:  # reported as a wrong result, the case goes on
        runs.wrong.append(f"raised {type(exc).__name__}: {exc}"[:120])
        return None
    runs.times.append(time.perf_counter() - began)
    return results


def screen(case: Case, configs: list[Config], items: Sequence[Any],
           runs: dict[Config, Runs]) -> list[Config]:
    """With many items, leave out thread pools far slower than serial on a prefix."""
    if len(items) < SCREEN_FROM:
        return configs
    prefix = items[:SCREEN_ITEMS]
    spent: dict[Config, float] = {}
    for config in [c for c in configs if c.name in ("serial", "thread")]:
        gc.collect()
        began = time.perf_counter()
        run_config(config, case.fn, prefix, [])
        spent[config] = time.perf_counter() - began
    serial = spent[Config("serial")]
    kept = []
    for config in configs:
        if config.name == "thread" and spent[config] > SCREEN_FACTOR * serial:
            runs[config].estimate = spent[config] * len(items) / len(prefix)
            console.print(f"  {config.label} left out: {len(prefix):,} items in "
                          f"{spent[config]:.3f} s, serial {serial:.3f} s")
        else:
            kept.append(config)
    return kept


def time_case(case: Case, items: Sequence[Any], cores: int,
              rounds: int) -> tuple[dict[Config, Runs], list[Config]]:
    configs = configs_for(case, cores)
    runs = {c: Runs() for c in configs}
    active = screen(case, configs, items, runs)
    reference: list[Any] | None = None
    for round_ in range(rounds):
        shift = round_ % len(active)
        for config in [*active[shift:], *active[:shift]]:
            results = timed(config, case.fn, items, runs[config])
            if results is None:
                continue
            if reference is None:  # the first run is serial's (round 0 starts with it)
                reference = fingerprint(results)
            else:
                why = mismatch(reference, fingerprint(results))
                if why:
                    runs[config].wrong.append(why)
            del results
        if round_ == 0:  # bare pools far slower than the fastest bare run stop here
            bare = [runs[c].times[0] for c in active if c.name != "map" and runs[c].times]
            fastest = min(bare, default=math.inf)
            active = [c for c in active if c.name in ("map", "serial") or (
                runs[c].times and runs[c].times[0] <= DROP_FACTOR * fastest)]
    return runs, configs


# --- the verdict ---------------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    runs: dict[Config, Runs]
    configs: list[Config]
    cores: int

    def seconds(self, config: Config) -> float:
        return self.runs[config].seconds

    @property
    def serial(self) -> float:
        return self.seconds(Config("serial"))

    @property
    def map_s(self) -> float:
        return self.seconds(Config("map"))

    @property
    def best(self) -> Config:
        bare = [c for c in self.configs if c.name != "map" and self.runs[c].times]
        return min(bare, key=self.seconds)

    @property
    def best_at_map_sizes(self) -> Config:
        """The fastest bare configuration with map's own worker counts (for reference)."""
        own = {"serial": 1, "thread": min(32, self.cores + 4), "process-pool": self.cores}
        bare = [c for c in self.configs if own.get(c.name) == c.workers and self.runs[c].times]
        return min(bare, key=self.seconds)

    @property
    def limit(self) -> float:
        """The slowest map wall that meets both goals."""
        best = self.seconds(self.best)
        by_best = (LONG_GOAL * best if self.case.long
                   else SHORT_GOAL[0] * best + SHORT_GOAL[1])
        return min(by_best, SERIAL_GOAL[0] * self.serial + SERIAL_GOAL[1])

    @property
    def wrong(self) -> list[str]:
        return [f"{c.label}: {why}" for c, r in self.runs.items() for why in r.wrong]

    @property
    def met(self) -> bool:
        return not self.wrong and self.map_s <= self.limit  # False for NaN

    @property
    def noise(self) -> float:
        """The widest half-range of a configuration's rounds ÷ its median."""
        spreads = [(max(r.times) - min(r.times)) / 2 / median(r.times)
                   for r in self.runs.values() if len(r.times) > 1]
        return max(spreads, default=math.nan)  # NaN: one round, no spread to tell

    def decision(self) -> str:
        said = Counter(f"{d.executor}" + (f" ×{d.workers}" if d.executor != "serial" else "")
                       + f", {d.how}" for d in self.runs[Config("map")].decisions)
        if len(said) == 1:
            return next(iter(said))
        return "; ".join(f"{text} ({n}×)" for text, n in said.most_common())

    def calibration_items(self) -> str:
        counts = sorted(d.calibration_items for d in self.runs[Config("map")].decisions)
        if not counts:
            return "–"
        return f"{counts[0]:,}" if counts[0] == counts[-1] else f"{counts[0]:,}–{counts[-1]:,}"


def seconds(value: float, estimate: bool = False) -> str:
    if math.isnan(value):
        return "–"
    text = f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"~{text}" if estimate else text


def goal_text(case: Case) -> str:
    """The goal against the best bare time (the one against serial is the same for all)."""
    return (f"≤{LONG_GOAL}×" if case.long
            else f"≤{SHORT_GOAL[0]}×+{SHORT_GOAL[1] * 1e3:.0f} ms")


def bare_columns(outcomes: Sequence[Outcome]) -> list[str]:
    labels: list[str] = []
    for o in outcomes:
        for c in o.configs:
            if c.name not in ("map", "serial") and c.label not in labels:
                labels.append(c.label)
    return sorted(labels, key=lambda label: (label.startswith("process"), len(label), label))


def cell(runs: Runs, rounds: int) -> str:
    """A bare configuration's median, marked when screened out or stopped after round 1."""
    text = seconds(runs.seconds, runs.estimate is not None)
    return text + (" (1 round)" if len(runs.times) == 1 < rounds else "")


def table_rows(outcomes: Sequence[Outcome], cores: int,
               rounds: int) -> tuple[list[str], list[list[str]]]:
    columns = bare_columns(outcomes)
    header = ["case", "items", "serial", *columns, "noise", "best bare", "poolscope.map",
              "decision", "calib. items", "÷ best", "÷ best at map's sizes",
              "÷ serial", "goal ÷ best", "limit", "verdict"]
    rows = []
    for o in outcomes:
        by_label = {c.label: o.runs[c] for c in o.configs}
        best, own = o.best, o.best_at_map_sizes
        verdict = "met" if o.met else "MISSED" + (" (wrong results)" if o.wrong else "")
        rows.append([
            o.case.name + (" (long)" if o.case.long else ""), f"{o.case.items:,}",
            seconds(o.serial),
            *(cell(by_label[c], rounds) if c in by_label else "–" for c in columns),
            "–" if math.isnan(o.noise) else f"±{o.noise:.0%}",
            f"{best.label} {seconds(o.seconds(best))}",
            seconds(o.map_s), o.decision(), o.calibration_items(),
            f"{o.map_s / o.seconds(best):.2f}", f"{o.map_s / o.seconds(own):.2f}",
            f"{o.map_s / o.serial:.2f}", goal_text(o.case), seconds(o.limit), verdict])
    return header, rows


def print_table(outcomes: Sequence[Outcome], cores: int, args: argparse.Namespace) -> None:
    header, rows = table_rows(outcomes, cores, args.rounds)
    table = Table(title=f"poolscope.map against bare: medians of {args.rounds} interleaved "
                  "rounds", title_justify="left")
    for column in header:
        table.add_column(column)
    for row in rows:
        verdict = ("[green]met[/green]" if row[-1] == "met"
                   else f"[bold red]{row[-1]}[/bold red]")
        table.add_row(*row[:-1], verdict)
    wide.print(table)
    console.print(f"goals: poolscope.map's wall ÷ the best bare one as in 'goal ÷ best', and "
                  f"≤ {SERIAL_GOAL[0]}× serial + {SERIAL_GOAL[1] * 1e3:.0f} ms for every case. "
                  "limit: the slowest poolscope.map wall meeting both goals. noise: the widest "
                  "half-range of one configuration's rounds ÷ its median. ÷ best at map's "
                  f"sizes (for reference): against the fastest of serial, thread ×"
                  f"{min(32, cores + 4)} and process-pool ×{cores}, the pools map itself "
                  "starts.")
    if args.quick:
        console.print(f"[bold]--quick[/bold]: long cases sized to {QUICK_LONG_S:.0f} s serial, "
                      f"not {LONG_S:.0f} s: the criterion on runs of 5 s or more is not what "
                      "is measured here.")
    for o in outcomes:
        if o.case.long and o.serial < (QUICK_LONG_S if args.quick else LONG_S):
            console.print(f"[yellow]{o.case.name}: serial took {o.serial:.2f} s, under the "
                          "target (the machine was faster than during sizing)[/yellow]")
        for why in o.wrong:
            console.print(f"[bold red]{o.case.name}: wrong results from {why}[/bold red]")
    missed = [o.case.name for o in outcomes if not o.met]
    console.print(f"{len(outcomes) - len(missed)} of {len(outcomes)} met"
                  + (f"; missed: {', '.join(missed)}" if missed else ""))
    if args.markdown:
        lines = [header, ["---"] * len(header), *rows]
        print("\n" + "\n".join("| " + " | ".join(line) + " |" for line in lines))


# --- the suite -----------------------------------------------------------------------------


def run_case(case: Case, args: argparse.Namespace, cores: int, scratch: Path) -> Outcome:
    _, items = bench_truth.item_args(bench_truth.Case(case.name, case.kind, case.items, 0),
                                     case.items, scratch)
    runs, configs = time_case(case, items, cores, args.rounds)
    outcome = Outcome(case, runs, configs, cores)
    bare = ", ".join(f"{c.label} {seconds(runs[c].seconds, runs[c].estimate is not None)}"
                     for c in configs if c.name != "map")
    console.print(f"{case.name} ({case.kind}, {case.items:,} items): bare {bare}; "
                  f"poolscope.map {seconds(outcome.map_s)} ({outcome.decision()}) → "
                  f"{'met' if outcome.met else 'MISSED'}")
    del items
    return outcome


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated names, or 'short' / 'long' (default: "
                        "all)")
    parser.add_argument("--quick", action="store_true", help=f"long cases of {QUICK_LONG_S:.0f} "
                        f"s serial instead of {LONG_S:.0f} s, 2 rounds: a smoke test")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per configuration "
                        "(default 3, 2 with --quick)")
    parser.add_argument("--markdown", action="store_true", help="also print the table as "
                        "Markdown (for docs/benchmarks.md)")
    parser.add_argument("--check", action="store_true", help="exit 1 when any goal is missed")
    args = parser.parse_args(argv)
    known = {c.name: c for c in [*short_cases(), *long_cases()]}
    names: list[str] = []
    for name in (args.cases.split(",") if args.cases is not None else list(known)):
        name = name.strip()
        if name in ("short", "long"):
            names += [n for n, c in known.items() if c.long == (name == "long")]
        elif name:
            names.append(name)
    unknown = [n for n in names if n not in known]
    if not names:
        parser.error(f"--cases names none; known: short, long, {', '.join(known)}")
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: short, long, "
                     f"{', '.join(known)}")
    args.selected = [known[n] for n in dict.fromkeys(names)]
    if args.rounds is None:
        args.rounds = 2 if args.quick else 3
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def run_suite(args: argparse.Namespace) -> int:
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count()) or 1
    console.print(machine_line())
    target = QUICK_LONG_S if args.quick else LONG_S
    for case in args.selected:
        if case.long:
            size_long(case, target)
            console.print(f"{case.name}: {case.per_item_s * 1e3:.4g} ms an item serially → "
                          f"{case.items:,} items (about {case.items * case.per_item_s:.1f} s "
                          f"serial: {target:.0f} s × {SIZE_MARGIN})")
    # Unrecorded warm-up: poolscope's lazy imports and a first pool of each kind.
    poolscope.map(truth_workloads.tiny, range(200_000))
    with tempfile.TemporaryDirectory(prefix="auto-") as scratch:
        outcomes = [run_case(case, args, cores, Path(scratch)) for case in args.selected]
    console.print(machine_line())
    print_table(outcomes, cores, args)
    return 1 if args.check and not all(o.met for o in outcomes) else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        return run_suite(args)
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
