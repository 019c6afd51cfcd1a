"""The crash matrix: every executor with worker processes, every way an item can go wrong; and
the in-process executors, isolated in a child (the CLI's default), for the faults that end a
process.

Each fault hits item 3 of 12. Whatever happens, the error names item 3 (and, when its worker
died, the worker pid, the exit code or signal and the likely cause), the trial is partial and
every other item is in the results — the rest runs on a new pool when a worker died — and no
worker is left behind (conftest's check after every test).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import types
from concurrent.futures.process import BrokenProcessPool

import pandas as pd
import pytest

import fault_workloads as faults
import poolscope
from poolscope.backends import REGISTRY
from poolscope.measure.faults import dead_worker_errors
from poolscope.measure.probe import Chunk
from poolscope.measure.runner import Plan, run_plan
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


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "isolated"])
@pytest.mark.parametrize("fault", ["raises", "sys.exit"])
@pytest.mark.parametrize("name", IN_PROCESS)
def test_an_item_that_raises_or_exits_is_its_own_error_in_process_or_isolated(name, fault,
                                                                              isolate):
    fn, kind, message = FAULTS[fault]
    workload = Workload(fn=fn, items=list(range(12)), target=fn.__name__)
    (trial,), _ = run_plan(workload, Plan(executors=(name,), workers=(2,), chunksize=1,
                                          isolate=isolate))
    assert trial.status == "partial" and trial.restarts == 0, trial.errors
    assert [(e["item"], e["kind"]) for e in trial.errors] == [(3, kind)]
    assert re.match(message, trial.errors[0]["message"]), trial.errors[0]["message"]
    assert trial.items.item[trial.items.status == 0].tolist() == [i for i in range(12) if i != 3]


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


CRASHES = {  # what a target file's function does on item 3 -> the signal or exit it gives
    "os._exit": ("import os\n", "os._exit(7)", "exit code 7"),
    "SIGKILL": ("import os, signal\n", "os.kill(os.getpid(), signal.SIGKILL)", "signal SIGKILL"),
    "segfault": ("import ctypes\n", "ctypes.string_at(0)", "signal SIGSEGV"),
}


@pytest.mark.parametrize("fault", CRASHES)
def test_cli_keeps_the_run_going_when_a_function_ends_its_process(cli, tmp_path, fault):
    """By default the CLI runs in-process executors in a child: every executor's trial names
    item 3 and its dead process, keeps the other items (in the store), the run goes on, and
    it exits 1."""
    imports, crash, how = CRASHES[fault]
    (tmp_path / "crash.py").write_text(
        f"{imports}\ndef work(x):\n    if x == 3:\n        {crash}\n    return x\n")
    executors = ["serial", "thread", "thread-pool", "asyncio", "process"]
    done = cli("run", "crash.py:work", "--items", "8", "-e", ",".join(executors), "-w", "2",
               "-r", "1", "--chunksize", "1", "--json", "out.json", "--quiet", timeout=180)
    assert done.returncode == 1, done.stderr
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["options"]["isolate"] is True
    assert sorted((e["executor"], e["item"], e["kind"]) for e in doc["errors"]) == sorted(
        (name, 3, "WorkerDiedError") for name in executors), doc["errors"]
    for error in doc["errors"]:
        assert re.match(r"item 3 \(worker pid \d+\): ", error["message"]), error["message"]
        assert how in error["message"], error["message"]
    assert cli("export", "latest", "--format", "csv", "-o", "items.csv").returncode == 0
    items = pd.read_csv(tmp_path / "items.csv")
    for name in executors:
        kept = items[(items.executor == name) & (items.status == "ok")].item
        assert sorted(kept) == [0, 1, 2, 4, 5, 6, 7], name


def test_cli_no_isolate_runs_in_process_executors_in_poolscope_itself(tmp_path):
    pids = {}
    for flag in ("--isolate", "--no-isolate"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "poolscope", "run", "tiny", "--items", "20", "-e",
             "serial,thread", "-r", "1", flag, "--store", "runs.db", "--quiet"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        items = poolscope.load("latest", store=tmp_path / "runs.db").items
        pids[flag] = (proc.pid, set(items.pid))
    cli_pid, seen = pids["--no-isolate"]
    assert seen == {cli_pid}  # serial and thread ran in poolscope's own process
    cli_pid, seen = pids["--isolate"]
    assert len(seen) == 1 and cli_pid not in seen  # both in one child


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


# --- which worker went first, when every one ended by a signal ---------------------------------

class _Ended:
    def __init__(self, exitcode: int) -> None:
        self.exitcode = exitcode


class _Board:
    def __init__(self, running: dict[int, int]) -> None:
        self.lanes = [types.SimpleNamespace(pid=pid, tid=1, item=item)
                      for pid, item in running.items()]

    def busy(self):
        return self.lanes


@pytest.mark.parametrize(("codes", "cleanup", "named", "shared"), [
    # ProcessPoolExecutor terminates the rest: the SIGKILL'd one (the OOM killer) went first
    ({10: -9, 11: -15}, signal.SIGTERM, [(10, 3)], False),
    # loky kills the rest: the SIGTERM'd one went first
    ({10: -15, 11: -9}, signal.SIGKILL, [(10, 3)], False),
    # the function sent itself SIGTERM under ProcessPoolExecutor: both ended alike, both suspects
    ({10: -15, 11: -15}, signal.SIGTERM, [(10, 3), (11, 4)], True),
    # one busy worker killed, no matter how: it is the one
    ({10: -9}, None, [(10, 3)], False),
])
def test_the_worker_that_went_first_is_named_or_its_peers_run_again(codes, cleanup, named,
                                                                     shared):
    errors = dead_worker_errors({pid: _Ended(code) for pid, code in codes.items()},
                                       _Board({10: 3, 11: 4}), cleanup=cleanup)
    assert [(int(e["message"].split("pid ")[1].split(")")[0]), e["item"]) for e in errors] \
        == named
    assert all(e["shared"] is shared for e in errors)
