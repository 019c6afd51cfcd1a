"""Nothing hangs, nothing is orphaned (issue 13): teardown deadlines, stop signals, processes that
die with the CLI, and a function's own KeyboardInterrupt — all through the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from poolscope.measure.lifetime import KILL_GRACE_S, TEARDOWN_GRACE_S

pytestmark = pytest.mark.slow

HOSTILE = textwrap.dedent("""
    import os, signal, subprocess, threading, time

    def stray_thread(x):
        threading.Thread(target=time.sleep, args=(1e6,), daemon=False).start()
        return x

    def grandchild(x):
        subprocess.Popen(["sleep", "1000"])
        return x

    def nap(x):
        time.sleep(0.3)
        return x

    def own_interrupt(x):
        if x == 2:
            raise KeyboardInterrupt
        return x

    def sigint_self(x):
        if x == 2:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)
        return x

    def chatty(x):
        print("a line the function prints", x)
        os.write(1, b"and one it writes to fd 1\\n")
        return x
""")


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    (tmp_path / "hostile.py").write_text(HOSTILE)
    return tmp_path


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100"}
    return subprocess.Popen([sys.executable, "-m", "poolscope", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def workers_once(proc: subprocess.Popen[str], count: int,
                 timeout: float = 90.0) -> list[psutil.Process]:
    """The CLI's descendants once ``count`` of them are not the isolating child (which runs
    the preflight and, with ``count`` 0, the in-process executors): the pool's workers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = psutil.Process(proc.pid).children(recursive=True)
        others = []
        for process in found:
            with contextlib.suppress(psutil.Error):
                if "poolscope.measure._child" not in " ".join(process.cmdline()):
                    others.append(process)
        if len(others) >= count and found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"the CLI did not start {count} workers within {timeout} s")


def alive(processes: list[psutil.Process], timeout: float = 10.0) -> list[psutil.Process]:
    """Those still running (zombies count as gone) once ``timeout`` has passed or none is."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for process in processes:
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    left.append(process)
            except psutil.Error:
                pass
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def finish(proc: subprocess.Popen[str], timeout: float = 60.0) -> tuple[str, str]:
    """Its output once it ended; killed (and its pipes closed) when it does not."""
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def kill_all(processes: list[psutil.Process]) -> None:
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()


def test_a_stray_non_daemon_thread_is_a_teardown_fault_not_a_hang(hostile, cli):
    began = time.monotonic()
    done = cli("run", "hostile.py:stray_thread", "--items", "4", "-e",
               "process,process-pool,loky", "-w", "2", "-r", "1", "--no-store", "--json", "-",
               timeout=120)
    took = time.monotonic() - began
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    faults = {e["executor"]: e["message"] for e in document["errors"]
              if e["kind"] == "TeardownFault"}
    assert set(faults) == {"process", "process-pool", "loky"}, document["errors"]
    assert all("non-daemon thread" in message for message in faults.values())
    # each pool waited its grace period once, not forever
    assert took < 3 * (TEARDOWN_GRACE_S + 2 * KILL_GRACE_S) + 60


def test_without_isolation_the_cli_ends_despite_the_functions_threads(hostile, cli):
    done = cli("run", "hostile.py:stray_thread", "--items", "3", "-e", "serial,thread",
               "--no-isolate", "-r", "1", "--no-store", timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.search(r"poolscope: the function left \d+ non-daemon threads? running "
                     r"\(Thread-1 \(sleep\)", done.stderr), done.stderr


def _grandchildren() -> set[psutil.Process]:
    """The ``sleep 1000`` processes hostile.py:grandchild starts (not any other sleep here)."""
    found = set()
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.cmdline() == ["sleep", "1000"]:
                found.add(process)
    return found


def test_what_a_worker_started_is_killed_at_teardown(hostile, cli):
    before = {p.pid for p in _grandchildren()}
    done = cli("run", "hostile.py:grandchild", "--items", "2", "-e", "process,process-pool",
               "-r", "1", "--no-store", "--json", "-", timeout=120)
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    messages = [e["message"] for e in document["errors"] if e["kind"] == "TeardownFault"]
    assert messages and all(re.search(r"left (1 process|\d+ processes) it started", m)
                            for m in messages)
    time.sleep(0.5)
    left = [p for p in _grandchildren() if p.pid not in before
            and p.status() != psutil.STATUS_ZOMBIE]
    kill_all(left)
    assert not left


@pytest.mark.parametrize(("sig", "code", "said"), [(signal.SIGTERM, 143, "stopped by SIGTERM"),
                                                    (signal.SIGHUP, 129, "stopped by SIGHUP")])
def test_sigterm_and_sighup_stop_like_ctrl_c(hostile, sig, code, said):
    proc = start(hostile, "run", "hostile.py:nap", "--items", "40", "-e", "process", "-w", "2",
                 "--no-baseline", "-r", "3", "--store", "runs.db")
    try:
        workers = workers_once(proc, 2)
        proc.send_signal(sig)  # the CLI's pid alone, not its group
    finally:
        out, err = finish(proc)
    left = alive(workers)
    kill_all(left)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert f"{said}: kept 0 finished trials" in out
    with sqlite3.connect(hostile / "runs.db") as con:
        (status,) = con.execute("SELECT status FROM runs").fetchone()
    assert status == "interrupted"
    assert not left, "a worker outlived the stopped run"


@pytest.mark.parametrize("executor", ["serial", "process", "process-forkserver", "loky"])
def test_workers_and_the_child_die_with_a_sigkilled_cli(hostile, executor):
    proc = start(hostile, "run", "hostile.py:nap", "--items", "40", "-e", executor,
                 "--no-baseline", "-r", "3", "--no-store")
    try:
        everyone = workers_once(proc, 0 if executor == "serial" else 2)
        proc.kill()  # the CLI's pid alone: nothing of it can clean up
    finally:
        finish(proc)
    left = alive(everyone)
    kill_all(left)
    assert not left, [p.pid for p in left]


@pytest.mark.parametrize("executor", ["serial", "thread", "process", "loky"])
def test_a_functions_own_keyboard_interrupt_is_its_items_failure(hostile, cli, executor):
    done = cli("run", "hostile.py:own_interrupt", "--items", "6", "-e", executor, "-r", "1",
               "--no-store", "--json", "-", timeout=120)
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert not document["interrupted"]
    ran = {row["executor"] for row in document["summary"]}
    assert executor in ran and "serial" in ran
    errors = document["errors"]
    assert errors and all(e["kind"] == "KeyboardInterrupt" and e["item"] == 2 for e in errors)
    assert {e["executor"] for e in errors} == ran


def test_a_keyboard_interrupt_without_isolation_is_the_items_failure_too(hostile, cli):
    done = cli("run", "hostile.py:own_interrupt", "--items", "6", "-e", "serial,thread",
               "--no-isolate", "-r", "1", "--no-store", "--json", "-", timeout=120)
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert {row["executor"] for row in document["summary"]} == {"serial", "thread"}
    assert {(e["executor"], e["item"]) for e in document["errors"]} == {("serial", 2),
                                                                        ("thread", 2)}


def test_a_function_sending_itself_sigint_loses_no_other_item(hostile, cli):
    done = cli("run", "hostile.py:sigint_self", "--items", "6", "-e", "serial,thread,process",
               "-r", "1", "--no-store", "--json", "-", timeout=120)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert {row["executor"] for row in document["summary"]} == {"serial", "thread", "process"}
    assert document["errors"] == []


def test_json_on_stdout_survives_the_functions_prints(hostile, cli):
    done = cli("run", "hostile.py:chatty", "--items", "4", "-e", "process,process-pool,loky",
               "-r", "1", "--no-store", "--json", "-", timeout=120)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    ran = {row["executor"] for row in document["summary"]}
    assert ran >= {"process", "process-pool", "loky"}
    assert "and one it writes to fd 1" in done.stderr
