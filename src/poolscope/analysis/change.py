"""What changed between two runs: per executor and worker count, the wall time's ratio with its
95% interval, and a verdict that calls a change only when the interval supports it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._format import size
from ..model import COUNTED
from .stats import ratio_ci

__all__ = ["Change", "compare_runs", "mismatches"]


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


# The hardware, not the host's name: CI runners of one kind have other names and are alike.
MACHINE_KEYS = ("processor", "cpu_count", "memory_bytes")


def mismatches(before: Any, after: Any) -> list[str]:
    """What makes two runs (results) different experiments, in words: another target, other
    items, another machine. A change between them is not a regression of the code."""
    said = []
    if before.target != after.target:
        said.append(f"different targets: {before.target} and {after.target}")
    if before.n_items != after.n_items:
        said.append(f"different items: {before.n_items:,} and {after.n_items:,} of them")
    elif before.options.get("size") != after.options.get("size"):
        said.append(f"different items: --size {before.options.get('size')} and "
                    f"{after.options.get('size')}")
    machine = [key for key in MACHINE_KEYS
               if before.environment.get(key) != after.environment.get(key)]
    if machine:
        said.append(f"different machines: {_machine(before.environment)} and "
                    f"{_machine(after.environment)}")
    return said


def _machine(environment: dict[str, Any]) -> str:
    memory = environment.get("memory_bytes")
    return (f"{environment.get('hostname', '?')} ({environment.get('cpu_count', '?')} cores, "
            f"{environment.get('processor', '?')}"
            + (f", {size(memory)}" if memory else "") + ")")
