"""poolscope.map: list(map(fn, items))'s results, whatever configuration it picks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

import poolscope
from poolscope import UsageError
from poolscope.automap import ItemFailed, MapDecision, Raised, map_stream
from poolscope.store import RunStore

CANDIDATES = ["serial", "thread", "process-pool"]


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    """The default store of every call here: a file of the test's own."""
    path = tmp_path / "runs.db"
    monkeypatch.setenv("POOLSCOPE_STORE", str(path))
    return path


def square(x: int) -> int:
    return x * x


def picky(x: int) -> int:
    if x % 7 == 3:
        raise ValueError(f"no {x}")
    return x


def add(a: int, b: int = 0) -> int:
    return a + b


def logged(item: tuple[int, str]) -> int:
    """Appends its item to a file (one line per call, from any process), then computes ~2 ms
    (work that keeps a core busy: a process pool could win it, so calibration runs one)."""
    number, path = item
    with open(path, "a") as log:
        log.write(f"{number}\n")
    deadline = time.thread_time() + 0.002
    while time.thread_time() < deadline:
        pass
    return number


def exits_on_5(x: int) -> int:
    if x == 5:
        os._exit(3)
    time.sleep(0.001)
    return x


@pytest.mark.parametrize("executors", [[name] for name in CANDIDATES] + [CANDIDATES])
def test_results_are_maps_in_item_order(executors):
    items = list(range(3000))
    decision: list[MapDecision] = []
    assert poolscope.map(square, items, executors=executors, decision=decision) == \
        list(map(square, items))
    assert decision[0].executor in executors and decision[0].items == len(items)


@pytest.mark.parametrize("name", CANDIDATES)
def test_an_items_exception_is_raised_as_itself(name):
    with pytest.raises(ValueError, match="no 3"):  # the first item that failed
        poolscope.map(picky, range(200), executors=[name])


def test_star_unpacks_lists_and_dicts():
    items = [(1, 2), [3], {"a": 4, "b": 5}]
    assert poolscope.map(add, items, star=True, executors=["serial", "thread"]) == [3, 3, 9]


def test_a_generator_is_consumed_and_mapped_in_order():
    def numbers():
        yield from range(300_000)

    assert poolscope.map(square, numbers()) == [x * x for x in range(300_000)]


def test_no_item_is_computed_twice(tmp_path):
    """Calibration items are the real work: every item is called exactly once, whichever
    candidates ran it, in processes too."""
    log = tmp_path / "calls.log"
    items = [(i, str(log)) for i in range(400)]
    decision: list[MapDecision] = []
    assert poolscope.map(logged, items, decision=decision) == list(range(400))
    calls = sorted(int(line) for line in log.read_text().split())
    assert calls == list(range(400)), decision
    assert decision[0].calibration_items > 0 and len(decision[0].calibration) >= 3


def test_short_work_runs_serially_without_starting_a_pool():
    before = set(psutil.Process().children(recursive=True))
    decision: list[MapDecision] = []
    assert poolscope.map(square, range(50), decision=decision) == [x * x for x in range(50)]
    assert decision[0].executor == "serial" and decision[0].how == "short work"
    assert set(psutil.Process().children(recursive=True)) <= before


def test_a_worker_that_dies_fails_its_item_and_the_rest_finish(tmp_path):
    with pytest.raises(ItemFailed) as failed:
        poolscope.map(exits_on_5, range(40), executors=["process-pool"], max_workers=2)
    assert failed.value.item == 5 and "exit" in failed.value.message.lower()
    deadline = time.monotonic() + 10
    while psutil.Process().children(recursive=True) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.Process().children(recursive=True)


@pytest.mark.parametrize("options, message", [
    ({"max_workers": 0}, "max_workers"),
    ({"executors": ["dask"]}, "serial, thread and process"),
    ({"executors": []}, "at least one"),
    ({"executors": ["serial", "serial"]}, "twice"),
    ({"budget": 0}, "budget"),
])
def test_bad_options_are_one_usage_error(options, message):
    with pytest.raises(UsageError, match=message):
        poolscope.map(square, range(3), **options)


def test_public_name():
    assert "map" in poolscope.__all__ and callable(poolscope.map)
    assert Path(poolscope.map.__code__.co_filename).name == "automap.py"


# --- the run in the history ----------------------------------------------------------------
def test_each_call_is_a_run_with_every_items_record(store):
    decision: list[MapDecision] = []
    assert poolscope.map(square, range(60_000), executors=["serial", "thread"],
                         decision=decision) == [x * x for x in range(60_000)]
    run = poolscope.load("latest", store=store)
    assert run.target == "test_automap:square" and run.n_items == 60_000
    assert sorted(run.items["item"]) == list(range(60_000))  # calibration and rest alike
    chosen = run.options["map"]
    assert (chosen["executor"], chosen["workers"]) == (decision[0].executor,
                                                        decision[0].workers)
    assert set(chosen["calibration"]) == {"serial", f"thread ×{decision[0].workers}"} or \
        chosen["how"] == "short work"
    with RunStore(store) as runs:
        listed = runs.history()
    assert listed[0]["best"] == f"{decision[0].executor} ×{decision[0].workers}"
    shown = "".join(str(part) for part in __import__("poolscope.present.terminal",
                                                     fromlist=["x"]).render_result(run))
    assert "decision:" in shown and str(decision[0].how) in shown


def test_a_serial_rests_failures_are_in_its_record(store):
    outcomes: list = []
    map_stream(picky, range(50_000), outcomes.extend, executors=["serial"])
    assert [type(v) is Raised for v in outcomes] == [x % 7 == 3 for x in range(50_000)]
    run = poolscope.load("latest", store=store)
    failed = run.items.loc[run.items["status"] != "ok", "item"]
    assert sorted(failed) == [x for x in range(50_000) if x % 7 == 3]


def test_store_false_records_nothing(store):
    assert poolscope.map(square, range(10), store=False) == [x * x for x in range(10)]
    assert not store.exists()


def test_a_store_that_cannot_be_written_warns_and_the_work_goes_on(tmp_path):
    with pytest.warns(RuntimeWarning, match="not recording"):
        assert poolscope.map(square, range(10), store=tmp_path) == [x * x for x in range(10)]


def phased(x: int) -> int:
    """0.5 ms of computing for the first 3,000 items, then 4 ms of waiting: the items' cost
    drifts 8×, and from work threads cannot share to work they can."""
    if x < 3000:
        end = time.thread_time() + 0.0005
        while time.thread_time() < end:
            pass
    else:
        time.sleep(0.004)
    return x


def test_a_drift_in_the_items_cost_makes_the_decision_again(store):
    decision: list[MapDecision] = []
    assert poolscope.map(phased, range(4600), decision=decision) == list(range(4600))
    revisits = decision[0].revisits
    assert 1 <= len(revisits) <= 3, decision
    first = revisits[0]
    assert first["at_item"] >= 3000 and first["per_item_now_s"] > 4 * first[
        "per_item_before_s"]
    assert revisits[-1]["executor"] == "thread" == decision[0].executor, decision
    assert poolscope.load("latest", store=store).options["map"]["revisits"][0]["at_item"] == \
        first["at_item"]


async def fetch(x: int) -> int:
    import asyncio

    await asyncio.sleep(0.002)
    if x == 77:
        raise ValueError("no 77")
    return 2 * x


def test_an_async_function_is_awaited_on_the_asyncio_candidate():
    decision: list[MapDecision] = []
    assert poolscope.map(fetch, range(70), decision=decision) == [2 * x for x in range(70)]
    assert (decision[0].executor, decision[0].workers) == ("asyncio", 64)
    with pytest.raises(ValueError, match="no 77"):
        poolscope.map(fetch, range(100))
    with poolscope.Executor() as pool:
        assert list(pool.map(fetch, range(5))) == [0, 2, 4, 6, 8]
    with pytest.raises(UsageError, match="asyncio candidate only"):
        poolscope.map(fetch, range(3), executors=["thread"])
