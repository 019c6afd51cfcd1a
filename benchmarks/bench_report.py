"""The HTML report's size and the time it takes to render in headless Chromium.

Real runs of the built-in ``tiny`` workload (near-empty items, so the item count is what
matters) are written with ``Result.report`` and opened in Debian's chromium through Playwright,
as the browser tests do, each load in a fresh page. Two times, from navigation start
(``performance.now()``), recorded in the page every 10 ms:

- first view: the first bokeh document (the timelines) is drawn and idle, i.e. interactive, and
  no chart that waits to be drawn later lies in the 1300 × 900 viewport;
- all charts: every chart of the page is drawn (``window.poolscopeDrawn`` and every document idle).

The median and range of ``--loads`` loads. Goals from issue 4: 10,000 items render in under 1 s
(the first view), 1,000,000 in under 10 s (all charts). ``--pages A.html B.html …`` times given
pages instead, their loads interleaved (A, B, A, B, …): the way to compare two versions.

Run: ``python benchmarks/bench_report.py`` (needs ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bokeh.embed import file_html
from bokeh.plotting import figure
from bokeh.resources import INLINE

from _common import Check, console, machine_line, median, print_checks
from poolscope.api import run_workload
from poolscope.workloads import resolve_workload

VIEWPORT = {"width": 1300, "height": 900}
# Records when the first view and when all charts are drawn (see the module's docstring).
RECORD = """(() => {
  const docs = () => window.Bokeh !== undefined ? Bokeh.documents : []
  const waiting = () => Array.from(document.querySelectorAll("script.ps-later"))
  const later_done = () => waiting().length === 0 || window.poolscopeDrawn === true
  const first = () => docs().length > 0 && docs()[0].is_idle && (later_done() ||
    waiting().every((script) => { const box = script.previousElementSibling.getBoundingClientRect()
                                  return box.top >= innerHeight || box.bottom <= 0 }))
  const all = () => docs().length > 0 && docs().every((doc) => doc.is_idle) && later_done()
  window.__bench = {}
  const poll = () => {
    const now = performance.now(), times = window.__bench
    if (times.first === undefined && first()) times.first = now
    if (times.all === undefined && all()) times.all = now
    if (times.all === undefined || times.first === undefined) setTimeout(poll, 10)
  }
  poll()
})()"""
DONE = "() => window.__bench?.first !== undefined && window.__bench?.all !== undefined"
CASES = [  # name, items, executors, goal in seconds for the first view, for all charts
    ("10,000 items, one thread trial", 10_000, "thread", 1.0, None),
    ("10,000 items × 3 executors", 10_000, "serial,thread,process", None, None),
    ("100,000 items, one thread trial", 100_000, "thread", None, None),
    ("1,000,000 items, one thread trial", 1_000_000, "thread", None, 10.0),
]


def floor_html() -> str:
    """The floor: BokehJS starting up and drawing one one-point chart, whatever a report holds."""
    empty = figure(width=400, height=200)
    empty.scatter([0], [0])
    return file_html(empty, resources=INLINE, title="x")


def write_report(count: int, executors: str, path: Path) -> float:
    """The report of a real run of ``tiny`` (one trial per executor), written to ``path``;
    seconds the writing took."""
    result = run_workload(resolve_workload("tiny", count), executors=executors, workers=[2],
                          repeat=1, baseline=False, explore_io=False)
    t0 = time.perf_counter()
    result.report(path)
    return time.perf_counter() - t0


def load_times(browser: Any, path: Path) -> tuple[float, float]:
    """One load in a fresh page: seconds until the first view and until all charts are drawn."""
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.add_init_script(RECORD)
    page.goto(path.as_uri(), timeout=120_000)
    page.wait_for_function(DONE, timeout=120_000, polling=50)
    times = page.evaluate("window.__bench")
    page.close()
    if errors:
        raise SystemExit(f"{path.name}: page errors: {errors[:3]}")
    return times["first"] / 1000, times["all"] / 1000


Times = dict[Path, list[tuple[float, float]]]  # per page: (first view, all charts) per load


def render_times(browser: Any, paths: list[Path], loads: int) -> Times:
    """``loads`` loads of each page, interleaved, after one unmeasured load of each."""
    times: Times = {path: [] for path in paths}
    for round_ in range(loads + 1):
        for path in paths:
            measured = load_times(browser, path)
            if round_:
                times[path].append(measured)
    return times


def spread(values: list[float]) -> str:
    return f"{median(values):.2f} s ({min(values):.2f}–{max(values):.2f})"


def launch(playwright: Any, browser: str | None = None) -> Any:
    executable = browser or shutil.which("chromium")
    if executable is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium), or --browser PATH")
    return playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])


def compare_pages(pages: list[Path], loads: int, browser: str | None) -> int:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright, browser)
        times = render_times(chromium, [page.resolve() for page in pages], loads)
        chromium.close()
    checks = []
    for path, measured in times.items():
        checks.append(Check(f"{path.name}: first view", spread([m[0] for m in measured]), "—",
                            None))
        checks.append(Check(f"{path.name}: all charts", spread([m[1] for m in measured]), "—",
                            None))
    return 0 if print_checks(f"HTML pages, {loads} interleaved loads each", checks) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5, help="page loads per report")
    parser.add_argument("--pages", type=Path, nargs="+", help="time these pages instead")
    parser.add_argument("--browser", metavar="PATH",
                        help="another Chromium build to time them in, e.g. chrome-headless-shell "
                             "(default: Debian's chromium)")
    args = parser.parse_args()
    if args.pages:
        return compare_pages(args.pages, args.loads, args.browser)
    from playwright.sync_api import sync_playwright

    console.print(machine_line())
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        floor = Path(folder) / "floor.html"
        floor.write_text(floor_html(), encoding="utf-8")
        written = {}
        for i, (_, count, executors, _, _) in enumerate(CASES):
            path = Path(folder) / f"report-{i}.html"
            written[path] = write_report(count, executors, path)
        chromium = launch(playwright, args.browser)
        console.print(f"browser: {chromium.version}")
        times = render_times(chromium, [floor, *written], args.loads)
        chromium.close()
        checks = [Check("render: a page with one one-point bokeh chart (the floor)",
                        spread([t[0] for t in times[floor]]), "—", None)]
        for (name, _, _, first_goal, all_goal), path in zip(CASES, written, strict=True):
            first = median([t[0] for t in times[path]])
            everything = median([t[1] for t in times[path]])
            checks.append(Check(f"first view: {name}", spread([t[0] for t in times[path]]),
                                f"< {first_goal:g} s" if first_goal else "—",
                                first < first_goal if first_goal else None))
            checks.append(Check(f"all charts: {name}", spread([t[1] for t in times[path]]),
                                f"< {all_goal:g} s" if all_goal else "—",
                                everything < all_goal if all_goal else None))
            checks.append(Check(f"file size and write time: {name}",
                                f"{path.stat().st_size / 1e6:.1f} MB, {written[path]:.2f} s",
                                "—", None))
    return 0 if print_checks("HTML report", checks) else 1


if __name__ == "__main__":
    sys.exit(main())
