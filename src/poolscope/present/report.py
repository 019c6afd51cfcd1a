"""The interactive HTML report: one self-contained bokeh file that works offline.

``write_report(result, path)`` writes, top to bottom: the recommendation and its evidence, the
summary table, the timelines of the representative trials (the median trial of each executor and
worker count: a band of lanes each, one lane per worker, one bar per item coloured by CPU /
wall, hover for the item's details), the items in progress and computing over time, the
notebook's scatter, the scaling curves of a sweep, and the environment. The timelines and the
concurrency chart share one time axis, so zooming one zooms both, and the executor that finishes
sooner is seen to. Each chart costs the browser time to lay out, so trials share charts, and
the charts below the timelines are drawn once they are (``_page``).

Big trials stay quick. Charts with many glyphs use WebGL (more than ``WEBGL_ABOVE``); smaller
ones the canvas, which draws them sooner than WebGL starts. A trial with more items than its
lanes can show one per pixel (``PER_LANE`` per worker, ``DETAIL_LIMIT`` in all) is first drawn as
merged bars (each worker's neighbouring items, about a pixel wide); its items travel in the file
as compact typed arrays, and once a zoom shows few enough items a small script swaps in one bar
per item (the drill-down). Hover data are numbers only, never a string per item: strings would
make a million-item file slow to open.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from bokeh.layouts import column
from bokeh.models import (
    ColumnDataSource,
    CustomJS,
    FixedTicker,
    HoverTool,
    Label,
    Legend,
    LegendItem,
    LinearAxis,
    LinearColorMapper,
    Range1d,
    Whisker,
)
from bokeh.palettes import Viridis256
from bokeh.plotting import figure

from .. import __version__
from .._errors import UsageError
from .._format import duration, percent, ratio, size
from ..analysis.cores import cores_text, cores_used
from ..analysis.costs import COST_PARTS
from ..analysis.recommend import NO_CANDIDATE
from ..frames import (
    concurrency,
    concurrency_binned,
    fraction,
    lane_labels,
    merge_bars,
    representative_trials,
)
from ._page import Choices, render_page
from .environment_text import environment_rows
from .scaling_plot import speedup_errors

if TYPE_CHECKING:
    from bokeh.models import Model

    from ..model import TrialResult
    from ..result import Result

__all__ = ["DETAIL_LIMIT", "build_report", "write_report"]

DETAIL_LIMIT = 10_000  # items drawn one bar each at most, in a trial or a zoomed-in window
PER_LANE = 1_000  # and at most this many per worker (a lane is about 1,000 pixels wide)
MERGE_SLOTS = 1_500  # merged bars are about a pixel wide
# Starting WebGL costs 0.3-0.5 s in a browser without a GPU (headless Chromium on the CI VM),
# more than the canvas takes to draw ten thousand bars or points; beyond this many it pays off.
WEBGL_ABOVE = 20_000
MAX_POINTS = 5_000  # per trial in the notebook's scatter (an even sample beyond)
EXACT_STEPS = 50  # concurrency steps drawn as they are; more are averaged over bins
STEP_BINS = 300
WIDTH = 1100
# Okabe–Ito: distinguishable with every common colour-vision deficiency.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
             "#000000"]
FAILED = "#D55E00"
TOOLS = "xpan,xwheel_zoom,box_zoom,reset,save"
TOOLBAR = "above"  # beside a chart, a short chart's toolbar folds into "⋯"
TIME_AXIS = "Time since trial start [s]"  # every time axis: one origin, named once
FEATURED = 6  # configurations drawn at once; a sweep's others are chosen one at a time
SHOWN_COMPARISONS = 6  # more comparisons are folded under a summary line
# The concurrency chart's colours, as in the PNG (Okabe–Ito).
IN_PROGRESS = "#0072B2"
WAITING = "#56B4E9"
COMPUTING = "#E69F00"


def write_report(result: Result, path: str | Path) -> Path:
    """Write the report of ``result`` to ``path`` (``.html``); returns the path written."""
    target = Path(path).expanduser()
    if target.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"cannot write the report to {target.name!r}: use a .html file name")
    if not target.parent.is_dir():
        raise UsageError(f"cannot write the report: the directory {str(target.parent)!r} "
                         "does not exist")
    text = render_page(build_report(result), items=len(result.items),
                       title=" · ".join(["poolscope", result.target,
                                         *([result.run_id] if result.run_id else [])]))
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the report to {target}: {exc.strerror or exc}") from None
    return target


def build_report(result: Result) -> list[str | Model | Choices]:
    """The report's sections in order: HTML text, a bokeh chart, or charts to choose from."""
    trials = representative_trials(result.trial_results)
    shown, others = featured_trials(result, trials)
    parts: list[str | Model | Choices] = [_header(result), _recommendation(result)]
    if result.options.get("sweep"):
        parts.extend(_scaling_view(result))  # a sweep's answer is its curve: first
    parts += [_code(result), _summary_table(result)]
    if result.predictions:
        parts.extend(_prediction_view(result))
    parts.append(_cost_table(result))
    if trials:
        some = (f" Shown: {len(shown)} of the {len(trials)} configurations (serial, the "
                "recommended one and each executor's fastest); choose another below."
                if others else "")
        parts.append("<h2>Timelines</h2><p class='note'>The median trial of each executor "
                     "and worker count. One lane per worker, one bar per item from its "
                     "start to its end; the dotted line marks the trial's end. Below, a band "
                     "per configuration: the items in progress at once (line) and computing "
                     "at once (orange; each item counts its CPU / wall), averaged over short "
                     "intervals when items are many. Drag to pan, scroll "
                     f"to zoom; both charts move together. Hover a bar for the item.{some}</p>")
        parts.append(_colour_scale())
        parts.append(column(*_timelines(result, shown), sizing_mode="stretch_width"))
        if others:
            parts.append(Choices("others", "Another configuration's timeline:", {
                f"{t.executor} ×{t.workers}": column(*_timelines(result, [t]),
                                                     sizing_mode="stretch_width")
                for t in others}))
        parts.extend(_notebook_view(result, shown))
    parts.append(_environment(result))
    return parts


def featured_trials(result: Result, trials: Sequence[TrialResult]
                    ) -> tuple[list[TrialResult], list[TrialResult]]:
    """``(shown, others)``: every trial when there are at most ``FEATURED``; else serial, the
    recommended configuration and each executor's fastest, in their order, and the rest.

    Fourteen bands of lanes, or lines, in one chart read as none: a sweep's report shows the
    few that answer the question and lets the reader pick any other.
    """
    if len(trials) <= FEATURED:
        return list(trials), []
    summary = result.summary
    wall = {(row.executor, row.workers): row.wall_s for row in summary.itertuples(index=False)}
    keep: set[tuple[str, int]] = set()
    rec = result.recommendation
    if rec is not None:
        keep.add((rec.executor, rec.workers))
    fastest: dict[str, tuple[float, int]] = {}
    for t in trials:
        if t.executor == "serial":
            keep.add((t.executor, t.workers))
            continue
        here = wall.get((t.executor, t.workers), math.inf)
        if t.executor not in fastest or here < fastest[t.executor][0]:
            fastest[t.executor] = (here, t.workers)
    keep.update((name, workers) for name, (_, workers) in fastest.items())
    shown = [t for t in trials if (t.executor, t.workers) in keep][:FEATURED + 2]
    return shown, [t for t in trials if t not in shown]


# --- text sections -----------------------------------------------------------------------------
def _header(result: Result) -> str:
    cores = result.environment.get("cpu_count", "?")
    status = " · <span class='warn'>interrupted: partial results</span>" if (
        result.interrupted) else ""
    return (f"<h1>{_e(result.target)}</h1><p class='note'>{result.n_items:,} items · "
            f"{cores} cores · Python {_e(result.environment.get('python', '?'))} · "
            + (f"run <code>{_e(result.run_id)}</code> · " if result.run_id else "not stored · ")
            + f"{_e(result.started_at)} · poolscope "
            f"{__version__}{status}</p>")


def _recommendation(result: Result) -> str:
    rec = result.recommendation
    out = ["<h2>Recommendation</h2>"]
    if rec is None:
        out.append(f"<p>No recommendation: {_e(NO_CANDIDATE)}.</p>")
    else:
        chunk = f", chunksize {rec.chunksize}" if rec.chunksize else ""
        verdict = "<span class='warn'>inconclusive</span> — " if rec.inconclusive else ""
        out.append(f"<p>{verdict}<b>{_e(rec.executor)} ×{rec.workers}{chunk}</b></p>")
        out.append(_list(rec.reasons))
        if rec.comparisons:
            sentences = [c.sentence() for c in rec.comparisons]
            if len(sentences) <= SHOWN_COMPARISONS:
                out.append("<p class='note'>Evidence (95% intervals):</p>" + _list(sentences))
            else:
                out.append(f"<details><summary>Evidence: {len(sentences)} comparisons (95% "
                           f"intervals)</summary>{_list(sentences)}</details>")
        if rec.caveats:
            out.append("<p class='note'>Caveats:</p>" + _list(rec.caveats))
    out.append(f"<p>Workload: <b>{_e(result.classification)}</b></p>")
    out.append(_list(result.classification_evidence))
    if result.warnings:
        out.append("<p class='warn'>Measurement warnings:</p>" + _list(result.warnings))
    if result.errors:
        shown = result.errors[:10]
        lines = [f"{e['executor']}: item {e['item']} — {e['kind']}: {e['message']}"
                 for e in shown]
        more = len(result.errors) - len(shown)
        out.append("<p class='warn'>Errors:</p>" + _list(
            lines + ([f"… and {more} more"] if more else [])))
    return "".join(out)


def _summary_table(result: Result) -> str:
    rec = result.recommendation
    # Soft hyphens: at 900 px the long one-word headings break rather than widen the table.
    head = ("<tr><th>executor × workers</th><th>chunk&shy;size</th><th>trials</th><th>wall</th>"
            "<th>95% interval</th><th>speed&shy;up</th><th>effi&shy;ciency</th><th>CPU</th>"
            "<th>paral&shy;lelism</th><th>busy</th><th>off-CPU</th><th>start-up</th>"
            "<th>peak RSS</th><th>errors</th></tr>")
    rows = []
    for row in result.summary.itertuples(index=False):
        best = rec is not None and (row.executor, row.workers) == (rec.executor, rec.workers)
        # A range may break after its dash, where the table is narrow; other cells do not.
        interval = ("<td>–</td>" if math.isnan(row.wall_ci_lo) else
                    f"<td class='range'><span>{duration(row.wall_ci_lo)} –</span> "
                    f"<span>{duration(row.wall_ci_hi)}</span></td>")
        cells = [_e(f"{row.executor} ×{row.workers}"), str(row.chunksize), str(row.trials),
                 duration(row.wall_s), interval, ratio(row.speedup, "×"),
                 percent(row.efficiency), duration(row.cpu_s),
                 ratio(row.parallelism, ""), ratio(row.cpu_parallelism, ""),
                 percent(row.offcpu_fraction), duration(row.startup_s),
                 size(row.peak_rss) if row.peak_rss else "–", str(row.errors)]
        cls = " class='best'" if best else ""
        rows.append(f"<tr{cls}>" + "".join(c if c.startswith("<td") else f"<td>{c}</td>"
                                           for c in cells) + "</tr>")
    return ("<h2>Summary</h2><table class='summary'>" + head + "".join(rows)
            + "</table>"
            "<p class='note'>Medians over trials. CPU: the parent and every worker. "
            "parallelism: items in progress at once; busy: items computing at once. "
            "The recommended row is highlighted.</p>")


def _code(result: Result) -> str:
    """The recommendation's code to paste, as a block of its own."""
    rec = result.recommendation
    if rec is None or not rec.code:
        return ""
    return ("<h2>Code to paste</h2><p class='note'>The recommended configuration as a script: "
            "save it as a .py file and run it.</p>"
            "<pre class='code' style='background:#f6f8fa;padding:8px 12px;overflow-x:auto'>"
            f"<code>{_e(rec.code)}</code></pre>")


def _cost_table(result: Result) -> str:
    """Each configuration's median trial, its wall time in parts that add up to it."""
    costs = result.costs
    if costs.empty:
        return ""
    names = {"startup_s": "start-up", "dispatch_s": "dispatch", "transfer_s": "transfer",
             "compute_s": "compute", "waiting_s": "waiting", "idle_s": "idle",
             "teardown_s": "teardown", "unexplained_s": "unexplained"}
    head = ("<tr><th>executor × workers</th><th>trial</th><th>wall</th>"
            + "".join(f"<th title='{_e(COST_PARTS[key])}'>{name}</th>"
                      for key, name in names.items())
            + "<th title='Σ item CPU here ÷ Σ item CPU in serial'>CPU vs serial</th></tr>")
    rows = []
    for row in costs.to_dict(orient="records"):
        cells = [_e(f"{row['executor']} ×{row['workers']}"), str(row["trial"] + 1),
                 duration(row["wall_s"]), *(duration(row[key]) for key in names),
                 ratio(row["compute_vs_serial"], "×")]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    legend = "".join(f"<li><b>{name}</b>: {_e(COST_PARTS[key])}</li>"
                     for key, name in names.items())
    return ("<h2>Where the time went</h2><table class='costs'>" + head
            + "".join(rows) + "</table><p class='note'>Each configuration's median "
            "trial: its wall time in parts that add up to it. Per-worker times are divided "
            "by min(workers, items).</p><ul class='note'>" + legend + "</ul>")


def _environment(result: Result) -> str:
    rows = environment_rows(result.environment, result.options)
    return ("<h2>Environment</h2><table class='environment'>"
            + "".join(f"<tr><td>{_e(name)}</td><td>{_e(value)}</td></tr>" for name, value in rows)
            + "</table>")


def _list(lines: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(line)}</li>" for line in lines) + "</ul>" if lines else ""


def _e(value: Any) -> str:
    return html.escape(str(value))


# --- timelines ---------------------------------------------------------------------------------
# Every chart costs the browser about 0.1 s to lay out, so the trials share charts: one timeline
# with a band of lanes per trial, and one concurrency chart with a pair of lines per trial.
def _x_end(trials: Sequence[TrialResult]) -> float:
    ends = [t.wall_s for t in trials if math.isfinite(t.wall_s)]
    ends += [float(t.items.end_ns.max()) / 1e9 for t in trials if len(t.items)]
    end = max(ends, default=1.0)
    return end * 1.02 if end > 0 else 1.0


def _trial_label(result: Result, t: TrialResult) -> str:
    summary = result.summary
    match = summary[(summary["executor"] == t.executor) & (summary["workers"] == t.workers)]
    parts = [f"{t.executor} ×{t.workers}", f"trial {t.index + 1}", duration(t.wall_s)]
    if len(match) and t.executor != "serial":
        speedup = float(match["speedup"].iloc[0])
        if math.isfinite(speedup):
            parts.append(f"median {speedup:.2f}× serial")
    cores = cores_used(result.items, t.executor, t.workers)  # the terminal's numbers
    if cores:
        parts.append(f"{cores_text(cores)} over its trials")
    return " · ".join(parts)


def _timelines(result: Result, trials: Sequence[TrialResult]) -> list[Any]:
    items = result.items
    indices = items.groupby("trial", sort=False, observed=True).indices if len(items) else {}
    frames = [items.iloc[indices[t.index]] if t.index in indices else items.iloc[:0]
              for t in trials]
    lane_counts = [int(f["lane"].max()) + 1 if len(f) else 1 for f in frames]
    # Each trial's band of lanes is preceded by a row for its label.
    offsets = 1 + np.concatenate(([0], np.cumsum(np.asarray(lane_counts[:-1]) + 1)))
    rows = int(offsets[-1]) + lane_counts[-1]
    x_range = Range1d(0.0, _x_end(trials), bounds=(0.0, None))
    mapper = LinearColorMapper(palette=Viridis256, low=0.0, high=1.0, nan_color="#999999")
    fill = {"field": "cpu_fraction", "transform": mapper}
    fig = figure(height=150 + 24 * min(rows, 60), x_range=x_range,
                 y_range=Range1d(rows - 0.5, -0.5), tools=TOOLS, active_scroll="xwheel_zoom",
                 output_backend=_backend(sum(min(len(f), _bar_limit(c))
                                             for f, c in zip(frames, lane_counts, strict=True))),
                 sizing_mode="stretch_width", name="timeline", toolbar_location=TOOLBAR)
    fig.toolbar.logo = "grey"  # without a logo, bokeh 3.9 folds the last tool into "⋮"
    fig.xaxis.axis_label = TIME_AXIS
    fig.yaxis.axis_label = "Worker"
    fig.ygrid.grid_line_color = None
    labels: dict[int, str] = {}
    lanes_meta = []
    ends: dict[str, list[float]] = {"x": [], "y0": [], "y1": []}
    for t, frame, lanes, offset in zip(trials, frames, lane_counts, offsets, strict=True):
        offset = int(offset)
        label = _trial_label(result, t)
        fig.add_layout(Label(x=0, y=offset - 1, text=label, text_font_size="10pt",
                             text_font_style="bold", x_units="screen", x_offset=4,
                             text_baseline="middle"))
        ends["x"].append(t.wall_s)
        ends["y0"].append(offset - 0.5)
        ends["y1"].append(offset + lanes - 0.5)
        names = lane_labels(frame, lanes)
        step = 1 if lanes <= 16 else math.ceil(lanes / 8)
        labels.update({offset + i: names[i] for i in range(0, lanes, step)})
        lanes_meta.append({"trial": t.index, "executor": t.executor, "workers": t.workers,
                           "lanes": lanes, "offset": offset, "items": len(frame)})
        tips = [("trial", label), *_ITEM_TIPS]
        if len(frame) <= _bar_limit(lanes):
            columns = _detail_columns(frame, offset)
            if t.worker_info:  # workers with addresses, maybe on other hosts (dask)
                columns.update(_remote_columns(frame))
                tips += [("host", "@host"), ("address", "@address"), ("retried", "@retried")]
            source = ColumnDataSource(columns)
            bars = fig.hbar(y="y", left="start", right="end", height=0.8, source=source,
                            fill_color=fill, line_color=fill, name=f"items-{t.index}")
            fig.add_tools(HoverTool(renderers=[bars], tooltips=tips))
        else:
            _drill_down(fig, frame, fill, offset, t, tips)
        _failed_overlay(fig, frame, offset, t)
    # The dotted end of each trial, across its own band only.
    fig.segment(x0="x", x1="x", y0="y0", y1="y1", source=ColumnDataSource(ends),
                line_dash="dotted", line_color="#555555", line_width=1.5, name="trial-ends")
    fig.yaxis.ticker = sorted(labels)
    fig.yaxis.major_label_overrides = dict(labels)
    fig.tags = lanes_meta
    return [fig, _concurrency_view(result, trials, frames, x_range)]


def _colour_scale() -> str:
    """The timeline's title and colour scale, as HTML: a bokeh ColorBar and title cost the
    browser 0.05-0.1 s more to draw."""
    stops = ", ".join(Viridis256[i] for i in range(0, 256, 51))  # 0 to 255
    return ("<p class='scale'><b>Items per worker</b> (median trials), coloured by CPU time / "
            f"wall time: 0 <span style='background: linear-gradient(to right, {stops})'></span>"
            " 1 (dark: it waited, for the GIL or for I/O)</p>")


def _backend(glyphs: int) -> str:
    """WebGL where a chart draws many glyphs; the canvas below, where it draws them sooner."""
    return "webgl" if glyphs > WEBGL_ABOVE else "canvas"


def _bar_limit(lanes: int) -> int:
    """Items drawn one bar each: beyond this, several would share a pixel and are merged."""
    return min(DETAIL_LIMIT, lanes * PER_LANE)


_ITEM_TIPS = [("item", "@item"), ("wall", "@wall_ms{0,0.000} ms"),
              ("CPU", "@cpu_ms{0,0.000} ms"), ("start", "@start{0.000000} s"),
              ("pid", "@pid"), ("thread", "@tid"), ("core", "@core"), ("worker", "@lane")]


def _detail_columns(frame: pd.DataFrame, offset: int) -> dict[str, np.ndarray]:
    start = frame["start_s"].to_numpy(np.float64)
    end = frame["end_s"].to_numpy(np.float64)
    wall = end - start
    cpu = frame["cpu_s"].to_numpy(np.float64)
    lane = frame["lane"].to_numpy(np.int32)
    return {
        "start": start, "end": end, "lane": lane, "y": lane + offset,
        "item": frame["item"].to_numpy(np.int64).astype(np.int32, copy=False),
        "wall_ms": wall * 1e3, "cpu_ms": cpu * 1e3,
        "cpu_fraction": fraction(cpu, wall).astype(np.float32),
        "pid": frame["pid"].to_numpy(np.int64).astype(np.int32, copy=False),
        "tid": frame["tid"].to_numpy(np.int64).astype(np.int32, copy=False),
        "core": frame["core"].to_numpy(np.int64).astype(np.int16, copy=False),
    }


def _remote_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Where each item ran, for executors whose workers have addresses: host, address, and
    whether its chunk ran again after a worker was lost."""
    return {"host": frame["host"].astype(str).to_numpy(),
            "address": frame["worker"].astype(str).to_numpy(),
            "retried": np.where(frame["retried"].to_numpy(bool), "yes", "no")}


_DRILL_JS = """
// Swap merged bars for one bar per item once the visible window holds few enough items.
clearTimeout(all.__ps_timer)
all.__ps_timer = setTimeout(() => {
  const start = all.data.start, n = start.length
  const x0 = x_range.start - max_wall, x1 = x_range.end
  const first = (x) => { let lo = 0, hi = n
    while (lo < hi) { const mid = (lo + hi) >>> 1; if (start[mid] < x) lo = mid + 1; else hi = mid }
    return lo }
  const lo = first(x0), hi = first(x1), m = hi - lo
  if (m > limit) {
    if (detail_bars.visible) { detail_bars.visible = false; merged_bars.visible = true
      detail.data = Object.fromEntries(Object.keys(detail.data).map((k) => [k, []])) }
    return
  }
  const take = (a) => Float64Array.from({length: m}, (_, i) => a[lo + i])
  const s = take(start), w = take(all.data.wall_ms), c = take(all.data.cpu_ms)
  const lane = take(all.data.lane)
  const e = new Float64Array(m), f = new Float64Array(m), y = new Float64Array(m)
  const pid = new Float64Array(m), tid = new Float64Array(m)
  for (let i = 0; i < m; i++) {
    e[i] = s[i] + w[i] / 1e3
    f[i] = w[i] > 0 ? Math.min(1, Math.max(0, c[i] / w[i])) : NaN
    y[i] = lane[i] + offset
    pid[i] = lane_pid[lane[i]]; tid[i] = lane_tid[lane[i]]
  }
  detail.data = {start: s, end: e, lane: lane, y: y, wall_ms: w, cpu_ms: c, cpu_fraction: f,
                 item: take(all.data.item), core: take(all.data.core), pid: pid, tid: tid}
  merged_bars.visible = false; detail_bars.visible = true
}, 120)
"""


def _drill_down(fig: Any, frame: pd.DataFrame, fill: dict[str, Any], offset: int,
                t: TrialResult, tips: list[tuple[str, str]]) -> None:
    """Merged bars, plus every item as typed arrays that a zoom turns into one bar each."""
    order = np.argsort(frame["start_s"].to_numpy(), kind="stable")
    ordered = frame.iloc[order]
    start = ordered["start_s"].to_numpy(np.float64)
    wall = ordered["end_s"].to_numpy(np.float64) - start
    lanes = int(frame["lane"].max()) + 1
    all_items = ColumnDataSource({
        "start": start, "wall_ms": (wall * 1e3).astype(np.float32),
        "cpu_ms": (ordered["cpu_s"].to_numpy(np.float64) * 1e3).astype(np.float32),
        "lane": ordered["lane"].to_numpy(np.int64).astype(
            np.int16 if lanes < 2 ** 15 else np.int32),
        "item": ordered["item"].to_numpy(np.int64).astype(np.int32),
        "core": ordered["core"].to_numpy(np.int64).astype(np.int16),
    }, name=f"all-items-{t.index}")
    merged = merge_bars(frame["lane"].to_numpy(np.int64), frame["start_s"].to_numpy(np.float64),
                        frame["end_s"].to_numpy(np.float64), frame["cpu_s"].to_numpy(np.float64),
                        cap=_bar_limit(lanes), slots=MERGE_SLOTS)
    merged_source = ColumnDataSource({
        "y": merged.lane + offset, "lane": merged.lane, "start": merged.start,
        "end": merged.end, "height": 0.8 * np.clip(merged.busy, 0.15, 1.0),
        "cpu_fraction": merged.cpu_fraction.astype(np.float32),
        "items": merged.items.astype(np.int32), "wall_ms": merged.wall * 1e3,
        "cpu_ms": merged.cpu * 1e3,
    })
    merged_bars = fig.hbar(y="y", left="start", right="end", height="height",
                           source=merged_source, fill_color=fill, line_color=fill,
                           name=f"merged-{t.index}")
    fig.add_tools(HoverTool(renderers=[merged_bars], tooltips=[
        tips[0], ("items", "@items{0,0} (zoom in to see each)"),
        ("Σ wall", "@wall_ms{0,0.000} ms"), ("Σ CPU", "@cpu_ms{0,0.000} ms"),
        ("from", "@start{0.000000} s"), ("to", "@end{0.000000} s"), ("worker", "@lane")]))
    detail = ColumnDataSource({key: [] for key in (
        "start", "end", "lane", "y", "wall_ms", "cpu_ms", "cpu_fraction", "item", "core", "pid",
        "tid")})
    detail_bars = fig.hbar(y="y", left="start", right="end", height=0.8, source=detail,
                           fill_color=fill, line_color=fill, visible=False,
                           name=f"items-{t.index}")
    fig.add_tools(HoverTool(renderers=[detail_bars], tooltips=tips))
    first = frame.drop_duplicates("lane").set_index("lane").reindex(range(lanes))
    callback = CustomJS(args={
        "all": all_items, "detail": detail, "detail_bars": detail_bars,
        "merged_bars": merged_bars, "x_range": fig.x_range, "limit": _bar_limit(lanes),
        "max_wall": float(wall.max()) if len(wall) else 0.0, "offset": offset,
        "lane_pid": first["pid"].fillna(-1).astype(int).tolist(),
        "lane_tid": first["tid"].fillna(-1).astype(int).tolist(),
    }, code=_DRILL_JS)
    fig.x_range.js_on_change("start", callback)
    fig.x_range.js_on_change("end", callback)


def _failed_overlay(fig: Any, frame: pd.DataFrame, offset: int, t: TrialResult) -> None:
    failed = frame[frame["status"] == "error"] if len(frame) else frame
    if not len(failed):
        return
    failed = failed.iloc[:2_000]  # outlines for the first failures; the table counts them all
    source = ColumnDataSource({
        "start": failed["start_s"].to_numpy(np.float64),
        "end": failed["end_s"].to_numpy(np.float64),
        "y": failed["lane"].to_numpy(np.int32) + offset,
        "item": failed["item"].to_numpy(np.int64),
        "error": failed["error"].fillna("").astype(str).str.slice(0, 200).tolist(),
    })
    bars = fig.hbar(y="y", left="start", right="end", height=0.95, source=source,
                    fill_alpha=0.0, line_color=FAILED, line_width=2, name=f"failed-{t.index}")
    fig.add_tools(HoverTool(renderers=[bars], tooltips=[("failed item", "@item"),
                                                        ("error", "@error")]))


def _concurrency_view(result: Result, trials: Sequence[TrialResult],
                      frames: Sequence[pd.DataFrame], x_range: Range1d) -> Any:
    """Items in progress (line) and computing (orange) at once, a band per trial, as the PNG's
    strips: lines of several trials in one frame hide each other.

    Each band has its own scale, up to its worker count, the cores or its highest level; ticks
    on the right edge mark the cores and the workers, off the lines they are compared with.
    """
    cores = result.cores
    gap = 0.45
    count = len(trials)
    fig = figure(height=90 + 80 * count, x_range=x_range,
                 y_range=Range1d(-0.1, count * (1 + gap) - gap + 0.3), tools=TOOLS,
                 active_scroll="xwheel_zoom", output_backend="canvas",
                 sizing_mode="stretch_width", name="concurrency", toolbar_location=TOOLBAR)
    fig.toolbar.logo = "grey"  # without a logo, bokeh 3.9 folds the last tool into "⋮"
    fig.yaxis.axis_label = "Items at once"
    fig.xaxis.axis_label = TIME_AXIS
    fig.ygrid.grid_line_color = None
    left: dict[float, str] = {}
    right: dict[float, str] = {}
    legend: dict[str, list[Any]] = {"in progress": [], "computing (Σ CPU / wall)": [],
                                    "waiting (GIL, I/O)": []}
    for i, (t, frame) in enumerate(zip(trials, frames, strict=True)):
        base = (count - 1 - i) * (1 + gap)
        highest = 0.0
        steps: list[tuple[np.ndarray, np.ndarray]] = []
        if len(frame):
            start = frame["start_s"].to_numpy(np.float64)
            end = frame["end_s"].to_numpy(np.float64)
            weight = np.nan_to_num(fraction(frame["cpu_s"].to_numpy(np.float64), end - start))
            for w in (None, weight):
                times, level = concurrency(start, end, w)
                if len(times) > EXACT_STEPS:
                    # Averaged over bins: thousands of exact steps would read as a solid block.
                    bins = min(STEP_BINS, len(times) // 4)
                    edges = np.linspace(float(times[0]), float(times[-1]), bins + 1)
                    level, times = concurrency_binned(start, end, edges, w), edges
                    level = np.append(level, 0.0)
                steps.append((times, level))
            highest = float(steps[0][1].max())
        top = max(float(t.workers), float(cores), highest, 1.0) * 1.1
        fig.add_layout(Label(x=0, y=base + 1.0, text=f"{t.executor} ×{t.workers}",
                             text_font_size="9pt", text_font_style="bold", x_units="screen",
                             x_offset=4, text_baseline="bottom"))
        marks = {float(cores): f"{cores} cores"}
        if t.workers != cores:
            marks[float(t.workers)] = f"{t.workers} worker{'s' * (t.workers != 1)}"
        right.update({base + level / top: text for level, text in marks.items()})
        left.update({base: "0", base + math.floor(top / 1.1) / top: f"{math.floor(top / 1.1)}"})
        if not steps:
            continue
        (times, in_progress), (_, computing) = steps
        legend["waiting (GIL, I/O)"].append(fig.varea_step(
            x=times, y1=np.full(len(times), base), y2=base + in_progress / top,
            step_mode="after", fill_color=WAITING, fill_alpha=0.45,
            name=f"waiting-{t.index}"))
        legend["computing (Σ CPU / wall)"].append(fig.varea_step(
            x=times, y1=np.full(len(times), base), y2=base + computing / top,
            step_mode="after", fill_color=COMPUTING, name=f"computing-{t.index}"))
        line = fig.step(times, base + in_progress / top, mode="after", line_color=IN_PROGRESS,
                        line_width=1.6, name=f"concurrency-{t.index}")
        line.tags = [base, top]  # where its band starts, and the level at its top
        legend["in progress"].append(line)
    fig.yaxis.ticker = FixedTicker(ticks=sorted(left))
    fig.yaxis.major_label_overrides = left
    marks_axis = LinearAxis(ticker=FixedTicker(ticks=sorted(right)), major_label_overrides=right,
                            major_tick_out=8, major_tick_in=0, minor_tick_out=0,
                            axis_line_color=None, major_label_text_font_size="8pt",
                            name="reference-marks")
    fig.add_layout(marks_axis, "right")
    fig.add_layout(Legend(items=[LegendItem(label=name, renderers=renderers)
                                 for name, renderers in legend.items() if renderers],
                          orientation="horizontal", location="top_left",
                          label_text_font_size="9pt", click_policy="hide"), "below")
    return fig


# --- the notebook's view -----------------------------------------------------------------------
def _notebook_view(result: Result, trials: Sequence[TrialResult]) -> list[Any]:
    """The notebook's FacetGrid as one chart: a band of workers per configuration, each item's
    finish time along x, on the timelines' clock (the notebook counted from the first item)."""
    items = result.items
    indices = items.groupby("trial", sort=False, observed=True).indices if len(items) else {}
    xs, ys, labels = [], [], {}
    offset = 0
    for t in trials:
        if t.index not in indices:
            continue
        frame = items.iloc[indices[t.index]]
        if len(frame) > MAX_POINTS:
            keep = np.random.default_rng(0).choice(len(frame), MAX_POINTS, replace=False)
            frame = frame.iloc[np.sort(keep)]
        lanes = int(frame["lane"].max()) + 1
        xs.append(frame["end_s"].to_numpy(np.float64))
        ys.append(frame["lane"].to_numpy(np.int32) + offset)
        names = lane_labels(frame, lanes)
        step = 1 if lanes <= 16 else math.ceil(lanes / 8)
        labels.update({offset + i: f"{t.executor} ×{t.workers} · {names[i]}"
                       for i in range(0, lanes, step)})
        offset += lanes + 1
    if not xs:
        return []
    rows = offset - 1
    # The timelines' time span, so the same moment sits at the same place on both.
    end = max(_x_end(trials), float(max(x.max() for x in xs)) * 1.02, 1e-6)
    fig = figure(height=90 + 18 * min(rows, 80), x_range=Range1d(0.0, end, bounds=(0.0, None)),
                 y_range=Range1d(rows - 0.5, -0.5), tools=TOOLS, active_scroll="xwheel_zoom",
                 output_backend=_backend(sum(len(x) for x in xs)),
                 sizing_mode="stretch_width", name="scatter", toolbar_location=TOOLBAR)
    fig.toolbar.logo = "grey"  # without a logo, bokeh 3.9 folds the last tool into "⋮"
    fig.scatter(x=np.concatenate(xs), y=np.concatenate(ys), size=5, alpha=0.7,
                color=OKABE_ITO[0], name="finish-times")
    fig.xaxis.axis_label = TIME_AXIS
    fig.yaxis.axis_label = "Worker"
    fig.yaxis.ticker = sorted(labels)
    fig.yaxis.major_label_overrides = labels
    fig.ygrid.grid_line_color = None
    return ["<h2>The notebook's view</h2><p class='note'>The original notebook's picture: "
            "each item's finish time per worker, for the configurations of the timelines "
            "(a sample of at most " + f"{MAX_POINTS:,}" + " items each).</p>", fig]


# --- scaling -----------------------------------------------------------------------------------
def _speedup_figure(name: str, height: int, top: float, workers: list[int]) -> Any:
    """A chart of speedup against workers (log), ticked at ``workers``, up to ``top``."""
    fig = figure(height=height, x_axis_type="log", tools="pan,wheel_zoom,reset,save",
                 sizing_mode="stretch_width", y_range=Range1d(0, top), name=name,
                 toolbar_location=TOOLBAR)
    fig.toolbar.logo = "grey"  # without a logo, bokeh 3.9 folds the last tool into "⋮"
    fig.xaxis.axis_label = "Workers"
    fig.yaxis.axis_label = "Speedup vs serial [×]"
    fig.xaxis.ticker = workers
    return fig


def _scaling_view(result: Result) -> list[Any]:
    """Speedup against workers per executor, with the 95% interval of each point as whiskers,
    the ideal line and each Amdahl fit that explains the points; the legend beside the chart,
    not over its points."""
    table = result.scaling
    if not len(table):
        return []
    cores = result.cores
    errors = speedup_errors(table)
    speedup = table["speedup"].to_numpy(np.float64)
    upper = speedup + (errors[1] if errors is not None else 0.0)
    top = max(float(np.nanmax(upper)), float(cores)) * 1.1
    workers = sorted(table["workers"].unique().tolist())
    fig = _speedup_figure("scaling", 400, top, workers)
    grid = np.unique(np.geomspace(1, max(workers), 60))
    entries = [(f"ideal (≤ {cores} cores)",
                [fig.line(grid, np.minimum(grid, cores), line_color="#777777",
                          line_dash="dotted", line_width=2)])]
    for i, (name, series) in enumerate(table.groupby("executor", sort=False)):
        if name == "serial":
            continue
        color = OKABE_ITO[i % len(OKABE_ITO)]
        series = series.sort_values("workers")
        renderers = [fig.line(series["workers"], series["speedup"], line_color=color,
                              line_width=2),
                     fig.scatter(series["workers"], series["speedup"], color=color, size=8)]
        bars = speedup_errors(series)
        if bars is not None:
            values = series["speedup"].to_numpy(np.float64)
            source = ColumnDataSource({"x": series["workers"].to_numpy(np.float64),
                                       "lower": values - bars[0], "upper": values + bars[1]})
            whisker = Whisker(base="x", lower="lower", upper="upper", source=source,
                              line_color=color, name=f"interval-{name}")
            whisker.upper_head.line_color = whisker.lower_head.line_color = color
            fig.add_layout(whisker)
        entries.append((str(name), renderers))
        fit = result.amdahl.get(name)
        if fit is not None and fit.explains:
            entries.append((f"{name}: Amdahl f = {fit.serial_fraction:.2f}", [fig.line(
                grid, fit.speedup(grid, cores), line_color=color, line_dash="dashed")]))
    fig.add_layout(Legend(items=[LegendItem(label=label, renderers=renderers)
                                 for label, renderers in entries],
                          click_policy="hide", label_text_font_size="9pt"), "right")
    growth = [f"{name}: {duration(fit.fixed_s)} fixed + {duration(fit.per_item_s)} per item "
              f"({fit.points} item counts)" for name, fit in result.growth.items()
              if math.isfinite(fit.per_item_s) and fit.fixed_s >= 0]
    text = ("<h2>Scaling</h2><p class='note'>Speedup against workers: measured (points, with "
            "their 95% intervals), the ideal line and Amdahl's law fitted per executor "
            "(dashed). Click a legend entry to hide it.</p>")
    if growth:
        text_after = "<p>Wall time against the number of items:</p>" + _list(growth)
        return [text, fig, text_after]
    return [text, fig]


# --- prediction --------------------------------------------------------------------------------
def _prediction_view(result: Result) -> list[Any]:
    """The last ``predict``: a chart of predicted speedups (bands: 95% intervals) with the ones
    measured here as hollow points, and the table with each bottleneck."""
    from ..analysis.predict import ASSUMPTIONS

    predictions = result.predictions
    counts = sorted({p.cores for p in predictions})
    executors = list(dict.fromkeys(p.executor for p in predictions))
    workers = sorted({p.workers for p in predictions} | set(result.summary["workers"].tolist()))
    top = max([p.speedup_ci[1] for p in predictions if math.isfinite(p.speedup_ci[1])]
              + [p.speedup for p in predictions if math.isfinite(p.speedup)] + [1.0]) * 1.1
    fig = _speedup_figure("prediction", 380, top, workers)
    entries = []
    dashes = ["solid", "dashed", "dotdash", "dotted"]
    for i, name in enumerate(executors):
        color = OKABE_ITO[i % len(OKABE_ITO)]
        for j, cores in enumerate(counts):
            rows = sorted((p for p in predictions if p.executor == name and p.cores == cores),
                          key=lambda p: p.workers)
            x = [p.workers for p in rows]
            renderers = [fig.line(x, [p.speedup for p in rows], line_color=color, line_width=2,
                                  line_dash=dashes[j % len(dashes)],
                                  name=f"predicted-{name}-{cores}")]
            lo = [p.speedup_ci[0] for p in rows]
            hi = [p.speedup_ci[1] for p in rows]
            if all(math.isfinite(v) for v in lo + hi):
                renderers.append(fig.varea(x=x, y1=lo, y2=hi, fill_color=color, fill_alpha=0.15,
                                           name=f"band-{name}-{cores}"))
            entries.append((f"{name} on {cores} cores", renderers))
        here = result.summary[result.summary["executor"] == name]
        entries.append((f"{name}, measured on {result.cores}", [fig.scatter(
            here["workers"].tolist(), here["speedup"].tolist(), size=9, fill_color=None,
            line_color=color, line_width=2, name=f"measured-{name}")]))
    fig.add_layout(Legend(items=[LegendItem(label=label, renderers=renderers)
                                 for label, renderers in entries],
                          click_policy="hide", label_text_font_size="9pt"), "right")
    rows = "".join(
        f"<tr><td>{_e(p.executor)} ×{p.workers}</td><td>{p.cores}</td>"
        f"<td>{duration(p.wall_s)}</td>"
        + ("<td>–</td>" if not math.isfinite(p.wall_ci[0]) else
           f"<td class='range'><span>{duration(p.wall_ci[0])} –</span> "
           f"<span>{duration(p.wall_ci[1])}</span></td>")
        + f"<td>{ratio(p.speedup, '×')}</td><td class='words'>{_e(p.bottleneck)}</td></tr>"
        for p in predictions)
    text = (f"<h2>Prediction</h2><p class='note'>Each executor on {', '.join(map(str, counts))} "
            f"cores, from the parts this run measured on {result.cores}: lines and bands "
            "(95% intervals) predicted, hollow points measured here. Assumes "
            f"{_e(ASSUMPTIONS)}.</p>")
    table = ("<table class='prediction'><tr><th>executor × workers</th><th>cores</th>"
             "<th>wall</th><th>95% interval</th><th>speed&shy;up</th>"
             "<th class='words'>bottleneck</th></tr>" + rows + "</table>")
    return [text, fig, table]
