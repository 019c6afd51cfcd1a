"""The static picture: the notebook's scatter beside a per-worker timeline and its concurrency.

From a real run, and from synthetic trials whose concurrency is known exactly.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import seaborn as sns
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from poolscope import UsageError
from poolscope.analysis.scaling import fit_amdahl_per_executor, scaling_table
from poolscope.api import run_workload
from poolscope.frames import concurrency, representative_trials
from poolscope.model import ItemColumns, TrialResult
from poolscope.present.plots import CONCURRENCY_BINS, MAX_BARS, MAX_STEPS, plot_run
from poolscope.present.scaling_plot import plot_scaling
from poolscope.result import Result
from poolscope.workloads import resolve_workload

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result():
    workload = resolve_workload("cpu", 8, size=100_000)
    return run_workload(workload, executors="serial,thread", workers=2, repeat=1)


def grid_rows(fig: Figure) -> dict[int, list]:
    """The figure's subplots per trial: [scatter, timeline, concurrency strip].

    Each trial has two grid rows (the timeline, then its strip); the scatter spans both. The
    colorbar has no subplot spec.
    """
    rows: dict[int, list] = {}
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is not None:
            rows.setdefault(spec.rowspan.start // 2, []).append(ax)
    return rows


def bars_drawn(ax, gid: str = "items") -> int:
    return sum(len(c.get_paths()) for c in ax.collections if c.get_gid() == gid)


def steps(ax, gid: str):
    """The (values, edges) of the one step artist with ``gid`` on ``ax``."""
    (patch,) = [p for p in ax.patches if p.get_gid() == gid]
    data = patch.get_data()
    return np.asarray(data.values), np.asarray(data.edges)


def reference_marks(ax) -> dict[float, str]:
    """The count marks on a strip's right edge: level -> label."""
    (side,) = [child for child in ax.child_axes if child.get_gid() == "reference"]
    return {float(level): label.get_text()
            for level, label in zip(side.get_yticks(), side.get_yticklabels(), strict=True)}


# --- synthetic trials: start, end and CPU of every item chosen, so concurrency is known -------
def synthetic_trial(index: int, executor: str, lanes: list[list[tuple[float, float, float]]],
                    *, threads: bool = False, failed: tuple[int, ...] = ()) -> TrialResult:
    """A trial whose worker ``lane`` ran the items ``lanes[lane]``: (start_s, end_s, cpu_s)."""
    rows = [(lane, *item) for lane, items in enumerate(lanes) for item in items]
    n = len(rows)
    lane = np.array([r[0] for r in rows], np.int64)

    def ns(k: int) -> np.ndarray:
        return np.round(np.array([r[k] for r in rows]) * 1e9).astype(np.int64)

    status = np.zeros(n, np.int8)
    status[list(failed)] = 1
    items = ItemColumns(
        item=np.arange(n, dtype=np.int64), start_ns=ns(1), end_ns=ns(2), cpu_ns=ns(3),
        core=(lane % 2).astype(np.int16), status=status,
        pid=np.full(n, 100, np.int32) if threads else (100 + lane).astype(np.int32),
        tid=(200 + lane) if threads else np.ones(n, np.int64))
    end = max(r[2] for r in rows)
    return TrialResult(
        index=index, executor=executor, workers=len(lanes), chunksize=1, repeat=0,
        wall_s=end + 0.01, cpu_s=sum(r[3] for r in rows), startup_s=0.0, teardown_s=0.0,
        peak_rss=0, status="partial" if failed else "ok", host="test", items=items,
        errors=[{"item": i, "kind": "ValueError", "message": "boom"} for i in failed])


def synthetic_result(*trials: TrialResult, cores: int = 2) -> Result:
    return Result(run_id="synthetic", target="synthetic", n_items=len(trials[0].items),
                  trial_results=list(trials), environment={"cpu_count": cores})


def back_to_back(count: int, length: float, cpu_share: float, offset: float = 0.0):
    return [(offset + i * length, offset + (i + 1) * length, length * cpu_share)
            for i in range(count)]


@pytest.fixture(scope="module")
def known():
    """serial: 1 at once; processes: 2 lanes fully overlapped, computing all the time;
    threads under the GIL: 2 in progress, each computing half the time (1 at once); io: 4
    threads waiting, none computing."""
    return synthetic_result(
        synthetic_trial(0, "serial", [back_to_back(8, 0.1, 1.0)]),
        synthetic_trial(1, "process", [back_to_back(4, 0.1, 1.0, 0.05)] * 2),
        synthetic_trial(2, "thread", [back_to_back(4, 0.2, 0.5)] * 2, threads=True,
                        failed=(1, 5)),
        synthetic_trial(3, "asyncio", [back_to_back(2, 0.2, 0.0)] * 4, threads=True),
    )


def test_saves_png_and_svg(result, tmp_path: Path):
    png, svg = tmp_path / "run.png", tmp_path / "run.svg"
    assert isinstance(plot_run(result, png), Figure)
    plot_run(result, svg)
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.stat().st_size > 10_000
    assert svg.stat().st_size > 10_000
    assert "<svg" in svg.read_text(encoding="utf-8")[:2000]


def test_one_row_per_executor_with_a_scatter_and_a_timeline(result):
    fig = plot_run(result)
    trials = representative_trials(result.trial_results)
    assert {t.executor for t in trials} == {"serial", "thread"}
    rows = grid_rows(fig)
    assert sorted(rows) == list(range(len(trials)))
    assert all(len(axes) == 3 for axes in rows.values())
    assert fig.canvas.manager is None  # built without pyplot: no global figure left open


def test_every_item_is_one_bar(result):
    fig = plot_run(result)
    trials = representative_trials(result.trial_results)
    for row, trial in enumerate(trials):
        scatter, timeline, strip = grid_rows(fig)[row]
        assert bars_drawn(scatter) == bars_drawn(strip) == 0
        assert bars_drawn(timeline) == len(trial.items) == 8
        assert trial.executor in scatter.get_title(loc="left")


def test_shares_one_time_axis(result):
    fig = plot_run(result)
    axes = [ax for row in grid_rows(fig).values() for ax in row]
    assert len({ax.get_xlim() for ax in axes}) == 1
    assert max(t.wall_s for t in result.trial_results) <= axes[0].get_xlim()[1]


def test_many_items_are_merged_under_the_cap(tmp_path: Path):
    many = run_workload(resolve_workload("tiny", MAX_BARS + 10_000), executors="serial", repeat=1)
    fig = plot_run(many, tmp_path / "many.png")
    ((_scatter, timeline, strip),) = grid_rows(fig).values()
    assert 0 < bars_drawn(timeline) <= MAX_BARS
    assert "merged" in timeline.get_title(loc="right")
    assert len(steps(strip, "concurrency")[0]) == CONCURRENCY_BINS  # binned, too


@pytest.mark.parametrize("name", ["run.jpg", "run", "run.png.txt"])
def test_a_bad_extension_is_a_usage_error(result, tmp_path: Path, name: str):
    with pytest.raises(UsageError, match="png"):
        plot_run(result, tmp_path / name)
    assert not (tmp_path / name).exists()


def test_a_missing_directory_is_a_usage_error(result, tmp_path: Path):
    with pytest.raises(UsageError, match="does not exist"):
        plot_run(result, tmp_path / "nowhere" / "run.png")


# --- concurrency over time ---------------------------------------------------------------------
def test_every_row_has_a_concurrency_strip_under_its_timeline(known):
    fig = plot_run(known)
    for scatter, timeline, strip in grid_rows(fig).values():
        assert {p.get_gid() for p in strip.patches} >= {"concurrency", "computing"}
        for ax in (scatter, timeline):
            assert not [p for p in ax.patches if p.get_gid() in ("concurrency", "computing")]
        # Under its timeline, on the same time axis, with labelled axes.
        assert strip.get_position().y1 <= timeline.get_position().y0
        assert strip.get_xlim() == timeline.get_xlim()
        assert strip.get_ylabel().replace("\n", " ") == "Items at once"
    assert grid_rows(fig)[3][2].get_xlabel() == "Time since trial start [s]"


def test_concurrency_levels_match_the_known_ones(known):
    fig = plot_run(known)
    expected = {  # executor: (most items in progress, most items computing)
        "serial": (1, 1), "process": (2, 2), "thread": (2, 1), "asyncio": (4, 0)}
    for row, trial in enumerate(representative_trials(known.trial_results)):
        strip = grid_rows(fig)[row][2]
        in_progress, edges = steps(strip, "concurrency")
        computing, computing_edges = steps(strip, "computing")
        most, computing_most = expected[trial.executor]
        assert in_progress.max() == pytest.approx(most), trial.executor
        assert computing.max() == pytest.approx(computing_most, abs=1e-6), trial.executor
        assert np.array_equal(edges, computing_edges)
        assert (computing <= in_progress + 1e-9).all()
        # From the first item's start to the last item's end, exactly.
        starts, ends = trial.items.start_ns / 1e9, trial.items.end_ns / 1e9
        assert edges[0] == pytest.approx(starts.min()) and edges[-1] == pytest.approx(ends.max())


def test_threads_under_the_gil_show_a_gap_between_in_progress_and_computing(known):
    fig = plot_run(known)
    strip = grid_rows(fig)[2][2]
    in_progress, edges = steps(strip, "concurrency")
    computing, _ = steps(strip, "computing")
    widths = np.diff(edges)
    # Time-weighted: 2 items in progress and 1 computing over the whole trial.
    assert np.sum(in_progress * widths) / widths.sum() == pytest.approx(2.0)
    assert np.sum(computing * widths) / widths.sum() == pytest.approx(1.0)


def test_core_and_worker_counts_are_marks_off_the_lines(known):
    fig = plot_run(known)
    for row, trial in enumerate(representative_trials(known.trial_results)):
        strip = grid_rows(fig)[row][2]
        marks = reference_marks(strip)
        # A worker mark only where it says something the core mark does not.
        expected = {2.0: "2 cores"}
        if trial.workers != 2:
            expected[float(trial.workers)] = (f"{trial.workers} worker"
                                              + "s" * (trial.workers != 1))
        assert marks == expected
        # Marks, not lines across the strip, where they would sit on the in-progress line.
        assert not [line for line in strip.lines if line.get_gid() in ("cores", "workers")]
        # Each row's scale reaches its worker count, so 4 waiting threads are not cut off.
        assert strip.get_ylim()[1] > max(trial.workers, 2)


def test_both_panels_read_one_time_origin_and_name_workers_alike(known):
    fig = plot_run(known)
    for row, trial in enumerate(representative_trials(known.trial_results)):
        scatter, timeline, _ = grid_rows(fig)[row]
        assert scatter.get_ylabel() == timeline.get_ylabel() == "Worker"
        assert ([t.get_text() for t in scatter.get_yticklabels()]
                == [t.get_text() for t in timeline.get_yticklabels()])
        # The notebook's points are finish times on the timeline's clock (since trial start).
        xs = np.sort(np.concatenate([c.get_offsets()[:, 0] for c in scatter.collections]))
        ends = np.sort(trial.items.end_ns / 1e9)
        assert list(xs) == pytest.approx(list(ends))
    assert grid_rows(fig)[3][0].get_xlabel() == grid_rows(fig)[3][2].get_xlabel()


def test_failed_items_are_red_over_a_white_halo(known):
    fig = plot_run(known)
    timeline = grid_rows(fig)[2][1]
    assert bars_drawn(timeline, "failed") == bars_drawn(timeline, "failed-halo") == 2
    gids = [c.get_gid() for c in timeline.collections]
    for lane in range(2):  # per lane: the halo first, the red hatching drawn over it
        halo, red = [c for c in timeline.collections if c.get_gid() in ("failed", "failed-halo")
                     ][2 * lane:2 * lane + 2]
        assert (halo.get_gid(), red.get_gid()) == ("failed-halo", "failed")
        assert tuple(halo.get_edgecolor()[0][:3]) == (1.0, 1.0, 1.0)
        assert red.get_edgecolor()[0][0] > 0.8 > red.get_edgecolor()[0][1]  # red
        assert halo.get_hatch() == red.get_hatch() == "////"
    assert gids.count("failed") == 2


def test_a_big_trial_is_binned_with_the_same_mean(tmp_path: Path):
    # 2 × 3,000 items of 1 ms with 0.1 ms gaps: 6,000 steps, more than MAX_STEPS.
    lane = [(i * 1.1e-3, i * 1.1e-3 + 1e-3, 0.5e-3) for i in range(3_000)]
    trial = synthetic_trial(0, "thread", [lane, lane], threads=True)
    fig = plot_run(synthetic_result(trial), tmp_path / "big.png")
    ((_scatter, timeline, strip),) = grid_rows(fig).values()
    in_progress, edges = steps(strip, "concurrency")
    computing, _ = steps(strip, "computing")
    assert len(concurrency(trial.items.start_ns, trial.items.end_ns)[0]) > MAX_STEPS
    assert len(in_progress) == len(computing) == CONCURRENCY_BINS
    assert "binned" in timeline.get_title(loc="right")
    # The time-weighted means are exact: Σ item wall and Σ item CPU over the bins' span.
    widths = np.diff(edges)
    assert np.sum(in_progress * widths) == pytest.approx(2 * 3_000 * 1e-3)
    assert np.sum(computing * widths) == pytest.approx(2 * 3_000 * 0.5e-3)
    assert in_progress.max() <= 2.0 + 1e-9


def test_svg_is_valid_xml_with_the_labels(known, tmp_path: Path):
    svg = tmp_path / "run.svg"
    plot_run(known, svg)
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    root = ET.fromstring(svg.read_text(encoding="utf-8"), parser=parser)
    assert root.tag.endswith("svg")
    # Matplotlib draws text as paths, each preceded by a comment holding the text.
    texts = {(e.text or "").strip() for e in root.iter() if e.tag is ET.Comment}
    for label in ("Time since trial start [s]", "Worker", "Items", "at once",
                  "CPU / wall per item", "in progress", "computing (Σ CPU / wall)",
                  "waiting (GIL, I/O)", "2 cores", "4 workers", "1 worker"):
        assert label in texts, label
    ids = [e.get("id") for e in root.iter()]
    assert ids.count("concurrency") == ids.count("computing") == 4  # one per row


# --- the scaling picture (sweep --plot) --------------------------------------------------------
def scaling_fixture(cores: int = 4):
    """process obeys Amdahl with f = 0.1; every thread count is slower than serial."""
    rows = [{"executor": "serial", "workers": 1, "wall_s": 2.0, "speedup": 1.0,
             "efficiency": 1.0}]
    for p, noise in zip((1, 2, 4, 8), (0.8, 0.6, 0.75, 0.5), strict=True):
        s = 1 / (0.1 + 0.9 / min(p, cores))
        rows.append({"executor": "process", "workers": p, "wall_s": 2.0 / s, "speedup": s,
                     "efficiency": s / min(p, cores)})
        rows.append({"executor": "thread", "workers": p, "wall_s": 2.0 / noise,
                     "speedup": noise, "efficiency": noise / min(p, cores)})
    table = scaling_table(pd.DataFrame(rows), cores=cores)
    return table, fit_amdahl_per_executor(table, cores=cores)


def test_scaling_axes_have_units_and_colour_blind_safe_colours(tmp_path: Path):
    table, fits = scaling_fixture()
    fig = plot_scaling(table, fits, cores=4, path=tmp_path / "scaling.svg")
    speedup_ax, efficiency_ax = fig.axes[:2]
    assert speedup_ax.get_ylabel().endswith("[×]")
    assert efficiency_ax.get_ylabel().endswith("[%]")
    assert all(ax.get_xlabel().startswith("Workers") for ax in (speedup_ax, efficiency_ax))
    safe = {tuple(np.round(c, 3)) for c in sns.color_palette("colorblind")}
    series = [line for line in speedup_ax.lines if line.get_marker() not in (None, "None", "")]
    assert len(series) == 2
    assert {tuple(np.round(to_rgb(line.get_color()), 3)) for line in series} <= safe
    assert len({line.get_marker() for line in series}) == 2  # told apart without colour, too
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    root = ET.fromstring((tmp_path / "scaling.svg").read_text(encoding="utf-8"), parser=parser)
    texts = {(e.text or "").strip() for e in root.iter() if e.tag is ET.Comment}
    assert "Speedup over serial [×]" in texts


def test_a_fit_worse_than_a_flat_line_is_named_and_not_drawn():
    table, fits = scaling_fixture()
    assert fits["process"].r_squared > 0.99 and fits["thread"].r_squared < 0
    fig = plot_scaling(table, fits, cores=4)
    speedup_ax = fig.axes[0]
    dashed = [line for line in speedup_ax.lines if line.get_linestyle() == "--"]
    colours = {tuple(to_rgb(line.get_color())) for line in dashed}
    assert len(dashed) == 1  # the process fit only
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(label.startswith("thread — Amdahl fit no better than a flat line (r² −")
               for label in labels)
    assert any(label.startswith("process — serial fraction 0.100") for label in labels)
    process = [line for line in speedup_ax.lines if line.get_marker() == "o"]
    assert colours == {tuple(to_rgb(process[0].get_color()))}


def test_the_terminal_names_a_fit_worse_than_a_flat_line_and_reads_no_limit_from_it():
    from types import SimpleNamespace

    from rich.console import Console

    from poolscope.present.terminal import scaling_view

    table, fits = scaling_fixture()
    assert fits["process"].explains and not fits["thread"].explains
    console = Console(width=200, record=True, file=io.StringIO())
    for part in scaling_view(SimpleNamespace(scaling=table, amdahl=fits, usl={}, growth={})):
        console.print(part)
    text = console.export_text()
    assert "Amdahl fit, process: serial fraction 0.100 → at most 10.0× on any number" in text
    thread = next(line for line in text.splitlines() if line.startswith("Amdahl fit, thread"))
    assert "no better than a flat line" in thread and "r² -" in thread
    assert "serial fraction" not in thread and "at most" not in thread
