"""Which CPU cores a configuration's items ran on, over all its trials.

One answer for every front: the terminal's sentence, the PNG's row note and the report's
timeline label all say the same cores, never those of one trial alone (a timeline draws one
trial, but the sentence is about the configuration).
"""

from __future__ import annotations

import pandas as pd

__all__ = ["cores_text", "cores_used"]


def cores_used(items: pd.DataFrame, executor: str, workers: int | None = None) -> list[int]:
    """The cores (the CPU each item started on) of ``executor`` × ``workers``, sorted.

    ``workers=None`` takes every worker count of the executor. Unknown cores (-1) are left out.
    """
    if not len(items):
        return []
    mask = items["executor"] == executor
    if workers is not None:
        mask &= items["workers"] == workers
    cores = items.loc[mask, "core"]
    return sorted(int(core) for core in pd.unique(cores[cores >= 0]))


def cores_text(cores: list[int]) -> str:
    """'core 3', 'cores 0 and 1', 'cores 0, 1 and 3'; '' for none."""
    if not cores:
        return ""
    if len(cores) == 1:
        return f"core {cores[0]}"
    return f"cores {', '.join(map(str, cores[:-1]))} and {cores[-1]}"
