"""The asyncio executor: coroutines on one event loop, at most ``workers`` of them at once.

How a trial runs::

    caller's thread                        "poolscope-asyncio" thread: the trial's event loop
    ---------------                        --------------------------------------------------
    start(): a new loop and its thread ──> loop.run_forever()
    run(chunks) ── run_coroutine_threadsafe ──> `workers` slot tasks; each takes the next chunk
                                            and runs its items one after another:
                                              async def fn: awaited here, metered step by step
                                              plain fn:     asyncio.to_thread(run_chunk, fn, chunk)
    ChunkRecord <── queue (polled, with timeouts) ── one record per chunk, as it completes
    close(): cancel what is left, stop the loop, join its thread

**Concurrency.** ``workers`` slot tasks share one iterator of chunks, so at most ``workers``
items are in progress at once — for a coroutine function on the loop itself, for a plain
function in the loop's default executor, a ThreadPoolExecutor of ``workers`` threads (what
``asyncio.to_thread`` uses). Chunks are the unit of dispatch as in every executor.

**Inside a running loop.** The trial's loop always runs in a thread of its own, so the executor
behaves the same from a script and from inside an already-running loop (Jupyter, or any
``async def`` caller): nothing nests, and the caller is blocked only as any executor blocks it.
A coroutine function that needs the caller's loop (e.g. a client session opened on it) cannot
run here: its objects belong to another loop.

**CPU per item.** Coroutines interleave on one thread, so the thread CPU clock read at an item's
start and end would charge the item with every other coroutine that ran in between. Each
coroutine is instead driven by :class:`Metered`, whose ``__await__`` hands every step
(``send``/``throw``) to the inner coroutine and adds ``thread_time_ns`` around that step only:
an item's ``cpu_s`` is the CPU of its own steps (the loop's bookkeeping between steps is charged
to no item). ``wall_s`` runs from its start to its end and so includes the time other
coroutines held the thread, as a thread's wall time includes waiting for the GIL. Plain
functions run in worker threads, recorded by the ordinary probe.

**Lanes.** All coroutines run on the loop's thread, so (pid, tid) alone would draw one lane of
overlapping items. Each concurrency slot is a lane instead: a slot's records carry the real pid
and the loop thread's native tid tagged with the slot
(:func:`poolscope.measure.probe.slot_tid`: slot + 1 above bit 48), so timelines, reports and
traces show ``workers`` lanes (fewer when there are fewer chunks), and
:func:`poolscope.measure.probe.split_tid` gives back (native tid, slot) for display.
Plain functions' records carry their worker thread's real tid: those lanes are real threads.

**Family** ``"async"``: it shares the parent's memory (nothing is pickled) and is weighed with
threads — between serial and processes — by the classification and the recommendation.
"""

from __future__ import annotations

import contextlib
import os
import queue
import resource
import threading
import time
from array import array
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..families import ASYNC
from ..measure.probe import (
    _MAXRSS_UNIT,
    STATUS_ERROR,
    Chunk,
    ChunkRecord,
    current_core,
    is_coroutine_function,
    run_chunk,
    slot_tid,
)
from ._base import Backend, register

if TYPE_CHECKING:
    import asyncio

__all__ = ["AsyncioBackend", "Metered"]

POLL_S = 0.2  # how often the caller checks on the loop while it waits for a record
CLOSE_TIMEOUT_S = 10.0  # cancelling leftover items and stopping the loop


class Metered:
    """Awaitable: ``fn(item)`` awaited step by step, with the thread CPU of its own steps.

    ``cpu_ns`` adds ``time.thread_time_ns`` around each ``send``/``throw`` into the inner
    coroutine (and around the call that makes it), never across a suspension, so CPU that
    other coroutines use while this one waits is not counted.
    """

    __slots__ = ("cpu_ns", "fn", "item")

    def __init__(self, fn: Callable[[Any], Any], item: Any) -> None:
        self.fn = fn
        self.item = item
        self.cpu_ns = 0

    def __await__(self) -> Generator[Any, Any, Any]:
        clock = time.thread_time_ns
        began = clock()
        try:
            inner = self.fn(self.item).__await__()
        finally:
            self.cpu_ns += clock() - began
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            began = clock()
            try:
                if thrown is None:
                    signal = inner.send(sent)
                else:
                    error, thrown = thrown, None
                    signal = inner.throw(error)
            except StopIteration as stop:
                return stop.value
            finally:
                self.cpu_ns += clock() - began
            sent = None
            try:
                sent = yield signal  # the future it waits on goes up to the task unchanged
            except GeneratorExit:
                inner.close()
                raise
            except BaseException as exc:  # cancellation and the like: into the inner coroutine
                thrown = exc


async def _run_coroutine_chunk(fn: Callable[[Any], Any], chunk: Chunk, tid: int) -> ChunkRecord:
    """The probe's loop for coroutines: each item awaited through Metered."""
    import asyncio

    perf = time.perf_counter_ns
    core_of = current_core
    n = len(chunk.items)
    starts = array("q", bytes(8 * n))
    ends = array("q", bytes(8 * n))
    cpu_marks = array("q", bytes(8 * (n + 1)))  # running sum of the items' own CPU
    cores = array("i", bytes(4 * n))
    status = array("b", bytes(n))
    errors: list[tuple[int, str, str]] = []
    results: list[Any] = [None] * n
    used = 0
    timeout = chunk.timeout_s
    # A shaped call's initializer, once per slot (this chunk's lane), before its first item.
    initialize = getattr(type(fn), "initialize_worker", None)
    init_s = initialize(fn, chunk.trial, tid) if initialize is not None and n else None
    for offset, item in enumerate(chunk.items):
        metered = Metered(fn, item)
        cores[offset] = core_of()
        starts[offset] = perf()
        try:
            if timeout is None:
                results[offset] = await metered
            else:  # --timeout: cancelled where it waits (limits.py stops the other executors)
                results[offset] = await asyncio.wait_for(metered, timeout)
        except asyncio.TimeoutError:  # noqa: UP041 (the builtin is its alias only from 3.11)
            status[offset] = STATUS_ERROR
            errors.append((chunk.first + offset, "Timeout",
                           f"cancelled: it ran longer than --timeout {timeout:g} s"))
        except Exception as exc:
            status[offset] = STATUS_ERROR
            errors.append((chunk.first + offset, type(exc).__name__, str(exc)))
        ends[offset] = perf()
        used += metered.cpu_ns
        cpu_marks[offset + 1] = used
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return ChunkRecord(
        first=chunk.first, start_ns=starts, end_ns=ends, cpu_marks_ns=cpu_marks, core=cores,
        status=status, errors=errors, pid=os.getpid(), tid=tid,
        process_cpu_s=usage.ru_utime + usage.ru_stime,
        process_maxrss=usage.ru_maxrss * _MAXRSS_UNIT, results=results, init_s=init_s)


@register
class AsyncioBackend(Backend):
    name = "asyncio"
    summary = ("an asyncio event loop: async def items awaited, at most `workers` at once; "
               "plain functions through asyncio.to_thread")
    family = ASYNC

    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    loop_cpu_ns: int = 0  # the loop thread's CPU during the last run(): Σ item CPU is within it

    def start(self) -> None:
        import asyncio

        self.coroutines = is_coroutine_function(self.fn)
        loop = asyncio.new_event_loop()
        if not self.coroutines:  # asyncio.to_thread runs on the loop's default executor
            loop.set_default_executor(ThreadPoolExecutor(
                self.workers, thread_name_prefix="poolscope-asyncio-worker"))
        thread = threading.Thread(target=_serve, args=(loop,), name="poolscope-asyncio",
                                  daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        import asyncio

        assert self._loop is not None and self._thread is not None, "start() first"
        records: queue.SimpleQueue[ChunkRecord] = queue.SimpleQueue()
        trial = asyncio.run_coroutine_threadsafe(self._trial(chunks, records.put), self._loop)
        try:
            for _ in range(len(chunks)):
                yield self._next(records, trial)
        finally:
            trial.cancel()

    def _next(self, records: queue.SimpleQueue[ChunkRecord], trial: Any) -> ChunkRecord:
        while True:
            try:
                return records.get(timeout=POLL_S)
            except queue.Empty:
                pass
            if trial.done() or not (self._thread and self._thread.is_alive()):
                try:
                    return records.get_nowait()  # put just before the trial ended
                except queue.Empty:
                    pass
                if trial.done():
                    trial.result()  # raises what broke the trial
                raise RuntimeError("the asyncio trial ended before every chunk reported")

    async def _trial(self, chunks: Sequence[Chunk], emit: Callable[[ChunkRecord], None]
                     ) -> None:
        import asyncio

        began = time.thread_time_ns()
        pending = iter(chunks)  # shared by the slots: each takes the next chunk when free
        slots = [asyncio.ensure_future(self._slot(k, pending, emit))
                 for k in range(min(self.workers, len(chunks)))]
        try:
            await asyncio.gather(*slots)
        finally:
            for task in slots:
                task.cancel()
            self.loop_cpu_ns = time.thread_time_ns() - began

    async def _slot(self, slot: int, pending: Iterator[Chunk],
                    emit: Callable[[ChunkRecord], None]) -> None:
        import asyncio

        tid = slot_tid(threading.get_native_id(), slot)
        for chunk in pending:
            if self.coroutines:
                record = await _run_coroutine_chunk(self.fn, chunk, tid)
            else:
                record = await asyncio.to_thread(run_chunk, self.fn, chunk)
            emit(record)

    def close(self) -> None:
        import asyncio

        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        if thread.is_alive():
            # After an interrupted trial, items may still be in progress: cancel them first.
            cancelled = asyncio.run_coroutine_threadsafe(_cancel_all(), loop)
            with contextlib.suppress(Exception):  # the join below says whether the loop stops
                cancelled.result(CLOSE_TIMEOUT_S)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CLOSE_TIMEOUT_S)
            if thread.is_alive():
                raise RuntimeError(f"the asyncio event loop did not stop within "
                                   f"{CLOSE_TIMEOUT_S:g} s: an item is still running")


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    """The loop thread: run until stopped, then finish async generators and worker threads."""
    import asyncio

    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


async def _cancel_all() -> None:
    import asyncio

    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
