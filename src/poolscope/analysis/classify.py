"""What limits a workload, from measured quantities.

The rules, in order (first match wins); every threshold is a named constant:

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

With no serial trial there is no baseline: ``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._format import duration, size

__all__ = ["Classification", "classify"]

IO_OFFCPU = 0.5
MIXED_OFFCPU = 0.2
TINY_ITEM_S = 100e-6
TRANSFER_BYTES = 64 << 10
THREAD_SCALES = 1.3
THREAD_BUSY = 1.2


@dataclass(frozen=True)
class Classification:
    kind: str
    evidence: list[str]


def classify(summary: pd.DataFrame, items: pd.DataFrame, families: dict[str, str],
             transfer_bytes: float | None = None,
             transfer_s: float | None = None) -> Classification:
    serial = summary[summary["executor"] == "serial"]
    if serial.empty:
        return Classification("unknown", ["no serial trial to compare against"])
    offcpu = float(serial["offcpu_fraction"].iloc[0])
    serial_items = items[(items["executor"] == "serial") & (items["status"] == "ok")]
    item_wall = float(serial_items["wall_s"].median()) if len(serial_items) else np.nan
    evidence = [f"serial items spend {offcpu:.0%} of their time off the CPU",
                f"median item takes {duration(item_wall)}"]

    def rows_of(*kinds: str) -> pd.DataFrame:
        return summary[summary["executor"].map(families).isin(kinds) & (summary["workers"] > 1)]

    def best(family: str) -> float:
        rows = rows_of(family)
        return float(rows["speedup"].max()) if len(rows) else np.nan

    threaded = rows_of("thread", "async").dropna(subset=["speedup"])
    thread_busy = (float(threaded.loc[threaded["speedup"].idxmax(), "cpu_parallelism"])
                   if len(threaded) else np.nan)

    thread_speedup, async_speedup, process_speedup = best("thread"), best("async"), best("process")
    if not np.isnan(thread_speedup):
        evidence.append(f"best thread speedup {thread_speedup:.2f}×")
    if not np.isnan(thread_busy):
        evidence.append(f"threads computed {thread_busy:.2f} items at once")
    if not np.isnan(async_speedup):
        evidence.append(f"best asyncio speedup {async_speedup:.2f}×")
        thread_speedup = float(np.fmax(thread_speedup, async_speedup))
    if not np.isnan(process_speedup):
        evidence.append(f"best process speedup {process_speedup:.2f}×")
    interpreter_speedup = best("interpreter")  # a GIL each, like processes: not rule 4's threads
    if not np.isnan(interpreter_speedup):
        evidence.append(f"best subinterpreter speedup {interpreter_speedup:.2f}×")
    if transfer_bytes is not None:
        text = f"pickled argument and result: {size(transfer_bytes)} per item"
        if transfer_s is not None:
            text += f", {duration(transfer_s)} to pickle and unpickle"
        evidence.append(text)

    if offcpu >= IO_OFFCPU:
        kind = "io-bound"
    elif (transfer_bytes is not None and transfer_s is not None
          and transfer_bytes >= TRANSFER_BYTES and transfer_s >= item_wall):
        kind = "transfer-bound"
    elif item_wall < TINY_ITEM_S:
        kind = "overhead-bound"
    elif thread_speedup >= THREAD_SCALES and not thread_busy < THREAD_BUSY:
        kind = "gil-releasing"
    elif offcpu >= MIXED_OFFCPU:
        kind = "mixed"
    else:
        kind = "cpu-bound"
    return Classification(kind, evidence)
