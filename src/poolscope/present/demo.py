"""The notebook's two observations, restated as measured facts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._format import duration
from ..analysis.cores import cores_text, cores_used

if TYPE_CHECKING:
    from ..result import Result

__all__ = ["observations"]


def observations(result: Result, threads: str, processes: str) -> list[str]:
    """Which pool finished sooner and by how much; whether each pool's items overlapped."""
    rows = result.summary.set_index("executor")
    if threads not in rows.index or processes not in rows.index:
        return ["(one of the pools did not run, so there is nothing to compare)"]
    t, p = rows.loc[threads], rows.loc[processes]
    faster, slower = (processes, threads) if p.wall_s <= t.wall_s else (threads, processes)
    fast_row, slow_row = rows.loc[faster], rows.loc[slower]
    lines = [
        f"1. {faster} finished sooner: {duration(fast_row.wall_s)} against {slower}'s "
        f"{duration(slow_row.wall_s)}, {slow_row.wall_s / fast_row.wall_s:.2f}× faster"
        + (f" (serial took {duration(rows.loc['serial'].wall_s)})" if "serial" in rows.index
           else "") + "."
    ]
    lines.append(f"2. {_overlap(processes, p)}; {_overlap(threads, t)}.")
    cores = cores_used(result.items, threads, int(t.workers))
    if len(cores) > 1:
        lines.append(
            f"   {threads}'s threads ran on {cores_text(cores)}: threads move "
            "between cores; the GIL, not one core, is what let one thread compute at a time "
            f"(its items spent {t.offcpu_fraction:.0%} of their time off the CPU, waiting).")
    elif cores:
        lines.append(
            f"   {threads}'s threads all started their items on {cores_text(cores)} this time; "
            f"its items spent {t.offcpu_fraction:.0%} of their time off the CPU, waiting "
            "for the GIL.")
    lines.append(
        f"   CPU of the whole process tree: {threads} {duration(t.cpu_s)}, {processes} "
        f"{duration(p.cpu_s)} (the notebook's %%time counted only the parent, so processes "
        "looked nearly free).")
    return lines


def _overlap(name: str, row: Any) -> str:
    """Timestamps overlapping (items in progress) versus items really computing at once."""
    par, busy = float(row.parallelism), float(row.cpu_parallelism)
    if par < 1.3:
        return f"{name}'s items ran one after another (parallelism {par:.2f})"
    if busy < 1.3:
        return (f"{name}'s items overlapped in time ({par:.2f} in progress at once) but only "
                f"{busy:.2f} computed at once")
    return (f"{name}'s items ran side by side: {par:.2f} in progress and {busy:.2f} computing "
            "at once")
