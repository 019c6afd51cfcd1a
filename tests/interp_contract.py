"""The executor contract for ``interpreter``, checked under Python 3.13+.

tests/test_interpreters.py runs this script with a 3.13 interpreter (the test process's own
Python may have no subinterpreters with their own GIL). Standard library and poolscope's
backends only: that interpreter has no numpy. Prints one JSON object {check: "ok" | message}
and exits 1 when a check failed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import interp_workloads as w
from poolscope._errors import UsageError
from poolscope.backends import get_backend
from poolscope.backends.interpreters import InterpreterBackend
from poolscope.measure.probe import Chunk


def trial(fn: Callable[[Any], Any], n: int = 12, workers: int = 2, chunksize: int = 2):
    backend = get_backend("interpreter")(fn, workers)
    chunks = [Chunk(i, list(range(i, min(n, i + chunksize)))) for i in range(0, n, chunksize)]
    records, error = [], None
    t0 = time.perf_counter_ns()
    try:
        backend.start()
        records = list(backend.run(chunks))
    except Exception as exc:
        error = exc
    finally:
        backend.close()
    return t0, time.perf_counter_ns(), records, error


def from_main(x: int) -> int:
    """Defined in __main__: the interpreters-pep-734 backport hangs on such a function."""
    return x + 1


def every_item_once() -> None:
    _, _, records, error = trial(w.square)
    assert error is None, error
    got = sorted((r.first + k, v) for r in records for k, v in enumerate(r.results))
    assert got == [(i, i * i) for i in range(12)], got


def times_on_one_axis() -> None:
    t0, t1, records, _ = trial(w.square)
    for r in records:
        for start, end in zip(r.start_ns, r.end_ns, strict=True):
            assert t0 <= start <= end <= t1, (t0, start, end, t1)
        marks = list(r.cpu_marks_ns)
        assert marks == sorted(marks), marks


def workers_are_threads_of_this_process() -> None:
    _, _, records, error = trial(w.spin, n=8, chunksize=1)
    assert error is None, repr(error)  # a trial that broke returns no records to check
    assert {r.pid for r in records} == {os.getpid()}, ({r.pid for r in records}, os.getpid())
    tids = {r.tid for r in records}
    assert threading.get_native_id() not in tids and 1 <= len(tids) <= 2, tids


def item_exception_recorded() -> None:
    _, _, records, error = trial(w.fail_on_three)
    assert error is None, error
    errors = [e for r in records for e in r.errors]
    assert errors == [(3, "ValueError", "item 3 is bad")], errors
    assert sum(len(r.start_ns) for r in records) == 12


def functions_not_importable_by_reference() -> None:
    k = 5
    for fn, expected in ((lambda x: x * 2, 2), (from_main, None), (lambda x: x * k, 5)):
        _, _, records, error = trial(fn, n=6)
        assert error is None, error
        results = sorted(v for r in records for v in r.results)
        want = [x + 1 for x in range(6)] if expected is None else [x * expected
                                                                   for x in range(6)]
        assert results == want, results


def unshareable_function_says_why() -> None:
    lock = threading.Lock()

    def holds_a_lock(x: int) -> Any:
        return lock.locked()

    error = trial(holds_a_lock)[3]
    text = str(error)
    assert "cannot be shared into a subinterpreter" in text and "_thread.lock" in text, text
    try:
        InterpreterBackend.prepare_run(holds_a_lock)
    except UsageError as exc:
        assert "cannot be shared into a subinterpreter" in str(exc), exc
    else:
        raise AssertionError("prepare_run accepted a function holding a lock")


def extension_without_subinterpreter_support_says_why() -> None:
    try:
        import interp_single_phase
    except ImportError:
        return  # a build without _testsinglephase: nothing to check
    error = trial(interp_single_phase.work)[3]
    text = str(error)
    assert "does not support subinterpreters" in text and "_testsinglephase" in text, text


def nothing_left_behind() -> None:
    import _interpreters  # type: ignore[import-not-found]

    assert threading.active_count() == 1, threading.enumerate()
    assert len(_interpreters.list_all()) == 1, _interpreters.list_all()


CHECKS = [every_item_once, times_on_one_axis, workers_are_threads_of_this_process,
          item_exception_recorded, functions_not_importable_by_reference,
          unshareable_function_says_why, extension_without_subinterpreter_support_says_why,
          nothing_left_behind]


def main() -> int:
    outcome = {}
    for check in CHECKS:
        try:
            check()
            outcome[check.__name__] = "ok"
        except Exception:
            outcome[check.__name__] = traceback.format_exc()
    print(json.dumps(outcome))
    return 0 if all(v == "ok" for v in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
