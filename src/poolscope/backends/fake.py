"""A scripted backend for tests: it fakes execution behind the real runner and analysis.

Each scripted item says when it started and ended (ns after the trial's start), its CPU time,
and which worker ran it. A :class:`FakeClock` shared with ``run_trial(clock=...)`` makes every
trial-level number exact: start-up, teardown and wall come from the script, not from a real clock.
It is not registered: tests pass the class to the runner directly.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..probe import STATUS_ERROR, STATUS_OK, Chunk, ChunkRecord
from ._base import Backend

__all__ = ["FakeClock", "ScriptedBackend", "ScriptedItem", "scripted_backend"]


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


class ScriptedBackend(Backend):
    """Replays a script: items in the given order, one chunk each, on a fake clock."""

    name: ClassVar[str] = "fake"
    summary: ClassVar[str] = "scripted, for tests"
    family: ClassVar[str] = "process"
    in_process: ClassVar[bool] = True
    script: ClassVar[Sequence[ScriptedItem]] = ()
    clock: ClassVar[FakeClock]
    startup_ns: ClassVar[int] = 0
    teardown_ns: ClassVar[int] = 0

    def start(self) -> None:
        self.t0 = self.clock()

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        index = 0
        for chunk in chunks:
            for offset, _ in enumerate(chunk.items):
                item = self.script[index]
                index += 1
                self.clock.advance_to(self.t0 + item.end_ns)
                yield _record(chunk.first + offset, item, self.t0)

    def close(self) -> None:
        self.clock.advance_to(self.clock() + self.teardown_ns)


def _record(item_index: int, item: ScriptedItem, t0: int) -> ChunkRecord:
    errors = [(item_index, "ScriptedError", item.error)] if item.error else []
    return ChunkRecord(
        first=item_index, start_ns=array("q", [t0 + item.start_ns]),
        end_ns=array("q", [t0 + item.end_ns]), cpu_marks_ns=array("q", [0, item.cpu_ns]),
        core=array("i", [item.core]),
        status=array("b", [STATUS_ERROR if item.error else STATUS_OK]), errors=errors,
        pid=item.pid, tid=item.tid, process_cpu_s=0.0, process_maxrss=0, results=[None])


def scripted_backend(name: str, script: Sequence[ScriptedItem], clock: FakeClock,
                     teardown_ns: int = 0, family: str = "process") -> type[ScriptedBackend]:
    """A ScriptedBackend subclass that reports itself as executor ``name``."""
    attrs: dict[str, Any] = {"name": name, "script": tuple(script), "clock": clock,
                             "teardown_ns": teardown_ns, "family": family}
    return type(f"Scripted_{name}", (ScriptedBackend,), attrs)
