"""Human-readable numbers shared by the analysis sentences and the terminal tables."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["count", "duration", "json_number", "percent", "ratio", "size"]


def count(n: int, noun: str, plural: str | None = None) -> str:
    """A number of things as said: 1 → '1 worker', 2 → '2 workers', 1500 → '1,500 items'."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def duration(seconds: float) -> str:
    """Three significant digits in a fitting unit: 0.0123 → '12.3 ms'; NaN → 'n/a'."""
    if seconds is None or math.isnan(seconds):
        return "n/a"
    for scale, unit in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(seconds) >= scale or unit == "µs":
            value = seconds / scale
            decimals = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
            text = f"{value:.{decimals}f}"
            if float(text) == 0:
                text = text.lstrip("-")  # -1e-12 s is "0.00 µs", not "-0.00 µs"
            return f"{text} {unit}"
    raise AssertionError("unreachable")


def ratio(value: float | None, suffix: str = "×") -> str:
    """Two decimals and a suffix: 1.5 → '1.50×'; None or NaN → '–'."""
    return "–" if value is None or math.isnan(value) else f"{value:.2f}{suffix}"


def percent(value: float | None) -> str:
    """A share as a whole percentage: 0.493 → '49%'; None or NaN → '–'."""
    return "–" if value is None or math.isnan(value) else f"{value:.0%}"


def size(n: float) -> str:
    """Bytes in binary units: 1536 → '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def json_number(value: Any) -> float | None:
    """JSON has no NaN: an undefined number (None, pandas.NA, NaN, infinite) becomes null."""
    if value is None:
        return None
    try:  # float(pandas.NA) raises TypeError
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
