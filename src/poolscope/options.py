"""The options of a measuring command, parsed and checked before anything runs.

Shared by the command line (cli.py) and the notebook's ``%%poolscope`` magic (magic.py): one
spelling of each rule, each failure a ``UsageError`` with a one-line message naming the option.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ._errors import UsageError

__all__ = ["check_format", "check_native_threads", "check_output", "check_outputs",
           "check_plot", "check_report", "check_trace", "parse_chunksize", "parse_initargs",
           "parse_repeat", "parse_size", "parse_workers"]


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
