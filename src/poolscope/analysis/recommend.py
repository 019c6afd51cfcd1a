"""The recommendation: which executor, how many workers, what chunksize — and why, in numbers.

1. Candidates: configurations whose trials all ran every item without an error.
2. The fastest by median wall time.
3. A configuration ties with the fastest when the data show it is at most EQUIVALENT slower:
   the upper end of the 95% interval of the ratio of medians is below 1 + EQUIVALENT (an
   equivalence test: a wide interval proves nothing, so noisy runs do not tie). With a single
   trial each there is no interval, and only a gap under CLOSE_CALL ties.
4. Among those, the simplest wins: serial, then threads or asyncio (one process, nothing
   pickled), then processes, then subinterpreters, then another interpreter (NAME@PATH); then
   fewer workers.
   A difference that is not statistically real is no reason to pay for processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._format import duration
from .stats import Comparison, compare_samples

__all__ = ["Recommendation", "recommend", "workload_findings"]

CLOSE_CALL = 0.05
EQUIVALENT = 0.10
# Subinterpreters rank after processes: as fast to reach, but new, and many extension modules
# do not load in them. Unknown families (another interpreter, NAME@PATH) come last.
FAMILY_COST = {"serial": 0, "thread": 1, "async": 1, "process": 2, "interpreter": 3}
UNKNOWN_FAMILY_COST = 4


@dataclass(frozen=True)
class Recommendation:
    executor: str
    workers: int
    chunksize: int | None
    reasons: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    code: str | None = None  # a script that runs the chosen configuration (analysis.snippet)

    def to_json(self) -> dict[str, object]:
        return {"executor": self.executor, "workers": self.workers,
                "chunksize": self.chunksize, "reasons": list(self.reasons),
                "caveats": list(self.caveats),
                "comparisons": [{"a": c.a, "b": c.b, "ratio": c.ratio,
                                 "ci": list(c.ci) if c.ci else None, "verdict": c.verdict,
                                 "sentence": c.sentence()} for c in self.comparisons],
                "code": self.code}


def _walls(trials: pd.DataFrame, row: pd.Series) -> np.ndarray:
    mask = ((trials["executor"] == row["executor"]) & (trials["workers"] == row["workers"])
            & (trials["chunksize"] == row["chunksize"])
            & trials["status"].isin(["ok", "partial"]))
    return trials.loc[mask, "wall_s"].to_numpy()


def _label(row: pd.Series, several_chunksizes: bool) -> str:
    text = f"{row['executor']} ×{int(row['workers'])}"
    return f"{text} chunks of {int(row['chunksize'])}" if several_chunksizes else text


def recommend(summary: pd.DataFrame, trials: pd.DataFrame, cores: int,
              families: dict[str, str] | None = None,
              caveats: list[str] | None = None,
              findings: list[str] | None = None) -> Recommendation | None:
    candidates = summary[(summary["errors"] == 0) & summary["wall_s"].notna()]
    if candidates.empty:
        return None
    families = families or {}
    ranked = candidates.sort_values("wall_s", kind="stable")
    several = summary.groupby(["executor", "workers"]).size().max() > 1
    fastest = ranked.iloc[0]
    fastest_walls = _walls(trials, fastest)
    comparisons: dict[int, Comparison] = {}
    for index, row in ranked.iloc[1:].iterrows():
        comparisons[index] = compare_samples(_label(fastest, several), fastest_walls,
                                             _label(row, several), _walls(trials, row))

    def ties(index: int) -> bool:
        c = comparisons[index]
        if c.ci is None:
            return c.ratio < 1 + CLOSE_CALL
        return c.ci[1] <= 1 + EQUIVALENT

    tied = [fastest.name, *[i for i in comparisons if ties(i)]]
    chosen = min(tied, key=lambda i: (FAMILY_COST.get(families.get(ranked.loc[i, "executor"],
                                                                     ""),
                                                    UNKNOWN_FAMILY_COST),
                                      ranked.loc[i, "workers"], ranked.loc[i, "wall_s"]))
    best = ranked.loc[chosen]
    reasons = [_fastest_sentence(fastest, several)]
    if chosen != fastest.name:
        c = comparisons[chosen]
        detail = (f"ratio {c.ratio:.2f}, 95% CI {c.ci[0]:.2f}–{c.ci[1]:.2f}" if c.ci
                  else "one trial each")
        slower = (f"at most {EQUIVALENT:.0%} slower" if c.ci
                  else f"under {CLOSE_CALL:.0%} slower")
        reasons.append(f"{_label(best, several)} is {slower} ({detail}) and is "
                       f"simpler ({_simpler(families.get(best['executor'], ''))}), so it is "
                       "recommended")
    if best["executor"] != "serial" and not pd.isna(best["parallelism"]):
        reasons.append(
            f"its items overlapped: parallelism {best['parallelism']:.2f}, "
            f"{best['cpu_parallelism']:.2f} computing at once, with {int(best['workers'])} "
            f"workers on {cores} cores")
    reasons.extend(findings or [])
    notes = list(caveats or [])
    if int(fastest["trials"]) < 2:
        notes.append("one trial per executor: differences cannot be called real; "
                     "use --repeat (or the default, auto)")
    if best["startup_s"] > 0.1 * best["wall_s"]:
        notes.append(f"start-up ({duration(best['startup_s'])}) is "
                     f"{best['startup_s'] / best['wall_s']:.0%} of the wall time; more items "
                     "per run would amortise it")
    ordered = [comparisons[i] for i in comparisons]
    return Recommendation(
        executor=str(best["executor"]), workers=int(best["workers"]),
        chunksize=None if best["executor"] == "serial" else int(best["chunksize"]),
        reasons=reasons, caveats=notes, comparisons=ordered)


def _simpler(family: str) -> str:
    return {"serial": "no pool at all", "thread": "threads share memory: nothing is pickled",
            "async": "one event loop in this process: nothing is pickled",
            "process": "fewer or lighter processes",
            "interpreter": "one process, and fewer or lighter subinterpreters",
            }.get(family, "fewer workers")


def _fastest_sentence(best: pd.Series, several: bool) -> str:
    text = f"{_label(best, several)} measured fastest: {duration(best['wall_s'])}"
    if not pd.isna(best["wall_ci_lo"]):
        text += f" (95% CI {duration(best['wall_ci_lo'])}–{duration(best['wall_ci_hi'])})"
    if not pd.isna(best["speedup"]) and best["executor"] != "serial":
        text += f", {best['speedup']:.2f}× serial's speed"
        if not pd.isna(best["speedup_ci_lo"]):
            text += f" (95% CI {best['speedup_ci_lo']:.2f}–{best['speedup_ci_hi']:.2f})"
    return text


AMORTISED = 0.05  # dispatch under 5% of an item's work counts as amortised


def workload_findings(kind: str, costs: pd.DataFrame, chosen: Recommendation | None
                      ) -> list[str]:
    """What the workload's kind means for this choice, in measured numbers."""
    if costs.empty or chosen is None:
        return []
    compute = float(costs["compute_wall_s_per_item"].iloc[0])
    pools = costs[costs["executor"] != "serial"]
    if kind == "transfer-bound":
        moved = costs.dropna(subset=["transfer_bytes_per_item"])
        moved = moved[moved["transfer_bytes_per_item"] > 0]
        if moved.empty:
            return []
        row = moved.iloc[0]
        from .._format import size

        return [f"transfer-bound: a process worker must receive and return "
                f"{size(row['transfer_bytes_per_item'])} per item "
                f"({duration(row['transfer_s_per_item'])} to pickle and unpickle) for "
                f"{duration(compute)} of work; serial and threads share memory and skip the copy"]
    if kind == "overhead-bound" and not pools.empty:
        lightest = pools.sort_values("dispatch_s_per_item").iloc[0]
        if chosen.executor == "serial":
            return [f"overhead-bound: an item takes {duration(compute)}, while the cheapest pool "
                    f"({lightest['executor']}) added {duration(lightest['dispatch_s_per_item'])} "
                    f"per item and {duration(lightest['startup_s'])} of start-up: serial wins"]
        row = costs[(costs["executor"] == chosen.executor)
                    & (costs["workers"] == chosen.workers)].iloc[0]
        per_task = row["dispatch_s_per_item"] * row["chunksize"]
        needed = int(np.ceil(per_task / max(AMORTISED * compute, 1e-9)))
        return [f"overhead-bound: dispatch costs {duration(row['dispatch_s_per_item'])} per item "
                f"with chunks of {int(row['chunksize'])}, against {duration(compute)} of work "
                f"per item; chunks of at least {needed} items would bring it under "
                f"{AMORTISED:.0%}"]
    return []
