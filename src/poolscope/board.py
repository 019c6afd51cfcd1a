"""What every worker is running right now, readable by the parent while a trial runs.

Records reach the parent only when a chunk ends, so a worker that hangs or dies in the middle
of a chunk would take the name of its item with it. Each worker thread therefore keeps one
integer where the parent can read it: the item it is running (-1 between chunks).

* In a worker process, it is an 8-byte file, memory-mapped, in the run's board directory (on
  tmpfs where there is one)::

      <board>/<pid>.<tid>     int64: the item it is running
      <board>/stop            int64: set by the parent at --trial-timeout: run no further chunk

  The file of a dead worker still says what it was running.
* In the process that made the board (serial, thread and asyncio trials), it is an array in
  memory: creating a file there would release the GIL in the middle of a trial's start, and a
  new thread would then wait for the GIL to come back (300-800 µs measured).

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
import tempfile
import threading
from array import array
from typing import NamedTuple

__all__ = ["Board", "Running", "attach"]

_SIZE = 8  # one int64
IDLE = -1

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
        for running in self._files():
            try:
                os.kill(running.pid, 0)
            except ProcessLookupError:
                self._drop(running)
            except OSError:
                pass

    def running(self) -> list[Running]:
        """Every worker thread that has written here, busy or idle."""
        pid = os.getpid()
        own = [Running(pid, tid, mark[0]) for tid, mark in list(self._marks.items())]
        return own + self._files()

    def busy(self) -> list[Running]:
        return [r for r in self.running() if r.item != IDLE]

    def forget(self) -> None:
        """Drop the files of worker processes: after a broken pool, its workers' last items
        would otherwise look like items still running."""
        for running in self._files():
            self._drop(running)

    def close(self) -> None:
        _OWN.pop(self.path, None)
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _files(self) -> list[Running]:
        found = []
        with contextlib.suppress(OSError), os.scandir(self.path) as entries:
            for entry in entries:
                pid, _, tid = entry.name.partition(".")
                try:
                    with open(entry.path, "rb") as f:
                        data = f.read(_SIZE)
                except OSError:
                    continue
                if len(data) == _SIZE and pid.isdigit() and tid.isdigit():
                    found.append(Running(int(pid), int(tid), array("q", data)[0]))
        return found

    def _drop(self, running: Running) -> None:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self.path, f"{running.pid}.{running.tid}"))


# --- worker side -------------------------------------------------------------------------------

_local = threading.local()
_stops: dict[tuple[str, int], memoryview] = {}  # (board, pid) -> its stop flag, one per process


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
        _release(cached[2])
    own = _OWN.get(path)
    if own is not None and own[0] == pid:  # the board's own process: in memory
        mark, stop = memoryview(array("q", [IDLE])), own[2]
        own[1][threading.get_native_id()] = mark
    else:
        mark, stop = _attach_file(path, pid)
    _local.views = (path, pid, mark, stop)
    return mark, stop


def _attach_file(path: str, pid: int) -> tuple[memoryview, memoryview]:
    mark = _map(os.path.join(path, f"{pid}.{threading.get_native_id()}"), True) if path else None
    stop = _stops.get((path, pid))
    if mark is not None and stop is None:
        stop = _map(os.path.join(path, "stop"), False)
        if stop is not None:
            _stops[path, pid] = stop
    if mark is None or stop is None:
        return memoryview(array("q", [IDLE])), memoryview(array("q", [0]))
    mark[0] = IDLE
    return mark, stop


def _map(path: str, create: bool) -> memoryview | None:
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    except OSError:  # no such board here (a worker on another host) or not writable
        return None
    try:
        if create:
            # IDLE in one write, not ftruncate then IDLE: a file read between the two said
            # item 0, and a worker killed while starting a thread was taken to be running it.
            os.pwrite(fd, array("q", [IDLE]).tobytes(), 0)
        return memoryview(mmap.mmap(fd, _SIZE)).cast("q")
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def _release(view: memoryview) -> None:
    """Unmap a worker's mark when its thread moves on to another board."""
    obj = view.obj
    view.release()
    if isinstance(obj, mmap.mmap):
        with contextlib.suppress(BufferError):
            obj.close()
