"""The best a candidate configuration could do: ``poolscope.map`` runs no calibration batch on a
candidate whose best possible is already beaten, or could not repay its start.

- **Cores.** Items that keep ``busy`` cores busy (the process's CPU time over the wall of a
  serial batch: under 1 when they wait, above 1 with native threads) overlap at most
  ``cores / busy`` at a time, and a pool runs at most ``workers`` at once.
- **Transfer.** A process pool sends every argument through one pipe and every result back
  through another (multiprocessing's and concurrent.futures' pools alike), so an item costs at
  least its larger pickle over a pipe's bandwidth, measured here once per process.
- **Start-up.** A pool of processes costs its start before its first item: the start measured
  in this process (a prior before the first).
"""

from __future__ import annotations

import functools
import os
import pickle
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["Bound", "best_possible", "overlap", "pickled_size", "pipe_bytes_per_s",
           "start_cost_s", "started"]

PIPE_SAMPLE = 4 * 2**20  # bytes sent through a pipe to measure its bandwidth
TRANSFER_MATTERS = 256 * 2**10  # pickles below this cross a pipe in microseconds: not measured
MIN_BUSY = 1 / 256  # an item counts as keeping at least this much of a core busy
PRIOR_START_S = 0.015  # a process worker's start before one was measured here (fork: 10-20 ms)
_started: dict[str, float] = {}  # family → the latest measured start per worker, in seconds


@dataclass(frozen=True)
class Bound:
    """The least time per item a candidate could reach, and the limit that sets it."""

    per_item_s: float
    speedup: float  # over serial, at most
    why: str


def overlap(cores: int, busy: float) -> float:
    """How many items can run at once before the cores are the limit: cores / busy."""
    return cores / max(busy, MIN_BUSY)


def best_possible(serial_s: float, workers: int, cores: int, busy: float,
                  moved_bytes: int | None) -> Bound:
    """The bound of a candidate with ``workers`` at once; ``moved_bytes``: its larger pickle
    (argument or result) when the candidate moves items between processes, else None."""
    most = overlap(cores, busy)
    at_once = min(workers, most)
    why = (f"{workers} workers" if workers <= most else
           f"items keeping {busy:.2g} cores busy on {cores} cores")
    per_item = serial_s / at_once
    if moved_bytes is not None and moved_bytes >= TRANSFER_MATTERS:
        transfer = moved_bytes / pipe_bytes_per_s()
        if transfer > per_item:
            per_item = transfer
            why = f"{moved_bytes / 2**20:.1f} MB per item through one pipe"
    return Bound(per_item, serial_s / per_item, why)


def pickled_size(value: Any) -> int | None:
    """Bytes of the value's pickle (None when it does not pickle)."""
    try:
        return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:
        return None


@functools.cache
def pipe_bytes_per_s() -> float:
    """A pipe's bandwidth here: the best of three PIPE_SAMPLE transfers between two threads."""
    payload = bytes(PIPE_SAMPLE)
    best = float("inf")
    for _ in range(3):
        read_end, write_end = os.pipe()
        try:
            writer = threading.Thread(target=_write_all, args=(write_end, payload))
            began = time.perf_counter()
            writer.start()
            left = PIPE_SAMPLE
            while left:
                left -= len(os.read(read_end, min(left, 2**20)))
            writer.join(timeout=10)
            best = min(best, time.perf_counter() - began)
        finally:
            os.close(read_end)
            os.close(write_end)
    return PIPE_SAMPLE / best


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view):]


def start_cost_s(family: str, workers: int) -> float:
    """What starting a pool of ``workers`` of this family costs, as measured here last."""
    return _started.get(family, PRIOR_START_S) * workers


def started(family: str, workers: int, seconds: float) -> None:
    """A pool's start took ``seconds`` (its warm-up batch, less its items' own time)."""
    _started[family] = max(0.0, seconds) / max(1, workers)
