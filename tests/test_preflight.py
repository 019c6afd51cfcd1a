"""The preflight: a function that fails on each of its first items stops the run at once.

Through the real CLI (exit code, how soon, the message with the exception and the user's frame,
nothing stored) and the API (PreflightError carrying the exception and its traceback).
"""

from __future__ import annotations

import json
import time

import pytest

import poolscope
from poolscope import PreflightError
from poolscope.measure.preflight import PREFLIGHT_ITEMS, preflight, try_items, user_frames

# Each item sleeps before it raises: running every trial, as before the preflight, takes at
# least 40 items × 0.1 s for the serial trial alone; the preflight three items.
FAILING = '''import time

def check(x):
    time.sleep(0.1)
    raise ValueError(f"bad item {x}")

def fails(x):
    return check(x)

def two(a, b):
    return a + b

def first_bad(x):
    if x == 0:
        raise KeyError("only item 0")
    return x

def ends(x):
    import os
    os._exit(7)

def crashes(x):
    import ctypes
    ctypes.string_at(0)
'''


@pytest.fixture
def target(tmp_path):
    path = tmp_path / "failing.py"
    path.write_text(FAILING, encoding="utf-8")
    return path


@pytest.mark.parametrize("isolate", ["--isolate", "--no-isolate"])
def test_a_function_failing_on_every_item_stops_before_the_trials(cli, target, isolate):
    began = time.monotonic()
    result = cli("run", f"{target}:fails", "--items", "40", "-e", "thread,process", "--quiet",
                 isolate, "--store", "runs.db")
    took = time.monotonic() - began
    assert result.returncode == 1, result.stderr
    # The trials alone would take 8 s and more (serial: 40 × 0.1 s, at least 5 trials).
    assert took < 8, took
    assert result.stdout == ""
    err = result.stderr
    assert err.startswith("poolscope: error: the function failed on each of its first 3 items")
    assert "ValueError: bad item 0" in err and "ValueError: bad item 2" in err
    # the user's frames, innermost last, and none of poolscope's
    assert f'File "{target}", line 8, in fails' in err
    assert f'File "{target}", line 5, in check' in err
    assert "poolscope/" not in err.replace(str(target), "")
    assert "Traceback" in err and err.count("Traceback") == 1
    history = cli("history", "--store", "runs.db")
    assert history.returncode == 0 and "no runs stored yet" in history.stdout  # nothing stored


def test_the_issue_case_stops_within_seconds(cli, target):
    """def two(a, b) under four executors ran 3,880 failing items for 6 s."""
    began = time.monotonic()
    result = cli("run", f"{target}:two", "--items", "20", "-e",
                 "thread,process,process-spawn,process-forkserver", "--quiet", "--no-store")
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - began < 6
    assert "TypeError: two() missing 1 required positional argument: 'b'" in result.stderr
    assert "items 0, 1, 2: TypeError" in result.stderr  # one line for the same failure


def test_sweep_stops_the_same_way(cli, target):
    result = cli("sweep", f"{target}:two", "--items", "10", "-e", "thread", "-w", "1,2",
                 "--quiet", "--no-store")
    assert result.returncode == 1, result.stderr
    assert "items 0, 1, 2: TypeError: two() missing 1" in result.stderr


@pytest.mark.parametrize(("name", "how"), [("ends", "exit code 7"), ("crashes", "SIGSEGV")])
def test_a_function_ending_its_process_in_the_preflight_stops_the_run(cli, target, name, how):
    result = cli("run", f"{target}:{name}", "--items", "10", "-e", "thread,process", "--quiet",
                 "--no-store", timeout=60)
    assert result.returncode == 1, result.stderr
    first = result.stderr.splitlines()
    assert first[0].startswith("poolscope: error: the function failed on its first item")
    assert "it ended the process running it" in result.stderr and how in result.stderr
    assert "Traceback" not in result.stderr  # poolscope's own: none


def test_one_failing_item_does_not_stop_the_run(cli, target):
    result = cli("run", f"{target}:first_bad", "--items", "6", "-e", "thread", "--quiet",
                 "--repeat", "1", "--no-store", "--json", "out.json")
    assert result.returncode == 1, result.stderr  # finished, item 0 failed in every trial
    doc = json.loads((target.parent / "out.json").read_text())
    assert doc["options"]["preflight"]["passed"] and doc["options"]["preflight"]["items"] == 2
    # preflight calls are no measurements: each trial has its six items, no more
    assert len(doc["summary"]) == 2 and all(row["trials"] == 1 for row in doc["summary"])
    assert sum(1 for e in doc["errors"] if e["kind"] == "KeyError") == 2  # serial and thread


def _raises_deep(x):
    return _inner(x)


def _inner(x):
    return {}[x]


def test_api_raises_preflight_error_with_the_exception_and_its_frames():
    with pytest.raises(PreflightError) as caught:
        poolscope.compare(_raises_deep, 10, executors=["thread"], repeat=1)
    error = caught.value
    assert isinstance(error.exception, KeyError)  # the original, raised in this process
    assert "in _raises_deep" in error.traceback and "in _inner" in error.traceback
    assert error.traceback.splitlines()[-1] == "KeyError: 0"
    assert len(error.outcomes) == PREFLIGHT_ITEMS
    assert not isinstance(error, poolscope.UsageError)  # not bad usage: exit 1, not 2


def test_api_isolated_preflight_runs_in_the_child():
    with pytest.raises(PreflightError, match="child process") as caught:
        poolscope.compare(_raises_deep, 10, executors=["thread"], repeat=1, isolate=True)
    assert caught.value.exception is None  # raised in the child: its text only
    assert "in _inner" in caught.value.traceback


def test_a_passing_run_records_its_preflight():
    result = poolscope.compare(abs, 8, executors=["thread"], repeat=1)
    checked = result.options["preflight"]
    assert checked["passed"] and checked["items"] == 1 and not checked["timed_out"]
    assert checked["where"] == "this process"
    assert all(len(t.items) == 8 for t in result.trial_results)


def _spin(x):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pass
    return x


@pytest.mark.parametrize("isolate", [False, True])
def test_a_preflight_timeout_is_no_verdict(isolate):
    began = time.monotonic()
    report = preflight(_spin, [0, 1], ["serial"], isolate, item_timeout=0.5)
    assert time.monotonic() - began < 5
    assert report["timed_out"] and not report["passed"]


def test_try_items_stops_at_the_first_item_that_returns():
    calls = []

    def fn(x):
        calls.append(x)
        if x < 1:
            raise SystemExit(3)  # an item's SystemExit is its failure, not poolscope's exit
        return x

    outcomes = try_items(fn, [0, 1, 2])
    # Item 2 is never called; item 1, which returned, again (a few times) while the GIL is
    # watched, which tells nothing of an item this short.
    from poolscope.measure.gil_watch import MAX_CALLS

    assert calls[:2] == [0, 1] and set(calls[2:]) == {1} and len(calls) <= 2 + MAX_CALLS
    assert [o["ok"] for o in outcomes] == [False, True]
    assert "gil" not in outcomes[1]
    assert outcomes[0]["kind"] == "SystemExit"


def test_user_frames_leave_poolscope_out():
    kept: list[BaseException] = []
    try_items(_raises_deep, [5], kept)
    text = user_frames(kept[0])
    assert "poolscope/preflight.py" not in text and "in _inner" in text
    assert text.splitlines()[-1] == "KeyError: 5"


async def _async_fails(x):
    raise LookupError(f"async {x}")


def test_an_async_function_is_awaited_and_its_frames_start_at_the_users():
    kept: list[BaseException] = []
    (outcome,) = try_items(_async_fails, [4], kept)
    assert outcome["kind"] == "LookupError" and outcome["message"] == "async 4"
    first_frame = outcome["traceback"].splitlines()[1]
    assert "test_preflight.py" in first_frame and "in _async_fails" in first_frame  # no asyncio
