"""One trial: every item run once by one executor, timed, its records kept as they arrive.

``run_trial`` is the whole of it; ``_Trial`` holds its state and names its steps, in the
order they happen::

    prepare      the backend, the board, the limit watch, the items handed over (no clock yet)
    run          start the pool (unless kept), then drain its records; after each pass, an item
                 suspected of ending a process of threads runs again alone (retry_suspect)
    broke        the executor raised: read which workers died and why, decide whether to
                 recover, and if so restart on a new pool with the items not reported
    finish       close the pool (unless kept and healthy), stop the watch, settle suspects
    account      the trial's numbers from its readings (``account``: a pure function)

A broken executor or Ctrl-C becomes the trial's status, never lost data: every record that
arrived is in the result.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

from ..backends import Backend
from ..model import ItemColumns, TrialResult, TrialStatus
from ._child import SAMPLE_VALUES  # return values kept from the first record, for sizing
from .board import Board
from .faults import dead_worker_errors
from .limits import LimitWatch, memory_overruns
from .probe import HOST, KEPT_POOL, Chunk, ChunkRecord, peak_rss, reset_peak_rss
from .shipping import unreadable_errors

__all__ = ["ChunkCallback", "Readings", "account", "run_trial"]

ChunkCallback = Callable[[int, ChunkRecord], None]
IDLE_START_WAIT_S = 1.0  # the longest an idle worker's start-up is waited for at a trial's end
MAX_RESTARTS = 10  # new pools per trial after workers were lost; then the trial fails


class CallbackError(Exception):
    """Wraps an error raised by an on_chunk callback while a trial runs."""


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
    trial = _Trial(index, backend_cls, fn, workers, repeat, on_chunk=on_chunk, clock=clock,
                   usage=tree_usage or _tree_usage, backend=backend, board=board,
                   sample_results=sample_results)
    trial.prepare(chunks, timeout_s, trial_timeout_s, max_memory, refused)
    return trial.run()


class _Trial:
    """A trial's state between its steps (see the module's docstring)."""

    def __init__(self, index: int, backend_cls: type[Backend], fn: Callable[[Any], Any],
                 workers: int, repeat: int, *, on_chunk: ChunkCallback | None,
                 clock: Callable[[], int], usage: Callable[[], tuple[float, float]],
                 backend: Backend | None, board: Board | None, sample_results: bool) -> None:
        self.index, self.backend_cls, self.fn, self.workers = index, backend_cls, fn, workers
        self.repeat, self.on_chunk, self.clock, self.usage = repeat, on_chunk, clock, usage
        self.sample_results = sample_results
        self.records: list[ChunkRecord] = []
        self.result_sample: list[Any] = []
        self.errors: list[dict[str, Any]] = []
        self.status = TrialStatus.OK
        self.reused = backend is not None
        # Made before the CPU readings: what making it reaps is not the trial's.
        self.backend = backend if backend is not None else backend_cls(fn, workers)
        self.first_backend: Backend | None = None  # the one that started: a child's clock
        self.needs_start = not self.reused
        self.own_board = board is None
        self.board = Board() if board is None else board  # names the item a dead worker took
        self.restarts = 0
        # Items running in threads of a process that died, which cannot tell which of them
        # ended it: each runs again alone once the rest is done; its error stands only if it
        # fails then.
        self.suspects: dict[int, dict[str, Any]] = {}
        self.retried: set[int] = set()

    def _error(self, item: int | None, kind: str, message: str) -> dict[str, Any]:
        return {"executor": self.backend_cls.name, "item": item, "kind": kind,
                "message": message}

    # --- prepare ------------------------------------------------------------------------------
    def prepare(self, chunks: Sequence[Chunk], timeout_s: float | None,
                trial_timeout_s: float | None, max_memory: int | None,
                refused: dict[int, str] | None) -> None:
        self.errors = [self._error(item, "PicklingError", why)
                       for item, why in sorted((refused or {}).items())]
        self.max_memory = max_memory
        self.trial_timeout_s = trial_timeout_s
        self.reset_worked = reset_peak_rss()
        self.own_cpu0, self.children_cpu0 = self.usage()
        self.board.begin_trial()
        # A kept pool's workers run an initializer once; a fresh pool's, once per trial.
        trial = KEPT_POOL if self.reused else self.index
        self.chunks = [chunk._replace(board=self.board.path, timeout_s=timeout_s, trial=trial)
                       for chunk in chunks]
        self.pending = self.chunks
        self.watch = LimitWatch(self.board, timeout_s, trial_timeout_s, max_memory,
                                worker_processes=not self.backend_cls.in_process)
        if not self.reused:
            self.backend.stage(self.chunks)
        self.watch.start()  # before the clock: its thread's start is not the trial's

    # --- run ------------------------------------------------------------------------------------
    def run(self) -> TrialResult:
        self.t0 = self.t_last = self.clock()
        try:
            while self._one_pass():
                pass
        except KeyboardInterrupt:
            self.status = TrialStatus.INTERRUPTED
        except CallbackError:
            self.status = TrialStatus.INTERRUPTED
            self.backend.close()  # stop the workers, then let the caller's error through
            raise
        finally:
            self.finish()
        return self.account_trial()

    def _one_pass(self) -> bool:
        """Run the pending chunks; whether another pass is needed."""
        try:
            self.start_pool()
            self.drain()
            return self.retry_suspect()
        except (KeyboardInterrupt, CallbackError):
            raise
        except Exception as exc:  # the executor broke: keep what finished
            return self.broke(exc)

    def start_pool(self) -> None:
        if self.needs_start:
            self.backend.start()
            self.needs_start = False
            self.first_backend = self.first_backend or self.backend

    def drain(self) -> None:
        """Every record of the pending chunks, kept as it arrives."""
        for record in self.backend.run(self.pending):
            self.t_last = self.clock()
            record = unreadable_errors(record)
            if self.sample_results and not self.result_sample:
                self.result_sample = record.results[:SAMPLE_VALUES]
            self.keep(record)
            self.suspects.pop(record.first, None)  # one that ran alone and came back

    def keep(self, record: ChunkRecord) -> None:
        self.records.append(record._replace(results=[]))  # measured, not kept
        if self.on_chunk:
            try:
                self.on_chunk(self.index, record)
            except Exception as exc:  # the store or a display, not the executor: re-raise
                raise CallbackError(exc) from exc

    def retry_suspect(self) -> bool:
        """The next suspect item not yet run alone, as the only pending chunk."""
        waiting = sorted(set(self.suspects) - self.retried)
        if not waiting:
            return False
        self.retried.add(waiting[0])
        self.pending = [_alone(self.chunks, waiting[0])]
        return True

    # --- broke ----------------------------------------------------------------------------------
    def broke(self, exc: Exception) -> bool:
        """The executor raised: record why; whether the trial goes on, on a new pool."""
        watch = self.watch
        stopped = watch.stopped.copy()
        died = dead_worker_errors(self.backend.worker_processes(), self.board, stopped,
                                  watch.peak_rss, self.backend.cleanup_signal)
        for error in died:
            self.suspects.pop(error["item"], None)  # it failed again, alone: this error
        held = [e for e in died if e.pop("shared")]
        self.suspects.update((e["item"], e) for e in held)
        died = [e for e in died if e not in held]
        # A worker ended by a timeout, a memory limit or a crash in a known item: the rest
        # runs on a new pool, without that item.
        recover = bool((stopped or died or held) and not watch.trial_expired
                       and all(e["item"] is not None for e in died)
                       and self.restarts < MAX_RESTARTS)
        for error in died:
            error["message"] += ("; the items of its chunk that had not reported "
                                 + ("ran again on a new pool" if recover else "are lost"))
        self.errors.extend({"executor": self.backend_cls.name, **error}
                           for error in [*watch.take_errors(), *died])
        for record in watch.take_records():  # the stopped items
            self.keep(record)
        if recover:
            self.restart({e["item"] for e in died})
            return True
        self.status = TrialStatus.FAILED
        if self.restarts >= MAX_RESTARTS:
            self.errors.append(self._error(None, "WorkerDiedError",
                                           f"gave up after {MAX_RESTARTS} new pools: workers "
                                           "kept ending"))
        if not died and not stopped and not held:
            self.errors.append(self._error(getattr(exc, "item", None), type(exc).__name__,
                                           str(exc) or repr(exc)))
        return False

    def restart(self, died_items: set[int]) -> None:
        """A new pool, for the items that had not reported (less the ones that ended one)."""
        self.backend.close()
        self.board.forget()
        reported = self.backend.cpu_reported
        self.backend, self.reused, self.needs_start = (self.backend_cls(self.fn, self.workers),
                                                       False, True)
        self.backend.cpu_reported.update(reported)
        self.restarts += 1
        self.watch.stopped.clear()
        lost = self.watch.timed_out | died_items | set(self.suspects)
        self.pending = not_reported(self.pending, self.records, lost)

    # --- finish ---------------------------------------------------------------------------------
    def finish(self) -> None:
        """Close the pool (unless kept and healthy), stop the watch, settle the suspects."""
        self.t_close = self.clock()
        try:
            if not self.reused or self.status in (TrialStatus.FAILED, TrialStatus.INTERRUPTED):
                self.backend.close()
        except Exception as exc:
            self.status = TrialStatus.FAILED
            self.errors.append(self._error(None, type(exc).__name__, str(exc) or repr(exc)))
        self.t_end = self.clock()
        self.watch.stop()
        for error in self.suspects.values():  # never settled (the trial stopped first)
            error["message"] += "; one of the items its threads were running ended it"
            self.errors.append({"executor": self.backend_cls.name, **error})
        if self.own_board:
            self.board.close()

    # --- account --------------------------------------------------------------------------------
    def account_trial(self) -> TrialResult:
        backend, watch = self.backend, self.watch
        if watch.trial_expired:
            self.status = TrialStatus.FAILED
            # (a stopped initializer's item has no record of its own: never below 0)
            done = max(0, sum(len(r.start_ns) for r in self.records) - len(watch.timed_out))
            self.errors.insert(0, self._error(
                None, "TrialTimeout",
                f"the trial ran longer than --trial-timeout {self.trial_timeout_s:g} s; stopped "
                f"with {done} of {sum(len(c.items) for c in self.chunks)} items done"))
        # An isolated executor's results stay in its child, which sends a sample once it closed.
        if self.sample_results:
            self.result_sample = self.result_sample or getattr(backend, "result_sample", [])
        own_cpu1, children_cpu1 = self.usage()
        items = ItemColumns.from_chunks(self.records, self._origin())
        worker_cpu, peaks = _worker_usage(self.records, backend)
        read = watch.peak_rss  # the limits' reads: a peak no record had yet
        for error in memory_overruns({pid: max(peaks.get(pid, 0), read.get(pid, 0))
                                      for pid in {*peaks, *read}},
                                     self.max_memory, watch.ever_stopped):
            self.errors.append({"executor": self.backend_cls.name, **error})
        if self.reused and self.status == TrialStatus.OK:
            worker_cpu += _idle_workers_cpu(backend)
        self._collect_item_errors()
        if self.status == TrialStatus.OK and (self.errors
                                    or len(items) < sum(len(c.items) for c in self.chunks)):
            self.status = TrialStatus.PARTIAL
        counted = account(self._readings(items, own_cpu1, children_cpu1, worker_cpu))
        own_peak = _own_peak_rss(self.reset_worked) if backend.child is None else 0
        return TrialResult(
            index=self.index, executor=self.backend_cls.name, workers=self.workers,
            chunksize=len(self.chunks[0].items) if self.chunks else 0, repeat=self.repeat,
            wall_s=counted.wall_s, cpu_s=counted.cpu_s, startup_s=counted.startup_s,
            teardown_s=counted.teardown_s, peak_rss=own_peak + sum(peaks.values()),
            status=self.status, host=HOST, items=items, errors=self.errors,
            result_sample=self.result_sample, t0_ns=counted.t0,
            worker_info=_worker_info(self.records, backend.worker_info),
            restarts=self.restarts, family=str(self.backend_cls.family),
            initializer_s=[r.init_s for r in self.records if r.init_s is not None])

    def _origin(self) -> int:
        """The trial's t0: a child that ran it timed it itself (talking to it is not the
        executor's time)."""
        child = self.first_backend.child if self.first_backend is not None else None
        return child.started_ns if child is not None and child.started_ns is not None else self.t0

    def _collect_item_errors(self) -> None:
        for record in self.records:
            for item, kind, message in record.errors:
                self.errors.append(self._error(item, kind, message))
        incidents = self.backend.incidents  # a worker lost and recovered from (dask)
        self.errors.extend({"executor": self.backend_cls.name, "item": None, **incident}
                           for incident in incidents)
        incidents.clear()

    def _readings(self, items: ItemColumns, own_cpu1: float, children_cpu1: float,
                  worker_cpu: float) -> Readings:
        first = self.first_backend.child if self.first_backend is not None else None
        last = self.backend.child  # the same child, or the one a restart ran the rest in
        timed = first is not None and last is not None and first.started_ns is not None
        return Readings(
            t0=self.t0, t_last=self.t_last, t_close=self.t_close, t_end=self.t_end,
            child_t0=first.started_ns if timed and first is not None else None,
            child_t_last=last.last_record_ns if timed and last is not None else None,
            child_t_end=last.closed_ns if timed and last is not None else None,
            first_item_start=int(items.start_ns.min()) if len(items) else None,
            own_cpu=own_cpu1 - self.own_cpu0 if last is None else 0.0,
            children_cpu=children_cpu1 - self.children_cpu0,
            untimed_children_cpu=last.untimed_cpu_s if last is not None else 0.0,
            worker_cpu=worker_cpu)


@dataclass(frozen=True)
class Readings:
    """What a trial read, raw: clock readings (ns) on this process's clock, and a child's own
    when a child ran the trial; CPU seconds."""

    t0: int
    t_last: int  # when the last record arrived (t0: none did)
    t_close: int  # when closing the pool began
    t_end: int  # when it was closed
    child_t0: int | None  # a child that ran the trial: its own readings, waits taken out
    child_t_last: int | None
    child_t_end: int | None
    first_item_start: int | None  # the first item's start, ns since the trial's t0
    own_cpu: float  # this process's, when the executor's work is counted here
    children_cpu: float  # reaped children's
    untimed_children_cpu: float  # of that, what came before the trial (a child's start-up)
    worker_cpu: float  # as the workers reported it


@dataclass(frozen=True)
class Counted:
    t0: int
    wall_s: float
    startup_s: float
    teardown_s: float
    cpu_s: float


def account(r: Readings) -> Counted:
    """The trial's time and CPU from its readings."""
    t0, t_last, t_end = r.t0, r.t_last, r.t_end
    if t_last == t0:
        t_last = r.t_close
    if r.child_t0 is not None:  # timed by the child that ran it
        t0 = r.child_t0
        t_last = r.child_t_last or t_last
        t_end = r.child_t_end or t_end
        t_last = min(t_last, t_end)
    # A child reaped in this trial brings its whole CPU, start-up before t0 included: take
    # the part the backend says came before the trial off.
    children_cpu = max(0.0, r.children_cpu - r.untimed_children_cpu)
    startup_ns = r.first_item_start if r.first_item_start is not None else r.t_close - t0
    return Counted(t0=t0, wall_s=(t_end - t0) / 1e9, startup_s=startup_ns / 1e9,
                   teardown_s=(t_end - t_last) / 1e9,
                   cpu_s=r.own_cpu + max(children_cpu, r.worker_cpu))


# --- helpers ------------------------------------------------------------------------------------

def _tree_usage() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _own_peak_rss(reset_worked: bool) -> int:
    if reset_worked:
        found = peak_rss()
        if found is not None:
            return found
    return int(psutil.Process().memory_info().rss)


def _alone(chunks: Sequence[Chunk], item: int) -> Chunk:
    """A chunk of one item, from the trial's chunks."""
    for chunk in chunks:
        if chunk.first <= item < chunk.first + len(chunk.items):
            return chunk._replace(first=item, items=chunk.items[item - chunk.first:
                                                               item - chunk.first + 1])
    raise KeyError(item)


def not_reported(chunks: Sequence[Chunk], records: Sequence[ChunkRecord],
                  skip: set[int]) -> list[Chunk]:
    """The chunks that sent no record, without the items in ``skip`` (split around them).

    A chunk's own record covers all its items: a record of one stopped item that happens to be
    its chunk's first (limits.py's, for an item past --timeout) does not report the rest.
    """
    reported = {(r.first, len(r.start_ns)) for r in records}
    rest = []
    for chunk in chunks:
        if (chunk.first, len(chunk.items)) in reported:
            continue
        start = 0
        for offset in range(len(chunk.items) + 1):
            if offset == len(chunk.items) or chunk.first + offset in skip:
                if offset > start:
                    rest.append(chunk._replace(first=chunk.first + start,
                                               items=chunk.items[start:offset]))
                start = offset + 1
    return rest


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
    its own at close (``ChildReadings.closing_cpu``, ``closing_rss``); ``cpu_reported`` holds
    each pid's reading at the end of earlier trials, so a reused pool's CPU is counted once.
    """
    if backend.in_process:
        return 0.0, {}
    cpu: dict[int, float] = {}
    rss: dict[int, int] = {}
    for r in records:
        cpu[r.pid] = max(cpu.get(r.pid, 0.0), r.process_cpu_s)
        rss[r.pid] = max(rss.get(r.pid, 0), r.process_maxrss)
    child = backend.child
    for pid, total in (child.closing_cpu if child else {}).items():
        cpu[pid] = max(cpu.get(pid, 0.0), total)
    for pid, peak in (child.closing_rss if child else {}).items():
        rss[pid] = max(rss.get(pid, 0), peak)
    reported = backend.cpu_reported
    used = math.fsum(max(0.0, total - reported.get(pid, 0.0)) for pid, total in cpu.items())
    reported.update(cpu)
    return used, rss
