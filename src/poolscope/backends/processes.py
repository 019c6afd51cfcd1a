"""Process executors: ProcessPoolExecutor under each start method, and multiprocessing.Pool.

The function goes to each worker once, as cloudpickle bytes in the pool's initializer::

    parent                                         worker process
    ------                                         --------------
    cloudpickle.dumps(fn) ── initializer ───────>  install_function(payload)
    Chunk(first, items)   ── pickled task ──────>  run_installed_chunk(chunk)
    ChunkRecord           <── pickled result ───   (arrays, results, pid, CPU, peak RSS)
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import re
import signal
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager
from multiprocessing.pool import Pool
from typing import Any, ClassVar

from .._errors import WorkerDiedError
from ..families import PROCESS
from ..measure.faults import describe_exit
from ..measure.lifetime import end_pool
from ..measure.native import first_report, preload, worker_cap
from ..measure.probe import Chunk, ChunkRecord
from ..measure.shipping import install_function, run_installed_chunk
from ._base import Backend, register
from ._futures import FuturesBackend

__all__ = [
    "ProcessBackend",
    "ProcessForkBackend",
    "ProcessForkserverBackend",
    "ProcessPoolBackend",
    "ProcessSpawnBackend",
]


_MAIN_GUARD = re.compile(r"""^\s*if\s+__name__\s*==\s*['"]__main__['"]\s*:""", re.MULTILINE)


def _main_reimport_is_unsafe() -> bool:
    """Whether spawn workers would re-run the parent's whole script.

    Spawn and forkserver workers re-import the parent's ``__main__`` file. A script without an
    ``if __name__ == "__main__":`` guard would then rerun its experiment in every worker (plain
    multiprocessing refuses with "An attempt has been made to start a new process before ...").
    poolscope ships the function by value, so such workers do not need ``__main__`` at all.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or getattr(getattr(main, "__spec__", None), "name", None):
        return False  # a notebook, `python -c`, or `python -m pkg` (importable by name)
    if not os.path.isfile(path):
        return True  # `python - < script` names its main "<stdin>", which workers cannot run
    try:
        with open(path, encoding="utf-8") as f:
            return not _MAIN_GUARD.search(f.read())
    except (OSError, UnicodeDecodeError):
        return False


@contextlib.contextmanager
def _unguarded_main_hidden() -> Iterator[None]:
    """While workers start, hide an unguarded ``__main__`` so they do not re-run it."""
    if not _main_reimport_is_unsafe():
        yield
        return
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")  # no __file__: nothing to re-run
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class _ProcessMixin:
    start_method: ClassVar[str | None] = None  # None: the platform's default
    fn: Callable[[Any], Any]

    @classmethod
    def unavailable_reason(cls) -> str | None:
        method = cls.start_method
        if method is not None and method not in multiprocessing.get_all_start_methods():
            return f"start method {method!r} is not supported on this platform"
        # Imported lazily: another interpreter's child (NAME@PATH) may lack it, and then only
        # the executors that send the function to workers are unavailable.
        if importlib.util.find_spec("cloudpickle") is None:
            return "needs cloudpickle to send the function to workers: pip install cloudpickle"
        return None

    def context(self) -> multiprocessing.context.BaseContext:
        return multiprocessing.get_context(self.start_method)

    _payload: bytes | None = None

    _report_pools = True  # a pool started again after a worker died reads them again

    def stage(self, chunks: Sequence[Chunk]) -> None:
        """Before the trial's clock: pickle the function for the workers' initializer (a bare
        pool does not; a function that cannot be pickled fails in ``start``, in the trial),
        and settle what the workers' reading of their native pools costs (native.py)."""
        with contextlib.suppress(Exception):
            self.function_payload()
        self._report_pools = first_report(chunks[0].board if chunks else "", self.name)
        if self._report_pools:
            preload()

    def initargs(self) -> tuple[Any, ...]:
        """``install_function``'s arguments for this trial's workers."""
        return self.function_payload(), worker_cap(), self._report_pools, os.getpid()

    def function_payload(self) -> bytes:
        import pickle

        import cloudpickle

        if self._payload is None:
            try:
                self._payload = cloudpickle.dumps(self.fn)
            except Exception as exc:
                raise pickle.PicklingError(
                    f"the function cannot be pickled to send it to worker processes: "
                    f"{type(exc).__name__}: {exc}") from None
        return self._payload

    def launching(self) -> AbstractContextManager[object]:
        if self.context().get_start_method() == "fork":
            return contextlib.nullcontext()
        return _unguarded_main_hidden()


BROKEN_POOL_JOIN_S = 5.0


@register
class ProcessBackend(_ProcessMixin, FuturesBackend):
    name = "process"
    summary = "concurrent.futures.ProcessPoolExecutor with the platform's default start method"
    family = PROCESS
    in_process = False
    cleanup_signal = signal.SIGTERM  # a broken ProcessPoolExecutor terminates the rest

    def make_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self.workers, mp_context=self.context(),
            initializer=install_function, initargs=self.initargs())

    def task(self) -> Callable[[Chunk], ChunkRecord]:
        return run_installed_chunk

    def worker_processes(self) -> dict[int, Any]:
        executor = self._executor
        manager = getattr(executor, "_executor_manager_thread", None)
        if manager is not None and getattr(executor, "_broken", False):
            # A broken pool's manager thread is still joining its workers. Reading an exit
            # code beside it races: under forkserver the second read of a worker's pipe
            # finds it closed, and multiprocessing then calls the exit code 255.
            manager.join(timeout=BROKEN_POOL_JOIN_S)
        return dict(getattr(executor, "_processes", None) or {})

    def close(self) -> None:
        """Shut the pool down with a deadline (lifetime.end_pool)."""
        executor = self._executor
        if executor is not None:
            processes = self.worker_processes()
            self._executor = None
            end_pool(processes, lambda: executor.shutdown(wait=True, cancel_futures=True),
                     self.incidents)


@register
class ProcessForkBackend(ProcessBackend):
    name = "process-fork"
    summary = "ProcessPoolExecutor, fork start method: workers copy the parent's memory"
    start_method = "fork"


@register
class ProcessSpawnBackend(ProcessBackend):
    name = "process-spawn"
    summary = "ProcessPoolExecutor, spawn start method: fresh interpreters, slow start"
    start_method = "spawn"


@register
class ProcessForkserverBackend(ProcessBackend):
    name = "process-forkserver"
    summary = "ProcessPoolExecutor, forkserver start method: forks from a clean server process"
    start_method = "forkserver"


WATCHDOG_POLL_S = 0.2


@register
class ProcessPoolBackend(_ProcessMixin, Backend):
    name = "process-pool"
    summary = "multiprocessing.Pool: the notebook's process pool"
    family = PROCESS
    in_process = False

    _pool: Pool | None = None
    _finished = False

    _watched: dict[int, Any]

    def _current_workers(self) -> dict[int, Any]:
        assert self._pool is not None
        return {p.pid: p for p in list(self._pool._pool)}  # type: ignore[attr-defined]

    def worker_processes(self) -> dict[int, Any]:
        """The workers started with the pool (a dead one stays, with its exit code) and any
        replacement the pool started since."""
        if self._pool is None:
            return {}
        return {**self._watched, **self._current_workers()}

    def _dead_worker(self) -> str | None:
        """multiprocessing.Pool replaces a dead worker and waits forever for its task: watch.

        Workers never exit on their own while tasks run (no maxtasksperchild), so a worker that
        has exited, or a replacement the pool started, means one died.
        """
        for pid, process in self._watched.items():
            if process.exitcode is not None:
                return f"worker pid {pid} ended ({describe_exit(process.exitcode)})"
        replacements = set(self._current_workers()) - set(self._watched)
        if replacements:
            return f"a worker ended and the pool replaced it with pid {min(replacements)}"
        return None

    def start(self) -> None:
        initargs = self.initargs()
        with self.launching():  # Pool starts its workers here
            self._pool = self.context().Pool(
                self.workers, initializer=install_function, initargs=initargs)
        self._watched = self._current_workers()

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        assert self._pool is not None, "start() first"
        self._finished = False  # a kept pool's earlier run finished; this one has not yet
        results = self._pool.imap_unordered(run_installed_chunk, chunks)
        for _ in range(len(chunks)):
            while True:
                try:
                    record = results.next(timeout=WATCHDOG_POLL_S)
                    break
                except multiprocessing.TimeoutError:
                    dead = self._dead_worker()
                    if dead:
                        raise WorkerDiedError(
                            f"{dead} while running items; its chunk's items are lost") from None
            yield record
        self._finished = True

    def close(self) -> None:
        """Shut the pool down with a deadline (lifetime.end_pool)."""
        pool = self._pool
        if pool is None:
            return
        processes = self.worker_processes()
        self._pool = None

        def shutdown() -> None:
            if self._finished:
                pool.close()
            else:  # a dead worker or an interrupt: waiting for the pool would wait forever
                pool.terminate()
            pool.join()

        end_pool(processes, shutdown, self.incidents)
