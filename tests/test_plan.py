"""Planning trials: interleaving, automatic repeats, warm-up, the time cap, reused pools."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from unittest import mock

import numpy as np
import pandas as pd
import pytest

from poolscope import UsageError, api
from poolscope.analysis.recommend import contenders, trial_failures
from poolscope.api import run_workload
from poolscope.backends import REGISTRY, ChildReadings
from poolscope.backends.fake import FakeClock, ScriptedItem, scripted_backend
from poolscope.frames import trials_frame
from poolscope.measure.runner import MAX_TRIALS, MIN_TRIALS, Config, Plan, run_plan
from poolscope.model import ItemColumns, TrialResult
from poolscope.workloads import Workload, resolve_workload


def tiny(n: int = 8) -> Workload:
    return resolve_workload("tiny", n)


def test_trials_are_interleaved():
    plan = Plan(executors=("serial", "thread"), workers=(2,), repeat=3)
    trials, interrupted = run_plan(tiny(), plan)
    assert not interrupted
    assert [t.executor for t in trials] == ["serial", "thread"] * 3
    assert [t.repeat for t in trials] == [0, 0, 1, 1, 2, 2]
    assert [t.index for t in trials] == list(range(6))


def test_configurations_cover_workers_and_chunksizes_once_for_serial():
    plan = Plan(executors=("serial", "thread"), workers=(1, 2), chunksize=(1, "auto"))
    assert plan.configurations() == [
        Config("serial", 1, "auto"), Config("thread", 1, 1), Config("thread", 1, "auto"),
        Config("thread", 2, 1), Config("thread", 2, "auto")]


def test_warmup_trials_are_not_kept():
    plan = Plan(executors=("serial",), workers=(1,), repeat=2, warmup=3)
    trials, _ = run_plan(tiny(), plan)
    assert len(trials) == 2


def test_auto_repeat_stops_at_the_trial_cap_for_fast_trials():
    plan = Plan(executors=("serial",), workers=(1,), repeat="auto")
    trials, _ = run_plan(tiny(), plan)
    # tiny trials take well under MIN_TIME_S / MAX_TRIALS each: the cap ends the run
    assert len(trials) == MAX_TRIALS


def test_auto_repeat_honours_max_time():
    ticks = itertools.count(step=100.0)  # every clock reading is 100 s after the last
    plan = Plan(executors=("serial", "thread"), workers=(2,), repeat="auto", max_time_s=150)
    trials, _ = run_plan(tiny(), plan, clock=lambda: next(ticks))
    assert 2 <= len(trials) < 2 * MIN_TRIALS
    assert {t.executor for t in trials} == {"serial", "thread"}


def test_reused_pool_keeps_its_workers_and_counts_their_cpu_once():
    workload = resolve_workload("cpu", 8, size=200_000)
    plan = Plan(executors=("process-pool",), workers=(2,), repeat=3, reuse_pool=True)
    trials, _ = run_plan(workload, plan)
    pids = [set(t.items.pid.tolist()) for t in trials]
    assert pids[0] == pids[1] == pids[2]
    for t in trials:
        item_cpu = t.items.cpu_ns.sum() / 1e9
        assert item_cpu * 0.9 <= t.cpu_s <= item_cpu * 1.5 + 0.2
    fresh = run_plan(workload, Plan(executors=("process-pool",), workers=(2,), repeat=2))[0]
    assert {frozenset(t.items.pid.tolist()) for t in fresh} != {frozenset(pids[0])}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"repeat": 0}, "repeat must be 'auto' or at least 1"),
    ({"repeat": "often"}, "repeat must be 'auto' or at least 1"),
    ({"warmup": -1}, "warmup must be zero or more"),
    ({"max_time_s": 0}, "max time must be more than 0"),
    ({"chunksize": (4, 0)}, "chunksize must be 'auto' or at least 1"),
    ({"workers": ()}, "give at least one worker count"),
])
def test_bad_plans(kwargs, message):
    arguments = {"executors": ("serial",), "workers": (1,), **kwargs}
    with pytest.raises(UsageError, match=message):
        Plan(**arguments)


def test_an_error_in_a_chunk_callback_is_not_an_executor_failure():
    """A store that cannot be written stops the run with its own error, workers ended."""
    def broken_store(index, record):
        raise UsageError("cannot write to the store x.db: database or disk is full")

    plan = Plan(executors=("process-pool",), workers=(2,), repeat=2)
    with pytest.raises(UsageError, match="disk is full"):
        run_plan(tiny(40), plan, on_chunk=broken_store)


# --- sequential testing: more trials only for the contenders, within the budget ---------------

FAKE_FAMILIES = {"fake-serial": "serial", "fake-thread": "thread", "fake-process": "process"}


def walled_backends(monkeypatch, walls: dict[str, Callable[[int], float]]) -> FakeClock:
    """Registers scripted executors whose n-th trial takes walls[name](n) seconds on a fake
    clock (the runner's budget clock reads it too)."""
    clock = FakeClock()
    script = [ScriptedItem(0, 1_000, 1_000)] * 4
    for name, wall in walls.items():
        base = scripted_backend(name, script, clock, family=FAKE_FAMILIES[name])
        done = itertools.count()

        def start(self, base=base):
            base.start(self)
            self.child = ChildReadings(started_ns=self.t0)  # timed as a child would time it

        def close(self, wall=wall, done=done):
            end = self.t0 + int(wall(next(done)) * 1e9)
            self.child.closed_ns = self.child.last_record_ns = end
            self.clock.advance_to(end)

        monkeypatch.setitem(REGISTRY, name, type(name, (base,), {"start": start,
                                                                  "close": close}))
    return clock


def by_rule(trials):
    return contenders(trials_frame(trials), trial_failures(trials), FAKE_FAMILIES)


def counts(trials) -> dict[str, int]:
    return {name: sum(t.executor == name for t in trials) for name in FAKE_FAMILIES}


def test_trials_go_only_to_the_contenders_until_the_evidence_decides(monkeypatch):
    """serial is shown slower at once; thread starts noisy, then settles at process's speed:
    trials go to thread and process until thread is shown within 10%, then stop."""
    jitter = [1.0, 1.6, 0.7, 1.5, 0.8]
    clock = walled_backends(monkeypatch, {
        "fake-serial": lambda n: 2.0,
        "fake-thread": lambda n: jitter[n] if n < len(jitter) else 1.0,
        "fake-process": lambda n: 1.0})
    plan = Plan(executors=tuple(FAKE_FAMILIES), workers=(2,), repeat="auto", max_time_s=600)
    trials, _ = run_plan(tiny(4), plan, clock=lambda: clock() / 1e9, contention=by_rule)
    n = counts(trials)
    assert n["fake-serial"] == MIN_TRIALS
    assert MIN_TRIALS < n["fake-thread"] == n["fake-process"] < MAX_TRIALS
    assert by_rule(trials) == frozenset()  # stopped because decided


def test_undecided_contenders_stop_at_the_time_budget(monkeypatch):
    rng = np.random.default_rng(5)
    clock = walled_backends(monkeypatch, {
        "fake-serial": lambda n: 3.0,
        "fake-thread": lambda n: float(rng.choice([0.5, 1.5])),  # never settles against 1.0
        "fake-process": lambda n: 1.0})
    plan = Plan(executors=tuple(FAKE_FAMILIES), workers=(2,), repeat="auto", max_time_s=40)
    trials, _ = run_plan(tiny(4), plan, clock=lambda: clock() / 1e9, contention=by_rule)
    n = counts(trials)
    assert n["fake-serial"] == MIN_TRIALS
    assert n["fake-thread"] == n["fake-process"] > MIN_TRIALS
    spent = sum(t.wall_s for t in trials)
    assert 40 <= spent <= 40 + 1.5 + 1.0  # the round under way when the budget ran out ends
    assert by_rule(trials)  # still undecided: the verdict will say inconclusive


def test_without_a_contention_rule_auto_stops_at_a_stable_median(monkeypatch):
    clock = walled_backends(monkeypatch, {"fake-thread": lambda n: float(n % 2) + 0.5,
                                          "fake-process": lambda n: 1.0})
    plan = Plan(executors=("fake-thread", "fake-process"), workers=(2,), repeat="auto")
    trials, _ = run_plan(tiny(4), plan, clock=lambda: clock() / 1e9)
    assert counts(trials) == {"fake-serial": 0, "fake-thread": MIN_TRIALS,
                              "fake-process": MIN_TRIALS}


# --- the io worker search ---------------------------------------------------------------------

def test_io_search_tries_the_item_count_when_doubling_would_pass_it():
    """12 items of 50 ms: 8 threads need two rounds, 12 need one; doubling alone (16 > 12)
    would stop at 8."""
    result = run_workload(resolve_workload("io", 12, size=50), executors="thread",
                          workers=None, repeat=3)
    assert result.classification == "io-bound"
    tried = result.options["io_workers_tried"]
    assert tried[-1] == 12 and 16 not in tried
    rec = result.recommendation
    assert (rec.executor, rec.workers) == ("thread", 12)
    assert any("12 (the item count)" in reason for reason in rec.reasons)


def scripted_curve(monkeypatch, curve: dict[int, float]) -> None:
    """run_plan for the search's extra thread trials: three trials at curve[workers] s."""
    def fake_run_plan(workload, plan, *, first_index=0, **hooks):
        (workers,) = plan.workers
        return [TrialResult(first_index + r, plan.executors[0], workers, 1, r, curve[workers],
                            0.0, 0.0, 0.0, 0, "ok", "host", ItemColumns.empty())
                for r in range(3)], False

    monkeypatch.setattr(api, "run_plan", fake_run_plan)


def explore(items: int, base_wall: float) -> dict:
    first = mock.Mock()
    first.summary = pd.DataFrame([{"executor": "thread", "workers": 2, "wall_s": base_wall}])
    options = {"findings": []}
    plan = Plan(executors=("serial", "thread"), workers=(2,), repeat=3)
    interrupted = api._explore_io_workers(resolve_workload("io", items), plan, first, [],
                                          options, {})
    assert not interrupted
    return options


def test_io_search_bisects_when_the_curve_was_still_rising(monkeypatch):
    """A server that slows down past 12 connections: 16 loses to 8, but 12 beats both."""
    scripted_curve(monkeypatch, {4: 0.30, 8: 0.15, 16: 0.20, 12: 0.10, 14: 0.20})
    options = explore(100, 0.60)
    assert options["io_workers_tried"] == [4, 8, 16, 12, 14]
    assert "paid off up to 12" in options["findings"][0]


def test_io_search_stops_when_a_step_no_longer_pays(monkeypatch):
    scripted_curve(monkeypatch, {4: 0.30, 8: 0.29, 6: 0.30})
    options = explore(100, 0.60)
    assert options["io_workers_tried"] == [4, 8, 6]  # 4 paid, 8 did not, nor did 6 between
    scripted_curve(monkeypatch, {4: 0.59})
    assert explore(100, 0.60)["io_workers_tried"] == [4]  # nothing rising: no bisection


def test_io_search_tries_only_an_executor_asked_for(monkeypatch):
    """No thread-family or asyncio executor asked for: no search, no finding; asyncio alone:
    the search runs asyncio, never a thread executor the user did not ask for."""
    searched: list[str] = []

    def fake_run_plan(workload, plan, *, first_index=0, **hooks):
        searched.extend(plan.executors)
        return [TrialResult(first_index + r, plan.executors[0], plan.workers[0], 1, r, 0.5,
                            0.0, 0.0, 0.0, 0, "ok", "host", ItemColumns.empty())
                for r in range(3)], False

    monkeypatch.setattr(api, "run_plan", fake_run_plan)
    first = mock.Mock()
    first.summary = pd.DataFrame([{"executor": "asyncio", "workers": 2, "wall_s": 0.6}])
    for executors in (("serial",), ("serial", "process", "process-pool")):
        options: dict = {"findings": []}
        plan = Plan(executors=executors, workers=(2,), repeat=3)
        assert not api._explore_io_workers(resolve_workload("io", 40), plan, first, [],
                                           options, {})
        assert searched == [] and options == {"findings": []}
    options = {"findings": []}
    plan = Plan(executors=("serial", "asyncio"), workers=(2,), repeat=3)
    api._explore_io_workers(resolve_workload("io", 40), plan, first, [], options, {})
    assert set(searched) == {"asyncio"} and options["io_workers_tried"]
    assert options["findings"][0].startswith("io-bound: tried asyncio with 4")


def test_an_io_bound_run_of_serial_alone_adds_no_executor():
    result = run_workload(resolve_workload("io", 6, size=20), executors="serial",
                          workers=None, repeat=3)
    assert result.classification == "io-bound"
    assert {t.executor for t in result.trial_results} == {"serial"}
    assert "io_workers_tried" not in result.options
    assert not any("io-bound: tried" in reason for reason in result.recommendation.reasons)
    assert result.recommendation.executor == "serial"


def test_contention_is_judged_even_when_a_fast_configuration_never_reaches_min_time(monkeypatch):
    """serial's 10 ms trials reach MAX_TRIALS before MIN_TIME_S: the others' contest still
    goes on after their own minimum."""
    jitter = [1.0, 1.6, 0.7, 1.5, 0.8]
    clock = walled_backends(monkeypatch, {
        "fake-serial": lambda n: 0.01,
        "fake-thread": lambda n: jitter[n] if n < len(jitter) else 1.0,
        "fake-process": lambda n: 1.0})
    plan = Plan(executors=tuple(FAKE_FAMILIES), workers=(2,), repeat="auto", max_time_s=600)
    trials, _ = run_plan(tiny(4), plan, clock=lambda: clock() / 1e9,
                         contention=lambda done: {("fake-thread", 2, 1), ("fake-process", 2, 1)}
                         if counts(done)["fake-thread"] < 20 else ())
    n = counts(trials)
    assert n["fake-serial"] == MAX_TRIALS
    assert n["fake-thread"] == n["fake-process"] == 20
