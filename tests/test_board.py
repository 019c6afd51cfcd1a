"""The board: what each worker thread is running, readable after the worker died."""

from __future__ import annotations

import os
import threading

from poolscope.measure import board
from poolscope.measure.board import IDLE, Board


def in_a_worker_process(path: str, pid: int, item: int | None = None) -> None:
    """A thread attaching as one of worker process ``pid``'s would, then running ``item``."""
    mark, _ = board._attach_slot(path, pid)
    if item is not None:
        mark[0] = item


def test_a_worker_process_has_one_file_and_a_slot_per_thread():
    fake_pid = os.getpid() + 100_000  # not this process: the board's owner keeps marks in memory
    with Board() as shared:
        threads = [threading.Thread(target=in_a_worker_process, args=(shared.path, fake_pid, i))
                   for i in (4, 7)]
        for t in threads:
            t.start()
            t.join(timeout=10)
        in_a_worker_process(shared.path, fake_pid)  # attached, running nothing yet
        names = sorted(os.listdir(shared.path))
        assert len(names) == 2 and "stop" in names  # one file for the process ...
        assert [board._pid_of(name) for name in names if name != "stop"] == [fake_pid]
        running = [r for r in shared.running() if r.pid == fake_pid]
        assert sorted(r.item for r in running) == [IDLE, 4, 7]
        assert len({r.tid for r in running}) == 3
        assert sorted(r.item for r in shared.busy()) == [4, 7]  # a dead worker's still say so
        shared.forget()  # that pid does not exist: its file goes
        assert shared.running() == []


def test_a_new_slot_never_names_an_item():
    """A worker can die while a thread is attaching (asyncio.to_thread starts threads while
    items run): a slot that has a thread id must already say idle, never item 0."""
    fake_pid = os.getpid() + 100_001
    with Board() as shared:
        found = board._process_file(shared.path, fake_pid)
        assert found is not None
        writes: list[tuple[int, int]] = []
        real = found.slots

        class Spy:
            def __setitem__(self, at: int, value: int) -> None:
                writes.append((at, value))
                real[at] = value

            def __getitem__(self, at):
                return real[at]

        found.slots = Spy()  # type: ignore[assignment]
        try:
            found.take(12345)
        finally:
            found.slots = real
        assert writes == [(1, IDLE), (0, 12345)]  # the item first, then the id that makes it count


def test_slots_of_ended_threads_are_taken_again_when_all_are_used(monkeypatch):
    monkeypatch.setattr(board, "SLOTS", 2)
    fake_pid = os.getpid() + 100_002
    with Board() as shared:
        found = board._process_file(shared.path, fake_pid)
        assert found is not None
        found.take(1)  # no live thread has id 1 or 2
        found.take(2)
        mark = found.take(threading.get_native_id())
        assert mark is not None
        mark[0] = 9
        assert sorted((r.tid, r.item) for r in shared.running() if r.pid == fake_pid) == \
            sorted([(threading.get_native_id(), 9), (2, IDLE)])


def test_each_interpreter_of_a_process_has_a_file_of_its_own(monkeypatch):
    """Subinterpreters import the board anew (their own slot counter and lock): sharing one
    file, two of them handed out the same slot, and a dead process's board named the item of
    the thread that wrote last, not the one that ended it (1 trial in 300 under 3.13)."""
    fake_pid = os.getpid() + 100_002
    with Board() as shared:
        in_a_worker_process(shared.path, fake_pid, 2)  # the first interpreter's thread
        board._processes.clear()  # the second interpreter: a module of its own ...
        monkeypatch.setattr(board, "_file_name", lambda pid: f"{pid}-2nd")  # ... and file
        in_a_worker_process(shared.path, fake_pid, 3)
        assert len([n for n in os.listdir(shared.path) if board._pid_of(n) == fake_pid]) == 2
        assert sorted(r.item for r in shared.busy() if r.pid == fake_pid) == [2, 3]
        shared.forget()  # both files of the process that is gone
        assert shared.running() == []
