"""Getting the function and items to worker processes and results back, so that what cannot
travel is that item's error rather than a broken pool.

A process pool's workers start with ``install_function`` (the function, cloudpickled once per
worker) and run ``run_installed_chunk`` per chunk: the probe's recorder around the function,
its results packed as below.

Pools pickle a task's result in the worker and unpickle it in a thread of the parent. A result
that cannot be pickled fails the whole chunk (``multiprocessing.Pool`` wraps it in a
``MaybeEncodingError`` holding the record's repr); one that cannot be unpickled kills Pool's
result thread, which then waits forever. So process workers pickle their chunk's results
themselves (``pack_results``, the same one pickling pass the pool would do): a result that
fails is replaced by None and recorded as its item's ``PicklingError``. What the parent then
receives unpickles through ``_unpack``, which never raises: a chunk whose results cannot be
unpickled here arrives as :class:`Unreadable`, and the runner records its items' errors.

Items (arguments) are checked once per run before any trial (``unpicklable_items``): an item
that cannot be pickled is left out of process trials with an error of its own, and the others
run.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from typing import Any

from .probe import STATUS_ERROR, STATUS_OK, Chunk, ChunkRecord, run_chunk

__all__ = ["Unreadable", "install_function", "pack_results", "run_installed_chunk",
           "unpicklable_items", "unreadable_errors"]


class Unreadable:
    """Stands for a chunk's results that could not be unpickled in the parent."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __getitem__(self, index: Any) -> list[Any]:  # result_sample takes a slice
        return []


class _Packed:
    """A chunk's results pickled in the worker; unpickles as the list itself."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return _unpack, (self.blob,)


def _unpack(blob: bytes) -> list[Any] | Unreadable:
    try:
        return pickle.loads(blob)  # type: ignore[no-any-return]
    except Exception as exc:  # anything a broken __reduce__ or a missing class raises
        return Unreadable(f"{type(exc).__name__}: {exc}")


def pack_results(record: ChunkRecord) -> ChunkRecord:
    """The record with its results pickled; a result that cannot be is its item's error."""
    results = record.results
    try:
        return record._replace(results=_Packed(pickle.dumps(results, pickle.HIGHEST_PROTOCOL)))
    except Exception:
        pass
    errors = list(record.errors)
    for offset, result in enumerate(results):
        try:
            pickle.dumps(result, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            results[offset] = None
            _fail(record, offset, errors, "PicklingError",
                  f"its result cannot be pickled to send it back from the worker process: "
                  f"{type(exc).__name__}: {exc}")
    errors.sort()
    return record._replace(
        results=_Packed(pickle.dumps(results, pickle.HIGHEST_PROTOCOL)), errors=errors)


def unreadable_errors(record: ChunkRecord) -> ChunkRecord:
    """A record whose results could not be unpickled here: its items that succeeded in the
    worker become errors saying so."""
    if not isinstance(record.results, Unreadable):
        return record
    errors = list(record.errors)
    n = len(record.start_ns)
    span = (f"item {record.first}" if n == 1
            else f"items {record.first}–{record.first + n - 1} (one chunk)")
    for offset in range(n):
        _fail(record, offset, errors, "UnpicklingError",
              f"the results of {span} could not be unpickled in the parent: "
              f"{record.results.message}")
    errors.sort()
    return record._replace(results=[], errors=errors)


def _fail(record: ChunkRecord, offset: int, errors: list[tuple[int, str, str]], kind: str,
          message: str) -> None:
    """Mark an item that succeeded in the worker as failed, with its error (an item that had
    already failed keeps its own)."""
    if record.status[offset] == STATUS_OK:
        record.status[offset] = STATUS_ERROR
        errors.append((record.first + offset, kind, message))


def unpicklable_items(items: Sequence[Any]) -> dict[int, str]:
    """Index -> why, for items that cannot be pickled (one pass when all can)."""
    try:
        pickle.dumps(list(items), pickle.HIGHEST_PROTOCOL)
        return {}
    except Exception:
        pass
    bad = {}
    for index, item in enumerate(items):
        try:
            pickle.dumps(item, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            bad[index] = (f"the item cannot be pickled to send it to a worker process: "
                          f"{type(exc).__name__}: {exc}")
    return bad


# --- process workers: the function once per worker, then chunks ------------------------------
# The function is shipped once per worker (cloudpickle bytes in the pool's initializer), not once
# per chunk: cloudpickle sends importable functions by reference and notebook or __main__
# functions by value, so spawn and forkserver workers can run them too.

_installed_fn: Callable[[Any], Any] | None = None
_native_report = False  # whether this worker's first record is to carry its native pools


def install_function(payload: bytes, native_threads: int | None = None,
                     report_pools: bool = True, parent_pid: int | None = None) -> None:
    """Pool initializer: unpickle the workload function once in this worker; cap its native
    thread pools at ``native_threads`` and, with ``report_pools``, read them (native.py).
    The worker dies with ``parent_pid`` and leads its own process group (lifetime.py)."""
    import signal

    import cloudpickle

    # The parent stops the workers itself, so a worker must neither die half-way through a
    # result nor print a KeyboardInterrupt traceback (nor take a function's own SIGINT for one).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from . import lifetime, native

    if parent_pid is not None:
        lifetime.watch_parent(parent_pid)
    lifetime.lead_own_group()

    global _installed_fn, _native_report
    native.limit(native_threads)  # before the function's imports load a library
    _installed_fn = cloudpickle.loads(payload)
    _native_report = report_pools  # read after the first chunk: the function may load them


def run_installed_chunk(chunk: Chunk) -> ChunkRecord:
    """The task a process worker runs: the installed function over one chunk."""
    if _installed_fn is None:  # pragma: no cover - a pool started without its initializer
        raise RuntimeError("poolscope worker has no function installed")
    global _native_report
    record = run_chunk(_installed_fn, chunk)
    if _native_report:
        from . import native

        record, _native_report = record._replace(native_threads=native.pools()), False
    return pack_results(record)
