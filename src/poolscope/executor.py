"""``poolscope.Executor``: a ``concurrent.futures.Executor`` whose ``map`` picks its own executor.

``map`` runs the same calibration as ``poolscope.map`` (automap.py) in a background thread, as
soon as it is called: the first items run under each candidate configuration, the rest on the
one the work showed best, and the results come back in item order as they are done. Each call of
``map`` decides afresh; ``decision`` is the latest decision.

``submit`` cannot calibrate (one call is no sample), so it follows the latest decision: before
any ``map`` has decided, or when threads were chosen, a thread pool of ``max_workers`` (threads
can run any callable, with nothing to pickle); a process pool of the decided size when
processes were; one worker thread when serial was. These pools run ``initializer`` in each of
their workers as the standard pools do (a process pool's workers also cap their native threads
at ``native_threads``; a thread's cap is the process's, capped only while a map runs).
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from .automap import (
    DEFAULT_BUDGET_S,
    MapDecision,
    _AutoMap,
    _check_options,
    _initargs,
    _options,
)
from .backends import REGISTRY
from .environment import usable_cores
from .families import THREAD
from .map_call import Raised
from .map_record import StoreOption, open_record
from .measure import native
from .measure.probe import is_coroutine_function

__all__ = ["Executor"]

MAX_READY = 100_000  # results done but not yet read: the map's work waits beyond this


class Executor(concurrent.futures.Executor):
    """A ``concurrent.futures.Executor`` that picks serial, threads or processes while doing
    the work of each ``map`` (see the module's docstring).

    ``max_workers``: workers of every pool (default: as ``poolscope.map`` sizes them: threads
    from what the items keep busy, one process per usable core; ``submit`` before any map:
    ThreadPoolExecutor's); ``executors``: the candidates (default serial, thread,
    process-pool); ``budget``: each map's calibration seconds, at most; ``store``: where each
    map is recorded as a run (see ``poolscope.map``).

    ``chunksize``: each map's items per task on a pool (default: calibration sizes them; a
    ``map(..., chunksize=N)`` above 1 overrides it); ``initializer(*initargs)``: run once in
    each worker before its first item, in maps' workers and submit's pools alike (when it
    raises, that worker's items fail with InitializerFailed); ``native_threads``: cap native
    thread pools (BLAS, OpenMP) at that many threads: this process's while a map runs, each
    worker process's for its life; ``progress``: show each map's items done on stderr. As in
    ``poolscope.map``.
    """

    def __init__(self, max_workers: int | None = None, *,
                 executors: Sequence[str] | str | None = None,
                 budget: float = DEFAULT_BUDGET_S, chunksize: int | None = None,
                 initializer: Callable[..., Any] | None = None, initargs: Iterable[Any] = (),
                 native_threads: int | None = None, progress: bool = False,
                 store: StoreOption = True) -> None:
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")  # as the standard pools say
        self._initargs = _initargs(initargs)
        self._names = _check_options(executors, max_workers, budget, chunksize,
                                     initializer=initializer, native_threads=native_threads)
        self._executors = executors
        self._max_workers = max_workers
        self._budget = float(budget)
        self._chunksize = chunksize
        self._initializer = initializer
        self._native_threads = native_threads
        self._progress = progress
        self._store = store
        self._lock = threading.Lock()
        self._shutdown = False
        self._maps: set[_MapRun] = set()
        self._pools: dict[tuple[str, int], concurrent.futures.Executor] = {}
        self.decision: MapDecision | None = None
        self.decisions: list[MapDecision] = []  # every map's, oldest first

    # --- map -------------------------------------------------------------------------------
    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any],
            timeout: float | None = None, chunksize: int = 1) -> Iterator[Any]:
        """Like ``Executor.map``: the work starts now, the results are yielded in order, an
        item's exception is raised when its result is reached, and ``timeout`` (seconds from
        this call) raises TimeoutError for a result not ready in time. ``chunksize`` above 1
        fixes the items per task; 1 (the default) takes the executor's ``chunksize``, or lets
        the calibration size them. The items are read lazily, a window ahead of the work."""
        if not iterables:
            raise TypeError("map() needs at least one iterable")
        end = None if timeout is None else time.monotonic() + timeout
        star = len(iterables) > 1
        items = zip(*iterables, strict=False) if star else iterables[0]
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            run = _MapRun(self, fn, items, star,
                          chunksize if chunksize > 1 else self._chunksize)
            self._maps.add(run)
        run.start()
        return run.results(end)

    def _decided(self, decision: MapDecision) -> None:
        with self._lock:
            self.decision = decision
            self.decisions.append(decision)

    def _ended(self, run: _MapRun) -> None:
        with self._lock:
            self._maps.discard(run)

    # --- submit ----------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
               ) -> concurrent.futures.Future[Any]:
        """Run ``fn(*args, **kwargs)`` on the pool the latest decision names (see the module's
        docstring); a Future of its result."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            pool = self._submit_pool()
            return pool.submit(fn, *args, **kwargs)

    def _submit_pool(self) -> concurrent.futures.Executor:
        decision = self.decision
        family = THREAD  # submit's pools: processes, or threads for everything else
        workers = self._max_workers or min(32, usable_cores() + 4)
        if decision is not None and decision.executor:
            chosen = REGISTRY.get(decision.executor)
            family = chosen.family if chosen is not None else THREAD
            workers = decision.workers
        key = (str(family), workers)
        pool = self._pools.get(key)
        if pool is None:
            if family.own_processes:
                pool = concurrent.futures.ProcessPoolExecutor(
                    workers, initializer=_process_initializer,
                    initargs=(self._native_threads, self._initializer, self._initargs))
            else:
                pool = concurrent.futures.ThreadPoolExecutor(
                    workers if family.pooled else 1, thread_name_prefix="poolscope-submit",
                    initializer=self._initializer, initargs=self._initargs)
            self._pools[key] = pool
        return pool

    # --- shutdown --------------------------------------------------------------------------
    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """As ``Executor.shutdown``: no new work; ``cancel_futures`` cancels submitted calls
        not yet started and stops each map after its running batch (its results not done
        then raise CancelledError); ``wait`` waits for what still runs."""
        with self._lock:
            self._shutdown = True
            maps, pools = list(self._maps), list(self._pools.values())
        for run in maps:
            if cancel_futures:
                run.cancel()
            run.unbounded()  # no reader may come: the work must not wait for one
        for pool in pools:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)
        if wait:
            for run in maps:
                run.join()


class _MapRun:
    """One ``Executor.map``: its calibrated work in a thread, its results in a queue."""

    def __init__(self, executor: Executor, fn: Callable[..., Any], items: Iterable[Any],
                 star: bool, chunksize: int | None) -> None:
        self.executor = executor
        self.ready: collections.deque[Any] = collections.deque()
        self.changed = threading.Condition()
        self.done = False
        self.bounded = True  # the work waits while MAX_READY results are unread
        self.error: BaseException | None = None
        names = (_check_options(executor._executors, executor._max_workers, executor._budget,
                                fn=fn) if is_coroutine_function(fn) else executor._names)
        initializer, initargs = executor._initializer, executor._initargs
        record = open_record(executor._store, fn, list(names), _options(
            names, executor._max_workers, star, executor._budget, chunksize, initializer,
            initargs, executor._native_threads, executor._progress))
        self.automap = _AutoMap(fn, items, names, executor._max_workers, star,
                                executor._budget, self._take, chunksize,
                                on_decision=executor._decided, record=record,
                                initializer=initializer, initargs=initargs,
                                native_threads=executor._native_threads,
                                progress=executor._progress)
        self.thread = threading.Thread(target=self._work, name="poolscope-map", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self) -> None:
        self.thread.join()

    def unbounded(self) -> None:
        with self.changed:
            self.bounded = False
            self.changed.notify_all()

    def cancel(self) -> None:
        with self.changed:
            self.automap.stopping = True
            self.changed.notify_all()

    def _take(self, values: list[Any]) -> None:
        with self.changed:
            self.ready.extend(values)
            self.changed.notify_all()
            while len(self.ready) > MAX_READY and self.bounded and not self.automap.stopping:
                self.changed.wait()  # the reader is behind: bounded memory

    def _work(self) -> None:
        try:
            self.automap.work()
        except BaseException as exc:  # the items' iterator failed, or poolscope did
            self.error = exc
        finally:
            with self.changed:
                self.done = True
                self.changed.notify_all()
            self.executor._ended(self)

    def results(self, end: float | None) -> Iterator[Any]:
        try:
            while True:  # the value is never a local here: a result read is the reader's alone
                yield self._next(end)
        except _End:
            return
        finally:  # read to the end, failed, timed out or dropped: no more batches start
            with self.changed:
                self.automap.stopping = True
                self.changed.notify_all()

    def _next(self, end: float | None) -> Any:
        with self.changed:
            while not self.ready and not self.done:
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                self.changed.wait(left)
            if self.ready:
                value = self.ready.popleft()
                self.changed.notify_all()
            elif self.error is not None:
                raise self.error
            elif not self.automap.finished:  # stopped by shutdown(cancel_futures)
                raise concurrent.futures.CancelledError
            else:
                raise _End
        if type(value) is Raised:
            raise value.exc
        return value


def _process_initializer(native_threads: int | None, initializer: Callable[..., Any] | None,
                         initargs: tuple[Any, ...]) -> None:
    """submit's process pool workers: the native thread cap, then the user's initializer."""
    native.limit(native_threads)
    if initializer is not None:
        initializer(*initargs)


class _End(Exception):
    """The map's results are all read."""
