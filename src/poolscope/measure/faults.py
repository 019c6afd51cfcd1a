"""Why a worker process ended, and which item it took with it.

When a pool breaks, the executor knows little: ``BrokenProcessPool`` names no process, and
``multiprocessing.Pool`` does not notice at all (the backend's watchdog does). The runner then
asks the backend for its worker processes (their exit codes) and the trial's board (board.py) for
what each of them was running, and turns that into one error per dead worker::

    item 5 (worker pid 4242): exit code 7 — the function ended the process itself (os._exit or
    exit() in C code)
"""

from __future__ import annotations

import signal
import time
from collections.abc import Mapping
from typing import Any

from .._format import size
from .board import Board

__all__ = ["dead_worker_errors", "describe_exit", "likely_cause"]

# How long to let a broken pool's other workers be stopped, so that their exit codes (the
# pool's own SIGTERM or SIGKILL) tell them apart from the worker that died first.
SETTLE_S = 0.5
# What a broken pool sends its remaining workers (ProcessPoolExecutor: SIGTERM; loky: SIGKILL).
_CLEANUP = (-signal.SIGTERM, -signal.SIGKILL)


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def likely_cause(exitcode: int) -> str:
    """What usually ends a worker this way."""
    if exitcode == -signal.SIGKILL:
        return ("killed from outside: the kernel's OOM killer sends SIGKILL when memory runs "
                "out (see `dmesg`), as does `kill -9`")
    if exitcode == -signal.SIGSEGV:
        return "a crash in native code (segmentation fault): a C extension, ctypes or cffi"
    if exitcode == -signal.SIGABRT:
        return "native code called abort(), e.g. a failed assertion in a C extension"
    if exitcode in (-signal.SIGBUS, -signal.SIGILL, -signal.SIGFPE):
        return "a crash in native code"
    if exitcode == -signal.SIGTERM:
        return "terminated from outside (SIGTERM)"
    if exitcode < 0:
        return "ended by a signal"
    return "the function ended the process itself (os._exit, or exit() in C code)"


def dead_worker_errors(processes: Mapping[int, Any], board: Board | None,
                       spared: set[int] = frozenset(),  # type: ignore[assignment]
                       peak_rss: Mapping[int, int] | None = None,
                       cleanup: int | None = None) -> list[dict[str, Any]]:
    """One error per worker that died on its own, naming the item it was running (one per
    item when several of its threads were running one: ``"shared"`` is then true).

    ``processes`` maps pid to a multiprocessing process (anything with ``exitcode``); pids in
    ``spared`` were stopped on purpose (a timeout) and are reported elsewhere. A pool that
    breaks stops its other workers with SIGTERM or SIGKILL, so workers ended that way count
    only when none died otherwise and none was stopped on purpose (the OOM killer, or
    ``kill``, can end several). ``peak_rss``: each worker's peak RSS when last read, told for
    workers killed by SIGKILL (the OOM killer's signal). ``cleanup``: the signal this pool
    stops its other workers with, when known; a busy worker ended by the other one is then the
    culprit. When several busy workers ended alike (a function that sent itself SIGTERM, under a
    pool that stops the rest with SIGTERM), which one went first cannot be told: each of their
    items is ``"shared"`` too, to run again alone.
    """
    deadline = time.monotonic() + SETTLE_S
    while True:
        ended = {pid: p.exitcode for pid, p in processes.items()
                 if p.exitcode is not None and pid not in spared}
        culprits = {pid: code for pid, code in ended.items() if code not in _CLEANUP}
        if culprits or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    running: dict[int, list[int]] = {}  # pid -> the items its threads were running
    for lane in board.busy() if board is not None else []:
        running.setdefault(lane.pid, []).append(lane.item)
    alike = False  # several busy workers ended alike: which one went first is unknown
    if not culprits and not spared:
        culprits, alike = _ended_by_signal(ended, running, cleanup)
    errors = []
    for pid, code in sorted(culprits.items()):
        items = sorted(running.get(pid, [])) or [None]
        memory = ""
        if code == -signal.SIGKILL and peak_rss and pid in peak_rss:
            import psutil  # (here: children of other interpreters import this module without it)

            memory = (f"; its peak RSS was at least {size(peak_rss[pid])} when last read "
                      f"(this machine has {size(psutil.virtual_memory().total)})")
        for item in items:
            where = f"item {item} (worker pid {pid})" if item is not None else f"worker pid {pid}"
            errors.append({
                "item": item, "kind": "WorkerDiedError",
                "message": f"{where}: {describe_exit(code)} — {likely_cause(code)}{memory}",
                # several threads of one process were running items: which one ended it?
                "shared": len(items) > 1 or alike})
    return errors


def _ended_by_signal(ended: dict[int, int], running: Mapping[int, list[int]],
                     cleanup: int | None) -> tuple[dict[int, int], bool]:
    """When every ended worker went by SIGTERM or SIGKILL — the pool's own clean-up, the OOM
    killer, ``kill``, or the function signalling itself: the culprits, and whether they are
    only suspects (several busy workers ended alike)."""
    busy = {pid: code for pid, code in ended.items() if pid in running}
    if cleanup is not None:  # the pool's own signal went to the rest: the other one is first
        own = {pid: code for pid, code in busy.items() if code != -cleanup}
        if len(own) == 1:
            return own, False
    if len(busy) == 1:
        return busy, False
    if busy:
        return busy, True
    # Nobody was running an item: killed from outside, say so for each
    killed = {pid: code for pid, code in ended.items() if code == -signal.SIGKILL}
    return killed or ended, False
