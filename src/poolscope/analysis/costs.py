"""A cost model per configuration: where the wall time goes.

- start-up: pool creation to the first item's start (median over trials)
- teardown: the last result to the pool closed
- dispatch per item: worker time not spent inside items while the pool ran —
  (min(workers, items) × (wall − start-up − teardown) − Σ item wall) / items. It holds task
  hand-off, pickling on both sides, result return and idle waiting at the end (imbalance).
- transfer per item: pickled bytes of an argument plus its result, and the time to pickle and
  unpickle them, measured on a sample in the parent; zero for executors that share memory.
- compute per item: median CPU and wall time of one item in the serial baseline (or in this
  configuration when there is no baseline).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["COST_COLUMNS", "cost_model"]

COST_COLUMNS = ["executor", "workers", "chunksize", "startup_s", "teardown_s",
                "dispatch_s_per_item", "transfer_bytes_per_item", "transfer_s_per_item",
                "compute_cpu_s_per_item", "compute_wall_s_per_item"]


def cost_model(trials: pd.DataFrame, items: pd.DataFrame, families: dict[str, str],
               transfer_bytes: float | None, transfer_s: float | None) -> pd.DataFrame:
    usable = trials[trials["status"].isin(["ok", "partial"])].copy()
    if usable.empty:
        return pd.DataFrame(columns=COST_COLUMNS)
    lanes = np.minimum(usable["workers"], usable["items"].clip(lower=1))
    busy = (usable["wall_s"] - usable["startup_s"] - usable["teardown_s"]).clip(lower=0)
    usable["dispatch"] = ((lanes * busy - usable["item_wall_s"]).clip(lower=0)
                          / usable["items"].clip(lower=1))
    ok = items["status"] == "ok"
    baseline = items.loc[ok & (items["executor"] == "serial"), ["cpu_s", "wall_s"]]
    rows = []
    for (executor, workers, chunksize), group in usable.groupby(
            ["executor", "workers", "chunksize"], sort=False):
        reference = baseline if len(baseline) else items.loc[
            ok & (items["executor"] == executor) & (items["workers"] == workers),
            ["cpu_s", "wall_s"]]
        shares_memory = families.get(executor) != "process"
        rows.append({
            "executor": executor, "workers": int(workers), "chunksize": int(chunksize),
            "startup_s": float(group["startup_s"].median()),
            "teardown_s": float(group["teardown_s"].median()),
            "dispatch_s_per_item": float(group["dispatch"].median()),
            "transfer_bytes_per_item": 0.0 if shares_memory else _or_nan(transfer_bytes),
            "transfer_s_per_item": 0.0 if shares_memory else _or_nan(transfer_s),
            "compute_cpu_s_per_item": float(reference["cpu_s"].median()),
            "compute_wall_s_per_item": float(reference["wall_s"].median()),
        })
    return pd.DataFrame(rows, columns=COST_COLUMNS)


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)
