"""A run's environment and options as lines a person reads: "memory 23.5 GiB", not
``memory_bytes 25258373120``; "1.00, 0.41, 0.16" for a load average, not a Python list.

``environment_rows(environment, options)`` gives ``(name, value)`` pairs, the known facts
first, in the order a reader looks for them; unknown keys follow with their own names, their
values formatted by type. JSON keeps the raw values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._format import duration, size

__all__ = ["environment_rows", "plain"]

# environment key: (its name here, how its value reads)
_NAMES = {
    "python": "Python", "implementation": "implementation", "executable": "executable",
    "gil_enabled": "GIL", "cpu_count": "cores usable", "cpu_count_machine": "cores on the machine",
    "platform": "platform", "machine": "machine", "processor": "processor",
    "hostname": "host", "memory_bytes": "memory", "load_average": "load average (1, 5, 15 min)",
    "native_threads": "native thread pools", "interpreters": "interpreters",
}
_HIDDEN_OPTIONS = ("caveats", "findings")  # shown as the verdict's caveats, not as settings


def environment_rows(environment: Mapping[str, Any], options: Mapping[str, Any]
                     ) -> list[tuple[str, str]]:
    rows = []
    for key, value in environment.items():
        name = _NAMES.get(key, key.replace("_", " "))
        if key == "memory_bytes" and isinstance(value, int | float):
            text = size(value)
        elif key == "gil_enabled" and isinstance(value, bool):
            text = "enabled" if value else "disabled (free-threaded)"
        elif key == "load_average" and isinstance(value, list | tuple):
            text = ", ".join(f"{v:.2f}" for v in value)
        elif key == "native_threads" and isinstance(value, Mapping):
            text = native_text(value)
        else:
            text = plain(value)
        rows.append((name, text))
    for key, value in options.items():
        if key in _HIDDEN_OPTIONS:
            continue
        text = preflight_text(value) if key == "preflight" and isinstance(value, Mapping) else (
            plain(value))
        rows.append((f"option {key.replace('_', ' ')}", text))
    return rows


def plain(value: Any) -> str:
    """Any value as text: lists joined by commas, mappings as "key: value; …", None as "–",
    booleans as yes/no, floats without trailing noise."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple | set):
        return ", ".join(plain(v) for v in value) if value else "none"
    if isinstance(value, Mapping):
        return "; ".join(f"{str(k).replace('_', ' ')}: {plain(v)}" for k, v in value.items())
    return str(value)


def native_text(facts: Mapping[str, Any]) -> str:
    """``native.Collector.facts`` as "openblas (blas) 0.3.31, 2 threads here; per worker:
    serial 2, process-pool 2; no cap"."""
    here = facts.get("here") or []
    parts = [", ".join(_pool_text(pool) for pool in here) + " here" if here else
             "none loaded here"]
    per_worker = [f"{name} {entry.get('threads_per_worker')}"
                  for name, entry in (facts.get("executors") or {}).items()
                  if entry.get("pools")]
    if per_worker:
        parts.append("threads per worker: " + ", ".join(per_worker))
    cap = facts.get("cap")
    parts.append(f"capped at {cap} per worker" if cap else "not capped")
    return "; ".join(parts)


def _pool_text(pool: Mapping[str, Any]) -> str:
    name = pool.get("internal_api") or pool.get("prefix") or "?"
    api = pool.get("user_api")
    version = pool.get("version")
    threads = pool.get("num_threads")
    return (f"{name}{f' ({api})' if api else ''}{f' {version}' if version else ''}"
            f"{f', {threads} threads' if threads is not None else ''}")


def preflight_text(report: Mapping[str, Any]) -> str:
    """The preflight's report: "1 item in this process, passed in 50.5 ms"."""
    count = report.get("items", 0)
    outcome = ("timed out" if report.get("timed_out") else
               "passed" if report.get("passed") else "failed")
    seconds = report.get("seconds")
    took = f" in {duration(seconds)}" if isinstance(seconds, int | float) else ""
    return (f"{count} item{'s' * (count != 1)} in {report.get('where', '?')}, "
            f"{outcome}{took}")
