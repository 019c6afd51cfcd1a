"""How long poolscope's processes live: never longer than the run that started them.

- **They die with their parent.** The isolating child asks the kernel for SIGKILL when its
  parent ends (Linux's ``PR_SET_PDEATHSIG``); a pool worker watches the process that made its
  pool (``watch_parent``). So even a SIGKILL'd CLI leaves nothing running.
- **A worker leads its own process group**, so whatever it starts (a forked grandchild, an inner
  pool) can be found and stopped with it, even after it was re-parented.
- **Closing a pool has a deadline.** Its workers get ``TEARDOWN_GRACE_S`` to end after the
  pool's shutdown — a non-daemon thread the function left running keeps a process alive at its
  exit, forever — then SIGTERM, ``KILL_GRACE_S``, and SIGKILL. Each worker's group is then
  killed. What had to be stopped becomes a teardown fault of the trial (``end_pool``),
  not a hang.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .._format import count

__all__ = ["KILL_GRACE_S", "TEARDOWN_GRACE_S", "die_with_parent", "end_pool", "kill_groups",
           "lead_own_group", "pid_alive", "stop_workers", "watch_parent"]

TEARDOWN_GRACE_S = 3.0  # after a pool's shutdown, before its workers are stopped
KILL_GRACE_S = 1.0  # between SIGTERM and SIGKILL
WATCH_POLL_S = 0.5  # how often a worker looks for its parent without a pidfd
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> None:
    """The isolating child: have the kernel SIGKILL this process when its parent ends (Linux's
    ``PR_SET_PDEATHSIG``; elsewhere nothing). If ``parent_pid`` is already gone, end now.

    The kernel's signal comes when the *thread* that started this process ends; the child is
    started by the runner's own thread, which outlives it.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid and not pid_alive(parent_pid):
        os._exit(1)  # the parent went before we asked: nobody waits for this process


def watch_parent(parent_pid: int) -> None:
    """A pool worker: SIGKILL this process once the process that made its pool ends.

    Not the kernel's parent-death signal: that follows the parent's *thread* (multiprocessing
    .Pool starts a replacement worker from a helper thread, whose end would kill the worker
    while it holds the pool's queue lock), and under the fork server the parent is the server,
    which lives as long as any worker does. A daemon thread waits on the parent's pidfd (Linux
    5.3+), costing nothing while it waits; without pidfds it looks every WATCH_POLL_S.
    """
    import select

    try:
        fd: int | None = os.pidfd_open(parent_pid)
    except ProcessLookupError:
        os._exit(1)  # the parent went before we asked: nobody waits for this process
    except (AttributeError, OSError):
        fd = None

    def wait() -> None:
        if fd is not None:
            select.select([fd], [], [])
        else:
            while pid_alive(parent_pid):
                time.sleep(WATCH_POLL_S)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=wait, name="poolscope-parent-watch", daemon=True).start()


def lead_own_group() -> None:
    """Make this process the leader of a new process group (what it starts joins it)."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_ended(processes: Mapping[int, Any], deadline: float) -> list[int]:
    """Wait until the processes end or the deadline (time.monotonic()) passes; the pids of
    those still running. Waits on their sentinels (reaping them is the pool's job); one
    without a sentinel is looked for every 50 ms."""
    from multiprocessing.connection import wait

    by_sentinel, polled = {}, []
    for pid, process in processes.items():
        try:
            if process.exitcode is None:
                by_sentinel[process.sentinel] = pid
        except (ValueError, AttributeError):  # closed, or not a multiprocessing process
            polled.append(pid)
    while True:
        polled = [pid for pid in polled if pid_alive(pid)]
        left = deadline - time.monotonic()
        if not (by_sentinel or polled) or left <= 0:
            break
        for sentinel in wait(list(by_sentinel), timeout=min(left, 0.05) if polled else left):
            by_sentinel.pop(sentinel)  # type: ignore[call-overload]
    return sorted([*by_sentinel.values(), *polled])


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_workers(processes: Mapping[int, Any], grace_s: float = TEARDOWN_GRACE_S) -> list[int]:
    """Give a pool's workers ``grace_s`` to end after its shutdown; SIGTERM those left, then
    SIGKILL after KILL_GRACE_S. Returns the pids that had to be stopped."""
    try:
        left = _wait_ended(processes, time.monotonic() + grace_s)
    except BaseException:  # Ctrl-C while waiting: nothing may be left running
        _signal_all(list(processes), signal.SIGKILL)
        raise
    if left:
        _signal_all(left, signal.SIGTERM)
        still = _wait_ended({pid: processes[pid] for pid in left},
                            time.monotonic() + KILL_GRACE_S)
        _signal_all(still, signal.SIGKILL)
        _wait_ended({pid: processes[pid] for pid in still}, time.monotonic() + KILL_GRACE_S)
    return left


def kill_groups(pids: list[int]) -> dict[int, list[int]]:
    """SIGKILL what is left of each worker's process group once the worker itself is gone:
    the processes it started. Returns them by worker pid (only groups that had any)."""
    left: dict[int, list[int]] = {}
    for pid in pids:
        try:
            os.killpg(pid, 0)  # one call when the group is empty: the usual case
        except (ProcessLookupError, PermissionError):
            continue
        left[pid] = _group_members(pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    return {pid: members for pid, members in left.items() if members}


def _group_members(pgid: int) -> list[int]:
    """The live processes of a process group, from /proc (no psutil: the isolating child of
    another interpreter may not have it)."""
    members = []
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != b"Z":  # fields: state, ppid, pgrp
                members.append(int(entry))
    return members


def teardown_fault(stopped: list[int], orphans: dict[int, list[int]]) -> str | None:
    """The teardown fault's message, or None when every worker ended alone."""
    parts = []
    if stopped:
        who = (f"worker pid {stopped[0]} was" if len(stopped) == 1 else
               f"worker pids {', '.join(map(str, stopped))} were")
        parts.append(f"{who} still running {TEARDOWN_GRACE_S:g} s after the pool's shutdown "
                     "and stopped (a non-daemon thread the function left running, or an exit "
                     "handler, keeps a process alive at its end)")
    for pid, members in orphans.items():
        names = ", ".join(map(str, members))
        parts.append(f"worker pid {pid} left {count(len(members), 'process', 'processes')} it "
                     "started running "
                     f"(pid {names}): killed")
    return "teardown: " + "; ".join(parts) if parts else None


def end_pool(processes: Mapping[int, Any], shutdown: Callable[[], None],
             incidents: list[dict[str, Any]], grace_s: float = TEARDOWN_GRACE_S) -> None:
    """Close a pool with a deadline: its own ``shutdown`` (which waits for its workers) runs
    in a daemon thread while this one gives the workers ``grace_s`` to end and stops those
    left (``stop_workers``); then what they started is killed (``kill_groups``). Anything
    stopped, and a shutdown still stuck once its workers are gone, is a teardown fault in
    ``incidents``; an error of ``shutdown`` is raised here."""
    processes = dict(processes)
    failure: list[BaseException] = []

    def close() -> None:
        try:
            shutdown()
        except BaseException as exc:  # raised in the caller's thread below
            failure.append(exc)

    closer = threading.Thread(target=close, name="poolscope-pool-close", daemon=True)
    closer.start()
    stopped = stop_workers(processes, grace_s)
    closer.join(grace_s if not stopped else KILL_GRACE_S)
    message = teardown_fault(stopped, kill_groups(list(processes)))
    if closer.is_alive():  # e.g. multiprocessing.Pool waiting on a lock a dead worker held
        message = (message + "; " if message else "teardown: ") + (
            "the pool's shutdown did not finish once its workers were gone; left behind")
    if message:
        incidents.append({"kind": "TeardownFault", "message": message})
    if failure:
        raise failure[0]
