"""The options of a measuring command, parsed and checked before anything runs.

:class:`RunOptions` is how a run measures, one frozen value shared by every front:
``poolscope.compare`` and ``sweep`` build it from their keywords, the command line (cli.py) and
the notebook's ``%%poolscope`` magic (magic.py) from their text with :meth:`RunOptions.parse`,
and ``api.run_workload`` turns it into the runner's plan. The parsers below are public: one
spelling of each rule, each failure a ``UsageError`` with a one-line message naming the option.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._errors import UsageError

if TYPE_CHECKING:  # the runner's plan: imported when a run is planned (it loads the backends)
    from .measure.runner import Plan

__all__ = ["DEFAULT_EXECUTORS", "RunOptions", "check_format", "check_native_threads",
           "check_output", "check_outputs", "check_plot", "check_report", "check_trace",
           "parse_chunksize", "parse_counts", "parse_initargs", "parse_repeat", "parse_size",
           "parse_workers"]


DEFAULT_EXECUTORS = ("thread", "process")

Repeat = int | Literal["auto"]
Chunksize = int | Literal["auto"]


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a run measures: what ``compare``, ``sweep``, ``poolscope run``/``sweep`` and the
    ``%%poolscope`` magic share. Each field is the keyword of ``poolscope.compare`` of the same
    name (its docstring says what each does); values are checked when the run is planned
    (:meth:`plan`), before anything runs.

    ``executors`` and ``workers`` may be given as a comma-separated string or a single count;
    they are kept as tuples. ``workers`` None is the usable cores (a sweep: 1, 2, 4, …).
    """

    executors: tuple[str, ...] = DEFAULT_EXECUTORS
    workers: tuple[int, ...] | None = None
    repeat: Repeat = "auto"
    chunksize: tuple[Chunksize, ...] = ("auto",)
    baseline: bool = True  # a serial trial is added, so speedups have a reference
    warmup: int = 0
    max_time: float = 60.0
    reuse_pool: bool = False
    timeout: float | None = None  # seconds per item
    trial_timeout: float | None = None
    max_memory: int | None = None  # bytes per worker process
    isolate: bool = False  # in-process executors run in a child process (the CLI's default)
    native_threads: int | None = None  # per worker (measure/native.py)
    scheduler: str | None = None  # the Dask cluster of the dask executor

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        names = self.executors.split(",") if isinstance(self.executors, str) else self.executors
        set_(self, "executors", tuple(str(name).strip() for name in _listed(names, "executors")))
        if not self.executors:
            raise UsageError("give at least one executor")
        if any(not name for name in self.executors):
            raise UsageError("an executor name is empty")
        if isinstance(self.workers, int):
            set_(self, "workers", (self.workers,))
        elif self.workers is not None:
            set_(self, "workers", _listed(self.workers, "workers"))
            if not self.workers:
                raise UsageError("give at least one worker count")
        sizes = self.chunksize
        set_(self, "chunksize", tuple(sizes) if isinstance(sizes, list | tuple) else (sizes,))
        from .measure import native

        native.validate(self.native_threads)

    @classmethod
    def parse(cls, *, executors: str = ",".join(DEFAULT_EXECUTORS),
              workers: str | None = None, repeat: str = "auto", chunksize: str = "auto",
              max_memory: str | None = None, **values: Any) -> RunOptions:
        """The options from a command line's text (``--workers 1,2``, ``--max-memory 2G``);
        the other fields are given as values."""
        check_native_threads(values.get("native_threads"))
        return cls(executors=executors, workers=parse_workers(workers),
                   repeat=parse_repeat(repeat), chunksize=tuple(parse_chunksize(chunksize)),
                   max_memory=parse_size(max_memory, "--max-memory"), **values)

    def replace(self, **changes: Any) -> RunOptions:
        return dataclasses.replace(self, **changes)

    @property
    def names(self) -> tuple[str, ...]:
        """The executors a run measures: serial first when ``baseline`` adds it."""
        if self.baseline and "serial" not in self.executors:
            return ("serial", *self.executors)
        return self.executors

    def plan(self, workers: Sequence[int] | None = None) -> Plan:
        """The runner's plan (``workers``: the counts to use when none were given); a
        UsageError naming the option when a value cannot be run."""
        from .environment import usable_cores
        from .measure.runner import Plan

        counts = self.workers or tuple(workers or (usable_cores(),))
        return Plan(executors=self.names, workers=counts, repeat=self.repeat,
                    chunksize=self.chunksize, warmup=self.warmup, max_time_s=self.max_time,
                    reuse_pool=self.reuse_pool, **self.limits())

    def limits(self) -> dict[str, Any]:
        """The plan's fields that stop items and place workers, for plans of other shapes."""
        return {"timeout_s": self.timeout, "trial_timeout_s": self.trial_timeout,
                "max_memory": self.max_memory, "isolate": self.isolate,
                "native_threads": self.native_threads}


def _listed(values: Any, option: str) -> tuple[Any, ...]:
    """A list of values as a tuple; a UsageError when ``values`` is no list at all."""
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise UsageError(f"{option} must be a list (or a comma-separated string), got "
                         f"{values!r}")
    return tuple(values)


def parse_workers(text: str | None, option: str = "--workers") -> list[int] | None:
    if text is None:
        return None
    values = []
    for part in text.split(","):
        try:
            values.append(int(part.strip()))
        except ValueError:
            raise UsageError(f"{option}: {part.strip()!r} is not a whole number") from None
    return values


def parse_counts(text: str | None, option: str) -> list[int] | None:
    """A comma-separated list of whole numbers of at least 1 (cores, workers)."""
    values = parse_workers(text, option)
    if values is not None and (not values or min(values) < 1):
        raise UsageError(f"{option}: counts must be at least 1, got {text}")
    return values


def parse_chunksize(text: str) -> list[int | str]:
    sizes: list[int | str] = []
    for part in text.split(","):
        part = part.strip()
        if part == "auto":
            sizes.append("auto")
            continue
        try:
            sizes.append(int(part))
        except ValueError:
            raise UsageError(
                f"--chunksize must be a whole number or 'auto', got {part!r}") from None
    return sizes


SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str | None, option: str) -> int | None:
    """'512M', '2G', '1.5GiB', '3000000': bytes (K, M, G, T are powers of 1024)."""
    if text is None:
        return None
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not found:
        raise UsageError(f"{option} must be a size like 512M or 2G, got {text!r}")
    return int(float(found.group(1)) * SIZE_UNITS[found.group(2).upper()])


def check_native_threads(value: int | None) -> int | None:
    """--native-threads, checked before anything runs."""
    if value is not None and value < 1:
        raise UsageError(f"--native-threads must be at least 1, got {value}")
    return value


def parse_repeat(text: str) -> int | str:
    if text == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--repeat must be a whole number or 'auto', got {text!r}") from None


def check_output(path: Path | str | None, option: str) -> None:
    """Fail before measuring, not after, when an output file cannot be written."""
    if path is None or str(path) == "-":
        return
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise UsageError(f"{option}: directory does not exist: {parent}")
    if Path(path).is_dir():
        raise UsageError(f"{option}: {path} is a directory")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"{option}: directory is not writable: {parent}")


def check_plot(path: Path | None) -> None:
    check_output(path, "--plot")
    if path is not None and path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise UsageError(f"--plot: use a .png, .svg or .pdf file name, got {path.name!r}")


def check_report(path: Path | None) -> None:
    check_output(path, "--report")
    if path is not None and path.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--report: use a .html file name, got {path.name!r}")


def check_trace(path: Path | None) -> None:
    check_output(path, "--trace")
    if path is not None and not path.name.lower().endswith((".json", ".json.gz")):
        raise UsageError(f"--trace: use a .json or .json.gz file name, got {path.name!r}")


def check_format(text: str, json_path: str | None) -> None:
    if text not in ("table", "markdown"):
        raise UsageError(f"--format must be table or markdown, got {text!r}")
    if text == "markdown" and json_path == "-":
        raise UsageError("--format markdown and --json - both want stdout: write the JSON to a "
                         "file")


def check_outputs(json_path: str | None, csv: Path | None, plot: Path | None,
                   report: Path | None, trace: Path | None, format_: str) -> None:
    """Every output option of a measuring command, checked before anything is measured."""
    check_output(json_path, "--json")
    check_output(csv, "--csv")
    check_plot(plot)
    check_report(report)
    check_trace(trace)
    check_format(format_, json_path)


def parse_initargs(text: str | None, initializer: str | None) -> list[Any]:
    """--initargs: a JSON list, given with --initializer."""
    import json

    if text is None:
        return []
    if initializer is None:
        raise UsageError("--initargs needs --initializer")
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--initargs must be a JSON list, got {text!r} ({exc.msg})") from None
    if not isinstance(arguments, list):
        raise UsageError(f"--initargs must be a JSON list, got {text!r}")
    return arguments
