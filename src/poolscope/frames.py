"""Tidy pandas frames built from trial records.

``items_frame``: one row per item and trial (the design's item record columns plus ``lane``, the
worker a row ran on, numbered per trial in order of first use, and ``span``: how many items were
timed together with it, 1 when timed alone; probe.py). ``trials_frame``: one row per
trial, with the per-trial sums the metrics need. ``melted_frame``: the notebook's long view
(``variable`` = worker, ``value`` = time, ``type`` = executor), normalised per type.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .measure.probe import STATUS_ERROR
from .model import TrialResult

__all__ = ["UNFINISHED_KINDS", "MergedBars", "concurrency", "concurrency_binned", "finished",
           "fraction", "items_frame", "lane_labels", "lane_numbers", "melted_frame",
           "merge_bars", "representative_trials", "trials_frame", "unfinished_rows",
           "worker_names"]

STATUS_NAMES = ["ok", "error"]
# The error kinds of items that did not finish: stopped by --timeout, --trial-timeout or
# --max-memory (limits.py), or lost with the worker that died under them (faults.py). A stopped
# item's CPU reading is 0 (unknown) and its start is when the watch first saw it, so such items
# are no evidence of how the function uses the CPU. An item whose function raised did run: its
# readings are real, and it counts.
UNFINISHED_KINDS = frozenset({"Timeout", "MemoryLimit", "WorkerDiedError"})
ITEM_COLUMNS = ["trial", "executor", "workers", "repeat", "item", "start_s", "end_s", "wall_s",
                "cpu_s", "pid", "tid", "host", "core", "lane", "status", "error", "worker",
                "retried", "span"]


def lane_numbers(pid: np.ndarray, tid: np.ndarray, start_ns: np.ndarray,
                 worker: np.ndarray | None = None) -> np.ndarray:
    """Number each worker (pid, thread) 0, 1, … in the order it first started an item.

    ``worker`` (codes of remote worker addresses, -1 for none) keeps apart workers on different
    hosts that happen to share a pid and tid.
    """
    if len(pid) == 0:
        return np.empty(0, np.int32)
    key = (pid.astype(np.int64) << 32) ^ tid.astype(np.int64)
    if worker is not None and (worker >= 0).any():
        _, inverse = np.unique(np.column_stack((worker.astype(np.int64), key)), axis=0,
                               return_inverse=True)
        inverse = inverse.reshape(-1)
        count = int(inverse.max()) + 1
    else:
        uniques, inverse = np.unique(key, return_inverse=True)
        count = len(uniques)
    first_start = np.full(count, np.iinfo(np.int64).max)
    np.minimum.at(first_start, inverse, start_ns)
    rank = np.empty(count, np.int32)
    rank[np.argsort(first_start, kind="stable")] = np.arange(count, dtype=np.int32)
    return rank[inverse]


def items_frame(trials: Sequence[TrialResult]) -> pd.DataFrame:
    """One row per item per trial; times in seconds since the trial started."""
    executors = list(dict.fromkeys(t.executor for t in trials))
    # host: the worker's host where the executor names it (dask), else the trial's host.
    hosts = list(dict.fromkeys([t.host for t in trials] + [
        w.get("host") or t.host for t in trials for w in t.worker_info]))
    addresses = list(dict.fromkeys([""] + [w["address"] for t in trials for w in t.worker_info]))
    parts = []
    for t in trials:
        cols = t.items
        n = len(cols)
        error = pd.Series(None, index=range(n), dtype=object)
        for e in t.errors:
            if e["item"] is None:
                continue
            # An item a dead worker took with it has an error but no row.
            row = int(np.searchsorted(cols.item, e["item"]))
            # The last error, unless one says the item did not finish (unfinished_rows).
            if row < n and cols.item[row] == e["item"] and not _unfinished(error.iat[row]):
                error.iat[row] = f"{e['kind']}: {e['message']}"
        host_of = np.array([hosts.index(w.get("host") or t.host) for w in t.worker_info]
                           + [hosts.index(t.host)], np.int32)  # code -1 picks the last
        address_of = np.array([addresses.index(w["address"]) for w in t.worker_info] + [0],
                              np.int32)
        parts.append(pd.DataFrame({
            "trial": np.full(n, t.index, np.int32),
            # Categoricals built from codes: no string object per row.
            "executor": pd.Categorical.from_codes(
                np.full(n, executors.index(t.executor), np.int8), categories=executors),
            "workers": np.full(n, t.workers, np.int32),
            "repeat": np.full(n, t.repeat, np.int32),
            "item": cols.item,
            "start_s": cols.start_ns / 1e9,
            "end_s": cols.end_ns / 1e9,
            "wall_s": (cols.end_ns - cols.start_ns) / 1e9,
            "cpu_s": cols.cpu_ns / 1e9,
            "pid": cols.pid,
            "tid": cols.tid,
            "host": pd.Categorical.from_codes(host_of[cols.worker], categories=hosts),
            "core": cols.core,
            "lane": lane_numbers(cols.pid, cols.tid, cols.start_ns, cols.worker),
            "status": pd.Categorical.from_codes((cols.status == STATUS_ERROR).astype(np.int8),
                                                categories=STATUS_NAMES),
            "error": error,
            "worker": pd.Categorical.from_codes(address_of[cols.worker], categories=addresses),
            "retried": cols.retried,
            "span": cols.span,
        }))
    if not parts:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def trials_frame(trials: Sequence[TrialResult]) -> pd.DataFrame:
    """One row per trial, with Σ item wall, Σ item CPU, parallelism and off-CPU fraction.

    ``parallelism`` (Σ item wall / trial wall) counts items in progress at once, waiting for the
    GIL included; ``cpu_parallelism`` (Σ item CPU / trial wall) counts items computing at once.
    Each item's CPU counts at most its wall time: one thread cannot compute longer than it ran,
    and what a reading holds beyond that is the probe's own work between items (sub-µs items).
    Items that did not finish (``finished``) are in progress but their CPU is unknown: they
    stay out of the CPU sums and the off-CPU fraction (NaN when no item finished), and
    ``unfinished`` counts them. ``startup_s`` is never negative: no item starts before its
    trial, yet a stopped item the watch had not seen yet carries the watch's own start, which
    comes just before the trial's clock.
    """
    rows = []
    for t in trials:
        cols = t.items
        done = finished(t)
        wall_ns = np.clip(cols.end_ns - cols.start_ns, 0, None)
        cpu_ns = np.minimum(np.clip(cols.cpu_ns, 0, None), wall_ns)[done]
        item_wall = float(wall_ns.sum()) / 1e9
        item_cpu = float(cpu_ns.sum()) / 1e9
        known_wall = float(wall_ns[done].sum()) / 1e9
        rows.append({
            "trial": t.index, "executor": t.executor, "workers": t.workers,
            "chunksize": t.chunksize, "repeat": t.repeat, "wall_s": t.wall_s, "cpu_s": t.cpu_s,
            "startup_s": max(0.0, t.startup_s), "teardown_s": t.teardown_s,
            "peak_rss": t.peak_rss, "status": t.status, "items": len(cols),
            "errors": int((cols.status != 0).sum()), "unfinished": int((~done).sum()),
            "item_wall_s": item_wall, "item_cpu_s": item_cpu,
            "parallelism": item_wall / t.wall_s if t.wall_s > 0 else np.nan,
            "cpu_parallelism": item_cpu / t.wall_s if t.wall_s > 0 else np.nan,
            "offcpu_fraction": 1 - item_cpu / known_wall if known_wall > 0 else np.nan,
            "cores_used": int(np.unique(cols.core[cols.core >= 0]).size),
            "workers_seen": int(np.unique((cols.pid.astype(np.int64) << 32)
                                          ^ cols.tid.astype(np.int64)).size),
            # a worker's initializer (call_shape.py), mean over the workers that ran it
            "initializer_s": float(np.mean(t.initializer_s)) if t.initializer_s else np.nan,
        })
    return pd.DataFrame(rows, columns=[
        "trial", "executor", "workers", "chunksize", "repeat", "wall_s", "cpu_s", "startup_s",
        "teardown_s", "peak_rss", "status", "items", "errors", "unfinished", "item_wall_s",
        "item_cpu_s", "parallelism", "cpu_parallelism", "offcpu_fraction", "cores_used",
        "workers_seen", "initializer_s"])


def finished(trial: TrialResult) -> np.ndarray:
    """Per row of ``trial.items``: False for an item that did not finish (UNFINISHED_KINDS)."""
    cols = trial.items
    gone = [int(e["item"]) for e in trial.errors
            if e.get("item") is not None and str(e.get("kind")) in UNFINISHED_KINDS]
    if not gone:
        return np.ones(len(cols), bool)
    return ~((cols.status == STATUS_ERROR) & np.isin(cols.item, gone))


def unfinished_rows(items: pd.DataFrame) -> pd.Series:
    """Per row of an items frame: True for an item that did not finish (UNFINISHED_KINDS),
    read from its ``error`` ("Kind: message")."""
    if "error" not in items or not len(items):
        return pd.Series(False, index=items.index, dtype=bool)
    return items["error"].map(_unfinished).astype(bool)


def _unfinished(error: object) -> bool:
    return isinstance(error, str) and error.partition(":")[0] in UNFINISHED_KINDS


def representative_trials(trials: Sequence[TrialResult]) -> list[TrialResult]:
    """Per (executor, workers), the trial with the median wall time (the lower one if even)."""
    groups: dict[tuple[str, int], list[TrialResult]] = {}
    for t in trials:
        groups.setdefault((t.executor, t.workers), []).append(t)
    chosen = []
    for group in groups.values():
        ordered = sorted(group, key=lambda t: t.wall_s)
        chosen.append(ordered[(len(ordered) - 1) // 2])
    return chosen


def trial_label(t: TrialResult, several_worker_counts: bool) -> str:
    return f"{t.executor} ×{t.workers}" if several_worker_counts else t.executor


def melted_frame(trials: Sequence[TrialResult]) -> pd.DataFrame:
    """The notebook's view: each item's finish time per worker, normalised per type.

    ``variable`` is the worker (its lane, "worker  0"), ``value`` the time the item finished
    in seconds after the type's first item started, ``type`` the executor.
    """
    chosen = representative_trials(trials)
    several = len({(t.executor, t.workers) for t in chosen}) > len({t.executor for t in chosen})
    parts = []
    for t in chosen:
        cols = t.items
        if not len(cols):
            continue
        lanes = lane_numbers(cols.pid, cols.tid, cols.start_ns, cols.worker)
        width = max(2, len(str(int(lanes.max()))))
        labels = np.array([f"worker {lane:{width}d}" for lane in range(int(lanes.max()) + 1)],
                          dtype=object)
        parts.append(pd.DataFrame({
            "variable": labels[lanes],
            "value": (cols.end_ns - cols.start_ns.min()) / 1e9,
            "type": trial_label(t, several),
        }))
    if not parts:
        return pd.DataFrame(columns=["variable", "value", "type"])
    return pd.concat(parts, ignore_index=True)


def concurrency(start: np.ndarray, end: np.ndarray, weight: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Items in progress over time, as a step function: ``level[i]`` holds from ``time[i]`` on.

    With ``weight`` (e.g. each item's CPU / wall) an item adds its weight instead of 1, so the
    level is the number of items *computing* at once. The first step starts at the first item's
    start and the last one, at 0, at the last item's end.
    """
    start = np.asarray(start, np.float64)
    end = np.asarray(end, np.float64)
    w = np.ones(len(start)) if weight is None else np.nan_to_num(np.asarray(weight, np.float64))
    if not len(start):
        return np.zeros(0), np.zeros(0)
    times = np.concatenate((start, end))
    deltas = np.concatenate((w, -w))
    order = np.argsort(times, kind="stable")
    times, deltas = times[order], deltas[order]
    level = np.cumsum(deltas)
    # One step per distinct time: the level after every event at that time.
    last = np.ones(len(times), bool)
    last[:-1] = times[1:] != times[:-1]
    level = level[last]
    level[np.abs(level) < 1e-9] = 0.0  # float sums of weights that cancel
    return times[last], level


def concurrency_binned(start: np.ndarray, end: np.ndarray, edges: np.ndarray,
                       weight: np.ndarray | None = None) -> np.ndarray:
    """The time-weighted mean of ``concurrency`` within each bin between ``edges`` (exact)."""
    times, level = concurrency(start, end, weight)
    edges = np.asarray(edges, np.float64)
    if not len(times):
        return np.zeros(max(len(edges) - 1, 0))
    # The area under the step function at each event time, then linear between events.
    area = np.concatenate(([0.0], np.cumsum(level[:-1] * np.diff(times))))
    at_edges = np.interp(edges, times, area, left=0.0, right=float(area[-1]))
    widths = np.diff(edges)
    return np.divide(np.diff(at_edges), widths, out=np.zeros(len(widths)), where=widths > 0)


@dataclass
class MergedBars:
    """A timeline's bars: one per item, or per run of one worker's neighbouring items."""

    lane: np.ndarray
    start: np.ndarray
    end: np.ndarray
    wall: np.ndarray  # Σ item wall inside the bar
    cpu: np.ndarray  # Σ item CPU inside the bar
    items: np.ndarray  # items inside the bar
    failed: np.ndarray  # any of them failed
    busy: np.ndarray  # share of the bar's span spent inside items: 1 unless merged

    @property
    def cpu_fraction(self) -> np.ndarray:
        """Σ CPU / Σ wall, clipped to 0..1; NaN where the wall time is zero."""
        return fraction(self.cpu, self.wall)


def fraction(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` clipped to 0..1 (an item's CPU / wall); NaN where ``den`` is not positive."""
    safe = np.where(den > 0, den, 1.0)
    return np.where(den > 0, np.clip(num / safe, 0.0, 1.0), np.nan)


def merge_bars(lane: np.ndarray, start: np.ndarray, end: np.ndarray, cpu: np.ndarray,
               failed: np.ndarray | None = None, *, cap: int, slots: int) -> MergedBars:
    """At most about ``cap`` bars: each worker's items merged into time slots when there are more.

    A slot is about ``span / slots`` wide (a pixel, for ``slots`` pixels), doubled until the bars
    fit under ``cap``. Bars come sorted by lane, then start.
    """
    lane = np.asarray(lane, np.int64)
    start = np.asarray(start, np.float64)
    end = np.asarray(end, np.float64)
    cpu = np.asarray(cpu, np.float64)
    failed = np.zeros(len(lane), bool) if failed is None else np.asarray(failed, bool)
    order = np.lexsort((start, lane))
    lane, start, end, cpu, failed = lane[order], start[order], end[order], cpu[order], failed[order]
    wall = end - start
    n = len(lane)
    if n <= cap:
        return MergedBars(lane, start, end, wall, cpu, np.ones(n, np.int64), failed, np.ones(n))
    span = max(float(end.max() - start.min()), 1e-9)
    width = max(span * 2 * (int(lane.max()) + 1) / cap, span / slots)
    while True:
        slot = np.floor(start / width)
        new = np.ones(n, bool)
        new[1:] = (lane[1:] != lane[:-1]) | (slot[1:] != slot[:-1])
        first = np.flatnonzero(new)
        if len(first) <= cap:
            break
        width *= 2
    bar_start = np.minimum.reduceat(start, first)
    bar_end = np.maximum.reduceat(end, first)
    bar_wall = np.add.reduceat(wall, first)
    busy = np.clip(bar_wall / np.maximum(bar_end - bar_start, width), 0.0, 1.0)
    return MergedBars(lane[first], bar_start, bar_end, bar_wall, np.add.reduceat(cpu, first),
                      np.diff(np.append(first, n)), np.logical_or.reduceat(failed, first), busy)


def lane_labels(frame: pd.DataFrame, lanes: int) -> list[str]:
    """``"0 · pid 1234"``, ``"1 · tid 5678"``…: each lane of one trial's items frame, named by
    ``worker_names`` from the lane's first item; plain numbers when there are no items."""
    if not len(frame):
        return [str(lane) for lane in range(lanes)]
    first = frame.drop_duplicates("lane").set_index("lane").reindex(range(lanes))
    names = worker_names(first["pid"].tolist(), first["tid"].tolist(),
                         str(frame["executor"].iloc[0]))
    return [f"{lane} · {name}" for lane, name in enumerate(names)]


def worker_names(pids: Sequence[int | None], tids: Sequence[int | None],
                 executor: str | None = None) -> list[str]:
    """A name per lane, from the pid and tid of the lane's first item.

    ``"pid 1234"`` when every lane is its own process, ``"slot 2 · tid 5678"`` for an event
    loop's concurrency slots (see ``probe.slot_tid``), ``"pid 1234 · tid 5678"`` when processes
    hold several lanes each, else ``"tid 5678"``; ``"?"`` for a lane with no item. The
    ``executor``'s family, when known, says whether lanes are processes (a one-lane trial
    cannot tell); ``NAME@/path/python`` counts as ``NAME``.
    """
    from .backends import REGISTRY
    from .measure.probe import split_tid

    known = [pid for pid in pids if pid is not None and pid == pid]
    cls = REGISTRY.get((executor or "").split("@")[0])
    if cls is not None:
        own_process = cls.family.own_processes and len(set(known)) == len(pids)
    else:
        own_process = len(set(known)) == len(pids) > 1
    several_processes = len(set(known)) > 1
    names = []
    for pid, tid in zip(pids, tids, strict=True):
        if pid is None or pid != pid or tid is None or tid != tid:
            names.append("?")
            continue
        native, slot = split_tid(int(tid))
        if slot >= 0:
            names.append(f"slot {slot} · tid {native}")
        elif own_process:
            names.append(f"pid {int(pid)}")
        elif several_processes:
            names.append(f"pid {int(pid)} · tid {native}")
        else:
            names.append(f"tid {native}")
    return names
