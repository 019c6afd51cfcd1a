"""The backend protocol and the executor registry.

A backend runs chunks of items on one kind of executor. Adding an executor is one class with a
``name`` and a ``summary``, decorated with :func:`register`; the runner, the CLI's ``executors``
command and the contract tests pick it up from the registry.

Life of a backend in one trial (the runner times each step)::

    backend = Cls(fn, workers)        # nothing started yet
    backend.start()                   # pool creation: counted in the trial's start-up
    for record in backend.run(chunks):    # ChunkRecords in completion order
        ...
    backend.close()                   # shutdown and join: the trial's teardown
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from .._errors import UsageError
from ..measure.probe import Chunk, ChunkRecord

__all__ = ["REGISTRY", "Backend", "get_backend", "register"]


class Backend(ABC):
    """One way of running items. Subclasses set ``name``, ``summary`` and ``family``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    # "serial", "thread", "async" (coroutines on one event loop), "interpreter" (subinterpreters:
    # one process, a GIL each) or "process": how workers share memory
    family: ClassVar[str]
    in_process: ClassVar[bool] = True  # workers share the parent's address space
    # Whether --timeout, --trial-timeout and --max-memory can stop items (limits.py): not where
    # stopping one means killing a worker that someone else's scheduler then restarts (dask).
    stops_items: ClassVar[bool] = True
    # CPU that a child process spent before the trial began (another interpreter's start-up,
    # see backends/elsewhere.py): the runner takes it off the reaped children's CPU.
    untimed_cpu_s: float = 0.0
    # Whether this process's own CPU and peak memory during the trial are the executor's: not
    # where poolscope only talks to a child that runs the executor (backends/elsewhere.py).
    counts_own_usage: ClassVar[bool] = True
    # The signal a broken pool of this executor stops its other workers with (faults.py tells
    # the worker that died first by another one), None when it stops none itself.
    cleanup_signal: ClassVar[int | None] = None
    # Where the executor runs in a child process (backends/elsewhere.py), the child's clock
    # readings (perf_counter_ns) of when it began the trial, sent its last record and closed:
    # the trial is timed from them, so talking to the child is not part of the executor's time.
    started_ns: int | None = None
    last_record_ns: int | None = None
    closed_ns: int | None = None

    def __init__(self, fn: Callable[[Any], Any], workers: int) -> None:
        self.fn = fn
        self.workers = workers
        # Each worker process's CPU at its last report, so a reused pool is not counted twice.
        self.cpu_reported: dict[int, float] = {}
        # Executors with addressable workers (dask) describe each one here, keyed by the
        # address the records carry in ChunkRecord.worker: host, pid, clock offset and its
        # uncertainty, whether it was lost. The runner copies them into TrialResult.worker_info.
        self.worker_info: dict[str, dict[str, Any]] = {}
        # Trouble the executor recovered from during a trial (a worker lost, its chunks re-run):
        # {"item": None, "kind": ..., "message": ...}; the runner moves them into the trial's
        # errors after each run, so the trial is "partial" and the CLI exits 1.
        self.incidents: list[dict[str, Any]] = []
        # Worker processes' CPU so far (seconds, by pid) and peak RSS (bytes) read when the
        # pool closed, after their last record: a child's own work past its records (closing
        # its executor), and a peak its records cannot tell (see _child.py).
        self.closing_cpu: dict[int, float] = {}
        self.closing_rss: dict[int, int] = {}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this executor cannot run here, or None when it can."""
        return None

    @classmethod
    def prepare_run(cls, fn: Callable[[Any], Any]) -> dict[str, Any] | None:
        """Once per run, before any trial: raise a UsageError saying why when this executor
        cannot run ``fn``; return facts about the interpreter that runs it (recorded in the
        run's environment under "interpreters"), or None."""
        return None

    @classmethod
    def effective_workers(cls, requested: int) -> int:
        """How many workers really run for a requested count."""
        return requested

    def stage(self, chunks: Sequence[Chunk]) -> None:
        """Before the trial's clock starts: hand the trial's chunks over where that takes time
        of its own (a child process), so that ``run`` need only name them."""
        return None

    @abstractmethod
    def start(self) -> None:
        """Create the pool (workers may start lazily on first use)."""

    @abstractmethod
    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        """Run every chunk, yielding each record as its chunk completes."""

    @abstractmethod
    def close(self) -> None:
        """Shut the pool down and wait for its workers; safe to call twice."""

    @classmethod
    def begin_run(cls) -> None:
        """Before a run's trials: from now on, what a trial started may be kept for the next
        one (until ``end_run``)."""
        return None

    @classmethod
    def end_run(cls) -> None:
        """Once the run's trials are done: stop what was kept for a next trial."""
        return None

    def worker_processes(self) -> dict[int, Any]:
        """The pool's worker processes on this host by pid, each with an ``exitcode`` (None
        while it runs); empty for executors without worker processes of their own."""
        return {}


REGISTRY: dict[str, type[Backend]] = {}


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make an executor available under ``cls.name``."""
    if cls.name in REGISTRY:
        raise ValueError(f"executor {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls
    return cls


def resolve(name: str, isolate: bool = False) -> type[Backend]:
    """The backend that runs executor ``name``: ``NAME@/path/to/python`` in a child process of
    that interpreter; with ``isolate``, an in-process executor in a child process of this one
    (backends/elsewhere.py), so that a crash in the function cannot end poolscope."""
    cls = get_backend(name)
    if isolate and cls.in_process:
        from .elsewhere import isolated

        return isolated(name)
    return cls


def get_backend(name: str) -> type[Backend]:
    """The backend class for an executor name; a UsageError naming the choices otherwise.

    ``NAME@/path/to/python`` is executor NAME run in a child process of that interpreter.
    """
    try:
        if "@" in name:
            from .elsewhere import backend_for

            cls = backend_for(name)
        else:
            cls = REGISTRY[name]
    except KeyError:
        choices = ", ".join(REGISTRY)
        raise UsageError(f"unknown executor {name!r}; choose from {choices}") from None
    reason = cls.unavailable_reason()
    if reason:
        raise UsageError(f"executor {name!r} is not available here: {reason}")
    return cls
