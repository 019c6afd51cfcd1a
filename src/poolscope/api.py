"""The Python front: ``poolscope.compare(fn, items, ...)``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from ._errors import UsageError
from .environment import collect_environment, usable_cores
from .result import Result, new_run_id, transfer_sample
from .runner import Chunksize, Plan, run_plan
from .workloads import Workload

__all__ = ["DEFAULT_EXECUTORS", "compare", "run_workload"]

DEFAULT_EXECUTORS = ("thread", "process")


def compare(fn: Callable[[Any], Any], items: Iterable[Any] | int, *,
            executors: Sequence[str] | str = DEFAULT_EXECUTORS,
            workers: int | Sequence[int] | None = None, repeat: int = 1,
            chunksize: Chunksize = "auto", baseline: bool = True,
            progress: bool = False) -> Result:
    """Run ``fn`` over ``items`` under each executor and compare them.

    ``items`` may be an iterable or a count (``range(n)``). ``workers`` defaults to the usable
    cores. With ``baseline`` a ``serial`` trial is added so speedups have a reference. The
    function may be defined in a notebook or ``__main__``: process workers receive it by value.
    """
    if isinstance(items, bool) or not (isinstance(items, int) or hasattr(items, "__iter__")):
        raise UsageError(f"items must be a count or an iterable, got {type(items).__name__}")
    item_list = list(range(items)) if isinstance(items, int) else list(items)
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    target = f"{getattr(fn, '__module__', None) or '?'}:{name}"
    workload = Workload(fn=fn, items=item_list, target=target)
    return run_workload(workload, executors=executors, workers=workers, repeat=repeat,
                        chunksize=chunksize, baseline=baseline, progress=progress)


def _as_names(executors: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(executors, str):
        executors = [e for e in executors.split(",")]
    names = tuple(e.strip() for e in executors)
    if any(not e for e in names):
        raise UsageError("an executor name is empty")
    return names


def _as_workers(workers: int | Sequence[int] | None) -> tuple[int, ...]:
    if workers is None:
        return (usable_cores(),)
    if isinstance(workers, int):
        return (workers,)
    values = tuple(workers)
    if not values:
        raise UsageError("give at least one worker count")
    return values


def run_workload(workload: Workload, *, executors: Sequence[str] | str = DEFAULT_EXECUTORS,
                 workers: int | Sequence[int] | None = None, repeat: int = 1,
                 chunksize: Chunksize = "auto", baseline: bool = True,
                 progress: bool = False, console: Any = None) -> Result:
    """Plan and run the trials of one workload; the shared core of the API and the CLI."""
    names = _as_names(executors)
    if baseline and "serial" not in names:
        names = ("serial", *names)
    plan = Plan(executors=names, workers=_as_workers(workers), repeat=repeat,
                chunksize=chunksize)
    items = list(workload.items)
    if not items:
        raise UsageError("there are no items to run")
    workload = Workload(fn=workload.fn, items=items, target=workload.target, size=workload.size)
    environment = collect_environment()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    if progress:
        from .present.progress import TrialProgress

        with TrialProgress(plan, len(items), console=console) as bar:
            trials, interrupted = run_plan(workload, plan, on_chunk=bar.on_chunk,
                                           on_trial_start=bar.on_trial_start)
    else:
        trials, interrupted = run_plan(workload, plan)
    sample = next((t.result_sample for t in trials if t.result_sample), [])
    options = {"executors": list(names), "workers": list(plan.workers), "repeat": repeat,
               "chunksize": chunksize, "size": workload.size,
               "caveats": _caveats(workload, names)}
    return Result(run_id=new_run_id(), target=workload.target, n_items=len(items),
                  trial_results=trials, environment=environment, options=options,
                  interrupted=interrupted, transfer_bytes=transfer_sample(items, sample),
                  started_at=started_at)


def _caveats(workload: Workload, names: Sequence[str]) -> list[str]:
    notes = []
    module = getattr(workload.fn, "__module__", None) or getattr(
        getattr(workload.fn, "func", None), "__module__", None)
    not_importable = module in ("__main__", None) or module.startswith("poolscope_user_")
    if not_importable and any(n in ("process-spawn", "process-forkserver") for n in names):
        notes.append("the function is not importable, so spawn and forkserver workers "
                     "receive it by value (cloudpickle); plain multiprocessing would fail")
    return notes
