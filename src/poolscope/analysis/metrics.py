"""The design's summary metrics per executor and worker count, over trials.

- wall: median trial wall time, with a 95% bootstrap interval of the median
- speedup: serial's median wall / this median wall
- efficiency: speedup / min(workers, cores)
- CPU utilisation: tree CPU / (wall × cores)
- parallelism: Σ item wall / trial wall (how many items were in progress at once, on average)
- CPU parallelism: Σ item CPU / trial wall (how many were computing at once: the GIL shows here)
- off-CPU fraction: 1 − Σ item CPU / Σ item wall (waiting for the GIL, I/O or sleep)
- start-up: pool creation to the first item's start; teardown: last result to pool closed
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .stats import median_ci

__all__ = ["SUMMARY_COLUMNS", "summarize"]

SUMMARY_COLUMNS = [
    "executor", "workers", "trials", "wall_s", "wall_ci_lo", "wall_ci_hi", "speedup",
    "efficiency", "cpu_s", "cpu_utilization", "parallelism", "cpu_parallelism",
    "offcpu_fraction", "startup_s", "teardown_s", "throughput", "peak_rss", "items", "errors",
    "failed_trials",
]


def summarize(trials: pd.DataFrame, cores: int, baseline: str = "serial") -> pd.DataFrame:
    """One row per (executor, workers), in the order the executors were first run.

    Only trials that ran every item count (status ``ok``, or ``partial`` where some items
    raised): a failed or interrupted trial's wall time is not comparable. An executor with no
    such trial keeps its row, with undefined (NaN) metrics and its failures counted in ``errors``.
    """
    rows = []
    for (executor, workers), group in trials.groupby(["executor", "workers"], sort=False):
        usable = group[group["status"].isin(["ok", "partial"])]
        failed = int(group["status"].eq("failed").sum())
        wall = float(usable["wall_s"].median()) if len(usable) else np.nan
        ci = median_ci(usable["wall_s"].to_numpy())
        cpu = float(usable["cpu_s"].median())
        items = int(usable["items"].median()) if len(usable) else 0
        rows.append({
            "executor": executor, "workers": int(workers), "trials": len(usable),
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
        })
    summary = pd.DataFrame(rows)
    if summary.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    base = summary.loc[summary["executor"] == baseline, "wall_s"]
    base_wall = float(base.iloc[0]) if len(base) else np.nan
    summary["speedup"] = base_wall / summary["wall_s"]
    summary["efficiency"] = summary["speedup"] / np.minimum(summary["workers"], cores)
    return summary[SUMMARY_COLUMNS]
