"""What each executor costs on this machine: start-up, teardown and overhead per item.

``poolscope executors --bench`` runs the built-in ``tiny`` workload (items that do nothing, so
all that is measured is the executor) under every available executor and reports, as medians
over ``repeat`` trials:

- **start-up**: pool creation to the first item's start (the trial's ``startup_s``);
- **teardown**: the last result to the pool closed;
- **per item, chunksize 1**: ``(wall − start-up − teardown) / items`` with every item its own
  task — the dispatch round trip a fine-grained ``map`` pays;
- **per item, auto chunks**: the same with about four chunks per worker, as
  ``multiprocessing.Pool.map`` chunks by default.

With ``workers`` workers draining the queue in parallel, "per item" is the pipeline's cost per
item, not one item's latency.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import pandas as pd

from ._format import json_number
from .backends import REGISTRY
from .measure.runner import auto_chunksize, make_chunks, run_trial
from .workloads import tiny

__all__ = ["bench_executors", "bench_json"]

COLUMNS = ["executor", "family", "available", "startup_s", "teardown_s", "per_item_s",
           "per_item_auto_s", "reason"]


def bench_executors(names: Sequence[str] | None = None, *, items: int = 2_000, workers: int = 2,
                    repeat: int = 3) -> pd.DataFrame:
    """One row per executor: the medians above, or why the executor is not available."""
    rows = []
    for name in names or list(REGISTRY):
        cls = REGISTRY[name]
        reason = cls.unavailable_reason()
        row: dict[str, Any] = {"executor": name, "family": str(cls.family),
                               "available": reason is None, "reason": reason}
        if reason is None:
            row.update(_measure(cls, items, workers, repeat))
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def _measure(cls: Any, items: int, workers: int, repeat: int) -> dict[str, float]:
    values = list(range(items))
    fine, coarse, startups, teardowns = [], [], [], []
    for chunks, out in ((make_chunks(values, 1), fine),
                        (make_chunks(values, auto_chunksize(items, workers)), coarse)):
        for index in range(repeat):
            t = run_trial(index, cls, tiny, workers, chunks)
            if t.status != "ok":
                raise RuntimeError(f"{cls.name}: trial {t.status}: {t.errors[:1]}")
            out.append((t.wall_s - t.startup_s - t.teardown_s) / items)
            startups.append(t.startup_s)
            teardowns.append(t.teardown_s)
    return {"startup_s": statistics.median(startups),
            "teardown_s": statistics.median(teardowns),
            "per_item_s": statistics.median(fine), "per_item_auto_s": statistics.median(coarse)}


def bench_json(table: pd.DataFrame, items: int, workers: int, repeat: int) -> dict[str, Any]:
    """The table as JSON, with how it was measured."""
    from .environment import collect_environment

    rows = [{key: json_number(value) if isinstance(value, float) else value
             for key, value in row.items()} for row in table.to_dict(orient="records")]
    return {"schema": "poolscope/1", "kind": "executor-bench", "items": items,
            "workers": workers, "repeat": repeat, "environment": collect_environment(),
            "executors": rows}
