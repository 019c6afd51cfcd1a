"""What every worker is running right now, readable by the parent while a trial runs.

Records reach the parent only when a chunk ends, so a worker that hangs or dies in the middle
of a chunk would take the name of its item with it. Each worker thread therefore keeps a 16-byte
file, memory-mapped, in the trial's board directory (on tmpfs where there is one)::

    <board>/<pid>.<tid>     int64: the item it is running (-1 between chunks)
    <board>/stop            int64: set by the parent at --trial-timeout: run no further chunk

The probe writes one integer per item (about 50 ns); the parent reads the directory only when it
needs to know — polling for ``--timeout`` (it times an item from when it first sees it), or once
after a worker died — and the file of a dead worker still says what it was running. Workers on
another host (dask) find no directory and write to a scratch buffer instead.
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


class Running(NamedTuple):
    """One worker thread's current item, as its board file says."""

    pid: int
    tid: int
    item: int  # IDLE between chunks


class Board:
    """A trial's board directory: the parent creates it, workers write, ``close`` removes it."""

    def __init__(self) -> None:
        root = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        self.path = tempfile.mkdtemp(prefix="poolscope-board-", dir=root)
        with open(os.path.join(self.path, "stop"), "wb") as f:
            f.write(bytes(_SIZE))

    def stop(self) -> None:
        """Tell every worker to start no further chunk."""
        with contextlib.suppress(OSError), open(os.path.join(self.path, "stop"), "r+b") as f:
            f.write(array("q", [1]).tobytes())

    def running(self) -> list[Running]:
        """Every worker thread that has written here, busy or idle."""
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

    def forget(self) -> None:
        """Drop every worker's file: after a broken pool, its workers' last items would
        otherwise look like items still running."""
        for running in self.running():
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.path, f"{running.pid}.{running.tid}"))

    def busy(self) -> list[Running]:
        return [r for r in self.running() if r.item != IDLE]

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> Board:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- worker side -------------------------------------------------------------------------------

_local = threading.local()


def attach(path: str) -> tuple[memoryview, memoryview]:
    """This thread's slot on the board at ``path`` and the board's stop flag (scratch buffers
    when there is no board here).

    Cached per thread, and per process: a forked child inherits the forking thread's cache.
    """
    cached = getattr(_local, "views", None)
    pid = os.getpid()
    if cached is not None and cached[0] == path and cached[1] == pid:
        return cached[2], cached[3]
    if cached is not None and cached[1] == pid:
        for view in cached[2:]:
            _release(view)
    mark = _map(os.path.join(path, f"{pid}.{threading.get_native_id()}"), True) if path else None
    stop = _map(os.path.join(path, "stop"), False) if mark is not None else None
    if mark is None or stop is None:
        mark, stop = memoryview(array("q", [IDLE])), memoryview(array("q", [0]))
    else:
        mark[0] = IDLE
    _local.views = (path, pid, mark, stop)
    return mark, stop


def _map(path: str, create: bool) -> memoryview | None:
    try:
        fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    except OSError:  # no such board here (a worker on another host) or not writable
        return None
    try:
        if create:
            os.ftruncate(fd, _SIZE)
        return memoryview(mmap.mmap(fd, _SIZE)).cast("q")
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def _release(view: memoryview) -> None:
    """Unmap a trial's views when the thread moves on to the next trial's board."""
    obj = view.obj
    view.release()
    if isinstance(obj, mmap.mmap):
        with contextlib.suppress(BufferError):
            obj.close()
