"""The static picture: the notebook's scatter beside a per-worker timeline, from a real run."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from poolscope import UsageError
from poolscope.api import run_workload
from poolscope.frames import representative_trials
from poolscope.present.plots import MAX_BARS, plot_run
from poolscope.workloads import resolve_workload

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result():
    workload = resolve_workload("cpu", 8, size=100_000)
    return run_workload(workload, executors="serial,thread", workers=2, repeat=1)


def grid_rows(fig: Figure) -> dict[int, list]:
    """The figure's subplots by grid row (the colorbar has no subplot spec)."""
    rows: dict[int, list] = {}
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is not None:
            rows.setdefault(spec.rowspan.start, []).append(ax)
    return rows


def bars_drawn(ax) -> int:
    return sum(len(c.get_paths()) for c in ax.collections if c.get_gid() == "items")


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
    assert all(len(axes) == 2 for axes in rows.values())
    assert fig.canvas.manager is None  # built without pyplot: no global figure left open


def test_every_item_is_one_bar(result):
    fig = plot_run(result)
    trials = representative_trials(result.trial_results)
    for row, trial in enumerate(trials):
        scatter, timeline = grid_rows(fig)[row]
        assert bars_drawn(scatter) == 0
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
    ((_scatter, timeline),) = grid_rows(fig).values()
    assert 0 < bars_drawn(timeline) <= MAX_BARS
    assert "merged" in timeline.get_title(loc="right")


@pytest.mark.parametrize("name", ["run.jpg", "run", "run.png.txt"])
def test_a_bad_extension_is_a_usage_error(result, tmp_path: Path, name: str):
    with pytest.raises(UsageError, match="png"):
        plot_run(result, tmp_path / name)
    assert not (tmp_path / name).exists()


def test_a_missing_directory_is_a_usage_error(result, tmp_path: Path):
    with pytest.raises(UsageError, match="does not exist"):
        plot_run(result, tmp_path / "nowhere" / "run.png")
