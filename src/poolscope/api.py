"""The Python front: ``poolscope.compare(fn, items, ...)``."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import UsageError
from .analysis.decide import IO_WORKER_GAIN, MAX_IO_WORKERS, TrialRow, contenders, trial_failures
from .backends import REGISTRY, Backend, get_backend, resolve
from .call_shape import shape, shape_options
from .environment import collect_environment, usable_cores
from .measure import native
from .measure.preflight import preflight
from .measure.probe import is_coroutine_function
from .measure.runner import Contention, Plan, run_plan
from .model import COUNTED, TrialResult
from .options import DEFAULT_EXECUTORS, Chunksize, Repeat, RunOptions
from .store import RunStore, new_run_id, store_path
from .workloads import Workload

if TYPE_CHECKING:  # imported when a run ends: pandas makes a process worth 100 MiB more to fork
    from .result import Result

__all__ = ["DEFAULT_EXECUTORS", "compare", "default_sweep_workers", "load", "run_workload",
           "sweep_workload"]

def compare(fn: Callable[[Any], Any], items: Iterable[Any] | int, *,
            executors: Sequence[str] | str = DEFAULT_EXECUTORS,
            workers: int | Sequence[int] | None = None, repeat: Repeat = "auto",
            chunksize: Chunksize | Sequence[Chunksize] = "auto", baseline: bool = True,
            warmup: int = 0, max_time: float = 60.0, reuse_pool: bool = False,
            progress: bool = False, scheduler: str | None = None,
            timeout: float | None = None, trial_timeout: float | None = None,
            max_memory: int | None = None, isolate: bool = False,
            native_threads: int | None = None, store: StoreChoice = None, star: bool = False,
            initializer: Callable[..., Any] | None = None,
            initargs: Iterable[Any] = ()) -> Result:
    """Run ``fn`` over ``items`` under each executor and compare them.

    ``items`` may be an iterable or a count (``range(n)``). ``workers`` defaults to the usable
    cores. With ``baseline`` a ``serial`` trial is added so speedups have a reference. The
    function may be defined in a notebook or ``__main__``: process workers receive it by value.
    ``scheduler`` (``"tcp://HOST:PORT"``) runs the ``dask`` executor on that existing cluster
    instead of a local cluster per trial (default: ``$POOLSCOPE_DASK_SCHEDULER``).
    ``timeout`` (seconds per item) and ``trial_timeout`` stop what runs longer and record it as
    timed out; ``max_memory`` (bytes) stops a worker process whose peak RSS passes it (see
    ``poolscope.measure.limits``). ``isolate`` runs the in-process executors (serial, thread,
    …) in a child process, so a function that ends its process cannot end the run (the CLI's
    default; off here, where a function may hold what cannot leave this process). ``native_threads``
    caps each worker's native thread pools (BLAS, OpenMP; see ``poolscope.measure.native``).
    Before the trials a preflight calls ``fn`` on the first items: when each of them raises,
    ``PreflightError`` (see ``poolscope.measure.preflight``) and nothing runs.
    ``store`` keeps the run for ``poolscope show``, ``history`` and ``compare``: True for the
    project's store (where the CLI keeps its runs), a path, or an open ``RunStore``. By default
    the run is not stored, and its ``run_id`` is None.
    ``star`` unpacks each item as the function's arguments (a list or tuple positional, a dict
    keywords), as ``Pool.starmap``; ``initializer(*initargs)`` runs once in each worker before
    its first item, as in ``concurrent.futures``, outside the items' times (its own time is the
    summary's ``initializer_s``).
    """
    options = RunOptions(executors=executors, workers=workers, repeat=repeat,
                         chunksize=chunksize, baseline=baseline, warmup=warmup,
                         max_time=max_time, reuse_pool=reuse_pool, timeout=timeout,
                         trial_timeout=trial_timeout, max_memory=max_memory, isolate=isolate,
                         native_threads=native_threads, scheduler=scheduler)
    workload = shape(workload_of(fn, items), star, initializer, tuple(initargs))
    with _opened(store) as run_store:
        return run_workload(workload, options, progress=progress, store=run_store)


StoreChoice = bool | str | os.PathLike[str] | RunStore | None


@contextlib.contextmanager
def _opened(store: StoreChoice) -> Iterator[RunStore | None]:
    """The store that ``store=`` names, open for the run (and closed after, when opened here)."""
    if store is None or store is False:
        yield None
    elif isinstance(store, RunStore):
        yield store
    else:
        with RunStore(store_path(None if store is True else store)) as opened:
            yield opened


def sweep(fn: Callable[[Any], Any], items: Iterable[Any] | int, *,
          executors: Sequence[str] | str = DEFAULT_EXECUTORS,
          workers: Sequence[int] | None = None,
          chunksize: Chunksize | Sequence[Chunksize] = "auto",
          item_counts: Sequence[int] | None = None, repeat: Repeat = "auto",
          warmup: int = 0, max_time: float = 60.0, progress: bool = False,
          scheduler: str | None = None, timeout: float | None = None,
          trial_timeout: float | None = None, max_memory: int | None = None,
          isolate: bool = False, native_threads: int | None = None,
          store: StoreChoice = None, star: bool = False,
          initializer: Callable[..., Any] | None = None,
          initargs: Iterable[Any] = ()) -> Result:
    """Scale ``fn`` over worker counts (``workers``, default 1, 2, 4, … up to twice the
    cores), chunksizes and, with ``item_counts``, the number of items: what ``poolscope sweep``
    does. The result's ``scaling``, ``amdahl`` and ``growth`` say how the wall time changes;
    the other arguments are ``compare``'s."""
    options = RunOptions(executors=executors, workers=workers, chunksize=chunksize,
                         repeat=repeat, warmup=warmup, max_time=max_time, timeout=timeout,
                         trial_timeout=trial_timeout, max_memory=max_memory, isolate=isolate,
                         native_threads=native_threads, scheduler=scheduler)
    workload = shape(workload_of(fn, items), star, initializer, tuple(initargs))
    with _opened(store) as run_store:
        return sweep_workload(workload, options, item_counts=item_counts, progress=progress,
                              store=run_store)


def workload_of(fn: Callable[[Any], Any], items: Iterable[Any] | int) -> Workload:
    """A function and its items (an iterable, or a count for ``range(n)``) as a workload named
    ``module:qualname``."""
    if isinstance(items, bool) or not (isinstance(items, int) or hasattr(items, "__iter__")):
        raise UsageError(f"items must be a count or an iterable, got {type(items).__name__}")
    # A range stays one, so the recommendation's code can say ``range(n)``.
    item_list = range(items) if isinstance(items, int) else (
        items if isinstance(items, range) else list(items))
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    target = f"{getattr(fn, '__module__', None) or '?'}:{name}"
    return Workload(fn=fn, items=item_list, target=target)


def _scheduled(names: Sequence[str], scheduler: str | None) -> tuple[
        list[type[Backend]], str | None]:
    """The run's executors that run on a cluster behind a scheduler (dask), and the scheduler
    they use: ``scheduler``, else their own default ($POOLSCOPE_DASK_SCHEDULER), else None (a
    local cluster per trial)."""
    scheduled = [cls for cls in map(get_backend, names) if cls.scheduled]
    if scheduler is not None and not scheduled:
        which = [name for name, cls in REGISTRY.items() if cls.scheduled]
        raise UsageError(f"--scheduler applies to the {' and '.join(which)} executor only: "
                         f"add -e {which[0]}")
    return scheduled, scheduled[0].scheduler_address(scheduler) if scheduled else None


@contextlib.contextmanager
def _on_scheduler(scheduled: Sequence[type[Backend]], address: str | None) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for cls in scheduled:
            stack.enter_context(cls.using_scheduler(address))
        yield


def _worker_details(trials: Sequence[TrialResult]) -> dict[str, Any]:
    """Per trial with addressable workers (dask): each worker's host, pid, clock offset and
    its uncertainty, and whether it was lost — kept in the run's options (JSON and store)."""
    return {str(t.index): t.worker_info for t in trials if t.worker_info}


def run_workload(workload: Workload, options: RunOptions | None = None, *,
                 explore_io: bool = True, progress: bool = False, console: Any = None,
                 store: RunStore | None = None, label: str | None = None,
                 **settings: Any) -> Result:
    """Plan and run the trials of one workload; the shared core of the API and the CLI.

    ``options`` (:class:`~poolscope.options.RunOptions`) say how to measure; ``settings`` are
    fields of it given as keywords (``executors="thread", workers=2``), over ``options``.
    With ``explore_io`` and no explicit ``workers``, an io-bound workload gets extra thread
    trials with 2×, 4×, … the cores' worker count, while doubling still pays off. With a
    ``store``, the run, each chunk's records and each trial are written as they arrive.
    ``scheduler``: the Dask cluster the ``dask`` executor runs on (see ``compare``); it is
    recorded as ``options["scheduler"]``, and each dask trial's workers (host, pid, clock offset
    and uncertainty, lost or not) as ``options["worker_details"]``. A preflight on the first
    items comes first (preflight.py: ``PreflightError``, nothing stored, when each one fails);
    ``native_threads`` caps each worker's native pools, which are recorded as
    ``environment["native_threads"]`` (native.py).
    """
    options = (options or RunOptions()).replace(**settings)
    names = options.names
    scheduled, scheduler = _scheduled(names, options.scheduler)
    plan = options.plan()
    # What the recommendation's code can say about the items and the function.
    items_range = workload.items == range(len(workload.items)) if isinstance(
        workload.items, range) else False
    items = list(workload.items)
    if not items:
        raise UsageError("there are no items to run")
    workload = Workload(fn=workload.fn, items=items, target=workload.target, size=workload.size)
    environment = _environment(names, options.isolate, workload.fn)
    with native.capped(plan.native_threads):  # a kept child keeps the cap it started with
        checked = preflight(workload.fn, items, names, options.isolate,
                            item_timeout=options.timeout)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    recorded: dict[str, Any] = {
        "executors": list(names), "workers": list(plan.workers), "repeat": options.repeat,
        "chunksize": list(plan.chunksizes), "warmup": options.warmup,
        "max_time": options.max_time, "reuse_pool": options.reuse_pool,
        "timeout": options.timeout, "trial_timeout": options.trial_timeout,
        "max_memory": options.max_memory, "isolate": options.isolate,
        "size": workload.size, "caveats": _caveats(workload, names), "findings": [],
        "items_range": items_range, "coroutine": is_coroutine_function(workload.fn),
        "native_threads": plan.native_threads, "preflight": checked,
        **({"label": label} if label else {}), **shape_options(workload.fn)}
    if scheduled:
        recorded["scheduler"] = scheduler  # None: a local cluster per trial
    run_id = new_run_id() if store is not None else None  # none that `show` could not find
    pools = native.Collector()  # each worker's native thread pools, as its records tell them
    hooks = _Hooks(on_chunk=[pools.on_chunk])
    if store is not None and run_id is not None:
        _record_in(store, run_id, hooks, started_at, workload.target, len(items), names,
                   environment, recorded)

    def result(trials: list[TrialResult], interrupted: bool) -> Result:
        from .result import Result, transfer_sample

        sample = next((t.result_sample for t in trials if t.result_sample), [])
        return Result(run_id=run_id, target=workload.target, n_items=len(items),
                      trial_results=trials, environment=environment, options=recorded,
                      interrupted=interrupted, transfer=transfer_sample(items, sample),
                      started_at=started_at)

    trials, interrupted = _measure(workload, plan, hooks, pools, scheduled, scheduler,
                                   progress=progress, console=console,
                                   explore=explore_io and options.workers is None,
                                   options=recorded, result=result)
    if details := _worker_details(trials):
        recorded["worker_details"] = details
    environment["native_threads"] = pools.facts(trials, plan.native_threads)
    final = result(trials, interrupted)
    if store is not None:
        store.end_run(final)
    return final


def _record_in(store: RunStore, run_id: str, hooks: _Hooks, started_at: str, target: str,
               n_items: int, names: Sequence[str], environment: dict[str, Any],
               options: dict[str, Any]) -> None:
    """The run begun in the store, and its chunks and trials written there as they end."""
    store.begin_run(run_id, started_at, target, n_items, list(names), environment,
                    {k: v for k, v in options.items() if k != "caveats"})
    hooks.on_chunk.append(functools.partial(store.add_chunk, run_id))
    hooks.on_trial_end.append(functools.partial(store.end_trial, run_id))


def _measure(workload: Workload, plan: Plan, hooks: _Hooks, pools: native.Collector,
             scheduled: Sequence[type[Backend]], scheduler: str | None, *, progress: bool,
             console: Any, explore: bool,
             options: dict[str, Any],
             result: Callable[[list[TrialResult], bool], Result]) -> tuple[
                 list[TrialResult], bool]:
    """The run's trials (and, when ``explore`` and the workload is io-bound, the thread counts
    searched); whether it was interrupted."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(_on_scheduler(scheduled, scheduler))
        pools.here = stack.enter_context(native.capped(plan.native_threads))
        if progress:
            from .present.progress import trial_progress  # tqdm's widget in a notebook

            bar = stack.enter_context(trial_progress(plan, len(workload.items),
                                                     console=console))
            hooks.on_chunk.append(bar.on_chunk)
            hooks.on_trial_start.append(bar.on_trial_start)
            hooks.on_trial_end.append(bar.on_trial_end)
        trials, interrupted = run_plan(workload, plan, contention=_contention(()),
                                       **hooks.as_arguments())
        if explore and not interrupted:
            first = result(trials, interrupted)
            if first.classification == "io-bound":
                interrupted = _explore_io_workers(workload, plan, first, trials, options,
                                                  hooks.as_arguments())
    return trials, interrupted


def _environment(names: Sequence[str], isolate: bool,
                 fn: Callable[[Any], Any]) -> dict[str, Any]:
    """The machine's, and the interpreters that will run the function: each executor refuses
    a function it cannot run (one line, before any trial) and may describe the interpreter
    that runs it (subinterpreters, NAME@/path/to/python)."""
    environment = collect_environment()
    interpreters = {name: facts for name in names
                    if (facts := resolve(name, isolate).prepare_run(fn))}
    if interpreters:
        environment["interpreters"] = interpreters
    return environment


@dataclasses.dataclass
class _Hooks:
    """What a run calls as its trials go: the store, the native-pool reader, a progress bar."""

    on_chunk: list[Any] = dataclasses.field(default_factory=list)
    on_trial_start: list[Any] = dataclasses.field(default_factory=list)
    on_trial_end: list[Any] = dataclasses.field(default_factory=list)

    def as_arguments(self) -> dict[str, Any]:
        return {"on_chunk": _each(self.on_chunk), "on_trial_start": _each(self.on_trial_start),
                "on_trial_end": _each(self.on_trial_end)}


def _each(callbacks: list[Any]) -> Any:
    """One callback that calls each of several in turn (None when there are none)."""
    if not callbacks:
        return None

    def call(*args: Any) -> None:
        for callback in callbacks:
            callback(*args)

    return call


def _contention(prior: Sequence[TrialResult], until: float | None = None) -> Contention:
    """The verdict's rule as the runner's stopping rule: over ``prior`` and the new trials,
    the configurations still in contention (analysis.recommend.contenders); none after
    ``until`` (time.monotonic), a budget shared by several run_plan calls."""
    families = {name: str(cls.family) for name, cls in REGISTRY.items()}

    def in_contention(new: Sequence[TrialResult]) -> Collection[tuple[str, int, int]]:
        if until is not None and time.monotonic() > until:
            return ()
        every = [*prior, *new]
        return contenders([TrialRow.of(t) for t in every], trial_failures(every), families)

    return in_contention


MAX_IO_BISECTIONS = 3


def _explore_io_workers(workload: Workload, plan: Plan, first: Result,
                        trials: list[TrialResult], options: dict[str, Any],
                        hooks: dict[str, Any]) -> bool:
    """Threads waiting on I/O are cheap: search the worker count that finishes soonest.

    Double the count while a step pays (cuts the median wall by IO_WORKER_GAIN); where
    doubling would pass the item count, try the item count itself (more threads than items
    would only idle). When a step stops paying right after one that paid (the curve was still
    rising), bisect between the two, down to steps of a quarter (or 2). The verdict then
    chooses among every count tried, fewer workers first (analysis/decide.py). Only an
    executor the user asked for is searched, and only one whose waiting workers cost little
    (``Family.light_workers``: threads, asyncio): with none, no search.
    """
    threads = [n for n in plan.executors if get_backend(n).family.light_workers]
    if not threads:
        return False
    name = threads[0]
    base = plan.workers[0]
    summary = first.summary
    row = summary[(summary["executor"] == name) & (summary["workers"] == base)]
    walls = {base: float(row["wall_s"].iloc[0]) if len(row) else float("inf")}
    tried: list[int] = []
    # Trials added to settle the verdict share one --max-time over the whole search; each
    # count still gets its stable median, as in the main run.
    until = time.monotonic() + plan.max_time_s

    def pays(count: int, than: int) -> bool:
        return walls[count] * IO_WORKER_GAIN <= walls[than]

    def measure(count: int) -> bool | None:
        """Run thread trials with ``count`` workers: True once measured, None when
        interrupted, False when no trial ran every item."""
        extra = dataclasses.replace(plan, executors=(name,), workers=(count,))
        more, interrupted = run_plan(workload, extra, first_index=len(trials),
                                     contention=_contention(tuple(trials), until), **hooks)
        trials.extend(more)
        ok = sorted(t.wall_s for t in more if t.status in COUNTED)
        if interrupted:
            return None
        if not ok:
            return False
        walls[count] = ok[(len(ok) - 1) // 2]
        tried.append(count)
        return True

    limit = min(len(workload.items), MAX_IO_WORKERS)
    best, beyond = base, None  # the best count so far; the first count that did not pay
    while best < limit and beyond is None:
        count = min(best * 2, limit)
        if not (measured := measure(count)):
            return measured is None
        if pays(count, best):
            best = count
        else:
            beyond = count
    for _ in range(MAX_IO_BISECTIONS):
        if beyond is None or best == base or beyond - best <= max(2, best // 4):
            break
        middle = (best + beyond) // 2
        if not (measured := measure(middle)):
            return measured is None
        if pays(middle, best):
            best = middle
        else:
            beyond = middle
    options["io_workers_tried"] = tried
    options["findings"].append(_io_finding(name, base, tried, best, len(workload.items)))
    return False


def _io_finding(name: str, base: int, tried: list[int], best: int, n_items: int) -> str:
    counts = ", ".join(f"{c} (the item count)" if c == n_items else str(c) for c in tried)
    if best > base:
        return (f"io-bound: tried {name} with {counts} workers beyond the {base} cores; more "
                f"workers paid off up to {best}")
    return (f"io-bound: tried {name} with {counts} workers; none beat {base} by "
            f"{IO_WORKER_GAIN - 1:.0%}")


def _caveats(workload: Workload, names: Sequence[str]) -> list[str]:
    notes = []
    module = getattr(workload.fn, "__module__", None) or getattr(
        getattr(workload.fn, "func", None), "__module__", None)
    not_importable = module in ("__main__", None)  # a file target's workers import it by name
    if not_importable and any(n in ("process-spawn", "process-forkserver") for n in names):
        notes.append("the function is not importable, so spawn and forkserver workers "
                     "receive it by value (cloudpickle); plain multiprocessing would fail")
    return notes


def default_sweep_workers() -> list[int]:
    """1, 2, 4, … up to twice the usable cores: past the cores shows oversubscription."""
    counts, count = [], 1
    while count <= 2 * usable_cores():
        counts.append(count)
        count *= 2
    return counts


def sweep_workload(workload: Workload, options: RunOptions | None = None, *,
                   item_counts: Sequence[int] | None = None, progress: bool = False,
                   console: Any = None, store: RunStore | None = None,
                   **settings: Any) -> Result:
    """Every executor at every worker count (and chunksize) over the largest item count; then,
    with several item counts, each executor at its best configuration over the smaller counts,
    to fit how wall time grows with the number of items. ``options`` and ``settings``: as
    ``run_workload``'s; ``workers`` None sweeps 1, 2, 4, … up to twice the cores."""
    options = (options or RunOptions()).replace(**settings)
    # A range stays one (its slices too), so the recommendation's code can say ``range(n)``.
    items = workload.items if isinstance(workload.items, range) else list(workload.items)
    counts = sorted(set(item_counts or [len(items)]))
    if counts[0] < 1:
        raise UsageError("item counts must be at least 1")
    if counts[-1] > len(items):
        raise UsageError(f"only {len(items)} items are available, not {counts[-1]}")
    largest = Workload(fn=workload.fn, items=items[:counts[-1]], target=workload.target,
                       size=workload.size)
    result = run_workload(largest, options.replace(
                              workers=options.workers or default_sweep_workers()),
                          explore_io=False, progress=progress, console=console, store=store)
    result.options["sweep"] = True
    result.options["item_counts"] = counts
    if len(counts) > 1 and not result.interrupted:
        scheduled, scheduler = _scheduled(options.names, options.scheduler)
        with _on_scheduler(scheduled, scheduler), native.capped(options.native_threads):
            result.growth = _item_count_growth(largest, result, counts, options)
    if store is not None:
        store.end_run(result)  # again: now the stored options say it was a sweep
    return result


def _item_count_growth(workload: Workload, result: Result, counts: list[int],
                       options: RunOptions) -> dict[str, Any]:
    from .analysis.scaling import item_count_growth

    summary = result.summary.dropna(subset=["wall_s"])
    fits = {}
    for executor, rows in summary.groupby("executor", sort=False):
        best = rows.sort_values("wall_s").iloc[0]
        walls = []
        for count in counts[:-1]:
            part = Workload(fn=workload.fn, items=list(workload.items)[:count],
                            target=workload.target)
            plan = Plan(executors=(str(executor),), workers=(int(best["workers"]),),
                        repeat=options.repeat, chunksize=int(best["chunksize"]),
                        max_time_s=options.max_time, **options.limits())
            trials, _ = run_plan(part, plan)
            ok = sorted(t.wall_s for t in trials if t.status in COUNTED)
            walls.append(ok[(len(ok) - 1) // 2] if ok else float("nan"))
        walls.append(float(best["wall_s"]))
        fits[str(executor)] = item_count_growth(counts, walls)
    return fits


def load(run: str = "latest", store: str | Path | None = None) -> Result:
    """A stored run, as the same Result a fresh run returns (tables, pictures, JSON)."""
    from .store import store_path

    with RunStore(store_path(store), create=False) as runs:
        return runs.load(run)
