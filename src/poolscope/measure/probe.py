"""The per-item recorder that runs inside workers.

A chunk of consecutive items runs in one thread of one process; the probe records each item's
start and end on ``perf_counter_ns`` (system-wide on Linux, macOS and Windows, so every worker
shares one time axis), its thread CPU time and the core it started on, into flat arrays. The
arrays travel back to the parent with the chunk's results, so recording costs no extra round trip
and no dict per item::

    parent                                  worker (thread or process)
    ------                                  --------------------------
    Chunk(first, items)  ── submit ──────>  run_chunk(fn, chunk)
                                              for each item:  core, start, fn(item), end, cpu
    ChunkRecord          <── result ──────  ChunkRecord(arrays, pid, tid, process CPU, peak RSS)

Per item the probe reads ``perf_counter_ns`` twice, ``thread_time_ns`` once (the CPU reading at
the end of one item is the start of the next) and the current core once: about 1-3 µs, a system
call among them. For items that short, timing each one would be most of what a trial measures
(serial would pay it on one core, two processes would split it), so the probe times such items
in **spans**: consecutive items between two readings of the clocks, enough of them that the
readings cost under 0.2% of the span. The worker still writes each item's number to the board, and
records each item's failure. A span's first item carries its start and core, its last item its
end and CPU mark; ``ChunkRecord.spans`` lists (first offset, item count) of each span, and the
parent spreads a span's wall and CPU evenly over its items (``model.ItemColumns``), which the
item frame marks in its ``span`` column. Items timed alone (all of them, for items over ~50× the
reading cost) are what they always were.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import resource
import socket
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .board import IDLE, attach

__all__ = ["KEPT_POOL", "STATUS_ERROR", "STATUS_OK", "Chunk", "ChunkRecord", "ItemTimeout",
           "current_core", "is_coroutine_function", "peak_rss", "reading_cost_ns",
           "reset_peak_rss", "run_chunk", "slot_tid", "span_length", "split_tid"]

STATUS_OK = 0
STATUS_ERROR = 1


class ItemTimeout(BaseException):
    """Raised inside an item of an in-process worker that ran past ``--timeout``.

    A BaseException, so that the function's own ``except Exception`` lets it through. The watch
    raises a subclass whose ``message`` says why it stopped the item.
    """

    message = "stopped: it ran longer than the item timeout (--timeout)"


KEPT_POOL = -2  # Chunk.trial for a kept pool: its workers initialize once, not per trial


class Chunk(NamedTuple):
    """Consecutive items ``first .. first + len(items) - 1`` of a trial."""

    first: int
    items: Sequence[Any]
    board: str = ""  # the trial's board directory (board.py): what each worker runs now
    timeout_s: float | None = None  # --timeout, for executors that stop items themselves
    trial: int = -1  # whose workers run an initializer once (call_shape.py)


class ChunkRecord(NamedTuple):
    """What a worker sends back for one chunk: columnar per-item arrays plus per-chunk facts."""

    first: int
    start_ns: array  # 'q': perf_counter_ns at item start
    end_ns: array  # 'q': perf_counter_ns at item end
    cpu_marks_ns: array  # 'q': thread CPU clock before the first item and after each item
    core: array  # 'i': CPU core the item started on (-1 when unknown)
    status: array  # 'b': STATUS_OK or STATUS_ERROR
    errors: list[tuple[int, str, str]]  # (item index, exception type, message): sparse
    pid: int
    tid: int
    process_cpu_s: float  # the worker process's CPU (user + system) so far
    process_maxrss: int  # the worker process's peak RSS so far, bytes
    results: list[Any]  # the function's return values, None for failed items
    # Where the chunk ran, for executors whose workers may live on other hosts (dask); empty
    # means the parent's host and no addressable worker.
    host: str = ""  # the worker's hostname
    worker: str = ""  # the worker's address, e.g. "tcp://10.0.0.5:40123"
    retried: bool = False  # the executor ran this chunk again after losing a worker
    # The worker process's native thread pools (native.pools()), on its first record only.
    native_threads: list[dict[str, Any]] | None = None
    # 'q': (first offset, item count) of each span of items timed together; None: none were.
    spans: array | None = None
    # Seconds the initializer (call_shape.py) took in this worker, when it ran before this
    # chunk's first item: outside every item's clock.
    init_s: float | None = None


def _core_reader() -> Callable[[], int]:
    try:
        # PyDLL keeps the GIL across the call: sched_getcpu never blocks, and releasing the GIL
        # on every item would hand it to another thread, adding switches to threaded trials.
        libc = ctypes.PyDLL(None, use_errno=True)
        getcpu = libc.sched_getcpu
        getcpu.restype = ctypes.c_int
        getcpu.argtypes = []
        if getcpu() >= 0:
            return getcpu
    except (OSError, AttributeError):
        pass
    return lambda: -1


current_core = _core_reader()
HOST = socket.gethostname()
_MAXRSS_UNIT = 1 if os.uname().sysname == "Darwin" else 1024  # ru_maxrss: bytes on macOS, KiB else


def reset_peak_rss() -> bool:
    """Start this process's peak RSS (VmHWM) again from its current RSS, so each trial gets
    its own peak (Linux); False where that cannot be done."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss(pid: int | str = "self") -> int | None:
    """A process's peak RSS (VmHWM) in bytes; None when it is gone or this is not Linux."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def run_chunk(fn: Callable[[Any], Any], chunk: Chunk) -> ChunkRecord:
    """Run ``fn`` over the chunk's items, recording each one. Item exceptions are recorded."""
    if is_coroutine_function(fn):
        return _run_coroutine_chunk(fn, chunk)
    # The loop is the probe's whole per-item cost: locals only, arrays sized up front, and the
    # thread CPU clock stored as running readings (differenced after the loop, not per item).
    perf = time.perf_counter_ns
    thread_cpu = time.thread_time_ns
    core_of = current_core
    mark, stop = attach(chunk.board)
    items = chunk.items if not stop[0] else ()  # past --trial-timeout: run nothing more
    init_s = None
    initialize = getattr(type(fn), "initialize_worker", None)  # a shaped call's initializer
    if initialize is not None and items:
        # Shown as the first item's on the board: the limits stop a hanging initializer as
        # that item, which waits for it.
        mark[0] = chunk.first
        init_s = initialize(fn, chunk.trial)
    n = len(items)
    starts = array("q", bytes(8 * n))
    ends = array("q", bytes(8 * n))
    cpu_marks = array("q", bytes(8 * (n + 1)))
    cores = array("i", bytes(4 * n))
    status = array("b", bytes(n))
    errors: list[tuple[int, str, str]] = []
    results: list[Any] = [None] * n
    first = chunk.first
    spans = array("q")
    check_below = SPAN_CHECK_BELOW_NS  # items shorter than this may need spans
    offset = 0
    cpu_marks[0] = thread_cpu()
    while offset < n:
        span = 1
        # Items timed alone, as long as they are long enough: the common case, one comparison
        # more than the loop needs anyway.
        resume = offset
        for offset, item in enumerate(itertools.islice(items, resume, None), resume):
            mark[0] = first + offset
            cores[offset] = core_of()
            starts[offset] = began = perf()
            try:
                results[offset] = fn(item)
            except ITEM_FAILURES as exc:
                ends[offset] = ended = perf()
                status[offset] = STATUS_ERROR
                errors.append((first + offset, *failure_of(exc)))
            else:
                ends[offset] = ended = perf()
            cpu_marks[offset + 1] = thread_cpu()
            if ended - began < check_below:
                check_below = min(check_below, alone_at_least_ns())
                span = span_length(ended - began)
                if span > 1:
                    break
        offset += 1
        # Spans, while the items stay short.
        while span > 1 and offset < n:
            last = min(n, offset + span)
            cores[offset] = core_of()
            starts[offset] = began = perf()
            for index, item in enumerate(items[offset:last], offset):
                mark[0] = first + index
                try:
                    results[index] = fn(item)
                except ITEM_FAILURES as exc:
                    status[index] = STATUS_ERROR
                    errors.append((first + index, *failure_of(exc)))
            ends[last - 1] = ended = perf()
            cpu_marks[last] = thread_cpu()
            if last - offset > 1:
                spans.append(offset)
                spans.append(last - offset)
            span = span_length((ended - began) // (last - offset))
            offset = last
    mark[0] = IDLE
    return _record(chunk.first, starts, ends, cpu_marks, cores, status, errors, results, spans,
                   init_s)


def _record(first: int, starts: array[int], ends: array[int], cpu_marks: array[int],
            cores: array[int], status: array[int], errors: list[tuple[int, str, str]],
            results: list[Any], spans: array[int], init_s: float | None = None) -> ChunkRecord:
    """A chunk's record from its readings, with this process's CPU and peak memory so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return ChunkRecord(
        first=first, start_ns=starts, end_ns=ends, cpu_marks_ns=cpu_marks, core=cores,
        status=status, errors=errors, pid=os.getpid(), tid=threading.get_native_id(),
        process_cpu_s=usage.ru_utime + usage.ru_stime,
        process_maxrss=usage.ru_maxrss * _MAXRSS_UNIT, results=results, spans=spans or None,
        init_s=init_s)


# --- spans: items too short to time one by one -------------------------------------------------
SPAN_CHECK_BELOW_NS = 1_000_000  # items this long never need spans: readings cost ~µs
PER_ITEM_SHARE = 0.02  # time items alone while reading the clocks costs under this share of one
# Else read them once per span, their cost under this share of it: a span's edges cost several
# readings (the loop's own work around them), and the readings are also the only gaps.
PER_SPAN_SHARE = 0.002
MAX_SPAN = 10_000  # items: keeps a span under ~10 ms even for the shortest items
_reading_ns: list[int] = []  # this process's cost of the per-item readings, measured once


def reading_cost_ns() -> int:
    """What the probe's readings for one item cost in this process (core, two wall clocks,
    thread CPU), the best of three tries, measured on first use."""
    if not _reading_ns:
        perf, thread_cpu, core_of = time.perf_counter_ns, time.thread_time_ns, current_core
        tries = []
        for _ in range(3):
            began = perf()
            for _ in range(16):
                core_of()
                perf()
                perf()
                thread_cpu()
            tries.append((perf() - began) // 16)
        _reading_ns.append(max(1, min(tries)))
    return _reading_ns[0]


def alone_at_least_ns() -> int:
    """Items at least this long are timed alone (span_length 1)."""
    return int(reading_cost_ns() / PER_ITEM_SHARE)


def span_length(item_ns: int) -> int:
    """How many items of ``item_ns`` each to time together: 1 while timing each costs under
    PER_ITEM_SHARE of it, else enough that one reading costs under PER_SPAN_SHARE of the span."""
    cost = reading_cost_ns()
    if item_ns * PER_ITEM_SHARE >= cost:
        return 1
    return min(MAX_SPAN, -(-cost // max(1, int(item_ns * PER_SPAN_SHARE))))


# What an item may raise and still be only that item's failure: a KeyboardInterrupt too, unless
# it is the user's Ctrl-C (then failure_of raises it again).
ITEM_FAILURES = (Exception, SystemExit, ItemTimeout, KeyboardInterrupt)


def failure_of(exc: BaseException) -> tuple[str, str]:
    """(kind, message) of an item's failure; the user's own Ctrl-C is raised again."""
    if isinstance(exc, KeyboardInterrupt):
        from ._interrupt import is_users_interrupt

        if is_users_interrupt():
            raise exc
        return "KeyboardInterrupt", "the function raised KeyboardInterrupt (not a Ctrl-C)"
    if isinstance(exc, SystemExit):  # the item's failure: it must not end the worker (or us)
        return "SystemExit", f"the function called sys.exit({exc.code!r})"
    if isinstance(exc, ItemTimeout):  # raised into this thread by the parent's limits.py
        return "Timeout", exc.message
    return type(exc).__name__, str(exc)


# --- async def workloads -----------------------------------------------------------------------
# Under every executor but ``asyncio`` (which awaits them on its own loop, see
# backends/asyncio_.py) an ``async def`` function is run to completion per item on an event loop
# of the worker's thread, one loop per chunk: the item's wall and CPU include that loop's work.


def is_coroutine_function(fn: Callable[[Any], Any]) -> bool:
    """Whether calling ``fn`` makes a coroutine: ``async def``, also under partials or as an
    object's ``async def __call__``."""
    import inspect

    call = getattr(type(fn), "__call__", None)  # noqa: B004 (the method itself, not callable())
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


def _run_coroutine_chunk(fn: Callable[[Any], Any], chunk: Chunk) -> ChunkRecord:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:  # this thread already runs a loop (serial inside Jupyter): use a thread of our own
        return _on_own_thread(_run_coroutine_chunk, fn, chunk)
    initialize = getattr(type(fn), "initialize_worker", None)  # before the loop's first item
    init_s = initialize(fn, chunk.trial) if initialize is not None and chunk.items else None
    with asyncio.Runner() as runner:
        record = run_chunk(lambda item: runner.run(fn(item)), chunk)
    return record._replace(init_s=init_s) if init_s is not None else record


def _on_own_thread(task: Callable[..., ChunkRecord], *args: Any) -> ChunkRecord:
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, task(*args)))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name="poolscope-async-chunk", daemon=True)
    thread.start()
    thread.join()  # as long as the chunk's items run, as a serial trial waits for them
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


# --- lanes of one thread -----------------------------------------------------------------------
# Lanes are numbered by (pid, tid). An executor that runs several items at once on one thread
# (asyncio: its coroutines interleave on the loop's thread) reports each concurrency slot as a
# lane of its own: the record's tid holds the native thread id in the low SLOT_SHIFT bits and
# slot + 1 above them. ``split_tid`` undoes it, on ints and numpy arrays alike.

SLOT_SHIFT = 48
_NATIVE_MASK = (1 << SLOT_SHIFT) - 1


def slot_tid(native_tid: int, slot: int) -> int:
    """A tid for concurrency slot ``slot`` (0, 1, …) of thread ``native_tid``."""
    return ((slot + 1) << SLOT_SHIFT) | (native_tid & _NATIVE_MASK)


def split_tid(tid: Any) -> tuple[Any, Any]:
    """(native thread id, slot) of a recorded tid; the slot is -1 for a plain thread's tid."""
    return tid & _NATIVE_MASK, (tid >> SLOT_SHIFT) - 1
