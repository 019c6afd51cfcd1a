"""The recommendation: which executor, how many workers, what chunksize — and why, in numbers.

The choice is analysis/decide.py's rule, the one the runner also stops on: a more complex
configuration only when it is shown faster than every simpler one, a simpler one when it is shown
within 10% of the fastest, and otherwise an inconclusive verdict naming the simplest
configuration not shown slower, with what it would take to decide. Candidates are the
configurations that ran every item, apart from items that failed the same way everywhere (left
out, and said so). A recommendation other than serial carries its comparison with serial.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._format import count, duration
from ..families import family_of
from ..model import COUNTED
from .decide import (
    EQUIVALENT,
    Arm,
    Decision,
    Failure,
    Key,
    Labeller,
    LeftOut,
    candidate_arms,
    contenders,
    decide,
    trial_failures,
)
from .stats import Comparison, compare_samples

__all__ = ["NO_CANDIDATE", "Recommendation", "contenders", "recommend", "trial_failures",
           "workload_findings"]

# Why there is no recommendation at all (recommend() returned None).
NO_CANDIDATE = ("every executor failed, had failures the others did not share, or ran no item "
                "without an error (items that fail the same way under every executor are left "
                "out, not held against them)")
QUIETER = 200  # more trials than this per configuration to decide: ask for a quieter machine


@dataclass(frozen=True)
class Recommendation:
    executor: str
    workers: int
    chunksize: int | None
    reasons: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    code: str | None = None  # a script that runs the chosen configuration (analysis.snippet)
    inconclusive: bool = False  # the budget ended before the evidence decided
    to_decide: str | None = None  # what it would take, when inconclusive
    left_out: list[int] = field(default_factory=list)  # items failing alike everywhere
    against_serial: Comparison | None = None  # its speedup, when serial ran and is not it

    def __str__(self) -> str:
        """The verdict as a sentence: what to use, then the evidence's first reason."""
        what = f"{self.executor} with {count(self.workers, 'worker')}" + (
            f", chunksize {self.chunksize}" if self.chunksize else "")
        if not self.inconclusive:
            return f"{what}: {self.reasons[0]}" if self.reasons else what
        reason = self.reasons[0].removeprefix("inconclusive: ") if self.reasons else ""
        return f"inconclusive — {what}: {reason}" if reason else f"inconclusive — {what}"

    def to_json(self) -> dict[str, object]:
        return {"executor": self.executor, "workers": self.workers,
                "chunksize": self.chunksize, "inconclusive": self.inconclusive,
                "to_decide": self.to_decide, "left_out_items": list(self.left_out),
                "reasons": list(self.reasons),
                "caveats": list(self.caveats),
                "comparisons": [{"a": c.a, "b": c.b, "ratio": c.ratio,
                                 "ci": list(c.ci) if c.ci else None, "verdict": c.verdict,
                                 "sentence": c.sentence()} for c in self.comparisons],
                "code": self.code}


def _labeller(trials: pd.DataFrame) -> Labeller:
    several = trials.groupby(["executor", "workers"])["chunksize"].nunique().max() > 1

    def label(executor: str, workers: int, chunksize: int) -> str:
        text = f"{executor} ×{int(workers)}"
        return f"{text} chunks of {int(chunksize)}" if several else text

    return label


def recommend(summary: pd.DataFrame, trials: pd.DataFrame, cores: int,
              families: Mapping[str, str] | None = None,
              caveats: list[str] | None = None,
              findings: list[str] | None = None,
              failures: Mapping[int, frozenset[Failure]] | None = None
              ) -> Recommendation | None:
    """The verdict over a run's summary and trials frames.

    ``failures``: each trial's failure_set by trial index (decide.py); items that failed alike
    everywhere are then left out instead of disqualifying every executor.
    """
    families = families or {}
    label = _labeller(trials)
    arms, left_out = candidate_arms(trials, failures, families, label)
    decision = decide(arms)
    if decision.chosen is None or decision.fastest is None:
        return None
    chosen, fastest = decision.chosen, decision.fastest
    best, fastest_row = _row(summary, chosen.key), _row(summary, fastest.key)
    reasons = _verdict(decision, fastest_row, families)
    against_serial = _against_serial(trials, chosen, decision, label)
    if against_serial is not None and chosen is not fastest:
        reasons.append(f"against serial: {against_serial.sentence()}")
    if left_out.items:
        reasons.append(_left_out_sentence(left_out, int(trials["items"].max())))
    if best["executor"] != "serial" and not pd.isna(best["parallelism"]):
        reasons.append(
            f"its items overlapped: parallelism {best['parallelism']:.2f}, "
            f"{best['cpu_parallelism']:.2f} computing at once, with {int(best['workers'])} "
            f"workers on {cores} cores")
    reasons.extend(findings or [])
    ordered = list(decision.comparisons.values())
    if against_serial is not None and chosen is not fastest:
        ordered.insert(0, against_serial)
    elif against_serial is not None:  # the fastest against serial: put it first
        ordered.sort(key=lambda c: c.b != against_serial.b)
    return Recommendation(
        executor=str(best["executor"]), workers=int(best["workers"]),
        chunksize=None if best["executor"] == "serial" else int(best["chunksize"]),
        reasons=reasons, caveats=_notes(best, fastest_row, caveats), comparisons=ordered,
        inconclusive=decision.inconclusive,
        to_decide=_to_decide(decision) if decision.inconclusive else None,
        left_out=left_out.items, against_serial=against_serial)


def _notes(best: pd.Series, fastest: pd.Series, caveats: list[str] | None) -> list[str]:
    notes = list(caveats or [])
    if int(fastest["trials"]) < 2:
        notes.append("one trial per executor: differences cannot be called real; "
                     "use --repeat (or the default, auto)")
    if best["startup_s"] > 0.1 * best["wall_s"]:
        notes.append(f"start-up ({duration(best['startup_s'])}) is "
                     f"{best['startup_s'] / best['wall_s']:.0%} of the wall time; more items "
                     "per run would amortise it")
    return notes


def _row(summary: pd.DataFrame, key: Key) -> pd.Series:
    executor, workers, chunksize = key
    match = summary[(summary["executor"] == executor) & (summary["workers"] == workers)
                    & (summary["chunksize"] == chunksize)]
    return match.iloc[0]


def _verdict(decision: Decision, fastest_row: pd.Series,
             families: Mapping[str, str]) -> list[str]:
    """The rule's outcome in words: the first reasons."""
    chosen, fastest = decision.chosen, decision.fastest
    assert chosen is not None and fastest is not None
    if decision.inconclusive:
        unsure = "; ".join(f"{a.label}: ratio {_ratio(decision.comparisons[a.key])}"
                           for a in decision.undecided)
        return [f"inconclusive: {fastest.label} measured fastest ({duration(fastest.median)}), "
                f"but the trials show {_names(decision.undecided)} neither slower than it nor "
                f"within {EQUIVALENT:.0%} of it ({unsure}); {chosen.label} is the simplest "
                "configuration not shown slower, so it is recommended until more trials "
                f"decide; to decide: {_to_decide(decision)}",
                _fastest_sentence(fastest_row, fastest.label)]
    reasons = [_fastest_sentence(fastest_row, fastest.label)]
    simpler = [a for a in decision.arms if a.rank < fastest.rank]
    if decision.how == "faster" and simpler:
        reasons.append(f"it is shown faster than every simpler configuration "
                       f"({', '.join(a.label for a in simpler)}): each ratio's interval is "
                       "above 1")
    elif decision.how == "equivalent":
        c = decision.comparisons[chosen.key]
        why = family_of(families.get(chosen.key[0], "")).simpler
        reasons.append(f"{chosen.label} is at most {EQUIVALENT:.0%} slower (ratio {_ratio(c)}) "
                       f"and is simpler ({why}), so it is recommended")
    return reasons


def _ratio(c: Comparison) -> str:
    return (f"{c.ratio:.2f}, 95% CI {c.ci[0]:.2f}–{c.ci[1]:.2f}" if c.ci
            else f"{c.ratio:.2f}, one trial each: no interval")


def _names(arms: Sequence[Arm]) -> str:
    labels = [a.label for a in arms]
    return ", ".join(labels[:-1]) + " and " + labels[-1] if len(labels) > 1 else labels[0]


def _to_decide(decision: Decision) -> str:
    arms = sorted({a.key: a for a in [*decision.undecided, decision.fastest] if a}.values(),
                  key=lambda a: a.rank)
    names = _names(arms)
    n = decision.more_trials
    if n is None:
        return f"more than one trial each of {names}, for an interval (--repeat auto)"
    have = min(a.walls.size for a in arms)
    seconds = n * sum(a.median for a in arms)
    if have + n > QUIETER:
        return (f"a quieter machine: at this noise it would take about {n} more trials of "
                f"{names}")
    return (f"about {n} more trials of {names} (about {duration(seconds)} more: raise "
            "--max-time), or a quieter machine")


def _against_serial(trials: pd.DataFrame, chosen: Arm, decision: Decision,
                    label: Labeller) -> Comparison | None:
    """The chosen configuration against serial, when serial ran and was not chosen."""
    if chosen.key[0] == "serial":
        return None
    for key, c in decision.comparisons.items():
        if key[0] == "serial" and chosen is decision.fastest:
            return c
    serial = trials[(trials["executor"] == "serial") & trials["status"].isin(COUNTED)]
    if serial.empty:
        return None
    first = serial.iloc[0]
    walls = serial[serial["chunksize"] == first["chunksize"]]["wall_s"].to_numpy(dtype=float)
    return compare_samples(chosen.label, chosen.walls,
                           label("serial", int(first["workers"]), int(first["chunksize"])),
                           walls)


def _left_out_sentence(left_out: LeftOut, n_items: int) -> str:
    items = left_out.items
    shown = ", ".join(map(str, items[:5])) + (", …" if len(items) > 5 else "")
    they, which = ("they", f"items {shown}") if len(items) > 1 else ("it", f"item {shown}")
    return (f"{len(items)} of {n_items} items left out: {they} raised "
            f"{' or '.join(left_out.kinds)} under every executor in every trial ({which}); "
            "every executor did the same work, so they are compared on their trial walls")


def _fastest_sentence(best: pd.Series, name: str) -> str:
    text = f"{name} measured fastest: {duration(best['wall_s'])}"
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
