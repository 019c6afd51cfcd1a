"""RunOptions: one frozen value for how a run measures, shared by the API, the CLI and the magic."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import poolscope
from poolscope._errors import UsageError
from poolscope.api import run_workload, sweep_workload
from poolscope.options import DEFAULT_EXECUTORS, RunOptions
from poolscope.workloads import resolve_workload


def test_options_are_frozen_and_normalised():
    options = RunOptions(executors=" thread , process", workers=3, chunksize=4)
    assert options.executors == ("thread", "process")
    assert options.workers == (3,)
    assert options.chunksize == (4,)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.workers = (2,)  # type: ignore[misc]
    assert options.replace(workers=[1, 2]).workers == (1, 2)
    assert options.workers == (3,)  # replace made a new value


def test_the_baseline_puts_serial_first_once():
    assert RunOptions(executors="thread").names == ("serial", "thread")
    assert RunOptions(executors="thread,serial").names == ("thread", "serial")
    assert RunOptions(executors="thread", baseline=False).names == ("thread",)


def test_parse_reads_the_command_lines_text():
    options = RunOptions.parse(executors="thread", workers="1,4", repeat="3",
                               chunksize="auto,8", max_memory="512M", isolate=True)
    assert options.workers == (1, 4)
    assert options.repeat == 3
    assert options.chunksize == ("auto", 8)
    assert options.max_memory == 512 << 20
    assert options.isolate is True


@pytest.mark.parametrize(("text", "message"), [
    ({"workers": "two"}, "--workers: 'two' is not a whole number"),
    ({"repeat": "often"}, "--repeat must be a whole number or 'auto'"),
    ({"chunksize": "big"}, "--chunksize must be a whole number or 'auto'"),
    ({"max_memory": "lots"}, "--max-memory must be a size like 512M"),
    ({"native_threads": 0}, "--native-threads must be at least 1"),
])
def test_parse_names_the_option_it_refuses(text, message):
    with pytest.raises(UsageError, match=message):
        RunOptions.parse(**text)


@pytest.mark.parametrize(("values", "message"), [
    ({"executors": ""}, "an executor name is empty"),
    ({"executors": ()}, "give at least one executor"),
    ({"workers": ()}, "give at least one worker count"),
    ({"workers": 2.5}, "workers must be a list"),
    ({"native_threads": "4"}, "native threads must be a whole number"),
])
def test_bad_values_are_refused_when_made(values, message):
    with pytest.raises(UsageError, match=message):
        RunOptions(**values)


@pytest.mark.parametrize(("values", "message"), [
    ({"executors": "nope"}, "unknown executor 'nope'"),
    ({"workers": 0}, "workers must be a whole number of at least 1"),
    ({"max_memory": 10}, "max memory must be at least 1 MiB"),
    ({"timeout": -1}, "timeout must be a number of seconds more than 0"),
])
def test_values_no_run_can_use_are_refused_when_planned(values, message):
    with pytest.raises(UsageError, match=message):
        RunOptions(**values).plan()


def test_the_plan_takes_every_value():
    plan = RunOptions(executors="thread", workers=(1, 2), repeat=2, chunksize=(3,), warmup=1,
                      max_time=5.0, timeout=1.5, trial_timeout=9.0, max_memory=64 << 20,
                      isolate=True, native_threads=1).plan()
    assert plan.executors == ("serial", "thread")
    assert plan.workers == (1, 2)
    assert (plan.repeat, plan.chunksizes, plan.warmup, plan.max_time_s) == (2, (3,), 1, 5.0)
    assert (plan.timeout_s, plan.trial_timeout_s, plan.max_memory) == (1.5, 9.0, 64 << 20)
    assert plan.isolate is True and plan.native_threads == 1
    assert RunOptions(workers=None).plan(workers=(4, 8)).workers == (4, 8)


@pytest.mark.parametrize("front", [poolscope.compare, poolscope.sweep])
def test_the_api_keywords_default_as_the_options_do(front):
    """compare and sweep spell RunOptions' fields as keywords: their defaults cannot drift."""
    defaults = {f.name: f.default for f in dataclasses.fields(RunOptions)}
    keywords = inspect.signature(front).parameters
    shared = [name for name in keywords if name in defaults]
    assert len(shared) >= 12
    for name in shared:
        default = keywords[name].default
        expected = defaults[name]
        if name == "executors":
            assert tuple(default) == expected == DEFAULT_EXECUTORS
        elif name == "chunksize":
            assert (default,) == expected
        elif name == "isolate":
            assert default is expected is False  # the API's default; the CLI isolates
        else:
            assert default == expected, name


def test_run_workload_takes_options_and_keywords_over_them():
    workload = resolve_workload("tiny", 6)
    options = RunOptions(executors="thread", workers=1, repeat=1, baseline=False)
    result = run_workload(workload, options, workers=2, store=None)
    assert set(result.summary["executor"]) == {"thread"}
    assert set(result.summary["workers"]) == {2}
    assert result.options["workers"] == [2] and result.options["repeat"] == 1


def test_sweep_workload_sweeps_worker_counts_from_the_options():
    result = sweep_workload(resolve_workload("tiny", 6),
                            RunOptions(executors="thread", workers=(1, 3), repeat=1))
    assert set(result.summary["executor"]) == {"serial", "thread"}
    assert set(result.summary.query("executor == 'thread'")["workers"]) == {1, 3}
    assert result.options["sweep"] is True
