"""A first recommendation: the executor that measured fastest, with its reasons in numbers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._format import duration

__all__ = ["Recommendation", "recommend"]

CLOSE_CALL = 0.05  # runner-up within 5%: with few trials that may be noise


@dataclass(frozen=True)
class Recommendation:
    executor: str
    workers: int
    chunksize: int | None
    reasons: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"executor": self.executor, "workers": self.workers,
                "chunksize": self.chunksize, "reasons": list(self.reasons),
                "caveats": list(self.caveats)}


def recommend(summary: pd.DataFrame, trials: pd.DataFrame, cores: int,
              caveats: list[str] | None = None) -> Recommendation | None:
    """The fastest (executor, workers) by median wall among those whose items all succeeded."""
    candidates = summary[(summary["errors"] == 0) & summary["wall_s"].notna()]
    if candidates.empty:
        return None
    ranked = candidates.sort_values("wall_s", kind="stable")
    best = ranked.iloc[0]
    chunks = trials.loc[(trials["executor"] == best["executor"])
                        & (trials["workers"] == best["workers"]), "chunksize"]
    chunksize = int(chunks.iloc[0]) if best["executor"] != "serial" and len(chunks) else None
    reasons = [_fastest_sentence(best, ranked)]
    if best["executor"] != "serial":
        reasons.append(
            f"its items overlapped: parallelism {best['parallelism']:.2f} with "
            f"{int(best['workers'])} workers on {cores} cores, CPU utilisation "
            f"{best['cpu_utilization']:.0%}")
    notes = list(caveats or [])
    if len(ranked) > 1:
        runner_up = ranked.iloc[1]
        gap = runner_up["wall_s"] / best["wall_s"] - 1
        if gap < CLOSE_CALL:
            notes.append(f"{runner_up['executor']} was within {gap:.0%}: with "
                         f"{int(best['trials'])} trial(s) each that may be noise; "
                         "use --repeat to tell them apart")
    if best["startup_s"] > 0.1 * best["wall_s"]:
        notes.append(f"start-up ({duration(best['startup_s'])}) is "
                     f"{best['startup_s'] / best['wall_s']:.0%} of the wall time; more items "
                     "per run would amortise it")
    return Recommendation(executor=str(best["executor"]), workers=int(best["workers"]),
                          chunksize=chunksize, reasons=reasons, caveats=notes)


def _fastest_sentence(best: pd.Series, ranked: pd.DataFrame) -> str:
    text = (f"{best['executor']} with {int(best['workers'])} worker(s) measured fastest: "
            f"{duration(best['wall_s'])}")
    if not np.isnan(best["speedup"]) and best["executor"] != "serial":
        text += f", {best['speedup']:.2f}× serial's speed"
    others = [f"{row['executor']} ×{int(row['workers'])} {duration(row['wall_s'])} "
              f"({row['wall_s'] / best['wall_s']:.2f}× slower)"
              for _, row in ranked.iloc[1:].iterrows()]
    if others:
        text += "; " + ", ".join(others)
    return text
