"""Native thread pools (BLAS, OpenMP): seen in every worker, capped per worker on request.

A numpy matmul runs on OpenBLAS's own threads: one item can keep every core busy, and two
process workers each starting as many BLAS threads as there are cores oversubscribe the
machine. threadpoolctl finds the pools of the libraries a process has loaded; this module
reads them once per worker process and applies ``--native-threads N``::

    parent (api.run_workload)                 worker process / isolated child
    -------------------------                 -------------------------------
    with capped(N):                           install_function(payload, N) / "hello" {N}
      process pools: initargs (payload, N) ─>   limit(N): env vars + threadpool_limits
      child: hello {"native_threads": N}  ─>    pools(): [{user_api, internal_api, prefix,
      this process: threadpool_limits(N)         num_threads}] on its first ChunkRecord

Imported by worker processes and by another interpreter's child (``_child.py``): the standard
library only at import time; threadpoolctl is imported only where a native library is loaded
(reading ``/proc/self/maps`` first costs far less than importing it in every spawned worker).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["ENV_VARS", "capped", "describe", "first_report", "limit", "pools", "preload",
           "threads_per_worker", "validate", "worker_cap"]

# Read by the libraries when they load: covers one loaded after the worker started.
ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
            "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
# Substrings of the shared libraries threadpoolctl knows (its own list, by file name).
_LIBRARY_HINTS = ("openblas", "libmkl", "libgomp", "libomp", "libiomp", "libblis",
                  "flexiblas", "libarmpl", "libvcomp")
_KEYS = ("user_api", "internal_api", "prefix", "num_threads", "version")

_cap: int | None = None  # the run's --native-threads, for the pools and children started now


def validate(value: Any) -> int | None:
    """``native_threads`` as given to the API or CLI: None, or a whole number of at least 1."""
    from .._errors import UsageError

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"native threads must be a whole number of at least 1, got {value!r}")
    return value


def _maybe_loaded() -> bool:
    """Whether a library threadpoolctl knows may be loaded here (False only when sure not)."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            text = maps.read()
    except OSError:
        return True  # not Linux: ask threadpoolctl
    return any(hint in text for hint in _LIBRARY_HINTS)


def pools() -> list[dict[str, Any]]:
    """This process's native thread pools: user_api, internal_api, prefix, num_threads, version.

    Empty when none is loaded, or threadpoolctl is missing (another interpreter's child).
    """
    if not _maybe_loaded():
        return []
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{key: pool.get(key) for key in _KEYS} for pool in threadpool_info()]


def preload() -> None:
    """Import threadpoolctl here, before the clock, where a library it knows is loaded: fork
    workers inherit it, and their ``pools()`` then costs ~1 ms instead of ~23 ms of import (on
    each worker's start-up, in each trial)."""
    if "threadpoolctl" not in sys.modules and _maybe_loaded():
        with contextlib.suppress(ImportError):
            import threadpoolctl  # noqa: F401


_reported: set[tuple[str, str]] = set()


def first_report(run: str, executor: str) -> bool:
    """Whether ``executor``'s workers should read their pools in this trial: in its first trial
    of the run ``run`` (the board's path) only, as every later trial's workers run the same
    function with the same cap."""
    if (run, executor) in _reported:
        return False
    if len(_reported) > 256:  # a long-lived process (a notebook) runs many runs
        _reported.clear()
    _reported.add((run, executor))
    return True


def limit(cap: int | None) -> None:
    """Cap this process's native pools at ``cap`` threads each, for good (a worker's whole life):
    those loaded now through threadpoolctl, those loaded later through the environment."""
    if cap is None:
        return
    for name in ENV_VARS:
        os.environ[name] = str(cap)
    if not _maybe_loaded():
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(cap)


def worker_cap() -> int | None:
    """The cap for worker processes and children started now (inside ``capped``)."""
    return _cap


@contextlib.contextmanager
def capped(cap: int | None) -> Iterator[list[dict[str, Any]]]:
    """While a run's trials run: this process's pools capped at ``cap`` (in-process executors),
    and the pools and children started meanwhile told to cap theirs; restored afterwards.
    Yields this process's pools as they are inside."""
    global _cap
    if cap is None:
        yield pools()
        return
    from threadpoolctl import threadpool_limits

    saved = {name: os.environ.get(name) for name in ENV_VARS}
    previous, _cap = _cap, cap
    try:
        for name in ENV_VARS:  # libraries this process loads during the run
            os.environ[name] = str(cap)
        with threadpool_limits(cap):
            yield pools()
    finally:
        _cap = previous
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def threads_per_worker(found: list[dict[str, Any]]) -> int:
    """The native threads one worker may run at once: its largest pool (1 with none)."""
    return max((int(p.get("num_threads") or 1) for p in found), default=1)


def describe(found: list[dict[str, Any]]) -> str:
    """'OpenBLAS, 2 threads' — the pools of one worker, for a sentence."""
    names = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS", "openmp": "OpenMP",
             "flexiblas": "FlexiBLAS"}
    parts = [f"{names.get(str(p.get('internal_api')), p.get('internal_api'))}, "
             f"{p.get('num_threads')} thread{'s' if p.get('num_threads') != 1 else ''}"
             for p in found]
    return "; ".join(dict.fromkeys(parts)) or "no native thread pool"


class Collector:
    """The pools each worker process reported with its first record (an ``on_chunk`` hook)."""

    def __init__(self) -> None:
        self.by_pid: dict[int, list[dict[str, Any]]] = {}
        self.here: list[dict[str, Any]] = []  # this process's, read inside ``capped``

    def on_chunk(self, index: int, record: Any) -> None:
        found = getattr(record, "native_threads", None)
        if found is not None:
            self.by_pid[record.pid] = found

    def facts(self, trials: Any, cap: int | None) -> dict[str, Any]:
        """For the run's environment: the cap, this process's pools ("here": where in-process
        executors run without isolation) and, per executor, the distinct pools its worker
        processes reported, how many reported, and the most threads one worker may run."""
        here = self.here
        by_pid = {os.getpid(): here, **self.by_pid}
        executors: dict[str, dict[str, Any]] = {}
        for trial in trials:
            for pid in set(trial.items.pid.tolist()):
                found = by_pid.get(int(pid))
                if found is None:
                    continue
                entry = executors.setdefault(trial.executor, {"pids": set(), "pools": []})
                entry["pids"].add(int(pid))
                entry["pools"] += [p for p in found if p not in entry["pools"]]
        return {"cap": cap, "here": here,
                "executors": {name: {"workers_reported": len(e["pids"]), "pools": e["pools"],
                                     "threads_per_worker": threads_per_worker(e["pools"])}
                              for name, e in executors.items()}}
