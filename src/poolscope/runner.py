"""Plans trials and runs them: executors × worker counts × repeats, interleaved.

The runner owns everything a trial's numbers depend on: it times pool start-up and teardown,
collects each chunk's records as they arrive (handing them to ``on_chunk`` at once, so a crash
loses nothing already measured), and accounts the CPU of the whole process tree — the parent and
every worker, which the notebook's ``%%time`` missed.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import psutil

from ._errors import UsageError
from .backends import Backend, get_backend
from .board import Board
from .faults import dead_worker_errors
from .limits import LimitWatch, memory_overruns
from .probe import HOST, Chunk, ChunkRecord, peak_rss, reset_peak_rss
from .shipping import unpicklable_items, unreadable_errors
from .workloads import Workload

__all__ = ["Contention", "ItemColumns", "Plan", "TrialResult", "auto_chunksize", "make_chunks",
           "run_plan"]

Chunksize = int | Literal["auto"]


def auto_chunksize(n_items: int, workers: int) -> int:
    """multiprocessing.Pool.map's rule: about four chunks per worker."""
    size, extra = divmod(n_items, max(1, workers) * 4)
    return max(1, size + (1 if extra else 0))


def make_chunks(items: Sequence[Any], chunksize: int) -> list[Chunk]:
    return [Chunk(first, items[first:first + chunksize])
            for first in range(0, len(items), chunksize)]


@dataclass
class ItemColumns:
    """Per-item records of one trial as flat numpy arrays (no object per item).

    Times are nanoseconds since the trial started, on perf_counter_ns.
    """

    item: np.ndarray  # int64
    start_ns: np.ndarray  # int64
    end_ns: np.ndarray  # int64
    cpu_ns: np.ndarray  # int64
    core: np.ndarray  # int16, -1 when unknown
    status: np.ndarray  # int8
    pid: np.ndarray  # int32
    tid: np.ndarray  # int64
    # Optional (filled in when left out): the worker each item ran on, as an index into the
    # trial's ``worker_info`` (-1: no addressable worker, the parent's host), and whether its
    # chunk was run again after the executor lost a worker (dask).
    worker: np.ndarray = field(default_factory=lambda: np.empty(0, np.int16))  # int16
    retried: np.ndarray = field(default_factory=lambda: np.empty(0, np.bool_))  # bool
    # How many items were timed together with this one (probe.py's spans): 1 when timed alone;
    # above 1, its start, end and CPU are its span's spread evenly over the span's items.
    span: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))  # int32

    def __post_init__(self) -> None:
        n = len(self.item)
        if len(self.worker) != n:
            self.worker = np.full(n, -1, np.int16)
        if len(self.retried) != n:
            self.retried = np.zeros(n, np.bool_)
        if len(self.span) != n:
            self.span = np.ones(n, np.int32)

    @staticmethod
    def worker_addresses(records: Sequence[ChunkRecord]) -> list[str]:
        """The worker addresses the records name, sorted: what ``worker`` codes index."""
        return sorted({r.worker for r in records if r.worker})

    @classmethod
    def empty(cls) -> ItemColumns:
        return cls.from_chunks([], 0)

    @classmethod
    def from_chunks(cls, records: Sequence[ChunkRecord], t0_ns: int) -> ItemColumns:
        spread = [_spread_spans(r) for r in records]

        def cat(name: str, dtype: str) -> np.ndarray:
            parts = [s[name] if name in s else np.frombuffer(getattr(r, name),
                                                              getattr(r, name).typecode)
                     for r, s in zip(records, spread, strict=True)]
            return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype)

        lengths = [len(r.start_ns) for r in records]
        codes = {address: code for code, address in enumerate(cls.worker_addresses(records))}
        item = (np.concatenate([np.arange(r.first, r.first + n, dtype=np.int64)
                                for r, n in zip(records, lengths, strict=True)])
                if records else np.empty(0, np.int64))
        columns = cls(
            item=item,
            start_ns=cat("start_ns", "int64") - t0_ns,
            end_ns=cat("end_ns", "int64") - t0_ns,
            cpu_ns=(np.concatenate([np.diff(s.get("cpu_marks_ns", np.frombuffer(
                r.cpu_marks_ns, np.int64))) for r, s in zip(records, spread, strict=True)])
                    if records else np.empty(0, np.int64)),
            core=cat("core", "int16"),
            status=cat("status", "int8"),
            pid=np.repeat(np.array([r.pid for r in records], np.int32), lengths),
            tid=np.repeat(np.array([r.tid for r in records], np.int64), lengths),
            worker=np.repeat(np.array([codes.get(r.worker, -1) for r in records], np.int16),
                             lengths),
            retried=np.repeat(np.array([r.retried for r in records], np.bool_), lengths),
            span=(np.concatenate([s.get("span", np.ones(n, np.int32))
                                  for s, n in zip(spread, lengths, strict=True)])
                  if records else np.empty(0, np.int32)),
        )
        if len(item) > 1 and (np.diff(item) < 0).any():  # chunks arrive in completion order
            columns = columns.take(np.argsort(item, kind="stable"))
        return columns

    def take(self, order: np.ndarray) -> ItemColumns:
        fields = self.__dataclass_fields__
        return ItemColumns(**{name: getattr(self, name)[order] for name in fields})

    def __len__(self) -> int:
        return len(self.item)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self.__dataclass_fields__)


def _spread_spans(record: ChunkRecord) -> dict[str, np.ndarray]:
    """A record's arrays with each span's items filled in (probe.py times items too short to
    time alone in spans, and fills only a span's edges): its wall and CPU are spread evenly over
    its items, which all take its core. Empty when the record has no spans."""
    if not record.spans:
        return {}
    pairs = np.frombuffer(record.spans, np.int64).reshape(-1, 2)
    first, count = pairs[:, 0], pairs[:, 1]
    at = np.repeat(first, count)  # per spanned item: its span's first offset
    k = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)  # place in span
    n = np.repeat(count, count)
    start, end, marks, core = (np.frombuffer(values, values.typecode).copy() for values in (
        record.start_ns, record.end_ns, record.cpu_marks_ns, record.core))
    began, ended = start[first], end[first + count - 1]
    cpu0, cpu1 = marks[first], marks[first + count]
    wall = np.repeat(ended - began, count)
    cpu = np.repeat(cpu1 - cpu0, count)
    start[at + k] = np.repeat(began, count) + wall * k // n
    end[at + k] = np.repeat(began, count) + wall * (k + 1) // n
    marks[at + k + 1] = np.repeat(cpu0, count) + cpu * (k + 1) // n
    core[at + k] = np.repeat(core[first], count)
    span = np.ones(len(start), np.int32)
    span[at + k] = n
    return {"start_ns": start, "end_ns": end, "cpu_marks_ns": marks, "core": core, "span": span}


@dataclass
class TrialResult:
    """One timed execution of all items by one executor with one worker count."""

    index: int
    executor: str
    workers: int
    chunksize: int
    repeat: int
    wall_s: float
    cpu_s: float
    startup_s: float
    teardown_s: float
    peak_rss: int
    status: str  # "ok", "partial" (some items failed), "failed" (the executor broke), "interrupted"
    host: str
    items: ItemColumns
    errors: list[dict[str, Any]] = field(default_factory=list)
    result_sample: list[Any] = field(default_factory=list)  # a few return values, for sizing
    t0_ns: int = 0  # perf_counter_ns when the trial began: the origin of its item times
    # Executors with addressable workers (dask): one dict per worker ("address", "host", "pid",
    # "clock_offset_s", "clock_uncertainty_s", "lost", ...). The first entries, in the order of
    # ItemColumns.worker_addresses, are what items.worker indexes; workers that ran no
    # recorded item (lost ones) follow.
    worker_info: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0  # new pools started after a timeout broke one (not stored)

    @property
    def n_ok(self) -> int:
        return int((self.items.status == 0).sum())


Repeat = int | Literal["auto"]

# --repeat auto: every configuration gets at least MIN_TRIALS trials and MIN_TIME_S of trials
# (a stable median), at most MAX_TRIALS, and the run stops adding rounds after max_time_s.
MIN_TRIALS = 5
MIN_TIME_S = 2.0
MAX_TRIALS = 50


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
    isolate: bool = False  # in-process executors run in a child process (backend_class)
    native_threads: int | None = None  # per worker (native.py; api.py applies it)

    def __post_init__(self) -> None:
        if not self.executors:
            raise UsageError("give at least one executor")
        for name in self.executors:
            get_backend(name)  # raises a UsageError for unknown or unavailable executors
        if len(set(self.executors)) != len(self.executors):
            raise UsageError("an executor is listed twice")
        if not self.workers:
            raise UsageError("give at least one worker count")
        for w in self.workers:
            if not isinstance(w, int) or isinstance(w, bool) or w < 1:
                raise UsageError(f"workers must be a whole number of at least 1, got {w!r}")
            if w > 1024:
                raise UsageError(f"workers must be at most 1024, got {w}")
        if self.repeat != "auto" and (not isinstance(self.repeat, int)
                                      or isinstance(self.repeat, bool) or self.repeat < 1):
            raise UsageError(f"repeat must be 'auto' or at least 1, got {self.repeat!r}")
        for size in self.chunksizes:
            if size != "auto" and (not isinstance(size, int) or isinstance(size, bool)
                                   or size < 1):
                raise UsageError(f"chunksize must be 'auto' or at least 1, got {size!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise UsageError(f"warmup must be zero or more, got {self.warmup!r}")
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
            from .backends.interpreters import fork_conflict

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
                for size in (("auto",) if cls.family == "serial" else self.chunksizes):
                    configs[Config(name, cls.effective_workers(w), size)] = None
        return list(configs)

    def trials(self) -> list[tuple[int, Config]]:
        """(repeat, config) for a fixed repeat count, interleaved; auto repeats grow rounds."""
        rounds = MIN_TRIALS if self.repeat == "auto" else self.repeat
        return [(r, c) for r in range(rounds) for c in self.configurations()]

    def chunksize_for(self, n_items: int, workers: int, size: Chunksize = "auto") -> int:
        return auto_chunksize(n_items, workers) if size == "auto" else size


ChunkCallback = Callable[[int, ChunkRecord], None]
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
    configs = plan.configurations()
    chunks = {c: make_chunks(items, plan.chunksize_for(len(items), c.workers, c.chunksize))
              for c in configs}
    # Items that cannot be pickled stay out of trials in worker processes (an error each).
    shipped = [c for c in configs if _ships_items(backend_class(c.executor, plan.isolate))]
    refused = unpicklable_items(items) if shipped else {}
    if refused:
        for c in shipped:
            chunks[c] = _not_reported(chunks[c], [], set(refused))
    pools: dict[Config, Backend] = {}
    backend_classes = {backend_class(c.executor, plan.isolate) for c in configs}
    for cls in backend_classes:
        cls.begin_run()
    board = Board()  # one for the run: a thread that stays maps its file once
    tally = {c: _Tally() for c in configs}
    keys: dict[Config, tuple[str, int, int]] = {}  # each configuration as its trials name it
    results: list[TrialResult] = []
    began = clock()

    def stable(c: Config) -> bool:
        return tally[c].trials >= MIN_TRIALS and tally[c].seconds >= MIN_TIME_S

    def needs_more(c: Config, contenders: Collection[tuple[str, int, int]]) -> bool:
        t = tally[c]
        if plan.repeat != "auto":
            return t.trials < plan.repeat
        if t.trials >= MAX_TRIALS or (t.trials >= 1 and clock() - began > plan.max_time_s):
            return False
        return not stable(c) or keys.get(c) in contenders

    def in_contention() -> Collection[tuple[str, int, int]]:
        """Judged only once every configuration has a stable median (or all it may get)."""
        settled = all(stable(c) or tally[c].trials >= MAX_TRIALS for c in configs)
        if contention is None or plan.repeat != "auto" or not settled:
            return ()
        return contention(results)

    def one(c: Config, index: int, repeat: int) -> TrialResult:
        cls = backend_class(c.executor, plan.isolate)
        backend = pools.get(c)
        if plan.reuse_pool and backend is None:
            backend = pools[c] = cls(workload.fn, c.workers)
            backend.start()
        trial = run_trial(index, cls, workload.fn, c.workers, chunks[c], repeat,
                          on_chunk=on_chunk, backend=backend, timeout_s=plan.timeout_s,
                          trial_timeout_s=plan.trial_timeout_s, max_memory=plan.max_memory,
                          refused=refused if _ships_items(cls) else None, board=board)
        if (trial.status in ("failed", "interrupted") or trial.restarts) and c in pools:
            # run_trial closed it
            del pools[c]
        return trial

    try:
        for _ in range(plan.warmup):
            for c in configs:
                if one(c, -1, -1).status == "interrupted":
                    return results, True
        repeat = 0
        while True:
            contenders = in_contention()  # once a round
            active = [c for c in configs if needs_more(c, contenders)]
            if not active:
                break
            for c in active:
                index = first_index + len(results)
                if on_trial_start:
                    on_trial_start(index, c.executor, c.workers, len(items))
                trial = one(c, index, repeat)
                tally[c].trials += 1
                tally[c].seconds += trial.wall_s
                keys.setdefault(c, (trial.executor, trial.workers, trial.chunksize))
                results.append(trial)
                if on_trial_end:
                    on_trial_end(trial)
                if trial.status == "interrupted":
                    return results, True
            repeat += 1
    except _CallbackError as wrapped:  # e.g. the store could not be written: say so as it is
        raise wrapped.__cause__ from None  # type: ignore[misc]
    except KeyboardInterrupt:  # between trials: everything finished is already in results
        return results, True
    finally:
        for backend in pools.values():
            backend.close()
        for cls in backend_classes:
            cls.end_run()
        board.close()
    return results, False


def backend_class(name: str, isolate: bool = False) -> type[Backend]:
    """The backend of an executor; with ``isolate``, an in-process one runs in a child process
    of this interpreter (backends/elsewhere.py), so a crash in the function cannot end poolscope."""
    cls = get_backend(name)
    if isolate and cls.in_process:
        from .backends.elsewhere import isolated

        return isolated(name)
    return cls


def _ships_items(backend_cls: type[Backend]) -> bool:
    """Whether the executor pickles items to send them to its workers."""
    return not backend_cls.in_process or backend_cls.family == "interpreter"


def _tree_usage() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _own_peak_rss(reset_worked: bool) -> int:
    if reset_worked:
        found = peak_rss()
        if found is not None:
            return found
    import psutil

    return int(psutil.Process().memory_info().rss)


def run_trial(index: int, backend_cls: type[Backend], fn: Callable[[Any], Any], workers: int,
              chunks: Sequence[Chunk], repeat: int = 0, *,
              on_chunk: ChunkCallback | None = None,
              clock: Callable[[], int] = time.perf_counter_ns,
              tree_usage: Callable[[], tuple[float, float]] | None = None,
              backend: Backend | None = None,
              timeout_s: float | None = None,
              trial_timeout_s: float | None = None,
              max_memory: int | None = None,
              refused: dict[int, str] | None = None,
              board: Board | None = None,
              sample_results: bool = True) -> TrialResult:
    """Run one trial; a broken executor or Ctrl-C becomes a trial status, not lost data.

    ``backend``, when given, is a pool already started and kept across trials (``reuse_pool``):
    the trial neither starts nor closes it (unless it breaks). ``clock`` and ``tree_usage`` (CPU
    seconds of this process and of its reaped children) are replaceable so tests can script a
    trial exactly. ``timeout_s`` per item, ``trial_timeout_s`` and ``max_memory`` (bytes per
    worker process) are enforced by limits.py: a worker process stopped for a timeout or its
    memory breaks its pool, and the trial goes on with the items that had not reported on a new
    pool. ``refused``: items left out of ``chunks`` (they cannot be pickled), with why.
    ``board``: the run's (board.py); a trial without one makes its own. ``sample_results``
    False keeps no result in the trial (poolscope.map hands each one over as it comes, and
    keeps no reference to it).
    """
    usage = tree_usage or _tree_usage
    records: list[ChunkRecord] = []
    result_sample: list[Any] = []
    errors: list[dict[str, Any]] = [
        {"executor": backend_cls.name, "item": item, "kind": "PicklingError", "message": why}
        for item, why in sorted((refused or {}).items())]
    status = "ok"
    reused = backend is not None
    if backend is None:  # before the CPU readings: what making it reaps is not the trial's
        backend = backend_cls(fn, workers)
    reset_worked = reset_peak_rss()
    own_cpu0, children_cpu0 = usage()
    own_board = board is None
    board = Board() if board is None else board  # names the item a dead worker took with it
    board.begin_trial()
    chunks = [chunk._replace(board=board.path, timeout_s=timeout_s) for chunk in chunks]
    watch = LimitWatch(board, timeout_s, trial_timeout_s, max_memory,
                       worker_processes=not backend_cls.in_process)
    pending = chunks
    restarts = 0
    needs_start = not reused
    # Items running in threads of a process that died, which cannot tell which of them ended
    # it: each runs again alone once the rest is done; its error stands only if it fails then.
    suspects: dict[int, dict[str, Any]] = {}
    retried: set[int] = set()

    def keep(record: ChunkRecord) -> None:
        records.append(_without_results(record))
        if on_chunk:
            try:
                on_chunk(index, record)
            except Exception as exc:  # the store or a display, not the executor: re-raise
                raise _CallbackError(exc) from exc

    if not reused:
        backend.stage(chunks)
    watch.start()  # before the clock: its thread's start is not the trial's
    first_backend: Backend | None = None
    t0 = clock()
    t_last = t0
    try:
        while True:
            try:
                if needs_start:
                    backend.start()
                    needs_start = False
                    first_backend = first_backend or backend
                for record in backend.run(pending):
                    t_last = clock()
                    record = unreadable_errors(record)
                    if sample_results and not result_sample:
                        result_sample = record.results[:8]
                    keep(record)
                    suspects.pop(record.first, None)  # one that ran alone and came back
                waiting = sorted(set(suspects) - retried)
                if waiting:
                    retried.add(waiting[0])
                    pending = [_alone(chunks, waiting[0])]
                    continue
                break
            except (KeyboardInterrupt, _CallbackError):
                raise
            except Exception as exc:  # the executor broke: keep what finished
                stopped = watch.stopped.copy()
                died = dead_worker_errors(backend.worker_processes(), board, stopped,
                                          watch.peak_rss, backend.cleanup_signal)
                for error in died:
                    suspects.pop(error["item"], None)  # it failed again, alone: this error
                held = [e for e in died if e.pop("shared")]
                suspects.update((e["item"], e) for e in held)
                died = [e for e in died if e not in held]
                # A worker ended by a timeout, a memory limit or a crash in a known item:
                # the rest runs on a new pool, without that item.
                recover = ((stopped or died or held) and not watch.trial_expired
                           and all(e["item"] is not None for e in died)
                           and restarts < MAX_RESTARTS)
                for error in died:
                    error["message"] += ("; the items of its chunk that had not reported "
                                         + ("ran again on a new pool" if recover
                                            else "are lost"))
                errors.extend({"executor": backend_cls.name, **error}
                              for error in [*watch.take_errors(), *died])
                for record in watch.take_records():  # the stopped items
                    keep(record)
                if recover:
                    backend.close()
                    board.forget()
                    reported = backend.cpu_reported
                    backend, reused, needs_start = backend_cls(fn, workers), False, True
                    backend.cpu_reported.update(reported)
                    restarts += 1
                    watch.stopped.clear()
                    lost = watch.timed_out | {e["item"] for e in died} | set(suspects)
                    pending = _not_reported(pending, records, lost)
                    continue
                status = "failed"
                if restarts >= MAX_RESTARTS:
                    errors.append({"executor": backend_cls.name, "item": None,
                                   "kind": "WorkerDiedError",
                                   "message": f"gave up after {MAX_RESTARTS} new pools: "
                                              "workers kept ending"})
                if not died and not stopped and not held:
                    errors.append({"executor": backend_cls.name,
                                   "item": getattr(exc, "item", None),
                                   "kind": type(exc).__name__,
                                   "message": str(exc) or repr(exc)})
                break
    except KeyboardInterrupt:
        status = "interrupted"
    except _CallbackError:
        status = "interrupted"
        backend.close()  # stop the workers, then let the caller's error through
        raise
    finally:
        t_close = clock()
        try:
            if not reused or status in ("failed", "interrupted"):
                backend.close()
        except Exception as exc:
            status = "failed"
            errors.append({"executor": backend_cls.name, "item": None,
                           "kind": type(exc).__name__, "message": str(exc) or repr(exc)})
        t_end = clock()
        watch.stop()
        for error in suspects.values():  # never settled (the trial stopped first)
            error["message"] += "; one of the items its threads were running ended it"
            errors.append({"executor": backend_cls.name, **error})
        if own_board:
            board.close()
    if watch.trial_expired:
        status = "failed"
        done = sum(len(r.start_ns) for r in records) - len(watch.timed_out)
        errors.insert(0, {"executor": backend_cls.name, "item": None, "kind": "TrialTimeout",
                       "message": f"the trial ran longer than --trial-timeout "
                                  f"{trial_timeout_s:g} s; stopped with {done} of "
                                  f"{sum(len(c.items) for c in chunks)} items done"})
    if t_last == t0:
        t_last = t_close
    # An isolated executor's results stay in its child, which sends a sample once it closed.
    if sample_results:
        result_sample = result_sample or getattr(backend, "result_sample", [])
    if first_backend is not None and first_backend.started_ns is not None:
        # Timed by the child that ran it: talking to the child is not the executor's time.
        t0 = first_backend.started_ns
        t_last = backend.last_record_ns or t_last
        t_end = backend.closed_ns or t_end
        t_last = min(t_last, t_end)
    own_cpu1, children_cpu1 = usage()
    items = ItemColumns.from_chunks(records, t0)
    worker_cpu, peaks = _worker_usage(records, backend)
    worker_rss = sum(peaks.values())
    read = watch.peak_rss  # the limits' reads: a peak no record had yet
    for error in memory_overruns({pid: max(peaks.get(pid, 0), read.get(pid, 0))
                                  for pid in {*peaks, *read}}, max_memory, watch.ever_stopped):
        errors.append({"executor": backend_cls.name, **error})
    if reused and status == "ok":
        worker_cpu += _idle_workers_cpu(backend)
    # A child reaped in this trial brings its whole CPU, start-up before t0 included: take the
    # part the backend says came before the trial (another interpreter's start-up) off. It is
    # non-zero only once the backend has reaped its child, i.e. closed in this trial.
    children_cpu = max(0.0, children_cpu1 - children_cpu0 - getattr(backend, "untimed_cpu_s",
                                                                     0.0))
    own_cpu = own_cpu1 - own_cpu0 if backend_cls.counts_own_usage else 0.0
    cpu_s = own_cpu + max(children_cpu, worker_cpu)
    for record in records:
        for item, kind, message in record.errors:
            errors.append({"executor": backend_cls.name, "item": item, "kind": kind,
                           "message": message})
    incidents = getattr(backend, "incidents", [])  # a worker lost and recovered from (dask)
    errors.extend({"executor": backend_cls.name, "item": None, **incident}
                  for incident in incidents)
    incidents.clear()
    if status == "ok" and (errors or len(items) < sum(len(c.items) for c in chunks)):
        status = "partial"
    startup_ns = int(items.start_ns.min()) if len(items) else t_close - t0
    return TrialResult(
        index=index, executor=backend_cls.name, workers=workers,
        chunksize=len(chunks[0].items) if chunks else 0, repeat=repeat,
        wall_s=(t_end - t0) / 1e9, cpu_s=cpu_s, startup_s=startup_ns / 1e9,
        teardown_s=(t_end - t_last) / 1e9,
        peak_rss=(_own_peak_rss(reset_worked) if backend_cls.counts_own_usage else 0)
        + worker_rss, status=status, host=HOST,
        items=items, errors=errors, result_sample=result_sample, t0_ns=t0,
        worker_info=_worker_info(records, getattr(backend, "worker_info", {})),
        restarts=restarts)


def _alone(chunks: Sequence[Chunk], item: int) -> Chunk:
    """A chunk of one item, from the trial's chunks."""
    for chunk in chunks:
        if chunk.first <= item < chunk.first + len(chunk.items):
            return chunk._replace(first=item, items=chunk.items[item - chunk.first:
                                                               item - chunk.first + 1])
    raise KeyError(item)


IDLE_START_WAIT_S = 1.0  # the longest an idle worker's start-up is waited for at a trial's end
MAX_RESTARTS = 10  # new pools per trial after workers were lost; then the trial fails


def _not_reported(chunks: Sequence[Chunk], records: Sequence[ChunkRecord],
                  skip: set[int]) -> list[Chunk]:
    """The chunks that sent no record, without the items in ``skip`` (split around them)."""
    reported = {r.first for r in records}
    rest = []
    for chunk in chunks:
        if chunk.first in reported:
            continue
        start = 0
        for offset in range(len(chunk.items) + 1):
            if offset == len(chunk.items) or chunk.first + offset in skip:
                if offset > start:
                    rest.append(chunk._replace(first=chunk.first + start,
                                               items=chunk.items[start:offset]))
                start = offset + 1
    return rest


class _CallbackError(Exception):
    """Wraps an error raised by an on_chunk callback while a trial runs."""


def _worker_info(records: Sequence[ChunkRecord],
                 known: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per addressable worker: those the records name (in items.worker's code order), then any
    other worker the backend knows of that was lost during the run."""
    named = ItemColumns.worker_addresses(records)
    hosts = {r.worker: r.host for r in records if r.worker}
    info = [{"address": address, "host": hosts[address], **known.get(address, {})}
            for address in named]
    info += [{"address": address, **details} for address, details in sorted(known.items())
             if address not in hosts and details.get("lost")]
    return info


def _without_results(record: ChunkRecord) -> ChunkRecord:
    """Drop the return values once they arrived: poolscope measures, it does not keep them."""
    return record._replace(results=[])


def _idle_workers_cpu(backend: Backend) -> float:
    """The CPU of a kept pool's workers that ran no chunk yet, read now.

    Every worker alive at the end of a trial then has a reading, so one without a reading
    started during this trial, and its CPU so far (its start-up) is this trial's. The reading
    keeps the next trial it works in from counting that start-up again.
    """
    idle = []
    for pid, process in backend.worker_processes().items():
        if pid not in backend.cpu_reported and process.exitcode is None:
            try:
                idle.append(psutil.Process(pid))
            except psutil.Error:
                continue  # it ended: it reports nothing more
    _wait_until_started(idle)
    used = 0.0
    for worker in idle:
        try:
            times = worker.cpu_times()
        except psutil.Error:
            continue
        backend.cpu_reported[worker.pid] = times.user + times.system
        used += times.user + times.system
    return used


def _wait_until_started(workers: list[psutil.Process]) -> None:
    """Wait (up to IDLE_START_WAIT_S) while an idle worker still runs: it is starting up.

    A worker that ran no chunk may have been started moments before the trial ended (loky
    starts all of them with the first submit), and read mid-start its remaining start-up
    would be charged to the next trial it works in. Started, it sleeps on its task queue.
    """
    deadline = time.monotonic() + IDLE_START_WAIT_S
    while time.monotonic() < deadline:
        try:
            if all(w.status() != psutil.STATUS_RUNNING for w in workers):
                return
        except psutil.Error:
            return  # one ended: what is left is read as it is
        time.sleep(0.005)


def _worker_usage(records: Iterable[ChunkRecord],
                  backend: Backend) -> tuple[float, dict[int, int]]:
    """CPU used in this trial, and each worker process's peak RSS, as they reported them.

    Workers report their process's CPU so far with each chunk, and a child that ran the trial
    its own at close (``closing_cpu``, ``closing_rss``); ``cpu_reported`` holds each pid's
    reading at the end of earlier trials, so a reused pool's CPU is counted once.
    """
    if backend.in_process:
        return 0.0, {}
    cpu: dict[int, float] = {}
    rss: dict[int, int] = {}
    for r in records:
        cpu[r.pid] = max(cpu.get(r.pid, 0.0), r.process_cpu_s)
        rss[r.pid] = max(rss.get(r.pid, 0), r.process_maxrss)
    for pid, total in backend.closing_cpu.items():
        cpu[pid] = max(cpu.get(pid, 0.0), total)
    for pid, peak in backend.closing_rss.items():
        rss[pid] = max(rss.get(pid, 0), peak)
    reported = backend.cpu_reported
    used = math.fsum(max(0.0, total - reported.get(pid, 0.0)) for pid, total in cpu.items())
    reported.update(cpu)
    return used, rss
