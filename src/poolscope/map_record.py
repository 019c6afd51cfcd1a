"""A ``poolscope.map`` call as a run in the history: ``history``, ``show``, ``report`` and
``export`` read production runs like measured ones.

    run      target (module:function), candidates, environment; status, item count and the
             decision (options["map"]) once it ends
    trials   one per calibration batch and per window of the rest on a pool; the serial rest
             is one trial
    chunks   every item's record: the probe's for batches; a serial rest's windows are timed
             as spans (items timed together), a clock reading per window, no cost per item

Nothing here may cost the work its speed or its results: chunks are written after their batch
(the store's time is not a candidate's), and a store that cannot be written is given up with a
warning, the work going on unrecorded.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import threading
import warnings
from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .environment import collect_environment
from .measure.probe import _MAXRSS_UNIT, HOST, STATUS_ERROR, ChunkRecord
from .model import ItemColumns, TrialResult, TrialStatus
from .store import RunStore, new_run_id, store_path

if TYPE_CHECKING:
    from .automap import MapDecision

__all__ = ["MapRecord", "open_record", "target_name"]

StoreOption = bool | str | Path | None


def target_name(fn: Callable[..., Any]) -> str:
    """module:qualname of the function (of a partial's function)."""
    inner = getattr(fn, "func", fn)
    module = getattr(inner, "__module__", None) or "?"
    name = getattr(inner, "__qualname__", None) or type(inner).__qualname__
    return f"{module}:{name}"


def open_record(store: StoreOption, fn: Callable[..., Any], candidates: list[str],
                options: dict[str, Any], target: str | None = None) -> MapRecord | None:
    """The run's record in ``store`` (True: the default store, a path: that file); None when
    not recording, or when the store cannot be opened (a warning says why)."""
    if store is False or store is None:
        return None
    path = store_path(None if store is True else store)
    try:
        return MapRecord(RunStore(path), target or target_name(fn), candidates, options)
    except Exception as exc:  # the work matters more than its record
        warnings.warn(f"poolscope.map: not recording this run: {exc}", RuntimeWarning,
                      stacklevel=4)
        return None


class MapRecord:
    """One map call's rows in the store, written as its batches end."""

    def __init__(self, store: RunStore, target: str, candidates: list[str],
                 options: dict[str, Any]) -> None:
        self.store = store
        self.run_id = new_run_id()
        self.options = {"kind": "map", **options}
        self.held: list[ChunkRecord] = []  # this batch's records, written once it ended
        self.serial_trials: dict[int, TrialResult] = {}  # bare loops, by trial index
        self.broken = False
        self.lock = threading.Lock()
        store.begin_run(self.run_id, datetime.now(UTC).isoformat(timespec="seconds"), target,
                        0, candidates, collect_environment(), self.options)

    def _guard(self, write: Callable[[], None]) -> None:
        if self.broken:
            return
        try:
            write()
        except Exception as exc:
            self.broken = True
            warnings.warn(f"poolscope.map: stopped recording this run: {exc}", RuntimeWarning,
                          stacklevel=2)

    # --- batches run by run_trial ------------------------------------------------------------
    def chunk(self, record: ChunkRecord, failed: list[tuple[int, str, str]]) -> None:
        """A record of the running batch (held: the batch is being timed). ``failed``: the
        items whose exception map caught (to raise in order): the probe saw them succeed."""
        if failed:
            status = array("b", record.status)
            for item, _, _ in failed:
                status[item - record.first] = STATUS_ERROR
            record = record._replace(status=status, errors=[*record.errors, *failed])
        self.held.append(record._replace(results=[]))

    def trial(self, trial: TrialResult) -> None:
        held, self.held = self.held, []
        failed = [{"executor": trial.executor, "item": item, "kind": kind, "message": message}
                  for record in held for item, kind, message in record.errors]
        known = {(e.get("item"), e.get("kind")) for e in trial.errors}
        failed = [e for e in failed if (e["item"], e["kind"]) not in known]
        if failed:
            trial = dataclasses.replace(trial, errors=[*trial.errors, *failed],
                                        status=TrialStatus.PARTIAL
                                        if trial.status == TrialStatus.OK else trial.status)

        def write() -> None:
            for record in held:
                self.store.add_chunk(self.run_id, trial.index, record)
            self.store.end_trial(self.run_id, dataclasses.replace(
                trial, items=ItemColumns.from_chunks([], trial.t0_ns)))

        self._guard(lambda: self.store.together(write))

    # --- the serial rest, a bare loop --------------------------------------------------------
    def serial_window(self, trial_index: int, first: int, count: int, began_ns: int,
                      ended_ns: int, cpu_began_ns: int, cpu_ended_ns: int,
                      failed: list[tuple[int, str, str]]) -> None:
        """A bare serial loop over ``count`` items (a calibration batch, or a window of the
        serial rest, whose windows are one trial): one span, the clocks read around it."""
        trial = self.serial_trials.get(trial_index)
        if trial is None:
            trial = self.serial_trials[trial_index] = TrialResult(
                index=trial_index, executor="serial", workers=1, chunksize=count, repeat=0,
                wall_s=0.0, cpu_s=0.0, startup_s=0.0, teardown_s=0.0, peak_rss=0,
                status=TrialStatus.OK, host=HOST, items=ItemColumns.from_chunks([], began_ns),
                t0_ns=began_ns, family="serial")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        record = ChunkRecord(  # the span's readings once: the store spreads them (add_chunk)
            first=first, start_ns=array("q", [began_ns]), end_ns=array("q", [ended_ns]),
            cpu_marks_ns=array("q", [cpu_began_ns, cpu_ended_ns]), core=array("i", [-1]),
            status=array("b", [0]), errors=failed, pid=os.getpid(),
            tid=threading.get_native_id(), process_cpu_s=usage.ru_utime + usage.ru_stime,
            process_maxrss=usage.ru_maxrss * _MAXRSS_UNIT, results=[])
        trial.wall_s = (ended_ns - trial.t0_ns) / 1e9
        trial.cpu_s += (cpu_ended_ns - cpu_began_ns) / 1e9
        if failed:
            trial.status = TrialStatus.PARTIAL
            trial.errors.extend({"executor": "serial", "item": i, "kind": k, "message": m}
                                for i, k, m in failed)
        self._guard(lambda: self.store.add_chunk(self.run_id, trial.index, record, count))

    # --- the end -----------------------------------------------------------------------------
    def end(self, decision: MapDecision | None, items: int, interrupted: bool) -> None:
        def write() -> None:
            for trial in self.serial_trials.values():
                self.store.end_trial(self.run_id, trial)
            best = f"{decision.executor} ×{decision.workers}" if decision else None
            self.options["map"] = dataclasses.asdict(decision) if decision else None
            self.store.finish_map_run(self.run_id, items, best, self.options, interrupted)

        self._guard(write)
        self.store.close()

