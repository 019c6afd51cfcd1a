"""Static pictures of a run: the notebook's FacetGrid scatter beside a per-worker timeline.

``plot_run(result, path)`` draws one row per representative trial (the median trial of each
executor and worker count) and two columns:

* left, the original notebook's view drawn with seaborn from ``result.melted()``: each item's
  finish time (x) per worker (y), on the timeline's time axis (since the trial's start);
* right, a Gantt timeline: one lane per worker (pid for processes, native thread id for threads),
  one bar per item from its start to its end, coloured by the item's CPU time / wall time
  (bright: the item computed all the time; dark: it waited, for the GIL or for I/O). Failed items
  are hatched and outlined in red over a white halo;
* under the timeline, on the same time axis, a strip of concurrency over time: the items in
  progress at once (blue line over a light blue area) and the items computing at once (orange
  area: each item counts with its CPU time / wall time), so the light blue band between the two
  is time spent waiting, for the GIL or for I/O; ticks on its right edge mark the core count
  and the worker count (off the data: a line there would sit on the in-progress line).

All time axes share one x range, so the executor that finishes sooner is seen to. Big runs stay
quick: a trial with more than ``MAX_BARS`` items has each worker's neighbouring items merged into
bars no wider than about a pixel (a merged bar's colour is its items' Σ CPU / Σ wall), and the
notebook view shows an even sample of at most ``MAX_POINTS`` items; the row says so. A
trial whose concurrency has more than ``MAX_STEPS`` steps is drawn as its exact time-weighted
mean over ``CONCURRENCY_BINS`` equal bins.

Bars are ``PolyCollection`` objects from ``Axes.broken_barh``, one per lane, with gid ``"items"``
(failure overlays have gid ``"failed"``), so a test can count what was drawn. The concurrency
strip draws ``StepPatch`` objects with gid ``"concurrency"`` (items in progress, the line),
``"concurrency-area"`` (its fill) and ``"computing"`` (items computing), and a secondary y axis
with gid ``"reference"`` holds the count marks. Figures are built with ``matplotlib.figure.Figure``
directly: no pyplot state and no backend change.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .._errors import UsageError
from .._format import duration
from ..analysis.cores import cores_text, cores_used
from ..frames import (
    concurrency,
    concurrency_binned,
    fraction,
    items_frame,
    lane_labels,
    merge_bars,
    representative_trials,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..model import TrialResult
    from ..result import Result

__all__ = ["plot_run"]

MAX_BARS = 20_000  # per trial, in the timeline
MAX_POINTS = 20_000  # per trial, in the notebook view
FORMATS = (".png", ".svg", ".pdf")
CMAP = "viridis"  # sequential, perceptually uniform, colour-blind safe
FAILED = "#d62728"  # red: not in viridis, so a failure stands out
# Concurrency strip, Okabe–Ito colours (safe for the common colour-vision deficiencies, and
# apart from the failure red: orange is lighter, blue is far from it for every viewer).
IN_PROGRESS = "#0072B2"  # blue: the items-in-progress line
WAITING = "#56B4E9"  # sky blue, light: the area under it, where it is not computing
COMPUTING = "#E69F00"  # orange: the items-computing area
REFERENCE = "0.25"  # the core (dashed) and worker (dotted) count lines
POINT_COLOR = "#1f77b4"  # the notebook's default seaborn blue
WIDTH_IN = 12.0
ROW_IN = 1.6
STRIP_IN = 0.75  # the concurrency strip under each timeline
MARGIN_IN = 1.3
DPI = 110
BUSY_LEVELS = 8  # heights of merged bars
SLOTS = 1_500  # merged bars per worker at most: about one per pixel at 110 dpi
RASTERIZE_ABOVE = 5_000  # artists with more elements are rasterised in SVG/PDF output
MAX_STEPS = 4_000  # concurrency steps drawn exactly; more are averaged into bins
CONCURRENCY_BINS = 1_500  # about one per pixel at 110 dpi
TIME_AXIS = "Time since trial start [s]"  # both panels: one origin, named once


@dataclass
class _Bars:
    """What the timeline draws for one trial: one entry per bar (an item or merged items)."""

    lane: np.ndarray
    start: np.ndarray
    end: np.ndarray
    cpu_fraction: np.ndarray  # NaN where the wall time is zero
    busy: np.ndarray  # share of a bar's span spent inside items: 1 unless merged
    failed: np.ndarray
    items: int  # items behind the bars

    @property
    def merged(self) -> bool:
        return len(self.lane) < self.items


def plot_run(result: Result, path: str | Path | None = None) -> Figure:
    """Draw ``result`` as the notebook's scatter beside a per-worker timeline, one row per trial.

    Saves to ``path`` when given (``.png`` at 110 dpi, ``.svg`` or ``.pdf``) and returns the
    figure. Raises ``UsageError`` for another extension or a directory that is missing or not
    writable.
    """
    target = check_path(path) if path is not None else None
    trials = representative_trials(result.trial_results)
    fig = _draw(result, trials) if trials else _empty_figure(result)
    if target is not None:
        save_figure(fig, target)
    return fig


def save_figure(fig: Figure, target: Path) -> None:
    """Save in the format the extension names; a write error becomes a one-line UsageError."""
    try:
        fig.savefig(target, format=target.suffix[1:].lower(), dpi=DPI, bbox_inches="tight")
    except OSError as exc:
        raise UsageError(f"cannot write the plot to {target}: {exc.strerror or exc}") from None


# --- checks ------------------------------------------------------------------------------------
def check_path(path: str | Path) -> Path:
    target = Path(path).expanduser()
    if target.suffix.lower() not in FORMATS:
        raise UsageError(f"cannot save a plot as {target.name!r}: use a .png, .svg or .pdf name")
    folder = target.parent
    if not folder.is_dir():
        raise UsageError(f"cannot save the plot: the directory {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot save the plot: the directory {str(folder)!r} is not writable")
    return target


# --- the figure --------------------------------------------------------------------------------
def _draw(result: Result, trials: Sequence[TrialResult]) -> Figure:
    melted = result.melted()
    items = result.items
    by_trial = items.groupby("trial", sort=False, observed=True).indices if len(items) else {}
    frames = [items.iloc[by_trial[t.index]] if t.index in by_trial else items_frame([t])
              for t in trials]
    lane_counts = [int(f["lane"].max()) + 1 if len(f) else 1 for f in frames]
    gantt_in = ROW_IN + min(1.0, max(0, max(lane_counts) - 16) / 48)
    fig = Figure(figsize=(WIDTH_IN, MARGIN_IN + (gantt_in + STRIP_IN) * len(trials)),
                 layout="constrained")
    # Two grid rows per trial: the timeline and, under it on the same time axis, its
    # concurrency strip; the notebook's scatter spans both.
    grid = fig.add_gridspec(2 * len(trials), 2, width_ratios=(1, 1.7),
                            height_ratios=(gantt_in, STRIP_IN) * len(trials))
    first: Axes | None = None
    lefts: list[Axes] = []
    rights: list[Axes] = []
    strips: list[Axes] = []
    for row in range(len(trials)):
        left = fig.add_subplot(grid[2 * row:2 * row + 2, 0], sharex=first)
        if first is None:
            first = left
        right = fig.add_subplot(grid[2 * row, 1], sharex=first)
        strip = fig.add_subplot(grid[2 * row + 1, 1], sharex=first)
        lefts.append(left)
        rights.append(right)
        strips.append(strip)

    cmap = mpl.colormaps[CMAP].with_extremes(bad="0.6")
    norm = Normalize(0.0, 1.0)
    several = len({t.workers for t in trials}) > 1
    types = list(pd.unique(melted["type"])) if len(melted) else []
    x_end = 0.0
    merged = failed = binned = False
    for row, (t, frame) in enumerate(zip(trials, frames, strict=True)):
        lanes = lane_counts[row]
        label = _match_type(t, types, several, row, trials)
        points = melted[melted["type"] == label] if label is not None else melted.iloc[:0]
        shown = _draw_notebook(lefts[row], points, frame, lanes)
        bars = _reduce_bars(frame, MAX_BARS)
        _draw_timeline(rights[row], bars, frame, t, lanes, cmap, norm)
        row_binned = _draw_concurrency(strips[row], frame, t, result.environment)
        merged = merged or bars.merged
        binned = binned or row_binned
        failed = failed or bool(bars.failed.any())
        lefts[row].set_title(_row_title(result, t, several), loc="left", fontsize=10,
                             fontweight="bold")
        rights[row].set_title(_row_note(result, t, frame, bars, shown, row_binned), loc="right",
                              fontsize=8.5, color="0.3")
        ends = [t.wall_s]
        if len(frame):
            ends.append(float(frame["end_s"].max()))
        if len(points):
            ends.append(float(points["value"].max()))
        x_end = max([x_end, *(e for e in ends if math.isfinite(e))])

    lefts[0].set_xlim(0.0, x_end * 1.02 if x_end > 0 else 1.0)
    for ax in (*lefts, *rights, *strips):
        ax.tick_params(labelsize=8)
        if ax not in (lefts[-1], strips[-1]):
            ax.tick_params(labelbottom=False)
    lefts[-1].set_xlabel(TIME_AXIS, fontsize=9)
    strips[-1].set_xlabel(TIME_AXIS, fontsize=9)
    colorbar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=rights, aspect=30,
                            fraction=0.025, pad=0.01)
    colorbar.set_label("CPU / wall per item", fontsize=9)
    colorbar.ax.tick_params(labelsize=8)

    cores = result.environment.get("cpu_count", "?")
    fig.suptitle(f"{result.target} — {result.n_items:,} items, {cores} cores", fontsize=12)
    # The caption is the title of the concurrency strip's key: one artist at the bottom, which
    # the constrained layout keeps clear of the axes (a supxlabel and a legend would overlap).
    key = fig.legend(handles=_concurrency_legend(), loc="outside lower center", ncols=3,
                     fontsize=8, frameon=False, title=_caption(merged, failed, binned),
                     title_fontsize=8, borderaxespad=0.2, columnspacing=1.6)
    key.get_title().set(color="0.3", multialignment="center")
    key.set_gid("caption")
    return fig


def _caption(merged: bool, failed: bool, binned: bool) -> str:
    lines = [
        "Left: the notebook's view, each item's finish time per worker."
        "  Right: each worker's items from start to end; dotted line: the trial's end",
        "Colour: the item's CPU time / wall time (dark: it waited, for the GIL or I/O)",
        "Under each timeline: items in progress at once (blue line) and items computing at once"
        " (orange: each item counts its CPU / wall); light blue between them: waiting;"
        " marks on the right: the cores and the workers",
    ]
    if merged:
        lines[1] += "; merged bars are as tall as the share of their time spent inside items"
    if failed:
        lines[1] += "; hatched red: failed items"
    if binned:
        lines[2] += f"; big trials: mean over {CONCURRENCY_BINS:,} equal time bins"
    return ".\n".join(lines) + "."


def _empty_figure(result: Result) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, MARGIN_IN + ROW_IN), layout="constrained")
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, "no trials to show", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    fig.suptitle(f"{result.target} — {result.n_items:,} items", fontsize=12)
    return fig


def _match_type(t: TrialResult, types: list[Any], several: bool, row: int,
                trials: Sequence[TrialResult]) -> Any:
    """The ``type`` value of ``result.melted()`` that belongs to trial ``t``."""
    wanted = f"{t.executor} ×{t.workers}" if several else t.executor
    for candidate in (wanted, f"{t.executor} ×{t.workers}", t.executor):
        if candidate in types:
            return candidate
    # An unforeseen label: melted() lists the non-empty representative trials in order.
    position = sum(1 for other in trials[:row] if len(other.items))
    return types[position] if len(t.items) and position < len(types) else None


def _row_title(result: Result, t: TrialResult, several: bool) -> str:
    name = f"{t.executor} ×{t.workers}" if several or t.workers > 1 else t.executor
    summary = result.summary
    match = summary[(summary["executor"] == t.executor) & (summary["workers"] == t.workers)]
    wall = float(match["wall_s"].iloc[0]) if len(match) else t.wall_s
    parts = [duration(wall)]
    if len(match):
        speedup = float(match["speedup"].iloc[0])
        parallelism = float(match["parallelism"].iloc[0])
        if t.executor == "serial":
            parts[0] += " (baseline)"
        elif math.isfinite(speedup):
            parts.append(f"{speedup:.2f}× serial")
        if math.isfinite(parallelism):
            parts.append(f"parallelism {parallelism:.2f}")
    return f"{name} — {', '.join(parts)}"


def _row_note(result: Result, t: TrialResult, frame: pd.DataFrame, bars: _Bars, shown: int,
              binned: bool = False) -> str:
    if not len(frame):
        return f"no items recorded ({t.status})"
    workers = int(frame["lane"].max()) + 1
    parts = [f"{workers} worker{'s' * (workers != 1)}"]
    cores = cores_used(result.items, t.executor, t.workers)  # the terminal's numbers
    if cores:
        trials = result.items.loc[(result.items["executor"] == t.executor)
                                  & (result.items["workers"] == t.workers), "trial"].nunique()
        parts.append(f"{cores_text(cores)} over {'its ' * (trials > 1)}{trials} "
                     f"trial{'s' * (trials != 1)}")
    if bars.merged:
        parts.append(f"{bars.items:,} items merged into {len(bars.lane):,} bars")
    if shown < len(frame):
        parts.append(f"scatter: {shown:,} sampled")
    if binned:
        parts.append("concurrency binned")
    failed = int((frame["status"] == "error").sum())
    if failed:
        parts.append(f"{failed:,} failed")
    return " · ".join(parts)


# --- left: the notebook's scatter --------------------------------------------------------------
def _draw_notebook(ax: Axes, points: pd.DataFrame, frame: pd.DataFrame, lanes: int) -> int:
    """The notebook's ``sns.scatterplot(x='value', y='variable')``; returns the points drawn.

    The notebook counts time from the first item's start; here it is shifted to the trial's
    start, the timeline's origin, so both panels read the same time. Workers are named as on
    the timeline.
    """
    if not len(points):
        _no_items(ax)
        ax.set_yticks([])
        return 0
    data = pd.DataFrame({"value": points["value"].to_numpy(np.float64),
                         "lane": [_job_number(v)[0] for v in points["variable"]]})
    if len(frame):
        data["value"] += float(frame["start_s"].min())
    if len(data) > MAX_POINTS:
        keep = np.random.default_rng(0).choice(len(data), MAX_POINTS, replace=False)
        data = data.iloc[np.sort(keep)]
    many = len(data) > 500
    sns.scatterplot(data=data, x="value", y="lane", ax=ax, color=POINT_COLOR,
                    s=6 if many else 22, linewidth=0 if many else 0.4, alpha=0.6 if many else 0.9,
                    rasterized=len(data) > RASTERIZE_ABOVE, legend=False)
    ax.set_xlabel("")
    ax.set_ylabel("Worker", fontsize=9)
    lanes = max(lanes, int(data["lane"].max()) + 1)
    ticks = _tick_positions(lanes)
    names = lane_labels(frame, lanes)
    ax.set_yticks(ticks, labels=[names[i] for i in ticks])
    ax.set_ylim(lanes - 0.5, -0.5)
    ax.grid(axis="x", color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)
    return len(data)


def _job_number(label: Any) -> tuple[int, str]:
    digits = "".join(ch for ch in str(label) if ch.isdigit())
    return (int(digits) if digits else 0, str(label))


# --- right: the per-worker timeline ------------------------------------------------------------
def _reduce_bars(frame: pd.DataFrame, cap: int) -> _Bars:
    """One bar per item, or at most about ``cap`` bars of a worker's neighbouring items."""
    bars = merge_bars(frame["lane"].to_numpy(np.int64), frame["start_s"].to_numpy(np.float64),
                      frame["end_s"].to_numpy(np.float64), frame["cpu_s"].to_numpy(np.float64),
                      (frame["status"] == "error").to_numpy(bool), cap=cap, slots=SLOTS)
    return _Bars(lane=bars.lane, start=bars.start, end=bars.end,
                 cpu_fraction=bars.cpu_fraction, busy=bars.busy, failed=bars.failed,
                 items=len(frame))


def _draw_timeline(ax: Axes, bars: _Bars, frame: pd.DataFrame, t: TrialResult, lanes: int,
                   cmap: Any, norm: Normalize) -> None:
    ax.axvline(t.wall_s, color="0.35", linestyle=":", linewidth=1.2)
    ax.set_ylabel("Worker", fontsize=9)
    ax.set_ylim(lanes - 0.5, -0.5)
    ax.grid(axis="x", color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)
    if not len(bars.lane):
        _no_items(ax)
        ax.set_yticks([])
        return
    colors = cmap(norm(bars.cpu_fraction))
    # Separate neighbouring items with a white hairline when there are few, wide enough bars;
    # otherwise outline each bar in its own colour so that very short ones still show.
    span = max(float(bars.end.max()), t.wall_s, 1e-9)
    wide = np.median(bars.end - bars.start) > span / 300
    separate = len(bars.lane) <= 400 and wide
    raster = len(bars.lane) > RASTERIZE_ABOVE
    # A merged bar is as tall as the share of its span spent inside items (in eighths).
    level = np.clip(np.ceil(bars.busy * BUSY_LEVELS), 1, BUSY_LEVELS).astype(np.int64)
    bounds = np.searchsorted(bars.lane, np.arange(lanes + 1))
    for lane in range(lanes):
        here = slice(bounds[lane], bounds[lane + 1])
        for step in np.unique(level[here]):
            sel = np.arange(here.start, here.stop)[level[here] == step]
            ranges = np.column_stack((bars.start[sel], bars.end[sel] - bars.start[sel]))
            height = 0.8 * step / BUSY_LEVELS
            yrange = (lane - height / 2, height)
            ax.broken_barh(ranges, yrange, facecolors=colors[sel],
                           edgecolors="white" if separate else colors[sel],
                           linewidths=0.6 if separate else 0.4, gid="items", rasterized=raster)
            failed = bars.failed[sel]
            if failed.any():
                # Red hatching over a white halo: it stands out on every viridis colour, also
                # for red-green colour-blind readers (on mid teal, red alone turns to grey).
                halo = ax.broken_barh(ranges[failed], yrange, facecolors="none",
                                      edgecolors="white", hatch="////", linewidths=2.4,
                                      gid="failed-halo")
                halo.set_hatch_linewidth(2.6)
                ax.broken_barh(ranges[failed], yrange, facecolors="none", edgecolors=FAILED,
                               hatch="////", linewidths=1.0, gid="failed")
    ticks = _tick_positions(lanes)
    names = lane_labels(frame, lanes)
    ax.set_yticks(ticks, labels=[names[i] for i in ticks])


# --- under the timeline: concurrency over time ----------------------------------------------------
def concurrency_steps(frame: pd.DataFrame, span: float | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """``(edges, in_progress, computing, binned)`` of one trial's items, ready for ``stairs``.

    ``in_progress[i]`` and ``computing[i]`` hold between ``edges[i]`` and ``edges[i + 1]``.
    Exact steps when there are at most ``MAX_STEPS`` of them; otherwise the exact time-weighted
    means over ``CONCURRENCY_BINS`` equal bins from 0 to ``span`` (default: the last item's end).
    """
    start = frame["start_s"].to_numpy(np.float64)
    end = frame["end_s"].to_numpy(np.float64)
    weight = np.nan_to_num(fraction(frame["cpu_s"].to_numpy(np.float64), end - start))
    times, level = concurrency(start, end)
    if len(times) <= MAX_STEPS:
        _, computing = concurrency(start, end, weight)
        # Both step functions change at the same times: weights of 0 still make a step.
        return times, level[:-1], computing[:-1], False
    stop = max(float(end.max()), span or 0.0)
    edges = np.linspace(0.0, stop if stop > 0 else 1.0, CONCURRENCY_BINS + 1)
    return (edges, concurrency_binned(start, end, edges),
            concurrency_binned(start, end, edges, weight), True)


def _draw_concurrency(ax: Axes, frame: pd.DataFrame, t: TrialResult,
                      environment: dict[str, Any]) -> bool:
    """The strip under a timeline; returns whether it is binned.

    Its scale reaches the worker count, the core count and the highest level, whichever is
    highest, so that 2 workers are not drawn flat beside 32 (each row has its own ticks).
    """
    ax.axvline(t.wall_s, color="0.35", linestyle=":", linewidth=1.2)
    ax.set_ylabel("Items\nat once", fontsize=8.5)
    ax.grid(axis="x", color="0.9", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=3, integer=True, min_n_ticks=2))
    cores = environment.get("cpu_count")
    top = float(t.workers)
    marks = {}
    if isinstance(cores, int | float) and cores > 0:
        marks[float(cores)] = f"{cores:g} cores"
        top = max(top, float(cores))
    if t.workers != cores:
        marks[float(t.workers)] = f"{t.workers} worker{'s' * (t.workers != 1)}"
    _reference_marks(ax, marks)
    if not len(frame):
        ax.set_ylim(0.0, max(top, 1.0) * 1.15)
        return False
    edges, in_progress, computing, binned = concurrency_steps(frame, t.wall_s)
    ax.stairs(in_progress, edges, baseline=0.0, fill=True, color=WAITING, alpha=0.45,
              linewidth=0, zorder=2, gid="concurrency-area")
    ax.stairs(computing, edges, baseline=0.0, fill=True, color=COMPUTING, linewidth=0,
              zorder=2.5, gid="computing")
    ax.stairs(in_progress, edges, baseline=None, color=IN_PROGRESS, linewidth=1.1, zorder=3,
              gid="concurrency")
    highest = float(in_progress.max()) if len(in_progress) else 0.0
    ax.set_ylim(0.0, max(top, highest, 1.0) * 1.15)
    return binned


def _reference_marks(ax: Axes, marks: dict[float, str]) -> None:
    """The core and worker counts as ticks on the strip's right edge, outside the data, where
    a line across the strip would sit on the items-in-progress line it is compared with."""
    side = ax.secondary_yaxis("right")
    side.set_gid("reference")
    levels = sorted(marks)
    side.set_yticks(levels, labels=[marks[level] for level in levels])
    side.tick_params(labelsize=7.5, length=5, width=1.2, colors=REFERENCE, pad=1.5)
    side.spines["right"].set_visible(False)


def _concurrency_legend() -> list[Any]:
    return [
        Line2D([], [], color=IN_PROGRESS, linewidth=1.4, label="in progress"),
        Patch(facecolor=COMPUTING, label="computing (Σ CPU / wall)"),
        Patch(facecolor=WAITING, alpha=0.45, label="waiting (GIL, I/O)"),
    ]


def _tick_positions(count: int, most: int = 8) -> list[int]:
    step = max(1, math.ceil(count / most))
    return list(range(0, count, step))


def _no_items(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no items recorded", ha="center", va="center", transform=ax.transAxes,
            fontsize=9, color="0.4")
