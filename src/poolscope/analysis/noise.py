"""Warnings about measurements too noisy to trust, naming the likely cause.

A configuration's wall-time interval wider than WIDE_INTERVAL of its median is noisy. The
likely cause is named from what was measured: other load on the machine (the load average when
the run started, beyond what the run itself adds), too few items per worker for the work to even
out, or trials so short that start-up and timer jitter dominate.

Oversubscription: a configuration whose workers each run a native thread pool (BLAS, OpenMP;
``environment["native_threads"]``, native.py) of so many threads that workers × threads passes
the cores, when the serial trial shows those threads computing (its process used CPU outside the
items' own thread of at least NATIVE_BUSY of its wall time; without a serial trial, on the pools
alone; less than NATIVE_EVIDENCE_CPU_S of such CPU is no evidence either way, and then nothing is
said). The warning gives the numbers and the ``--native-threads`` that would fit.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .._format import count, duration
from ..measure.native import describe

__all__ = ["noise_warnings", "oversubscription_warnings"]

WIDE_INTERVAL = 0.10
BUSY_LOAD = 0.5  # load average per core when the run started, from other programs
FEW_ITEMS_PER_WORKER = 4
SHORT_TRIAL_S = 0.05
NATIVE_BUSY = 0.15  # as classify.NATIVE_SHARE
NATIVE_EVIDENCE_CPU_S = 0.003  # less CPU outside the items' thread is the run's bookkeeping


def noise_warnings(summary: pd.DataFrame, environment: dict[str, Any]) -> list[str]:
    """One warning per cause, naming every configuration it explains (a noisy machine often
    widens them all)."""
    by_cause: dict[str, list[tuple[str, float, int]]] = {}
    for row in summary.itertuples(index=False):
        if row.trials < 2 or pd.isna(row.wall_ci_lo) or not row.wall_s > 0:
            continue
        width = (row.wall_ci_hi - row.wall_ci_lo) / row.wall_s
        if width > WIDE_INTERVAL:
            by_cause.setdefault(_cause(row, environment), []).append(
                (f"{row.executor} ×{row.workers}", width, int(row.trials)))
    warnings = []
    for cause, rows in by_cause.items():
        names = ", ".join(name for name, _, _ in rows)
        widths = ", ".join(f"{width:.0%}" for _, width, _ in rows)
        trials = sorted({n for _, _, n in rows})
        said = f"{trials[0]}" if len(trials) == 1 else f"{trials[0]}–{trials[-1]}"
        their = "its median" if len(rows) == 1 else "their medians"
        warnings.append(f"{names}: 95% interval{'s' * (len(rows) > 1)} {widths} of {their} "
                        f"({said} trials); {cause}")
    return warnings + oversubscription_warnings(summary, environment)


def _cause(row: Any, environment: dict[str, Any]) -> str:
    cores = int(environment.get("cpu_count") or 1)
    load = environment.get("load_average")
    causes = []
    if load and load[0] / cores > BUSY_LOAD:
        causes.append(f"other load on the machine (load average {load[0]:.1f} on "
                      f"{cores} cores when the run started)")
    if row.items / max(1, row.workers) < FEW_ITEMS_PER_WORKER:
        causes.append(f"too few items ({row.items} for {row.workers} workers)")
    if row.wall_s < SHORT_TRIAL_S:
        causes.append(f"trials too short ({duration(row.wall_s)} each)")
    if row.outliers:
        causes.append(count(int(row.outliers), "outlier trial"))
    return ("likely cause: " + ", ".join(causes) if causes
            else "no cause in the measurements: run again on a quieter machine")


def oversubscription_warnings(summary: pd.DataFrame, environment: dict[str, Any]) -> list[str]:
    """Configurations whose workers × native threads per worker pass the cores."""
    native = (environment.get("native_threads") or {}).get("executors") or {}
    cores = int(environment.get("cpu_count") or 1)
    serial = summary[summary["executor"] == "serial"]
    if len(serial):  # threads other than the items' own, computing: native ones
        row = serial.iloc[0]
        busy = row.cpu_utilization * cores - row.cpu_parallelism
        # In a trial of a few milliseconds the run's own bookkeeping alone passes NATIVE_BUSY.
        if not busy >= NATIVE_BUSY or busy * row.wall_s < NATIVE_EVIDENCE_CPU_S:
            return []
    warnings = []
    for row in summary.itertuples(index=False):
        pools = (native.get(row.executor) or {}).get("pools") or []
        threads = max((int(p.get("num_threads") or 1) for p in pools), default=1)
        workers = int(min(row.workers, row.items)) if row.items else int(row.workers)
        if threads < 2 or workers * threads <= cores:
            continue
        fits = max(1, cores // workers)
        warnings.append(f"oversubscription: {row.executor} ×{row.workers}: "
                        f"{count(workers, 'worker')} × "
                        f"{threads} native threads each ({describe(pools)}) = "
                        f"{workers * threads} threads on {cores} cores; cap them with "
                        f"--native-threads {fits} (native_threads={fits})")
    return warnings
