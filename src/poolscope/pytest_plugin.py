"""poolscope in a test suite, in pytest-benchmark's manner (installed with the package).

    def test_resize_scales(poolscope):
        result = poolscope(resize, photos, executors="thread,process")
        assert result.recommendation.executor != "serial"

The ``poolscope`` fixture runs ``poolscope.compare``'s measurement (same arguments) and stores
the run under the test's node id, in the project's store (``--poolscope-store PATH`` for
another). With ``--poolscope-compare-fail=PCT`` the session fails when a test's recommended
configuration got slower than in that test's last stored run by more than PCT percent, with
95% confidence (as ``poolscope compare --fail-on-regression``); runs of another target, other
items or another machine are not compared, and the summary says so. At the end of the session a
table gives each test's verdict and its change since the last run.

Importing this module costs nothing: poolscope's measuring code loads when a test first calls
the fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["Measured", "pytest_addoption", "pytest_configure"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("poolscope", "poolscope: how a function runs in parallel")
    group.addoption("--poolscope-store", metavar="PATH", default=None,
                    help="Where the poolscope fixture stores its runs [default: the "
                         "project's store, as the poolscope CLI finds it].")
    group.addoption("--poolscope-compare-fail", metavar="PCT", type=float, default=None,
                    help="Fail the session when a test's recommended configuration got slower "
                         "than in its last stored run by more than PCT percent (95% "
                         "confidence).")


def pytest_configure(config: pytest.Config) -> None:
    fail = config.getoption("--poolscope-compare-fail")
    if fail is not None and fail < 0:
        raise pytest.UsageError("--poolscope-compare-fail must be zero or more")
    config.stash[_RUNS] = []


@dataclass
class Measured:
    """One fixture call: the test, its run, and how it compares with the test's last run."""

    node_id: str
    run_id: str | None
    verdict: str
    change: str  # in words: "+3.1% (no measurable change)", "first run", "not compared: …"
    regression: bool = False


_RUNS = pytest.StashKey[list[Measured]]()


@pytest.fixture
def poolscope(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``poolscope(fn, items, **compare_arguments)``: measure, store, return the Result."""
    config = request.config

    def measure(fn: Callable[[Any], Any], items: Iterable[Any] | int, **options: Any) -> Any:
        from .api import run_workload, workload_of
        from .store import RunStore, store_path

        node_id = request.node.nodeid
        with RunStore(store_path(config.getoption("--poolscope-store"))) as store:
            previous = store.last_labelled(node_id)
            result = run_workload(workload_of(fn, items), store=store, label=node_id,
                                  **options)
            before = store.load(previous) if previous else None
        config.stash[_RUNS].append(
            _measured(node_id, result, before, config.getoption("--poolscope-compare-fail")))
        return result

    return measure


def _measured(node_id: str, result: Any, before: Any, fail_pct: float | None) -> Measured:
    from .analysis.change import compare_runs, mismatches

    rec = result.recommendation
    verdict = "no recommendation" if rec is None else (
        ("inconclusive — " if rec.inconclusive else "")
        + f"{rec.executor} ×{rec.workers}")
    measured = Measured(node_id, result.run_id, verdict, "first run")
    if before is None or rec is None:
        return measured
    apart = mismatches(before, result)
    if apart:
        measured.change = f"not compared: {'; '.join(apart)}"
        return measured
    change = next((c for c in compare_runs(before.trials, result.trials)
                   if (c.executor, c.workers) == (rec.executor, rec.workers)), None)
    if change is None:
        measured.change = f"not compared: {rec.executor} ×{rec.workers} did not run before"
        return measured
    measured.change = f"{change.ratio - 1:+.1%} ({change.verdict})"
    measured.regression = fail_pct is not None and change.regression_beyond(fail_pct)
    return measured


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    runs = session.config.stash.get(_RUNS, [])
    if any(m.regression for m in runs) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    runs = config.stash.get(_RUNS, [])
    if not runs:
        return
    fail = config.getoption("--poolscope-compare-fail")
    reporter = terminalreporter
    reporter.write_sep("-", "poolscope")
    width = max(len(m.node_id) for m in runs)
    for m in runs:
        mark = "REGRESSION " if m.regression else ""
        reporter.write_line(f"{m.node_id:<{width}}  {m.verdict:<24}  {mark}{m.change}"
                            f"  [{m.run_id}]", red=m.regression)
    store = config.getoption("--poolscope-store")
    where = f" in {Path(store)}" if store else ""
    regressions = sum(m.regression for m in runs)
    if regressions:
        reporter.write_line(f"poolscope: {regressions} of {len(runs)} measured configurations "
                            f"got slower by more than {fail:g}% (95% confidence): the session "
                            "fails", red=True)
    else:
        reporter.write_line(f"poolscope: {len(runs)} runs stored{where} (poolscope history)")
