"""The HTML report, opened in a real headless Chromium: lanes, glyphs, hover, drill-down."""

from __future__ import annotations

import html
import io
import json
import multiprocessing
import re

import numpy as np
import pytest

import poolscope
from browser import OpenReport, launch_browser
from conftest import run_cli
from poolscope import UsageError
from poolscope.model import ItemColumns, TrialResult
from poolscope.present._page import render_page
from poolscope.present.report import DETAIL_LIMIT, MAX_POINTS
from poolscope.result import Result


def spin(x: int) -> int:
    """About a millisecond of pure-Python work; item 7 fails in worker processes."""
    if x == 7 and multiprocessing.parent_process() is not None:
        raise ValueError("seven is not allowed")
    total = 0
    for i in range(20_000):
        total += i
    return total


@pytest.fixture(scope="module")
def browser():
    yield from launch_browser()


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    result = poolscope.compare(spin, range(40), executors=["serial", "thread", "process"],
                               workers=2, repeat=2)
    path = tmp_path_factory.mktemp("report") / "report.html"
    result.report(path)
    return result, path


@pytest.fixture
def page(browser, real):
    opened = OpenReport(browser, real[1])
    yield opened
    opened.close()


def test_the_file_is_self_contained(real):
    text = real[1].read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\ssrc=", text), "a script is loaded from elsewhere"
    assert not re.search(r"<link[^>]*\shref=", text), "a stylesheet is loaded from elsewhere"
    assert "Bokeh.embed" in text  # BokehJS itself is inline


def test_opens_without_console_errors_and_draws_one_lane_per_worker(page, real):
    result = real[0]
    assert page.errors == []
    bands = page.js("() => Bokeh.documents[0].get_model_by_name('timeline').tags")
    expected = {(t.executor, t.workers) for t in result.trial_results}
    assert {(b["executor"], b["workers"]) for b in bands} == expected
    for band in bands:
        assert band["lanes"] == band["workers"]
        counts = page.js("""(trial) => {
          const data = Bokeh.documents[0].get_model_by_name('items-' + trial).data_source.data
          return {bars: data.start.length, lanes: new Set(Array.from(data.lane)).size}
        }""", band["trial"])
        # One bar per item, every worker's lane used.
        assert counts == {"bars": 40, "lanes": band["workers"]}
        failed = page.js("(t) => Bokeh.documents[0].get_model_by_name('failed-' + t)"
                         "?.data_source.data.item.length ?? 0", band["trial"])
        assert failed == (1 if band["executor"] == "process" else 0)
    ticks = page.js("() => Bokeh.documents[0].get_model_by_name('timeline').left[0]"
                    ".ticker.ticks.length")
    assert ticks == sum(b["lanes"] for b in bands)


def test_hover_shows_the_items_details(page):
    bands = page.js("() => Bokeh.documents[0].get_model_by_name('timeline').tags")
    process = next(b for b in bands if b["executor"] == "process")
    point = page.hover_item(f"items-{process['trial']}", 12)
    text = page.tooltip_text()
    assert f"item:{point['item']}" in text.replace(" ", "")
    assert f"pid:{point['pid']}" in text.replace(" ", "")
    assert "process ×2" in text and "ms" in text


def test_the_summary_table_and_recommendation_are_there(page, real):
    result = real[0]
    rows = page.page.locator("table.summary tr")
    assert rows.count() == len(result.summary) + 1  # and the header
    best = page.page.locator("table.summary tr.best td").first.inner_text()
    rec = result.recommendation
    assert best == f"{rec.executor} ×{rec.workers}"
    assert page.page.get_by_text("Recommendation").count() >= 1
    assert page.page.locator("table.environment").count() == 1


def test_the_timelines_are_drawn_first_and_the_charts_below_after_them(browser, real):
    page = OpenReport(browser, real[1], drawn=False)
    try:
        page.page.wait_for_function("() => Bokeh.documents.length > 0 "
                                    "&& Bokeh.documents[0].is_idle", polling=20)
        first = page.js("""() => {
          const doc = Bokeh.documents[0]
          const timeline = doc.get_model_by_name('timeline')
          const concurrency = doc.get_model_by_name('concurrency')
          return {linked: timeline.x_range === concurrency.x_range,
                  scatter: doc.get_model_by_name('scatter') !== null}
        }""")
        # The timeline and the concurrency chart share one time axis, so one document.
        assert first == {"linked": True, "scatter": False}
        page.wait_drawn()  # the notebook's view follows, as its own document, without a scroll
        later = page.js("""() => {
          const scatter = __psModel('scatter'), view = __psView(scatter)
          view.el.scrollIntoView()
          const box = view.canvas_view.el.getBoundingClientRect()
          return {documents: Bokeh.documents.length, height: box.height, width: box.width,
                  points: scatter.renderers[0].data_source.data.x.length}
        }""")
        melted = real[0].melted()
        assert later["documents"] == 2
        assert later["points"] == sum(min(len(g), MAX_POINTS) for _, g in melted.groupby("type"))
        assert later["height"] > 50 and later["width"] > 500
        assert page.errors == []
    finally:
        page.close()


def test_a_screenshot_is_not_blank(page, tmp_path):
    from PIL import Image

    shot = Image.open(io.BytesIO(page.page.screenshot(full_page=True))).convert("RGB")
    pixels = np.asarray(shot).reshape(-1, 3)
    not_white = np.any(pixels < 235, axis=1).mean()
    colours = len(np.unique(pixels[:: max(1, len(pixels) // 200_000)], axis=0))
    assert not_white > 0.05, f"only {not_white:.1%} of the page is drawn"
    assert colours > 100


# --- a trial too big to draw bar by bar --------------------------------------------------------
def big_result(n: int, lanes: int = 4) -> Result:
    rng = np.random.default_rng(1)
    lane = np.arange(n) % lanes
    length = rng.uniform(50e-6, 150e-6, n)
    start = np.zeros(n)
    for k in range(lanes):
        mine = lane == k
        start[mine] = np.concatenate(([0.0], np.cumsum(length[mine])[:-1] + 1e-6 * np.arange(
            1, mine.sum())))
    start_ns = np.round(start * 1e9).astype(np.int64)
    end_ns = start_ns + np.round(length * 1e9).astype(np.int64)
    items = ItemColumns(
        item=np.arange(n, dtype=np.int64), start_ns=start_ns, end_ns=end_ns,
        cpu_ns=(end_ns - start_ns) // 2, core=(lane % 2).astype(np.int16),
        status=np.zeros(n, np.int8), pid=(100 + lane).astype(np.int32),
        tid=np.ones(n, np.int64))
    wall = float(end_ns.max()) / 1e9 + 0.001
    trial = TrialResult(index=0, executor="process", workers=lanes, chunksize=64, repeat=0,
                        wall_s=wall, cpu_s=wall, startup_s=0.0, teardown_s=0.0, peak_rss=0,
                        status="ok", host="test", items=items, errors=[])
    return Result(run_id="big", target="synthetic", n_items=n, trial_results=[trial],
                  environment={"cpu_count": 2})


def test_a_big_trial_is_merged_then_drills_down_to_items(browser, tmp_path):
    n = 60_000
    result = big_result(n)
    path = result.report(tmp_path / "big.html")
    page = OpenReport(browser, path)
    try:
        assert page.errors == []
        state = page.js("""() => {
          const doc = Bokeh.documents[0]
          const merged = doc.get_model_by_name('merged-0'), items = doc.get_model_by_name('items-0')
          return {merged: merged.data_source.data.start.length, merged_visible: merged.visible,
                  items_visible: items.visible, all: doc.get_model_by_name('all-items-0')
                  .data.start.length,
                  merged_items: Array.from(merged.data_source.data.items).reduce((a, b) => a + b)}
        }""")
        assert state["all"] == n and state["merged_items"] == n
        assert 0 < state["merged"] <= DETAIL_LIMIT
        assert state["merged_visible"] and not state["items_visible"]

        # Zoom into a window that holds a few hundred items: each becomes its own bar.
        frame = result.items
        x0, x1 = 0.010, 0.012
        page.js("([a, b]) => Bokeh.documents[0].get_model_by_name('timeline')"
                ".x_range.setv({start: a, end: b})", [x0, x1])
        page.page.wait_for_function(
            "() => Bokeh.documents[0].get_model_by_name('items-0').visible", timeout=10_000)
        shown = set(page.js("() => Array.from(Bokeh.documents[0].get_model_by_name('items-0')"
                            ".data_source.data.item)"))
        visible = frame[(frame["end_s"] > x0) & (frame["start_s"] < x1)]
        assert set(visible["item"].tolist()) <= shown
        assert len(shown) <= DETAIL_LIMIT
        point = page.hover_item("items-0", len(shown) // 2)  # one inside the window
        assert f"item:{point['item']}" in page.tooltip_text().replace(" ", "")

        # Zoom back out: the merged bars return.
        page.js("() => Bokeh.documents[0].get_model_by_name('timeline')"
                ".x_range.setv({start: 0, end: 10})")
        page.page.wait_for_function(
            "() => Bokeh.documents[0].get_model_by_name('merged-0').visible", timeout=10_000)
        assert page.errors == []
    finally:
        page.close()


def test_a_chart_drawn_later_brings_the_webgl_bundle_and_compression_is_restored():
    from bokeh.plotting import figure
    from bokeh.settings import settings

    first, later = figure(), figure(output_backend="webgl", title="</script> & <!--")
    for fig in (first, later):
        fig.scatter(np.arange(3), np.arange(3))
    level = settings.compression_level()
    page = render_page(["<p>text</p>", first, later], "t", items=10)
    assert page.count("BEGIN bokeh-gl.min.js") == 1 and page.count("class='ps-later'") == 1
    assert settings.compression_level() == level
    # The chart's JSON cannot end its script early, and reads back whole.
    data = page.split("class='ps-later'>")[1].split("</script>")[0]
    assert "</script> & <!--" in json.dumps(json.loads(data))


def test_a_bad_report_name_is_a_usage_error(real, tmp_path):
    with pytest.raises(UsageError, match=r"\.html"):
        real[0].report(tmp_path / "report.png")
    with pytest.raises(UsageError, match="does not exist"):
        real[0].report(tmp_path / "missing" / "report.html")


# --- through the CLI ---------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_report_and_stored_report_of_a_sweep(browser, tmp_path):
    done = run_cli("sweep", "cpu", "--size", "20000", "--items", "16", "-e", "thread,process",
                   "-w", "1,2", "--repeat", "1", "--report", "sweep.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "report written to sweep.html" in done.stdout
    page = OpenReport(browser, tmp_path / "sweep.html")
    try:
        assert page.errors == []
        # The scaling chart is below the timelines: drawn after them, seen on scrolling down.
        page.js("() => __psView(__psModel('scaling')).el.scrollIntoView()")
        points = page.js("""() => __psModel('scaling')
          .renderers.filter(r => r.glyph.type === 'Scatter')
          .map(r => r.data_source.data.x.length)""")
        assert points == [2, 2]  # thread and process, at 1 and 2 workers
    finally:
        page.close()

    again = run_cli("report", "latest", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    written = list(tmp_path.glob("poolscope-report-*.html"))
    assert len(written) == 1 and written[0].stat().st_size > 100_000

    bad = run_cli("report", "latest", "-o", "r.txt", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and ".html" in bad.stderr


def test_the_report_has_the_code_to_paste_and_the_cost_model(real):
    result, path = real
    text = path.read_text(encoding="utf-8")
    code = result.recommendation.code
    assert "<h2>Code to paste</h2>" in text
    assert "from test_report import spin" in code and "items = range(40)" in code
    assert html.escape(code).splitlines()[0] in text
    assert "<h2>Where the time went</h2>" in text
    for name in ("start-up", "dispatch", "compute", "waiting", "idle", "unexplained"):
        assert f">{name}</th>" in text  # each column, with its meaning in a title and a list
    assert text.count("<table class='costs'>") == 1
    assert len(re.findall(r"<table class='costs'>.*?</table>", text, re.S)[0].split("<tr>")) \
        == 1 + 1 + len(result.costs)
