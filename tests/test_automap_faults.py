"""poolscope.map and Executor under the faults of run's matrix, run as a user's script: a
function from __main__, a million-item iterator, a killed worker, a segfault, a timeout and
Ctrl-C — each ends by itself, leaves no process behind and loses no finished result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import poolscope
from conftest import own_children
from poolscope.automap import ItemFailed, Raised, map_stream

WAIT_S = 120


def run_script(tmp_path: Path, body: str, *, timeout: float = WAIT_S
               ) -> subprocess.CompletedProcess[str]:
    """``body`` as a __main__ script of its own session; what is left of that session after
    it ended fails the test."""
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "POOLSCOPE_STORE": str(tmp_path / "runs.db")}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, env=env, start_new_session=True)
    assert_session_ended(done.args, tmp_path)
    return done


def assert_session_ended(_args: object, tmp_path: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        left = [p for p in psutil.process_iter(["cmdline"])
                if any(str(tmp_path) in part for part in (p.info["cmdline"] or []))]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    for process in left:
        process.kill()
    assert not left, f"left behind: {[p.pid for p in left]}"


def test_a_function_from_main_runs_in_every_candidate(tmp_path):
    done = run_script(tmp_path, """
        import json, poolscope

        def add(a, b=0):
            return a + b

        if __name__ == "__main__":
            items = [(i, i) for i in range(3000)]
            out = {}
            for name in ("serial", "thread", "process-pool"):
                out[name] = poolscope.map(add, items, star=True, executors=[name]) == [
                    2 * i for i in range(3000)]
            print(json.dumps(out))
    """)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"serial": True, "thread": True, "process-pool": True}


def test_a_million_item_iterator_is_mapped_in_bounded_memory(tmp_path):
    # The peak is the map's own: Linux's high-water mark is reset once map's modules are in
    # (clear_refs 5), so no earlier peak of the process (imports, start-up) is counted.
    done = run_script(tmp_path, """
        import json, poolscope

        def halve(x):
            return x >> 1

        def status(field):
            with open("/proc/self/status") as lines:
                return next(int(line.split()[1]) * 1024 for line in lines
                            if line.startswith(field))

        if __name__ == "__main__":
            poolscope.map(halve, range(10), store=False)  # its modules: not the items' memory
            with open("/proc/self/clear_refs", "w") as clear:
                clear.write("5")
            before = status("VmRSS:")
            decision = []
            results = poolscope.map(halve, (i for i in range(1_000_000)), decision=decision)
            growth = status("VmHWM:") - before
            right = results == [i >> 1 for i in range(1_000_000)]
            print(json.dumps({"right": right, "growth_mib": growth / 2**20,
                              "decision": repr(decision)}))
    """)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    # 1M results hold ~36 MiB (their list and ints); a batch's items and results, the rest
    if not (out["right"] and out["growth_mib"] < 200):
        pytest.fail(json.dumps(out, indent=1))  # whole: an assert's message is cut short


def test_ctrl_c_stops_the_workers_and_keeps_the_record(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent("""
        import time, poolscope

        def slow(x):
            time.sleep(0.02)
            return x

        if __name__ == "__main__":
            print("started", flush=True)
            poolscope.map(slow, range(100_000), executors=["process-pool"])
    """))
    env = {**os.environ, "POOLSCOPE_STORE": str(tmp_path / "runs.db")}
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
                               start_new_session=True)
    try:
        assert process.stdout.readline().strip() == "started"
        time.sleep(2.5)
        os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole group
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert "KeyboardInterrupt" in err and process.returncode != 0
    assert_session_ended(None, tmp_path)
    run = poolscope.load("latest", store=tmp_path / "runs.db")
    assert run.interrupted and 0 < len(run.items) < 100_000


@pytest.mark.parametrize("fault, expected", [
    ("os.kill(os.getpid(), signal.SIGKILL)", "SIGKILL"),
    ("ctypes.string_at(0)", "SIGSEGV"),
])
def test_a_worker_that_dies_fails_only_its_item(fault, expected):
    outcomes: list = []
    map_stream(_Fault(fault), range(60), outcomes.extend, executors=["process-pool"],
               max_workers=2, store=False)
    failed = {i: v.exc for i, v in enumerate(outcomes) if type(v) is Raised}
    assert list(failed) == [13]
    assert isinstance(failed[13], ItemFailed) and expected in failed[13].message
    assert [v for i, v in enumerate(outcomes) if i != 13] == [i for i in range(60) if i != 13]
    assert not own_children()


class _Fault:
    """Item 13 runs ``code`` (which ends its process); the others return themselves."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __call__(self, x: int) -> int:
        if x == 13:
            import ctypes

            exec(self.code, {"os": os, "signal": signal, "ctypes": ctypes})
        time.sleep(0.002)
        return x


def test_a_map_timeout_leaves_nothing_running_after_shutdown(tmp_path):
    import concurrent.futures

    pool = poolscope.Executor(executors=["process-pool"], max_workers=2, store=False)
    got = []
    with pytest.raises(concurrent.futures.TimeoutError):
        for value in pool.map(_sleep_then_return, [0.01] * 4 + [3.0] * 4, timeout=1.0):
            got.append(value)
    pool.shutdown(wait=True)
    assert got == [0.01] * len(got) and 1 <= len(got) <= 4
    assert not own_children()


def _sleep_then_return(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
