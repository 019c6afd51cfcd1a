"""Shared fixtures. Every wait has a timeout (pytest-timeout, faulthandler_timeout in pyproject)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 180,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m poolscope`` for real, as a user would, with a timeout."""
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "poolscope", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env,
                          input=input_text)


@pytest.fixture
def cli(tmp_path: Path):
    def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=tmp_path, timeout=timeout)

    return _run


# --- nothing left behind -----------------------------------------------------------------------
# After every test, no child process and no thread that the test started may still be there.
# Processes that outlive tests by design are exempt: multiprocessing's forkserver and resource
# tracker (one per test process), and whatever a module- or session-scoped fixture started
# (they are running before this function-scoped fixture takes its snapshot).
LINGER_S = 10.0  # a pool's workers and threads may take a moment to finish exiting
_EXEMPT = ("multiprocessing.forkserver", "resource_tracker", "semaphore_tracker")
# distributed's process-wide thread pools, started on first use and kept by design
_EXEMPT_THREADS = ("Dask-Offload", "Dask-Callback-Thread")


def _children() -> dict[int, psutil.Process]:
    found = {}
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                continue
            line = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if not any(name in line for name in _EXEMPT):
            found[child.pid] = child
    return found


def own_children() -> set[psutil.Process]:
    """This test process's live children, less multiprocessing's per-process helpers (a
    spawn or forkserver start leaves its resource tracker for the session)."""
    return set(_children().values())


def _threads() -> dict[int, threading.Thread]:
    return {t.ident: t for t in threading.enumerate()
            if t.ident is not None and not t.name.startswith(_EXEMPT_THREADS)}


@pytest.fixture(autouse=True)
def nothing_left_behind():
    processes_before, threads_before = set(_children()), set(_threads())
    yield
    deadline = time.monotonic() + LINGER_S
    while True:
        processes = {pid: p for pid, p in _children().items() if pid not in processes_before
                     and not _descends_from(p, processes_before)}
        threads = {i: t for i, t in _threads().items() if i not in threads_before}
        if not (processes or threads) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for process in processes.values():  # do not let them spoil the next test
        with contextlib.suppress(psutil.Error):
            process.kill()
    described = [f"process {p.pid} ({_cmdline(p)})" for p in processes.values()]
    described += [f"thread {t.name!r}" for t in threads.values()]
    assert not described, "left behind: " + "; ".join(described)


def _descends_from(process: psutil.Process, pids: set[int]) -> bool:
    """Started by a process that was there before the test (a fixture's browser opening a
    renderer for a page): that fixture's business."""
    try:
        return any(parent.pid in pids for parent in process.parents())
    except psutil.Error:
        return False


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())[:120]
    except psutil.Error:
        return "?"
