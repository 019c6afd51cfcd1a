"""The picture of a prediction: speedup against workers on the machines predicted for.

``plot_prediction(result, path)`` draws one panel per core count of ``result.predictions``: for
each executor a line of predicted speedups with its 95% interval as a band, in the executor's
colour and marker, and the speedups measured here (on ``result.cores`` cores) as hollow points
of the same colour — so a reader sees how far the prediction is carried from the evidence. A
dotted line marks the panel's core count, a grey line the ideal ``min(workers, cores)``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from .._errors import UsageError
from .plots import check_path, save_figure
from .scaling_plot import MARKERS, PALETTE

if TYPE_CHECKING:
    from ..result import Result

__all__ = ["plot_prediction"]

PANEL_IN = 5.0
HEIGHT_IN = 4.6


def plot_prediction(result: Result, path: str | Path | None = None) -> Figure:
    predictions = result.predictions
    if not predictions:
        raise UsageError("nothing to draw: predict first (result.predict(cores=…))")
    target = check_path(path) if path is not None else None
    counts = sorted({p.cores for p in predictions})
    executors = list(dict.fromkeys(p.executor for p in predictions))
    colours = dict(zip(executors, sns.color_palette(PALETTE, len(executors)), strict=True))
    fig = Figure(figsize=(max(6.0, PANEL_IN * len(counts)), HEIGHT_IN), layout="constrained")
    axes = fig.subplots(1, len(counts), squeeze=False)[0]  # each panel its own scale
    summary = result.summary
    for ax, cores in zip(axes, counts, strict=True):
        shown = [p for p in predictions if p.cores == cores]
        top = max(p.workers for p in shown)
        grid = np.unique(np.geomspace(1, max(top, 2), 64))
        ax.plot(grid, np.minimum(grid, cores), color="0.6", linewidth=1.2,
                label=f"ideal: min(workers, {cores})")
        ax.axvline(cores, color="0.55", linestyle=":", linewidth=1.0)
        for i, name in enumerate(executors):
            rows = sorted((p for p in shown if p.executor == name), key=lambda p: p.workers)
            if not rows:
                continue
            colour, marker = colours[name], MARKERS[i % len(MARKERS)]
            x = np.array([p.workers for p in rows], float)
            ax.plot(x, [p.speedup for p in rows], color=colour, marker=marker, linewidth=2,
                    label=f"{name}, predicted", gid=f"predicted-{name}")
            lo = np.array([p.speedup_ci[0] for p in rows], float)
            hi = np.array([p.speedup_ci[1] for p in rows], float)
            if np.isfinite(lo).all() and np.isfinite(hi).all():
                ax.fill_between(x, lo, hi, color=colour, alpha=0.18, linewidth=0,
                                gid=f"band-{name}")
            here = summary[summary["executor"] == name]
            ax.scatter(here["workers"], here["speedup"], s=60, facecolors="none",
                       edgecolors=[colour], linewidths=1.6, zorder=3,
                       label=f"{name}, measured on {result.cores}",
                       gid=f"measured-{name}")
        ax.set_xscale("log", base=2)
        ticks = sorted({p.workers for p in shown})
        ax.set_xticks(ticks, labels=[str(t) for t in ticks])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("Workers (log₂ scale)")
        ax.set_title(f"{cores} core{'s' * (cores != 1)}", loc="left", fontweight="bold")
        ax.grid(color="0.9", linewidth=0.6)
        values = [v for p in shown for v in (p.speedup, p.speedup_ci[1]) if math.isfinite(v)]
        ax.set_ylim(0, max([*values, float(min(top, cores)), 1.0]) * 1.1)
    axes[0].set_ylabel("Speedup over serial [×]")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center",
               ncols=min(4, max(1, math.ceil(len(labels) / 2))), fontsize=8.5, frameon=False)
    fig.suptitle(f"{result.target}: predicted speedup (bands: 95% intervals), measured on "
                 f"{result.cores} cores", fontsize=11)
    if target is not None:
        save_figure(fig, target)
    return fig
