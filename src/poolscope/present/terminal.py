"""Rich renderables for a result: the summary table, the classification and the recommendation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table
from rich.text import Text

from .._format import count, duration, percent, ratio, size
from ..analysis.recommend import NO_CANDIDATE
from ..analysis.stats import Comparison

if TYPE_CHECKING:
    from ..result import Result

__all__ = ["code_view", "cost_table", "markdown_summary", "prediction_view", "render_result",
           "scaling_view", "summary_table"]


def _table(title: str) -> Table:
    """Every table's look: a bold title on the left, bold headers, one rule under them."""
    return Table(title=title, title_justify="left", title_style="bold", header_style="bold",
                 box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False)


def summary_table(result: Result) -> Table:
    """The summary as a table that fits 80 columns (the JSON has every metric)."""
    rec = result.recommendation
    summary = result.summary
    any_errors = bool(summary["errors"].sum())
    repeated = bool((summary["trials"] > 1).any())
    table = _table(f"{result.target} · {result.n_items} items · {result.cores} cores")
    table.add_column("executor × workers", no_wrap=True)
    headers = ["wall", *(["±"] if repeated else []), "speedup", "CPU", "par", "busy",
               "off-CPU", "start", *(["errors"] if any_errors else [])]
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for row in summary.itertuples(index=False):
        best = rec is not None and row.executor == rec.executor and row.workers == rec.workers
        spread = []
        if repeated:
            spread = ["" if math.isnan(row.wall_ci_lo) else
                      f"{(row.wall_ci_hi - row.wall_ci_lo) / 2 / row.wall_s:.0%}"]
        table.add_row(
            f"{row.executor} ×{row.workers}", duration(row.wall_s), *spread,
            ratio(row.speedup), duration(row.cpu_s), ratio(row.parallelism, ""),
            ratio(row.cpu_parallelism, ""), percent(row.offcpu_fraction),
            duration(row.startup_s), *([str(row.errors)] if any_errors else []),
            style="bold green" if best else None)
    return table


def _summary_caption(result: Result) -> str:
    summary = result.summary
    repeated = bool((summary["trials"] > 1).any())
    isolated = [name for name in dict.fromkeys(summary["executor"])
                if result.options.get("isolate") and _in_process(name)]
    return (("±: half the 95% interval of the median · " if repeated else "")
            + "CPU: parent and all workers · par: items in progress at once · "
            "busy: items computing at once · start: pool creation to first item"
            + (f" · {', '.join(isolated)}: in a child process (--no-isolate: in "
               "poolscope's own)" if isolated else ""))


def _in_process(name: str) -> bool:
    """Whether an executor's workers share its process (what isolation moves to a child)."""
    from ..backends import REGISTRY

    cls = REGISTRY.get(name)
    return cls is not None and cls.in_process


def render_result(result: Result, verbose: bool = False, code: bool = True,
                  reasons: bool = True, hint: bool = False) -> Iterator[Any]:
    """The terminal view: the verdict first (with its ``reasons``), then the table and (``code``)
    what to paste. ``verbose`` adds each comparison the verdict rests on, where each
    configuration's time went and the peak memory (the JSON and the report hold everything);
    ``hint`` says so, for the CLI's -v."""
    if result.options.get("kind") == "map":
        yield from map_view(result)
        return
    yield from _recommendation_lines(result, verbose, reasons)
    yield summary_table(result)
    yield caption(_summary_caption(result))
    yield from _initializer_lines(result)
    if result.options.get("sweep"):
        yield from scaling_view(result)
    elif verbose and not result.costs.empty:
        yield cost_table(result)
        yield caption(_cost_caption(result))
    evidence = "; ".join(result.classification_evidence) if reasons or verbose else ""
    yield Text.assemble(("workload: ", "bold"), (result.classification, "cyan"),
                        f" ({evidence})" if evidence else "")
    if code:
        yield from code_view(result)
    for warning in result.warnings:
        yield Text(f"noisy: {warning}", style="yellow")
    yield from _failure_lines(result)
    peak = result.summary["peak_rss"].max() if len(result.summary) else 0
    if peak and verbose:
        yield Text(f"peak RSS, summed over the processes of the largest trial: {size(peak)}",
                   style="dim")
    if hint and not verbose:
        yield Text("-v: the comparisons behind the verdict, where the time went, peak memory",
                   style="dim")


def _initializer_lines(result: Result) -> Iterator[Text]:
    """The initializer's time per worker, apart from the items' (call_shape.py)."""
    summary = result.summary
    if "initializer_s" not in summary or not summary["initializer_s"].notna().any():
        return
    said = ", ".join(f"{row.executor} ×{row.workers} {duration(row.initializer_s)}"
                     for row in summary.itertuples(index=False)
                     if not math.isnan(row.initializer_s))
    yield Text.assemble(("initializer: ", "bold"), said,
                        " per worker (median): in the trials' walls, not in the items' times")


def caption(text: str) -> Text:
    """A table's key, under it: its own line, so a pipe gets it unwrapped."""
    return Text(text, style="dim")


def bullet(mark: str, text: str, style: str | None = None) -> Table:
    """``  · text``, whose wrapped lines keep the text's indent on a terminal."""
    grid = Table.grid()
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row(f"  {mark} ", Text(text, style=style or ""))
    return grid


def verdict_text(result: Result) -> Text:
    """The verdict in one line: what to use and, against serial, how much faster."""
    rec = result.recommendation
    if rec is None:
        return Text.assemble(("recommendation: ", "bold"), ("none", "bold yellow"),
                             f" — {NO_CANDIDATE}")
    chunk = f", chunksize {rec.chunksize}" if rec.chunksize else ""
    unsure = [("inconclusive — ", "bold yellow")] if rec.inconclusive else []
    return Text.assemble(("recommendation: ", "bold"), *unsure,
                         (f"{rec.executor} with {count(rec.workers, 'worker')}{chunk}",
                          "bold green"), _speedup(rec.against_serial))


def _speedup(against_serial: Comparison | None) -> str:
    if against_serial is None:
        return ""
    c = against_serial
    interval = "one trial each: no interval" if c.ci is None else \
        f"95% CI {c.ci[0]:.2f}–{c.ci[1]:.2f}"
    return f" — {c.ratio:.2f}× serial's speed ({interval})"


def _recommendation_lines(result: Result, verbose: bool, reasons: bool) -> Iterator[Any]:
    yield verdict_text(result)
    rec = result.recommendation
    if rec is None:
        return
    if reasons or verbose:
        for reason in rec.reasons:
            yield bullet("·", reason)
    elif rec.inconclusive and rec.to_decide:
        yield bullet("·", f"to decide: {rec.to_decide}")
    if verbose:
        for comparison in rec.comparisons:
            yield bullet("=", comparison.sentence(), "dim")
    for note in rec.caveats:
        yield bullet("!", note, "yellow")


def _failure_lines(result: Result) -> Iterator[Text]:
    """Failed trials, executor incidents a trial survived, and the first failed item."""
    for trial in result.trial_results:
        if trial.status == "failed":
            first = trial.errors[0] if trial.errors else {"kind": "?", "message": ""}
            yield Text(f"{trial.executor} failed: {first['kind']}: {first['message']}",
                       style="red")
    # Executor incidents a trial survived (a lost Dask worker): the run exits 1, so say why.
    seen = set()
    for trial in result.trial_results:
        if trial.status == "failed":
            continue
        for e in trial.errors:
            if e["item"] is None and e["message"] not in seen:
                seen.add(e["message"])
                yield Text(f"{trial.executor}: {e['kind']}: {e['message']}", style="red")
    item_errors = [e for e in result.errors if e["item"] is not None]
    if item_errors:
        e = item_errors[0]
        more = f" (and {len(item_errors) - 1} more)" if len(item_errors) > 1 else ""
        yield Text(f"{count(len(item_errors), 'item')} failed; first: item {e['item']} under "
                   f"{e['executor']}: {e['kind']}: {e['message']}{more}", style="red")


def map_view(result: Result) -> Iterator[Any]:
    """A ``poolscope.map`` run: what it tried, what it chose and why, where its items ran.
    Its batches differ in size, so the summary of equal trials (and a recommendation drawn
    from it) does not apply: each configuration's time per item does."""
    decision = result.options.get("map") or {}
    calibration = decision.get("calibration", {})
    table = _table(f"poolscope.map {result.target} · {result.n_items} items · "
                   f"{result.cores} cores")
    table.padding = (0, 1, 0, 0)
    for header in ("executor × workers", "batches", "items", "wall", "per item",
                   "calibration"):
        table.add_column(header, justify="left" if header.startswith("executor") else "right",
                         no_wrap=True)
    groups: dict[tuple[str, int], list[Any]] = {}
    for trial in result.trial_results:
        groups.setdefault((trial.executor, trial.workers), []).append(trial)
    chosen = (decision.get("executor"), decision.get("workers"))
    for (executor, workers), trials in groups.items():
        label = executor if executor == "serial" else f"{executor} ×{workers}"
        items = sum(len(t.items) for t in trials)
        wall = sum(t.wall_s for t in trials)
        samples = sorted(calibration.get(label, []))
        table.add_row(f"{executor} ×{workers}", str(len(trials)), f"{items:,}", duration(wall),
                      duration(wall / items) if items else "",
                      duration(samples[len(samples) // 2]) + f" ({len(samples)})"
                      if samples else "",
                      style="bold green" if (executor, workers) == chosen else None)
    yield table
    yield caption("calibration: the median, over its calibration batches (how many), of a "
                  "batch's wall ÷ its items — what the decision compared")
    if decision:
        yield Text.assemble(("decision: ", "bold"), (
            f"{decision['executor']} ×{decision['workers']}", "bold green"),
            f" ({decision['how']}): {decision['reason']}")
        yield Text(f"  {decision.get('calibration_items', 0):,} of {result.n_items:,} items "
                   "ran in calibration (their results kept)", style="dim")
    elif result.interrupted:
        yield Text("interrupted before a decision", style="yellow")
    options = _map_options(result.options)
    if options:
        yield Text(f"options: {options}", style="dim")
    item_errors = [e for e in result.errors if e["item"] is not None]
    if item_errors:
        e = item_errors[0]
        yield Text(f"{count(len(item_errors), 'item')} failed; first: item {e['item']} under "
                   f"{e['executor']}: {e['kind']}: {e['message']}", style="red")


def _map_options(options: dict[str, Any]) -> str:
    """A map run's options that are not the defaults, as one line."""
    said = []
    if options.get("max_workers"):
        said.append(f"max workers {options['max_workers']}")
    if options.get("star"):
        said.append("star")
    if options.get("chunksize"):
        said.append(f"chunksize {options['chunksize']}")
    if options.get("initializer"):
        said.append(f"initializer {options['initializer']}"
                    f"({', '.join(options.get('initargs') or [])})")
    if options.get("native_threads"):
        said.append(f"native threads {options['native_threads']}")
    return " · ".join(said)


def code_view(result: Result) -> Iterator[Any]:
    """The recommendation's code to paste, between two rules, never wrapped (it must run)."""
    rec = result.recommendation
    if rec is None or not rec.code:
        return
    yield Text("code to paste (save as a .py file and run it):", style="bold")
    yield Text("# " + "-" * 60, style="dim")
    yield Text(rec.code.rstrip("\n"), no_wrap=True, overflow="ignore")
    yield Text("# " + "-" * 60, style="dim")


def scaling_view(result: Result) -> Iterator[Any]:
    """A sweep's scaling table, Amdahl fits and growth with the item count."""
    scaling = result.scaling
    several_chunks = scaling.groupby(["executor", "workers"]).size().max() > 1
    table = _table("scaling")
    table.add_column("executor × workers", no_wrap=True)
    for header in (["chunks"] if several_chunks else []) + [
            "wall", "speedup", "ideal", "efficiency", "Karp–Flatt"]:
        table.add_column(header, justify="right", no_wrap=True)
    for row in scaling.itertuples(index=False):
        if row.executor == "serial":
            continue
        table.add_row(f"{row.executor} ×{row.workers}",
                      *([str(row.chunksize)] if several_chunks else []),
                      duration(row.wall_s), ratio(row.speedup), f"{row.ideal_speedup}×",
                      percent(row.efficiency), ratio(row.karp_flatt, ""))
    yield table
    yield caption("ideal: min(workers, cores) · Karp–Flatt: the serial fraction implied by each "
                  "speedup (rising with workers: overhead grows)")
    for name, fit in result.amdahl.items():
        if name == "serial" or math.isnan(fit.serial_fraction):
            continue
        r2 = "" if fit.r_squared is None or math.isnan(fit.r_squared) else \
            f", r² {fit.r_squared:.2f}"
        if not fit.explains:
            yield Text(f"Amdahl fit, {name}: no better than a flat line ({fit.points} points"
                       f"{r2}), so no limit can be read from it")
            continue
        limit = ("no limit" if math.isinf(fit.max_speedup)
                 else f"at most {fit.max_speedup:.1f}× on any number of cores")
        yield Text(f"Amdahl fit, {name}: serial fraction {fit.serial_fraction:.3f} → "
                   f"{limit} ({fit.points} points{r2})")
    for name, usl in result.usl.items():
        if name == "serial" or not usl.ok:
            continue
        peak = ("no peak" if math.isinf(usl.peak_workers)
                else f"peak at {usl.peak_workers:.0f} workers")
        r2 = "" if math.isnan(usl.r_squared) else f", r² {usl.r_squared:.2f}"
        yield Text(f"USL fit, {name}: contention σ {usl.sigma:.3f}, coherency κ "
                   f"{usl.kappa:.2g} → {peak} ({usl.points} points{r2})")
    for name, growth in result.growth.items():
        fixed = (f"{duration(growth.fixed_s)} fixed" if growth.fixed_s >= 0
                 else "a fixed cost below the noise")
        r2 = "" if math.isnan(growth.r_squared) else f" (r² {growth.r_squared:.2f}"
        r2 += f", {growth.points} item counts)" if r2 else ""
        yield Text(f"growth with items, {name}: {fixed} + {duration(growth.per_item_s)} per "
                   f"item{r2}")


def prediction_view(result: Result) -> Iterator[Any]:
    """The last ``result.predict`` as a table per core count, with the model's assumptions."""
    from ..analysis.predict import ASSUMPTIONS, describe_parts

    by_cores: dict[int, list[Any]] = {}
    for p in result.predictions:
        by_cores.setdefault(p.cores, []).append(p)
    for cores, rows in by_cores.items():
        table = _table(f"predicted on {cores} core{'s' * (cores != 1)} (measured on "
                       f"{result.cores})")
        table.add_column("executor × workers", no_wrap=True)
        for header in ("wall", "95% interval", "speedup"):
            table.add_column(header, justify="right", no_wrap=True)
        table.add_column("bottleneck", ratio=1)
        for p in rows:
            interval = ("" if math.isnan(p.wall_ci[0]) else
                        f"{duration(p.wall_ci[0])}–{duration(p.wall_ci[1])}")
            table.add_row(f"{p.executor} ×{p.workers}", duration(p.wall_s), interval,
                          ratio(p.speedup, "×"), p.bottleneck)
        yield table
    if result.predictions:
        yield Text("the model's parts, as measured:")
        for executor, parts in result.prediction_parts.items():
            yield bullet("·", describe_parts(executor, parts))
        yield caption("speedup: against serial's measured wall time; the interval: the nearest "
                      "measured configuration's, carried over; assumes " + ASSUMPTIONS)


def cost_table(result: Result) -> Table:
    """Where each configuration's median trial spent its wall time: parts that add up to it."""
    costs = result.costs
    moved = bool((costs["transfer_s"] > 0).any())
    table = _table("where the time went: the median trial's wall, in parts")
    table.add_column("executor", no_wrap=True)
    headers = ["wall", "pool", "dispatch", *(["pickle"] if moved else []), "compute", "wait",
               "idle", "other"]
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for row in costs.itertuples(index=False):
        table.add_row(
            f"{row.executor} ×{row.workers}", *map(_compact, (
                row.wall_s, row.startup_s + row.teardown_s, row.dispatch_s,
                *([row.transfer_s] if moved else []), row.compute_s, row.waiting_s,
                row.idle_s, row.unexplained_s)))
    return table


def _cost_caption(result: Result) -> str:
    moved = bool((result.costs["transfer_s"] > 0).any())
    return ("pool: start-up and teardown · dispatch: gaps between a worker's items, the last "
            "result's trip back" + (" · pickle: arguments and results, out of that hand-off"
                                    if moved else "")
            + " · compute: the items' own CPU in this configuration · wait: their time off the "
            "CPU (GIL, I/O) · idle: workers with nothing left to run · other: unexplained · "
            "worker times ÷ min(workers, items)")


def _compact(seconds: float) -> str:
    """A duration without the space ('12.3ms'); '0' for nothing."""
    return "0" if abs(seconds) < 5e-7 else duration(seconds).replace(" ", "")


def markdown_summary(result: Result) -> str:
    """The summary and recommendation as GitHub-flavoured Markdown, to paste into an issue."""
    rec = result.recommendation
    cores = result.cores
    lines = [f"**{_md(result.target)}** · {result.n_items:,} items · {cores} cores · "
             f"Python {result.environment.get('python', '?')}"
             + (f" · run `{result.run_id}`" if result.run_id else ""), "",
             "| executor × workers | wall | 95% CI | speedup | CPU | parallelism | busy | "
             "off-CPU | start-up | errors |",
             "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for row in result.summary.itertuples(index=False):
        best = rec is not None and (row.executor, row.workers) == (rec.executor, rec.workers)
        name = f"{row.executor} ×{row.workers}"
        interval = ("–" if math.isnan(row.wall_ci_lo) else
                    f"{duration(row.wall_ci_lo)} – {duration(row.wall_ci_hi)}")
        cells = [duration(row.wall_s), interval,
                 ratio(row.speedup), duration(row.cpu_s), ratio(row.parallelism, ""),
                 ratio(row.cpu_parallelism, ""), percent(row.offcpu_fraction),
                 duration(row.startup_s), str(row.errors)]
        first = f"**{_md(name)}**" if best else _md(name)
        lines.append("| " + " | ".join([first, *(_md(c) for c in cells)]) + " |")
    lines += ["", f"Workload: **{_md(result.classification)}**"
              + (f" ({_md('; '.join(result.classification_evidence))})"
                 if result.classification_evidence else "")]
    if rec is None:
        lines.append(f"No recommendation: {NO_CANDIDATE}.")
    else:
        chunk = f", chunksize {rec.chunksize}" if rec.chunksize else ""
        verdict = "inconclusive — " if rec.inconclusive else ""
        lines += ["", f"Recommendation: **{verdict}{_md(rec.executor)} with "
                      f"{count(rec.workers, 'worker')}{chunk}**", ""]
        lines += [f"- {_md(reason)}" for reason in rec.reasons]
        lines += [f"- {_md(c.sentence())}" for c in rec.comparisons]
        lines += [f"- ⚠ {_md(caveat)}" for caveat in rec.caveats]
    if rec is not None and rec.code:  # code to paste, fenced: never escaped
        lines += ["", "Code to paste:", "", "```python", *rec.code.rstrip("\n").splitlines(),
                  "```"]
    if result.warnings:
        lines += ["", *[f"> noisy: {_md(w)}" for w in result.warnings]]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Escape what would break a Markdown table cell or start emphasis by accident."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*") \
        .replace("_", "\\_")
