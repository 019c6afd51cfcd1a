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
        + (f" (serial: {duration(rows.loc['serial'].wall_s)})" if "serial" in rows.index
           else ""),
        f"2. {_overlap(processes, p)}", f"   {_overlap(threads, t)}"]
    cores = cores_used(result.items, threads, int(t.workers))
    if len(cores) > 1 and float(t.cpu_parallelism) < 1.3:
        lines.append(f"   {threads}'s threads ran on {cores_text(cores)}: the GIL, not one core, "
                     "let one compute at a time")
    elif len(cores) > 1:
        lines.append(f"   {threads}'s threads ran on {cores_text(cores)}")
    elif cores:
        lines.append(f"   {threads}'s threads all started their items on {cores_text(cores)}")
    lines.append(f"   CPU, all processes: {threads} {duration(t.cpu_s)}, {processes} "
                 f"{duration(p.cpu_s)} (the notebook's %%time: parent only)")
    return lines


def _overlap(name: str, row: Any) -> str:
    """Timestamps overlapping (items in progress) versus items really computing at once."""
    par, busy = float(row.parallelism), float(row.cpu_parallelism)
    if par < 1.3:
        return f"{name}'s items ran one after another (parallelism {par:.2f})"
    if busy < 1.3:
        return f"{name}'s items overlapped ({par:.2f} in progress) but {busy:.2f} computed at once"
    return f"{name}'s items ran side by side: {par:.2f} in progress, {busy:.2f} computing at once"
