"""Contract tests, generated for every registered executor.

Each executor must: run every item exactly once; record start ≤ end on one time axis that
begins near the trial's start; put thread-family work in this process and process-family work in
other processes; record an item's exception without losing the other items; run a function that
cannot be imported by reference (a lambda, a function from ``__main__``).
"""

from __future__ import annotations

import os
import re
import types

import numpy as np
import pytest

from interp_workloads import fail_on_three, square
from poolscope import UsageError
from poolscope.backends import REGISTRY, get_backend
from poolscope.measure.runner import Plan, make_chunks, run_trial

AVAILABLE = [name for name, cls in REGISTRY.items() if cls.unavailable_reason() is None]


def main_module_function():
    """A function that claims to live in __main__, as one defined in a notebook does."""
    code = compile("def from_main(x):\n    return x + 1\n", "<notebook cell>", "exec")
    namespace: dict = {"__name__": "__main__"}
    exec(code, namespace)
    fn = namespace["from_main"]
    assert isinstance(fn, types.FunctionType) and fn.__module__ == "__main__"
    return fn


def trial(name: str, fn, n: int = 12, workers: int = 2, chunksize: int = 2):
    return run_trial(0, get_backend(name), fn, workers, make_chunks(list(range(n)), chunksize))


def test_registry_has_the_core_executors():
    for name in ("serial", "thread", "thread-pool", "process", "process-fork",
                 "process-spawn", "process-forkserver", "process-pool"):
        assert name in REGISTRY


def test_unknown_executor_names_the_choices():
    with pytest.raises(UsageError, match="unknown executor 'threads'; choose from serial"):
        get_backend("threads")


@pytest.mark.parametrize("name", AVAILABLE)
class TestContract:
    def test_every_item_once_in_order_of_index(self, name):
        t = trial(name, square)
        assert t.status == "ok"
        assert t.items.item.tolist() == list(range(12))
        assert (t.items.status == 0).all()

    def test_times_on_one_axis(self, name):
        t = trial(name, square)
        cols = t.items
        assert (cols.end_ns >= cols.start_ns).all()
        assert (cols.start_ns >= 0).all()
        assert cols.end_ns.max() <= t.wall_s * 1e9
        assert 0 <= t.startup_s <= t.wall_s
        assert 0 <= t.teardown_s <= t.wall_s
        assert (cols.cpu_ns >= 0).all()

    def test_workers_are_where_the_family_says(self, name):
        t = trial(name, square)
        pids = set(t.items.pid.tolist())
        if not REGISTRY[name].in_process:
            assert os.getpid() not in pids
            assert 1 <= len(pids) <= 2
        else:
            assert pids == {os.getpid()}
        if not REGISTRY[name].family.pooled:
            assert len(set(t.items.tid.tolist())) == 1

    def test_item_exception_is_recorded_and_others_kept(self, name):
        t = trial(name, fail_on_three)
        assert t.status == "partial"
        assert t.items.item.tolist() == list(range(12))
        assert np.flatnonzero(t.items.status).tolist() == [3]
        assert t.errors == [{"executor": name, "item": 3, "kind": "ValueError",
                             "message": "item 3 is bad"}]

    def test_function_not_importable_by_reference(self, name):
        for fn in (lambda x: x * 2, main_module_function()):
            t = trial(name, fn, n=6)
            assert t.status == "ok", t.errors
            assert len(t.items) == 6

    def test_records_are_columnar(self, name):
        t = trial(name, square)
        for column in ("item", "start_ns", "end_ns", "cpu_ns", "core", "status", "pid", "tid"):
            assert isinstance(getattr(t.items, column), np.ndarray)
        assert t.items.nbytes / len(t.items) <= 64

    def test_an_item_past_the_timeout_is_stopped_and_the_others_kept(self, name):
        from fault_workloads import spin_on_three

        if not REGISTRY[name].stops_items:
            with pytest.raises(UsageError, match="do not work with"):
                Plan(executors=(name,), workers=(2,), timeout_s=0.5)
            return
        t = run_trial(0, get_backend(name), spin_on_three, 2, make_chunks(list(range(12)), 2),
                      timeout_s=0.5)
        assert t.status == "partial"
        assert sorted(t.items.item.tolist()) == list(range(12))
        assert [(e["item"], e["kind"]) for e in t.errors] == [(3, "Timeout")]
        assert t.items.status[t.items.item.tolist().index(3)] == 1

    def test_peak_rss_and_cpu_are_measured(self, name):
        t = trial(name, square)
        assert t.peak_rss > 1 << 20
        assert t.cpu_s >= 0


def test_unavailable_start_method_says_why(monkeypatch):
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert "not supported" in REGISTRY["process-fork"].unavailable_reason()
    with pytest.raises(UsageError, match="not available here"):
        get_backend("process-fork")


def exit_on_three(x: int) -> int:
    if x == 3:
        os._exit(7)
    return x


PROCESS_EXECUTORS = [name for name in AVAILABLE if not REGISTRY[name].in_process]


@pytest.mark.parametrize("name", PROCESS_EXECUTORS)
def test_a_dead_worker_is_named_and_the_trial_goes_on_without_its_item(name):
    t = trial(name, exit_on_three, chunksize=1)
    assert len(t.errors) == 1
    assert 3 not in t.items.item.tolist()
    if name != "dask":  # Pool would wait forever without the watchdog
        assert t.status == "partial" and t.restarts == 1
        assert t.items.item.tolist() == [i for i in range(12) if i != 3]
        error = t.errors[0]
        assert error["kind"] == "WorkerDiedError" and error["item"] == 3
        assert re.match(r"item 3 \(worker pid \d+\): exit code 7 — the function ended the "
                        r"process itself .*; the items of its chunk that had not reported ran "
                        r"again on a new pool$", error["message"]), error["message"]
    else:  # dask retries on other workers until allowed-failures runs out
        assert t.status == "failed"
        # item 3 alone, or with the bystanders dask gave up on at the same time
        assert t.errors[0]["item"] in (3, None)
        assert t.errors[0]["kind"] == "WorkerDiedError"
        # Tasks held by the dying workers fail with item 3's; dask cannot tell them apart.
        assert re.match(r"items? (\S+, )*(\S+ and )?\b3\b.*: every Dask worker that ran them "
                        r"died", t.errors[0]["message"]), t.errors[0]["message"]
        # The local cluster's nannies tell each dead worker's exit code.
        assert re.search(r"\(pid \d+ on \S+: exit code 7 — the function ended the process "
                         r"itself", t.errors[0]["message"]), t.errors[0]["message"]
