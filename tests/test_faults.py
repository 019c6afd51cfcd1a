"""The crash matrix: every executor with worker processes, every way an item can go wrong.

Each fault hits item 3 of 12. Whatever happens, the error names item 3 (and, when its worker
died, the worker pid, the exit code or signal and the likely cause), the trial is partial and
every other item is in the results — the rest runs on a new pool when a worker died — and no
worker is left behind (conftest's check after every test).
"""

from __future__ import annotations

import re
import threading
from concurrent.futures.process import BrokenProcessPool

import pytest

import fault_workloads as faults
from poolscope.backends import REGISTRY
from poolscope.probe import Chunk
from poolscope.runner import Plan, run_plan
from poolscope.workloads import Workload

pytestmark = pytest.mark.timeout(120)

EXECUTORS = [name for name, cls in REGISTRY.items()
             if cls.family == "process" and name != "dask" and "@" not in name
             and cls.unavailable_reason() is None]

# fault -> (function, error kind, what the message must say)
DIED = r"item 3 \(worker pid \d+\): {} — {}.*; the items of its chunk that had not reported " \
       r"ran again on a new pool$"
FAULTS = {
    "raises": (faults.raise_on_three, "ValueError", r"item 3 is bad"),
    "sys.exit": (faults.sys_exit_on_three, "SystemExit", r"the function called sys\.exit\(3\)"),
    "os._exit": (faults.os_exit_on_three, "WorkerDiedError",
                 DIED.format("exit code 7", "the function ended the process itself")),
    "SIGKILL": (faults.sigkill_on_three, "WorkerDiedError",
                DIED.format("signal SIGKILL", "killed from outside: the kernel's OOM killer")),
    "segfault": (faults.segfault_on_three, "WorkerDiedError",
                 DIED.format("signal SIGSEGV", r"a crash in native code \(segmentation fault\)")),
    "result not picklable": (faults.unpicklable_result_on_three, "PicklingError",
                             r"its result cannot be pickled to send it back from the worker "
                             r"process: TypeError: cannot pickle '_thread.lock' object"),
    "result not unpicklable": (faults.unreadable_result_on_three, "UnpicklingError",
                               r"the results of item 3 could not be unpickled in the parent: "
                               r"RuntimeError: cannot rebuild this result"),
}


def run(name: str, fn, items=None):
    """A trial of ``name``, then one of another executor (a fault that ends its process
    would end pytest under an in-process executor)."""
    other = "process" if name != "process" else "process-pool"
    workload = Workload(fn=fn, items=items if items is not None else list(range(12)),
                        target=getattr(fn, "__name__", "fn"))
    trials, interrupted = run_plan(workload, Plan(executors=(name, other), workers=(2,),
                                                  chunksize=1))
    assert not interrupted
    return trials


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("name", EXECUTORS)
def test_a_fault_in_one_item_is_named_and_the_rest_is_kept(name, fault):
    fn, kind, message = FAULTS[fault]
    trial, other = run(name, fn)
    assert trial.status == "partial", trial.errors
    named = [e for e in trial.errors if e["item"] == 3]
    assert [e["kind"] for e in named] == [kind], trial.errors
    assert re.match(message, named[0]["message"]), named[0]["message"]
    assert [e for e in trial.errors if e["item"] != 3] == []
    kept = trial.items.item[trial.items.status == 0].tolist()
    assert kept == [i for i in range(12) if i != 3]
    assert other.status == "partial"  # the run's other executor still ran


@pytest.mark.parametrize("name", EXECUTORS)
def test_an_item_that_cannot_be_pickled_stays_out_and_the_rest_runs(name):
    items: list = list(range(12))
    items[3] = threading.Lock()
    trial, other = run(name, faults.identity, items)
    assert trial.status == other.status == "partial"
    assert [(e["item"], e["kind"]) for e in trial.errors] == [(3, "PicklingError")]
    assert trial.errors[0]["message"] == (
        "the item cannot be pickled to send it to a worker process: TypeError: cannot pickle "
        "'_thread.lock' object")
    assert trial.items.item.tolist() == [i for i in range(12) if i != 3]


@pytest.mark.parametrize("name", EXECUTORS)
def test_a_function_that_cannot_be_pickled_fails_its_trial_only(name):
    lock = threading.Lock()
    trial, other = run(name, lambda x, lock=lock: x)
    assert trial.status == other.status == "failed"
    assert [(e["item"], e["kind"]) for e in trial.errors] == [(None, "PicklingError")]
    assert trial.errors[0]["message"].startswith(
        "the function cannot be pickled to send it to worker processes: TypeError: cannot "
        "pickle '_thread.lock' object")


@pytest.mark.skipif("process-forkserver" not in EXECUTORS, reason="no forkserver here")
def test_a_broken_forkserver_pool_tells_the_exit_code_every_time():
    """The broken pool's manager thread joins its workers while the runner reads their exit
    codes; read beside it, a forkserver worker's code came back as 255 about once in 30."""
    backend = REGISTRY["process-forkserver"](faults.os_exit_on_three, 2)
    for _ in range(30):
        backend.start()
        try:
            with pytest.raises(BrokenProcessPool):
                list(backend.run([Chunk(3, [3])]))
            codes = {p.exitcode for p in backend.worker_processes().values()} - {None}
            assert 7 in codes and 255 not in codes, codes
        finally:
            backend.close()


# --- in-process executors, isolated -----------------------------------------------------------
IN_PROCESS = [name for name, cls in REGISTRY.items()
              if cls.in_process and cls.family != "interpreter" and "@" not in name]
ENDS_ITS_PROCESS = ["os._exit", "SIGKILL", "segfault"]


@pytest.mark.parametrize("fault", ENDS_ITS_PROCESS)
@pytest.mark.parametrize("name", IN_PROCESS)
def test_isolated_in_process_executors_survive_a_fault_that_ends_the_process(name, fault):
    fn, kind, message = FAULTS[fault]
    workload = Workload(fn=fn, items=list(range(12)), target=fn.__name__)
    trials, _ = run_plan(workload, Plan(executors=(name, "process"), workers=(2,), chunksize=1,
                                        isolate=True))
    trial, other = trials
    assert trial.executor == name  # isolated, it keeps its name
    assert trial.status == other.status == "partial", trial.errors
    assert [(e["item"], e["kind"]) for e in trial.errors] == [(3, kind)]
    assert re.match(message, trial.errors[0]["message"]), trial.errors[0]["message"]
    assert trial.items.item[trial.items.status == 0].tolist() == [i for i in range(12) if i != 3]


def test_cli_isolate_keeps_the_run_going_after_a_segfault(cli, tmp_path):
    (tmp_path / "crash.py").write_text(
        "import ctypes\n\ndef work(x):\n    if x == 3:\n        ctypes.string_at(0)\n"
        "    return x\n")
    done = cli("run", "crash.py:work", "--items", "8", "-e", "thread,process", "-w", "2",
               "-r", "1", "--chunksize", "1", "--isolate", "--json", "out.json", "--quiet",
               timeout=120)
    assert done.returncode == 1, done.stderr
    import json

    errors = json.loads((tmp_path / "out.json").read_text())["errors"]
    assert {(e["executor"], e["item"], e["kind"]) for e in errors} == {
        ("serial", 3, "WorkerDiedError"), ("thread", 3, "WorkerDiedError"),
        ("process", 3, "WorkerDiedError")}
    assert all("signal SIGSEGV" in e["message"] for e in errors)


def test_a_bystander_thread_item_runs_again_alone_and_only_the_culprit_is_named():
    # Two threads of one (isolated) process are in items 2 and 3 when item 3 ends the process:
    # the board cannot say which; each runs again alone, and only item 3 fails again.
    workload = Workload(fn=faults.exit_while_another_item_runs, items=list(range(6)),
                        target="exit_while_another_item_runs")
    trials, _ = run_plan(workload, Plan(executors=("thread",), workers=(2,), chunksize=1,
                                        isolate=True))
    (trial,) = trials
    assert trial.status == "partial" and trial.restarts == 2
    assert [(e["item"], e["kind"]) for e in trial.errors] == [(3, "WorkerDiedError")]
    assert trial.items.item.tolist() == [0, 1, 2, 4, 5]
