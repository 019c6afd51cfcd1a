"""What changed between two runs: per executor and worker count, the wall time's ratio with its
95% interval, and a verdict that calls a change only when the interval supports it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..model import COUNTED
from .stats import ratio_ci

__all__ = ["Change", "compare_runs"]


@dataclass(frozen=True)
class Change:
    executor: str
    workers: int
    before_s: float
    after_s: float
    ratio: float  # after / before: above 1 is slower
    ci: tuple[float, float] | None

    @property
    def verdict(self) -> str:
        if self.ci is None:
            return "unknown (one trial)"
        if self.ci[0] > 1:
            return "slower"
        if self.ci[1] < 1:
            return "faster"
        return "no measurable change"

    def regression_beyond(self, percent: float) -> bool:
        """True when the run got slower by more than ``percent``, with 95% confidence."""
        return self.ci is not None and self.ci[0] > 1 + percent / 100

    def to_json(self) -> dict[str, object]:
        return {"executor": self.executor, "workers": self.workers, "before_s": self.before_s,
                "after_s": self.after_s, "ratio": self.ratio,
                "ci": list(self.ci) if self.ci else None, "verdict": self.verdict}


def _walls(trials: pd.DataFrame) -> dict[tuple[str, int], np.ndarray]:
    usable = trials[trials["status"].isin(COUNTED)]
    return {(str(e), int(w)): g["wall_s"].to_numpy()
            for (e, w), g in usable.groupby(["executor", "workers"], sort=False)}


def compare_runs(before: pd.DataFrame, after: pd.DataFrame) -> list[Change]:
    """Changes for every (executor, workers) measured in both runs' trials frames."""
    a, b = _walls(before), _walls(after)
    changes = []
    for key in a:
        if key not in b:
            continue
        old, new = float(np.median(a[key])), float(np.median(b[key]))
        changes.append(Change(key[0], key[1], old, new, new / old, ratio_ci(b[key], a[key])))
    return changes
