"""What limits a workload, from measured quantities.

The rules, in order (first match wins); every threshold is a named constant:

0. ``native-threaded``: serial ran where a native thread pool of more than one thread is loaded
   (BLAS, OpenMP: ``environment["native_threads"]``, see native.py), its median item takes at
   least NATIVE_MIN_ITEM_S, and its process spent,
   outside the items' own thread, CPU of at least NATIVE_SHARE of the items' wall time: each
   item already computes on several cores. Its waits for those threads are not I/O (rule 1
   would otherwise read them so), and more workers multiply the threads (oversubscription):
   compare with ``--native-threads 1`` before adding workers.
1. ``io-bound``: in the serial trial, items spend at least IO_OFFCPU of their wall time off the CPU.
2. ``transfer-bound``: an argument and its result pickle to TRANSFER_BYTES or more, and pickling
   and unpickling them takes at least as long as the item's own work (the serial median wall):
   a process executor would spend more time copying than computing.
3. ``overhead-bound``: the median item takes under TINY_ITEM_S, so dispatch and recording rival it.
4. ``gil-releasing``: the best thread executor reaches THREAD_SCALES × serial speed with its
   items computing at once THREAD_BUSY or more on average (the GIL caps that at 1, whatever
   a noisy serial baseline makes of the speedup). asyncio counts as threads: plain functions
   run in its worker threads, coroutines share its one thread.
5. ``mixed``: off-CPU between MIXED_OFFCPU and IO_OFFCPU.
6. ``cpu-bound``: otherwise — the items hold the GIL.

With no serial trial there is no baseline: ``unknown``. Serial items that did not finish (timed
out, stopped for memory, lost with their worker: frames.UNFINISHED_KINDS) are left out of the
evidence, as their CPU is unknown — a CPU spin stopped by ``--timeout`` would otherwise read as
all off-CPU, io-bound — and the evidence says how many; with fewer than MIN_FINISHED serial
items left that finished, the classification is ``unknown`` too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._format import duration, size
from ..families import ASYNC, CLUSTER, INTERPRETER, PROCESS, THREAD, Family, family_of
from ..frames import unfinished_rows
from ..measure.native import describe

__all__ = ["Classification", "classify"]

IO_OFFCPU = 0.5
MIXED_OFFCPU = 0.2
TINY_ITEM_S = 100e-6
TRANSFER_BYTES = 64 << 10
THREAD_SCALES = 1.3
THREAD_BUSY = 1.2
NATIVE_SHARE = 0.15  # CPU in the serial process's other threads, as a share of item wall
NATIVE_MIN_ITEM_S = 1e-3  # below it, poolscope's own per-chunk work could pass NATIVE_SHARE
MIN_FINISHED = 3  # serial items that finished, needed when others did not


@dataclass(frozen=True)
class Classification:
    kind: str
    evidence: list[str]


def classify(summary: pd.DataFrame, items: pd.DataFrame, families: dict[str, str],
             transfer_bytes: float | None = None,
             transfer_s: float | None = None,
             native: dict[str, Any] | None = None) -> Classification:
    serial = summary[summary["executor"] == "serial"]
    if serial.empty:
        return Classification("unknown", ["no serial trial to compare against"])
    offcpu = float(serial["offcpu_fraction"].iloc[0])
    left_out = _left_out(items[items["executor"] == "serial"])
    if left_out.cannot_tell or np.isnan(offcpu):
        return Classification("unknown", [left_out.sentence or "no serial trial measured an "
                                          "item: each failed, or none of its items finished"])
    serial_items = items[(items["executor"] == "serial") & (items["status"] == "ok")]
    item_wall = float(serial_items["wall_s"].median()) if len(serial_items) else np.nan
    evidence = _serial_evidence(offcpu, item_wall, left_out, serial_items)
    thread_speedup, thread_busy = _speedup_evidence(summary, families, evidence)
    if transfer_bytes is not None:
        text = f"pickled argument and result: {size(transfer_bytes)} per item"
        if transfer_s is not None:
            text += f", {duration(transfer_s)} to pickle and unpickle"
        evidence.append(text)
    native_line = _native_threads(serial, serial_items, native)
    if native_line:
        return Classification("native-threaded", [*evidence, native_line])
    transfer_bound = (transfer_bytes is not None and transfer_s is not None
                      and transfer_bytes >= TRANSFER_BYTES and transfer_s >= item_wall)
    return Classification(_kind(offcpu, item_wall, transfer_bound, thread_speedup, thread_busy),
                          evidence)


def _kind(offcpu: float, item_wall: float, transfer_bound: bool, thread_speedup: float,
          thread_busy: float) -> str:
    """Rules 1 to 6 (see the module's docstring), first match wins."""
    if offcpu >= IO_OFFCPU:
        return "io-bound"
    if transfer_bound:
        return "transfer-bound"
    if item_wall < TINY_ITEM_S:
        return "overhead-bound"
    if thread_speedup >= THREAD_SCALES and not thread_busy < THREAD_BUSY:
        return "gil-releasing"
    if offcpu >= MIXED_OFFCPU:
        return "mixed"
    return "cpu-bound"


def _serial_evidence(offcpu: float, item_wall: float, left_out: _LeftOut,
                     serial_items: pd.DataFrame) -> list[str]:
    evidence = [f"serial items spend {offcpu:.0%} of their time off the CPU",
                f"median item takes {duration(item_wall)}"]
    if left_out.sentence:
        evidence.append(left_out.sentence)
    spanned = serial_items["span"] > 1 if "span" in serial_items else pd.Series(dtype=bool)
    if spanned.any():  # probe.py: too short to time one by one
        evidence.append(f"{spanned.mean():.0%} of them timed in spans of a median "
                        f"{int(serial_items['span'][spanned].median()):,} items, as reading "
                        "the clocks per item would cost more than 2% of one")
    return evidence


def _speedup_evidence(summary: pd.DataFrame, families: dict[str, str],
                      evidence: list[str]) -> tuple[float, float]:
    """Each family's best speedup, said in ``evidence``; returns the best thread (or asyncio)
    speedup and how many items threads computed at once there."""

    def rows_of(which: Callable[[Family], bool]) -> pd.DataFrame:
        chosen = [which(family_of(families.get(name, ""))) for name in summary["executor"]]
        return summary[np.array(chosen, dtype=bool) & (summary["workers"] > 1).to_numpy()]

    def best(family: Family) -> float:
        rows = rows_of(lambda kind: kind == family)
        return float(rows["speedup"].max()) if len(rows) else np.nan

    # Workers that take turns on this process's GIL: threads, and an event loop's coroutines.
    threaded = rows_of(lambda kind: kind.shares_gil).dropna(subset=["speedup"])
    thread_busy = (float(threaded.loc[threaded["speedup"].idxmax(), "cpu_parallelism"])
                   if len(threaded) else np.nan)
    thread_speedup, async_speedup, process_speedup = best(THREAD), best(ASYNC), best(PROCESS)
    if not np.isnan(thread_speedup):
        evidence.append(f"best thread speedup {thread_speedup:.2f}×")
    if not np.isnan(thread_busy):
        evidence.append(f"threads computed {thread_busy:.2f} items at once")
    if not np.isnan(async_speedup):
        evidence.append(f"best asyncio speedup {async_speedup:.2f}×")
        thread_speedup = float(np.fmax(thread_speedup, async_speedup))
    if not np.isnan(process_speedup):
        evidence.append(f"best process speedup {process_speedup:.2f}×")
    interpreter_speedup = best(INTERPRETER)  # a GIL each, like processes: not rule 4's threads
    if not np.isnan(interpreter_speedup):
        evidence.append(f"best subinterpreter speedup {interpreter_speedup:.2f}×")
    if not np.isnan(cluster_speedup := best(CLUSTER)):
        evidence.append(f"best cluster speedup {cluster_speedup:.2f}×")
    return thread_speedup, thread_busy


@dataclass(frozen=True)
class _LeftOut:
    """The serial item runs that did not finish, out of all of them."""

    unfinished: int
    total: int

    @property
    def cannot_tell(self) -> bool:
        return self.unfinished > 0 and self.total - self.unfinished < MIN_FINISHED

    @property
    def sentence(self) -> str:
        if not self.unfinished:
            return ""
        done = self.total - self.unfinished
        text = (f"{self.unfinished} of {self.total} serial item runs did not finish (stopped "
                "by a limit or lost with their worker) and are left out: their CPU time is "
                "unknown")
        if self.cannot_tell:
            text += f"; {done} finished, too few to tell (at least {MIN_FINISHED} needed)"
        return text


def _left_out(serial_rows: pd.DataFrame) -> _LeftOut:
    return _LeftOut(int(unfinished_rows(serial_rows).sum()), len(serial_rows))


def _native_threads(serial: pd.DataFrame, serial_items: pd.DataFrame,
                    native: dict[str, Any] | None) -> str | None:
    """Rule 0's evidence sentence, or None when it does not hold."""
    found = ((native or {}).get("executors", {}).get("serial") or {}).get("pools", [])
    if (not any(int(p.get("num_threads") or 1) > 1 for p in found)
            or not serial_items["wall_s"].median() >= NATIVE_MIN_ITEM_S):
        return None
    per_trial = serial_items.groupby("trial")[["cpu_s", "wall_s"]].sum()
    own_cpu, item_wall = float(per_trial["cpu_s"].median()), float(per_trial["wall_s"].median())
    process_cpu = float(serial["cpu_s"].iloc[0])
    if not item_wall > 0 or process_cpu - own_cpu < NATIVE_SHARE * item_wall:
        return None
    return (f"items used {process_cpu / item_wall:.1f}× their wall time in CPU, "
            f"{(process_cpu - own_cpu) / item_wall:.1f}× outside their own thread: native "
            f"threads ({describe(found)}); more workers multiply them, so compare with "
            "--native-threads 1 before adding workers")
