"""The design's summary metrics per executor and worker count, over trials.

- wall: median trial wall time, with a 95% bootstrap interval of the median
- speedup: serial's median wall / this median wall, with a bootstrap interval of that ratio
- efficiency: speedup / min(workers, cores), interval likewise
- outliers: trials whose modified Z-score of wall time exceeds 3.5 (flagged, still counted)
- CPU utilisation: tree CPU / (wall × cores)
- parallelism: Σ item wall / trial wall (how many items were in progress at once, on average)
- CPU parallelism: Σ item CPU / trial wall (how many were computing at once: the GIL shows here)
- off-CPU fraction: 1 − Σ item CPU / Σ item wall (waiting for the GIL, I/O or sleep)
- start-up: pool creation to the first item's start; teardown: last result to pool closed

Per trial (frames.trials_frame) an item's CPU counts at most its wall, so CPU parallelism never
passes parallelism; items that did not finish (timed out, stopped, lost with their worker) count
in parallelism but not in the CPU sums or the off-CPU fraction (their CPU is unknown); start-up
is at least 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..model import COUNTED, TrialStatus
from .stats import OUTLIER_Z, median_ci, modified_z, ratio_ci

__all__ = ["SUMMARY_COLUMNS", "outlier_flags", "summarize"]

SUMMARY_COLUMNS = [
    "executor", "workers", "chunksize", "trials", "wall_s", "wall_ci_lo", "wall_ci_hi", "speedup",
    "speedup_ci_lo", "speedup_ci_hi", "efficiency", "efficiency_ci_lo", "efficiency_ci_hi",
    "outliers", "cpu_s", "cpu_utilization", "parallelism", "cpu_parallelism",
    "offcpu_fraction", "startup_s", "teardown_s", "throughput", "peak_rss", "items", "errors",
    "failed_trials", "initializer_s",
]


def summarize(trials: pd.DataFrame, cores: int, baseline: str = "serial") -> pd.DataFrame:
    """One row per (executor, workers, chunksize), in the order they were first run.

    Speedups are against ``baseline`` (serial), or for ``NAME@/path/python`` against
    ``serial@/path/python`` when the run has it.

    Only trials that ran every item count (status ``ok``, or ``partial`` where some items
    raised): a failed or interrupted trial's wall time is not comparable. An executor with no
    such trial keeps its row, with undefined (NaN) metrics and its failures counted in ``errors``.
    """
    rows = []
    walls: list[np.ndarray] = []
    for (executor, workers, chunksize), group in trials.groupby(
            ["executor", "workers", "chunksize"], sort=False):
        usable = group[group["status"].isin(COUNTED)]
        failed = int(group["status"].eq(TrialStatus.FAILED).sum())
        wall = float(usable["wall_s"].median()) if len(usable) else np.nan
        walls.append(usable["wall_s"].to_numpy())
        ci = median_ci(usable["wall_s"].to_numpy())
        cpu = float(usable["cpu_s"].median())
        items = int(usable["items"].median()) if len(usable) else 0
        rows.append({
            "executor": executor, "workers": int(workers), "chunksize": int(chunksize),
            "trials": len(usable),
            "wall_s": wall,
            "wall_ci_lo": ci[0] if ci else np.nan, "wall_ci_hi": ci[1] if ci else np.nan,
            "cpu_s": cpu,
            "cpu_utilization": cpu / (wall * cores) if wall > 0 else np.nan,
            "parallelism": float(usable["parallelism"].median()),
            "cpu_parallelism": float(usable["cpu_parallelism"].median()),
            "offcpu_fraction": float(usable["offcpu_fraction"].median()),
            "startup_s": float(usable["startup_s"].median()),
            "teardown_s": float(usable["teardown_s"].median()),
            "throughput": items / wall if wall > 0 else np.nan,
            "peak_rss": int(usable["peak_rss"].median()) if len(usable) else 0,
            "items": items,
            "errors": int(group["errors"].sum()) + failed,
            "failed_trials": failed,
            "outliers": int((np.abs(modified_z(walls[-1])) > OUTLIER_Z).sum()),
            # per worker, outside the items' times (NaN: no initializer)
            "initializer_s": float(usable["initializer_s"].median())
            if "initializer_s" in usable and usable["initializer_s"].notna().any() else np.nan,
        })
    summary = pd.DataFrame(rows)
    if summary.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    # Each row's baseline: serial under the same interpreter (``serial@PATH`` for ``X@PATH``,
    # when it was run: another interpreter may run the same code at another speed), else serial.
    names = summary["executor"].astype(str).tolist()
    first_row = {name: i for i, name in reversed(list(enumerate(names)))}

    def base_row(name: str) -> int | None:
        elsewhere = name.partition("@")[2]
        own = first_row.get(f"{baseline}@{elsewhere}") if elsewhere else None
        return own if own is not None else first_row.get(baseline)

    bases = [base_row(name) for name in names]
    base_wall = np.array([summary["wall_s"].iat[b] if b is not None else np.nan for b in bases])
    summary["speedup"] = base_wall / summary["wall_s"].to_numpy()
    scale = np.minimum(summary["workers"], cores)
    summary["efficiency"] = summary["speedup"] / scale
    cis = [ratio_ci(walls[b], w) if b is not None else None
           for b, w in zip(bases, walls, strict=True)]
    summary["speedup_ci_lo"] = [ci[0] if ci else np.nan for ci in cis]
    summary["speedup_ci_hi"] = [ci[1] if ci else np.nan for ci in cis]
    summary["efficiency_ci_lo"] = summary["speedup_ci_lo"] / scale
    summary["efficiency_ci_hi"] = summary["speedup_ci_hi"] / scale
    return summary[SUMMARY_COLUMNS]


def outlier_flags(trials: pd.DataFrame) -> pd.Series:
    """True for a trial whose wall time is an outlier within its configuration."""
    if trials.empty:
        return pd.Series([], dtype=bool)
    z = trials.groupby(["executor", "workers", "chunksize"], sort=False)["wall_s"].transform(
        lambda walls: modified_z(walls.to_numpy()))
    return z.abs() > OUTLIER_Z
