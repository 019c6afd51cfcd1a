"""poolscope.map: list(map(fn, items))'s results, whatever configuration it picks."""

from __future__ import annotations

import concurrent.futures
import io
import os
import threading
import time
from pathlib import Path

import pytest

import poolscope
from conftest import own_children
from poolscope import UsageError
from poolscope.automap import InitializerFailed, ItemFailed, MapDecision, Raised, map_stream
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
    before = own_children()
    decision: list[MapDecision] = []
    assert poolscope.map(square, range(50), decision=decision) == [x * x for x in range(50)]
    assert decision[0].executor == "serial" and decision[0].how == "short work"
    assert own_children() <= before


def test_a_worker_that_dies_fails_its_item_and_the_rest_finish(tmp_path):
    with pytest.raises(ItemFailed) as failed:
        poolscope.map(exits_on_5, range(40), executors=["process-pool"], max_workers=2)
    assert failed.value.item == 5 and "exit" in failed.value.message.lower()
    deadline = time.monotonic() + 10
    while own_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not own_children()


@pytest.mark.parametrize("options, message", [
    ({"max_workers": 0}, "max_workers"),
    ({"executors": ["dask"]}, "serial, thread and process"),
    ({"executors": []}, "at least one"),
    ({"executors": ["serial", "serial"]}, "twice"),
    ({"budget": 0}, "budget"),
    ({"chunksize": 0}, "chunksize"),
    ({"chunksize": 2.5}, "chunksize"),
    ({"chunksize": True}, "chunksize"),
    ({"initializer": "setup"}, "initializer must be callable"),
    ({"initializer": print, "initargs": 3}, "initargs"),
    ({"native_threads": 0}, "native threads"),
    ({"native_threads": 1.5}, "native threads"),
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


# --- initializer, chunksize, native threads, progress --------------------------------------
WORKER = threading.local()  # what the initializer set, in the thread that ran it


def remember(tag: str, log: str) -> None:
    """An initializer: tags its worker, and logs which worker (pid, thread) it ran in."""
    WORKER.tag = tag
    with open(log, "a") as file:
        file.write(f"{os.getpid()} {threading.get_ident()}\n")


def tagged(x: int) -> tuple[int, str | None, int, int]:
    """The item, the tag its worker's initializer set, and that worker; ~1 ms of computing."""
    deadline = time.thread_time() + 0.001
    while time.thread_time() < deadline:
        pass
    return x, getattr(WORKER, "tag", None), os.getpid(), threading.get_ident()


def refuse(path: str) -> None:
    raise RuntimeError(f"cannot open {path}")


@pytest.mark.parametrize("executors", [[name] for name in CANDIDATES] + [CANDIDATES])
def test_the_initializer_runs_once_in_each_worker_before_its_items(tmp_path, executors):
    log = tmp_path / "init.log"
    results = poolscope.map(tagged, range(400), executors=executors, max_workers=2,
                            initializer=remember, initargs=("ready", str(log)))
    assert [r[0] for r in results] == list(range(400))
    assert all(tag == "ready" for _, tag, _, _ in results)  # set before the worker's items
    ran = log.read_text().split("\n")[:-1]
    assert len(ran) == len(set(ran))  # once per worker
    workers = {f"{pid} {thread}" for _, _, pid, thread in results}
    assert workers == set(ran)
    if executors == ["process-pool"]:
        assert os.getpid() not in {pid for _, _, pid, _ in results}


def test_the_initializer_runs_again_in_each_call(tmp_path):
    log = tmp_path / "init.log"
    for _ in range(2):  # serially, both times in this thread
        assert poolscope.map(square, range(5000), executors=["serial"], initializer=remember,
                             initargs=("x", str(log))) == [x * x for x in range(5000)]
    assert log.read_text().split("\n")[:-1] == [f"{os.getpid()} {threading.get_ident()}"] * 2


@pytest.mark.parametrize("name", CANDIDATES)
def test_an_initializer_that_raises_fails_every_item_of_its_worker(tmp_path, name):
    with pytest.raises(InitializerFailed, match=r"the initializer test_automap:refuse raised "
                                                r"RuntimeError: cannot open db\.sqlite") as failed:
        poolscope.map(square, range(300), executors=[name], max_workers=2,
                      initializer=refuse, initargs=("db.sqlite",))
    if name != "process-pool":  # raised in this process: the initializer's own exception
        assert isinstance(failed.value.__cause__, RuntimeError)
    assert isinstance(failed.value, concurrent.futures.BrokenExecutor)
    outcomes: list = []  # map_stream runs every item: each fails, none hangs
    map_stream(square, range(300), outcomes.extend, executors=[name], max_workers=2,
               initializer=refuse, initargs=("db.sqlite",))
    assert len(outcomes) == 300
    assert all(type(v) is Raised and isinstance(v.exc, InitializerFailed) for v in outcomes)


def test_the_initializer_and_the_new_options_are_recorded(store, tmp_path):
    poolscope.map(tagged, range(200), executors=["thread"], max_workers=2, chunksize=7,
                  initializer=remember, initargs=("t", str(tmp_path / "log")), native_threads=1)
    run = poolscope.load("latest", store=store)
    options = run.options
    assert options["chunksize"] == 7 and options["native_threads"] == 1
    assert options["initializer"] == "test_automap:remember"
    assert options["initargs"] == ["'t'", repr(str(tmp_path / "log"))]
    # chunks of 7 items wherever a batch has more (smaller calibration batches: one chunk)
    assert {t.chunksize for t in run.trial_results if len(t.items) > 7} == {7}
    from poolscope.present.terminal import render_result

    shown = "\n".join(str(part) for part in render_result(run))
    assert "chunksize 7" in shown and "initializer test_automap:remember('t'" in shown
    assert "native threads 1" in shown


def blas_threads(_: object) -> tuple[int | None, str | None]:
    """This worker's largest BLAS pool, and what the environment tells BLAS loaded later."""
    from threadpoolctl import threadpool_info

    found = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    return max(found, default=None), os.environ.get("OPENBLAS_NUM_THREADS")


def _blas_here() -> int | None:
    return blas_threads(None)[0]


@pytest.mark.parametrize("name", [*CANDIDATES, "process-spawn"])
def test_native_threads_caps_every_worker_and_is_restored_after(name):
    before, env_before = blas_threads(None)
    seen = set(poolscope.map(blas_threads, range(8), executors=[name], max_workers=1,
                             native_threads=1))
    assert {env for _, env in seen} == {"1"}
    if before is not None:  # numpy (poolscope imports it) loaded a BLAS here and in workers
        assert {threads for threads, _ in seen} == {1}
    assert blas_threads(None) == (before, env_before)


def test_progress_goes_to_stderr_only(capfd, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich draws as on a terminal
    monkeypatch.setenv("NO_COLOR", "1")
    assert poolscope.map(square, range(20_000), executors=["serial", "thread"],
                         progress=True) == [x * x for x in range(20_000)]
    out, err = capfd.readouterr()
    assert out == ""
    assert "poolscope.map" in err and "20000/20000" in err
    poolscope.map(square, range(20_000), executors=["serial", "thread"])  # off by default
    assert capfd.readouterr() == ("", "")


def test_progress_counts_lists_of_results_not_items():
    from rich.console import Console

    from poolscope.present.progress import MapProgress

    text = io.StringIO()
    display = MapProgress(None, Console(file=text, width=80, force_terminal=True,
                                        color_system=None))
    with display:
        display.advance(1500)
        display.decided("thread ×4")
        display.advance(500)
    assert display.progress is not None
    assert display.progress.tasks[0].completed == 2000
    assert "poolscope.map: calibrating" in text.getvalue()
