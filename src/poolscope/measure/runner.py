"""Plans trials and runs them: executors × worker counts × repeats, interleaved.

``Plan`` says what to run and checks it; ``run_plan`` runs its configurations in interleaved
rounds (A B C A B C …), with ``repeat="auto"`` until each has a stable median and the evidence
decides, keeping a run's pools, board and isolated children between trials. Each trial is
``trial.run_trial``: it times pool start-up and teardown, hands each chunk's records to
``on_chunk`` as they arrive (a crash loses nothing already measured), and accounts the CPU of
the whole process tree — the parent and every worker, which the notebook's ``%%time`` missed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import UsageError
from ..backends import Backend, get_backend, resolve
from ..model import TrialResult, TrialStatus
from ..options import Chunksize, Repeat
from ..workloads import Workload
from .board import Board
from .probe import Chunk
from .shipping import unpicklable_items
from .trial import CallbackError, ChunkCallback, not_reported, run_trial

__all__ = ["Contention", "Plan", "auto_chunksize", "make_chunks", "run_plan", "run_trial"]


def auto_chunksize(n_items: int, workers: int) -> int:
    """multiprocessing.Pool.map's rule: about four chunks per worker."""
    size, extra = divmod(n_items, max(1, workers) * 4)
    return max(1, size + (1 if extra else 0))


def make_chunks(items: Sequence[Any], chunksize: int) -> list[Chunk]:
    return [Chunk(first, items[first:first + chunksize])
            for first in range(0, len(items), chunksize)]


# --repeat auto: every configuration gets at least MIN_TRIALS trials and MIN_TIME_S of trials
# (a stable median), at most MAX_TRIALS, and the run stops adding rounds after max_time_s.
MIN_TRIALS = 5
MIN_TIME_S = 2.0
MAX_TRIALS = 50


def _whole(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Config:
    """One thing to measure: an executor with a worker count and a chunksize rule."""

    executor: str
    workers: int
    chunksize: Chunksize = "auto"


@dataclass(frozen=True)
class Plan:
    """What to run: every executor × worker count × chunksize, interleaved (A B C A B C …).

    ``repeat`` is a trial count per configuration or ``"auto"`` (see MIN_TRIALS, MIN_TIME_S,
    MAX_TRIALS, capped by ``max_time_s``); ``warmup`` untimed trials per configuration run first
    and are discarded. Each trial gets a fresh pool unless ``reuse_pool``.
    """

    executors: tuple[str, ...]
    workers: tuple[int, ...]
    repeat: Repeat = 1
    chunksize: Chunksize | tuple[Chunksize, ...] = "auto"
    warmup: int = 0
    max_time_s: float = 60.0
    reuse_pool: bool = False
    timeout_s: float | None = None  # per item (limits.py)
    trial_timeout_s: float | None = None
    max_memory: int | None = None  # bytes per worker process
    isolate: bool = False  # in-process executors run in a child process (resolve)
    native_threads: int | None = None  # per worker (native.py; api.py applies it)

    def __post_init__(self) -> None:
        self._check_executors()
        self._check_counts()
        self._check_limits()

    def _check_executors(self) -> None:
        if not self.executors:
            raise UsageError("give at least one executor")
        for name in self.executors:
            get_backend(name)  # raises a UsageError for unknown or unavailable executors
        if len(set(self.executors)) != len(self.executors):
            raise UsageError("an executor is listed twice")

    def _check_counts(self) -> None:
        if not self.workers:
            raise UsageError("give at least one worker count")
        for w in self.workers:
            if not _whole(w) or w < 1:
                raise UsageError(f"workers must be a whole number of at least 1, got {w!r}")
            if w > 1024:
                raise UsageError(f"workers must be at most 1024, got {w}")
        if self.repeat != "auto" and (not _whole(self.repeat) or self.repeat < 1):
            raise UsageError(f"repeat must be 'auto' or at least 1, got {self.repeat!r}")
        for size in self.chunksizes:
            if size != "auto" and (not _whole(size) or size < 1):
                raise UsageError(f"chunksize must be 'auto' or at least 1, got {size!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise UsageError(f"warmup must be zero or more, got {self.warmup!r}")

    def _check_limits(self) -> None:
        if not 0 < self.max_time_s < math.inf:
            raise UsageError(f"max time must be more than 0 seconds (and finite), got "
                             f"{self.max_time_s!r}")
        for option, value in (("timeout", self.timeout_s),
                              ("trial timeout", self.trial_timeout_s)):
            if value is not None and not (isinstance(value, int | float)
                                          and 0 < value < math.inf):
                raise UsageError(f"{option} must be a number of seconds more than 0, "
                                 f"got {value!r}")
        if self.max_memory is not None and (not isinstance(self.max_memory, int)
                                            or self.max_memory < 1 << 20):
            raise UsageError(f"max memory must be at least 1 MiB, got {self.max_memory!r}")
        limits = (self.timeout_s, self.trial_timeout_s, self.max_memory)
        if any(limit is not None for limit in limits):
            for name in self.executors:
                if not get_backend(name).stops_items:
                    raise UsageError(f"--timeout, --trial-timeout and --max-memory do not work "
                                     f"with {name}: a running task stops only with its worker, "
                                     "which the cluster then retries")
        if self.reuse_pool:
            from ..backends.interpreters import fork_conflict

            conflict = fork_conflict(self.executors)
            if conflict:
                raise UsageError(conflict)

    @property
    def chunksizes(self) -> tuple[Chunksize, ...]:
        return self.chunksize if isinstance(self.chunksize, tuple) else (self.chunksize,)

    def configurations(self) -> list[Config]:
        """Every configuration once; serial runs once whatever the worker counts and chunks."""
        configs: dict[Config, None] = {}
        for name in self.executors:
            cls = get_backend(name)
            for w in self.workers:
                for size in (self.chunksizes if cls.family.pooled else ("auto",)):
                    configs[Config(name, cls.effective_workers(w), size)] = None
        return list(configs)

    def trials(self) -> list[tuple[int, Config]]:
        """(repeat, config) for a fixed repeat count, interleaved; auto repeats grow rounds."""
        rounds = MIN_TRIALS if self.repeat == "auto" else self.repeat
        return [(r, c) for r in range(rounds) for c in self.configurations()]

    def chunksize_for(self, n_items: int, workers: int, size: Chunksize = "auto") -> int:
        return auto_chunksize(n_items, workers) if size == "auto" else size


# Given the trials so far, the configurations (executor, workers, chunksize) still in contention:
# none once the evidence decides. The API passes analysis' rule; the runner only asks it.
Contention = Callable[[Sequence["TrialResult"]], Collection[tuple[str, int, int]]]


@dataclass
class _Tally:
    trials: int = 0
    seconds: float = 0.0


def run_plan(workload: Workload, plan: Plan, *,
             on_chunk: ChunkCallback | None = None,
             on_trial_start: Callable[[int, str, int, int], None] | None = None,
             on_trial_end: Callable[[TrialResult], None] | None = None,
             clock: Callable[[], float] = time.monotonic,
             first_index: int = 0,
             contention: Contention | None = None,
             ) -> tuple[list[TrialResult], bool]:
    """Run the plan's trials in interleaved rounds; returns the trials and whether interrupted.

    Warm-up rounds come first and are discarded. With ``repeat="auto"`` rounds continue, for
    the configurations that still need them, until each has MIN_TRIALS trials and MIN_TIME_S
    of trials (a stable median); then, with ``contention``, for those it says are still in
    contention (sequential testing: until the evidence decides) — each at most MAX_TRIALS, and
    none once the run has taken ``max_time_s``.
    """
    items = list(workload.items) if not isinstance(workload.items, list) else workload.items
    if not items:
        raise UsageError("there are no items to run")
    run = _PlanRun(workload, items, plan, on_chunk=on_chunk, clock=clock,
                   contention=contention)
    try:
        if not run.warm_up():
            return run.results, True
        return run.results, run.rounds(first_index, on_trial_start, on_trial_end)
    except CallbackError as wrapped:  # e.g. the store could not be written: say so as it is
        raise wrapped.__cause__ from None  # type: ignore[misc]
    except KeyboardInterrupt:  # between trials: everything finished is already in results
        return run.results, True
    finally:
        run.close()


class _PlanRun:
    """A plan's run between its trials: the chunks, kept pools, and what each configuration
    has had so far."""

    def __init__(self, workload: Workload, items: list[Any], plan: Plan, *,
                 on_chunk: ChunkCallback | None, clock: Callable[[], float],
                 contention: Contention | None) -> None:
        self.workload, self.plan, self.on_chunk = workload, plan, on_chunk
        self.clock, self.contention = clock, contention
        self.configs = plan.configurations()
        self.chunks = {c: make_chunks(items, plan.chunksize_for(len(items), c.workers,
                                                                c.chunksize))
                       for c in self.configs}
        # Items that cannot be pickled stay out of trials in worker processes (an error each).
        shipped = [c for c in self.configs if _ships_items(self.backend_of(c))]
        self.refused = unpicklable_items(items) if shipped else {}
        for c in shipped if self.refused else ():
            self.chunks[c] = not_reported(self.chunks[c], [], set(self.refused))
        self.n_items = len(items)
        self.pools: dict[Config, Backend] = {}
        self.backend_classes = {self.backend_of(c) for c in self.configs}
        for cls in self.backend_classes:
            cls.begin_run()
        self.board = Board()  # one for the run: a thread that stays maps its file once
        self.tally = {c: _Tally() for c in self.configs}
        self.keys: dict[Config, tuple[str, int, int]] = {}  # as its trials name each config
        self.results: list[TrialResult] = []
        self.began = clock()

    def backend_of(self, c: Config) -> type[Backend]:
        return resolve(c.executor, self.plan.isolate)

    def stable(self, c: Config) -> bool:
        return self.tally[c].trials >= MIN_TRIALS and self.tally[c].seconds >= MIN_TIME_S

    def needs_more(self, c: Config, contenders: Collection[tuple[str, int, int]]) -> bool:
        t = self.tally[c]
        if self.plan.repeat != "auto":
            return t.trials < self.plan.repeat
        if t.trials >= MAX_TRIALS or (t.trials >= 1
                                      and self.clock() - self.began > self.plan.max_time_s):
            return False
        return not self.stable(c) or self.keys.get(c) in contenders

    def in_contention(self) -> Collection[tuple[str, int, int]]:
        """Judged only once every configuration has a stable median (or all it may get)."""
        settled = all(self.stable(c) or self.tally[c].trials >= MAX_TRIALS
                      for c in self.configs)
        if self.contention is None or self.plan.repeat != "auto" or not settled:
            return ()
        return self.contention(self.results)

    def one(self, c: Config, index: int, repeat: int) -> TrialResult:
        plan, cls = self.plan, self.backend_of(c)
        backend = self.pools.get(c)
        if plan.reuse_pool and backend is None:
            backend = self.pools[c] = cls(self.workload.fn, c.workers)
            backend.start()
        trial = run_trial(index, cls, self.workload.fn, c.workers, self.chunks[c], repeat,
                          on_chunk=self.on_chunk, backend=backend, timeout_s=plan.timeout_s,
                          trial_timeout_s=plan.trial_timeout_s, max_memory=plan.max_memory,
                          refused=self.refused if _ships_items(cls) else None,
                          board=self.board)
        broke = trial.status in (TrialStatus.FAILED, TrialStatus.INTERRUPTED) or trial.restarts
        if broke and c in self.pools:
            del self.pools[c]  # run_trial closed it
        return trial

    def warm_up(self) -> bool:
        """The warm-up rounds, discarded; False when one was interrupted."""
        for _ in range(self.plan.warmup):
            for c in self.configs:
                if self.one(c, -1, -1).status == TrialStatus.INTERRUPTED:
                    return False
        return True

    def rounds(self, first_index: int,
               on_trial_start: Callable[[int, str, int, int], None] | None,
               on_trial_end: Callable[[TrialResult], None] | None) -> bool:
        """Interleaved rounds while a configuration needs more; whether one was interrupted."""
        repeat = 0
        while True:
            contenders = self.in_contention()  # once a round
            active = [c for c in self.configs if self.needs_more(c, contenders)]
            if not active:
                return False
            for c in active:
                index = first_index + len(self.results)
                if on_trial_start:
                    on_trial_start(index, c.executor, c.workers, self.n_items)
                trial = self.one(c, index, repeat)
                self.tally[c].trials += 1
                self.tally[c].seconds += trial.wall_s
                self.keys.setdefault(c, (trial.executor, trial.workers, trial.chunksize))
                self.results.append(trial)
                if on_trial_end:
                    on_trial_end(trial)
                if trial.status == TrialStatus.INTERRUPTED:
                    return True
            repeat += 1

    def close(self) -> None:
        for backend in self.pools.values():
            backend.close()
        for cls in self.backend_classes:
            cls.end_run()
        self.board.close()


def _ships_items(backend_cls: type[Backend]) -> bool:
    """Whether the executor pickles items to send them to its workers (or to the child
    process that runs it)."""
    return not backend_cls.in_process or backend_cls.family.pickles
