"""What every worker is running right now, readable by the parent while a trial runs.

Records reach the parent only when a chunk ends, so a worker that hangs or dies in the middle
of a chunk would take the name of its item with it. Each worker thread therefore keeps one
integer where the parent can read it: the item it is running (-1 between chunks).

* In a worker process, it is a slot in that process's file, memory-mapped, in the run's board
  directory (on tmpfs where there is one)::

      <board>/<pid>           SLOTS x (int64 native thread id, int64 the item it is running)
      <board>/stop            int64: set by the parent at --trial-timeout: run no further chunk

  The process maps its file once; a new thread takes a free slot under a lock, which costs no
  system call (a file per thread did: it released the GIL in the middle of the thread's start,
  and the thread then waited for the GIL to come back, 300-800 µs measured). The file of a dead
  worker still says what its threads were running.
* In the process that made the board (serial, thread and asyncio trials run there with
  --no-isolate), it is an array in memory: not even the process's one file is needed.

The probe writes one integer per item (about 50 ns); the parent reads the board only when it
needs to know — polling for ``--timeout`` (it times an item from when it first sees it), or once
after a worker died. Workers on another host (dask) find no directory and write to a scratch
buffer instead.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import shutil
import sys
import tempfile
import threading
from array import array
from typing import NamedTuple

__all__ = ["Board", "Running", "attach", "prepare"]

_SIZE = 8  # one int64
IDLE = -1
SLOTS = 1024  # threads at once per worker process; past that, a thread writes to a scratch mark
_SLOT = 2  # int64s per slot: native thread id, item

# Boards made by this process: path -> (its pid, its threads' marks by native id, stop flag).
# A forked child inherits the dict with another pid, and uses files.
_OWN: dict[str, tuple[int, dict[int, memoryview], memoryview]] = {}


class Running(NamedTuple):
    """One worker thread's current item, as the board says."""

    pid: int
    tid: int
    item: int  # IDLE between chunks


class Board:
    """A run's board: the parent makes it, workers write, ``close`` removes it.

    One board serves a run's trials (a thread that stays, such as the main thread of serial
    trials, sets up its mark once); ``begin_trial`` clears what an earlier trial left.
    """

    def __init__(self) -> None:
        root = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.path = tempfile.mkdtemp(prefix="poolscope-board-", dir=root)
        with open(os.path.join(self.path, "stop"), "wb") as f:
            f.write(bytes(_SIZE))
        self._marks: dict[int, memoryview] = {}
        self._stop = memoryview(array("q", [0]))
        _OWN[self.path] = (os.getpid(), self._marks, self._stop)

    @classmethod
    def at(cls, path: str) -> Board:
        """The board another process made at ``path``, to read what its workers run."""
        board = cls.__new__(cls)
        board.path, board._marks, board._stop = path, {}, memoryview(array("q", [0]))
        return board

    def stop(self, value: int = 1) -> None:
        """Tell every worker to start no further chunk (``value`` 0: to go on again)."""
        self._stop[0] = value
        with contextlib.suppress(OSError), open(os.path.join(self.path, "stop"), "r+b") as f:
            f.write(array("q", [value]).tobytes())

    def begin_trial(self) -> None:
        """Clear the stop flag, and what ended workers left: what a dead worker was running
        belongs to its own trial."""
        self.stop(0)
        alive = {t.native_id for t in threading.enumerate()}
        for tid in [tid for tid in self._marks if tid not in alive]:
            del self._marks[tid]
        self.forget()

    def running(self) -> list[Running]:
        """Every worker thread that has written here, busy or idle."""
        pid = os.getpid()
        own = [Running(pid, tid, mark[0]) for tid, mark in list(self._marks.items())]
        return own + self._files()

    def busy(self) -> list[Running]:
        return [r for r in self.running() if r.item != IDLE]

    def forget(self) -> None:
        """Drop the files of worker processes that ended: after a broken pool, its workers'
        last items would otherwise look like items still running."""
        for pid in {running.pid for running in self._files()}:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                for name in self._names_of(pid):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(self.path, name))
            except OSError:
                pass

    def _names_of(self, pid: int) -> list[str]:
        with contextlib.suppress(OSError):
            return [name for name in os.listdir(self.path) if _pid_of(name) == pid]
        return []

    def close(self) -> None:
        _OWN.pop(self.path, None)
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _files(self) -> list[Running]:
        """Every used slot of every worker process's file."""
        found = []
        with contextlib.suppress(OSError), os.scandir(self.path) as entries:
            for entry in entries:
                pid = _pid_of(entry.name)
                if pid is None:
                    continue
                try:
                    with open(entry.path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                slots = array("q", data[:len(data) - len(data) % (_SIZE * _SLOT)])
                found.extend(Running(pid, slots[k], slots[k + 1])
                             for k in range(0, len(slots), _SLOT) if slots[k])
        return found


# --- worker side -------------------------------------------------------------------------------

_local = threading.local()
# (board, pid) -> this process's slots and stop flag on that board, and the lock that hands
# out slots; one per process (a forked child inherits the dict with another pid).
_processes: dict[tuple[str, int], _ProcessFile] = {}
_processes_lock = threading.Lock()


class _ProcessFile:
    def __init__(self, slots: memoryview, stop: memoryview) -> None:
        self.slots, self.stop = slots, stop
        self.lock = threading.Lock()
        self.used = 0

    def take(self, tid: int) -> memoryview | None:
        """A slot for thread ``tid``: the next unused one, else one of a thread that ended."""
        with self.lock:
            if self.used == SLOTS:
                alive = {t.native_id for t in threading.enumerate()}
                free = next((k for k in range(SLOTS)
                             if self.slots[_SLOT * k] not in alive), None)
                if free is None:
                    return None
            else:
                free, self.used = self.used, self.used + 1
            at = _SLOT * free
            self.slots[at + 1] = IDLE  # idle before the id: a reader never sees a stale item
            self.slots[at] = tid
            return self.slots[at + 1:at + 2]


def attach(path: str) -> tuple[memoryview, memoryview]:
    """This thread's mark on the board at ``path`` and the board's stop flag (scratch buffers
    when there is no board here).

    Cached per thread, and per process: a forked child inherits the forking thread's cache.
    """
    cached = getattr(_local, "views", None)
    pid = os.getpid()
    if cached is not None and cached[0] == path and cached[1] == pid:
        return cached[2], cached[3]
    if cached is not None and cached[1] == pid:
        cached[2][0] = IDLE  # this thread moves on to another board
    own = _OWN.get(path)
    if own is not None and own[0] == pid:  # the board's own process: in memory
        mark, stop = memoryview(array("q", [IDLE])), own[2]
        own[1][threading.get_native_id()] = mark
    else:
        mark, stop = _attach_slot(path, pid)
    _local.views = (path, pid, mark, stop)
    return mark, stop


def prepare(path: str) -> None:
    """Map this process's file on the board now (before a trial's clock starts), rather than
    when its first thread attaches."""
    if path and (_OWN.get(path) or (None,))[0] != os.getpid():
        _process_file(path, os.getpid())


def _attach_slot(path: str, pid: int) -> tuple[memoryview, memoryview]:
    found = _process_file(path, pid) if path else None
    mark = found.take(threading.get_native_id()) if found is not None else None
    if found is None or mark is None:
        return memoryview(array("q", [IDLE])), memoryview(array("q", [0]))
    return mark, found.stop


def _process_file(path: str, pid: int) -> _ProcessFile | None:
    with _processes_lock:
        found = _processes.get((path, pid))
        if found is None:
            slots = _map(os.path.join(path, _file_name(pid)), _SLOT * SLOTS)
            stop = _map(os.path.join(path, "stop"), 0)
            if slots is None or stop is None:
                return None
            found = _processes[path, pid] = _ProcessFile(slots, stop)
        return found


def _file_name(pid: int) -> str:
    """This interpreter's file for process ``pid``: "PID-TOKEN". Subinterpreters of one process
    each import this module anew, with their own slot counter and lock, so one file per
    interpreter: in a shared file two of them handed out the same slot, and a dead process's
    board named the item of the thread that wrote last, not the one that ended it."""
    return f"{pid}-{id(sys.modules):x}"  # sys.modules: one per interpreter, while it lives


def _pid_of(name: str) -> int | None:
    """The process a board file belongs to (None: not a worker's file)."""
    pid, _, token = name.partition("-")
    return int(pid) if pid.isdigit() and token else None


def _map(path: str, create: int) -> memoryview | None:
    """``path`` memory-mapped as int64s; ``create``: make it with that many, all zero (an
    unused slot: thread id 0)."""
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    except OSError:  # no such board here (a worker on another host) or not writable
        return None
    try:
        if create:
            os.ftruncate(fd, _SIZE * create)
        return memoryview(mmap.mmap(fd, 0)).cast("q")
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
