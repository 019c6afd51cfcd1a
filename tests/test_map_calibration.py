"""How poolscope.map calibrates: the bounds that spare it batches on candidates that could not
win (speed_bounds.py), and the thread count it starts from (real pools, real items)."""

from __future__ import annotations

import functools
import math
import time
from types import SimpleNamespace

import numpy as np
import pytest

import poolscope
from conftest import own_children
from poolscope import speed_bounds
from poolscope.automap import THREAD_START_S, MapDecision, _AutoMap, _Candidate, _items_time
from poolscope.backends import resolve
from poolscope.environment import usable_cores
from poolscope.model import ItemColumns
from poolscope.speed_bounds import best_possible

MB = 2**20


def waits(x: int) -> int:
    time.sleep(0.02)
    return x


def big_result(x: int) -> bytes:
    return bytes([x % 256]) * (8 * MB)


def test_items_that_wait_get_many_threads_and_no_process_pool():
    before = own_children()
    decision: list[MapDecision] = []
    assert poolscope.map(waits, range(40), decision=decision, store=False) == list(range(40))
    chosen = decision[0]
    assert chosen.executor == "thread" and chosen.workers > 2 * usable_cores(), chosen
    assert not any(label.startswith("process-pool") for label in chosen.calibration), chosen
    assert "process-pool ×" in chosen.reason and "could not" in chosen.reason, chosen.reason
    assert own_children() <= before  # never started


def test_results_a_pipe_would_take_longer_to_carry_start_no_process_pool(monkeypatch):
    # a slow pipe, so that the bound decides whatever this machine's speed (real: ~0.6-2 GB/s)
    monkeypatch.setattr(speed_bounds, "pipe_bytes_per_s", lambda: 100 * MB)
    before = own_children()
    decision: list[MapDecision] = []
    results = poolscope.map(big_result, range(24), decision=decision, store=False)
    assert [r[:1] for r in results] == [bytes([x]) for x in range(24)]
    chosen = decision[0]
    assert not any(label.startswith("process-pool") for label in chosen.calibration), chosen
    assert "8.0 MB per item through one pipe" in chosen.reason, chosen.reason
    assert own_children() <= before


def test_the_best_possible_is_set_by_workers_cores_or_the_pipe(monkeypatch):
    monkeypatch.setattr(speed_bounds, "pipe_bytes_per_s", lambda: 100 * MB)
    computes = best_possible(0.010, workers=6, cores=2, busy=1.0, moved_bytes=None)
    assert computes.speedup == pytest.approx(2.0) and "cores busy" in computes.why
    waiting = best_possible(0.010, workers=6, cores=2, busy=0.01, moved_bytes=None)
    assert waiting.speedup == pytest.approx(6.0) and waiting.why == "6 workers"
    native = best_possible(0.010, workers=2, cores=2, busy=2.0, moved_bytes=None)
    assert native.speedup == pytest.approx(1.0)
    moving = best_possible(0.010, workers=2, cores=2, busy=1.0, moved_bytes=4 * MB)
    assert moving.per_item_s == pytest.approx(0.04) and "4.0 MB" in moving.why
    small = best_possible(0.010, workers=2, cores=2, busy=1.0, moved_bytes=1000)
    assert small.speedup == pytest.approx(2.0)  # a small pickle is no limit


def test_a_pipe_is_measured_once_and_plausibly():
    speed_bounds.pipe_bytes_per_s.cache_clear()
    bandwidth = speed_bounds.pipe_bytes_per_s()
    assert 10 * MB < bandwidth < 1000 * 2**30
    assert speed_bounds.pipe_bytes_per_s() == bandwidth


def test_a_pools_start_is_remembered_per_worker():
    speed_bounds.started("process", 2, 0.05)
    assert speed_bounds.start_cost_s("process", 4) == pytest.approx(0.1)
    speed_bounds.started("process", 2, -1.0)  # the items took longer than the batch: no cost
    assert speed_bounds.start_cost_s("process", 4) == 0.0
    speed_bounds._started.pop("process")
    assert speed_bounds.start_cost_s("process", 1) == speed_bounds.PRIOR_START_S


def computes(x: int, seconds: float = 0.001) -> int:
    """Pure Python for ``seconds`` of this thread's CPU: it holds the GIL throughout."""
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass
    return x


def test_an_iterator_read_ahead_by_one_bound_is_mapped_by_the_next():
    # the start-up bound reads up to MAX_AHEAD items ahead; a later check asking for fewer
    # must count them, not read a negative number more (a ValueError from islice once)
    items = iter(range(400))
    decision: list[MapDecision] = []
    assert poolscope.map(computes, items, executors=["serial", "process-pool"],
                         decision=decision, store=False) == list(range(400))
    assert decision[0].items == 400


def test_threads_whose_items_take_turns_are_out_after_one_batch():
    decision: list[MapDecision] = []
    assert poolscope.map(functools.partial(computes, seconds=0.003), range(300),
                         executors=["serial", "thread"], decision=decision,
                         store=False) == list(range(300))
    chosen = decision[0]
    threads = [times for label, times in chosen.calibration.items() if label.startswith("thread")]
    # Its batch kept one core busy, as serial did: the GIL, read within that batch.
    assert chosen.executor == "serial" and "take turns" in chosen.reason, chosen
    assert len(threads[0]) == 1, chosen


def test_a_pool_batch_is_timed_from_its_first_item_to_its_last():
    ms = 1_000_000
    trial = SimpleNamespace(
        status="ok", restarts=0, wall_s=0.020,  # 20 ms: submitting and collecting around them
        items=ItemColumns(item=np.arange(4), start_ns=np.array([3, 3, 7, 7]) * ms,
                          end_ns=np.array([7, 7, 11, 11]) * ms, cpu_ns=np.zeros(4, np.int64),
                          core=np.zeros(4, np.int16), status=np.zeros(4, np.int8),
                          pid=np.ones(4, np.int32), tid=np.ones(4, np.int64)))
    assert _items_time(trial, 4) == pytest.approx(0.008)
    assert _items_time(trial, 5) == 0.020  # an item without a record: the whole wall
    assert _items_time(SimpleNamespace(**{**vars(trial), "restarts": 1}), 4) == 0.020


def test_threads_for_waiting_items_are_as_many_as_their_starts_repay():
    decision: list[MapDecision] = []
    assert poolscope.map(waits, range(400), decision=decision, store=False) == list(range(400))
    workers, serial_s = decision[0].workers, decision[0].calibration["serial"][0]
    # 400 items of 20 ms: about √(399 × 20 ms / 170 µs) ≈ 217 threads, as many as their starts
    # repay, more than the 64 a count of unknown length starts with.
    assert decision[0].executor == "thread", decision[0]
    assert 64 < workers <= math.sqrt(399 * serial_s / THREAD_START_S) + 1, decision[0]



def test_candidates_that_rule_each_other_out_leave_the_simplest_in():
    # Noisy batches once made serial clearly slower than threads that were out for taking
    # turns: no candidate was left, and calibration raised "min() arg is an empty sequence".
    serial = _Candidate("serial", 1, resolve("serial"), slower="clearly slower")
    threads = _Candidate("thread", 2, resolve("thread"), slower="take turns")
    assert _AutoMap._still_in([threads, serial], []) == [serial]
    assert serial.slower is None and threads.slower == "take turns"
    assert _AutoMap._still_in([threads, serial], [threads]) == [threads]
