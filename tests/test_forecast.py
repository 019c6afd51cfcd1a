"""The progress bar's total and time left (issue 16, point 2): forecast from the trials so far,
by the runner's own rule under --repeat auto, and never past the time budget."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from poolscope.forecast import TrialForecast
from poolscope.measure.runner import MAX_TRIALS, MIN_TIME_S, MIN_TRIALS, Plan, run_plan
from poolscope.present.progress import TqdmProgress, TrialProgress
from poolscope.workloads import Workload


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def trial(executor: str, wall_s: float, repeat: int = 0) -> SimpleNamespace:
    return SimpleNamespace(executor=executor, workers=2, chunksize=1, repeat=repeat,
                           wall_s=wall_s)


def test_a_fixed_repeat_leaves_its_trials_at_the_pace_seen_so_far():
    forecast = TrialForecast(Plan(executors=("thread", "process"), workers=(2,), repeat=3))
    assert forecast.remaining() is None  # nothing to go on yet
    forecast.add(trial("thread", 1.0))
    left = forecast.remaining()
    assert left.trials == 2 + 3 and left.seconds == pytest.approx(5.0)  # process: at 1 s too
    forecast.add(trial("process", 3.0))
    left = forecast.remaining()
    assert left.trials == 4 and left.seconds == pytest.approx(2 * 1.0 + 2 * 3.0)
    forecast.add(trial("thread", 99.0, repeat=-1))  # a warm-up: not one of the plan's
    assert forecast.remaining().trials == 4


def test_auto_follows_the_runners_rule():
    forecast = TrialForecast(Plan(executors=("thread",), workers=(2,), repeat="auto",
                                  max_time_s=1e6))
    forecast.add(trial("thread", 0.1))  # short trials: enough of them for MIN_TIME_S
    needed = max(MIN_TRIALS, round(MIN_TIME_S / 0.1))
    assert forecast.remaining().trials == needed - 1
    slow = TrialForecast(Plan(executors=("thread",), workers=(2,), repeat="auto",
                              max_time_s=1e6))
    slow.add(trial("thread", 10.0))  # long trials: MIN_TRIALS of them
    assert slow.remaining().trials == MIN_TRIALS - 1
    fast = TrialForecast(Plan(executors=("thread",), workers=(2,), repeat="auto",
                              max_time_s=1e6))
    fast.add(trial("thread", 1e-4))
    assert fast.remaining().trials == MAX_TRIALS - 1


def test_auto_never_forecasts_past_the_time_budget():
    clock = Clock()
    forecast = TrialForecast(Plan(executors=("thread", "process"), workers=(2,),
                                  repeat="auto", max_time_s=10), clock=clock)
    clock.now = 8.0
    forecast.add(trial("thread", 8.0))
    left = forecast.remaining()
    # Unbounded it would be 4 × 8 s + 5 × 8 s; the budget has 2 s left, plus the round under way.
    assert left.seconds == pytest.approx(2.0 + 8.0 + 8.0)
    assert 1 <= left.trials < 9
    clock.now = 30.0  # past the budget: only the round under way
    assert forecast.remaining().seconds == pytest.approx(16.0)


def _spin(item: int) -> int:
    return sum(range(20_000 + item))


@pytest.mark.parametrize("kind", ["rich", "tqdm"])
def test_the_bar_under_auto_has_a_total_that_ends_full(kind):
    plan = Plan(executors=("serial", "thread"), workers=(2,), repeat="auto", max_time_s=2)
    items = list(range(8))
    stream = io.StringIO()
    if kind == "rich":
        bar = TrialProgress(plan, len(items), console=Console(file=stream, width=120,
                                                               force_terminal=True))
    else:
        bar = TqdmProgress(plan, len(items), notebook=False, file=stream)
    totals = []

    def ended(trial):
        bar.on_trial_end(trial)
        totals.append(bar.totals.total)

    with bar:
        assert bar.totals.total == 2 * MIN_TRIALS * len(items)  # before any trial ends
        trials, interrupted = run_plan(Workload(fn=_spin, items=items, target="t"), plan,
                                       on_chunk=bar.on_chunk, on_trial_start=bar.on_trial_start,
                                       on_trial_end=ended)
    assert not interrupted
    done = len(trials) * len(items)
    assert totals[-1] == done  # nothing left at the end: the bar ends full
    assert all(total >= len(items) for total in totals)
    assert "left" in stream.getvalue()  # the time left was shown
