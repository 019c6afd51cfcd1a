"""How much of a function's CPU time holds the GIL, read while the preflight calls it.

A watcher thread wakes every ``TICK_S``, runs a few bytecodes and sleeps again, which lets the
GIL go. With the switch interval raised to ``SWITCH_S`` for the watch, a thread that wants the
GIL gets it at once when nobody holds it, when the holder lets it go by itself (blocking I/O,
``time.sleep``, C code that releases it: hashlib, zlib, numpy), and otherwise only after
``SWITCH_S``. So each of the watcher's gaps longer than ``LONG_GAP_S`` is time the function
held the GIL, and a gap of an OS time slice (a few milliseconds at most, on one core too) is
not. Their sum over the function's own CPU time is its GIL share: about 1 for pure Python,
about 0 for code that computes without it.

This works where counting the watcher's progress cannot: on one core the watcher gets the same
CPU time whether the function holds the GIL or only the core. The item that returned is called
again until the watch lasts ``MIN_WATCH_S``, at most ``MAX_CALLS`` times (its side effects
repeat: files, threads); one that takes longer than ``REPEAT_UP_TO_S`` is not called again. A
watch with less than ``MIN_CPU_S`` of CPU (tiny or waiting items) tells nothing, and says so.

Standard library only: it runs in the isolated child too, under any supported Python.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["GilWatch", "watch_calls"]

SWITCH_S = 0.05  # the switch interval while watching
# Longer than an OS time slice on a busy core (a few ms), shorter than most runs of Python
# between two releases of the GIL: each such gap was the GIL held.
LONG_GAP_S = 0.008
TICK_S = 0.0005
MIN_WATCH_S = 0.25
MAX_CALLS = 50  # a function's side effects (files, threads) repeat: few calls, not thousands
MIN_CPU_S = 0.02  # less CPU than this in the watch: too little to read a share from
REPEAT_UP_TO_S = 1.0


class GilWatch:
    """``with GilWatch() as watch: fn(item)``, then ``watch.held_s`` and ``watch.cpu_s`` (the
    calling thread's CPU time inside the block)."""

    def __init__(self) -> None:
        self.held_s = 0.0
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="poolscope-gil-watch",
                                        daemon=True)
        self._interval = sys.getswitchinterval()

    def __enter__(self) -> GilWatch:
        sys.setswitchinterval(SWITCH_S)
        self._thread.start()
        self._cpu0 = time.thread_time()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_s = time.thread_time() - self._cpu0
        self.wall_s = time.perf_counter() - self._wall0
        self._stop.set()
        self._thread.join()
        sys.setswitchinterval(self._interval)

    def _watch(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            time.sleep(TICK_S)  # lets the GIL go; taking it back is what is timed
            now = time.perf_counter()
            if now - last > LONG_GAP_S:
                self.held_s += now - last - TICK_S
            last = now


def watch_calls(call: Callable[[], Any], first_wall_s: float) -> dict[str, float] | None:
    """Watch ``call()`` (already called once, in ``first_wall_s``): again and again for at
    least ``MIN_WATCH_S`` when it is short, once when it is not too long; None for an item too
    long to call again (``REPEAT_UP_TO_S``) or a call that raised."""
    if first_wall_s > REPEAT_UP_TO_S:
        return None
    calls = 0
    try:
        with GilWatch() as watch:
            began = time.perf_counter()
            while calls == 0 or (time.perf_counter() - began < MIN_WATCH_S
                                 and calls < MAX_CALLS):
                call()
                calls += 1
    except Exception:  # a second call that fails tells nothing of the GIL
        return None
    if watch.cpu_s < MIN_CPU_S and watch.held_s < LONG_GAP_S:
        return None  # too short to tell (tiny items): the thread trials may still show it
    share = min(1.0, watch.held_s / watch.cpu_s) if watch.cpu_s > 0 else 0.0
    return {"gil_share": round(share, 4), "held_s": round(watch.held_s, 6),
            "cpu_s": round(watch.cpu_s, 6), "wall_s": round(watch.wall_s, 6), "calls": calls}
