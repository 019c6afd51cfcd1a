"""poolscope.Executor keeps the concurrent.futures.Executor contract: the checks CPython's own
executor tests make (test_concurrent_futures: executor.py, test_shutdown.py), in our words, plus
what it adds (the decision that map makes and submit follows)."""

from __future__ import annotations

import concurrent.futures
import gc
import os
import threading
import time
import weakref

import pytest

import poolscope
from poolscope import UsageError
from poolscope.automap import InitializerFailed
from test_automap import remember, tagged

CANDIDATES = ["serial", "thread", "process-pool"]
WAIT_S = 30  # every wait below ends by then


def multiply(x: int, y: int) -> int:
    return x * y


def echo_arguments(*args, **kwargs):
    return args, kwargs


def sleep_then_return(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def log_item(item: tuple[int, str]) -> int:
    number, path = item
    with open(path, "a") as log:
        log.write(f"{number}\n")
    return number


def where_it_ran(_: object) -> tuple[int, str]:
    return os.getpid(), threading.current_thread().name


class Thing:
    def method(self) -> None:
        pass


def make_thing(_: int) -> Thing:
    return Thing()


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    """The default store of every map here: a file of the test's own."""
    path = tmp_path / "runs.db"
    monkeypatch.setenv("POOLSCOPE_STORE", str(path))
    return path


@pytest.fixture
def executor():
    with poolscope.Executor(max_workers=2) as pool:
        yield pool


def test_it_is_a_concurrent_futures_executor(executor):
    assert isinstance(executor, concurrent.futures.Executor)
    assert "Executor" in poolscope.__all__


def test_submit_returns_a_future_of_the_result(executor):
    future = executor.submit(pow, 2, 8)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(timeout=WAIT_S) == 256


def test_submit_passes_keywords_even_ones_named_like_its_own(executor):
    assert executor.submit(multiply, 2, y=8).result(timeout=WAIT_S) == 16
    assert executor.submit(echo_arguments, 1, self=2, fn=3).result(timeout=WAIT_S) == \
        ((1,), {"self": 2, "fn": 3})
    with pytest.raises(TypeError):
        executor.submit(fn=echo_arguments, arg=1)
    with pytest.raises(TypeError):
        executor.submit(arg=1)


def test_a_submitted_calls_exception_is_its_futures(executor):
    future = executor.submit(divmod, 1, 0)
    with pytest.raises(ZeroDivisionError):
        future.result(timeout=WAIT_S)
    assert isinstance(future.exception(timeout=WAIT_S), ZeroDivisionError)


@pytest.mark.parametrize("chunksize", [1, 3])
def test_map_zips_its_iterables_like_map(executor, chunksize):
    assert list(executor.map(pow, range(10), range(10), chunksize=chunksize)) == \
        list(map(pow, range(10), range(10)))


@pytest.mark.parametrize("name", CANDIDATES)
def test_map_on_each_candidate_is_maps_result(name):
    items = list(range(2000))
    with poolscope.Executor(executors=[name], max_workers=2) as pool:
        assert list(pool.map(multiply, items, items)) == [x * x for x in items]
        assert pool.decision is not None and pool.decision.executor == name


def test_map_raises_an_items_exception_when_its_result_is_reached(executor):
    results = executor.map(divmod, [1, 1, 1, 1], [2, 3, 0, 5])
    assert next(results) == (0, 1)
    assert next(results) == (0, 1)
    with pytest.raises(ZeroDivisionError):
        next(results)


def test_map_timeout_counts_from_the_call(executor):
    got = []
    began = time.monotonic()
    with pytest.raises(concurrent.futures.TimeoutError):
        for value in executor.map(sleep_then_return, [0, 0, 4], timeout=1.5):
            got.append(value)
    assert got == [0, 0]
    assert time.monotonic() - began < 3.5  # raised at the timeout, not once the item ended


def test_map_starts_the_work_without_being_read(tmp_path):
    log = tmp_path / "calls.log"
    with poolscope.Executor(max_workers=2) as pool:
        results = pool.map(log_item, [(i, str(log)) for i in range(50)])
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and (
                not log.exists() or len(log.read_text().split()) < 50):
            time.sleep(0.05)
        assert sorted(int(n) for n in log.read_text().split()) == list(range(50))
        assert list(results) == list(range(50))


def test_shutdown_right_after_a_map_that_is_never_read():
    pool = poolscope.Executor(max_workers=2)
    pool.map(str, [2] * 3)
    pool.shutdown()
    assert pool._maps == set()


def test_a_submitted_calls_objects_are_not_kept(executor):
    thing = Thing()
    collected = threading.Event()
    _ = weakref.ref(thing, lambda _: collected.set())
    executor.submit(thing.method)  # the future is dropped on purpose
    del thing
    assert collected.wait(WAIT_S), "the executor kept a reference to the call's object"


def test_map_keeps_no_reference_to_a_result_once_read(executor):
    for thing in executor.map(make_thing, range(10)):
        reference = weakref.ref(thing)
        del thing
        gc.collect()
        assert reference() is None


@pytest.mark.parametrize("workers", [0, -1])
def test_max_workers_below_one_is_a_value_error(workers):
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        poolscope.Executor(max_workers=workers)


def test_bad_options_are_a_usage_error():
    with pytest.raises(UsageError, match="twice"):
        poolscope.Executor(executors=["thread", "thread"])


def test_nothing_is_scheduled_after_shutdown():
    pool = poolscope.Executor()
    pool.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(pow, 2, 8)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.map(abs, [1])


def test_the_context_manager_waits_for_the_work():
    with poolscope.Executor(max_workers=2) as pool:
        future = pool.submit(sleep_then_return, 0.2)
        results = pool.map(sleep_then_return, [0.01] * 20)
    assert future.done() and future.result() == 0.2
    assert list(results) == [0.01] * 20
    with pytest.raises(RuntimeError):
        pool.submit(pow, 2, 8)


def test_shutdown_without_waiting_returns_at_once_and_the_work_still_finishes():
    pool = poolscope.Executor(max_workers=2)
    results = pool.map(sleep_then_return, [0.05] * 30)
    future = pool.submit(sleep_then_return, 0.5)
    began = time.monotonic()
    pool.shutdown(wait=False)
    assert time.monotonic() - began < 0.4
    assert future.result(timeout=WAIT_S) == 0.5
    assert list(results) == [0.05] * 30
    pool.shutdown(wait=True)


def test_shutdown_cancel_futures_cancels_what_has_not_started():
    pool = poolscope.Executor(max_workers=1)
    futures = [pool.submit(sleep_then_return, 0.2) for _ in range(6)]
    results = pool.map(sleep_then_return, [0.05] * 400)
    time.sleep(0.1)
    pool.shutdown(wait=True, cancel_futures=True)
    assert futures[0].result() == 0.2
    assert any(f.cancelled() for f in futures[1:])
    assert all(f.done() for f in futures)
    read = []
    with pytest.raises(concurrent.futures.CancelledError):
        for value in results:  # what finished before the cancel, then CancelledError
            read.append(value)
    assert read == [0.05] * len(read) and len(read) < 400


def test_submit_before_any_map_runs_in_a_thread_of_this_process(executor):
    pid, thread = executor.submit(where_it_ran, None).result(timeout=WAIT_S)
    assert pid == os.getpid() and thread.startswith("poolscope-submit")
    assert executor.decision is None


def test_submit_follows_the_decision_of_the_latest_map():
    with poolscope.Executor(executors=["process-pool"], max_workers=2) as pool:
        assert list(pool.map(abs, range(-5, 5))) == list(map(abs, range(-5, 5)))
        assert pool.decision.executor == "process-pool"
        pid, _ = pool.submit(where_it_ran, None).result(timeout=WAIT_S)
        assert pid != os.getpid()


def test_an_unread_map_reads_a_bounded_window_ahead_of_its_reader():
    read = []

    def numbers():
        for i in range(1_000_000):
            read.append(i)
            yield i

    with poolscope.Executor(executors=["serial"]) as pool:
        results = pool.map(abs, numbers())
        assert next(results) == 0
        deadline, seen = time.monotonic() + WAIT_S, -1
        while len(read) != seen and time.monotonic() < deadline:  # until the work waits
            seen = len(read)
            time.sleep(0.3)
        assert len(read) < 400_000, "the work ran ahead of an idle reader without bound"
        assert sum(results) == sum(range(1, 1_000_000))
    assert len(read) == 1_000_000


def test_each_map_is_a_run_in_the_history(store):
    with poolscope.Executor(executors=["serial", "thread"]) as pool:
        assert list(pool.map(abs, range(-100, 100))) == [abs(x) for x in range(-100, 100)]
        assert sum(pool.map(multiply, range(5000), range(5000))) == sum(
            x * x for x in range(5000))
    first, second = poolscope.load("latest~1", store=store), poolscope.load("latest",
                                                                            store=store)
    assert (first.target, first.n_items) == ("builtins:abs", 200)
    assert (second.target, second.n_items) == ("test_executor:multiply", 5000)
    assert second.options["map"]["executor"] == pool.decisions[-1].executor


# --- the options shared with poolscope.map ---------------------------------------------------
# remember (an initializer that tags its worker) and tagged (an item that reads the tag): as
# test_automap's tests use them
def refuse() -> None:
    raise RuntimeError("no database")


def blas_env(_: object) -> str | None:
    return os.environ.get("OPENBLAS_NUM_THREADS")


@pytest.mark.parametrize("name", CANDIDATES)
def test_the_initializer_runs_once_in_each_worker_of_map_and_submit(tmp_path, name):
    log = tmp_path / "init.log"
    with poolscope.Executor(max_workers=2, executors=[name], initializer=remember,
                            initargs=("ready", str(log))) as pool:
        results = list(pool.map(tagged, range(300), timeout=WAIT_S))
        assert [r[0] for r in results] == list(range(300))
        assert all(tag == "ready" for _, tag, _, _ in results)
        ran = log.read_text().split("\n")[:-1]
        assert len(ran) == len(set(ran)) and set(ran) == {f"{p} {t}" for _, _, p, t in results}
        # submit's pool, whichever the decision named, is started with the initializer too
        assert pool.submit(tagged, 1).result(timeout=WAIT_S)[1] == "ready"


@pytest.mark.parametrize("name", CANDIDATES)
def test_an_initializer_that_raises_fails_the_maps_items_without_hanging(name):
    with poolscope.Executor(max_workers=2, executors=[name], initializer=refuse) as pool, \
            pytest.raises(InitializerFailed, match="RuntimeError: no database"):
        list(pool.map(multiply, range(100), range(100), timeout=WAIT_S))


def test_the_executors_chunksize_is_each_maps_unless_map_gives_one(store):
    with poolscope.Executor(max_workers=2, executors=["thread"], chunksize=5) as pool:
        assert list(pool.map(abs, range(-200, 200), timeout=WAIT_S)) == [
            abs(x) for x in range(-200, 200)]
        assert list(pool.map(abs, range(-200, 200), timeout=WAIT_S, chunksize=9)) == [
            abs(x) for x in range(-200, 200)]
    first, second = poolscope.load("latest~1", store=store), poolscope.load("latest",
                                                                            store=store)
    assert {t.chunksize for t in first.trial_results if len(t.items) > 5} == {5}
    assert {t.chunksize for t in second.trial_results if len(t.items) > 9} == {9}


@pytest.mark.parametrize("options, message", [
    ({"chunksize": 0}, "chunksize"),
    ({"native_threads": 0}, "native threads"),
    ({"initializer": 5}, "initializer"),
    ({"initargs": 5}, "initargs"),
])
def test_bad_shared_options_are_a_usage_error(options, message):
    with pytest.raises(UsageError, match=message):
        poolscope.Executor(**options)


@pytest.mark.parametrize("name", CANDIDATES)
def test_native_threads_caps_the_maps_workers(name):
    before = os.environ.get("OPENBLAS_NUM_THREADS")
    with poolscope.Executor(max_workers=2, executors=[name], native_threads=1) as pool:
        assert set(pool.map(blas_env, range(50), timeout=WAIT_S)) == {"1"}
    assert os.environ.get("OPENBLAS_NUM_THREADS") == before  # restored after the map


def test_submits_process_pool_caps_its_workers_and_runs_the_initializer():
    with poolscope.Executor(max_workers=2, executors=["process-pool"], native_threads=1,
                            initializer=remember, initargs=("p", os.devnull)) as pool:
        assert list(pool.map(abs, range(10), timeout=WAIT_S)) == list(range(10))
        assert pool.decision is not None and pool.decision.executor == "process-pool"
        assert pool.submit(blas_env, None).result(timeout=WAIT_S) == "1"
        _, tag, pid, _ = pool.submit(tagged, 3).result(timeout=WAIT_S)
        assert tag == "p" and pid != os.getpid()


def test_progress_goes_to_stderr_only(capfd, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    with poolscope.Executor(executors=["serial", "thread"], progress=True) as pool:
        assert list(pool.map(abs, range(-5000, 5000), timeout=WAIT_S)) == [
            abs(x) for x in range(-5000, 5000)]
    out, err = capfd.readouterr()
    assert out == "" and "poolscope.map" in err
