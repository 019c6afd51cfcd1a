"""The HTML report's size and the time it takes to render in headless Chromium.

Real runs of the built-in ``tiny`` workload (near-empty items, so the item count is what
matters) are written with ``Result.report`` and opened in Debian's chromium through Playwright,
as the browser tests do. Timed in the page: from navigation start (``performance.now()``) until
BokehJS reports the document idle, i.e. every chart drawn; the median of ``--loads`` loads, each
in a fresh page. Goals from issue 4: 10,000 items render in under 1 s, 1,000,000 in under 10 s.

Run: ``python benchmarks/bench_report.py`` (needs ``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bokeh.embed import file_html
from bokeh.plotting import figure
from bokeh.resources import INLINE

from _common import Check, console, machine_line, median, print_checks
from poolscope.api import run_workload
from poolscope.workloads import resolve_workload

IDLE = "() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle"


def render_seconds(browser, path: Path, loads: int) -> float:
    times = []
    for _ in range(loads):
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        page.goto(path.as_uri(), timeout=120_000)
        page.wait_for_function(IDLE, timeout=120_000, polling=20)
        times.append(page.evaluate("performance.now()") / 1000)
        page.close()
        if errors:
            raise SystemExit(f"{path.name}: page errors: {errors[:3]}")
    return median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=3, help="page loads per report")
    args = parser.parse_args()
    executable = shutil.which("chromium")
    if executable is None:
        console.print("needs Debian's chromium: apt-get install chromium")
        return 2
    from playwright.sync_api import sync_playwright

    cases = [  # name, items, executors, goal in seconds (None: for reference)
        ("10,000 items, one thread trial", 10_000, "thread", 1.0),
        ("10,000 items × 3 executors", 10_000, "serial,thread,process", None),
        ("100,000 items, one thread trial", 100_000, "thread", None),
        ("1,000,000 items, one thread trial", 1_000_000, "thread", 10.0),
    ]
    console.print(machine_line())
    checks = []
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        # The floor: BokehJS starting up and drawing one empty chart, whatever the report holds.
        floor = Path(folder) / "floor.html"
        empty = figure(width=400, height=200)
        empty.scatter([0], [0])
        floor.write_text(file_html(empty, resources=INLINE, title="x"), encoding="utf-8")
        checks.append(Check("render: a page with one one-point bokeh chart (the floor)",
                            f"{render_seconds(browser, floor, args.loads):.2f} s", "—", None))
        for name, count, executors, goal in cases:
            result = run_workload(resolve_workload("tiny", count), executors=executors,
                                  workers=[2], repeat=1, baseline=False, explore_io=False)
            path = Path(folder) / f"report-{count}.html"
            t0 = time.perf_counter()
            result.report(path)
            written = time.perf_counter() - t0
            megabytes = path.stat().st_size / 1e6
            seconds = render_seconds(browser, path, args.loads)
            checks.append(Check(f"render: {name}", f"{seconds:.2f} s",
                                f"< {goal:g} s" if goal else "—",
                                seconds < goal if goal else None))
            checks.append(Check(f"file size and write time: {name}",
                                f"{megabytes:.1f} MB, {written:.2f} s", "—", None))
        browser.close()
    return 0 if print_checks("HTML report", checks) else 1


if __name__ == "__main__":
    sys.exit(main())
