"""Subinterpreters under Python 3.13+: how close the ``interpreter`` executor comes to raw ones.

Interleaved rounds of pure-Python loops (poolscope's ``cpu`` workload), 2 workers:

- serial;
- raw: two ``_interpreters.create("isolated")`` interpreters, one thread each, no poolscope
  (the design's reference figure; their creation is not timed);
- poolscope's ``interpreter`` executor, its pool started inside each trial, and kept;
- the interpreters-pep-734 backport's InterpreterPoolExecutor, when it is installed;
- ProcessPoolExecutor (its workers forked before any subinterpreter exists: 3.13 kills a
  process forked while one does).

Run with a 3.13+ interpreter that has cloudpickle (and optionally interpreters-pep-734), with
poolscope's source on the path; standard library only otherwise::

    PYTHONPATH=src ~/.pyenv/versions/3.13.0/bin/python benchmarks/bench_interpreters.py [ROUNDS]
"""

from __future__ import annotations

import functools
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

from poolscope.backends import get_backend
from poolscope.measure.probe import Chunk
from poolscope.workloads import cpu

SIZE, ITEMS, WORKERS = 4_000_000, 8, 2


def main(rounds: int) -> None:  # noqa: C901 (a script; the limit is for src/)
    import _interpreters  # type: ignore[import-not-found]

    work = functools.partial(cpu, size=SIZE)
    processes = ProcessPoolExecutor(WORKERS)  # forked first: see the module's docstring
    list(processes.map(work, range(WORKERS)))
    try:
        from interpreters_backport.concurrent.futures import InterpreterPoolExecutor
    except ImportError:
        backport = None
    else:
        backport = InterpreterPoolExecutor(WORKERS)
        list(backport.map(functools.partial(cpu, size=1), range(WORKERS)))
    interpreter = get_backend("interpreter")
    chunks = [Chunk(i, [i]) for i in range(ITEMS)]
    kept = interpreter(work, WORKERS)
    kept.start()

    def serial() -> float:
        began = time.perf_counter()
        for i in range(ITEMS):
            work(i)
        return time.perf_counter() - began

    def raw() -> float:
        ids = [_interpreters.create("isolated") for _ in range(WORKERS)]
        try:
            for i in ids:
                _interpreters.exec(i, "from poolscope.workloads import cpu")
            script = f"for i in range({ITEMS // WORKERS}): cpu(i, size={SIZE})"
            threads = [threading.Thread(target=_interpreters.exec, args=(i, script))
                       for i in ids]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return time.perf_counter() - began
        finally:
            for i in ids:
                _interpreters.destroy(i)

    def timed(run: Callable[[], object]) -> Callable[[], float]:
        @functools.wraps(run)
        def case() -> float:
            began = time.perf_counter()
            run()
            return time.perf_counter() - began
        return case

    @timed
    def interpreter_per_trial() -> None:
        backend = interpreter(work, WORKERS)
        backend.start()
        list(backend.run(chunks))
        backend.close()

    @timed
    def interpreter_kept() -> None:
        list(kept.run(chunks))

    @timed
    def backport_pool() -> None:
        assert backport is not None
        list(backport.map(work, range(ITEMS)))

    @timed
    def process_pool() -> None:
        list(processes.map(work, range(ITEMS)))

    cases = [serial, raw, interpreter_per_trial, interpreter_kept, process_pool]
    if backport is not None:
        cases.insert(4, backport_pool)
    walls: dict[str, list[float]] = {case.__name__: [] for case in cases}
    for _ in range(rounds):
        for case in cases:
            walls[case.__name__].append(case())
    kept.close()
    processes.shutdown()
    if backport is not None:
        backport.shutdown()
    base = statistics.median(walls["serial"])
    print(f"Python {sys.version.split()[0]}, {ITEMS} items × {SIZE:,} loop steps, "
          f"{WORKERS} workers, median of {rounds} interleaved rounds")
    for name, values in walls.items():
        median = statistics.median(values)
        print(f"  {name:22s} {median:7.3f} s  {base / median:5.2f}× serial")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
