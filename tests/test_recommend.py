"""The recommendation rules, on scripted trial walls (no real executor involved)."""

from __future__ import annotations

import pandas as pd

from poolscope.analysis.metrics import summarize
from poolscope.analysis.recommend import recommend

FAMILIES = {"serial": "serial", "thread": "thread", "process": "process"}


def scripted(walls: dict[tuple[str, int], list[float]]) -> pd.DataFrame:
    rows = []
    for (executor, workers), values in walls.items():
        for wall in values:
            rows.append({"executor": executor, "workers": workers, "chunksize": 4,
                         "wall_s": wall, "cpu_s": wall, "startup_s": 0.001,
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


def test_fewer_workers_win_a_tie():
    rec = decide({("serial", 1): [1.0, 1.01, 0.99],
                  ("thread", 2): [0.50, 0.51, 0.49],
                  ("thread", 4): [0.50, 0.49, 0.51]})
    assert (rec.executor, rec.workers) == ("thread", 2)


def test_single_trials_tie_within_five_percent_and_say_so():
    rec = decide({("serial", 1): [1.0], ("process", 2): [0.98]})
    assert rec.executor == "serial"
    assert any("one trial per executor" in c for c in rec.caveats)
    assert rec.comparisons[0].verdict == "unknown"


def test_failed_items_disqualify():
    trials = scripted({("serial", 1): [1.0, 1.0], ("process", 2): [0.5, 0.5]})
    trials.loc[trials["executor"] == "process", "errors"] = 1
    rec = recommend(summarize(trials, cores=2), trials, 2, FAMILIES)
    assert rec.executor == "serial"


def test_noisy_runs_do_not_tie():
    """A wide interval proves nothing: the fastest stays, even if a simpler one might tie."""
    rec = decide({("serial", 1): [2.0, 2.0, 2.0, 2.0, 2.0],
                  ("thread", 2): [1.1, 2.5, 0.9, 1.9, 1.2],
                  ("process", 2): [1.00, 1.01, 0.99, 1.00, 1.02]})
    assert (rec.executor, rec.workers) == ("process", 2)
