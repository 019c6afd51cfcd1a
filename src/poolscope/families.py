"""Executor families: how an executor's workers share memory, and what follows from it.

Every executor belongs to one family (``Backend.family``), and each trial records its family's
name, so a run read back describes itself. What the runner, the analysis and ``poolscope.map``
need to know about an executor (whether items are pickled to reach it, whether its threads take
turns on one GIL, where it stands in the verdict's order of simplicity) is asked of its family
here, never worked out from its name::

    family_of("process").pickles      # True: items and results cross a pipe
    family_of("thread").shares_gil    # True: one item computes at a time under a GIL
    family_of("serial").rank          # 0: the simplest; the verdict prefers a lower rank

A family is its name as a ``str`` (stored, compared and written to JSON as text) carrying its
traits. A new family is declared once, beside its executor (see docs/executors.md); a name no
family declares (a run stored by another version) gets neutral traits and ranks last.

This module imports only the standard library: child processes and other interpreters load it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ASYNC", "CLUSTER", "FAMILIES", "INTERPRETER", "PROCESS", "SERIAL", "THREAD",
           "Family", "family_of"]

FAMILIES: dict[str, Family] = {}


class Family(str):
    """A family's name with its traits; declaring one makes ``family_of`` know it."""

    rank: int  # the verdict's order: among equally fast configurations, the lowest rank wins
    simpler: str  # why a configuration of this family is simpler, in the verdict's words
    pooled: bool  # False: no pool, no workers, no chunks (serial)
    pickles: bool  # items and results are pickled to reach the workers, and back
    shares_gil: bool  # the workers are threads of this process, taking turns on its GIL
    one_thread: bool  # the workers are coroutines on one thread: they compute one at a time
    light_workers: bool  # a waiting worker costs little, so an io search may try many
    quick_start: bool  # its pool starts in microseconds: nothing to warm up
    own_processes: bool  # each worker is a process of its own

    def __new__(cls, name: str, *, rank: int, simpler: str, pooled: bool = True,
                pickles: bool = False, shares_gil: bool = False, one_thread: bool = False,
                light_workers: bool = False, quick_start: bool = False,
                own_processes: bool = False, declare: bool = True) -> Family:
        family = super().__new__(cls, name)
        family.rank, family.simpler, family.pooled = rank, simpler, pooled
        family.pickles, family.shares_gil, family.one_thread = pickles, shares_gil, one_thread
        family.light_workers, family.quick_start = light_workers, quick_start
        family.own_processes = own_processes
        if declare:
            if name in FAMILIES:
                raise ValueError(f"executor family {name!r} declared twice")
            FAMILIES[name] = family
        return family

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return family_of, (str(self),)  # one object per declared family, in every process


def family_of(name: str) -> Family:
    """The family of this name; an undeclared one gets neutral traits and ranks last."""
    return FAMILIES.get(name) or Family(name, rank=UNKNOWN_RANK, simpler="fewer workers",
                                        declare=False)


UNKNOWN_RANK = 99

SERIAL = Family("serial", rank=0, simpler="no pool at all", pooled=False, quick_start=True)
THREAD = Family("thread", rank=1, simpler="threads share memory: nothing is pickled",
                shares_gil=True, light_workers=True, quick_start=True)
ASYNC = Family("async", rank=2, simpler="one event loop in this process: nothing is pickled",
               shares_gil=True, one_thread=True, light_workers=True, quick_start=True)
INTERPRETER = Family("interpreter", rank=3,
                     simpler="one process, and fewer or lighter subinterpreters", pickles=True)
PROCESS = Family("process", rank=4, simpler="fewer or lighter processes", pickles=True,
                 own_processes=True)
# Dask's workers: processes too, behind a scheduler (frames.py still checks each lane's pid).
CLUSTER = Family("cluster", rank=5, simpler="fewer cluster workers", pickles=True,
                 own_processes=True)
