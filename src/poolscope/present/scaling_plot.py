"""The picture of a sweep: speedup and efficiency against the worker count, per executor.

``plot_scaling(table, fits, cores, path)`` draws, from ``analysis.scaling.scaling_table`` and
``fit_amdahl_per_executor``:

* left, the speedup over ``serial`` per executor (markers joined by lines; error bars from the
  wall time's confidence interval where the table has one), the ideal ``min(p, cores)`` and
  each executor's fitted Amdahl curve, dashed, in the executor's colour;
* right, the efficiency ``speedup / min(p, cores)`` with the ideal 100 % and the Amdahl curves.

A fit with a negative r² (further from the measurements than their mean is, as when every worker
count is slower than serial) is named in the legend as no better than a flat line and not
drawn: a dashed curve far from its points would read as a prediction.

The x axes are log₂ with a tick at every measured worker count; a dotted line marks the core
count. Colours come from seaborn's colour-blind-safe palette and each series also has its own
marker, so that the lines can be told apart without colour. Figures are built with
``matplotlib.figure.Figure`` directly: no pyplot state and no backend change.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator, PercentFormatter

from .._format import duration
from ..analysis.scaling import AmdahlFit, amdahl_speedup
from .plots import check_path, save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_scaling"]

WIDTH_IN = 11.0
HEIGHT_IN = 5.2
PALETTE = "colorblind"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">")
IDEAL = "0.2"
CORES_LINE = "0.55"
CURVE_POINTS = 256
FIT_DASHES = (0, (5, 3))
BASELINE = "serial"


def plot_scaling(table: pd.DataFrame, fits: dict[str, AmdahlFit], cores: int,
                 path: str | Path | None = None) -> Figure:
    """Draw speedup (left) and efficiency (right) against the worker count, per executor.

    ``table`` is a ``scaling_table``; ``fits`` maps executor names to their Amdahl fits (an
    executor without a fit, or with a NaN one, gets no dashed curve). Saves to ``path`` when
    given (``.png`` at 110 dpi, ``.svg`` or ``.pdf``) and returns the figure. Raises
    ``UsageError`` for another extension or a directory that is missing or not writable.
    """
    target = check_path(path) if path is not None else None
    cores = max(1, int(cores))
    fig = _draw(table, fits, cores) if len(table) else _empty_figure(cores)
    if target is not None:
        save_figure(fig, target)
    return fig


# --- the figure --------------------------------------------------------------------------------
def _draw(table: pd.DataFrame, fits: dict[str, AmdahlFit], cores: int) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), layout="constrained")
    left, right = fig.subplots(1, 2)
    # The baseline is (1 worker, 1×) by definition: named in the title, not drawn.
    shown = table[table["executor"] != BASELINE]
    if not len(shown):
        shown = table
    executors = [str(e) for e in pd.unique(shown["executor"])]
    colors = dict(zip(executors, _palette(len(executors)), strict=True))
    workers = sorted({int(w) for w in shown["workers"]})
    lo, hi = _x_range(workers)
    extra = [float(cores)] if lo <= cores <= hi else []
    dense = np.unique(np.concatenate([np.geomspace(max(lo, 1.0), hi, CURVE_POINTS), extra]))

    # Reference lines first, so that the measurements are drawn over them.
    left.plot(dense, np.minimum(dense, cores), color=IDEAL, linewidth=1.4, zorder=1)
    right.axhline(1.0, color=IDEAL, linewidth=1.4, zorder=1)
    if lo <= cores <= hi:
        for ax in (left, right):
            ax.axvline(cores, color=CORES_LINE, linestyle=":", linewidth=1.2, zorder=1)
        left.annotate(f"{cores} core{'s' * (cores != 1)}", (cores, 0), xytext=(-4, 4),
                      textcoords="offset points", xycoords=("data", "axes fraction"),
                      ha="right", fontsize=8, color="0.4")
    handles: list[Any] = [
        Line2D([], [], color=IDEAL, linewidth=1.4, label=f"ideal: min(workers, {cores} cores)"),
    ]
    any_fit = False

    marker_index = 0
    for executor in executors:
        rows = shown[shown["executor"] == executor]
        groups = list(rows.groupby(rows["chunksize"].astype("object").fillna(-1), sort=False))
        fit = fits.get(executor)
        for chunk_key, series in groups:
            label = executor
            if len(groups) > 1 or chunk_key != -1:
                label += f", chunksize {'auto' if chunk_key == -1 else int(chunk_key)}"
            marker = MARKERS[marker_index % len(MARKERS)]
            marker_index += 1
            if fit is not None and len(groups) == 1:
                label += f" — {_fit_text(fit)}"
            handles.append(_draw_series(left, right, series.sort_values("workers"),
                                        colors[executor], marker, label))
        style: dict[str, Any] = {"color": colors[executor], "linestyle": FIT_DASHES,
                                 "linewidth": 1.3, "alpha": 0.9, "zorder": 2}
        if fit is not None and len(groups) > 1:
            # One fit over the best chunksize per worker count: its own legend entry.
            handles.append(Line2D([], [], **style,
                                  label=f"{executor}, best chunksize — {_fit_text(fit)}"))
        if fit is not None and fit.explains:
            any_fit = True
            curve = amdahl_speedup(fit.serial_fraction, dense, cores)
            left.plot(dense, curve, **style)
            right.plot(dense, curve / np.minimum(dense, cores), **style)
    if any_fit:
        handles.insert(1, Line2D([], [], color="0.45", linestyle=FIT_DASHES, linewidth=1.3,
                                 label="Amdahl fit: 1 / (f + (1 − f) / min(workers, cores))"))

    speedups = shown["speedup"].to_numpy(np.float64)
    top = max(float(np.nanmax(speedups, initial=0.0)), float(min(hi, cores)))
    left.set_ylim(0, top * 1.08 + 0.05)
    eff = shown["efficiency"].to_numpy(np.float64)
    right.set_ylim(0, max(1.08, float(np.nanmax(eff, initial=0.0)) * 1.08))
    for ax in (left, right):
        _workers_axis(ax, workers, lo, hi)
        ax.grid(color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(labelsize=9)
    left.set_ylabel("Speedup over serial [×]", fontsize=10)
    left.set_title("Speedup", loc="left", fontsize=11, fontweight="bold")
    right.set_ylabel("Efficiency: speedup / min(workers, cores) [%]", fontsize=10)
    right.yaxis.set_major_formatter(PercentFormatter(1.0))
    right.set_title("Efficiency", loc="left", fontsize=11, fontweight="bold")

    fig.legend(handles=handles, loc="outside lower center", ncols=2 if len(handles) > 3 else 1,
               fontsize=9, frameon=False)
    fig.suptitle(_title(table, cores), fontsize=12)
    return fig


def _title(table: pd.DataFrame, cores: int) -> str:
    title = f"Scaling with the number of workers — {cores} core{'s' * (cores != 1)}"
    base = table.loc[table["executor"] == BASELINE, "wall_s"]
    if len(base) and math.isfinite(float(base.iloc[0])):
        title += f"; baseline: {BASELINE} {duration(float(base.iloc[0]))}"
    return title


def _draw_series(left: Axes, right: Axes, series: pd.DataFrame, color: Any, marker: str,
                 label: str) -> Any:
    """Draw one series on both axes; returns its legend handle."""
    p = series["workers"].to_numpy(np.float64)
    speedup = series["speedup"].to_numpy(np.float64)
    efficiency = series["efficiency"].to_numpy(np.float64)
    style: dict[str, Any] = {"color": color, "marker": marker, "markersize": 7,
                             "markeredgecolor": "white", "markeredgewidth": 0.8,
                             "linewidth": 1.8, "zorder": 3}
    errors = speedup_errors(series)
    if errors is not None:
        handle = left.errorbar(p, speedup, yerr=errors, ecolor=color, elinewidth=1.0,
                               capsize=3, label=label, **style)
        right.errorbar(p, efficiency, yerr=errors * efficiency / np.where(speedup > 0, speedup,
                                                                         np.nan),
                       ecolor=color, elinewidth=1.0, capsize=3, **style)
    else:
        (handle,) = left.plot(p, speedup, label=label, **style)
        right.plot(p, efficiency, **style)
    return handle


def speedup_errors(series: pd.DataFrame) -> np.ndarray | None:
    """Error bars of the speedup, ``[below, above]``, from the wall time's interval, if any.

    Only this row's uncertainty: ``speedup × wall / wall_ci_hi`` to ``speedup × wall /
    wall_ci_lo`` (the baseline's own interval is not propagated).
    """
    if not {"wall_ci_lo", "wall_ci_hi"} <= set(series.columns):
        return None
    wall = series["wall_s"].to_numpy(np.float64)
    speedup = series["speedup"].to_numpy(np.float64)
    ci_lo = series["wall_ci_lo"].to_numpy(np.float64)
    ci_hi = series["wall_ci_hi"].to_numpy(np.float64)
    good = np.isfinite(ci_lo) & np.isfinite(ci_hi) & (ci_lo > 0) & (ci_hi > 0) & np.isfinite(
        speedup) & np.isfinite(wall)
    if not good.any():
        return None
    below = np.where(good, speedup - speedup * wall / np.where(good, ci_hi, 1.0), 0.0)
    above = np.where(good, speedup * wall / np.where(good, ci_lo, 1.0) - speedup, 0.0)
    return np.vstack([np.maximum(below, 0.0), np.maximum(above, 0.0)])


def _fit_text(fit: AmdahlFit) -> str:
    if not fit.ok:
        return "too few worker counts for an Amdahl fit"
    if not fit.explains:
        return f"Amdahl fit no better than a flat line (r² {fit.r_squared:.3g})".replace("-", "−")
    limit = "∞" if math.isinf(fit.max_speedup) else f"{fit.max_speedup:.3g}×"
    parts = [f"serial fraction {fit.serial_fraction:.3f}", f"limit {limit}"]
    if math.isfinite(fit.r_squared):
        parts.append(f"r² {fit.r_squared:.3f}")
    return ", ".join(parts)


def _workers_axis(ax: Axes, workers: list[int], lo: float, hi: float) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xlim(lo, hi)
    ax.set_xticks(workers, labels=[str(w) for w in workers])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("Workers (log₂ scale)", fontsize=10)


def _x_range(workers: list[int]) -> tuple[float, float]:
    """The measured worker counts with a margin."""
    lo, hi = float(min(workers)), float(max(workers))
    if lo == hi:
        return lo / 1.6, hi * 1.6
    return lo / 1.15, hi * 1.15


def _palette(count: int) -> list[Any]:
    colors = sns.color_palette(PALETTE)
    return [colors[i % len(colors)] for i in range(count)]


def _empty_figure(cores: int) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), layout="constrained")
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, "no measurements to show", ha="center", va="center",
            transform=ax.transAxes)
    ax.set_axis_off()
    fig.suptitle(_title(pd.DataFrame({"executor": [], "wall_s": []}), cores), fontsize=12)
    return fig
