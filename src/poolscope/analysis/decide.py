"""Deciding between configurations on evidence: the rule both the verdict and the runner use.

design.md, "The verdict": a more complex configuration is recommended only when it is shown
faster than every simpler one (the 95% interval of the ratio of medians excludes 1); a simpler
one wins when it is shown equivalent, at most EQUIVALENT slower than the fastest (the upper end
of that interval is below 1 + EQUIVALENT). Anything else is undecided: the runner adds trials to
the configurations still in contention, and a verdict reached without more is inconclusive and
names the simplest configuration not shown slower.

Simplicity: serial, threads, asyncio, subinterpreters, processes, a cluster (dask), then any
other interpreter (NAME@PATH); fewer workers before more.

Which configurations take part (candidates): those whose every counted trial ran every item and
failed only on the items that failed the same way (item and exception kind) in every trial of
every configuration. Those deterministic failures are the function's, not an executor's: each
candidate did the same work in each trial (the same items succeeded, the same raised), so trial
walls compare like with like and are what the rule is applied to. A configuration with a
failure the others do not share (it broke, or an item failed only sometimes) is no candidate.

No pandas here: the runner asks this rule between trials (``contenders``), and a process that
has loaded pandas is a large one to fork for the next process trial (docs/benchmarks.md §1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..families import family_of
from ..model import COUNTED, TrialStatus
from .stats import Comparison, compare_samples

__all__ = ["EQUIVALENT", "IO_WORKER_GAIN", "MAX_IO_WORKERS", "Arm", "Decision", "LeftOut",
           "TrialRow", "candidate_arms", "contenders", "decide", "failure_set", "simplicity",
           "trial_failures", "trial_rows"]

EQUIVALENT = 0.10
# Exploring more workers for items that wait (run's io exploration, poolscope.map's threads):
# twice the workers count as paying off when they cut the time by this factor.
IO_WORKER_GAIN = 1.10
MAX_IO_WORKERS = 256
# COUNTED (model.py): the trials whose wall time is comparable (metrics.summarize)

Key = tuple[str, int, int]  # executor, workers, chunksize
Failure = tuple[int | None, str]  # item (None: not an item's), exception kind
Labeller = Callable[[str, int, int], str]  # names a configuration in sentences


def simplicity(executor: str, workers: int, families: Mapping[str, str]) -> tuple[int, int]:
    """Sort key: the simpler configuration first (its family's rank, families.py; an executor
    of no known family last), then fewer workers."""
    return family_of(families.get(executor, "")).rank, workers


def failure_set(errors: Iterable[Mapping[str, Any]]) -> frozenset[Failure]:
    """A trial's failures as (item, kind) pairs, from TrialResult.errors."""
    return frozenset((e.get("item"), str(e.get("kind"))) for e in errors)


def trial_failures(trials: Iterable[Any]) -> dict[int, frozenset[Failure]]:
    """Each trial's failures by its index, from TrialResult-like objects (index, errors)."""
    return {t.index: failure_set(t.errors) for t in trials}


class TrialRow(NamedTuple):
    """What the rule reads of a trial: frames.trials_frame's columns of that name."""

    trial: int
    executor: str
    workers: int
    chunksize: int
    status: str
    wall_s: float
    errors: int  # items that failed
    items: int  # items recorded

    @classmethod
    def of(cls, trial: Any) -> TrialRow:
        """From a model.TrialResult."""
        return cls(trial.index, trial.executor, trial.workers, trial.chunksize, trial.status,
                   trial.wall_s, int((trial.items.status != 0).sum()), len(trial.items))


def trial_rows(trials: Any) -> list[TrialRow]:
    """TrialRows of a trials frame (frames.trials_frame), or of TrialResults."""
    if hasattr(trials, "itertuples"):
        return [TrialRow(*row) for row in trials[list(TrialRow._fields)].itertuples(
            index=False, name=None)]
    return [row if isinstance(row, TrialRow) else TrialRow.of(row) for row in trials]


@dataclass(frozen=True)
class Arm:
    """One candidate configuration and its trial walls."""

    key: Key
    label: str
    walls: np.ndarray
    rank: tuple[int, int]

    @property
    def median(self) -> float:
        return float(np.median(self.walls))


@dataclass(frozen=True)
class LeftOut:
    """Items that failed the same way in every trial of every configuration."""

    failures: frozenset[Failure] = frozenset()

    @property
    def items(self) -> list[int]:
        return sorted({item for item, _ in self.failures if item is not None})

    @property
    def kinds(self) -> list[str]:
        return sorted({kind for _, kind in self.failures})


def candidate_arms(trials: Any, failures: Mapping[int, frozenset[Failure]] | None,
                   families: Mapping[str, str], label: Labeller | None = None
                   ) -> tuple[list[Arm], LeftOut]:
    """The configurations the rule may choose from, and the deterministic failures left out.

    ``trials``: a trials frame (frames.trials_frame), TrialResults or TrialRows.
    ``failures``: each trial's failure_set by trial index; without it a configuration with any
    error is no candidate. ``label(executor, workers, chunksize)`` names a configuration in
    sentences.
    """
    name: Labeller = label or (lambda e, w, c: f"{e} ×{w}")
    rows = trial_rows(trials)
    expected = max((row.items for row in rows), default=0)
    groups: dict[Key, list[TrialRow]] = {}
    for row in rows:
        groups.setdefault((str(row.executor), int(row.workers), int(row.chunksize)),
                          []).append(row)
    sets: dict[Key, list[frozenset[Failure]]] = {}
    broken: set[Key] = set()
    walls: dict[Key, np.ndarray] = {}
    for key, group in groups.items():
        counted = [row for row in group if row.status in COUNTED]
        if not counted:
            continue
        walls[key] = np.array([row.wall_s for row in counted], dtype=float)
        sets[key] = _failure_sets(counted, failures, expected)
        if any(row.status == TrialStatus.FAILED for row in group):
            broken.add(key)
    shared = frozenset.intersection(*[s for per in sets.values() for s in per]) \
        if sets else frozenset()
    shared = frozenset(f for f in shared if f[0] is not None)  # an incident is no item's
    if len({item for item, _ in shared}) >= expected:  # no item succeeded anywhere
        return [], LeftOut(shared)
    arms = [Arm(key, name(*key), walls[key], simplicity(key[0], key[1], families))
            for key, per in sets.items()
            if key not in broken and all(s == shared for s in per)]
    return arms, LeftOut(shared)


def _failure_sets(counted: Sequence[TrialRow], failures: Mapping[int, frozenset[Failure]] | None,
                  expected: int) -> list[frozenset[Failure]]:
    """Each counted trial's failures; a trial that recorded fewer items than others did not do
    the same work, and without per-trial failures any error is an executor's own."""
    if failures is None:
        sets = [frozenset() if row.errors == 0 else frozenset({(None, "error")})
                for row in counted]
    else:
        sets = [failures.get(int(row.trial), frozenset()) for row in counted]
    return [s | {(None, "missing items")} if row.items < expected else s
            for s, row in zip(sets, counted, strict=True)]


def contenders(trials: Any, failures: Mapping[int, frozenset[Failure]] | None,
               families: Mapping[str, str]) -> frozenset[Key]:
    """The configurations still in contention (none once decided): what the runner's
    ``contention`` hook returns, by the same rule as recommend(). ``trials``: as
    candidate_arms takes them."""
    arms, _ = candidate_arms(trials, failures, families)
    return decide(arms).contenders


@dataclass(frozen=True)
class Decision:
    """What the rule makes of the arms.

    ``how``: "only" (a single candidate), "faster" (the fastest, shown faster than every
    simpler one), "equivalent" (a simpler one shown within EQUIVALENT of the fastest) or
    "inconclusive". ``contenders``: the configurations more trials should go to (empty once
    decided). ``comparisons``: the fastest against each other arm. ``more_trials``: about how
    many more trials each contender needs to decide, from the interval widths (None: unknown).
    """

    chosen: Arm | None
    fastest: Arm | None
    how: str
    contenders: frozenset[Key] = frozenset()
    comparisons: dict[Key, Comparison] = field(default_factory=dict)
    undecided: tuple[Arm, ...] = ()
    more_trials: int | None = None
    arms: tuple[Arm, ...] = ()

    @property
    def inconclusive(self) -> bool:
        return self.how == "inconclusive"


def is_equivalent(c: Comparison) -> bool:
    """The slower one is shown at most EQUIVALENT slower than the faster."""
    return c.ci is not None and c.ci[1] <= 1 + EQUIVALENT


def is_slower(c: Comparison) -> bool:
    return c.ci is not None and c.ci[0] > 1


def decide(arms: Sequence[Arm]) -> Decision:
    """Apply the rule to the candidates (see the module's docstring).

    Every arm is compared with the fastest (by median). It is settled once shown slower or
    shown equivalent; the verdict is decided once every arm is settled, and then names the
    simplest of the fastest and those equivalent to it: the fastest itself only if every
    simpler arm is shown slower. An unsettled arm, simpler or not, keeps it undecided: it may
    be the fastest, or equivalent to it.
    """
    if not arms:
        return Decision(None, None, "none")
    fastest = min(arms, key=lambda a: (a.median, a.rank))
    if len(arms) == 1:
        return Decision(fastest, fastest, "only", arms=tuple(arms))
    comparisons = {a.key: compare_samples(fastest.label, fastest.walls, a.label, a.walls)
                   for a in arms if a is not fastest}
    simplest_first = sorted(arms, key=lambda a: (a.rank, a.median))
    good = [a for a in simplest_first if a is fastest or is_equivalent(comparisons[a.key])]
    undecided = [a for a in simplest_first if a is not fastest
                 and not is_equivalent(comparisons[a.key]) and not is_slower(comparisons[a.key])]
    if not undecided:
        chosen = good[0]
        return Decision(chosen, fastest, "faster" if chosen is fastest else "equivalent",
                        comparisons=comparisons, arms=tuple(arms))
    chosen = min([*good, *undecided], key=lambda a: (a.rank, a.median))
    more = [_more_trials(comparisons[a.key], min(a.walls.size, fastest.walls.size))
            for a in undecided]
    return Decision(chosen, fastest, "inconclusive",
                    contenders=frozenset({fastest.key, *(a.key for a in undecided)}),
                    comparisons=comparisons, undecided=tuple(undecided),
                    more_trials=None if None in more else max(more),  # type: ignore[type-var]
                    arms=tuple(arms))


def _more_trials(c: Comparison, n: int) -> int | None:
    """Trials to add to each side before the interval settles the comparison, assuming its
    width shrinks as 1/√n and the ratio stays where it is."""
    if c.ci is None:
        return None
    lo, hi = c.ci
    factors = []
    if c.ratio > 1 and c.ratio > lo:  # to show it slower, the lower end must pass 1
        factors.append(((c.ratio - lo) / (c.ratio - 1)) ** 2)
    if c.ratio < 1 + EQUIVALENT and hi > c.ratio:  # to show it equivalent
        factors.append(((hi - c.ratio) / (1 + EQUIVALENT - c.ratio)) ** 2)
    if not factors:
        return None
    return max(1, math.ceil(n * min(factors)) - n)
