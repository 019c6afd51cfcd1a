"""Thread executors: concurrent.futures.ThreadPoolExecutor and multiprocessing.pool.ThreadPool.

Threads share the parent's memory, so the function is called directly (no pickling).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.pool import ThreadPool

from ..families import THREAD
from ..measure.probe import Chunk, ChunkRecord, run_chunk
from ._base import Backend, register
from ._futures import FuturesBackend

__all__ = ["ThreadBackend", "ThreadPoolBackend"]


@register
class ThreadBackend(FuturesBackend):
    name = "thread"
    summary = "concurrent.futures.ThreadPoolExecutor: threads in this process, one GIL"
    family = THREAD

    def make_executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.workers, thread_name_prefix="poolscope")

    def task(self) -> functools.partial[ChunkRecord]:
        return functools.partial(run_chunk, self.fn)


@register
class ThreadPoolBackend(Backend):
    name = "thread-pool"
    summary = "multiprocessing.pool.ThreadPool: the notebook's thread pool"
    family = THREAD

    _pool: ThreadPool | None = None

    def start(self) -> None:
        self._pool = ThreadPool(self.workers)

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        assert self._pool is not None, "start() first"
        yield from self._pool.imap_unordered(functools.partial(run_chunk, self.fn), chunks)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
