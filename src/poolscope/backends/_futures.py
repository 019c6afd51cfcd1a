"""Shared machinery for concurrent.futures executors: submit every chunk, yield as completed."""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, as_completed
from contextlib import AbstractContextManager

from ..measure.probe import Chunk, ChunkRecord
from ._base import Backend

__all__ = ["FuturesBackend", "records_as_completed"]


def records_as_completed(futures: list[Future[ChunkRecord]]) -> Iterator[ChunkRecord]:
    """Each chunk's record as its future completes; the others are cancelled when the caller
    stops early or a future fails."""
    try:
        for future in as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


class FuturesBackend(Backend):
    """A backend over a ``concurrent.futures.Executor``; subclasses make the executor."""

    _executor: Executor | None = None

    @abstractmethod
    def make_executor(self) -> Executor: ...

    @abstractmethod
    def task(self) -> Callable[[Chunk], ChunkRecord]:
        """The callable submitted once per chunk."""

    def launching(self) -> AbstractContextManager[object]:
        """Context around submission, when executors start their workers on demand."""
        return contextlib.nullcontext()

    def start(self) -> None:
        self._executor = self.make_executor()

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        assert self._executor is not None, "start() first"
        task = self.task()
        with self.launching():
            futures = [self._executor.submit(task, chunk) for chunk in chunks]
        yield from records_as_completed(futures)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
