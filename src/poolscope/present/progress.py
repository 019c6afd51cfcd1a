"""A progress bar over all trials of a run, refreshed only when a chunk arrives.

It deliberately has no refresh thread: poolscope starts no thread of its own before fork-based
executors create their workers (forking a process that has threads can deadlock).

Two bars with one interface (a context manager with ``on_trial_start``, ``on_chunk`` and
``on_trial_end``):
``TrialProgress`` draws with rich on a terminal; ``TqdmProgress`` draws tqdm's notebook widget in
a Jupyter kernel (plain tqdm text elsewhere). ``trial_progress`` picks one. Both show a total
and the time left, forecast from the trials so far (forecast.py): under ``--repeat auto`` the
total is the forecast's, and grows when the evidence asks for more rounds.

``poolscope.map``'s display (``map_progress``: ``MapProgress`` with rich, ``TqdmMapProgress``
in a notebook) counts items done, a list of results at a time, and redraws at most every
``MAP_REFRESH_S``: it costs nothing per item.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.errors import LiveError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .._format import count, duration
from ..forecast import TrialForecast
from ..measure.runner import MIN_TRIALS

if TYPE_CHECKING:
    from ..measure.probe import ChunkRecord
    from ..measure.runner import Plan
    from ..model import TrialResult

__all__ = ["MapProgress", "TqdmMapProgress", "TqdmProgress", "TrialProgress", "in_notebook",
           "map_progress", "trial_progress"]

MAP_REFRESH_S = 0.1  # map's display is redrawn at most this often (and when it ends)


class _Totals:
    """The bar's total items and the time left: the plan's trials, then the forecast's."""

    def __init__(self, plan: Plan, n_items: int) -> None:
        self.n_items = n_items
        # Under --repeat auto, until a trial ends: the fewest trials the rule allows.
        first = len(plan.configurations()) * (
            MIN_TRIALS if plan.repeat == "auto" else int(plan.repeat))
        self.total = first * n_items
        self.forecast = TrialForecast(plan)
        self.done = 0  # items of the trials that ended
        self.trials = 0
        self.left = ""

    def trial_started(self, completed: float) -> None:
        # A trial beyond the forecast (a round the evidence asked for, an explored thread
        # count): the total grows by it rather than the bar overflowing.
        self.total = max(self.total, int(completed) + self.n_items)

    def trial_ended(self, trial: TrialResult) -> None:
        self.forecast.add(trial)
        self.trials += 1
        self.done += self.n_items
        remaining = self.forecast.remaining()
        if remaining is not None:
            self.total = self.done + remaining.trials * self.n_items
            self.left = f"~{duration(remaining.seconds)} left" if remaining.trials else ""


class TrialProgress:
    def __init__(self, plan: Plan, n_items: int, console: Console | None = None) -> None:
        self.totals = _Totals(plan, n_items)
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[left]}"),
            console=console or Console(stderr=True), auto_refresh=False, transient=True)
        self.task = self.progress.add_task("starting", total=self.totals.total, left="")

    def __enter__(self) -> TrialProgress:
        self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def on_trial_start(self, index: int, executor: str, workers: int, n_items: int) -> None:
        self.totals.trial_started(self.progress.tasks[0].completed)
        self.progress.update(
            self.task, description=f"trial {index + 1}: {executor} ×{workers}",
            total=self.totals.total, refresh=True)

    def on_chunk(self, index: int, record: ChunkRecord | Any) -> None:
        self.progress.update(self.task, advance=len(record.start_ns), refresh=True)

    def on_trial_end(self, trial: TrialResult) -> None:
        self.totals.trial_ended(trial)
        self.progress.update(self.task, total=self.totals.total, left=self.totals.left,
                             refresh=True)


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (a ``ZMQInteractiveShell``, Colab's included).

    Never imports IPython: outside a kernel ``ipykernel`` is not loaded, and the answer is False.
    """
    if "ipykernel" not in sys.modules:
        return False
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return shell is not None and any(
        cls.__name__ == "ZMQInteractiveShell" for cls in type(shell).__mro__)


def trial_progress(plan: Plan, n_items: int, console: Console | None = None
                   ) -> TrialProgress | TqdmProgress:
    """tqdm's notebook bar in a Jupyter kernel (unless a rich console is given), else rich's."""
    if console is None and in_notebook():
        return TqdmProgress(plan, n_items, notebook=True)
    return TrialProgress(plan, n_items, console=console)


def _widgets_available() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class TqdmProgress:
    """The same bar with tqdm: its ipywidgets bar in a notebook, its text bar elsewhere.

    ``notebook=None`` decides by ``in_notebook()``; without ipywidgets installed (the
    ``notebook`` extra) a notebook gets tqdm's text bar. ``n`` counts the items finished.
    """

    def __init__(self, plan: Plan, n_items: int, *, notebook: bool | None = None,
                 file: IO[str] | None = None) -> None:
        self.totals = _Totals(plan, n_items)
        self.notebook = (in_notebook() if notebook is None else notebook) and \
            _widgets_available()
        self.file = file
        self.bar: Any = None
        self.handle: Any = None

    def __enter__(self) -> TqdmProgress:
        self.began = time.monotonic()
        if self.notebook:
            # Shown through a handle of ours, so that at the end its output can be replaced:
            # a saved notebook keeps an output's text as it was first shown (a bar at 0%).
            from IPython.display import display

            self.bar = _notebook_tqdm()(total=self.totals.total, desc="starting",
                                        unit="item", leave=False, display=False)
            self.handle = display(self.bar.container, display_id=True)
            return self
        # leave=False: the bar goes away when the run ends, as rich's transient one does.
        self.bar = _text_tqdm()(total=self.totals.total, desc="starting", unit="item",
                                leave=False, file=self.file or sys.stderr)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.bar.close()
        if self.notebook and self.handle is not None:
            self.handle.update({"text/plain": self.summary()}, raw=True)

    def summary(self) -> str:
        """What replaces the notebook's bar when the run ends."""
        return (f"poolscope: {count(self.n, 'item')} in {count(self.totals.trials, 'trial')}, "
                f"{duration(time.monotonic() - self.began)}")

    @property
    def n(self) -> int:
        return int(self.bar.n) if self.bar is not None else 0

    @property
    def total(self) -> int:
        return self.totals.total

    def _set_total(self) -> None:
        self.bar.total = self.totals.total
        if self.notebook:  # the widget keeps its own maximum
            self.bar.container.children[1].max = self.totals.total

    def on_trial_start(self, index: int, executor: str, workers: int, n_items: int) -> None:
        self.totals.trial_started(self.bar.n)
        self._set_total()
        self.bar.set_description_str(f"trial {index + 1}: {executor} ×{workers}")

    def on_chunk(self, index: int, record: ChunkRecord | Any) -> None:
        self.bar.update(len(record.start_ns))

    def on_trial_end(self, trial: TrialResult) -> None:
        self.totals.trial_ended(trial)
        self._set_total()
        self.bar.set_postfix_str(self.totals.left, refresh=True)


# tqdm normally starts a monitor thread (tqdm.monitor_interval, 10 s) with its first bar. A
# thread alive when a fork-based executor forks its workers can leave them deadlocked on a lock
# it held, so these subclasses turn the monitor off: updates happen only when a chunk arrives.
# tqdm.notebook's class inherits the monitor too, hence its own subclass; its ipywidgets bar
# itself talks through the kernel's existing channels and starts no thread.
_CLASSES: dict[str, type[Any]] = {}


def _text_tqdm() -> type[Any]:
    if "text" not in _CLASSES:
        from tqdm.std import tqdm

        _CLASSES["text"] = type("PoolscopeTqdm", (tqdm,), {"monitor_interval": 0})
    return _CLASSES["text"]


def _notebook_tqdm() -> type[Any]:
    if "notebook" not in _CLASSES:
        from tqdm.notebook import tqdm

        _CLASSES["notebook"] = type("PoolscopeNotebookTqdm", (tqdm,), {"monitor_interval": 0})
    return _CLASSES["notebook"]


class MapProgress:
    """``poolscope.map``'s line on stderr: the items done (of the total, for a sequence), the
    configuration once decided, the time so far. Transient, no refresh thread; silent when
    another live display holds the terminal (rich allows one at a time)."""

    def __init__(self, total: int | None, console: Console | None = None) -> None:
        columns = ([BarColumn(), MofNCompleteColumn()] if total is not None
                   else [TextColumn("{task.completed:,.0f} items")])
        self.progress: Progress | None = Progress(
            TextColumn("{task.description}"), *columns, TimeElapsedColumn(),
            console=console or Console(stderr=True), auto_refresh=False, transient=True,
            redirect_stdout=False, redirect_stderr=False)
        self.task = self.progress.add_task("poolscope.map: calibrating", total=total)
        self.drawn = 0.0

    def __enter__(self) -> MapProgress:
        try:
            self.progress.start()  # type: ignore[union-attr]
        except LiveError:  # another map's display, or the caller's own
            self.progress = None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _draw(self, **update: Any) -> None:
        if self.progress is None:
            return
        now = time.monotonic()
        refresh = now - self.drawn >= MAP_REFRESH_S
        if refresh:
            self.drawn = now
        self.progress.update(self.task, refresh=refresh, **update)

    def advance(self, done: int) -> None:
        self._draw(advance=done)

    def decided(self, label: str) -> None:
        self._draw(description=f"poolscope.map: {label}")


class TqdmMapProgress:
    """The same count with tqdm: its widget in a notebook (without ipywidgets: its text)."""

    def __init__(self, total: int | None, *, notebook: bool = True,
                 file: IO[str] | None = None) -> None:
        self.total = total
        self.notebook = notebook and _widgets_available()
        self.file = file
        self.bar: Any = None

    def __enter__(self) -> TqdmMapProgress:
        cls = _notebook_tqdm() if self.notebook else _text_tqdm()
        self.bar = cls(total=self.total, desc="poolscope.map: calibrating", unit="item",
                       leave=False, mininterval=MAP_REFRESH_S,
                       file=None if self.notebook else (self.file or sys.stderr))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.bar.close()

    def advance(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done)

    def decided(self, label: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(f"poolscope.map: {label}")


def map_progress(total: int | None) -> MapProgress | TqdmMapProgress:
    """tqdm's bar in a Jupyter kernel, rich's line on stderr elsewhere."""
    if in_notebook():
        return TqdmMapProgress(total)
    return MapProgress(total)
