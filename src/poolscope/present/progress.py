"""A progress bar over all trials of a run, refreshed only when a chunk arrives.

It deliberately has no refresh thread: poolscope starts no thread of its own before fork-based
executors create their workers (forking a process that has threads can deadlock).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from ..probe import ChunkRecord
    from ..runner import Plan

__all__ = ["TrialProgress"]


class TrialProgress:
    def __init__(self, plan: Plan, n_items: int, console: Console | None = None) -> None:
        # With --repeat auto the number of trials is known only at the end.
        self.total = None if plan.repeat == "auto" else len(plan.trials()) * n_items
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console or Console(stderr=True), auto_refresh=False,
            transient=True)
        self.task = self.progress.add_task("starting", total=self.total)

    def __enter__(self) -> TrialProgress:
        self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def on_trial_start(self, index: int, executor: str, workers: int, n_items: int) -> None:
        self.progress.update(
            self.task, description=f"trial {index + 1}: {executor} ×{workers}", refresh=True)

    def on_chunk(self, index: int, record: ChunkRecord | Any) -> None:
        self.progress.update(self.task, advance=len(record.start_ns), refresh=True)
