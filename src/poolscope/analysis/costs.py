"""A cost model per configuration: where the wall time of its median trial went.

The parts, in seconds of that trial's wall time, add up to it exactly (``COST_PARTS``):

- start-up: pool creation to the first item's start;
- dispatch: hand-off — the gaps between one worker's consecutive items (taking the next task,
  unpickling it, returning a result) and the last result's trip back to the parent;
- transfer: of that hand-off, the pickling of arguments and results, timed on a sample in the
  parent (zero where workers share memory);
- compute: the items' own CPU time, measured in this configuration (under the GIL a thread's
  item takes the same CPU as in serial but longer wall: the difference is waiting);
- waiting: the items' wall time off the CPU (the GIL, I/O, sleeps, a descheduled thread);
- idle: workers with nothing to run while others still worked (ramp-up, the tail, lanes unused);
- teardown: the last result to the pool closed;
- unexplained: what is left. Zero unless items overlapped more than the lanes allow (then it is
  negative and says so), the clocks disagree, or items did not finish: an item stopped by a
  limit or lost with its worker (frames.UNFINISHED_KINDS) has no known CPU time, so its wall
  time is neither compute nor waiting, and lands here.

Per-item readings are worker-seconds; a configuration has ``lanes = min(workers, items)``
workers running side by side, so each worker-time sum becomes wall time divided by the lanes.
An item's CPU counts at most its wall (native threads can use more CPU than wall time: that
excess is not wall time, and ``cpu_beyond_wall_s`` shows it apart, outside the sum).

The ``*_per_item`` columns are the worker-time per item that the recommendation's sentences use.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..families import family_of
from ..frames import unfinished_rows
from ..model import COUNTED

__all__ = ["COST_COLUMNS", "COST_PARTS", "cost_model", "trial_costs"]

# The parts that add up to ``wall_s``, in order, with what each is.
COST_PARTS: dict[str, str] = {
    "startup_s": "pool creation to the first item's start",
    "dispatch_s": "hand-off: gaps between a worker's consecutive items and the last result's "
                  "trip back, less the transfer",
    "transfer_s": "pickling arguments and results (timed on a sample in the parent), within "
                  "the hand-off; 0 where memory is shared",
    "compute_s": "the items' own CPU time in this configuration (each at most its wall)",
    "waiting_s": "the items' wall time off the CPU: the GIL, I/O, sleeps",
    "idle_s": "workers with nothing to run while others worked: ramp-up, the tail, unused lanes",
    "teardown_s": "the last result to the pool closed",
    "unexplained_s": "the rest: items that did not finish (CPU unknown); negative when items "
                     "overlapped more than the lanes allow",
}
COST_COLUMNS = ["executor", "workers", "chunksize", "trial", "lanes", "wall_s",
                *COST_PARTS, "cpu_beyond_wall_s", "compute_vs_serial",
                "dispatch_s_per_item", "transfer_bytes_per_item", "transfer_s_per_item",
                "compute_cpu_s_per_item", "compute_wall_s_per_item"]


def trial_costs(wall_s: float, startup_s: float, teardown_s: float, workers: int,
                items: pd.DataFrame, transfer_s_per_item: float = 0.0) -> dict[str, float]:
    """One trial's wall time split into ``COST_PARTS`` (they add up to ``wall_s``).

    ``items`` holds the trial's item rows: ``lane``, ``start_s``, ``end_s``, ``cpu_s`` (seconds
    since the trial's start, as in ``Result.items``), and ``error`` where some failed.
    """
    n = len(items)
    lanes = max(1, min(int(workers), n))
    startup = min(max(startup_s, 0.0), wall_s)
    teardown = min(max(teardown_s, 0.0), wall_s - startup)
    parts = dict.fromkeys(COST_PARTS, 0.0)
    parts.update(startup_s=startup, teardown_s=teardown)
    if n:
        start = items["start_s"].to_numpy(np.float64)
        end = items["end_s"].to_numpy(np.float64)
        wall = np.clip(end - start, 0.0, None)
        known = ~unfinished_rows(items).to_numpy(bool)  # the others' CPU is unknown
        cpu = np.clip(items["cpu_s"].to_numpy(np.float64), 0.0, None) * known
        on_cpu = np.minimum(cpu, wall)
        span = float(end.max() - start.min())  # first item's start to last item's end
        per_lane = pd.DataFrame({"lane": items["lane"].to_numpy(), "start": start, "end": end,
                                 "wall": wall}).groupby("lane").agg(
            start=("start", "min"), end=("end", "max"), wall=("wall", "sum"))
        gaps = float((per_lane["end"] - per_lane["start"] - per_lane["wall"]).clip(lower=0).sum())
        # After the last item: its result's trip back, before the teardown began.
        trip_back = max(0.0, wall_s - startup - teardown - span)
        handoff = gaps / lanes + trip_back
        transfer = min(max(transfer_s_per_item, 0.0) * n / lanes, handoff)
        parts.update(
            compute_s=float(on_cpu.sum()) / lanes,
            waiting_s=float((wall - on_cpu)[known].sum()) / lanes,
            transfer_s=transfer, dispatch_s=handoff - transfer,
            idle_s=max(0.0, span - (float(wall.sum()) + gaps) / lanes))
        parts["cpu_beyond_wall_s"] = float((cpu - on_cpu).sum()) / lanes
    parts["unexplained_s"] = wall_s - sum(parts[key] for key in COST_PARTS
                                          if key != "unexplained_s")
    parts["lanes"] = lanes
    return parts


def cost_model(trials: pd.DataFrame, items: pd.DataFrame, families: dict[str, str],
               transfer_bytes: float | None, transfer_s: float | None) -> pd.DataFrame:
    """One row per configuration: its median trial's wall time in parts (``COST_PARTS``)."""
    usable = trials[trials["status"].isin(COUNTED)]
    if usable.empty:
        return pd.DataFrame(columns=COST_COLUMNS)
    by_trial = items.groupby("trial", sort=False, observed=True).indices if len(items) else {}
    rows = []
    for (executor, workers, chunksize), group in usable.groupby(
            ["executor", "workers", "chunksize"], sort=False):
        median = group.sort_values("wall_s", kind="stable").iloc[(len(group) - 1) // 2]
        own = items.iloc[by_trial.get(median["trial"], [])]
        done = own[~unfinished_rows(own)]  # per-item readings: of the items that finished
        moves = family_of(families.get(str(executor), "")).pickles
        moved_s = _or_nan(transfer_s) if moves else 0.0
        parts = trial_costs(float(median["wall_s"]), float(median["startup_s"]),
                            float(median["teardown_s"]), int(workers), own,
                            0.0 if np.isnan(moved_s) else moved_s)
        n = max(len(own), 1)
        rows.append({
            "executor": executor, "workers": int(workers), "chunksize": int(chunksize),
            "trial": int(median["trial"]), "wall_s": float(median["wall_s"]), **parts,
            "cpu_beyond_wall_s": parts.get("cpu_beyond_wall_s", 0.0),
            "dispatch_s_per_item": (parts["dispatch_s"] + parts["transfer_s"])
            * parts["lanes"] / n,
            "transfer_bytes_per_item": _or_nan(transfer_bytes) if moves else 0.0,
            "transfer_s_per_item": moved_s,
            "compute_cpu_s_per_item": float(done["cpu_s"].median()) if len(done) else np.nan,
            "compute_wall_s_per_item": float(done["wall_s"].median()) if len(done) else np.nan,
            "_item_cpu": float(done["cpu_s"].sum()), "_items": len(done),
        })
    table = pd.DataFrame(rows)
    table["compute_vs_serial"] = _against_serial(table)
    return table[COST_COLUMNS]


def _against_serial(table: pd.DataFrame) -> pd.Series:
    """Σ item CPU of each configuration ÷ serial's, over the same number of items (else NaN).

    Near 1: the items cost what they cost in serial (under the GIL, threads only wait longer).
    Well above 1: each item needed more CPU here (contention, oversubscribed native threads).
    """
    serial = table[table["executor"] == "serial"]
    if serial.empty or not serial["_item_cpu"].iloc[0] > 0:
        return pd.Series(np.nan, index=table.index)
    same = table["_items"] == serial["_items"].iloc[0]
    return (table["_item_cpu"] / serial["_item_cpu"].iloc[0]).where(same)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)
