"""A module that imports a single-phase-init extension module: it cannot load in an isolated
subinterpreter (Python 3.13+ test builds ship ``_testsinglephase`` for exactly this)."""

import _testsinglephase  # noqa: F401


def work(x: int) -> int:
    return x
