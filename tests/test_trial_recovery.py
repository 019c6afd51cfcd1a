"""The trial's recovery paths on a scripted pool and a fake clock (backends/fake.py): fast and
exact. The same paths run on real processes that die in test_faults.py and test_limits.py."""

from __future__ import annotations

import pytest

from poolscope.backends.fake import Death, FakeClock, ScriptedItem, scripted_backend
from poolscope.measure.runner import make_chunks, run_trial
from poolscope.measure.trial import MAX_RESTARTS

MS = 1_000_000
N = 8


def script(n: int = N) -> list[ScriptedItem]:
    """Item k runs from k ms to k + 1 ms after its pool started, with 1 ms of CPU."""
    return [ScriptedItem(k * MS, (k + 1) * MS, MS) for k in range(n)]


def trial(n: int = N, **breaks):
    clock = FakeClock()
    backend = scripted_backend("process", script(n), clock, **breaks)
    return run_trial(0, backend, lambda x: x, 2, make_chunks(list(range(n)), 1), clock=clock,
                     tree_usage=lambda: (0.0, 0.0)), backend


def test_a_worker_that_dies_in_a_known_item_costs_that_item_only():
    t, backend = trial(deaths=[Death(item=3)])
    assert t.status == "partial" and t.restarts == 1
    assert backend.started == [2]  # a new pool for the rest
    assert sorted(t.items.item.tolist()) == [0, 1, 2, 4, 5, 6, 7]  # item 3 is not run again
    [error] = t.errors
    assert (error["item"], error["kind"]) == (3, "WorkerDiedError")
    assert error["message"].startswith("item 3 (worker pid 4194305): signal SIGSEGV")
    assert error["message"].endswith("the items of its chunk that had not reported ran again "
                                     "on a new pool")


def test_pools_that_keep_dying_are_given_up_after_max_restarts():
    t, backend = trial(16, deaths=[Death(item=k) for k in range(MAX_RESTARTS + 1)])
    assert t.status == "failed" and t.restarts == MAX_RESTARTS
    assert backend.started == [MAX_RESTARTS + 1]
    assert t.errors[-1]["message"] == (f"gave up after {MAX_RESTARTS} new pools: workers "
                                       "kept ending")
    assert "are lost" in t.errors[-2]["message"]  # the last death: no new pool for its chunk


def test_a_worker_whose_item_is_unknown_fails_the_trial_and_keeps_what_finished():
    clock = FakeClock()
    backend = scripted_backend("process", script(), clock, deaths=[Death(item=5)])

    def die_unnamed(self, board, death):  # the board names no item (it died between chunks)
        self.ended[death.pid] = death.exitcode
        raise RuntimeError("died between chunks")

    backend._die = die_unnamed
    t = run_trial(0, backend, lambda x: x, 2, make_chunks(list(range(N)), 1), clock=clock,
                  tree_usage=lambda: (0.0, 0.0))
    assert t.status == "failed" and t.restarts == 0
    assert sorted(t.items.item.tolist()) == [0, 1, 2, 3, 4]
    [error] = t.errors
    assert error["item"] is None and error["message"].startswith("worker pid 4194305")
    assert error["message"].endswith("are lost")


def test_threads_of_a_dead_worker_run_their_items_again_alone_and_only_the_culprit_fails():
    # Items 2 and 5 were running in two threads of the process that died: which one ended it
    # is unknown, so each runs again alone once the rest is done (on the second pool); item 5
    # then ends that pool too.
    t, backend = trial(deaths=[Death(item=2, also_running=(5,)), Death(item=5)])
    items = t.items.item.tolist()
    assert sorted(items) == [0, 1, 2, 3, 4, 6, 7]
    assert [(e["item"], e["kind"]) for e in t.errors] == [(5, "WorkerDiedError")]
    assert "signal SIGSEGV" in t.errors[0]["message"]
    assert backend.started == [3] and t.restarts == 2


def test_a_pool_that_raises_without_losing_a_worker_fails_with_its_error():
    t, _ = trial(raises_at=4)
    assert t.status == "failed" and t.restarts == 0
    assert sorted(t.items.item.tolist()) == [0, 1, 2, 3]
    assert [(e["item"], e["kind"]) for e in t.errors] == [(None, "PoolBroke")]
    assert t.errors[0]["message"] == "the scripted pool raised at item 4"


def test_a_close_that_fails_fails_the_trial_with_every_item_kept():
    t, _ = trial(close_error="the pool would not close")
    assert t.status == "failed"
    assert sorted(t.items.item.tolist()) == list(range(N))
    assert t.errors == [{"executor": "process", "item": None, "kind": "PoolBroke",
                         "message": "the pool would not close"}]


@pytest.mark.parametrize("teardown_ms", [0, 5])
def test_the_recovered_trial_is_timed_on_the_fake_clock(teardown_ms):
    clock = FakeClock()
    backend = scripted_backend("process", script(), clock, teardown_ns=teardown_ms * MS,
                               deaths=[Death(item=3)])
    t = run_trial(0, backend, lambda x: x, 2, make_chunks(list(range(N)), 1), clock=clock,
                  tree_usage=lambda: (0.0, 0.0))
    # The first pool ran items 0-2 (to 3 ms) and closed; the second ran 4-7 (to 8 ms after its
    # start) and closed: every close adds the teardown.
    assert t.wall_s == pytest.approx((3 + teardown_ms + 8 + teardown_ms) * 1e-3)
    assert t.teardown_s == pytest.approx(teardown_ms * 1e-3)
