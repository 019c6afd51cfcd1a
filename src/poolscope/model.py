"""The records every stage shares: a trial's per-item columns and its result.

The runner and the executors make them, the analysis, the store and the presenters read them;
this module imports none of those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypedDict

import numpy as np

from .measure.probe import ChunkRecord

__all__ = ["COUNTED", "ItemColumns", "TrialError", "TrialResult", "TrialStatus"]


class TrialStatus(StrEnum):
    """How a trial ended. A str: it is stored, and compared with text, as its value."""

    OK = "ok"
    PARTIAL = "partial"  # some items failed, or a worker was lost and the rest ran on
    FAILED = "failed"  # the executor broke, or the trial passed --trial-timeout
    INTERRUPTED = "interrupted"  # Ctrl-C (or a callback's error) stopped it


COUNTED = (TrialStatus.OK, TrialStatus.PARTIAL)  # trials whose wall time is comparable


class TrialError(TypedDict):
    """One error of a trial: an item's (``item`` its index) or the executor's (``item``
    None), as ``TrialResult.errors`` and the JSON's ``errors`` hold them."""

    executor: str
    item: int | None
    kind: str  # the exception's class name, or poolscope's: Timeout, WorkerDiedError, ...
    message: str


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
    status: TrialStatus | str  # a TrialStatus; read back from the store, its text
    host: str
    items: ItemColumns
    errors: list[TrialError] = field(default_factory=list)
    result_sample: list[Any] = field(default_factory=list)  # a few return values, for sizing
    t0_ns: int = 0  # perf_counter_ns when the trial began: the origin of its item times
    # Executors with addressable workers (dask): one dict per worker ("address", "host", "pid",
    # "clock_offset_s", "clock_uncertainty_s", "lost", ...). The first entries, in the order of
    # ItemColumns.worker_addresses, are what items.worker indexes; workers that ran no
    # recorded item (lost ones) follow.
    worker_info: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0  # new pools started after a timeout broke one (not stored)
    # The executor's family (serial, thread, process, async, interpreter, cluster) when it ran:
    # stored, so a run read back does not depend on today's registry. "": not recorded (runs
    # stored before schema 5), read from the registry instead.
    family: str = ""
    # Seconds each worker's initializer took (call_shape.py), outside the items' times.
    initializer_s: list[float] = field(default_factory=list)
