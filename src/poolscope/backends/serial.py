"""The serial baseline: every item in the calling thread, one after another."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from ..families import SERIAL
from ..measure.probe import Chunk, ChunkRecord, run_chunk
from ._base import Backend, register

__all__ = ["SerialBackend"]


@register
class SerialBackend(Backend):
    name = "serial"
    summary = "a plain loop in the calling thread: the baseline every speedup is measured against"
    family = SERIAL

    @classmethod
    def effective_workers(cls, requested: int) -> int:
        return 1

    def start(self) -> None:
        pass

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        for chunk in chunks:
            yield run_chunk(self.fn, chunk)

    def close(self) -> None:
        pass
