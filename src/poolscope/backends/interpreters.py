"""Subinterpreters: the ``interpreter`` executor.

Each worker is an isolated subinterpreter — its own GIL, its own modules — driven by one OS
thread of this process, so pure-Python loops run in parallel without a second process::

    parent thread k                                 subinterpreter k (own GIL)
    ---------------                                 --------------------------
    create("isolated"), sys.path, cloudpickle(fn) ─> poolscope.measure._subinterp.setup: unpickle fn
    pickle(Chunk)  ── exec(_task, shared bytes) ───> run_chunk(fn, chunk)
    ChunkRecord    <── cross-interpreter queue ────  pickle(ChunkRecord)

Drivers: Python 3.14+ uses the documented ``concurrent.futures.InterpreterPoolExecutor``; 3.13
uses the low-level ``_interpreters`` and ``_interpqueues`` modules directly (one thread and one
``create("isolated")`` interpreter per worker). The PyPI backport (interpreters-pep-734 0.5.0)
is not used: on 3.12 its C part crashes the interpreter (docs/interpreters.md), and on 3.13 it
wraps these same modules. It pickles the function by reference with plain pickle and unpickles
it in the subinterpreter outside the block that reports exceptions, so a function the
subinterpreter cannot import — one defined in ``__main__``, or in a module found only through a
``sys.path`` entry added at run time — queues no result, and the worker thread loops for ever
on ``_interpqueues.get`` catching QueueEmpty: a hang that burns a whole core (3.05 s of CPU in
3 s measured), which halves what two workers can reach. With importable functions its isolated
interpreters do run in parallel, as fast as this executor's (docs/interpreters.md).

The function travels as cloudpickle bytes, as to process workers: importable functions by
reference (the subinterpreter imports their module, with this process's ``sys.path``), lambdas,
closures and ``__main__`` functions by value. What cannot be pickled, or needs an extension
module that does not support subinterpreters, is refused with the reason.

Per-item records: ``perf_counter_ns`` is system-wide, ``thread_time_ns`` is the CPU of the
worker's OS thread, ``pid`` is this process and ``tid`` the worker's thread.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import pickle
import platform
import queue
import sys
import threading
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from typing import Any

from .._errors import PoolscopeError, UsageError
from ..families import INTERPRETER
from ..measure.probe import Chunk, ChunkRecord
from ._base import Backend, register
from ._futures import records_as_completed

__all__ = ["InterpreterBackend", "InterpreterError", "function_payload"]

MIN_VERSION = (3, 13)
PROTOCOL = 5
UNBOUND = 2  # _interpqueues: items left by a destroyed interpreter are an error


class InterpreterError(PoolscopeError):
    """A subinterpreter could not be set up, load the function, or run a chunk."""


def function_payload(fn: Any) -> bytes:
    """The function as cloudpickle bytes, or a UsageError saying why it cannot be shared."""
    try:
        import cloudpickle
    except ImportError:
        raise UsageError("the interpreter executor needs cloudpickle: pip install cloudpickle"
                         ) from None
    try:
        return cloudpickle.dumps(fn, protocol=PROTOCOL)
    except Exception as exc:
        raise UsageError(
            "the function cannot be shared into a subinterpreter: subinterpreters share no "
            "objects, so it and everything it refers to (globals, closure cells, default "
            f"arguments) must be picklable, and pickling failed with {type(exc).__name__}: "
            f"{exc}") from None


def _driver() -> str | None:
    if sys.version_info >= (3, 14):
        try:
            from concurrent.futures import InterpreterPoolExecutor  # noqa: F401
        except ImportError:
            return None
        return "concurrent.futures.InterpreterPoolExecutor"
    if sys.version_info >= MIN_VERSION:
        try:
            import _interpqueues  # noqa: F401  # type: ignore[import-not-found]
            import _interpreters  # noqa: F401  # type: ignore[import-not-found]
        except ImportError:
            return None
        return "_interpreters (isolated: each subinterpreter has its own GIL)"
    return None


def fork_conflict(executors: Sequence[str]) -> str | None:
    """Why these executors cannot keep their pools across trials (--reuse-pool), or None.

    CPython 3.13 cannot fork while subinterpreters exist: the forked workers die with "Fatal
    Python error: PyThreadState_Get". A pool of ``interpreter`` kept alive while a fork-based
    process pool starts would break it; without reuse each trial's pool is gone before the
    next trial starts.
    """
    import multiprocessing

    from ._base import REGISTRY

    if "interpreter" not in executors:
        return None
    default = multiprocessing.get_start_method(allow_none=True) or \
        multiprocessing.get_context().get_start_method()
    def start_method(name: str) -> str | None:  # None: not a multiprocessing pool of this process
        if name not in REGISTRY:  # NAME@PATH: its workers are another process's
            return None
        method = getattr(REGISTRY[name], "start_method", "")
        return default if method is None else method or None

    forking = [name for name in executors if start_method(name) == "fork"]
    if not forking:
        return None
    return (f"--reuse-pool cannot keep interpreter's subinterpreters alive while "
            f"{', '.join(forking)} fork workers (forking with subinterpreters alive kills the "
            "forked process); drop --reuse-pool, or use process-spawn or process-forkserver")


def _task() -> None:  # pragma: no cover - its code object runs in a subinterpreter's __main__
    _poolscope_worker.run(_poolscope_chunk)  # type: ignore[name-defined]  # noqa: F821


_SETUP = """\
import sys
sys.path[:] = _poolscope_path.split("\\0")
import poolscope.measure._subinterp as _poolscope_worker
_poolscope_worker.setup(_poolscope_queue, _poolscope_path, _poolscope_function)
"""


def _failure_text(excinfo: Any) -> str:
    return str(getattr(excinfo, "formatted", None) or getattr(excinfo, "msg", None) or excinfo)


class _Pool313:
    """Python 3.13: one thread per isolated subinterpreter, chunks handed out from a queue."""

    def __init__(self, workers: int, payload: bytes) -> None:
        self.payload = payload
        self.path = "\0".join(p or "." for p in sys.path)
        self.tasks: queue.SimpleQueue[Chunk | None] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.ready: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._work, name=f"poolscope-interpreter-{k}")
                        for k in range(workers)]
        for thread in self.threads:
            thread.start()
        # The threads are not daemons (a subinterpreter must not be frozen mid-run at exit): a
        # pool its owner never closed is closed before the interpreter joins them, as
        # concurrent.futures does for its own pools.
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            pool = weakref.ref(self)
            with contextlib.suppress(RuntimeError):  # already shutting down
                register(lambda: (p := pool()) is not None and p.close())
        # Every subinterpreter is created and has loaded the function before start() returns
        # (in parallel, one per thread): with --reuse-pool that start-up is paid once.
        try:
            failures = [f for f in (self.ready.get() for _ in self.threads) if f is not None]
        except BaseException:  # Ctrl-C while starting: stop the threads, they are not daemons
            self.close()
            raise
        if failures:
            self.close()
            raise InterpreterError(failures[0])

    def _work(self) -> None:
        import _interpqueues  # type: ignore[import-not-found]
        import _interpreters  # type: ignore[import-not-found]

        interp = qid = None
        try:
            interp = _interpreters.create(_interpreters.new_config("isolated"))
            qid = _interpqueues.create(0, 0, UNBOUND)
            failure = _interpreters.exec(interp, _SETUP, {
                "_poolscope_path": self.path, "_poolscope_queue": qid,
                "_poolscope_function": self.payload})
            if failure is not None:
                self.ready.put(f"setting up a subinterpreter failed: {_failure_text(failure)}")
                return
            message = pickle.loads(_interpqueues.get(qid)[0])
            self.ready.put(None if message[0] == "ready" else message[1])
            if message[0] != "ready":
                return
            while (chunk := self.tasks.get()) is not None:
                failure = _interpreters.exec(
                    interp, _task, {"_poolscope_chunk": pickle.dumps(chunk, PROTOCOL)})
                if failure is not None:
                    self.results.put(("error", f"a subinterpreter failed: "
                                               f"{_failure_text(failure)}"))
                    return
                self.results.put(pickle.loads(_interpqueues.get(qid)[0]))
        except BaseException as exc:  # reported to start() or run(), never lost in a thread
            text = f"a subinterpreter worker failed: {type(exc).__name__}: {exc}"
            self.ready.put(text)  # read only while starting
            self.results.put(("error", text))
        finally:
            if qid is not None:
                _interpqueues.destroy(qid)
            if interp is not None:
                _interpreters.destroy(interp)

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        for chunk in chunks:
            self.tasks.put(chunk)
        for _ in chunks:
            message = self.results.get()
            if message[0] != "record":
                raise InterpreterError(message[1])
            yield message[1]

    def close(self) -> None:
        while True:  # chunks not started yet (an interrupt, a failure) are dropped
            try:
                self.tasks.get_nowait()
            except queue.Empty:
                break
        for _ in self.threads:
            self.tasks.put(None)
        for thread in self.threads:
            thread.join()


class _Pool314:
    """Python 3.14+: the documented concurrent.futures.InterpreterPoolExecutor."""

    def __init__(self, workers: int, payload: bytes) -> None:
        from concurrent.futures import InterpreterPoolExecutor

        from ..measure._subinterp import run_payload_chunk

        self.executor: Executor = InterpreterPoolExecutor(
            workers, thread_name_prefix="poolscope-interpreter")
        self.task = functools.partial(run_payload_chunk, payload, tuple(sys.path))

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        yield from records_as_completed([self.executor.submit(self.task, chunk)
                                         for chunk in chunks])

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


@register
class InterpreterBackend(Backend):
    name = "interpreter"
    summary = ("subinterpreters, each with its own GIL, one thread each: parallel Python in "
               "one process (3.13+)")
    family = INTERPRETER

    _pool: _Pool313 | _Pool314 | None = None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if sys.version_info < MIN_VERSION:
            return (f"needs Python 3.13+ (subinterpreters with their own GIL; the PyPI "
                    f"backport crashes 3.12, see docs/interpreters.md); this is Python "
                    f"{platform.python_version()} — run it under one as "
                    "interpreter@/path/to/python3.13")
        if _driver() is None:
            return "this Python build has no subinterpreter support (_interpreters)"
        if importlib.util.find_spec("cloudpickle") is None:
            return "needs cloudpickle to send the function: pip install cloudpickle"
        return None

    @classmethod
    def prepare_run(cls, fn: Any) -> dict[str, Any] | None:
        function_payload(fn)  # refuse, with the reason, a function that cannot be shared
        return {"executor": cls.name, "python": platform.python_version(),
                "subinterpreters": _driver(), "own_gil": True}

    def start(self) -> None:
        try:
            payload = function_payload(self.fn)
        except UsageError as exc:  # run_trial records it; the API refuses it before any trial
            raise InterpreterError(str(exc)) from None
        pool = _Pool314 if sys.version_info >= (3, 14) else _Pool313
        self._pool = pool(self.workers, payload)

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        assert self._pool is not None, "start() first"
        yield from self._pool.run(chunks)

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()
