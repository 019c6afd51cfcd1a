"""Predictions for a machine with another number of cores, built from the parts a run measured.

For an executor with ``p`` workers on ``N`` cores of the same per-core speed:

    wall(p, N) = start-up(p) + max(makespan, n · parent) + teardown(p)

and then the model's own error on this machine is taken out (calibration, below). The parts,
each read from the run and each shown (``ExecutorParts``):

- **the items**: each item's CPU time ``u`` and its time off the CPU ``o`` (I/O, sleeps), from
  the serial trials (the median per item), so the makespan sees their spread;
- **hand-off** ``h`` per item, in the workers: the executor's measured dispatch per item (taking
  the next task, unpickling it, sending the result back);
- **parent** ``d`` per item: pickling arguments and results in the parent, which one thread
  does for every item: ``n · d`` is a floor under the wall time;
- **the CPU limit** ``L``: ``N`` cores, or for threads under a GIL ``1 / g``, where ``g`` is the
  share of the items' CPU time that holds the GIL, as the preflight watched it (gil_watch.py),
  else read from the thread trials (the CPU they computed at once against what the items asked
  for); one for an event loop;
- **makespan**: chunks of ``k`` items (the run's chunksize, or for a new worker count Pool.map's
  rule, about four chunks per worker) go in order to the first free worker; a chunk takes
  ``Σ (u + o + h)`` at full speed, and while the busy workers ask for more CPU than the limit
  (each its chunk's CPU share), all of them slow down to share it fairly — fewer busy workers
  at the end run faster again. The last, unlucky chunk — load imbalance — is part of it;
- **start-up and teardown** against the worker count: least squares ``a + b·p`` over the counts
  measured; with one count, proportional to ``p`` for processes (the parent starts each worker)
  and constant otherwise.

**Calibration.** The same model predicts each configuration measured here, on this run's cores;
measured ÷ predicted for the executor's nearest measured worker count scales the prediction (the
model's error here, reported as ``calibration``). **Interval**: that configuration's 95% interval,
as a share of its median, carried over. The speedup is against serial's measured wall time (serial
runs on one core anywhere).

``ASSUMPTIONS`` says what the model takes for granted; the CLI and README print them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._format import duration, json_number, size
from ..families import family_of

if TYPE_CHECKING:
    from ..result import Result

__all__ = ["ASSUMPTIONS", "ExecutorParts", "Forecast", "ItemParts", "Prediction",
           "describe_parts", "executor_parts", "item_parts", "predict", "predicted_wall"]

ASSUMPTIONS = (
    "cores of the same per-core speed as this machine's; the items cost what they cost here; "
    "no memory-bandwidth, cache or disk limit beyond what this run measured; the operating "
    "system shares the cores fairly among the workers; threads whose items compute hold the "
    "GIL unless the preflight's watch or a trial on two or more cores showed otherwise"
)
COMPUTING_SHARE = 0.5  # items whose CPU is this share of their wall or more compute
LIMITED_BELOW = 0.8  # threads computing under this share of what the items asked: a GIL


@dataclass(frozen=True)
class ItemParts:
    """Each item's CPU time and time off the CPU on one core, and serial's measured wall."""

    cpu_s: np.ndarray
    off_s: np.ndarray
    serial_wall_s: float

    @property
    def cpu_share(self) -> float:
        total = float(self.cpu_s.sum() + self.off_s.sum())
        return float(self.cpu_s.sum()) / total if total > 0 else 0.0


@dataclass(frozen=True)
class ExecutorParts:
    """What the model knows of one executor, from its measured configurations."""

    executor: str
    family: str
    handoff_s: float  # per item, in the workers
    parent_s: float  # per item, in the parent
    gil_share: float  # share of an item's CPU that holds the GIL; 0: no limit seen
    startup: tuple[float, float]  # a + b·p
    teardown: tuple[float, float]
    gil_assumed: bool = False  # nothing here could show the share: taken as held (ASSUMPTIONS)
    measured: dict[int, dict[str, float]] = field(default_factory=dict)  # p -> wall, ci, k, …

    def cpu_limit(self, cores: int) -> float:
        if family_of(self.family).one_thread:  # an event loop computes on one thread
            return 1.0
        if self.gil_share > 0:
            return min(float(cores), 1.0 / self.gil_share)
        return float(cores)


@dataclass(frozen=True)
class Prediction:
    executor: str
    workers: int
    cores: int
    chunksize: int
    wall_s: float
    wall_ci: tuple[float, float]
    speedup: float
    speedup_ci: tuple[float, float]
    bottleneck: str
    calibration: float  # measured ÷ model on this machine, for the nearest measured workers
    parts: dict[str, float]  # the model's terms, before calibration

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["wall_s"] = json_number(self.wall_s)
        data["wall_ci"] = [json_number(v) for v in self.wall_ci]
        data["speedup"] = json_number(self.speedup)
        data["speedup_ci"] = [json_number(v) for v in self.speedup_ci]
        data["calibration"] = json_number(self.calibration)
        data["parts"] = {k: json_number(v) for k, v in self.parts.items()}
        return data


# --- reading the run ---------------------------------------------------------------------------
def item_parts(result: Result) -> ItemParts:
    """The items' CPU and off-CPU time from the serial trials (median per item); from every
    trial's items when serial did not run."""
    items = result.items
    ok = items[items["status"] == "ok"] if len(items) else items
    serial = ok[ok["executor"] == "serial"]
    source = serial if len(serial) else ok
    per_item = source.groupby("item", sort=True)[["wall_s", "cpu_s"]].median()
    wall = per_item["wall_s"].to_numpy(np.float64)
    cpu = np.minimum(per_item["cpu_s"].to_numpy(np.float64), wall)
    row = result.summary[result.summary["executor"] == "serial"]
    serial_wall = float(row["wall_s"].iloc[0]) if len(row) else float(wall.sum())
    return ItemParts(cpu_s=cpu, off_s=np.maximum(wall - cpu, 0.0), serial_wall_s=serial_wall)


def executor_parts(result: Result, executor: str, items: ItemParts) -> ExecutorParts:
    family = result.families.get(executor, "")
    summary = result.summary[result.summary["executor"] == executor]
    costs = result.costs
    costs = costs[costs["executor"] == executor] if len(costs) else costs
    handoff = _median(costs["dispatch_s_per_item"]) if len(costs) else 0.0
    parent = (_median(costs["transfer_s_per_item"]) if len(costs) and family_of(family).pickles
              else 0.0)
    measured = {}
    for row in summary.itertuples(index=False):
        lo, hi = _relative(float(row.wall_s), float(row.wall_ci_lo), float(row.wall_ci_hi))
        measured[int(row.workers)] = {
            "wall_s": float(row.wall_s), "chunksize": int(row.chunksize), "ci_lo": lo,
            "ci_hi": hi, "startup_s": _or_zero(row.startup_s),
            "teardown_s": _or_zero(row.teardown_s)}
    gil, assumed = _gil_share(result, executor, family, items)
    per_worker = family_of(family).pickles  # the parent pickles every item for them
    return ExecutorParts(
        executor=executor, family=family, handoff_s=handoff, parent_s=parent, gil_share=gil,
        gil_assumed=assumed,
        startup=_linear([(p, m["startup_s"]) for p, m in measured.items()], per_worker),
        teardown=_linear([(p, m["teardown_s"]) for p, m in measured.items()], per_worker),
        measured=measured)


def _gil_share(result: Result, executor: str, family: str,
               items: ItemParts) -> tuple[float, bool]:
    """For threads under a GIL: the share of the items' CPU that holds it, and whether it is
    assumed. The preflight's watch (gil_watch.py) reads it directly, on any number of cores;
    without it, ``1 / C``, where ``C`` is the CPU the threads kept busy at once, when that fell
    short of what the items asked (which needs two cores or more to show); 0 when a trial could
    show a limit and did not. When nothing could show it (items too short for the watch, a run
    on one core) and the items compute, they are taken to hold it (1.0, assumed): pure Python
    does, and short C calls pay a GIL hand-off each. 0 for other executors, or without a GIL."""
    threads = family_of(family).shares_gil and not family_of(family).one_thread
    if not threads or result.environment.get("gil_enabled") is False:
        return 0.0, False
    watched = (result.options.get("preflight") or {}).get("gil") or {}
    if isinstance(watched.get("gil_share"), int | float):
        return float(watched["gil_share"]), False
    cores = result.cores
    rows = result.items[(result.items["executor"] == executor)
                        & (result.items["status"] == "ok")]
    share, shown = 0.0, False
    for (_, workers), trial in rows.groupby(["trial", "workers"], sort=False):
        asked = min(int(workers), cores, len(trial)) * items.cpu_share
        span = float(trial["end_s"].max() - trial["start_s"].min())
        if span <= 0 or asked <= 1.0:
            continue  # one thread's worth of demand cannot show a GIL
        shown = True
        computing = float(np.minimum(trial["cpu_s"], trial["wall_s"]).sum()) / span
        if 0 < computing < LIMITED_BELOW * asked:
            share = max(share, min(1.0, 1.0 / computing))
    if not shown and items.cpu_share >= COMPUTING_SHARE:
        return 1.0, True
    return share, False


# --- the model ---------------------------------------------------------------------------------
def predicted_wall(items: ItemParts, parts: ExecutorParts, workers: int, cores: int,
                   chunksize: int) -> tuple[float, dict[str, float]]:
    """The model's wall time (before calibration) and its terms."""
    n = len(items.cpu_s)
    step = max(1, chunksize)
    limit = parts.cpu_limit(cores)
    starts = np.arange(0, n, step)
    cpu = np.add.reduceat(items.cpu_s, starts) if n else np.zeros(0)
    length = (np.add.reduceat(items.cpu_s + items.off_s + parts.handoff_s, starts) if n
              else np.zeros(0))
    makespan = _shared_makespan(length, np.divide(cpu, length, out=np.zeros_like(cpu),
                                                  where=length > 0), workers, limit)
    demand = min(workers, len(length)) * items.cpu_share
    parent = n * parts.parent_s
    # The parent's pickling and the workers' CPU need the same cores: on few cores the sum
    # of both, not the longer one, sets the pace (one core: the parent waits its turn).
    shared = (float(cpu.sum()) + parent) / max(1, cores)
    start = parts.startup[0] + parts.startup[1] * workers
    teardown = parts.teardown[0] + parts.teardown[1] * workers
    terms = {"startup_s": start, "makespan_s": makespan, "parent_s": parent,
             "teardown_s": teardown, "cpu_limit": limit, "cpu_demand": demand,
             "even_s": float(length.sum()) / max(1, workers), "cores_shared_s": shared}
    return start + max(makespan, parent, shared) + teardown, terms


def _shared_makespan(length: np.ndarray, cpu_share: np.ndarray, workers: int,
                     limit: float) -> float:
    """Chunks handed in order to the first free worker, as a pool's queue does, with the CPU
    shared: while the busy workers ask for more cores than ``limit`` (each a chunk's CPU
    share), every one of them runs at ``limit / asked`` of its speed (the cores, or the GIL,
    are divided fairly); once fewer ask, the rest run at full speed again."""
    count = len(length)
    p = max(1, min(workers, count))
    left = np.zeros(p)
    share = np.zeros(p)
    busy = np.zeros(p, bool)
    taken = 0
    for w in range(p):
        left[w], share[w], busy[w] = length[taken], cpu_share[taken], True
        taken += 1
    clock = 0.0
    while busy.any():
        asked = float(share[busy].sum())
        rate = 1.0 if asked <= limit or limit <= 0 else limit / asked
        step = float(left[busy].min())
        clock += step / rate
        left[busy] -= step
        for w in np.flatnonzero(busy & (left <= 1e-12)):
            if taken < count:
                left[w], share[w] = length[taken], cpu_share[taken]
                taken += 1
            else:
                busy[w] = False
    return clock


@dataclass(frozen=True)
class Forecast:
    """What ``predict`` answers, and the parts of the model behind it, per executor."""

    predictions: list[Prediction]
    parts: dict[str, dict[str, Any]]  # executor -> the measured components, for people


def predict(result: Result, cores: Iterable[int], workers: Sequence[int] | None = None,
            executors: Sequence[str] | None = None) -> Forecast:
    """Each executor × workers on each core count: wall time, speedup, interval, bottleneck.
    ``workers`` defaults to the counts measured, the powers of two up to the cores and one
    worker per core."""
    items = item_parts(result)
    if not len(items.cpu_s):
        return Forecast([], {})
    names = [e for e in (executors or pd.unique(result.summary["executor"]).tolist())
             if e != "serial" and e in set(result.summary["executor"])]
    here = result.cores
    out = []
    described = {}
    for name in names:
        parts = executor_parts(result, name, items)
        if not parts.measured:
            continue
        calibration = {p: m["wall_s"] / predicted_wall(items, parts, p, here,
                                                       m["chunksize"])[0]
                       for p, m in parts.measured.items()}
        described[name] = _described(result, parts, calibration)
        for count in sorted(set(cores)):
            for p in sorted(set(workers) if workers else _default_workers(parts, count)):
                out.append(_one(result, items, parts, calibration, p, count))
    return Forecast(out, described)


def _described(result: Result, parts: ExecutorParts, calibration: dict[int, float]
               ) -> dict[str, Any]:
    """The components the model read for one executor, as the JSON and the terminal show
    them: per item, the hand-off, the parent's pickling and the bytes it moves (and so the
    rate), the GIL share, start-up and teardown against workers, the calibration here."""
    moved = result.transfer.bytes_per_item if result.transfer else None
    rate = (moved / parts.parent_s if moved is not None and parts.parent_s > 0 else None)
    return {
        "handoff_s_per_item": json_number(parts.handoff_s),
        "parent_s_per_item": json_number(parts.parent_s),
        "bytes_per_item": json_number(moved) if family_of(parts.family).pickles else 0,
        "bytes_per_s": json_number(rate) if family_of(parts.family).pickles else None,
        "gil_share": json_number(parts.gil_share),
        "gil_assumed": parts.gil_assumed,
        "startup_s": {"fixed": json_number(parts.startup[0]),
                      "per_worker": json_number(parts.startup[1])},
        "teardown_s": {"fixed": json_number(parts.teardown[0]),
                       "per_worker": json_number(parts.teardown[1])},
        "calibration": {str(p): json_number(r) for p, r in sorted(calibration.items())},
    }


def describe_parts(executor: str, parts: dict[str, Any]) -> str:
    """One line of the components: "process: hand-off 35.2 µs per item · …"."""
    words = [f"hand-off {duration(parts['handoff_s_per_item'] or 0.0)} per item"]
    if parts["parent_s_per_item"]:
        pickled = f"parent {duration(parts['parent_s_per_item'])} per item"
        if parts.get("bytes_per_item"):
            pickled += f" ({size(parts['bytes_per_item'])} pickled"
            pickled += (f", {size(parts['bytes_per_s'])}/s)" if parts.get("bytes_per_s")
                        else ")")
        words.append(pickled)
    if parts["gil_share"]:
        words.append("GIL taken as held (items too short to watch)" if parts.get("gil_assumed")
                     else f"GIL held {parts['gil_share']:.0%} of the items' CPU")
    for name in ("startup_s", "teardown_s"):
        fixed, per = parts[name]["fixed"] or 0.0, parts[name]["per_worker"] or 0.0
        label = "start-up" if name == "startup_s" else "teardown"
        words.append(f"{label} {duration(fixed)} + {duration(per)} × workers")
    ratios = ", ".join(f"{r:.2f} (×{p})" for p, r in parts["calibration"].items()
                       if r is not None)
    words.append(f"measured ÷ model here {ratios}")
    return f"{executor}: " + " · ".join(words)


def _default_workers(parts: ExecutorParts, cores: int) -> set[int]:
    """The counts measured, powers of two up to the cores, and one per core: a curve."""
    powers = {2 ** k for k in range(cores.bit_length()) if 2 ** k <= cores}
    return {*parts.measured, *powers, cores}


def _one(result: Result, items: ItemParts, parts: ExecutorParts, calibration: dict[int, float],
         workers: int, cores: int) -> Prediction:
    nearest = min(parts.measured, key=lambda p: (abs(math.log(p / workers)), p))
    measured = parts.measured[nearest]
    chunksize = (measured["chunksize"] if nearest == workers
                 or result.options.get("chunksize", ["auto"]) != ["auto"]
                 else _auto_chunksize(len(items.cpu_s), workers))
    model, terms = predicted_wall(items, parts, workers, cores, chunksize)
    ratio = calibration[nearest]
    if not math.isfinite(ratio) or ratio <= 0:
        ratio = 1.0
    wall = model * ratio
    lo = wall * measured["ci_lo"] if math.isfinite(measured["ci_lo"]) else math.nan
    hi = wall * measured["ci_hi"] if math.isfinite(measured["ci_hi"]) else math.nan
    serial = items.serial_wall_s
    return Prediction(
        executor=parts.executor, workers=workers, cores=cores, chunksize=chunksize,
        wall_s=wall, wall_ci=(lo, hi), speedup=serial / wall if wall > 0 else math.nan,
        speedup_ci=(serial / hi if hi > 0 else math.nan, serial / lo if lo > 0 else math.nan),
        bottleneck=_bottleneck(items, parts, workers, cores, terms, model),
        calibration=ratio, parts=terms)


def _bottleneck(items: ItemParts, parts: ExecutorParts, workers: int, cores: int,
                terms: dict[str, float], model: float) -> str:
    n = len(items.cpu_s)
    serial = items.serial_wall_s
    shared = terms["cores_shared_s"]
    if terms["parent_s"] > 0 and shared > max(terms["makespan_s"], terms["parent_s"]):
        return (f"the workers' CPU and the parent's pickling share {cores} "
                f"core{'s' * (cores != 1)}: {duration(shared)} of work each")
    if terms["parent_s"] >= terms["makespan_s"] and terms["parent_s"] > 0:
        return (f"the parent's pickling, {duration(parts.parent_s)} per item, caps it at "
                f"~{serial / terms['parent_s']:.2g}×")
    if terms["cpu_demand"] > 1.05 * terms["cpu_limit"]:
        if family_of(parts.family).one_thread:
            return "one event loop computes one item at a time: at most 1 core"
        if parts.gil_assumed and terms["cpu_limit"] < cores:
            return ("items too short for the GIL watch, computing under threads: taken to "
                    "hold the GIL, at most 1 core at once")
        if parts.gil_share > 0 and terms["cpu_limit"] < cores:
            return (f"items hold the GIL {parts.gil_share:.0%} of their CPU time: at most "
                    f"{1 / parts.gil_share:.2f} cores at once")
        return (f"{cores} core{'s' * (cores != 1)} for a CPU demand of "
                f"{terms['cpu_demand']:.1f} workers")
    fixed = terms["startup_s"] + terms["teardown_s"]
    if fixed > 0.3 * model:
        return f"start-up and teardown, {duration(fixed)} of {duration(model)}"
    if terms["makespan_s"] > 1.15 * terms["even_s"]:
        late = terms["makespan_s"] / terms["even_s"] - 1
        return f"load imbalance: the last chunk ends {late:.0%} after an even share"
    if workers < cores and items.cpu_share > 0.5:
        return f"{workers} worker{'s' * (workers != 1)} for {cores} cores"
    return (f"the items' own time: {n / max(1, workers):.0f} items per worker, "
            f"{duration(float((items.cpu_s + items.off_s).mean()))} each")


# --- helpers -----------------------------------------------------------------------------------
def _auto_chunksize(n_items: int, workers: int) -> int:
    from ..measure.runner import auto_chunksize

    return auto_chunksize(n_items, workers)


def _linear(points: list[tuple[int, float]], per_worker: bool) -> tuple[float, float]:
    """``(a, b)`` of ``a + b·p`` through the points, ``b ≥ 0``; one point: all per worker or
    all fixed."""
    points = [(p, v) for p, v in points if math.isfinite(v)]
    if not points:
        return 0.0, 0.0
    ps = np.array([p for p, _ in points], np.float64)
    vs = np.array([v for _, v in points], np.float64)
    if len(set(ps.tolist())) < 2:
        value = float(vs.mean())
        return (0.0, value / float(ps[0])) if per_worker else (value, 0.0)
    slope, intercept = np.polyfit(ps, vs, 1)
    if slope < 0:
        return float(vs.mean()), 0.0
    return max(0.0, float(intercept)), float(slope)


def _relative(median: float, lo: float, hi: float) -> tuple[float, float]:
    if not (median > 0 and math.isfinite(lo) and math.isfinite(hi)):
        return math.nan, math.nan
    return lo / median, hi / median


def _median(values: pd.Series) -> float:
    finite = pd.to_numeric(values, errors="coerce").dropna()
    return float(finite.median()) if len(finite) else 0.0


def _or_zero(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0
