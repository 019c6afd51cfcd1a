"""The recommendation rules, on scripted trial walls (no real executor involved), and one
deterministic failure through real threads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import poolscope
from poolscope.analysis.metrics import summarize
from poolscope.analysis.recommend import contenders, recommend

FAMILIES = {"serial": "serial", "thread": "thread", "process": "process"}


def scripted(walls: dict[tuple[str, int], list[float]]) -> pd.DataFrame:
    rows = []
    for (executor, workers), values in walls.items():
        for wall in values:
            rows.append({"trial": len(rows), "executor": executor, "workers": workers,
                         "chunksize": 4, "wall_s": wall, "cpu_s": wall, "startup_s": 0.001,
                         "teardown_s": 0.001, "peak_rss": 1, "status": "ok", "items": 40,
                         "errors": 0, "parallelism": 1.5, "cpu_parallelism": 1.0,
                         "offcpu_fraction": 0.1})
    return pd.DataFrame(rows)


def decide(walls):
    trials = scripted(walls)
    summary = summarize(trials, cores=2)
    return recommend(summary, trials, 2, FAMILIES)


def test_a_real_difference_picks_the_fastest():
    rec = decide({("serial", 1): [2.0, 2.02, 1.98, 2.01, 1.99],
                  ("thread", 2): [2.0, 2.03, 1.97, 2.02, 1.98],
                  ("process", 2): [1.05, 1.06, 1.04, 1.05, 1.07]})
    assert (rec.executor, rec.workers) == ("process", 2)
    assert "process ×2 measured fastest: 1.05 s" in rec.reasons[0]
    verdicts = {c.b: c.verdict for c in rec.comparisons}
    assert verdicts == {"serial ×1": "faster", "thread ×2": "faster"}


def test_a_difference_that_is_not_real_picks_the_simpler_executor():
    rec = decide({("serial", 1): [2.0, 2.02, 1.98, 2.01, 1.99],
                  ("thread", 2): [1.00, 1.10, 0.95, 1.05, 1.02],
                  ("process", 2): [0.99, 1.08, 0.96, 1.04, 1.01]})
    assert (rec.executor, rec.workers) == ("thread", 2)
    assert "at most 10% slower" in rec.reasons[1]
    assert "nothing is pickled" in rec.reasons[1]
    # not serial, so it carries its own comparison with serial, first
    first = rec.comparisons[0]
    assert (first.a, first.b, first.verdict) == ("thread ×2", "serial ×1", "faster")
    assert any(r.startswith("against serial: thread ×2 is 1.9") for r in rec.reasons)


def test_fewer_workers_win_a_tie():
    rec = decide({("serial", 1): [1.0, 1.01, 0.99],
                  ("thread", 2): [0.50, 0.51, 0.49],
                  ("thread", 4): [0.50, 0.49, 0.51]})
    assert (rec.executor, rec.workers) == ("thread", 2)


def test_single_trials_tie_within_five_percent_and_say_so():
    rec = decide({("serial", 1): [1.0], ("process", 2): [0.98]})
    assert rec.executor == "serial" and rec.inconclusive
    assert "more than one trial" in rec.to_decide
    assert any("one trial per executor" in c for c in rec.caveats)
    assert rec.comparisons[0].verdict == "unknown"


def test_failed_items_disqualify():
    trials = scripted({("serial", 1): [1.0, 1.0], ("process", 2): [0.5, 0.5]})
    trials.loc[trials["executor"] == "process", "errors"] = 1
    rec = recommend(summarize(trials, cores=2), trials, 2, FAMILIES)
    assert rec.executor == "serial"


def test_noisy_runs_are_inconclusive_and_name_the_simplest_not_shown_slower():
    """A wide interval proves nothing either way: neither a tie nor a win for the fastest."""
    rec = decide({("serial", 1): [2.0, 2.0, 2.0, 2.0, 2.0],
                  ("thread", 2): [1.1, 2.5, 0.9, 1.9, 1.2],
                  ("process", 2): [1.00, 1.01, 0.99, 1.00, 1.02]})
    assert rec.inconclusive
    assert (rec.executor, rec.workers) == ("thread", 2)  # serial is shown slower
    assert rec.reasons[0].startswith("inconclusive: process ×2 measured fastest")
    assert "more trials of thread ×2 and process ×2" in rec.to_decide
    assert rec.comparisons[0].b == "serial ×1" and rec.comparisons[0].a == "thread ×2"


# --- the rule on scripted noise: identical, 5% apart, 50% apart, heavy tails -------------------

def noisy(rng: np.random.Generator, centre: float, n: int = 8, spread: float = 0.01) -> list[float]:
    return list(centre * (1 + rng.normal(0, spread, n)))


def test_identical_configurations_pick_the_simpler_one_shown_equivalent():
    rng = np.random.default_rng(11)
    rec = decide({("serial", 1): noisy(rng, 1.0), ("process", 2): noisy(rng, 1.0)})
    assert rec.executor == "serial" and not rec.inconclusive
    (c,) = rec.comparisons  # whichever measured fastest, the two are shown within 10%
    assert c.ci[1] <= 1.10 and {c.a, c.b} == {"serial ×1", "process ×2"}


def test_five_percent_apart_is_equivalent_within_ten_percent_so_the_simpler_wins():
    rng = np.random.default_rng(12)
    rec = decide({("serial", 1): noisy(rng, 1.05), ("process", 2): noisy(rng, 1.0)})
    assert rec.executor == "serial" and not rec.inconclusive
    assert "serial ×1 is at most 10% slower" in rec.reasons[1]


def test_fifty_percent_apart_picks_the_faster_one_shown_faster():
    rng = np.random.default_rng(13)
    rec = decide({("serial", 1): noisy(rng, 1.5), ("process", 2): noisy(rng, 1.0)})
    assert rec.executor == "process" and not rec.inconclusive
    assert "shown faster than every simpler configuration (serial ×1)" in rec.reasons[1]
    assert rec.comparisons[0].b == "serial ×1" and rec.comparisons[0].verdict == "faster"


@pytest.mark.parametrize(("true_ratio", "right"), [
    (1.0, {"serial"}), (1.03, {"serial", "process"}),  # 3% faster: equivalent, or shown faster
    (1.5, {"process"}), (2.0, {"process"})])
def test_heavy_tailed_noise_is_never_a_confident_wrong_pick(true_ratio, right):
    """Walls with Pareto-tailed delays (a shared machine): over many draws, a decided verdict
    is always a right one; undecided draws say inconclusive instead."""
    rng = np.random.default_rng(2026)
    outcomes = {"right": 0, "inconclusive": 0, "wrong": 0}
    for _ in range(40):
        n = int(rng.integers(5, 12))
        serial = true_ratio * (1 + 0.5 * rng.pareto(1.5, n) * (rng.random(n) < 0.3))
        process = 1 + 0.5 * rng.pareto(1.5, n) * (rng.random(n) < 0.3)
        rec = decide({("serial", 1): list(serial), ("process", 2): list(process)})
        if rec.inconclusive:
            outcomes["inconclusive"] += 1
            assert rec.executor == "serial"  # the simplest is never shown slower here...
        else:
            outcomes["right" if rec.executor in right else "wrong"] += 1
    assert outcomes["wrong"] == 0, outcomes
    assert outcomes["right"] >= 10, outcomes  # ...and the rule still decides most draws


def test_inconclusive_says_how_many_more_trials_would_decide():
    rng = np.random.default_rng(14)
    rec = decide({("serial", 1): noisy(rng, 1.08, 5, 0.08), ("process", 2): noisy(rng, 1.0, 5,
                                                                                   0.08)})
    assert rec.inconclusive and rec.executor == "serial"
    assert "about " in rec.to_decide and "more trials of serial ×1 and process ×2" in rec.to_decide
    assert rec.to_json()["inconclusive"] is True


def test_a_more_complex_configuration_must_beat_every_simpler_one():
    """process is far faster than serial but not shown faster than threads: not process."""
    rec = decide({("serial", 1): [2.0, 2.01, 1.99, 2.0, 2.02],
                  ("thread", 2): [1.0, 1.3, 0.8, 1.2, 0.9],
                  ("process", 2): [0.98, 0.99, 1.0, 0.97, 0.99]})
    assert (rec.executor, rec.inconclusive) == ("thread", True)


def test_simplicity_order_is_the_designs():
    """Equal walls: serial, threads, asyncio, subinterpreters, processes, a cluster, fewer
    workers first."""
    families = {"serial": "serial", "thread": "thread", "asyncio": "async",
                "interpreter": "interpreter", "process": "process", "dask": "process"}
    order = ["serial", "thread", "asyncio", "interpreter", "process", "dask"]
    for dropped in range(len(order)):
        names = order[dropped:]
        walls = {(n, 2 if n != "serial" else 1): [1.0, 1.001, 0.999, 1.0, 1.0] for n in names}
        walls[(names[-1], 4)] = [1.0, 1.001, 0.999, 1.0, 1.0]
        trials = scripted(walls)
        rec = recommend(summarize(trials, cores=2), trials, 2, families)
        assert (rec.executor, rec.workers) == (names[0], 2 if names[0] != "serial" else 1)


def test_interpreters_are_simpler_than_processes_and_dask_is_last():
    families = {"interpreter": "interpreter", "process": "process", "dask": "cluster"}
    trials = scripted({("dask", 2): [1.0] * 5, ("process", 2): [1.0] * 5,
                       ("interpreter", 2): [1.0] * 5})
    rec = recommend(summarize(trials, cores=2), trials, 2, families)
    assert rec.executor == "interpreter"


# --- deterministic failures ------------------------------------------------------------------

def with_failures(walls, failing):
    """Trials whose failure sets are given per executor: {executor: {(item, kind), ...}}."""
    trials = scripted(walls)
    failures = {}
    for row in trials.itertuples():
        found = frozenset(failing.get(row.executor, set()))
        failures[row.trial] = found
        trials.loc[row.Index, "errors"] = len(found)
        trials.loc[row.Index, "status"] = "partial" if found else "ok"
    return trials, failures


def test_an_item_failing_alike_everywhere_is_left_out_not_a_veto():
    walls = {("serial", 1): [2.0, 2.02, 1.98, 2.01, 1.99],
             ("process", 2): [1.0, 1.01, 0.99, 1.0, 1.02]}
    same = {(3, "ValueError")}
    trials, failures = with_failures(walls, {"serial": same, "process": same})
    rec = recommend(summarize(trials, cores=2), trials, 2, FAMILIES, failures=failures)
    assert rec.executor == "process" and rec.left_out == [3]
    assert any("1 of 40 items left out: it raised ValueError under every executor" in r
               for r in rec.reasons)
    assert rec.to_json()["left_out_items"] == [3]


def test_an_executor_with_failures_of_its_own_is_no_candidate():
    walls = {("serial", 1): [2.0, 2.02, 1.98, 2.01, 1.99],
             ("thread", 2): [1.5, 1.51, 1.49, 1.5, 1.52],
             ("process", 2): [1.0, 1.01, 0.99, 1.0, 1.02]}
    same = {(3, "ValueError")}
    trials, failures = with_failures(walls, {"serial": same, "thread": same,
                                             "process": same | {(5, "BrokenProcessPool")}})
    rec = recommend(summarize(trials, cores=2), trials, 2, FAMILIES, failures=failures)
    assert rec.executor == "thread" and rec.left_out == [3]


def test_the_same_item_failing_differently_is_not_left_out():
    walls = {("serial", 1): [2.0, 2.02, 1.98], ("process", 2): [1.0, 1.01, 0.99]}
    trials, failures = with_failures(walls, {"serial": {(3, "ValueError")},
                                             "process": {(3, "PicklingError")}})
    rec = recommend(summarize(trials, cores=2), trials, 2, FAMILIES, failures=failures)
    assert rec is None


def test_contenders_are_what_the_verdict_is_still_unsure_of():
    trials = scripted({("serial", 1): [2.0, 2.0, 2.0, 2.0, 2.0],
                       ("thread", 2): [1.1, 2.5, 0.9, 1.9, 1.2],
                       ("process", 2): [1.00, 1.01, 0.99, 1.00, 1.02]})
    assert contenders(trials, None, FAMILIES) == {("thread", 2, 4), ("process", 2, 4)}
    decided = scripted({("serial", 1): [2.0, 2.01, 1.99], ("process", 2): [1.0, 1.01, 0.99]})
    assert contenders(decided, None, FAMILIES) == frozenset()


def test_an_executor_that_recorded_fewer_items_did_other_work():
    walls = {("serial", 1): [2.0, 2.02, 1.98], ("process", 2): [1.0, 1.01, 0.99]}
    trials, failures = with_failures(walls, {})
    trials.loc[trials["executor"] == "process", "items"] = 39  # a chunk never reported
    rec = recommend(summarize(trials, cores=2), trials, 2, FAMILIES, failures=failures)
    assert rec.executor == "serial" and rec.comparisons == []


def test_no_recommendation_when_every_item_failed_everywhere():
    walls = {("serial", 1): [0.02, 0.021, 0.019], ("process", 2): [0.05, 0.051, 0.049]}
    every = {(i, "TypeError") for i in range(40)}
    trials, failures = with_failures(walls, {"serial": every, "process": every})
    assert recommend(summarize(trials, cores=2), trials, 2, FAMILIES, failures=failures) is None


# --- once through the real pipeline ----------------------------------------------------------

def raises_on_three(item: int) -> int:
    if item == 3:
        raise ValueError("item 3 is bad")
    return item * 2


def test_a_deterministic_failure_through_real_executors_is_left_out():
    result = poolscope.compare(raises_on_three, 10, executors="thread,thread-pool", workers=2,
                               repeat=3)
    rec = result.recommendation
    assert rec is not None and rec.left_out == [3]
    assert any(r.startswith("1 of 10 items left out: it raised ValueError") for r in rec.reasons)
    assert result.exit_code == 1  # the items still failed: the run says so
    assert result.to_json()["recommendation"]["left_out_items"] == [3]
