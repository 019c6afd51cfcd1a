"""The notebook's two observations, restated as measured facts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._format import duration

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
    items = result.items
    cores = {name: sorted(set(items.loc[items["executor"] == name, "core"]) - {-1})
             for name in (threads, processes)}

    def overlap(name: str, row: object) -> str:
        par = float(row.parallelism)  # type: ignore[attr-defined]
        workers = int(row.workers)  # type: ignore[attr-defined]
        verdict = "overlapped" if par >= 1.3 else "did not overlap"
        return (f"{name}'s items {verdict}: parallelism {par:.2f} "
                f"(on average {par:.1f} of {workers} workers busy at once)")

    lines.append(f"2. {overlap(processes, p)}; {overlap(threads, t)}.")
    if cores[threads]:
        lines.append(
            f"   The threads ran on cores {', '.join(map(str, cores[threads]))} — they move "
            "between cores; the GIL, not a single core, is what runs them one at a time. "
            f"Off-CPU (waiting for the GIL): {threads} {t.offcpu_fraction:.0%}, "
            f"{processes} {p.offcpu_fraction:.0%}.")
    lines.append(
        f"   CPU of the whole process tree: {threads} {duration(t.cpu_s)}, {processes} "
        f"{duration(p.cpu_s)} (the notebook's %%time counted only the parent, so processes "
        "looked nearly free).")
    return lines
