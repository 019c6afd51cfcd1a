"""Fail fast: call the function on its first items before any executor is timed.

A function that cannot run (a wrong signature, a missing file, an import that fails) used to
run every trial of every executor — thousands of failing items — before anyone saw why. The
preflight calls it on the first item, then the next, up to PREFLIGHT_ITEMS, stopping at the first
that returns, in the same kind of place the trials run it:

- poolscope's own process when an executor of the run runs there (the API's default,
  ``isolate=False``), in a thread of its own, so a hanging item cannot hang the preflight (a
  function that only works in the main thread, e.g. one that sets a signal handler, fails
  there as it does under the thread executors);
- otherwise a child process (the CLI's default, ``--isolate``, and runs of process executors
  only): the isolated child that the run's in-process trials then take over (it is kept for the
  run, so the preflight adds no start-up of its own), or a ``NAME@PATH`` executor's child.

If every preflight item raises (or ends its process: ``os._exit``, a segfault), the run stops:
``PreflightError`` carries each item's exception and the last frames of its traceback, the
user's frames only; the CLI prints them and exits 1, and nothing is stored (nothing was
measured). An item still running after PREFLIGHT_TIMEOUT_S is no verdict: the preflight gives up
and the trials go on (their own ``--timeout`` handles hangs). Preflight calls are never
measurements: no record of them reaches the trials. The item that returns is also watched for
how much of its CPU holds the GIL (``gil_watch``): the run keeps it as ``preflight["gil"]``,
which predictions for other core counts read.

``try_items`` runs in the child too, under any supported Python: the standard library only.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .._errors import PreflightError
from ._interrupt import is_users_interrupt

__all__ = ["PREFLIGHT_ITEMS", "PREFLIGHT_TIMEOUT_S", "preflight", "try_items", "user_frames"]

PREFLIGHT_ITEMS = 3  # at most this many first items; the first that returns ends it
PREFLIGHT_TIMEOUT_S = 10.0  # for all of them: past it, no verdict (the trials go on)
MAX_FRAMES = 5
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_STDLIB_DIR = os.path.dirname(os.path.abspath(os.__file__)) + os.sep


# --- where the function runs (this process or the child) ----------------------------------------

def user_frames(exc: BaseException, limit: int = MAX_FRAMES) -> str:
    """The last ``limit`` frames of the exception's traceback outside poolscope, from the first
    of the user's own code on (not the standard library that called it: asyncio.run), and the
    exception, formatted as Python prints them."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR)]
    first_own = next((i for i, f in enumerate(frames)
                      if not os.path.abspath(f.filename).startswith(_STDLIB_DIR)), 0)
    frames = frames[first_own:]
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames[-limit:])
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).rstrip("\n")


PREFLIGHT_TRIAL = -3  # Chunk.trial of the preflight: a shaped call's initializer runs first


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    from .probe import is_coroutine_function

    initialize = getattr(type(fn), "initialize_worker", None)  # call_shape.py
    if initialize is not None:
        initialize(fn, PREFLIGHT_TRIAL)

    if is_coroutine_function(fn):
        import asyncio

        return asyncio.run(fn(item))
    return fn(item)


def try_items(fn: Callable[[Any], Any], items: Sequence[Any],
              keep: list[BaseException] | None = None,
              budget_s: float | None = None) -> list[dict[str, Any]]:
    """Call ``fn`` on each item in turn until one returns: per item, whether it did, and if
    not the exception's kind, message and user traceback (``keep`` collects the exceptions).
    The one that returns is watched for the GIL when ``budget_s`` (from the start) leaves
    time for it."""
    from .gil_watch import MIN_WATCH_S, watch_calls

    started = time.perf_counter()

    outcomes: list[dict[str, Any]] = []
    for item in items:
        began = time.perf_counter()
        try:
            _call(fn, item)
        except (Exception, SystemExit, KeyboardInterrupt) as exc:  # the item's failure,
            # unless it is the user's own Ctrl-C
            if isinstance(exc, KeyboardInterrupt) and is_users_interrupt():
                raise
            outcomes.append({"ok": False, "kind": type(exc).__name__, "message": str(exc),
                             "traceback": user_frames(exc)})
            if keep is not None:
                keep.append(exc)
            continue
        # The item returns: how much of its CPU holds the GIL (gil_watch.py), for predictions.
        took = time.perf_counter() - began
        left = math.inf if budget_s is None else budget_s - (time.perf_counter() - started)
        gil = (watch_calls(lambda item=item: _call(fn, item), took)
               if 2 * (took + MIN_WATCH_S) < left else None)
        outcomes.append({"ok": True, **({"gil": gil} if gil else {})})
        break
    return outcomes


# --- the parent's side ---------------------------------------------------------------------------

class _PreflightTimeout(BaseException):
    """Raised into a preflight thread still running at the deadline (a Python loop stops)."""


def _here(fn: Callable[[Any], Any], items: Sequence[Any], timeout_s: float,
          kept: list[BaseException]) -> list[dict[str, Any]] | None:
    """The items in a thread of this process; None when they did not finish in time."""
    outcomes: list[dict[str, Any]] = []

    def run() -> None:
        with contextlib.suppress(_PreflightTimeout):  # given up on: no verdict
            outcomes.extend(try_items(fn, items, kept, timeout_s))

    thread = threading.Thread(target=run, name="poolscope-preflight", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not thread.is_alive():
        return outcomes
    import ctypes  # stop a Python loop; code blocked in C finishes in the background

    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident or 0),
                                               ctypes.py_object(_PreflightTimeout))
    return None


def _in_child(place: type[Any], fn: Callable[[Any], Any], items: Sequence[Any],
              timeout_s: float) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The items one at a time in the child (which one ended it, if one did); the child is
    kept for the run's trials. (outcomes or None on a timeout, how the child ended or None)."""
    from .._errors import PoolscopeError
    from .shipping import unpicklable_items

    deadline = time.monotonic() + timeout_s
    backend = place(fn, 1)
    outcomes: list[dict[str, Any]] = []
    try:
        for item in items:
            refused = unpicklable_items([item])  # as the trials record it: the item's error
            if refused:
                outcomes.append({"ok": False, "kind": "PicklingError", "message": refused[0],
                                 "traceback": None})
                continue
            try:
                answer = backend.preflight([item], max(0.1, deadline - time.monotonic()))
            except PoolscopeError as exc:  # it ended its process, or could not load fn
                return outcomes, str(exc)
            if answer is None:
                return None, None
            outcomes += answer
            if answer[-1]["ok"]:
                break
    finally:
        backend.close()
    return outcomes, None


def _place(names: Sequence[str], isolate: bool) -> tuple[type[Any] | None, bool]:
    """Where the preflight runs: (a child's backend class, or None for this process; whether
    that class is one the run's trials use, so its child is kept for them)."""
    from ..backends import resolve
    from ..backends.elsewhere import ElsewhereBackend, isolated

    classes = [resolve(name, isolate) for name in names]
    if any(cls.in_process for cls in classes):
        return None, True
    children = [cls for cls in classes if issubclass(cls, ElsewhereBackend)]
    return (children[0], True) if children else (isolated("serial"), False)


def preflight(fn: Callable[[Any], Any], items: Sequence[Any], names: Sequence[str],
              isolate: bool, item_timeout: float | None = None) -> dict[str, Any]:
    """Call ``fn`` on the first items where the run's trials will; raise PreflightError when
    none of them returns. Returns what it did (kept in the run's options as "preflight").
    ``item_timeout`` (--timeout) shortens the wait: an item that long would time out anyway."""
    first = list(items[:PREFLIGHT_ITEMS])
    timeout_s = min(PREFLIGHT_TIMEOUT_S, item_timeout or PREFLIGHT_TIMEOUT_S)
    began = time.perf_counter()
    place, used_by_trials = _place(names, isolate)
    kept: list[BaseException] = []
    died = None
    if place is None:
        outcomes = _here(fn, first, timeout_s, kept)
    else:
        place.begin_run()  # its child is kept for the run's trials (runner.run_plan)
        passed = False
        try:
            outcomes, died = _in_child(place, fn, first, timeout_s)
            passed = bool(outcomes) and outcomes[-1]["ok"]
        finally:  # a run that stops (or trials that do not use it) leave no child behind
            if not (passed and used_by_trials):
                place.end_run()
    report = {"where": "child process" if place is not None else "this process",
              "items": len(outcomes or []) + bool(died), "timed_out": outcomes is None,
              "passed": bool(outcomes) and outcomes[-1]["ok"],
              "seconds": round(time.perf_counter() - began, 4)}
    if outcomes and outcomes[-1].get("gil"):
        report["gil"] = outcomes[-1]["gil"]
    if died or (outcomes and not report["passed"]):
        raise _error(outcomes or [], died, report["where"], kept)
    return report


def _error(outcomes: list[dict[str, Any]], died: str | None, where: str,
           kept: list[BaseException]) -> PreflightError:
    """What the user needs to fix it: each item's exception, the first one's traceback."""
    count = len(outcomes) + bool(died)
    which = f"each of its first {count} items" if count > 1 else "its first item"
    lines = [f"the function failed on {which} in a preflight ({where}), before any trial; "
             "nothing was measured"]
    same: dict[tuple[str, str], list[int]] = {}  # one line per distinct failure
    for index, outcome in enumerate(outcomes):
        same.setdefault((outcome["kind"], outcome["message"]), []).append(index)
    for (kind, message), indexes in same.items():
        label = "item" if len(indexes) == 1 else "items"
        lines.append(f"  {label} {', '.join(map(str, indexes))}: {kind}: {message}")
    first_trace = outcomes[0]["traceback"] if outcomes else None
    if died:
        lines.append(f"  item {len(outcomes)}: it ended the process running it — {died}")
    if first_trace:
        lines.append("  " + first_trace.replace("\n", "\n  "))
    error = PreflightError("\n".join(lines))
    error.outcomes = outcomes
    error.traceback = first_trace
    error.exception = kept[0] if kept else None
    return error
