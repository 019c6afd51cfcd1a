"""The GIL watch (gil_watch.py): pure Python holds the GIL, hashlib over a big buffer and sleeps
do not — told apart on two cores and on one, where counting a watcher's progress cannot."""

from __future__ import annotations

import hashlib
import os
import sys
import time

import pytest

from poolscope.measure.gil_watch import watch_calls
from poolscope.measure.preflight import try_items

BUFFER = b"x" * (8 << 20)


def python_loop(_: object = None) -> int:
    total = 0
    for i in range(300_000):
        total += i
    return total


def hash_buffer(_: object = None) -> str:
    return hashlib.sha256(BUFFER).hexdigest()


def sleep_a_while(_: object = None) -> None:
    time.sleep(0.02)


def one_core():
    """This thread, and the threads it starts, on one core; restored after."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    return before


@pytest.mark.parametrize("cores", ["all", "one"])
def test_pure_python_holds_the_gil_and_hashlib_does_not(cores):
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("needs os.sched_setaffinity (Linux)")
    before = one_core() if cores == "one" else None
    interval = sys.getswitchinterval()
    try:
        held = watch_calls(python_loop, 0.02)
        free = watch_calls(hash_buffer, 0.02)
        waiting = watch_calls(sleep_a_while, 0.02)
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
    assert held is not None and free is not None
    assert held["gil_share"] > 0.8, held
    assert free["gil_share"] < 0.3, free
    assert waiting is None  # waiting items: too little CPU to read a share from
    assert sys.getswitchinterval() == interval  # restored
    assert held["calls"] >= 2 and held["wall_s"] >= 0.25  # short items are called again
    assert watch_calls(lambda: None, 0.0) is None  # tiny: at most MAX_CALLS calls, no share


def test_a_long_item_is_not_called_again_and_the_preflight_reports_the_share():
    assert watch_calls(python_loop, 5.0) is None
    outcomes = try_items(python_loop, [0], budget_s=10.0)
    assert outcomes[-1]["ok"] and outcomes[-1]["gil"]["gil_share"] > 0.8
    # No time left in the preflight's budget: no watch, and still a pass.
    assert try_items(python_loop, [0], budget_s=0.01) == [{"ok": True}]
