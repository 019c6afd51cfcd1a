"""A scripted backend for tests: it fakes execution behind the real runner and analysis.

Each scripted item says when it started and ended (ns after the trial's start), its CPU time,
and which worker ran it. A :class:`FakeClock` shared with ``run_trial(clock=...)`` makes every
trial-level number exact: start-up, teardown and wall come from the script, not from a real clock.
It is not registered: tests pass the class to the runner directly.

It can also break as real pools do, so the trial's recovery runs on a fake clock: a worker
that dies while running an item (``Death``: the board names the item, the pool raises, the
worker's exit code says how it ended), a pool that raises with no worker lost
(``raises_at``), and a close that fails (``close_error``).
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, ClassVar

from ..families import PROCESS, Family, family_of
from ..measure.probe import STATUS_ERROR, STATUS_OK, Chunk, ChunkRecord
from ._base import Backend

__all__ = ["Death", "FakeClock", "ScriptedBackend", "ScriptedItem", "scripted_backend"]


class FakeClock:
    """A nanosecond clock that moves only when told to."""

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        return self.now

    def advance_to(self, ns: int) -> None:
        self.now = max(self.now, ns)


@dataclass(frozen=True)
class ScriptedItem:
    start_ns: int  # after the trial's start
    end_ns: int
    cpu_ns: int
    pid: int = 1
    tid: int = 1
    core: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Death:
    """A worker process that ends while it runs ``item``: the board names the item (and
    ``also_running``, other threads of the same process), the pool raises, and the worker's
    ``exitcode`` says how it ended (negative: the signal). The pid is one no process has."""

    item: int
    exitcode: int = -11  # SIGSEGV
    also_running: tuple[int, ...] = ()
    pid: int = 4_194_305  # above PID_MAX_LIMIT (2**22): never a process
    tid: int = 7


class PoolBroke(RuntimeError):
    """What a scripted pool raises when it breaks."""


class ScriptedBackend(Backend):
    """Replays a script: each item's scripted run (``script[item]``), one chunk each, on a
    fake clock. ``deaths[k]``: how the k-th pool started breaks (None: it does not)."""

    name: ClassVar[str] = "fake"
    summary: ClassVar[str] = "scripted, for tests"
    family: ClassVar[Family] = PROCESS
    in_process: ClassVar[bool] = True
    script: ClassVar[Sequence[ScriptedItem]] = ()
    clock: ClassVar[FakeClock]
    startup_ns: ClassVar[int] = 0
    teardown_ns: ClassVar[int] = 0
    deaths: ClassVar[tuple[Death | None, ...]] = ()
    raises_at: ClassVar[int | None] = None  # the pool raises at this item, no worker lost
    close_error: ClassVar[str | None] = None
    started: ClassVar[list[int]] = [0]  # pools started so far (a list each subclass replaces)

    def start(self) -> None:
        self.t0 = self.clock()
        number = self.started[0]
        self.started[0] += 1
        self.death = self.deaths[number] if number < len(self.deaths) else None
        self.ended: dict[int, int] = {}

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        for chunk in chunks:
            for offset, _ in enumerate(chunk.items):
                index = chunk.first + offset
                if self.death is not None and index == self.death.item:
                    self._die(chunk.board, self.death)
                if index == self.raises_at:
                    raise PoolBroke(f"the scripted pool raised at item {index}")
                item = self.script[index]
                self.clock.advance_to(self.t0 + item.end_ns)
                yield _record(index, item, self.t0)

    def _die(self, board: str, death: Death) -> None:
        """The board's file for the worker, saying what its threads were running; then the
        pool breaks."""
        lanes = array("q", [death.tid, death.item])
        for k, item in enumerate(death.also_running, 1):
            lanes.extend([death.tid + k, item])
        with open(os.path.join(board, f"{death.pid}-scripted"), "wb") as file:
            file.write(lanes.tobytes())
        self.ended[death.pid] = death.exitcode
        raise PoolBroke(f"a scripted worker (pid {death.pid}) died at item {death.item}")

    def worker_processes(self) -> dict[int, Any]:
        return {pid: SimpleNamespace(exitcode=code) for pid, code in self.ended.items()}

    def close(self) -> None:
        self.clock.advance_to(self.clock() + self.teardown_ns)
        if self.close_error is not None:
            raise PoolBroke(self.close_error)


def _record(item_index: int, item: ScriptedItem, t0: int) -> ChunkRecord:
    errors = [(item_index, "ScriptedError", item.error)] if item.error else []
    return ChunkRecord(
        first=item_index, start_ns=array("q", [t0 + item.start_ns]),
        end_ns=array("q", [t0 + item.end_ns]), cpu_marks_ns=array("q", [0, item.cpu_ns]),
        core=array("i", [item.core]),
        status=array("b", [STATUS_ERROR if item.error else STATUS_OK]), errors=errors,
        pid=item.pid, tid=item.tid, process_cpu_s=0.0, process_maxrss=0, results=[None])


def scripted_backend(name: str, script: Sequence[ScriptedItem], clock: FakeClock,
                     teardown_ns: int = 0, family: str = "process", *,
                     deaths: Sequence[Death | None] = (), raises_at: int | None = None,
                     close_error: str | None = None) -> type[ScriptedBackend]:
    """A ScriptedBackend subclass that reports itself as executor ``name``."""
    attrs: dict[str, Any] = {"name": name, "script": tuple(script), "clock": clock,
                             "teardown_ns": teardown_ns, "family": family_of(family),
                             "deaths": tuple(deaths), "raises_at": raises_at,
                             "close_error": close_error, "started": [0]}
    return type(f"Scripted_{name}", (ScriptedBackend,), attrs)
