"""The pytest plugin (issue 16, point 5), run in real inner pytest sessions (pytester): the
``poolscope`` fixture measures and stores under the test's node id, and
``--poolscope-compare-fail`` fails the session when the recommended configuration got slower."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from poolscope.store import RunStore

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

TESTS = """
import os
import time


def nap(item):
    time.sleep(float(os.environ["NAP_S"]))  # how slow this version of the code is
    return item


def test_naps(poolscope):
    result = poolscope(nap, range(8), executors="thread", workers=4, repeat=5)
    assert result.run_id and result.recommendation.executor == "thread"
"""


def test_the_plugin_is_installed_with_the_package():
    plugins = {e.name: e.value for e in entry_points(group="pytest11")}
    assert plugins.get("poolscope") == "poolscope.pytest_plugin"


def test_runs_are_stored_per_test_and_a_regression_fails_the_session(pytester, monkeypatch):
    pytester.makepyfile(test_speed=TESTS)
    store = pytester.path / "runs.db"
    options = ["-p", "no:cacheprovider", "--poolscope-store", str(store),
               "--poolscope-compare-fail", "20"]

    def session(nap_s: str) -> pytest.RunResult:
        monkeypatch.setenv("NAP_S", nap_s)
        done = pytester.runpytest_subprocess(*options, timeout=120)
        done.assert_outcomes(passed=1)
        return done

    first = session("0.005")
    assert first.ret == 0
    first.stdout.fnmatch_lines(["*poolscope*", "test_speed.py::test_naps*thread ×4*first run*"])

    slower = session("0.02")  # the code got 4× slower: the test passes, the session fails
    assert slower.ret == 1
    slower.stdout.fnmatch_lines(["*test_naps*REGRESSION +*% (slower)*",
                                 "*got slower by more than 20%*"])

    again = session("0.02")  # as slow as last time: no regression
    assert again.ret == 0
    assert "REGRESSION" not in again.stdout.str()

    with RunStore(store, create=False) as runs:
        stored = runs.history()
        assert len(stored) == 3 and all(r["target"] == "test_speed:nap" for r in stored)
        assert runs.last_labelled("test_speed.py::test_naps") == stored[0]["run_id"]
        assert runs.load("latest").options["label"] == "test_speed.py::test_naps"


def test_runs_of_other_items_are_not_compared(pytester, monkeypatch):
    pytester.makepyfile(test_speed=TESTS)
    store = pytester.path / "runs.db"
    monkeypatch.setenv("NAP_S", "0.005")
    assert pytester.runpytest_subprocess("--poolscope-store", str(store),
                                         timeout=120).ret == 0
    pytester.makepyfile(test_speed=TESTS.replace("range(8)", "range(12)"))
    done = pytester.runpytest_subprocess("--poolscope-store", str(store),
                                         "--poolscope-compare-fail", "0", timeout=120)
    assert done.ret == 0
    done.stdout.fnmatch_lines(["*not compared: different items: 8 and 12 of them*"])


def test_a_bad_threshold_is_a_usage_error(pytester):
    pytester.makepyfile(test_speed=TESTS)
    done = pytester.runpytest_subprocess("--poolscope-compare-fail", "-5", timeout=120)
    assert done.ret == pytest.ExitCode.USAGE_ERROR
    done.stderr.fnmatch_lines(["*--poolscope-compare-fail must be zero or more*"])
