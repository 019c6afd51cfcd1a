"""The shapes a pool calls a function in, beyond ``fn(item)``: ``star`` (each item unpacked as
arguments, as ``Pool.starmap``: a list or tuple as positional ones, a dict as keywords) and an
``initializer(*initargs)`` run once in each worker before its first item (a model loaded, a
connection opened), as ``concurrent.futures`` and ``multiprocessing`` pools do.

The probe runs the initializer outside every item's clock (``Shaped.initialize_worker``,
before the chunk's first item) and records how long it took, so its cost is the worker's,
shown apart from the items'. A worker is a thread of a process (an asyncio slot) in one trial:
a fresh pool's workers each run it again, a kept pool's (``--reuse-pool``) once. When it raises,
each item of that worker fails with InitializerFailed, the initializer's exception named in the
message.

A shaped function is picklable when its parts are; what ran where is kept per process (and per
subinterpreter), so a worker that gets a fresh copy with every task still initializes once.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._errors import UsageError
from .measure.probe import ItemTimeout, is_coroutine_function

if TYPE_CHECKING:
    from .workloads import Workload

__all__ = ["Shaped", "shape", "shape_options", "shaped"]


# What ran in this process (in this interpreter: a subinterpreter has its own), kept at module
# level because a worker may get a fresh copy of the shaped call with every task (each chunk
# pickled again): (call, pid, trial, thread, slot) for each initializer that ran, and per
# (call, thread) the failure of the thread's latest trial, if its initializer raised.
_initialized: set[tuple[str, int, int, int, int | None]] = set()
_failure: dict[tuple[str, int], tuple[int, BaseException | None]] = {}


class Shaped:
    def __init__(self, fn: Callable[..., Any], star: bool = False,
                 initializer: Callable[..., Any] | None = None,
                 initargs: tuple[Any, ...] = ()) -> None:
        self.fn, self.star = fn, star
        self.initializer, self.initargs = initializer, tuple(initargs)
        self.token = uuid.uuid4().hex  # the same in every copy: names this call's workers

    @property
    def __wrapped__(self) -> Callable[..., Any]:  # what the function is, for names and code
        return self.fn

    def initialize_worker(self, trial: int, slot: int | None = None) -> float | None:
        """Run the initializer unless this worker (this thread, or an asyncio ``slot`` of it)
        ran it for this trial: its seconds when it ran now, else None."""
        if self.initializer is None:
            return None
        thread = threading.get_ident()
        key = (self.token, os.getpid(), trial, thread, slot)
        if key in _initialized:
            return None
        _initialized.add(key)
        began = time.perf_counter()
        failure: BaseException | None = None
        try:
            self.initializer(*self.initargs)
        except (Exception, SystemExit, ItemTimeout) as exc:  # ItemTimeout: --timeout stopped it
            from .map_call import InitializerFailed, initializer_name

            failure = InitializerFailed(
                f"the initializer {initializer_name(self.initializer)} raised "
                f"{type(exc).__name__}: {exc}: every item of this worker fails")
            failure.__cause__ = exc
        seconds = time.perf_counter() - began
        latest = _failure.get((self.token, thread))
        if latest is None or latest[0] != trial or failure is not None:  # a slot's stays
            _failure[(self.token, thread)] = (trial, failure)
        return seconds

    def _failed(self) -> BaseException | None:
        if self.initializer is None:
            return None
        latest = _failure.get((self.token, threading.get_ident()))
        return None if latest is None else latest[1]

    def __call__(self, item: Any) -> Any:
        failure = self._failed()
        if failure is not None:
            raise failure
        if not self.star:
            return self.fn(item)
        return self.fn(**item) if isinstance(item, dict) else self.fn(*item)


class _AsyncShaped(Shaped):
    async def __call__(self, item: Any) -> Any:  # type: ignore[override]
        failure = self._failed()
        if failure is not None:
            raise failure
        if not self.star:
            return await self.fn(item)
        return await (self.fn(**item) if isinstance(item, dict) else self.fn(*item))


def shaped(fn: Callable[..., Any], star: bool = False,
           initializer: Callable[..., Any] | None = None,
           initargs: tuple[Any, ...] = ()) -> Callable[..., Any]:
    """``fn`` itself when called plainly (no cost per item), else its shaped call."""
    if not star and initializer is None:
        return fn
    cls = _AsyncShaped if is_coroutine_function(fn) else Shaped
    return cls(fn, star, initializer, initargs)


def shape(workload: Workload, star: bool = False,
          initializer: Callable[..., Any] | None = None,
          initargs: tuple[Any, ...] = ()) -> Workload:
    """The workload with its function called in that shape; one line (exit 2) when ``star``
    is given items that are not lists, tuples or dicts."""
    if initializer is not None and not callable(initializer):
        raise UsageError(f"the initializer {initializer!r} is not callable")
    if initargs and initializer is None:
        raise UsageError("initargs need an initializer")
    if star:
        bad = next((i for i, item in enumerate(workload.items)
                    if not isinstance(item, list | tuple | dict)), None)
        if bad is not None:
            raise UsageError(f"star: item {bad} is a {type(workload.items[bad]).__name__}; "
                             "each item must be a list (positional arguments) or an object "
                             "(keywords)")
    return dataclasses.replace(workload, fn=shaped(workload.fn, star, initializer, initargs))


def shape_options(fn: Callable[..., Any]) -> dict[str, Any]:
    """What a run records of its function's call shape (none for a plain call)."""
    if not isinstance(fn, Shaped):
        return {}
    from .map_call import initializer_name

    return {"star": fn.star,
            "initializer": initializer_name(fn.initializer) if fn.initializer else None,
            "initargs": [repr(arg) for arg in fn.initargs]}
