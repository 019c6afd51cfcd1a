"""``poolscope.map``: the real work, run on the configuration the work itself shows best.

``list(map(fn, items))``'s results, in item order, but the first items are the calibration: they
run in batches under each candidate configuration (serial, a thread pool, a process pool), with
the runner, the probe and the backends that ``compare`` uses, and the verdict's own rule
(analysis/decide.py) picks the configuration from them; the rest run on it. Calibration items are
real work: their results are kept and returned in place, so no item is computed twice.

How it decides:

- Serial goes first, one item, then batches that grow until one takes about ``BATCH_S`` / 2.
  When the items run out in serial calibration, or the known remaining work is shorter than
  starting a pool (``SHORT_WORK_S``), everything runs serially and no pool is ever started.
  The serial batches also say how many cores an item keeps busy (``busy``: the process's CPU
  time over the wall): under 1 for items that wait, more with native threads.
- Threads start as many as the items can overlap, cores / busy (the cores for items that
  compute, more for items that wait: as many as their starts repay, √(work left /
  ``THREAD_START_S``), or ``MAX_START_THREADS`` for a count of unknown length), and double
  while that pays.
- Then rounds: each candidate runs one batch per round on a pool started once and kept; a
  batch's time per item is one sample (a pool's: from its first item's start to its last one's
  end, the batch's latency recurring only once per window of the rest). Candidates without a
  sample go first; a candidate's batches double from ``MIN_BATCH_S`` as it stays in
  contention, with ``ITEMS_PER_WORKER`` items per process (or per thread, when the cores limit
  them) at least. A candidate runs no batch once it could not win (speed_bounds.py): the best
  it could do (serial's speed times the items it can overlap, or its pickles through a pipe)
  is under 1.1× serial's or already beaten; its threads kept no more cores busy than serial
  (its items take turns: the GIL); a pool not started yet could not save twice its start on
  the items left; or every batch of it was clearly slower than another's (``CLEARLY_SLOWER``).
- After ``MIN_ROUNDS`` rounds the rule decides (a more complex configuration only when shown
  faster than every simpler one); while it is undecided, rounds go on for the configurations
  in contention, within ``budget`` seconds of calibration and at most
  ``MAX_CALIBRATION_SHARE`` of a known item count. When the items left would not pay for two
  more rounds, a candidate ``LAST_ROUND_FACTOR`` faster in every batch is taken. Undecided
  then, it takes the simplest configuration not shown slower (``MapDecision.inconclusive``).
- The rest runs on the chosen pool in windows of items (bounded memory for any iterator), in
  chunks that shrink towards each window's end (``_guided_sizes``); a drift in the items'
  cost makes the decision again.

An item's exception is raised when its result is reached, as ``Executor.map`` does: ``map``
returns the results only if every item succeeded, and raises the first failed item's exception
otherwise (its other results are lost, as with ``list(map(...))``). Ctrl-C stops the workers and
raises KeyboardInterrupt.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._errors import UsageError
from ._format import count
from .analysis.decide import (
    EQUIVALENT,
    IO_WORKER_GAIN,
    MAX_IO_WORKERS,
    Arm,
    Decision,
    decide,
    simplicity,
)
from .backends import Backend, get_backend, resolve
from .environment import usable_cores
from .families import CLUSTER, PROCESS, SERIAL, THREAD
from .map_call import (
    InitCapture,
    InitializerFailed,
    ItemFailed,
    Raised,
    call_here,
    capture,
    initializer_name,
)
from .map_record import MapRecord, StoreOption, open_record
from .measure import native
from .measure.board import Board
from .measure.probe import Chunk, ChunkRecord, failure_of, is_coroutine_function
from .measure.runner import auto_chunksize, run_trial
from .model import TrialResult
from .speed_bounds import (
    TRANSFER_MATTERS,
    Bound,
    best_possible,
    overlap,
    pickled_size,
    start_cost_s,
    started,
)

__all__ = ["DEFAULT_CANDIDATES", "InitializerFailed", "ItemFailed", "MapDecision", "Raised", "map",
           "map_stream"]

DEFAULT_CANDIDATES = ("serial", "thread", "process-pool")
BATCH_S = 0.02  # serial calibration grows its batches to about half this
MIN_BATCH_S = 0.005  # serial time a calibration batch aims at, at least: short work's
MAX_BATCH_S = 0.1  # and at most: for work of BATCH_SHARE⁻¹ × this or more
BATCH_SHARE = 0.015
MAX_BATCH = 100_000  # items in one calibration batch (memory: items, results and their pickles)
ASYNC_TASKS = 64  # coroutines awaited at once by the asyncio candidate, by default
MAX_AHEAD = 100_000  # items of an iterator read ahead, at most, to tell whether the work is short
MIN_ROUNDS = 3  # batches per candidate before the rule is asked: an interval needs 3 samples
# A candidate whose batches all took this many times another's (by the batches each ran) is out
CLEARLY_SLOWER = {1: 5.0, 2: 2.0}
LAST_ROUND_FACTOR = 1.25  # with too few items left for two more rounds: _last_round
BOUND_MARGIN = 0.8  # a candidate's best possible, this much slower than another's worst: out
MAX_START_THREADS = 64  # threads for items that wait, of an unknown count, before _more_threads
THREAD_START_S = 170e-6  # starting a pool thread here (150-180 µs for 64-256 threads)
ITEMS_PER_WORKER = 4  # a calibration batch's short items per worker, at most: _least_batch
LEAST_WORKER_S = 0.015  # a calibration batch's time per worker, at least, in those items
MAX_ROUNDS = 10
DEFAULT_BUDGET_S = 1.0  # calibration's wall time, at most (whole batches: it may pass it a little)
MAX_CALIBRATION_SHARE = 0.5  # of a known item count, at most, in calibration
SHORT_WORK_S = 0.05  # known remaining work below this runs serially: a pool costs as much
PIECE_S = 0.005  # a serial loop hands its results over in pieces of about this long, at most
REST_CHUNK_S = 0.05  # a worker's time per chunk in the rest's windows: at most (_guided_sizes)
GUIDED_MIN_S = 0.001  # and at least
WINDOW_S = 0.25  # the rest runs in windows of about this long, each sized by the one before
SCALING = 0.5  # threads at this share of a linear speed-up or more are tried twice as many
DRIFT = 4.0  # a window's time per item this many times the first window's, or 1/DRIFT of it,
DRIFTED_WINDOWS = 2  # in this many windows in a row, is a drift: the decision is made again
MAX_REVISITS = 3


@dataclass
class MapDecision:
    """What ``map`` chose and why; ``calibration`` holds each candidate's per-item times (s)."""

    executor: str
    workers: int
    how: str  # "faster", "equivalent", "only", "inconclusive", "short work"
    reason: str
    calibration: dict[str, list[float]] = field(default_factory=dict)
    calibration_items: int = 0
    items: int = 0
    # Each time the items' cost drifted after a decision and it was made again: at which item,
    # the time per item before and then, and the new decision's executor, workers, how, reason.
    revisits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def inconclusive(self) -> bool:
        return self.how == "inconclusive"


@dataclass
class _Candidate:
    name: str
    workers: int
    cls: type[Backend]
    backend: Backend | None = None
    per_item_s: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)  # cores each batch kept busy (CPU / wall)
    broken: str | None = None
    slower: str | None = None  # out of calibration: clearly slower than another candidate

    @property
    def out(self) -> bool:
        return self.broken is not None or self.slower is not None

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.name, self.workers, 0)

    @property
    def label(self) -> str:
        return self.name if self.name == "serial" else f"{self.name} ×{self.workers}"


class _AutoMap:
    """One call of ``map``: its items, its results, its pools."""

    def __init__(self, fn: Callable[..., Any], items: Iterable[Any], executors: Sequence[str],
                 max_workers: int | None, star: bool, budget_s: float,
                 sink: Callable[[list[Any]], None], chunksize: int | None = None,
                 on_decision: Callable[[MapDecision], None] | None = None,
                 record: MapRecord | None = None,
                 initializer: Callable[..., Any] | None = None, initargs: Iterable[Any] = (),
                 native_threads: int | None = None, progress: bool = False) -> None:
        self.call = capture(fn, star, initializer, tuple(initargs))
        # run_here's bare loop calls the function itself: it runs the initializer first
        self.init_call = self.call if isinstance(self.call, InitCapture) else None
        self.native_threads = native_threads
        self.record = record
        self.serial_trial: int | None = None  # the serial rest's trial, once it began
        self.source: Iterator[Any] = iter(items)
        # A sequence is sliced (a range's slice is a range: no list of its items is built).
        self.sequence = items if isinstance(items, Sequence) else None
        self.known = len(items) if isinstance(items, Sequence) else None
        self.ahead: list[Any] = []  # items read ahead of take(), to know a short iterator's end
        self.taken = 0
        # Results not yet handed to the sink, the first of them item ``handed``'s: a finished
        # prefix goes as soon as it is complete, so memory holds about one batch of results.
        self.pending: list[Any] = []
        self.handed = 0
        self.sink = sink
        self.stopping = False  # set from any thread: no batch starts after it
        self.finished = False  # every item mapped
        self.first_failure: Raised | None = None  # the first item's failure handed over
        self.stop_at_failure = False  # then set stopping
        self.chunksize = chunksize
        self.on_decision = on_decision
        self.progress: Any = None
        if progress:  # counted as results are handed over, a list at a time
            self._show_progress()
        self.decision: MapDecision | None = None
        self.budget_s = budget_s
        self.unit_s = 0.0  # serial's time per item, before a candidate has its own
        self.batch_s = BATCH_S  # the time a calibration batch aims at
        self.board = Board()
        self.trials = 0
        cores = self.cores = usable_cores()
        # Cores a serial calibration batch kept busy (the process's CPU time over its wall):
        # under 1 for items that wait, 1 for items that compute, more for native threads.
        self.busy: float | None = None
        self.sized_threads = max_workers is None  # threads sized from ``busy`` once known
        self.moved: int | None = None  # the first item's larger pickle: argument or result
        self.candidates = []
        for name in executors:
            cls = resolve(name)
            if not cls.family.pooled:
                workers = 1
            elif max_workers is not None:
                workers = max_workers
            else:  # until _size_threads knows better: ThreadPoolExecutor's; one process a core
                workers = (ASYNC_TASKS if cls.family.one_thread
                           else min(32, cores + 4) if cls.family.shares_gil else cores)
            self.candidates.append(_Candidate(name, cls.effective_workers(workers), cls))

    # --- items and results -------------------------------------------------------------------
    def take(self, n: int) -> Sequence[Any]:
        if self.sequence is not None:
            batch = self.sequence[self.taken:self.taken + n]
            self.taken += len(batch)
            return batch
        batch, self.ahead = self.ahead[:n], self.ahead[n:]
        batch += itertools.islice(self.source, n - len(batch))
        self.taken += len(batch)
        return batch

    def remaining(self, up_to: int) -> int | None:
        """How many items are left, when that is known or when at most ``up_to`` are (read
        ahead, bounded); None when more than ``up_to`` are left of an iterator."""
        if self.known is not None:
            return self.known - self.taken
        self.ahead += itertools.islice(self.source, max(0, up_to + 1 - len(self.ahead)))
        return len(self.ahead) if len(self.ahead) <= up_to else None

    def _collect(self, _trial: int, record: ChunkRecord) -> None:
        if self.record is not None:  # an exception the function raised is its item's failure
            failed = [(record.first + offset, *failure_of(value.exc))
                      for offset, value in enumerate(record.results) if type(value) is Raised
                      ] if Raised in builtins.map(type, record.results) else []
            self.record.chunk(record, failed)
        start = record.first - self.handed
        self.pending[start:start + len(record.results)] = record.results
        for item, kind, message in record.errors:
            if not isinstance(self.pending[item - self.handed], Raised):
                self.pending[item - self.handed] = Raised(ItemFailed(item, kind, message))
        self._hand_over()

    def _hand_over(self) -> None:
        """Give the sink the finished results that lead the pending ones."""
        done = 0
        for value in self.pending:
            if value is _MISSING:
                break
            done += 1
        if done:
            ready = self.pending[:done]
            del self.pending[:done]
            self.handed += done
            if self.first_failure is None and Raised in builtins.map(type, ready):
                self._failed(next(v for v in ready if type(v) is Raised))
            self.sink(ready)

    def _failed(self, failure: Raised) -> None:
        self.first_failure = failure
        if self.stop_at_failure:
            self.stopping = True

    def run_batch(self, candidate: _Candidate, batch: Sequence[Any], rest: bool = False
                  ) -> float:
        """Run ``batch`` (the next items) on the candidate; its time per item (_items_time).
        Items lost with a broken pool run serially here, and the candidate is out. ``rest``:
        a window of the rest, in chunks that shrink towards its end (_guided_sizes)."""
        if self.stopping:
            raise _Stopped
        if not candidate.cls.family.pooled:
            return self.run_here(batch, rest=False)
        first = self.handed + len(self.pending)
        self.pending.extend([_MISSING] * len(batch))
        if rest and not self.chunksize and candidate.per_item_s:
            item_s = float(np.median(candidate.per_item_s)) * candidate.workers
            sizes = _guided_sizes(len(batch), candidate.workers, item_s)
        else:
            chunksize = self.chunksize or auto_chunksize(len(batch), candidate.workers)
            sizes = [chunksize] * math.ceil(len(batch) / chunksize)
        chunks, offset = [], 0
        for size in sizes:
            chunks.append(Chunk(first + offset, batch[offset:offset + size]))
            offset += size
        if candidate.backend is None and candidate.cls.family.pooled:
            candidate.backend = candidate.cls(self.call, candidate.workers)
            candidate.backend.start()
        trial = run_trial(self.trials, candidate.cls, self.call, candidate.workers, chunks,
                          on_chunk=self._collect, backend=candidate.backend, board=self.board,
                          sample_results=False)
        self.trials += 1
        if self.record is not None:
            self.record.trial(trial)
        if trial.status == "interrupted":
            raise KeyboardInterrupt
        if trial.status == "failed" or trial.restarts:  # run_trial closed the kept pool
            candidate.backend = None
        for error in trial.errors:  # items that ended a worker: reported, not run again
            item = error.get("item")
            if item is not None and first <= item < self.handed + len(self.pending) and (
                    self.pending[item - self.handed] is _MISSING):
                self.pending[item - self.handed] = Raised(ItemFailed(
                    item, str(error.get("kind")), str(error.get("message"))))
        if trial.status == "failed":  # the rest of the batch finishes here; the pool is out
            candidate.broken = "; ".join(str(e.get("message")) for e in trial.errors[:2])
            for i in range(first, first + len(batch)):
                if self.pending[i - self.handed] is _MISSING:
                    self.pending[i - self.handed] = call_here(self.call, batch[i - first])
        self._hand_over()
        if trial.wall_s > 0:
            candidate.busy.append(trial.cpu_s / trial.wall_s)
        # Large pickles' way back follows their items' end: their transfer is the items' cost.
        moves = candidate.cls.family.pickles and (
            self.moved is None or self.moved >= TRANSFER_MATTERS)
        seconds = trial.wall_s if moves else _items_time(trial, len(batch))
        return seconds / max(1, len(batch))

    # --- deciding ----------------------------------------------------------------------------
    def decide(self) -> tuple[_Candidate, MapDecision]:
        serial = next((c for c in self.candidates if not c.cls.family.pooled), None)
        probe = serial or self.candidates[0]
        began = time.monotonic()
        size, per_item = 1, 0.0
        while True:  # serial batches that grow until one takes about BATCH_S / 2
            batch = self.take(size)
            if not batch:
                return probe, self._only(probe, "short work",
                                         "every item ran in the first, serial batches")
            per_item = self.run_batch(probe, batch)
            probe.per_item_s.append(per_item)
            if per_item * len(batch) >= BATCH_S / 2 or size >= MAX_BATCH:
                break
            size = min(MAX_BATCH, size * (8 if per_item * size < BATCH_S / 50 else 2))
        probe.per_item_s = [per_item]  # the smaller batches' fixed costs are not the items'
        left = self.remaining(min(MAX_AHEAD, int(SHORT_WORK_S / max(per_item, 1e-9)) + 1))
        if left is not None and left * per_item < SHORT_WORK_S:
            return probe, self._only(probe, "short work",
                                     f"the remaining work, about {left * per_item * 1e3:.0f} "
                                     "ms serially, is shorter than starting a pool")
        # Longer work affords longer batches, whose samples are less noisy: a share of it.
        work_s = (left if left is not None else MAX_AHEAD) * per_item
        batch_s = min(MAX_BATCH_S, max(MIN_BATCH_S, BATCH_SHARE * work_s))
        self.unit_s, self.batch_s = per_item, batch_s
        if len(self.candidates) == 1:
            return probe, self._only(probe, "only", "the only candidate")
        self._size_threads(left)
        chosen, decision = self._rounds(began)
        return self._more_threads(chosen, decision, began)

    def _batch_size(self, candidate: _Candidate) -> int:
        """Items for about ``batch_s`` of the candidate's time (serial's per item until it
        has a sample), ``_least_batch`` at least. A candidate's batches double from
        MIN_BATCH_S up to that as it stays in contention: one that is clearly slower costs
        little before it is out."""
        per_item = float(np.median(candidate.per_item_s)) if candidate.per_item_s else (
            self.unit_s)
        target = min(self.batch_s, MIN_BATCH_S * 2 ** len(candidate.per_item_s))
        return max(self._least_batch(candidate),
                   min(MAX_BATCH, int(target / max(per_item, 1e-9))))

    def _least_batch(self, candidate: _Candidate) -> int:
        """An item per worker; for processes, and for threads no more than the cores can run
        at once (the pools the GIL or the cores limit), LEAST_WORKER_S of each worker's time
        (ITEMS_PER_WORKER items at most): with a short item or two each, one worker woken
        late runs the batch alone, and the batch's wall (and the cores it kept busy,
        _takes_turns) say the pool is no faster than serial."""
        family, workers = candidate.cls.family, candidate.workers
        if family.pickles or (family.shares_gil and workers <= 2 * self.cores):
            each = math.ceil(LEAST_WORKER_S / max(self.unit_s, 1e-9))
            return workers * max(1, min(ITEMS_PER_WORKER, each))
        return workers

    def _size_threads(self, left: int | None) -> None:
        """Threads (unless max_workers says how many): as many as the items can keep busy. An
        item that keeps b cores busy (``busy``: under 1 when it waits) lets about cores / b of
        them overlap: the cores for items that compute, more for items that wait (at most
        MAX_START_THREADS, and no more than the items left); ``_more_threads`` goes on from
        there."""
        if not self.sized_threads or self.busy is None:
            return
        workers = max(self.cores, min(MAX_IO_WORKERS, round(self._overlap())))
        if left is None:
            workers = min(workers, MAX_START_THREADS)
        else:  # W threads cost W starts and take about left / W rounds: √(work / start) is best
            worth = math.sqrt(left * self.unit_s / THREAD_START_S)
            workers = max(1, min(workers, left, max(self.cores, round(worth))))
        for candidate in self.candidates:
            if candidate.cls.family == THREAD and candidate.backend is None:
                candidate.workers = candidate.cls.effective_workers(workers)

    def _overlap(self) -> float:
        """How many items can run at once before the cores are the limit (cores / busy)."""
        return overlap(self.cores, self._busy)

    @property
    def _busy(self) -> float:
        """Cores an item keeps busy: ``busy`` once measured, one core before."""
        return self.busy if self.busy is not None else 1.0

    def _best_possible(self, candidate: _Candidate) -> Bound | None:
        """The least time per item the candidate could reach (speed_bounds.py), from serial's
        samples; None without them."""
        serial = next((c for c in self.candidates if not c.cls.family.pooled), None)
        if serial is None or serial is candidate or not serial.per_item_s:
            return None
        moved = self.moved if candidate.cls.family.pickles else None
        return best_possible(float(np.median(serial.per_item_s)), candidate.workers,
                             self.cores, self._busy, moved)

    def _moved_bytes(self, item: Any, result: Any) -> int:
        """The larger pickle of an item's argument and result, when a candidate would move
        them between processes (0 otherwise). Measured as the result is made: map keeps no
        reference to a result once handed over."""
        if not any(c.cls.family.pickles for c in self.candidates):
            return 0
        return max((size for size in (pickled_size(item), pickled_size(result)) if size),
                   default=0)

    def _ruled_out(self, candidate: _Candidate, among: Sequence[_Candidate],
                   factor: float | None = None) -> bool:
        """Whether more batches could not make the candidate the choice (then it is out, with
        ``slower`` saying why): the best it could do (``_best_possible``) is under 1 +
        EQUIVALENT times serial's speed, or another's slowest batch was faster than
        BOUND_MARGIN × that best; a pool not started yet could not save twice its start on
        the items left; or every batch of it took ``factor`` (default CLEARLY_SLOWER by the
        batches each has run) times per item another's slowest."""
        best = self._best_possible(candidate)
        if best is not None and best.speedup < 1 + EQUIVALENT:
            candidate.slower = (f"{candidate.label} could not win: {best.why} leave it at most "
                                f"{best.speedup:.2f}× serial's speed, not enough to be shown "
                                "faster")
            return True
        if self._takes_turns(candidate):
            return True
        if best is not None and self._needs_warm(candidate):
            left = self.remaining(MAX_AHEAD)
            serial_s = best.per_item_s * best.speedup
            cost = start_cost_s(candidate.cls.family, candidate.workers)
            if left is not None and left * (serial_s - best.per_item_s) < 2 * cost:
                candidate.slower = (
                    f"{candidate.label} could not repay its start: the {left} items left "
                    f"would save at most {left * (serial_s - best.per_item_s) * 1e3:.0f} ms on "
                    f"it, starting it costs about {cost * 1e3:.0f} ms")
                return True
        rivals = [o for o in among if o is not candidate and not o.out and o.per_item_s]
        for other in rivals:
            if candidate.per_item_s:
                rounds = min(len(candidate.per_item_s), len(other.per_item_s))
                times = factor or CLEARLY_SLOWER.get(rounds, CLEARLY_SLOWER[max(CLEARLY_SLOWER)])
                if min(candidate.per_item_s) > times * max(other.per_item_s):
                    candidate.slower = (
                        f"{candidate.label} was clearly slower: each of its "
                        f"{count(len(candidate.per_item_s), 'batch', 'batches')} took more "
                        f"than {times:g}× the "
                        f"time per item of {other.label}'s slowest")
                    return True
            if best is not None and max(other.per_item_s) < BOUND_MARGIN * best.per_item_s:
                candidate.slower = (
                    f"{candidate.label} could not win: {best.why} leave it at most "
                    f"{best.speedup:.1f}× serial's speed, and {other.label}'s batches were "
                    "faster than that")
                return True
        return False

    def _takes_turns(self, candidate: _Candidate) -> bool:
        """Threads (or coroutines) whose every batch kept under 1 + EQUIVALENT times the cores
        serial kept busy: their items take turns (the GIL, or one event loop), and at the same
        CPU per item they cannot run faster than serial by more than that. Read within each
        batch (CPU over its wall), this holds on a machine whose speed drifts between batches,
        where the walls need many rounds to tell."""
        if not candidate.cls.family.shares_gil or not candidate.busy or not self.busy:
            return False
        kept = max(candidate.busy)
        if kept >= (1 + EQUIVALENT) * self.busy:
            return False
        candidate.slower = (f"{candidate.label} could not win: its batches kept at most "
                            f"{kept:.2f} cores busy, serially {self.busy:.2f}: its items take "
                            "turns (the GIL), no faster than serial")
        return True

    def _last_round(self, active: list[_Candidate]) -> bool:
        """Whether the items left would not pay for two more rounds: then calibration ends
        here, a candidate is taken only when every batch of it ran LAST_ROUND_FACTOR times
        faster per item than every other's slowest (the rule's simplest not shown slower
        otherwise), and the items left run on it."""
        if len(active) < 2 or not all(c.per_item_s for c in active):
            return False  # a candidate runs one batch at least
        need = sum(self._batch_size(c) + (c.workers if self._needs_warm(c) else 0)
                   for c in active)
        left = self.remaining(2 * need)
        if left is None or left >= 2 * need:
            return False
        self._still_in(active, [c for c in active
                                if not self._ruled_out(c, active, LAST_ROUND_FACTOR)])
        return True

    @staticmethod
    def _still_in(before: list[_Candidate], after: list[_Candidate]) -> list[_Candidate]:
        """``after``, the candidates left once the rules ran; when they ruled every one out
        (each one's noisy batches against another's: serial clearly slower than threads whose
        items take turns), the simplest of ``before`` stays in."""
        if after or not before:
            return after
        simplest = min(before, key=lambda c: simplicity(c.name, c.workers,
                                                        {c.name: c.cls.family}))
        simplest.slower = None
        return [simplest]

    def _more_threads(self, chosen: _Candidate, decision: MapDecision,
                      began: float) -> tuple[_Candidate, MapDecision]:
        """Threads that scale with their number wait more than they compute (I/O, sleeps, C
        code without the GIL): as ``run`` explores an io-bound workload, the count doubles
        while a doubling pays off (cuts the time per item by IO_WORKER_GAIN, median of two
        batches each of the same size), within the calibration's budget."""
        serial = next((c for c in self.candidates if not c.cls.family.pooled), None)
        if (chosen.cls.family != THREAD or serial is None or not serial.per_item_s
                or decision.how not in ("faster", "only")):
            return chosen, decision
        speedup = float(np.median(serial.per_item_s) / np.median(chosen.per_item_s))
        if speedup < SCALING * chosen.workers or chosen.workers >= self._overlap():
            return chosen, decision
        tried = [f"{chosen.label} ran {speedup:.1f}× serial's speed"]
        while chosen.workers * 2 <= MAX_IO_WORKERS and not self._spent(began):
            more = _Candidate(chosen.name, chosen.workers * 2, chosen.cls)
            left = self.remaining(8 * more.workers)
            if left is not None and left < 8 * more.workers:
                break
            self.candidates.append(more)
            batch_size = max(2 * more.workers, self._batch_size(chosen))
            if not self._warm(more):
                break
            walls: dict[int, list[float]] = {chosen.workers: [], more.workers: []}
            for _ in range(2):
                for candidate in (chosen, more):
                    batch = self.take(batch_size)
                    if not batch:
                        break
                    per_item = self.run_batch(candidate, batch)
                    candidate.per_item_s.append(per_item)
                    walls[candidate.workers].append(per_item)
            if min(len(w) for w in walls.values()) < 2:
                break
            pays = float(np.median(walls[more.workers])) * IO_WORKER_GAIN <= float(
                np.median(walls[chosen.workers]))
            tried.append(f"{more.label} {'cut' if pays else 'did not cut'} the time per item "
                         f"by {IO_WORKER_GAIN - 1:.0%}")
            if not pays:
                break
            chosen = more
        if len(tried) == 1:
            return chosen, decision
        decision.executor, decision.workers = chosen.name, chosen.workers
        decision.reason += "; then, as threads scaled: " + ", ".join(tried)
        decision.calibration = {c.label: list(c.per_item_s) for c in self.candidates
                                if c.per_item_s}
        decision.calibration_items = self.taken
        return chosen, decision

    @staticmethod
    def _needs_warm(candidate: _Candidate) -> bool:
        """A pool of processes (or interpreters) not started yet: its start is no sample's."""
        return candidate.backend is None and not candidate.cls.family.quick_start

    def _warm(self, candidate: _Candidate) -> bool:
        """A pool's first batch, an item per worker: it starts the pool, not a sample (threads
        start in microseconds: their first batch is a sample). False: the items ran out."""
        if not self._needs_warm(candidate):
            return True
        batch = self.take(candidate.workers)
        if batch:
            began = time.perf_counter()
            self.run_batch(candidate, batch)
            started(candidate.cls.family, candidate.workers,  # less the items' own time
                    time.perf_counter() - began - self.unit_s * math.ceil(
                        len(batch) / candidate.workers))
        return bool(batch)

    def _rounds(self, began: float, among: list[_Candidate] | None = None
                ) -> tuple[_Candidate, MapDecision]:
        """Calibration rounds, from the candidates' samples so far, until the rule decides
        (between those ``among``, when given). In a round, candidates without a sample go
        first, and one already unable to win runs no batch (``_ruled_out``); a pool starts just
        before its first batch (``_warm``)."""
        decision: Decision | None = None
        pool = among or self.candidates
        for candidate in pool:
            candidate.slower = None
        for _ in range(MAX_ROUNDS):
            active = [c for c in pool if not c.out and (
                decision is None or c.key in decision.contenders)]
            if self._last_round(active):
                decision = None
                break
            for candidate in sorted(active, key=lambda c: len(c.per_item_s)):
                if self._ruled_out(candidate, active):
                    continue
                if candidate.per_item_s and self._last_round([c for c in active if not c.out]):
                    return self._settle(None, None, pool)  # the others' first batches left few
                batch = self.take(self._batch_size(candidate)) if self._warm(candidate) else []
                if not batch:  # the items ran out: the samples so far decide what they can
                    live = [c for c in pool if not c.out]
                    for other in live:
                        self._ruled_out(other, live)
                    return self._settle(None, "the items ran out during calibration", pool)
                candidate.per_item_s.append(self.run_batch(candidate, batch))
            active = [c for c in active if not c.out]
            active = self._still_in(active, [c for c in active if not self._ruled_out(c, active)])
            if len(active) == 1:
                decision = decide(self._arms(pool))
                break
            if min(len(c.per_item_s) for c in active) < MIN_ROUNDS:
                continue
            decision = decide(self._arms(pool))
            if not decision.contenders or self._spent(began):
                break
        return self._settle(decision, None, pool)

    def _spent(self, began: float) -> bool:
        """Calibration has had its budget, or its share of a known item count."""
        over = self.known is not None and self.taken >= self.known * MAX_CALIBRATION_SHARE
        return over or time.monotonic() - began > self.budget_s

    def _arms(self, among: list[_Candidate] | None = None) -> list[Arm]:
        families = {c.name: c.cls.family for c in self.candidates}
        return [Arm(c.key, c.label, np.array(c.per_item_s), simplicity(c.name, c.workers,
                                                                        families))
                for c in among or self.candidates if not c.out and c.per_item_s]

    def _settle(self, decision: Decision | None, ended: str | None,
                among: list[_Candidate] | None = None) -> tuple[_Candidate, MapDecision]:
        decision = decision or decide(self._arms(among))
        if decision.chosen is None:
            fallback = next(c for c in self.candidates if c.broken is None or
                            not c.cls.family.pooled)
            return fallback, self._only(fallback, "only", "every other candidate broke")
        chosen = next(c for c in self.candidates if c.key == decision.chosen.key)
        fastest = decision.fastest
        times = {c.label: list(c.per_item_s) for c in self.candidates if c.per_item_s}
        if ended:
            reason = ended
        elif decision.how == "faster" and chosen is min(
                (c for c in among or self.candidates if c.per_item_s and c.broken is None),
                key=lambda c: simplicity(c.name, c.workers, {c.name: c.cls.family})):
            reason = (f"{chosen.label}, the simplest, was the fastest, and every other "
                      "candidate was shown slower")
        elif decision.how == "faster":
            reason = f"{chosen.label} was shown faster than every simpler candidate"
        elif decision.how == "equivalent":
            reason = (f"{chosen.label} was shown within 10% of the fastest "
                      f"({fastest.label if fastest else '?'}) and is simpler")
        elif decision.how == "inconclusive":
            reason = ("calibration ended undecided: the simplest candidate not shown slower "
                      f"than the fastest ({fastest.label if fastest else '?'})")
        elif any(c.slower for c in self.candidates):
            reason = f"{chosen.label} was the fastest"
        else:
            reason = "the only candidate that did not break"
        broken = [f"{c.label} broke: {c.broken}" for c in self.candidates if c.broken]
        broken += [c.slower for c in self.candidates if c.slower]
        return chosen, MapDecision(chosen.name, chosen.workers, decision.how,
                                   "; ".join([reason, *broken]), times, self.taken)

    def _only(self, candidate: _Candidate, how: str, reason: str) -> MapDecision:
        return MapDecision(candidate.name, candidate.workers, how, reason,
                           {candidate.label: list(candidate.per_item_s)}, self.taken)

    # --- the rest ----------------------------------------------------------------------------
    def work(self) -> MapDecision | None:
        """``run`` with the call's surroundings: its native thread cap (native.capped: this
        process's pools, and the process pools started meanwhile cap their workers') and its
        progress display."""
        with contextlib.ExitStack() as stack:
            if self.native_threads is not None:
                stack.enter_context(native.capped(self.native_threads))
            if self.progress is not None:
                stack.enter_context(self.progress)
            decision = self.run()
        return decision

    def _show_progress(self) -> None:
        """A display of the items done on stderr (present/progress.py): updated when results
        are handed to the sink, and with the configuration once decided."""
        from .present.progress import map_progress

        display = self.progress = map_progress(self.known)
        sink, on_decision = self.sink, self.on_decision

        def counted(values: list[Any]) -> None:
            sink(values)
            display.advance(len(values))

        def decided(decision: MapDecision) -> None:
            display.decided(decision.executor if decision.executor == "serial"
                            else f"{decision.executor} ×{decision.workers}")
            if on_decision is not None:
                on_decision(decision)

        self.sink, self.on_decision = counted, decided

    def run(self) -> MapDecision | None:
        """Map every item, handing results to the sink in order; the decision (None when
        stopped before one was made)."""
        interrupted = False
        try:
            chosen, self.decision = self.decide()
            self._decided(chosen)
            window = _window(self._per_item(chosen), chosen.workers)
            reference: float | None = None  # the first window's time per item
            drifted = 0
            while not self.stopping:
                batch = self.take(window)
                if not batch:
                    self.finished = True
                    break
                if chosen.broken is not None or not chosen.cls.family.pooled:
                    per_item = self.run_here(batch)
                else:
                    per_item = self.run_batch(chosen, batch, rest=True)
                window = _window(per_item, chosen.workers)  # each as long as WINDOW_S
                if reference is None:
                    reference = per_item
                    continue
                far = not reference / DRIFT <= per_item <= reference * DRIFT
                drifted = drifted + 1 if far else 0
                if drifted >= DRIFTED_WINDOWS and len(self.decision.revisits) < MAX_REVISITS:
                    chosen = self._revisit(chosen, reference, per_item)
                    window = _window(self._per_item(chosen), chosen.workers)
                    reference, drifted = None, 0
        except _Stopped:
            pass
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            self.close()
            if self.decision is not None:
                self.decision.items = self.taken
            if self.record is not None:
                self.record.end(self.decision, self.taken, interrupted)
        return self.decision

    @staticmethod
    def _per_item(chosen: _Candidate) -> float:
        return float(np.median(chosen.per_item_s)) if chosen.per_item_s else 0.0

    def _decided(self, chosen: _Candidate) -> None:
        """The other candidates' pools close: they are started again if a revisit needs them."""
        for candidate in self.candidates:
            if candidate is not chosen and candidate.backend is not None:
                backend, candidate.backend = candidate.backend, None
                backend.close()
        if self.on_decision and self.decision is not None:
            self.on_decision(self.decision)

    def _revisit(self, chosen: _Candidate, before: float, now: float) -> _Candidate:
        """The items' cost drifted: calibrate again from fresh samples, then go on with the
        new decision (recorded in the first decision's ``revisits``)."""
        assert self.decision is not None
        first = self.handed + len(self.pending)
        for candidate in self.candidates:
            candidate.per_item_s = []
        self.unit_s, self.batch_s = now, BATCH_S  # the rounds warm what the decision closed
        new_chosen, new = self._rounds(time.monotonic())
        self.decision.revisits.append({
            "at_item": first, "per_item_before_s": before, "per_item_now_s": now,
            "executor": new.executor, "workers": new.workers, "how": new.how,
            "reason": new.reason, "calibration": new.calibration})
        self.decision.executor, self.decision.workers = new.executor, new.workers
        self._decided(new_chosen)
        return new_chosen

    def run_here(self, batch: Sequence[Any], rest: bool = True) -> float:
        """Serially, in this thread: a bare loop over the batch, as ``list(map(fn, batch))``
        runs it — the time serial really costs (the probe's per-item readings would cost short
        items more than they cost) — recorded as one span; its time per item. The serial
        rest's windows are one trial, a calibration batch (``rest`` False) is one of its own.
        Results go to the sink in pieces that double while they take under PIECE_S, so a
        reader gets each long item's result when it is done."""
        first = self.handed
        if not rest:
            trial, self.trials = self.trials, self.trials + 1
        else:
            if self.serial_trial is None:
                self.serial_trial, self.trials = self.trials, self.trials + 1
            trial = self.serial_trial
        if self.init_call is not None:  # before the clock: the initializer is not an item
            self.init_call.initialized()
        source = iter(batch)
        failed: list[tuple[int, str, str]] = []
        piece, done = 1, 0
        began, cpu_began = time.perf_counter_ns(), time.thread_time_ns()
        process_began = time.process_time_ns()
        while done < len(batch):
            piece_began = time.perf_counter_ns()
            values = self._bare(source, min(piece, len(batch) - done), first + done, failed)
            if not done and values and first == 0 and self.moved is None:
                self.moved = self._moved_bytes(batch[0], values[0])
            done += len(values)
            self.handed += len(values)
            if failed and self.first_failure is None:
                self._failed(values[failed[0][0] - first - done + len(values)])
            self.sink(values)
            del values  # the reader's now, and only the reader's
            if self.stopping:
                break
            if time.perf_counter_ns() - piece_began < PIECE_S * 1e9:
                piece *= 2
        ended, cpu_ended = time.perf_counter_ns(), time.thread_time_ns()
        if not rest and ended > began:
            self.busy = (time.process_time_ns() - process_began) / (ended - began)
        if self.record is not None:
            self.record.serial_window(trial, first, done, began, ended, cpu_began,
                                      cpu_ended, failed)
        return (ended - began) / 1e9 / max(1, done)

    def _bare(self, source: Iterator[Any], count: int, first: int,
              failed: list[tuple[int, str, str]]) -> list[Any]:
        """``count`` items of ``source`` through the function, in C's loop where it can; a
        failure is the item's Raised, and is added to ``failed``."""
        failure = self.init_call.initialized() if self.init_call is not None else None
        if failure is not None:  # the initializer raised in this thread: every item fails
            values = [Raised(failure) for _ in itertools.islice(source, count)]
            failed += [(first + i, *failure_of(failure)) for i in range(len(values))]
            return values
        if self.call.star:
            values = [self.call(item) for item in itertools.islice(source, count)]
            failed += [(first + i, *failure_of(v.exc)) for i, v in enumerate(values)
                       if type(v) is Raised]
            return values
        values = []
        while len(values) < count:
            try:  # what the loop appended before an exception stays
                values.extend(builtins.map(self.call.fn,
                                           itertools.islice(source, count - len(values))))
            except (Exception, SystemExit) as exc:
                failed.append((first + len(values), *failure_of(exc)))
                values.append(Raised(exc))
        return values

    def close(self) -> None:
        for candidate in self.candidates:
            if candidate.backend is not None:
                try:
                    candidate.backend.close()
                finally:
                    candidate.backend = None
        self.board.close()


_MISSING = object()


def _items_time(trial: TrialResult, count: int) -> float:
    """A pool batch's time for its items: from the first item's start to the last one's end.

    The batch's latency around it (submitting the chunks, the last results' way back: a few
    ms on a process pool) recurs once per window of the rest, each WINDOW_S long or more,
    where it is about 1% of the time; in a calibration batch of a few items it would be most
    of it, and small batches would look slower per item than the pool will run. The whole
    wall when the trial lost items or has no records of them.
    """
    items = trial.items
    if trial.status != "ok" or trial.restarts or len(items) != count or not count:
        return trial.wall_s
    span_ns = int(items.end_ns.max()) - int(items.start_ns.min())
    return span_ns / 1e9 if 0 < span_ns <= trial.wall_s * 1e9 else trial.wall_s


def _guided_sizes(count: int, workers: int, item_s: float) -> list[int]:
    """Chunk sizes for a window of the rest: each a share of the items left, 1 / (2 ×
    workers), at most REST_CHUNK_S and at least GUIDED_MIN_S of a worker's time (``item_s``
    an item). Large chunks first keep the round trips few; small ones last leave no worker
    idle long at the window's end (four equal chunks per worker, Pool.map's rule, leave one
    idle for up to an eighth of the window: a window's 10% on two workers)."""
    largest = max(1, int(REST_CHUNK_S / max(item_s, 1e-9)))
    smallest = max(1, min(largest, int(GUIDED_MIN_S / max(item_s, 1e-9))))
    sizes, left = [], count
    while left > 0:
        size = min(left, max(smallest, min(largest, math.ceil(left / (2 * workers)))))
        sizes.append(size)
        left -= size
    return sizes


def _window(per_item_s: float, workers: int) -> int:
    """Items in the next window of the rest: about WINDOW_S of work at the latest time per
    item, enough to keep the workers busy, and bounded (memory)."""
    return max(4 * workers, min(100_000, int(WINDOW_S / max(per_item_s, 1e-8))))


class _Stopped(Exception):
    """``stopping`` was set: no more batches."""


def map(fn: Callable[..., Any], items: Iterable[Any], *,
        executors: Sequence[str] | str | None = None, max_workers: int | None = None,
        star: bool = False, budget: float = DEFAULT_BUDGET_S, chunksize: int | None = None,
        initializer: Callable[..., Any] | None = None, initargs: Iterable[Any] = (),
        native_threads: int | None = None, progress: bool = False,
        store: StoreOption = True, decision: list[MapDecision] | None = None) -> list[Any]:
    """``list(map(fn, items))`` (``itertools.starmap`` with ``star=True``: a list or tuple item
    is positional arguments, a dict keywords), run on the configuration poolscope picks while
    doing the work (see the module's docstring). ``executors``: the candidates (default serial,
    thread, process-pool); ``max_workers``: workers of every pool (default: for threads as many
    as the items can overlap, from the cores they keep busy serially, as many as their starts
    repay, and doubled while that pays; the usable cores for processes); ``budget``:
    calibration's seconds, at most; ``chunksize``: items per task sent to a pool (default:
    about four chunks per worker in each calibration batch, then chunks that shrink towards
    each window's end); ``store``: where the run is recorded (True: the default store,
    $POOLSCOPE_STORE or .poolscope/poolscope.db; a path; False: not recorded); ``decision``: a
    list that gets the MapDecision appended.

    ``initializer(*initargs)``, as in concurrent.futures, runs once in each worker before the
    first item it runs: in this thread for serial items, in each pool thread, in each process
    (pickled with the function). If it raises, every item of that worker fails with
    InitializerFailed (``map`` raises the first); the other workers go on.
    ``native_threads``: cap native thread pools (BLAS, OpenMP) at that many threads, as
    ``compare`` does: this process's while the map runs (serial and threads), each worker
    process's for its life. ``progress``: show the items done (of how many, for a sequence) on
    stderr while it runs.
    """
    initargs = _initargs(initargs)
    names = _check_options(executors, max_workers, budget, chunksize, fn=fn,
                           initializer=initializer, native_threads=native_threads)
    results: list[Any] = []

    automap = _AutoMap(fn, items, names, max_workers, star, float(budget), results.extend,
                       chunksize, record=open_record(store, fn, list(names), _options(
                           names, max_workers, star, budget, chunksize, initializer, initargs,
                           native_threads, progress)),
                       initializer=initializer, initargs=initargs,
                       native_threads=native_threads, progress=progress)
    automap.stop_at_failure = True  # as list(map(...)): no item after a failure starts
    chosen = automap.work()
    if decision is not None and chosen is not None:
        decision.append(chosen)
    if automap.first_failure is not None:
        raise automap.first_failure.exc
    return results


def map_stream(fn: Callable[..., Any], items: Iterable[Any], sink: Callable[[list[Any]], None],
               *, executors: Sequence[str] | str | None = None, max_workers: int | None = None,
               star: bool = False, budget: float = DEFAULT_BUDGET_S,
               chunksize: int | None = None, initializer: Callable[..., Any] | None = None,
               initargs: Iterable[Any] = (), native_threads: int | None = None,
               progress: bool = False, store: StoreOption = True,
               target: str | None = None) -> MapDecision | None:
    """``map``'s work with every result handed to ``sink`` in item order, a list at a time, as
    soon as it and those before it are done: a failed item's result is a ``Raised`` (its
    exception in ``.exc``), and the rest still run. Bounded memory for any iterator. Returns
    the decision. The options as ``map``'s; ``target``: the name the run is stored under
    (default: the function's module:qualname)."""
    initargs = _initargs(initargs)
    names = _check_options(executors, max_workers, budget, chunksize, fn=fn,
                           initializer=initializer, native_threads=native_threads)
    record = open_record(store, fn, list(names), _options(
        names, max_workers, star, budget, chunksize, initializer, initargs, native_threads,
        progress), target)
    return _AutoMap(fn, items, names, max_workers, star, float(budget), sink,
                    chunksize, record=record, initializer=initializer, initargs=initargs,
                    native_threads=native_threads, progress=progress).work()


def _options(names: Sequence[str], max_workers: int | None, star: bool, budget: float,
             chunksize: int | None, initializer: Callable[..., Any] | None = None,
             initargs: tuple[Any, ...] = (), native_threads: int | None = None,
             progress: bool = False) -> dict[str, Any]:
    """The call's options, as its stored run keeps them (the initializer by name, its
    arguments by repr)."""
    return {"executors": list(names), "max_workers": max_workers, "star": star,
            "budget": budget, "chunksize": chunksize,
            "initializer": None if initializer is None else initializer_name(initializer),
            "initargs": [_short_repr(arg) for arg in initargs],
            "native_threads": native_threads, "progress": bool(progress)}


def _initargs(initargs: Iterable[Any]) -> tuple[Any, ...]:
    if isinstance(initargs, str | bytes) or not isinstance(initargs, Iterable):
        raise UsageError(f"initargs must be a tuple of arguments, got {initargs!r}")
    return tuple(initargs)


def _short_repr(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception:  # a __repr__ that raises
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _check_options(executors: Sequence[str] | str | None, max_workers: int | None,
                   budget: float, chunksize: int | None = None,
                   fn: Callable[..., Any] | None = None,
                   initializer: Callable[..., Any] | None = None,
                   native_threads: int | None = None) -> tuple[str, ...]:
    names = _candidates(executors, fn is not None and is_coroutine_function(fn))
    if max_workers is not None and (not isinstance(max_workers, int) or max_workers < 1):
        raise UsageError(f"max_workers must be a whole number of at least 1, got "
                         f"{max_workers!r}")
    if chunksize is not None and (isinstance(chunksize, bool) or not isinstance(chunksize, int)
                                  or chunksize < 1):
        raise UsageError(f"chunksize must be a whole number of at least 1, got {chunksize!r}")
    if initializer is not None and not callable(initializer):
        raise UsageError(f"initializer must be callable, got {initializer!r}")
    native.validate(native_threads)
    if not (isinstance(budget, int | float) and 0 < budget < math.inf):
        raise UsageError(f"budget must be a number of seconds more than 0, got {budget!r}")
    return names


def _candidates(executors: Sequence[str] | str | None, coroutine: bool = False
                ) -> tuple[str, ...]:
    if coroutine:  # its calls make coroutines: only an event loop runs them
        if executors is not None and _names(executors) != ("asyncio",):
            raise UsageError("an async def function runs on the asyncio candidate only "
                             "(executors=['asyncio'], the default for it)")
        get_backend("asyncio")
        return ("asyncio",)
    names = _names(executors)
    if not names:
        raise UsageError("give at least one candidate executor")
    for name in names:
        cls = get_backend(name)  # a UsageError for unknown or unavailable ones
        if cls.family not in (SERIAL, THREAD, PROCESS):
            kind = "a cluster" if cls.family == CLUSTER else cls.family
            raise UsageError(f"poolscope.map runs serial, thread and process executors on "
                             f"this machine; {name} is {kind}")
    if len(set(names)) != len(names):
        raise UsageError("an executor is listed twice")
    return names


def _names(executors: Sequence[str] | str | None) -> tuple[str, ...]:
    if executors is None:
        names: tuple[str, ...] = DEFAULT_CANDIDATES
    elif isinstance(executors, str):
        names = tuple(e.strip() for e in executors.split(",") if e.strip())
    else:
        names = tuple(executors)
    return names
