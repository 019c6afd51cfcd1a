"""The report's layout in a real headless Chromium at 900 and 1400 px: nothing scrolls sideways,
no toolbar is cut off, one time origin and one name for workers, a sweep's scaling chart first
with its intervals, its other configurations one choice away, the environment in words.

Screenshots of every page and width are written to ``$POOLSCOPE_SCREENSHOTS`` when it is set
(to look at them), else to the test's temporary directory.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

import poolscope
from browser import OpenReport, launch_browser
from poolscope.frames import representative_trials
from poolscope.present.environment_text import environment_rows
from poolscope.present.report import FEATURED, featured_trials

WIDTHS = (900, 1400)
TIME_AXIS = "Time since trial start [s]"


def wait(x: int) -> int:
    """Five milliseconds of waiting: threads scale past the cores, so a sweep spreads out."""
    time.sleep(0.005)
    return x


def spin(x: int) -> int:
    total = 0
    for i in range(20_000):
        total += i
    return total + x


@pytest.fixture(scope="module")
def browser():
    yield from launch_browser()


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """A run of three configurations and a sweep of nine, as reports."""
    folder = tmp_path_factory.mktemp("layout")
    run = poolscope.compare(spin, range(24), executors=["serial", "thread", "process"],
                            workers=2, repeat=2)
    sweep = poolscope.sweep(wait, range(16), executors=["thread", "process"],
                            workers=[1, 2, 4, 8], repeat=3)
    run.report(folder / "run.html")
    sweep.predict(cores=[4, 16])  # the report's prediction section is laid out too
    sweep.report(folder / "sweep.html")
    return {"run": (run, folder / "run.html"), "sweep": (sweep, folder / "sweep.html")}


def shots_folder(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("POOLSCOPE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


VISIBLE_OVERFLOW = """() => {
  let folded = 0
  const walk = (root) => { for (const el of root.querySelectorAll('*')) {
    if (el.shadowRoot) walk(el.shadowRoot)
    if (el.classList && el.classList.contains('bk-tool-overflow') && el.offsetWidth > 0) folded++
  } }
  walk(document)
  return folded
}"""


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", ["run", "sweep"])
def test_nothing_scrolls_sideways_and_no_toolbar_is_cut_off(browser, reports, name, width,
                                                            tmp_path):
    from PIL import Image

    page = OpenReport(browser, reports[name][1], width=width)
    try:
        assert page.errors == []
        widths = page.js("""() => ({page: document.documentElement.scrollWidth,
          view: document.documentElement.clientWidth,
          widest: Math.max(...Array.from(document.querySelectorAll('main.ps > *'))
                           .map((el) => el.getBoundingClientRect().right))})""")
        assert widths["page"] <= widths["view"], widths
        assert widths["widest"] <= widths["view"] + 1, widths
        # A tool folded into bokeh's "⋮" menu is a toolbar cut off.
        assert page.js(VISIBLE_OVERFLOW) == 0
        shot = page.page.screenshot(full_page=True)
        (shots_folder(tmp_path) / f"report-{name}-{width}.png").write_bytes(shot)
        pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).reshape(-1, 3)
        assert len(np.unique(pixels[:: max(1, len(pixels) // 200_000)], axis=0)) > 50
    finally:
        page.close()


def test_one_time_origin_and_workers_named_alike_on_every_chart(browser, reports):
    result, path = reports["run"]
    page = OpenReport(browser, path)
    try:
        axes = page.js("""() => ['timeline', 'concurrency', 'scatter'].map((name) => {
          const fig = __psModel(name), labels = fig.left[0].major_label_overrides
          return {x: fig.below[0].axis_label, y: fig.left[0].axis_label,
                  labels: labels instanceof Map ? Array.from(labels.values())
                                                : Object.values(labels)}
        })""")
        assert [a["x"] for a in axes] == [TIME_AXIS] * 3
        timeline, _, scatter = axes
        assert timeline["y"] == scatter["y"] == "Worker"
        # The notebook's view names each worker as its timeline lane: "thread ×2 · 0 · tid …".
        lanes = {label for label in timeline["labels"]}
        for label in scatter["labels"]:
            assert label.split(" · ", 1)[1] in lanes, label
            assert "job" not in label
        # Its points are the items' finish times since the trial's start, as on the timeline.
        ends = page.js("() => Array.from(__psModel('scatter').renderers[0].data_source.data.x)")
        expected = [x for t in representative_trials(result.trial_results)
                    for x in (t.items.end_ns / 1e9).tolist()]
        assert sorted(ends) == pytest.approx(sorted(expected))
    finally:
        page.close()


def test_concurrency_is_a_band_per_configuration_with_the_counts_marked_off_the_lines(
        browser, reports):
    result, path = reports["run"]
    page = OpenReport(browser, path)
    try:
        bands = page.js("""() => __psModel('concurrency').renderers
          .filter((r) => r.name.startsWith('concurrency-'))
          .map((r) => ({name: r.name, base: r.tags[0], top: r.tags[1],
                        low: Math.min(...r.data_source.data.y),
                        high: Math.max(...r.data_source.data.y)}))""")
        trials = representative_trials(result.trial_results)
        assert len(bands) == len(trials)
        ordered = sorted(bands, key=lambda b: b["base"])
        for lower, upper in itertools.pairwise(ordered):
            # Each band's line stays inside its band: bands do not overlap.
            assert lower["high"] < upper["base"] <= upper["low"] + 1e-9
        marks = page.js("""() => {
          const axis = __psModel('concurrency').right.find((a) => a.name === 'reference-marks')
          const labels = axis.major_label_overrides
          return labels instanceof Map ? Array.from(labels.values()) : Object.values(labels)}""")
        cores = result.cores
        assert marks.count(f"{cores} cores") == len(trials)
        assert f"{cores} cores" not in page.js(
            "() => __psModel('concurrency').center.map((m) => m.text ?? '').join(' ')")
    finally:
        page.close()


def test_a_sweep_shows_its_scaling_chart_first_with_intervals_and_a_legend_beside_it(
        browser, reports):
    path = reports["sweep"][1]
    page = OpenReport(browser, path, drawn=False)
    try:
        page.page.wait_for_function("() => Bokeh.documents.length > 0 "
                                    "&& Bokeh.documents[0].is_idle", polling=20)
        first = page.js("() => Bokeh.documents[0].roots().map((r) => r.name)")
        assert first == ["scaling"]
        page.wait_drawn()
        chart = page.js("""() => {
          const fig = Bokeh.documents[0].roots()[0]
          const kind = (m) => m.constructor.__name__
          return {whiskers: fig.center.filter((m) => kind(m) === 'Whisker').map((m) => m.name),
                  legend_right: fig.right.some((m) => kind(m) === 'Legend'),
                  legend_inside: fig.center.some((m) => kind(m) === 'Legend')}
        }""")
        assert sorted(chart["whiskers"]) == ["interval-process", "interval-thread"]
        assert chart["legend_right"] and not chart["legend_inside"]
        text = page.page.inner_text("main")
        assert text.index("Scaling") < text.index("Summary") < text.index("Timelines")
    finally:
        page.close()


def test_a_sweep_shows_a_few_timelines_and_draws_any_other_when_chosen(browser, reports):
    result, path = reports["sweep"]
    trials = representative_trials(result.trial_results)
    shown, others = featured_trials(result, trials)
    assert len(trials) == 9 and others
    assert len(shown) < len(trials) and len(shown) <= FEATURED + 2
    rec = result.recommendation
    assert rec is not None
    assert (rec.executor, rec.workers) in {(t.executor, t.workers) for t in shown}
    assert "serial" in {t.executor for t in shown}
    page = OpenReport(browser, path)
    try:
        bands = page.js("() => __psModel('timeline').tags")
        assert [(b["executor"], b["workers"]) for b in bands] == [
            (t.executor, t.workers) for t in shown]
        options = page.page.locator("select.ps-choice option")
        names = [options.nth(i).inner_text() for i in range(options.count())][1:]
        assert names == [f"{t.executor} ×{t.workers}" for t in others]
        before = page.js("() => Bokeh.documents.length")
        pick = others[-1]
        page.page.select_option("select.ps-choice", label=f"{pick.executor} ×{pick.workers}")
        page.page.wait_for_function(f"() => Bokeh.documents.length === {before + 1} && "
                                    "Bokeh.documents.every((d) => d.is_idle)", timeout=30_000)
        drawn = page.js("""() => {
          const doc = Bokeh.documents[Bokeh.documents.length - 1]
          const timeline = doc.get_model_by_name('timeline')
          const view = __psView(timeline)
          return {tags: timeline.tags, width: view.el.getBoundingClientRect().width}
        }""")
        assert [(b["executor"], b["workers"], b["lanes"]) for b in drawn["tags"]] == [
            (pick.executor, pick.workers, pick.workers)]
        assert drawn["width"] > 500  # drawn in a visible box, not at zero width
        assert page.js(VISIBLE_OVERFLOW) == 0
        assert page.errors == []
    finally:
        page.close()


def test_many_comparisons_fold_under_one_line(reports):
    result, path = reports["sweep"]
    text = path.read_text(encoding="utf-8")
    count = len(result.recommendation.comparisons)
    assert count > 6
    assert f"<summary>Evidence: {count} comparisons" in text


def test_the_environment_reads_as_words_not_python(reports):
    result, path = reports["run"]
    rows = dict(environment_rows(result.environment, result.options))
    assert re.fullmatch(r"\d+(\.\d)? GiB", rows["memory"])
    assert re.fullmatch(r"\d+\.\d\d, \d+\.\d\d, \d+\.\d\d", rows["load average (1, 5, 15 min)"])
    assert rows["option executors"] == "serial, thread, process"
    assert rows["option timeout"] == "–"
    assert re.fullmatch(r"1 item in \w[\w ]*, passed in [\d.]+ \w?s", rows["option preflight"])
    assert "capped" in rows["native thread pools"]
    for name, value in rows.items():
        assert not re.search(r"[\[\]{}]|\bNone\b|\bTrue\b|\bFalse\b", value), (name, value)
    text = path.read_text(encoding="utf-8")
    assert "<td>memory</td>" in text and "memory_bytes" not in text


def test_a_prediction_is_drawn_with_its_bands_and_the_measured_points(browser, reports):
    result, path = reports["sweep"]
    page = OpenReport(browser, path)
    try:
        names = page.js("""() => __psModel('prediction').renderers.map((r) => r.name)""")
        for executor in ("thread", "process"):
            assert f"measured-{executor}" in names
            for cores in (4, 16):
                assert f"predicted-{executor}-{cores}" in names
                assert f"band-{executor}-{cores}" in names
        rows = page.page.locator("table.prediction tr")
        assert rows.count() == 1 + len(result.predictions)
        assert page.errors == []
    finally:
        page.close()
