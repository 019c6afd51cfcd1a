"""The HTML report's render time in a bare Chromium: no Playwright, nothing but the binary.

For a machine that has no Debian chromium and no Playwright (the lent 16-core machine has
neither, and nothing can be installed there): ``write DIR`` (here) writes bench_report.py's
pages, the floor and its reports of up to 100,000 items (report-0 … report-2), each with its
RECORD script in its head, which logs ``PSBENCH first all`` (ms from navigation start) to the
console once drawn. ``time CHROME LIBS LOADS PAGE…`` (there; standard library only) opens each
page in a fresh headless browser, reads the log line from its stderr, and prints the median and
range of LOADS loads, interleaved after one unmeasured load of each. LIBS holds the browser's
own libraries (``lib/``) and fonts (``fonts.conf``).

Used with Chromium's headless shell from npm's ``@sparticuz/chromium`` (a self-contained build:
it needs only glibc); see docs/benchmarks.md §6 for how to unpack it.

Run: ``python benchmarks/bench_report_bare.py write pages`` then
``python3 benchmarks/bench_report_bare.py time ./chromium . 7 pages/*.html``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLAGS = ["--no-sandbox", "--disable-gpu", "--use-gl=angle", "--use-angle=swiftshader",
         "--enable-logging=stderr", "--v=0", "--no-first-run", "--window-size=1300,900",
         "--remote-debugging-port=0"]


def write_pages(folder: Path) -> None:
    from bench_report import CASES, RECORD, floor_html, write_report

    log = ("<script>" + RECORD + ";(() => { const t = () => { const b = window.__bench\n"
           "  if (b && b.first !== undefined && b.all !== undefined)\n"
           "    console.log('PSBENCH ' + b.first + ' ' + b.all)\n"
           "  else setTimeout(t, 10) }; t() })()</script>")

    def save(name: str, html: str) -> None:
        at = html.index("<head>") + len("<head>")
        (folder / f"{name}.html").write_text(html[:at] + log + html[at:], encoding="utf-8")

    folder.mkdir(parents=True, exist_ok=True)
    save("floor", floor_html())
    for i, (_, count, executors, _, _) in enumerate(CASES):
        if count > 100_000:  # 14 MB: more than a lent machine's carry has room for
            continue
        path = folder / f"report-{i}.tmp.html"
        write_report(count, executors, path)
        save(f"report-{i}", path.read_text(encoding="utf-8"))
        path.unlink()


def load(chrome: str, env: dict[str, str], page: Path) -> tuple[float, float]:
    """One load in a fresh browser: seconds to the first view and to all charts."""
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen([chrome, "--headless", *FLAGS, f"--user-data-dir={profile}",
                                 page.as_uri()], stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, env=env, text=True,
                                start_new_session=True)
        deadline = time.monotonic() + 90
        try:
            for line in proc.stderr or ():
                if "PSBENCH" in line:
                    first, everything = line.split("PSBENCH ")[1].split('"')[0].split()
                    return float(first) / 1000, float(everything) / 1000
                if time.monotonic() > deadline:
                    break
            raise SystemExit(f"{page.name}: no timing logged")
        finally:
            os.killpg(proc.pid, 9)
            proc.wait()


def time_pages(chrome: str, libs: str, loads: int, pages: list[Path]) -> None:
    env = {**os.environ, "LD_LIBRARY_PATH": f"{libs}/lib:{libs}", "FONTCONFIG_PATH": libs}
    times: dict[Path, list[tuple[float, float]]] = {page: [] for page in pages}
    for round_ in range(loads + 1):
        for page in pages:
            measured = load(chrome, env, page)
            if round_:
                times[page].append(measured)
    rows = {}
    for page, measured in times.items():
        first, everything = [m[0] for m in measured], [m[1] for m in measured]
        rows[page.name] = {"first": first, "all": everything}
        print(f"{page.name:12s} first view {statistics.median(first):.2f} s "
              f"({min(first):.2f}-{max(first):.2f})   all charts "
              f"{statistics.median(everything):.2f} s ({min(everything):.2f}-"
              f"{max(everything):.2f})   {len(measured)} loads")
    if os.environ.get("OUT"):  # the lent machine's folder for files to bring back
        Path(os.environ["OUT"], "render_times.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if sys.argv[1:2] == ["write"] and len(sys.argv) == 3:
        write_pages(Path(sys.argv[2]))
    elif sys.argv[1:2] == ["time"] and len(sys.argv) >= 6:
        time_pages(sys.argv[2], sys.argv[3], int(sys.argv[4]), [Path(p) for p in sys.argv[5:]])
    else:
        raise SystemExit(__doc__.split("\n\n")[-1].strip())
