"""``--timeout``, ``--trial-timeout`` and ``--max-memory``: stop what runs away, record it, go on.

While a trial runs, a thread of the parent reads the trial's board (board.py) every few
milliseconds and times each worker's item from the moment it first sees it. An item past the
timeout, or in a worker process whose memory passed ``--max-memory``, is stopped where it runs:

* in a worker process: SIGTERM to that process, SIGKILL after ``GRACE_S`` if it is still there.
  The pool breaks; the runner records the item as timed out, starts a new pool and runs the
  items that had not reported on it (trial.py).
* in a thread of this process (serial, thread, thread-pool, asyncio's ``to_thread``): a thread
  cannot be killed, so ``ItemTimeout`` is raised inside it — in the main thread through a
  signal, which also cuts a ``time.sleep`` short; in another thread with
  ``PyThreadState_SetAsyncExc``, which takes effect at the thread's next Python instruction (an
  item blocked in C code keeps running until it returns). The probe records the item as failed
  with kind ``Timeout`` and the chunk goes on.

At ``--trial-timeout`` every busy worker is stopped the same way, and workers run no further
chunk (the board's stop flag); the trial is recorded as failed with what finished.

For executors with worker processes the watch also reads each worker's peak RSS (``VmHWM``)
every ``MEMORY_POLL_S``, limit or not: a worker that the OOM killer ends leaves no word, and its
last peak is what faults.py can then report.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
import time
from array import array
from typing import Any

import psutil

from .._format import size
from .board import IDLE, Board, Running
from .probe import STATUS_ERROR, ChunkRecord, ItemTimeout, peak_rss

__all__ = ["GRACE_S", "LimitWatch", "memory_overruns"]

GRACE_S = 1.0  # between SIGTERM and SIGKILL for a worker process that does not stop
MEMORY_POLL_S = 0.1
_WAKE_SIGNAL = signal.SIGUSR2  # interrupts the main thread's item (SIGALRM is _interrupt.py's)


class LimitWatch:
    """Watches one trial; a no-op when no limit is set and there are no worker processes."""

    def __init__(self, board: Board, item_timeout_s: float | None = None,
                 trial_timeout_s: float | None = None, max_memory: int | None = None,
                 worker_processes: bool = False) -> None:
        self.board = board
        self.item_timeout_s = item_timeout_s
        self.trial_timeout_s = trial_timeout_s
        self.max_memory = max_memory
        self.watch_memory = worker_processes
        self.peak_rss: dict[int, int] = {}  # worker pid -> its peak RSS when last read
        self.errors: list[dict[str, Any]] = []  # items stopped in worker processes
        # ... and their records, from when the item was first seen to when it was stopped, so
        # the stuck item stays in the trial's items and its timeline (as failed, CPU unknown)
        self.records: list[ChunkRecord] = []
        self.stopped: set[int] = set()  # worker pids stopped on purpose (since a new pool)
        self.ever_stopped: set[int] = set()  # ... in the whole trial
        self.timed_out: set[int] = set()  # their items, not to be run again
        self.trial_expired = False
        self._seen: dict[tuple[int, int], tuple[int, int]] = {}  # lane -> (item, first seen)
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._main_pending: type[ItemTimeout] | None = None
        self._old_handler: Any = None

    @property
    def active(self) -> bool:
        return (self.item_timeout_s is not None or self.trial_timeout_s is not None
                or self.watch_memory)

    def start(self) -> None:
        if not self.active:
            return
        timeouts = self.item_timeout_s is not None or self.trial_timeout_s is not None
        if timeouts and threading.current_thread() is threading.main_thread():
            self._old_handler = signal.signal(_WAKE_SIGNAL, self._on_wake)
        self._began = time.perf_counter_ns()
        self._thread = threading.Thread(target=self._watch, name="poolscope-limits",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._old_handler is not None:
            signal.signal(_WAKE_SIGNAL, self._old_handler)
            self._old_handler = None

    def take_errors(self) -> list[dict[str, Any]]:
        errors, self.errors = self.errors, []
        return errors

    def take_records(self) -> list[ChunkRecord]:
        records, self.records = self.records, []
        return records

    # --- the watching thread -------------------------------------------------------------------
    def _poll_s(self) -> float:
        timeouts = [t for t in (self.item_timeout_s, self.trial_timeout_s) if t is not None]
        return min([MEMORY_POLL_S] + [max(0.005, t / 20) for t in timeouts])

    def _watch(self) -> None:
        poll = self._poll_s()
        next_memory_read = 0.0
        while not self._done.wait(poll):
            now = time.perf_counter_ns()
            lanes = self.board.running()
            if self.watch_memory and time.monotonic() >= next_memory_read:
                next_memory_read = time.monotonic() + MEMORY_POLL_S
                self._read_memory(lanes)
            busy = [r for r in lanes if r.item != IDLE]
            if (self.trial_timeout_s is not None and not self.trial_expired
                    and now - self._began > self.trial_timeout_s * 1e9):
                self.trial_expired = True
                self.board.stop()
                for running in busy:
                    self._stop(running, f"still running when the trial passed --trial-timeout "
                                        f"{self.trial_timeout_s:g} s")
                continue
            if self.item_timeout_s is None:
                continue
            for running in busy:
                lane = (running.pid, running.tid)
                item, since = self._seen.get(lane, (None, now))
                if item != running.item:
                    self._seen[lane] = (running.item, now)
                elif (now - since > self.item_timeout_s * 1e9
                      and running.item not in self.timed_out):
                    self._stop(running, f"it ran longer than --timeout {self.item_timeout_s:g} s")

    def _read_memory(self, lanes: list[Running]) -> None:
        """Each worker process's peak RSS; stop one that passed --max-memory."""
        own = os.getpid()
        # One lane per process, a busy one where there is one: an isolated thread trial's
        # threads all live in its child, and an idle thread must not hide a busy one.
        by_pid = {r.pid: r for r in lanes if r.pid != own}
        by_pid.update({r.pid: r for r in lanes if r.pid != own and r.item != IDLE})
        for pid, running in by_pid.items():
            peak = peak_rss(pid)
            if peak is None:
                continue
            self.peak_rss[pid] = max(peak, self.peak_rss.get(pid, 0))
            if (self.max_memory is not None and peak > self.max_memory
                    and pid not in self.stopped and running.item != IDLE):
                self._stop(running, f"its worker's peak RSS reached {size(peak)}, over "
                                    f"--max-memory {size(self.max_memory)}", "MemoryLimit")

    def _stop(self, running: Running, why: str, kind: str = "Timeout") -> None:
        self.timed_out.add(running.item)
        if running.pid == os.getpid():
            # The probe records the item with the raised class's message (same process).
            stop = type("ItemTimeout", (ItemTimeout,),
                        {"message": f"stopped (ItemTimeout raised in its thread): {why}"})
            self._interrupt_thread(running.tid, stop)
            return
        if running.pid in self.stopped:
            return
        self.stopped.add(running.pid)
        self.ever_stopped.add(running.pid)
        since = self._seen.get((running.pid, running.tid), (None, self._began))[1]
        how = _terminate(running.pid)
        self.records.append(_stopped_record(running, since, time.perf_counter_ns()))
        self.errors.append({
            "item": running.item, "kind": kind,
            "message": (f"item {running.item} (worker pid {running.pid}) was stopped ({how}): "
                        f"{why}" + ("" if self.trial_expired else
                                    "; the items of its chunk that had not reported ran again "
                                    "on a new pool"))})

    def _interrupt_thread(self, native_id: int, stop: type[ItemTimeout]) -> None:
        for thread in threading.enumerate():
            if thread.native_id != native_id or thread.ident is None:
                continue
            if thread is threading.main_thread() and self._old_handler is not None:
                self._main_pending = stop
                signal.pthread_kill(thread.ident, _WAKE_SIGNAL)
            else:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                           ctypes.py_object(stop))

    def _on_wake(self, signum: int, frame: Any) -> None:
        stop, self._main_pending = self._main_pending, None
        if stop is not None:
            raise stop


def _stopped_record(running: Running, start_ns: int, end_ns: int) -> ChunkRecord:
    return ChunkRecord(
        first=running.item, start_ns=array("q", [start_ns]), end_ns=array("q", [end_ns]),
        cpu_marks_ns=array("q", [0, 0]), core=array("i", [-1]),
        status=array("b", [STATUS_ERROR]), errors=[], pid=running.pid, tid=running.tid,
        process_cpu_s=0.0, process_maxrss=0, results=[None])


def _terminate(pid: int) -> str:
    """SIGTERM, then SIGKILL after GRACE_S: what it took, e.g. "SIGTERM, then SIGKILL"."""
    try:
        process = psutil.Process(pid)
        process.terminate()
    except psutil.Error:
        return "it had already ended"
    with contextlib.suppress(psutil.Error):
        if _ended(process, GRACE_S):
            return "SIGTERM"
        process.kill()
        return f"SIGTERM, then SIGKILL after {GRACE_S:g} s"
    return "SIGTERM"


def _ended(process: psutil.Process, within_s: float) -> bool:
    """Whether it exited (a zombie waiting for its parent counts) within the time. Not
    ``psutil.wait``: that would reap our child and take its exit code from its pool."""
    deadline = time.monotonic() + within_s
    while process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True



def memory_overruns(peaks: dict[int, int], max_memory: int | None,
                    stopped: set[int]) -> list[dict[str, Any]]:
    """Worker processes whose peak RSS passed --max-memory but were not stopped: the watch
    reads memory every MEMORY_POLL_S, and a trial can end before its first read. The errors
    say so (no item is named: the peak is the process's)."""
    if max_memory is None:
        return []
    return [{"item": None, "kind": "MemoryLimit",
             "message": f"worker pid {pid}'s peak RSS reached {size(peak)}, over --max-memory "
                        f"{size(max_memory)}; the trial ended before the limit's watch (every "
                        f"{MEMORY_POLL_S:g} s) could stop it"}
            for pid, peak in sorted(peaks.items()) if peak > max_memory and pid not in stopped]
