"""The backend protocol and the executor registry.

A backend runs chunks of items on one kind of executor. Adding one is a class with a ``name``,
a ``summary`` and a ``family`` (families.py), three methods, and :func:`register`; the runner,
the CLI's ``executors`` command and the contract tests pick it up from the registry. What
follows from how its workers share memory (whether items are pickled to reach them, whether
threads take turns on the GIL, its place in the verdict's order of simplicity) is asked of its
family; nothing outside this package switches on executor names. docs/executors.md adds an
executor of a new family, worked through.

Life of a backend in one trial (the runner times each step)::

    backend = Cls(fn, workers)        # nothing started yet
    backend.start()                   # pool creation: counted in the trial's start-up
    for record in backend.run(chunks):    # ChunkRecords in completion order
        ...
    backend.close()                   # shutdown and join: the trial's teardown

Everything else has a default: ``worker_processes`` (for the fault report and the limits, where
workers are processes), ``stage``, ``begin_run``/``end_run``, ``prepare_run``,
``unavailable_reason``, ``effective_workers``, and for an executor that runs on a cluster
(``scheduled``) ``scheduler_address`` and ``using_scheduler``. A backend that runs its executor
in a child process reports what it read there in one :class:`ChildReadings` (``Backend.child``).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .._errors import UsageError
from ..families import Family
from ..measure.probe import Chunk, ChunkRecord

__all__ = ["REGISTRY", "Backend", "ChildReadings", "get_backend", "register",
           "resolve"]


class Backend(ABC):
    """One way of running items. Subclasses set ``name``, ``summary`` and ``family``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    # How the workers share memory (families.py: serial, thread, async, interpreter, process,
    # cluster), and what follows from it: whether items are pickled, threads take turns, …
    family: ClassVar[Family]
    in_process: ClassVar[bool] = True  # workers share the parent's address space
    # Whether --timeout, --trial-timeout and --max-memory can stop items (limits.py): not where
    # stopping one means killing a worker that someone else's scheduler then restarts (dask).
    stops_items: ClassVar[bool] = True
    # The signal a broken pool of this executor stops its other workers with (faults.py tells
    # the worker that died first by another one), None when it stops none itself.
    cleanup_signal: ClassVar[int | None] = None
    # Whether it runs on a cluster behind a scheduler, one that --scheduler may name (dask).
    scheduled: ClassVar[bool] = False
    # What a child process that runs the executor read there (backends/elsewhere.py); None
    # where the executor runs here, and this process's clock, CPU and memory are its own.
    child: ChildReadings | None = None

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

    @classmethod
    def scheduler_address(cls, given: str | None = None) -> str | None:
        """For a ``scheduled`` executor, the scheduler its trials use: ``given`` (checked), else
        its own default; None for a cluster of its own per trial, or no cluster at all."""
        return None

    @classmethod
    def using_scheduler(cls, address: str | None) -> contextlib.AbstractContextManager[None]:
        """Within the block, this executor's trials run on the cluster at ``address``."""
        return contextlib.nullcontext()

    def worker_processes(self) -> dict[int, Any]:
        """The pool's worker processes on this host by pid, each with an ``exitcode`` (None
        while it runs); empty for executors without worker processes of their own."""
        return {}


@dataclass
class ChildReadings:
    """What a backend that runs its executor in a child process (backends/elsewhere.py) reads
    there: the trial is timed from the child's clock and its CPU and memory are the child's, so
    talking to the child is not part of the executor's time."""

    # The child's clock (perf_counter_ns) when it began the trial, sent its last record and
    # closed its executor.
    started_ns: int | None = None
    last_record_ns: int | None = None
    closed_ns: int | None = None
    # CPU the child spent before the trial began (another interpreter's start-up): taken off
    # the reaped children's CPU.
    untimed_cpu_s: float = 0.0
    # The child's CPU so far (seconds, by pid) and peak RSS (bytes) read when it closed, after
    # its last record: its own work past its records, and a peak its records cannot tell.
    closing_cpu: dict[int, float] = field(default_factory=dict)
    closing_rss: dict[int, int] = field(default_factory=dict)


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
