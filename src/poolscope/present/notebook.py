"""A result in a notebook: an HTML summary with the timeline picture; text everywhere else.

``result_html(result)`` is what ``Result._repr_html_`` shows in Jupyter: the target, items and
cores, the recommendation with its reasons, the workload's classification, the summary table in
readable units and the static picture of ``present.plots.plot_run`` as an inline base64 PNG. It
is self-contained (no scripts, no external files), so a saved notebook shows it anywhere.

``result_text(result)`` renders the terminal view (the rich tables) as plain text, for terminal
IPython and for a notebook's ``text/plain`` fallback; ``repr_pretty`` is its IPython printer.

``enable_figure_display()`` makes a Jupyter kernel show poolscope's matplotlib figures (built
with ``matplotlib.figure.Figure``, without pyplot) as pictures, not as ``<Figure size ...>``.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
import shutil
import sys
from typing import TYPE_CHECKING, Any

from .._format import count, duration, percent, ratio, size
from ..analysis.recommend import NO_CANDIDATE

if TYPE_CHECKING:
    from ..result import Result

__all__ = ["enable_figure_display", "repr_pretty", "result_html", "result_text", "timeline_png"]

GREEN = "#2a7d2a"
AMBER = "#9a6700"
RED = "#c62828"
MUTED = "#666"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


# --- the picture -------------------------------------------------------------------------------
def timeline_png(result: Result, dpi: int | None = None) -> bytes:
    """``plot_run(result)`` (the notebook's scatter beside the per-worker timeline) as PNG."""
    from .plots import DPI, plot_run

    fig = plot_run(result)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi or DPI, bbox_inches="tight")
    return buffer.getvalue()


MAX_PNG_BYTES = 300_000  # above this (big sweeps) the picture is drawn again at SMALL_DPI
SMALL_DPI = 60


def _picture(result: Result) -> str:
    try:
        data = timeline_png(result)
        if len(data) > MAX_PNG_BYTES:
            data = timeline_png(result, SMALL_DPI)
    except Exception as exc:  # a display must not fail: say why the picture is missing
        return (f'<p style="color:{MUTED}">timeline not drawn: '
                f"{_e(type(exc).__name__)}: {_e(exc)}</p>")
    encoded = base64.b64encode(data).decode("ascii")
    alt = (f"{result.target}: each item's finish time per worker (left) and each worker's items "
           "from start to end, coloured by CPU / wall (right)")
    return (f'<img src="data:image/png;base64,{encoded}" alt="{_e(alt)}" '
            'style="max-width:100%;height:auto">')


# --- the summary table -------------------------------------------------------------------------
_COLUMNS = [
    ("executor × workers", "", False),
    ("trials", "", True),
    ("wall", "median trial wall time: pool creation to pool closed", True),
    ("±", "half the 95% interval of the median, as a share of it", True),
    ("speedup", "serial's median wall / this median wall", True),
    ("efficiency", "speedup / min(workers, cores)", True),
    ("CPU", "CPU of the whole process tree: the parent and every worker", True),
    ("par", "parallelism: items in progress at once", True),
    ("busy", "items computing at once (the GIL shows here)", True),
    ("off-CPU", "share of item time spent waiting: for the GIL, a sleep or I/O", True),
    ("start", "start-up: pool creation to the first item's start", True),
    ("errors", "failed items and failed trials", True),
]


def _table(result: Result) -> str:
    summary = result.summary
    rec = result.recommendation

    def cell(right: bool, extra: str = "") -> str:
        return f'style="padding:2px 8px;text-align:{"right" if right else "left"}{extra}"'

    head = "".join(f'<th {cell(right, ";border-bottom:1px solid #999")} title="{_e(tip)}">'
                   f"{_e(name)}</th>" for name, tip, right in _COLUMNS)
    rows = []
    # A sweep over chunksizes has several rows per executor × workers: name the chunksize.
    several = bool(len(summary)) and int(summary.groupby(["executor", "workers"]).size().max()) > 1
    for row in summary.itertuples(index=False):
        best = rec is not None and row.executor == rec.executor and row.workers == rec.workers
        if several and rec is not None and rec.chunksize is not None:
            best = best and row.chunksize == rec.chunksize
        label = f"{row.executor} ×{row.workers}" + (
            f" chunks of {row.chunksize}" if several else "")
        spread = ("–" if math.isnan(row.wall_ci_lo) or not row.wall_s else
                  f"{(row.wall_ci_hi - row.wall_ci_lo) / 2 / row.wall_s:.0%}")
        values = [label, str(row.trials), duration(row.wall_s),
                  spread, ratio(row.speedup), percent(row.efficiency), duration(row.cpu_s),
                  ratio(row.parallelism, ""), ratio(row.cpu_parallelism, ""),
                  percent(row.offcpu_fraction), duration(row.startup_s), str(row.errors)]
        tds = "".join(f"<td {cell(right)}>{_e(value)}</td>"
                      for value, (_, _, right) in zip(values, _COLUMNS, strict=True))
        style = f' style="font-weight:bold;color:{GREEN}"' if best else ""
        rows.append(f'<tr class="poolscope-row" data-executor="{_e(row.executor)}" '
                    f'data-workers="{int(row.workers)}"{style}>{tds}</tr>')
    return ('<table class="poolscope-summary" style="border-collapse:collapse;'
            'font-variant-numeric:tabular-nums">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f'<p style="color:{MUTED};font-size:85%;margin:2px 0 8px">'
            "±: half the 95% interval of the median · CPU: parent and all workers · "
            "par: items in progress at once · busy: items computing at once · "
            "start: pool creation to first item</p>")


# --- the whole summary -------------------------------------------------------------------------
def _list(lines: list[str], color: str | None = None) -> str:
    if not lines:
        return ""
    style = f' style="color:{color}"' if color else ""
    return f"<ul{style}>" + "".join(f"<li>{_e(line)}</li>" for line in lines) + "</ul>"


def _recommendation(result: Result) -> str:
    rec = result.recommendation
    if rec is None:
        return (f'<p style="color:{AMBER}"><b>no recommendation:</b> '
                f"{_e(NO_CANDIDATE)}</p>")
    chunk = f", chunksize {rec.chunksize}" if rec.chunksize else ""
    verdict = f'<b style="color:{AMBER}">inconclusive</b> — ' if rec.inconclusive else ""
    parts = [f'<p class="poolscope-recommendation"><b>recommendation:</b> {verdict}'
             f'<b style="color:{GREEN}">{_e(rec.executor)} with {count(rec.workers, "worker")}'
             f"{_e(chunk)}</b></p>", _list(list(rec.reasons))]
    if rec.comparisons:
        parts.append(f"<details><summary>comparisons ({len(rec.comparisons)})</summary>"
                     + _list([c.sentence() for c in rec.comparisons]) + "</details>")
    parts.append(_list(list(rec.caveats), AMBER))
    return "".join(parts)


def _code(result: Result) -> str:
    """The recommendation's code to paste, folded open, as a block of its own."""
    rec = result.recommendation
    if rec is None or not rec.code:
        return ""
    return ('<details class="poolscope-code" open><summary>code to paste</summary>'
            '<pre style="background:#f6f8fa;padding:6px 10px;overflow-x:auto">'
            f"<code>{_e(rec.code)}</code></pre></details>")


def _problems(result: Result) -> str:
    lines = [f"noisy: {w}" for w in result.warnings]
    parts = [_list(lines, AMBER)]
    failures = []
    for trial in result.trial_results:
        if trial.status == "failed":
            first = trial.errors[0] if trial.errors else {"kind": "?", "message": ""}
            failures.append(f"{trial.executor} failed: {first['kind']}: {first['message']}")
    item_errors = [e for e in result.errors if e["item"] is not None]
    if item_errors:
        e = item_errors[0]
        more = f" (and {len(item_errors) - 1} more)" if len(item_errors) > 1 else ""
        failures.append(f"{count(len(item_errors), 'item')} failed; first: item {e['item']} under "
                        f"{e['executor']}: {e['kind']}: {e['message']}{more}")
    if result.interrupted:
        done = sum(t.status != "interrupted" for t in result.trial_results)
        failures.append(f"interrupted: kept {count(done, 'finished trial')}")
    parts.append(_list(failures, RED))
    return "".join(parts)


def result_html(result: Result, picture: bool = True) -> str:
    """The HTML summary and, with ``picture``, the timeline as an inline PNG."""
    cores = result.cores
    head = (f'<p style="margin:0 0 6px"><b>{_e(result.target)}</b> · '
            f"{result.n_items:,} items · {cores} core{'s' * (cores != 1)} · "
            f'<span style="color:{MUTED}">'
            f"{f'run {_e(result.run_id)}' if result.run_id else 'not stored'}</span></p>")
    if not len(result.summary):
        return (f'<div class="poolscope-result">{head}<p>no trials were run</p>'
                f"{_problems(result)}</div>")
    evidence = "; ".join(result.classification_evidence)
    workload = (f'<p class="poolscope-classification"><b>workload:</b> '
                f"<b>{_e(result.classification)}</b>"
                + (f" ({_e(evidence)})" if evidence else "") + "</p>")
    peak = result.summary["peak_rss"].max()
    memory = (f'<p style="color:{MUTED};font-size:85%">peak RSS, summed over the processes of '
              f"the largest trial: {_e(size(peak))}</p>" if peak else "")
    return (f'<div class="poolscope-result">{head}{_recommendation(result)}{_code(result)}'
            f"{workload}{_table(result)}{_problems(result)}{memory}"
            f"{_picture(result) if picture else ''}</div>")


# --- text --------------------------------------------------------------------------------------
def result_text(result: Result, width: int | None = None) -> str:
    """The terminal view (summary, costs, classification, recommendation) as plain text."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=width or shutil.get_terminal_size((100, 24)).columns,
                      color_system=None, force_terminal=False, force_jupyter=False,
                      no_color=True, highlight=False)
    console.print(result)
    return buffer.getvalue().rstrip("\n")


def repr_pretty(result: Result, printer: Any, cycle: bool) -> None:
    """IPython's text printer for a result (terminal IPython, a notebook's text/plain)."""
    printer.text(repr(result) if cycle else result_text(result))


def enable_figure_display(shell: Any = None) -> bool:
    """Let ``shell`` (default: the running IPython, if any) show matplotlib figures as PNG.

    ipykernel's inline backend registers its figure formatter only when pyplot first picks a
    backend; poolscope's pictures are built with ``matplotlib.figure.Figure`` directly (no
    pyplot state), so in a fresh kernel ``result.plot()`` would show as ``<Figure size ...>``.
    A formatter already registered (``%matplotlib inline``, retina, ...) is left alone. Returns
    whether a figure formatter is now in place.
    """
    if shell is None:
        ipython = sys.modules.get("IPython")
        get_ipython = getattr(ipython, "get_ipython", None)
        shell = get_ipython() if get_ipython is not None else None
    formatters = getattr(getattr(shell, "display_formatter", None), "formatters", None)
    if not formatters or "image/png" not in formatters:
        return False
    png = formatters["image/png"]
    figure = getattr(sys.modules.get("matplotlib.figure"), "Figure", None)
    if (figure is not None and figure in png.type_printers) or \
            ("matplotlib.figure", "Figure") in png.deferred_printers:
        return True
    from IPython.core.pylabtools import print_figure

    # By name: matplotlib is imported only when a figure is first shown.
    png.for_type_by_name("matplotlib.figure", "Figure",
                         functools.partial(print_figure, fmt="png", base64=True))
    return True
