"""The loky executor: loky's reusable process pool (``pip install 'poolscope[loky]'``).

loky (the pool under joblib) starts its workers with fork + exec, as spawn does, and keeps one
executor per thread, handed out again by every ``get_reusable_executor`` call (resized to the
requested worker count when it differs). The function goes to each worker once, as in
processes.py: cloudpickle bytes in the pool's initializer, then ``run_installed_chunk`` per chunk.

**Start and close.** ``start()`` gets the reusable executor and ``close()`` shuts it down, so
each trial starts fresh workers, and start-up and CPU are measured as for every other process
executor. With ``--reuse-pool`` (``Plan.reuse_pool``) the runner keeps it across a
configuration's trials — how joblib uses loky: start-up is then paid once. ``run()`` asks loky
for the executor again, so a configuration with another worker count that resized the shared
executor in between gets its own count back (loky resizes it; the resize is in that trial's
start-up).

**CPU.** Workers report their process's CPU so far with every chunk. The reading each worker
pid had at the end of earlier trials is kept per executor instance (shared by every backend
that is handed the same reusable executor), so a reused worker's CPU is counted once.

**A dead worker.** loky raises ``TerminatedWorkerError`` for the futures of a worker that
ended; it becomes :class:`poolscope.WorkerDiedError` naming the pid (when loky still lists it)
and the exit code or signal. The trial is recorded as failed with every item that finished;
the executor is broken, so ``close()`` kills what is left and the next trial gets a new one.

Note: the reusable executor is loky's per-thread singleton. Another loky user in the same
thread (not joblib, which vendors its own copy) shares it, and a trial shuts it down.
"""

from __future__ import annotations

import importlib.util
import re
import signal
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from typing import Any

from .._errors import WorkerDiedError
from ..families import PROCESS
from ..measure.faults import describe_exit
from ..measure.lifetime import end_pool
from ..measure.probe import Chunk, ChunkRecord
from ..measure.shipping import install_function, run_installed_chunk
from ._base import register
from ._futures import FuturesBackend, records_as_completed
from .processes import _ProcessMixin, _unguarded_main_hidden

__all__ = ["LokyBackend"]

# Each executor instance's worker CPU readings (pid -> CPU seconds at its last report).
_REPORTED: weakref.WeakKeyDictionary[Any, dict[int, float]] = weakref.WeakKeyDictionary()

IDLE_TIMEOUT_S = 300  # workers idle this long exit on their own (loky's default is 10 s)


@register
class LokyBackend(_ProcessMixin, FuturesBackend):
    name = "loky"
    summary = "loky's reusable process pool (the one under joblib): fork + exec workers"
    family = PROCESS
    in_process = False
    cleanup_signal = signal.SIGKILL  # a broken loky executor kills the rest

    _finished = False
    _launched: dict[int, Any] = {}  # noqa: RUF012 (replaced, never changed in place)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("loky") is None:
            return "loky is not installed: pip install 'poolscope[loky]'"
        return None

    def make_executor(self) -> Executor:
        from loky import get_reusable_executor

        # An argument that differs from the executor loky holds (another function) makes
        # loky shut that one down and start a new one.
        executor = get_reusable_executor(
            max_workers=self.workers, timeout=IDLE_TIMEOUT_S, initializer=install_function,
            initargs=self.initargs())
        self.cpu_reported = _REPORTED.setdefault(executor, {})
        return executor

    def task(self) -> Any:
        return run_installed_chunk

    def launching(self) -> Any:
        return _unguarded_main_hidden()  # workers are spawned (re-import __main__) on submit

    def function_payload(self) -> bytes:
        """Pickled once per backend: loky compares it to decide whether to reuse its pool."""
        payload: bytes | None = self.__dict__.get("_payload")
        if payload is None:
            payload = self._payload = super().function_payload()
        return payload

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        from loky.process_executor import TerminatedWorkerError

        assert self._executor is not None, "start() first"
        self._finished = False
        # The same executor, resized back if another configuration changed its worker count.
        executor = self._executor = self.make_executor()
        task = self.task()
        with self.launching():  # loky starts missing workers inside submit()
            futures = [executor.submit(task, chunk) for chunk in chunks]
        workers = self._launched = self.worker_processes()  # loky forgets a dead one
        try:
            yield from records_as_completed(futures)
        except TerminatedWorkerError as exc:
            raise WorkerDiedError(f"{_dead_worker(workers, exc)} while running items; "
                                  "its chunk's items are lost") from None
        self._finished = True

    def worker_processes(self) -> dict[int, Any]:
        return {**self._launched, **(getattr(self._executor, "_processes", None) or {})}

    def close(self) -> None:
        """Shut the executor down with a deadline (lifetime.end_pool)."""
        executor = self._executor
        if executor is None:
            return
        processes = self.worker_processes()
        self._executor = None
        # After a dead worker or an interrupt, waiting for busy workers could take forever.
        kill = not self._finished
        end_pool(processes, lambda: executor.shutdown(  # type: ignore[call-arg]
            wait=True, kill_workers=kill), self.incidents)


def _dead_worker(workers: dict[int, Any], exc: BaseException) -> str:
    """"worker pid 1234 ended (exit code 7)": from the workers, else from loky's message."""
    for pid, process in workers.items():
        code = getattr(process, "exitcode", None)
        if code is not None:
            return f"worker pid {pid} ended ({describe_exit(code)})"
    found = re.search(r"exit codes of the workers are \{([^}]*)\}", str(exc))
    codes = [int(c) for c in re.findall(r"\((-?\d+)\)", found.group(1))] if found else []
    if codes:
        return "a worker ended (" + ", ".join(describe_exit(c) for c in codes) + ")"
    return "a worker ended"
