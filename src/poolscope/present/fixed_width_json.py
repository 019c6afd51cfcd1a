"""JSON text for many rows at once, formatted by numpy column by column.

Each row becomes a fixed-width record: literal bytes, and columns of numbers or of a few known
texts, right-aligned and padded with spaces (JSON allows whitespace between tokens). A million
rows take seconds where building a dict per row and ``json.dumps`` took a minute. The trace
(trace.py) writes its item events this way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Choice", "Decimal", "InString", "Int", "render"]


@dataclass
class Int:
    """An integer column, right-aligned (spaces before it are JSON whitespace)."""

    values: np.ndarray


@dataclass
class Decimal:
    """An integer column divided by 10**places, written with exactly ``places`` decimals."""

    values: np.ndarray
    places: int


@dataclass
class InString:
    """A non-negative integer column inside a string: digits, the closing quote, then spaces."""

    values: np.ndarray
    base: int = 10


@dataclass
class Choice:
    """One of a few JSON texts per row, by code, right-aligned."""

    codes: np.ndarray
    texts: list[bytes]


_DIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)
_SPACE, _MINUS, _DOT, _QUOTE = (ord(c) for c in ' -."')


def _digits(values: np.ndarray, base: int = 10, width: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """Digit characters of non-negative ints, right-aligned and zero-padded, and their counts.

    ``width`` fixes the number of columns (enough for every value if 0).
    """
    if not width:
        width = len(np.base_repr(int(values.max()) if len(values) else 0, base))
    powers = np.int64(base) ** np.arange(width, dtype=np.int64)
    count = np.maximum(np.searchsorted(powers, values, side="right"), 1)
    return _DIGITS[values[:, None] // powers[::-1] % base], count


def _right_aligned(chars: np.ndarray, count: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """Digits with their leading zeros turned to spaces and a minus sign just before them."""
    extra = 1 if negative.any() else 0
    m, width = chars.shape
    out = np.full((m, width + extra), _SPACE, np.uint8)
    out[:, extra:] = chars
    total = width + extra
    out[np.arange(total)[None, :] < (total - count)[:, None]] = _SPACE
    if extra:
        rows = np.flatnonzero(negative)
        out[rows, total - count[rows] - 1] = _MINUS
    return out


def _field(part: Any) -> np.ndarray:
    if isinstance(part, Int):
        return _right_aligned(*_digits(np.abs(part.values)), part.values < 0)
    if isinstance(part, Decimal):
        scale = 10 ** part.places
        magnitude = np.abs(part.values)
        whole = _right_aligned(*_digits(magnitude // scale), part.values < 0)
        fraction, _ = _digits(magnitude % scale, width=part.places)
        dot = np.full((len(whole), 1), _DOT, np.uint8)
        return np.concatenate((whole, dot, fraction), axis=1)
    if isinstance(part, InString):
        chars, count = _digits(part.values, part.base)
        width = chars.shape[1]
        cols = np.arange(width + 1)
        source = np.minimum(cols[None, :] + (width - count)[:, None], width - 1)
        out = np.take_along_axis(chars, source, axis=1)
        out[cols[None, :] == count[:, None]] = _QUOTE
        out[cols[None, :] > count[:, None]] = _SPACE
        return out
    if isinstance(part, Choice):
        width = max(len(text) for text in part.texts)
        table = np.frombuffer(b"".join(text.rjust(width) for text in part.texts),
                              np.uint8).reshape(len(part.texts), width)
        return table[part.codes]
    raise TypeError(part)


def render(parts: Sequence[Any], rows: int) -> np.ndarray:
    """Fixed-width records, one per row, from literal bytes and formatted columns: the text's
    bytes, ready for ``write`` without a copy."""
    pieces = [np.broadcast_to(np.frombuffer(p, np.uint8), (rows, len(p)))
              if isinstance(p, bytes) else _field(p) for p in parts]
    return np.concatenate(pieces, axis=1).reshape(-1)
