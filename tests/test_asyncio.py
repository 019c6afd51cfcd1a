"""The asyncio executor: concurrency limit, honest per-item CPU, lanes, nested loops, io-async.

Timing checks use ratios with wide margins: other tests may load the machine's cores.
"""

from __future__ import annotations

import asyncio
import os
import threading

import numpy as np
import pytest

from poolscope.backends import get_backend
from poolscope.frames import items_frame, trials_frame
from poolscope.measure.probe import split_tid
from poolscope.measure.runner import make_chunks, run_trial
from poolscope.workloads import resolve_workload

pytestmark = pytest.mark.timeout(60)


def asyncio_trial(fn, n: int, workers: int = 4, chunksize: int = 1, keep: bool = False):
    """One asyncio trial; with ``keep`` the backend is returned too (for its loop's CPU)."""
    cls = get_backend("asyncio")
    backend = cls(fn, workers)
    backend.start()
    try:
        t = run_trial(0, cls, fn, workers, make_chunks(list(range(n)), chunksize),
                      backend=backend)
    finally:
        backend.close()
    return (t, backend) if keep else t


async def nap(x: int) -> int:
    await asyncio.sleep(0.05)
    return x


async def burn(x: int) -> int:
    """CPU-bound, one step: nothing else runs on the loop while it computes."""
    total = 0
    for i in range(200_000):
        total += i
    return total


async def burn_in_turns(x: int) -> int:
    """CPU-bound in 20 steps, yielding the loop between them: items interleave."""
    total = 0
    for _ in range(20):
        for i in range(10_000):
            total += i
        await asyncio.sleep(0)
    return total


async def fail_on_three(x: int) -> int:
    await asyncio.sleep(0.01)
    if x == 3:
        raise ValueError("item 3 is bad")
    return x


def test_coroutines_overlap_up_to_the_worker_count():
    t = asyncio_trial(nap, 16, workers=4)
    assert t.status == "ok"
    row = trials_frame([t]).iloc[0]
    # 16 naps of 50 ms, 4 at once: about 200 ms, parallelism about 4 (never above it).
    assert 3.0 <= row["parallelism"] <= 4.05
    assert t.wall_s < 16 * 0.05 / 2.5


def test_no_more_than_workers_at_once():
    running = peak = 0

    async def count(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return x

    t = asyncio_trial(count, 20, workers=3, chunksize=2)
    assert t.status == "ok" and peak == 3


def test_a_sleeping_coroutine_is_not_charged_for_the_others():
    t, backend = asyncio_trial(nap, 16, workers=4, keep=True)
    item_cpu = t.items.cpu_ns.sum()
    # Σ item CPU is the CPU of the items' own steps: within the loop thread's CPU (a thread CPU
    # difference from start to end would charge each item with the others, up to 4×).
    assert 0 < item_cpu <= backend.loop_cpu_ns * 1.05
    assert item_cpu <= t.cpu_s * 1e9
    assert trials_frame([t]).iloc[0]["offcpu_fraction"] > 0.9


def test_cpu_of_interleaved_items_is_their_own_steps():
    whole, whole_backend = asyncio_trial(burn, 12, workers=4, keep=True)
    turns, turns_backend = asyncio_trial(burn_in_turns, 12, workers=4, keep=True)
    for t, backend in ((whole, whole_backend), (turns, turns_backend)):
        assert t.status == "ok"
        # Every CPU nanosecond of the loop's items is charged to exactly one item.
        assert 0.8 <= t.items.cpu_ns.sum() / backend.loop_cpu_ns <= 1.02
    ratio = {}
    for label, t in (("whole", whole), ("turns", turns)):
        cols = t.items
        ratio[label] = float(np.mean(cols.cpu_ns / (cols.end_ns - cols.start_ns)))
    # One step per item: CPU ≈ wall. In turns with 3 others: wall ≈ 4 × the item's own CPU.
    assert ratio["whole"] > 0.5
    assert ratio["turns"] < 0.5
    assert ratio["whole"] > 2 * ratio["turns"]


def test_one_lane_per_concurrency_slot_on_one_real_thread():
    t = asyncio_trial(nap, 16, workers=4, chunksize=2)
    frame = items_frame([t])
    assert frame["lane"].nunique() == 4
    assert set(t.items.pid.tolist()) == {os.getpid()}
    native, slot = split_tid(t.items.tid)
    assert len(set(native.tolist())) == 1  # every coroutine ran on the loop's one thread
    assert sorted(set(slot.tolist())) == [0, 1, 2, 3]
    assert threading.get_native_id() not in native.tolist()  # the loop has a thread of its own


def test_plain_functions_run_in_at_most_workers_threads():
    import time

    def sleepy(x: int) -> int:
        time.sleep(0.02)
        return x

    cls = get_backend("asyncio")
    t = run_trial(0, cls, sleepy, 3, make_chunks(list(range(12)), 1))
    assert t.status == "ok"
    native, slot = split_tid(t.items.tid)
    assert (slot == -1).all()  # real worker threads, reported as they are
    assert 1 <= len(set(native.tolist())) <= 3
    assert trials_frame([t]).iloc[0]["parallelism"] > 1.8


def test_an_error_is_recorded_for_its_item_only():
    t = asyncio_trial(fail_on_three, 8, workers=4)
    assert t.status == "partial"
    assert t.items.item.tolist() == list(range(8))
    assert np.flatnonzero(t.items.status).tolist() == [3]
    assert t.errors == [{"executor": "asyncio", "item": 3, "kind": "ValueError",
                         "message": "item 3 is bad"}]


def test_works_inside_a_running_event_loop():
    async def notebook_cell():  # Jupyter runs cells inside its own loop
        asyncio.get_running_loop()
        return run_trial(0, get_backend("asyncio"), nap, 4, make_chunks(list(range(8)), 1))

    t = asyncio.run(notebook_cell())
    assert t.status == "ok" and len(t.items) == 8
    assert t.wall_s < 8 * 0.05 / 2


@pytest.mark.parametrize("name", ["serial", "thread", "process"])
def test_io_async_runs_under_other_executors(name):
    workload = resolve_workload("io-async", 8, size=20)
    t = run_trial(0, get_backend(name), workload.fn, 4, make_chunks(list(workload.items), 2))
    assert t.status == "ok", t.errors
    walls = (t.items.end_ns - t.items.start_ns) / 1e9
    assert (walls >= 0.019).all()  # each item really awaited its 20 ms sleep
    assert t.result_sample and t.result_sample[0] == 20


def test_io_async_under_serial_inside_a_running_loop():
    workload = resolve_workload("io-async", 4, size=10)

    async def notebook_cell():
        return run_trial(0, get_backend("serial"), workload.fn, 1,
                         make_chunks(list(workload.items), 2))

    t = asyncio.run(notebook_cell())
    assert t.status == "ok", t.errors
    assert ((t.items.end_ns - t.items.start_ns) >= 9_000_000).all()


def test_close_is_safe_twice_and_leaves_no_thread():
    cls = get_backend("asyncio")
    backend = cls(nap, 2)
    backend.start()
    thread = backend._thread
    list(backend.run(make_chunks([0, 1], 1)))
    backend.close()
    backend.close()
    assert thread is not None and not thread.is_alive()


def test_an_interrupted_trial_cancels_its_items():
    cls = get_backend("asyncio")
    cancelled = []

    async def stuck_after_the_first(x: int) -> int:
        if x:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(x)
                raise
        return x

    backend = cls(stuck_after_the_first, 3)
    backend.start()
    thread = backend._thread
    records = backend.run(make_chunks([0, 1, 2], 1))
    assert next(records).first == 0
    records.close()  # the runner drops the generator on Ctrl-C, then closes the backend
    backend.close()
    assert thread is not None and not thread.is_alive()
    assert sorted(cancelled) == [1, 2]
