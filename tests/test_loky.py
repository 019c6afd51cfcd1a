"""The loky executor: runs, ships __main__ functions, survives a dead worker, leaves nothing."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from poolscope.backends import REGISTRY, get_backend
from poolscope.measure.runner import Plan, make_chunks, run_plan, run_trial
from poolscope.workloads import Workload, resolve_workload

pytestmark = [
    pytest.mark.skipif(REGISTRY["loky"].unavailable_reason() is not None,
                       reason="loky is not installed"),
    pytest.mark.timeout(90),
]


def double(x: int) -> int:
    return 2 * x


def exit_once(x: int, marker: str) -> int:
    """Item 3 kills its worker the first time only (the marker file remembers)."""
    if x == 3 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(7)
    return x


def alive(pids) -> list[int]:
    """Those of ``pids`` that still run (a zombie does not count: it has ended)."""
    left = []
    for pid in set(pids):
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                left.append(pid)
        except psutil.NoSuchProcess:
            pass
    return left


def test_runs_every_item_in_worker_processes_and_leaves_none():
    t = run_trial(0, get_backend("loky"), double, 2, make_chunks(list(range(10)), 2))
    assert t.status == "ok"
    assert t.items.item.tolist() == list(range(10))
    pids = set(t.items.pid.tolist())
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert alive(pids) == []  # close() shut the reusable executor down with its workers


def test_unavailable_without_loky(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "loky" else real(name, *a))
    assert "pip install 'poolscope[loky]'" in REGISTRY["loky"].unavailable_reason()


def test_a_script_without_a_main_guard(tmp_path: Path):
    """A function of __main__ goes by value, and workers do not re-run the script."""
    script = tmp_path / "experiment.py"
    script.write_text(textwrap.dedent("""
        from poolscope.backends import get_backend
        from poolscope.measure.runner import make_chunks, run_trial

        def triple(x):
            return 3 * x

        print("script ran")
        t = run_trial(0, get_backend("loky"), triple, 2, make_chunks(list(range(6)), 1))
        print(t.status, t.result_sample[:1], t.errors)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("script ran") == 1
    assert "ok [" in done.stdout


def test_a_dead_worker_is_recorded_and_the_run_goes_on(tmp_path: Path):
    marker = tmp_path / "died"
    workload = Workload(fn=functools.partial(exit_once, marker=str(marker)),
                        items=list(range(8)), target="exit_once")
    trials, interrupted = run_plan(workload, Plan(executors=("loky",), workers=(2,),
                                                  repeat=2, chunksize=1))
    assert not interrupted and marker.exists()
    first, second = trials
    assert first.status == "partial" and first.restarts == 1
    assert [e["kind"] for e in first.errors] == ["WorkerDiedError"]
    assert "exit code 7" in first.errors[0]["message"]
    assert first.items.item.tolist() == [0, 1, 2, 4, 5, 6, 7]  # the rest on a new pool
    # The broken executor was replaced: the next trial runs every item.
    assert second.status == "ok" and second.items.item.tolist() == list(range(8))
    assert alive(first.items.pid.tolist() + second.items.pid.tolist()) == []


def test_reused_pool_counts_each_workers_cpu_once():
    workload = resolve_workload("cpu", 8, size=300_000)
    trials, _ = run_plan(workload, Plan(executors=("loky",), workers=(2,), repeat=3,
                                        reuse_pool=True))
    assert [t.status for t in trials] == ["ok"] * 3
    # Reused: three trials ran on the same two workers (fresh pools would show six pids; in one
    # trial a worker may happen to take no chunk).
    pids = [set(t.items.pid.tolist()) for t in trials]
    assert len(set().union(*pids)) <= 2
    for t in trials[1:]:
        item_cpu = t.items.cpu_ns.sum() / 1e9
        # The tree's CPU holds this trial's items once (earlier trials' CPU is not re-counted).
        assert 0.8 * item_cpu <= t.cpu_s <= 1.6 * item_cpu + 0.05
    assert alive(sorted(set().union(*pids))) == []


def test_a_worker_idle_in_one_trial_is_not_charged_its_start_up_in_the_next():
    workload = resolve_workload("cpu", 8, size=300_000)
    cls = get_backend("loky")
    backend = cls(workload.fn, 2)
    backend.start()
    try:  # one chunk: loky starts both workers, one of them runs nothing
        first = run_trial(0, cls, workload.fn, 2, make_chunks([1], 1), backend=backend)
        second = run_trial(1, cls, workload.fn, 2, make_chunks(list(workload.items), 1),
                           backend=backend)
    finally:
        backend.close()
    assert first.status == second.status == "ok"
    assert len(backend.cpu_reported) == 2  # both workers have a reading after the first trial
    item_cpu = second.items.cpu_ns.sum() / 1e9
    assert 0.8 * item_cpu <= second.cpu_s <= 1.6 * item_cpu + 0.05


def test_fresh_pool_per_trial_counts_worker_cpu():
    workload = resolve_workload("cpu", 8, size=300_000)
    t = run_trial(0, get_backend("loky"), workload.fn, 2, make_chunks(list(workload.items), 2))
    assert t.status == "ok"
    assert t.cpu_s >= 0.8 * t.items.cpu_ns.sum() / 1e9  # the workers' CPU, not just the parent's
