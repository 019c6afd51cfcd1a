"""The board: what each worker thread is running, readable after the worker died."""

from __future__ import annotations

import mmap
import os
from array import array

from poolscope import board
from poolscope.board import IDLE, Board


def test_a_new_mark_never_names_an_item(monkeypatch):
    """A worker can die while a thread is attaching (asyncio.to_thread starts threads while
    items run): its file, read then, must say idle or nothing, never item 0."""
    seen: list[bytes] = []
    real_mmap = mmap.mmap

    def mapping(fd: int, size: int) -> mmap.mmap:
        seen.append(os.pread(fd, 8, 0))  # what a reader finds before the mark is mapped
        return real_mmap(fd, size)

    with Board() as shared:
        monkeypatch.setattr(mmap, "mmap", mapping)
        mark, _ = board._attach_file(shared.path, os.getpid() + 1)  # as a worker process would
        monkeypatch.undo()
        assert seen[0] in (b"", array("q", [IDLE]).tobytes())  # the mark's file, when mapped
        assert [r.item for r in shared.running() if r.pid == os.getpid() + 1] == [IDLE]
        mark[0] = 5
        assert [r.item for r in shared.busy()] == [5]  # a dead worker's file still names it
        board._release(mark)
