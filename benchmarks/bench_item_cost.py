"""Per-item recording cost: what the probe adds to every item it runs.

For each item the probe (``poolscope.measure.probe.run_chunk``) reads the current core, reads
``perf_counter_ns`` before and after the call, reads ``thread_time_ns`` and appends four numbers
to flat arrays (and keeps the return value). On items that do almost nothing — the built-in
``tiny`` workload, the overhead-bound case where the probe's cost is most visible — this
benchmark times, over the same 1,000,000 items:

- **bare**: ``for x in items: fn(x)``;
- **probe, each item alone**: ``probe.run_chunk(fn, Chunk(0, items))`` with spans turned off, one
  chunk in the calling thread (what the ``serial`` executor does, without the runner's pool
  bookkeeping): what every item long enough to be timed alone pays;
- **probe**: the same as poolscope runs it, which times items this short in spans.

The three alternate (the order rotating) after one unrecorded warm-up of each; each figure is
(median probe time − median bare time) / items. Goal: at most 2 µs added per item timed alone.
For reference it prints two floors, measured here the same way (a loop doing the reads minus an
empty loop): two ``perf_counter_ns()`` calls, the least any start/end recorder must pay, and all
four clock reads the probe makes per item. It also prints, from the probe's own records of 21
items of the ``cpu`` workload (size 1,000,000), the median gap between one item's end and the
next one's start: the probe's between-item work when its code is cold in the CPU's caches after a
real item, which a tight loop over tiny items does not show (not held to the goal).

Run: ``python benchmarks/bench_item_cost.py [--quick] [--items N] [--repeat N]``; exit status 1
when the goal is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from _common import Check, console, machine_line, median, print_checks
from poolscope.measure import probe
from poolscope.measure.probe import Chunk
from poolscope.workloads import resolve_workload

GOAL_NS = 2000.0

Fn = Callable[[Any], Any]


def time_bare(fn: Fn, items: Sequence[Any]) -> int:
    t0 = time.perf_counter_ns()
    for x in items:
        fn(x)
    return time.perf_counter_ns() - t0


def time_probe(fn: Fn, items: Sequence[Any], alone: bool = False) -> int:
    """``run_chunk``'s time; ``alone``: every item timed by itself (no spans)."""
    chosen = probe.SPAN_CHECK_BELOW_NS
    if alone:
        probe.SPAN_CHECK_BELOW_NS = 0  # no item is short enough to look for spans
    try:
        t0 = time.perf_counter_ns()
        record = probe.run_chunk(fn, Chunk(0, items))
        elapsed = time.perf_counter_ns() - t0
    finally:
        probe.SPAN_CHECK_BELOW_NS = chosen
    if len(record.start_ns) != len(items) or record.errors:
        raise RuntimeError(f"probe recorded {len(record.start_ns)} items, errors {record.errors}")
    return elapsed


def _empty_loop(n: int) -> int:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        pass
    return time.perf_counter_ns() - t0


def _two_perf_loop(n: int) -> int:
    perf = time.perf_counter_ns
    t0 = perf()
    for _ in range(n):
        perf()
        perf()
    return perf() - t0


def _probe_reads_loop(n: int) -> int:
    perf = time.perf_counter_ns
    thread_cpu = time.thread_time_ns
    core_of = probe.current_core
    t0 = perf()
    for _ in range(n):
        core_of()
        perf()
        perf()
        thread_cpu()
    return perf() - t0


def floor_ns(loop: Callable[[int], int], n: int, repeat: int) -> float:
    """ns per iteration of ``loop`` beyond an empty loop; medians of interleaved repeats."""
    empty: list[int] = []
    full: list[int] = []
    for _ in range(repeat):
        empty.append(_empty_loop(n))
        full.append(loop(n))
    return (median(full) - median(empty)) / n


def gap_on_real_items(n: int, size: int) -> tuple[float, float]:
    """Median µs between one item's end and the next one's start, and median item ms, on ``cpu``.

    Read from the probe's own records over ``n`` items of the ``cpu`` workload. Between items the
    probe reads the thread CPU clock and the core and appends to its arrays; after a real item
    has run for milliseconds those code paths are cold in the CPU's caches, so this gap is the
    probe's per-item cost as real workloads see it, which a tight loop of tiny items hides.
    """
    workload = resolve_workload("cpu", n, size)
    record = probe.run_chunk(workload.fn, Chunk(0, list(workload.items)))
    starts, ends = list(record.start_ns), list(record.end_ns)
    gaps = [s - e for s, e in zip(starts[1:], ends[:-1], strict=True)]
    walls = [e - s for s, e in zip(starts, ends, strict=True)]
    return median(gaps) / 1e3, median(walls) / 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 7")
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=None, help="interleaved repetitions")
    args = parser.parse_args(argv)
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 7)
    if repeat < 1 or args.items < 1:
        parser.error("--repeat and --items must be at least 1")

    workload = resolve_workload("tiny", args.items)
    fn = workload.fn
    items = list(workload.items)
    n = len(items)
    console.print(f"[bold]bench_item_cost[/bold]: {machine_line()}")
    console.print(f"workload tiny, {n:,} items in one chunk, {repeat} interleaved repetitions "
                  "(after one warm-up of each)")

    runs: dict[str, Callable[[], int]] = {
        "bare": lambda: time_bare(fn, items),
        "alone": lambda: time_probe(fn, items, alone=True),
        "spans": lambda: time_probe(fn, items)}
    times: dict[str, list[int]] = {name: [] for name in runs}
    for run in runs.values():  # warm-up
        run()
    order = list(runs)
    for i in range(repeat):
        for name in order[i % 3:] + order[:i % 3]:
            times[name].append(runs[name]())
    bare, alone, spans = times["bare"], times["alone"], times["spans"]

    added = (median(alone) - median(bare)) / n
    pair_added = median([(p - b) / n for p, b in zip(alone, bare, strict=True)])
    spans_added = (median(spans) - median(bare)) / n
    floor_reps = max(3, repeat)
    two_perf = floor_ns(_two_perf_loop, n, floor_reps)
    all_reads = floor_ns(_probe_reads_loop, n, floor_reps)
    gap_us, item_ms = gap_on_real_items(21, 1_000_000)

    checks = [
        Check("bare loop, per item", f"{median(bare) / n:,.0f} ns", "—", None),
        Check("probe, each item timed alone, per item", f"{median(alone) / n:,.0f} ns", "—",
              None),
        Check("added per item timed alone (difference of medians)", f"{added:,.0f} ns",
              f"≤ {GOAL_NS:,.0f} ns", added <= GOAL_NS),
        Check("added per item timed alone (median of pair differences)",
              f"{pair_added:,.0f} ns", "—", None),
        Check("probe as it runs (these items: in spans), per item",
              f"{median(spans) / n:,.0f} ns", "—", None),
        Check("added per item in spans (difference of medians)", f"{spans_added:,.0f} ns", "—",
              None),
        Check("floor: two perf_counter_ns() calls", f"{two_perf:,.0f} ns", "—", None),
        Check("floor: the probe's four reads (core, 2 × perf, thread CPU)",
              f"{all_reads:,.0f} ns", "—", None),
        Check(f"gap between items on cpu ({item_ms:.0f} ms items), median",
              f"{gap_us:,.1f} µs", "—", None),
    ]
    return 0 if print_checks("per-item recording cost (tiny, serial)", checks) else 1


if __name__ == "__main__":
    sys.exit(main())
