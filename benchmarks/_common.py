"""Helpers shared by the benchmark scripts: the machine line, the verdict table, medians.

Each ``bench_*.py`` is run as a script (``python benchmarks/bench_overhead.py``), so this module
is imported from the scripts' own directory; it is not part of the ``poolscope`` package.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

__all__ = ["Check", "console", "machine_line", "median", "print_checks"]

# Wide enough for the tables when the output is piped to a file or a CI log.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine_line() -> str:
    """One line naming the machine, the interpreter, the load and the time (UTC)."""
    return (f"{os.cpu_count()} CPUs ({_cpu_model()}), Python {platform.python_version()} "
            f"({sys.implementation.name}), load {_load()}, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


@dataclass
class Check:
    """One measured figure, its goal and whether the goal is met (``ok`` None: for reference)."""

    name: str
    figure: str
    goal: str
    ok: bool | None


def print_checks(title: str, checks: Sequence[Check]) -> bool:
    """Print the verdict table; True when every gated figure meets its goal."""
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("goal", justify="right")
    table.add_column("verdict")
    for check in checks:
        if check.ok is None:
            verdict = "[dim]info[/dim]"
        else:
            verdict = "[green]PASS[/green]" if check.ok else "[bold red]FAIL[/bold red]"
        table.add_row(check.name, check.figure, check.goal, verdict)
    console.print(table)
    passed = all(c.ok is not False for c in checks)
    console.print("[green]all goals met[/green]" if passed else "[bold red]goal missed[/bold red]")
    return passed
