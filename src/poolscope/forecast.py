"""How much of a run is left: the trials each configuration still needs and how long they take,
forecast from the trials so far (the progress bar's total and time left).

With a fixed ``--repeat`` the trials left are known and only their time is forecast. With
``--repeat auto`` the runner's rule is followed (runner.py): a configuration runs until it has
MIN_TRIALS trials and MIN_TIME_S of them, at most MAX_TRIALS, and no round starts once the run
has taken ``max_time_s`` — so the forecast never passes the time budget. Rounds that the
evidence adds for configurations still in contention cannot be known ahead: the forecast grows
by them as they start.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .measure.runner import MAX_TRIALS, MIN_TIME_S, MIN_TRIALS

if TYPE_CHECKING:
    from .measure.runner import Plan
    from .model import TrialResult

__all__ = ["Remaining", "TrialForecast"]

Key = tuple[str, int, int]


class Remaining:
    """Trials still to run and the seconds they should take."""

    def __init__(self, trials: int, seconds: float) -> None:
        self.trials, self.seconds = trials, seconds


class TrialForecast:
    def __init__(self, plan: Plan, clock: Callable[[], float] = time.monotonic) -> None:
        self.configs = len(plan.configurations())
        self.repeat = plan.repeat
        self.max_time_s = plan.max_time_s
        self.clock = clock
        self.began = clock()
        self.walls: dict[Key, list[float]] = {}

    def add(self, trial: TrialResult) -> None:
        if trial.repeat < 0:  # a warm-up trial: not one of the plan's
            return
        key = (trial.executor, trial.workers, trial.chunksize)
        self.walls.setdefault(key, []).append(trial.wall_s)

    def remaining(self) -> Remaining | None:
        """None until a trial has ended: nothing to forecast from yet."""
        if not self.walls:
            return None
        means = [statistics.fmean(walls) for walls in self.walls.values()]
        typical = statistics.fmean(means)  # for configurations that have not run yet
        unseen = max(0, self.configs - len(self.walls))
        done = [len(walls) for walls in self.walls.values()]
        left = [max(0, self._needed(mean) - n) for mean, n in zip(means, done, strict=True)]
        left += [self._needed(typical)] * unseen
        all_means = means + [typical] * unseen
        trials = sum(left)
        seconds = sum(n * mean for n, mean in zip(left, all_means, strict=True))
        if self.repeat == "auto" and seconds > 0:
            # No round starts after the budget: what is left of it, and the round under way.
            round_s = sum(mean for n, mean in zip(left, all_means, strict=True) if n)
            budget = max(0.0, self.max_time_s - (self.clock() - self.began)) + round_s
            if seconds > budget:
                trials = max(1, math.ceil(trials * budget / seconds))
                seconds = budget
        return Remaining(trials, seconds)

    def _needed(self, mean_wall_s: float) -> int:
        if self.repeat != "auto":
            return int(self.repeat)
        for_time = math.ceil(MIN_TIME_S / mean_wall_s) if mean_wall_s > 0 else MIN_TRIALS
        return min(MAX_TRIALS, max(MIN_TRIALS, for_time))
