"""A run as a Chrome Trace Event file, for ui.perfetto.dev and chrome://tracing.

``write_trace(result, path)`` writes the Trace Event Format's JSON Object Format,
``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}``; ``trace_events(result)``
returns the same document as a dict. The mapping:

* **trial → process.** Every trial of ``result.trial_results`` (not only the representative ones)
  is a process with a small synthetic pid, its position in the run plus 1, named
  ``"thread ×2 · trial 3 (repeat 1)"`` (``process_name``), ordered by ``process_sort_index`` and
  labelled with its wall time and status (``process_labels``).
* **worker lane → thread.** Each worker (pid, thread) of a trial is a thread, lane k (as
  :func:`poolscope.frames.lane_numbers` numbers them: in order of first use) with
  ``tid`` = pid × 100000 + k + 1 (unique in the file, as Perfetto names threads by tid alone),
  named ``"worker 0 · pid 1234"`` when the trial's workers are processes, ``"worker 0 · tid
  5678"`` when they are threads of one process, ordered by ``thread_sort_index``. Thread
  pid × 100000, ``"trial"``, holds one slice spanning the trial's wall time, with its start-up
  and teardown nested inside (the teardown ends 2 ns early: Perfetto truncates each µs value to
  whole ns, and could otherwise see it outlive the trial by a nanosecond).
* **item → complete event** (``"ph": "X"``) on its lane, named ``"item 17"``, category ``item``
  (``item,error`` when it failed). ``ts`` and ``dur`` are microseconds with three decimals, so the
  nanoseconds recorded are kept exactly. ``tdur`` is the item's thread CPU time, clipped to
  ``dur``: the CPU reading also holds the probe's own few hundred nanoseconds and the clocks'
  resolution, so it can exceed a short item's wall time; ``args.cpu_s`` keeps the raw reading.
  ``args`` also has ``item``, ``status``, ``wall_s``, ``core`` (null when unknown), ``os_pid``,
  ``os_tid``; under an executor with addressable workers (dask) ``host``, ``worker`` (its
  address) and ``retried`` (its chunk ran again after a worker was lost); and, for a failed
  item, ``error`` ("Kind: message").
* **overlapping items → async events.** Complete events on one thread must nest, or the viewers
  drop or garble them. Items of a lane are taken in start order; one that starts before the
  lane's previous complete event ended (an asyncio worker, or two workers reported as one) is
  written as a nestable async pair (``"ph": "b"`` / ``"e"``, ``id`` = ``"0x"`` + hex of
  pid << 32 | item) instead, named after its lane (``"worker 0 · overlapping"``, so viewers
  that group async slices by name keep a lane's overlapping items together), with the item's
  number and the same ``args`` as a complete event. No item is dropped; complete events on a
  thread never overlap.
* **items in progress → counter** (``"ph": "C"``, name ``"items"``, series ``"in progress"``:
  Perfetto titles the track "items in progress") per trial, from
  :func:`poolscope.frames.concurrency`; a trial with more than ``MAX_COUNTER_STEPS`` steps gets
  the exact time-weighted mean over ``COUNTER_BINS`` equal bins instead.

**Time zero.** Trials start on ``perf_counter_ns``, system-wide, so by default (``align="run"``)
every event is placed at its real offset from the earliest trial start: all trials share one
axis, and trials run one after another show one after another. ``align="trial"`` puts every
trial's start at 0 instead, to compare trials side by side; it is also used when a trial has no
start time recorded (``t0_ns`` of 0). ``otherData.time_zero`` says which was used.

Big runs: item events are not built as dicts. Their text is formatted by numpy, column by column,
into fixed-width records (numbers right-aligned and padded with spaces, which JSON allows between
tokens; fixed_width_json.py), so a million items take a few seconds, not a minute. A ``.gz``
path is written gzip-compressed; both viewers open it.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import numpy as np

from .. import __version__
from .._errors import UsageError
from ..frames import concurrency, concurrency_binned, lane_numbers, worker_names
from ..measure.probe import STATUS_OK
from ..model import TrialResult
from .fixed_width_json import Choice, Decimal, InString, Int, render

if TYPE_CHECKING:
    from ..result import Result

__all__ = ["COUNTER_BINS", "MAX_COUNTER_STEPS", "trace_events", "write_trace"]

Align = Literal["run", "trial"]

MAX_COUNTER_STEPS = 4000  # more steps than this: the counter is binned
COUNTER_BINS = 2000
_SHAVE_NS = 2  # see _trial_slices
# Thread ids are unique in the file: Perfetto names a thread by its tid alone.
_TIDS_PER_TRIAL = 100_000
_BLOCK = 1 << 16  # rows formatted at once: bounds the memory of the numpy formatting


def write_trace(result: Result, path: str | Path, *, align: Align = "run") -> Path:
    """Write ``result`` as Chrome Trace Event JSON (gzip when the name ends in .gz).

    Raises UsageError ("cannot write the trace to PATH: reason") when the file cannot be written.
    """
    target = check_path(path)
    try:
        with (gzip.open(target, "wb", compresslevel=1) if target.suffix.lower() == ".gz"
              else open(target, "wb")) as out:
            _write(result, out, align)
    except OSError as exc:
        raise UsageError(f"cannot write the trace to {target}: {exc.strerror or exc}") from None
    return target


def trace_events(result: Result, *, align: Align = "run") -> dict[str, Any]:
    """The trace document as a dict: exactly what ``write_trace`` writes, parsed back."""
    buffer = io.BytesIO()
    _write(result, buffer, align)
    return json.loads(buffer.getvalue())


def check_path(path: str | Path) -> Path:
    target = Path(path).expanduser()
    folder = target.parent
    if not folder.is_dir():
        problem = "is not a directory" if folder.exists() else "does not exist"
        raise UsageError(f"cannot write the trace to {target}: "
                         f"the directory {str(folder)!r} {problem}")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write the trace to {target}: "
                         f"the directory {str(folder)!r} is not writable")
    if target.is_dir():
        raise UsageError(f"cannot write the trace to {target}: it is a directory")
    return target


# --- the document ------------------------------------------------------------------------------
def _write(result: Result, out: IO[bytes], align: Align) -> None:
    if align not in ("run", "trial"):
        raise UsageError(f"align must be 'run' or 'trial', got {align!r}")
    trials = list(result.trial_results)
    offsets, time_zero = _offsets(trials, align)
    other = {
        "poolscope": __version__, "schema": "poolscope/1", "run_id": result.run_id,
        "target": result.target, "items": result.n_items, "started_at": result.started_at,
        "time_zero": time_zero, "environment": result.environment,
    }
    out.write(b'{"displayTimeUnit":"ms","otherData":' + _dumps(other)
              + b',\n"traceEvents":[\n')
    events = _Events(out)
    for position, (trial, offset) in enumerate(zip(trials, offsets, strict=True)):
        _trial_events(events, trial, position + 1, offset)
    out.write(b"\n]}\n")


def _offsets(trials: Sequence[TrialResult], align: Align) -> tuple[list[int], str]:
    """Each trial's start on the trace's axis, ns, and what zero is, in words.

    The zero is moved back if an item started before its trial (it cannot on one host, but a
    timestamp must not be negative), so every ``ts`` is at least 0.
    """
    def earliest(t: TrialResult) -> int:
        return min(0, int(t.items.start_ns.min())) if len(t.items) else 0

    if align == "run" and trials and all(t.t0_ns > 0 for t in trials):
        zero = min(t.t0_ns + earliest(t) for t in trials)
        return ([t.t0_ns - zero for t in trials],
                "the first trial's start: trials at their real offsets (perf_counter_ns)")
    why = "" if align == "trial" else " (start times were not recorded)"
    return [-earliest(t) for t in trials], "each trial's own start" + why


class _Events:
    """Writes events separated by commas: whole JSON objects, or blocks of pre-made lines."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.first = True

    def add(self, event: dict[str, Any]) -> None:
        self.out.write((b"" if self.first else b",\n") + _dumps(event))
        self.first = False

    def add_lines(self, blocks: Iterator[np.ndarray]) -> None:
        """Blocks of lines each starting with ",\\n": never the first event of the file."""
        assert not self.first, "bulk lines need an event before them"
        for block in blocks:
            self.out.write(block)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False,
                      default=str).encode("utf-8")


def _num(value: float | None, digits: int = 9) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


# --- one trial ---------------------------------------------------------------------------------
@dataclass
class _Trial:
    """A trial's columns sorted by lane then start, with everything its events need."""

    pid: int
    tid0: int  # the "trial" thread; lane k is thread tid0 + k + 1
    offset: int  # ns from the trace's zero to the trial's start
    item: np.ndarray
    start: np.ndarray  # ns since the trial start
    end: np.ndarray
    cpu: np.ndarray
    core: np.ndarray
    ok: np.ndarray  # bool
    lane: np.ndarray
    os_pid: np.ndarray
    os_tid: np.ndarray
    lane_names: list[str]
    overlapping: np.ndarray  # bool: written as an async pair instead of a complete event
    errors: dict[int, tuple[str, str]]  # item → (kind, message) for failed items
    trial_errors: list[str]  # the executor's own failures, "Kind: message"
    # Executors with addressable workers (dask): each row's worker as an index into
    # ``workers`` ((address, host) pairs; the last is "no worker", the trial's host) and
    # whether its chunk ran again after a worker was lost. None for the others.
    worker: np.ndarray | None = None
    workers: list[tuple[str, str]] | None = None
    retried: np.ndarray | None = None


def _prepare(t: TrialResult, pid: int, offset: int) -> _Trial:
    """Sort the trial's items by lane and start, name the lanes, find the overlapping items."""
    cols = t.items
    lanes = lane_numbers(cols.pid, cols.tid, cols.start_ns, cols.worker)
    order = np.lexsort((cols.end_ns, cols.start_ns, lanes))
    lane = lanes[order].astype(np.int64)
    start, end = cols.start_ns[order].astype(np.int64), cols.end_ns[order].astype(np.int64)
    os_pid, os_tid = cols.pid[order].astype(np.int64), cols.tid[order].astype(np.int64)
    n_lanes = int(lane.max()) + 1 if len(lane) else 0
    first_row = np.searchsorted(lane, np.arange(n_lanes))
    lane_pid, lane_tid = os_pid[first_row], os_tid[first_row]
    names = _lane_names(t, lane_pid, lane_tid)
    errors: dict[int, tuple[str, str]] = {}
    trial_errors: list[str] = []
    for e in t.errors:
        if e.get("item") is None:
            trial_errors.append(f"{e['kind']}: {e['message']}")
        else:
            errors[e["item"]] = (e["kind"], e["message"])
    worker = workers = retried = None
    if t.worker_info:
        workers = [(w["address"], w.get("host") or t.host) for w in t.worker_info]
        workers.append(("", t.host))
        worker = np.where(cols.worker[order] < 0, len(workers) - 1,
                          cols.worker[order]).astype(np.int64)
        retried = cols.retried[order]
    return _Trial(
        pid=pid, tid0=pid * _TIDS_PER_TRIAL, offset=offset,
        item=cols.item[order].astype(np.int64), start=start, end=end,
        cpu=cols.cpu_ns[order].astype(np.int64), core=cols.core[order].astype(np.int64),
        ok=cols.status[order] == STATUS_OK, lane=lane, os_pid=os_pid, os_tid=os_tid,
        lane_names=names, overlapping=_overlapping(lane, start, end), errors=errors,
        trial_errors=trial_errors, worker=worker, workers=workers, retried=retried)


def _trial_events(events: _Events, t: TrialResult, pid: int, offset: int) -> None:
    trial = _prepare(t, pid, offset)
    names = trial.lane_names
    label = f"{t.executor} ×{t.workers} · trial {t.index + 1} (repeat {t.repeat + 1})"
    meta = {"ph": "M", "pid": pid, "tid": trial.tid0}
    events.add({**meta, "name": "process_name", "args": {"name": label}})
    events.add({**meta, "name": "process_sort_index", "args": {"sort_index": pid}})
    events.add({**meta, "name": "process_labels",
                "args": {"labels": f"wall {t.wall_s:.3f} s · {t.status}"}})
    events.add({**meta, "name": "thread_name", "args": {"name": "trial"}})
    events.add({**meta, "name": "thread_sort_index", "args": {"sort_index": 0}})
    for k, name in enumerate(names):
        tid = trial.tid0 + k + 1
        events.add({**meta, "tid": tid, "name": "thread_name", "args": {"name": name}})
        events.add({**meta, "tid": tid, "name": "thread_sort_index",
                    "args": {"sort_index": k + 1}})
    _trial_slices(events, t, trial)
    _counter(events, trial)
    events.add_lines(_x_lines(trial, ~trial.overlapping))
    events.add_lines(_async_lines(trial, trial.overlapping))


def _lane_names(t: TrialResult, lane_pid: np.ndarray, lane_tid: np.ndarray) -> list[str]:
    """"worker 0 · pid 1234" for process workers, "worker 0 · tid 5678" for threads, "worker 0
    · slot 0 · tid 5678" for an event loop's slots (see ``frames.worker_names``)."""
    names = worker_names(lane_pid.tolist(), lane_tid.tolist(), t.executor)
    return [f"worker {k} · {name}" for k, name in enumerate(names)]


def _overlapping(lane: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Rows (sorted by lane, start) that start before the lane's previous complete event ends.

    Greedy in start order: a row that does not overlap becomes the lane's latest complete event.
    Checked with numpy first; only lanes where some row overlaps are walked in Python.
    """
    n = len(lane)
    flags = np.zeros(n, bool)
    if n < 2:
        return flags
    low = int(end.min())
    span = int(end.max()) - low + 1
    key = (end - low) + lane * span  # a lane's keys all exceed the earlier lanes': segmented max
    running = np.maximum.accumulate(key)
    same_lane = lane[1:] == lane[:-1]
    before = running[:-1] - lane[1:] * span + low  # the lane's latest end before each row
    suspect = np.flatnonzero(same_lane & (start[1:] < before)) + 1
    if not len(suspect):
        return flags
    for k in np.unique(lane[suspect]):
        lo, hi = np.searchsorted(lane, [k, k + 1])
        latest = None
        for row, (s, e) in enumerate(zip(start[lo:hi].tolist(), end[lo:hi].tolist(),
                                         strict=True)):
            if latest is not None and s < latest:
                flags[lo + row] = True
            else:
                latest = e
    return flags


def _trial_slices(events: _Events, t: TrialResult, trial: _Trial) -> None:
    """The trial's wall time on its "trial" thread, with start-up and teardown nested inside."""
    offset = trial.offset
    wall = max(0, round(t.wall_s * 1e9))
    errors = trial.trial_errors
    args = {"executor": t.executor, "workers": t.workers, "chunksize": t.chunksize,
            "repeat": t.repeat, "status": t.status, "wall_s": _num(t.wall_s),
            "cpu_s": _num(t.cpu_s), "startup_s": _num(t.startup_s),
            "teardown_s": _num(t.teardown_s), "peak_rss": t.peak_rss, "items": len(t.items),
            "failed_items": int((t.items.status != STATUS_OK).sum()),
            **({"errors": errors} if errors else {})}
    base = {"cat": "trial", "ph": "X", "pid": trial.pid, "tid": trial.tid0}
    events.add({**base, "name": f"trial: {t.executor} ×{t.workers}", "ts": _us(offset),
                "dur": _us(wall), "args": args})
    startup = min(wall, max(0, round((t.startup_s or 0) * 1e9)))
    teardown = min(wall - startup, max(0, round((t.teardown_s or 0) * 1e9)))
    if startup:
        events.add({**base, "name": "start-up", "ts": _us(offset), "dur": _us(startup),
                    "args": {"startup_s": _num(t.startup_s)}})
    if teardown > _SHAVE_NS:
        # Ends _SHAVE_NS before the trial: a viewer that truncates each µs value to whole ns
        # (Perfetto) could otherwise see it outlive its parent by a nanosecond and cut it.
        events.add({**base, "name": "teardown", "ts": _us(offset + wall - teardown),
                    "dur": _us(teardown - _SHAVE_NS), "args": {"teardown_s": _num(t.teardown_s)}})


def _us(ns: int) -> float:
    return round(ns / 1000, 3)


def _counter(events: _Events, trial: _Trial) -> None:
    """Items in progress over the trial: every step, or binned means for a busy trial."""
    if not len(trial.start):
        return
    times, level = concurrency(trial.start, trial.end)
    if len(times) > MAX_COUNTER_STEPS:
        edges = np.linspace(times[0], times[-1], COUNTER_BINS + 1)
        means = concurrency_binned(trial.start, trial.end, edges)
        times = edges
        level = np.append(means, 0.0)
    base = {"name": "items", "cat": "concurrency", "ph": "C", "pid": trial.pid,
            "tid": trial.tid0}
    for at, value in zip((times + trial.offset).tolist(), level.tolist(), strict=True):
        rounded = round(value, 3)
        events.add({**base, "ts": round(at / 1000, 3),
                    "args": {"in progress": int(rounded) if rounded.is_integer() else rounded}})


def _error_text(pair: tuple[str, str] | None) -> str:
    return "unknown error" if pair is None else f"{pair[0]}: {pair[1]}"


# --- item events: the fast path, formatted by numpy --------------------------------------------
def _x_lines(trial: _Trial, rows_mask: np.ndarray) -> Iterator[np.ndarray]:
    rows = np.flatnonzero(rows_mask)
    if not len(rows):
        return
    for lo in range(0, len(rows), _BLOCK):
        r = rows[lo:lo + _BLOCK]
        c = _columns(trial, r)
        yield render([
            b',\n{"name":"item ', InString(c.item), b',"cat":', c.cat, b',"ph":"X","ts":',
            Decimal(c.ts, 3), b',"dur":', Decimal(c.dur, 3), b',"tdur":',
            Decimal(c.tdur, 3), f',"pid":{trial.pid},"tid":'.encode(), Int(c.tid),
            b',"args":', *_args_parts(c), b"}",
        ], len(r))


def _async_lines(trial: _Trial, rows_mask: np.ndarray) -> Iterator[np.ndarray]:
    rows = np.flatnonzero(rows_mask)
    if not len(rows):
        return
    names = [_dumps(f"{name.split(' · ')[0]} · overlapping") for name in trial.lane_names]
    for lo in range(0, len(rows), _BLOCK):
        r = rows[lo:lo + _BLOCK]
        c = _columns(trial, r)
        ident = InString((np.int64(trial.pid) << 32) | c.item, 16)
        lane_name = Choice(trial.lane[r], names)
        tail = [f',"pid":{trial.pid},"tid":'.encode(), Int(c.tid)]
        yield render([b',\n{"name":', lane_name, b',"cat":', c.cat, b',"ph":"b","id":"0x',
                       ident, b',"ts":', Decimal(c.ts, 3), *tail, b',"args":',
                       *_args_parts(c), b"}"], len(r))
        yield render([b',\n{"name":', lane_name, b',"cat":', c.cat, b',"ph":"e","id":"0x',
                       ident, b',"ts":', Decimal(c.ts + c.dur, 3), *tail, b"}"], len(r))


@dataclass
class _Cols:
    item: np.ndarray
    ts: np.ndarray
    dur: np.ndarray
    tdur: np.ndarray
    tid: np.ndarray
    cpu: np.ndarray
    core: np.ndarray
    os_pid: np.ndarray
    os_tid: np.ndarray
    cat: bytes | Choice  # "item", or "item,error" where a row failed
    status: bytes | Choice
    error: bytes | Choice  # nothing, or ',"error":"Kind: message"' where a row failed
    where: bytes | Choice = b""  # nothing, or ',"host":…,"worker":…,"retried":…' (dask)


def _columns(trial: _Trial, rows: np.ndarray) -> _Cols:
    start, end = trial.start[rows], trial.end[rows]
    dur = np.maximum(end - start, 0)
    cpu = trial.cpu[rows]
    ok = trial.ok[rows]
    if ok.all():  # the usual block: constant text, no padding
        cat: bytes | Choice = b'"item"'
        status: bytes | Choice = b'"ok"'
        error: bytes | Choice = b""
    else:
        failed = (~ok).astype(np.int64)
        cat = Choice(failed, [b'"item"', b'"item,error"'])
        status = Choice(failed, [b'"ok"', b'"error"'])
        # Failures mostly repeat one message: code each distinct (kind, message) once.
        known: dict[tuple[str, str] | None, int] = {}
        codes = [known.setdefault(trial.errors.get(item), len(known))
                 for item in trial.item[rows[~ok]].tolist()]
        code = np.zeros(len(rows), np.int64)
        code[~ok] = np.array(codes, np.int64) + 1
        error = Choice(code, [b""] + [b',"error":' + _dumps(_error_text(pair))
                                       for pair in known])
    where: bytes | Choice = b""
    if trial.worker is not None and trial.workers is not None and trial.retried is not None:
        # One text per (worker, retried) pair: a few workers, two states.
        code = trial.worker[rows] * 2 + trial.retried[rows].astype(np.int64)
        where = Choice(code, [
            b',"host":' + _dumps(host) + b',"worker":' + _dumps(address) + b',"retried":'
            + (b"true" if again else b"false")
            for address, host in trial.workers for again in (False, True)])
    return _Cols(item=trial.item[rows], ts=start + trial.offset, dur=dur,
                 tdur=np.minimum(np.maximum(cpu, 0), dur),
                 tid=trial.lane[rows] + (trial.tid0 + 1), cpu=cpu, core=trial.core[rows],
                 os_pid=trial.os_pid[rows], os_tid=trial.os_tid[rows],
                 cat=cat, status=status, error=error, where=where)


def _args_parts(c: _Cols) -> list[Any]:
    cores, codes = np.unique(c.core, return_inverse=True)
    core_text = [b"null" if k < 0 else str(k).encode() for k in cores.tolist()]
    return [b'{"item":', Int(c.item), b',"status":', c.status, b',"cpu_s":',
            Decimal(c.cpu, 9), b',"wall_s":', Decimal(c.dur, 9), b',"core":',
            Choice(codes, core_text), b',"os_pid":', Int(c.os_pid), b',"os_tid":',
            Int(c.os_tid), c.where, c.error, b"}"]
