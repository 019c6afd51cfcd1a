"""What ``poolscope.map`` calls for each item: the function captured with ``star`` (items
unpacked as arguments) and an ``initializer`` (once per worker), and an item's failure carried
as its result, to be raised in item order by the caller.

A capture is picklable when the function is: process workers get a copy, whose initializer
state starts afresh.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable
from typing import Any

from .map_record import target_name
from .measure.probe import is_coroutine_function

__all__ = ["InitCapture", "InitializerFailed", "ItemFailed", "Raised", "call_here", "capture",
           "initializer_name"]


class ItemFailed(Exception):
    """An item failed in a way that left no exception object to raise (its worker process
    died, or its exception could not be pickled back): the kind and message as recorded."""

    def __init__(self, item: int, kind: str, message: str) -> None:
        super().__init__(f"item {item}: {kind}: {message}")
        self.item, self.kind, self.message = item, kind, message


class InitializerFailed(concurrent.futures.BrokenExecutor):
    """The ``initializer`` raised in a worker: every item that worker runs fails with this (as
    a standard pool's items fail with BrokenThreadPool / BrokenProcessPool), the initializer's
    exception its ``__cause__`` where it ran in this process, and named in the message."""


class Raised:
    """An item's exception, carried as its result (the probe sees a success: the exception is
    the caller's to raise, in item order)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _Capture:
    """The function as map calls it: ``star`` unpacks each item as arguments; an exception
    becomes the item's result (see Raised). Picklable when the function is."""

    def __init__(self, fn: Callable[..., Any], star: bool) -> None:
        self.fn, self.star = fn, star

    def __call__(self, item: Any) -> Any:
        try:
            if not self.star:
                return self.fn(item)
            if isinstance(item, dict):
                return self.fn(**item)
            return self.fn(*item)
        except (Exception, SystemExit) as exc:
            return Raised(exc)


class _AsyncCapture(_Capture):
    """_Capture for an ``async def`` function: awaited by the asyncio candidate."""

    async def __call__(self, item: Any) -> Any:  # type: ignore[override]
        try:
            if not self.star:
                return await self.fn(item)
            if isinstance(item, dict):
                return await self.fn(**item)
            return await self.fn(*item)
        except (Exception, SystemExit) as exc:
            return Raised(exc)


_pid = os.getpid()  # this process's: a forked worker's own once it forked


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


class InitCapture(_Capture):
    """_Capture with an ``initializer``: ``initializer(*initargs)`` runs once in each worker
    (a thread of a process: a forked or spawned worker, a new thread, runs it again) before the
    first item it runs there. When it raised, each item that worker runs fails with
    InitializerFailed and the function is not called. Only calls given an initializer pay the
    check, once per item."""

    def __init__(self, fn: Callable[..., Any], star: bool, initializer: Callable[..., Any],
                 initargs: tuple[Any, ...]) -> None:
        super().__init__(fn, star)
        self.initializer, self.initargs = initializer, initargs
        self.local = threading.local()  # pid: the process it ran in; failure

    def __getstate__(self) -> dict[str, Any]:  # a process worker's copy starts afresh
        return {key: value for key, value in self.__dict__.items() if key != "local"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.local = threading.local()

    def initialized(self) -> InitializerFailed | None:
        """Run the initializer in this worker unless it ran here; what its items fail with
        when it raised."""
        local = self.local
        if getattr(local, "pid", None) != _pid:
            local.pid, local.failure = _pid, None
            try:
                self.initializer(*self.initargs)
            except (Exception, SystemExit) as exc:
                local.failure = InitializerFailed(
                    f"the initializer {initializer_name(self.initializer)} raised "
                    f"{type(exc).__name__}: {exc} (pid {os.getpid()}, thread "
                    f"{threading.current_thread().name}): every item of this worker fails")
                local.failure.__cause__ = exc
        return local.failure  # type: ignore[no-any-return]

    def __call__(self, item: Any) -> Any:
        failure = self.initialized()
        if failure is not None:
            return Raised(failure)
        return super().__call__(item)


class _AsyncInitCapture(InitCapture, _AsyncCapture):
    """InitCapture for an ``async def`` function: the initializer runs in the loop's thread."""

    async def __call__(self, item: Any) -> Any:  # type: ignore[override]
        failure = self.initialized()
        if failure is not None:
            return Raised(failure)
        return await _AsyncCapture.__call__(self, item)


def initializer_name(initializer: Callable[..., Any]) -> str:
    """module:qualname, or path/to/file.py:qualname for a file target's function."""
    from ._filetargets import module_path

    name = target_name(initializer)
    module, _, qualname = name.partition(":")
    path = module_path(module)
    return name if path is None else f"{path}:{qualname}"


def capture(fn: Callable[..., Any], star: bool, initializer: Callable[..., Any] | None,
             initargs: tuple[Any, ...]) -> _Capture:
    """The capture for the call: a plain one, at no cost per item, without an initializer."""
    coroutine = is_coroutine_function(fn)
    if initializer is None:
        return (_AsyncCapture if coroutine else _Capture)(fn, star)
    return (_AsyncInitCapture if coroutine else InitCapture)(fn, star, initializer, initargs)


def call_here(call: _Capture, item: Any) -> Any:
    """One item in this thread, whatever the function's kind (a broken pool's leftovers)."""
    value = call(item)
    if isinstance(call, _AsyncCapture):
        import asyncio

        value = asyncio.run(value)
    return value
