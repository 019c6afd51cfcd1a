"""Workload functions for tests/test_interpreters.py, importable by reference in any interpreter.

Standard library only: children of other interpreters (``NAME@PATH``) and subinterpreters import
this module by name, and neither has numpy or pytest.
"""

from __future__ import annotations

import os


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"item {x} is bad")
    return x


def exit_on_three(x: int) -> int:
    if x == 3:
        os._exit(7)
    return x


def spin(x: int, size: int = 2_000_000) -> int:
    """A pure-Python loop that holds the GIL (the notebook's worker)."""
    for _ in range(size):
        pass
    return x
