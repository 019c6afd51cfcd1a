"""Lane names: what a worker lane is called in pictures, reports and traces."""

from __future__ import annotations

from poolscope.frames import worker_names
from poolscope.measure.probe import slot_tid, split_tid


def test_processes_threads_and_event_loop_slots():
    assert worker_names([11, 12], [1, 1], "process") == ["pid 11", "pid 12"]
    assert worker_names([11, 11], [5, 6], "thread") == ["tid 5", "tid 6"]
    assert worker_names([11], [5], "serial") == ["tid 5"]
    assert worker_names([11], [1], "process") == ["pid 11"]
    slots = [slot_tid(77, 0), slot_tid(77, 1)]
    assert worker_names([11, 11], slots, "asyncio") == ["slot 0 · tid 77", "slot 1 · tid 77"]
    assert split_tid(slots[1]) == (77, 1) and split_tid(77) == (77, -1)


def test_unknown_executors_and_empty_lanes():
    assert worker_names([11, 12], [5, 6]) == ["pid 11", "pid 12"]
    assert worker_names([11, 11, 12], [5, 6, 7]) == ["pid 11 · tid 5", "pid 11 · tid 6",
                                                      "pid 12 · tid 7"]
    assert worker_names([11, None], [5, None], "thread") == ["tid 5", "?"]
    assert worker_names([11, 12], [1, 1], "thread@/usr/bin/python3.13") == ["pid 11 · tid 1",
                                                                            "pid 12 · tid 1"]


def test_workers_on_other_hosts_with_the_same_pid_get_their_own_lanes():
    import numpy as np

    from poolscope.frames import lane_numbers

    pid, tid = np.array([5, 5, 5, 6]), np.array([1, 1, 1, 1])
    start = np.array([3, 1, 2, 0])
    assert lane_numbers(pid, tid, start).tolist() == [1, 1, 1, 0]
    worker = np.array([0, 1, 0, -1])  # items 0 and 2 on one host, item 1 on another
    assert lane_numbers(pid, tid, start, worker).tolist() == [2, 1, 2, 0]
