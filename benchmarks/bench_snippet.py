"""Does the code to paste pay what poolscope measured?

For each workload (``truth_workloads.py``: ``gil_switching``, 40 µs of pure Python per item, and
``tiny``, a few µs) this script:

1. runs poolscope's trials of ``serial`` and ``thread ×2`` (``poolscope.api.run_workload``, about
   four chunks per worker, ``--repeat`` trials each) and takes each one's median wall;
2. writes the code to paste for those two configurations with ``analysis.snippet`` — the same
   function the recommendation's ``code`` comes from — and, for reference, the item-by-item form
   the code to paste had before (``ThreadPoolExecutor.map(fn, items)``);
3. runs the scripts in one child process, interleaved for ``--rounds`` rounds (the workload module
   imported once before, outside the timed span), each through ``runpy`` as ``__main__``, and
   takes each one's median;
4. prints each time and its ratio to serial, then the pasted thread ×2 ÷ poolscope's thread ×2
   trial, in seconds and relative to each one's serial. Goal: at most 1.3 for both (the script
   must not pay more than was measured; on tiny items it pays less, without the probe's
   per-item cost). A loaded machine is noisy: the load is printed.

Run: ``python benchmarks/bench_snippet.py [--quick] [--rounds N] [--repeat N]``; exit status 1
when the goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from _common import Check, console, machine_line, print_checks
from poolscope.analysis.snippet import snippet
from poolscope.api import run_workload
from poolscope.workloads import resolve_workload

HERE = Path(__file__).resolve().parent
GOAL = 1.3
WORKERS = 2
CASES = {"gil_switching": 8_000, "tiny": 20_000}  # items; tiny item by item is ~35× serial

HARNESS = """
import json, runpy, sys, time
import truth_workloads  # imported once, outside the timed span
rounds, scripts = int(sys.argv[1]), sys.argv[2:]
times = {script: [] for script in scripts}
for _ in range(rounds):
    for script in scripts:
        began = time.perf_counter()
        runpy.run_path(script, run_name="__main__")
        times[script].append(time.perf_counter() - began)
print(json.dumps(times))
"""


def poolscope_walls(name: str, items: int, repeat: int) -> tuple[dict[str, float], int]:
    """Median trial wall of serial and thread ×2, and the thread trials' chunksize."""
    target = f"{HERE / 'truth_workloads.py'}:{name}"
    result = run_workload(resolve_workload(target, items), executors="serial,thread",
                          workers=WORKERS, repeat=repeat, explore_io=False)
    summary = result.summary.set_index("executor")
    walls = {executor: float(summary.loc[executor, "wall_s"]) for executor in summary.index}
    return walls, int(summary.loc["thread", "chunksize"])


def scripts(name: str, items: int, chunksize: int) -> dict[str, str]:
    """The code to paste for serial and thread ×2, and the old item-by-item form."""
    target = f"./truth_workloads.py:{name}"
    code = {executor: snippet(executor, family, WORKERS, size, target, f"range({items})")
            for executor, family, size in (("serial", "serial", None),
                                            ("thread", "thread", chunksize))}
    code["item by item"] = (
        f"from concurrent.futures import ThreadPoolExecutor\n\nfrom truth_workloads import {name}"
        f"\n\nwith ThreadPoolExecutor(max_workers={WORKERS}) as pool:\n"
        f"    results = list(pool.map({name}, range({items})))\n")
    return code


def time_scripts(code: dict[str, str], rounds: int) -> dict[str, float]:
    """Median seconds of each script, interleaved in one child process."""
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for label, text in code.items():
            paths[label] = Path(folder, label.replace(" ", "_") + ".py")
            paths[label].write_text(text, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-c", HARNESS, str(rounds), *map(str, paths.values())],
            capture_output=True, text=True, timeout=1800, check=True,
            env={**os.environ, "PYTHONPATH": str(HERE)})
    times = json.loads(done.stdout)
    return {label: sorted(times[str(path)])[(rounds - 1) // 2] for label, path in paths.items()}


def compare(name: str, walls: dict[str, float], pasted: dict[str, float]) -> list[Check]:
    """The pasted thread ×2 against the trial: in seconds (the probe's per-item cost makes the
    trial the slower on tiny items), and relative to serial, each measured its own way."""
    ratio = pasted["thread"] / walls["thread"]
    relative = (pasted["thread"] / pasted["serial"]) / (walls["thread"] / walls["serial"])
    before = (pasted["item by item"] / pasted["serial"]) / (walls["thread"] / walls["serial"])
    return [Check(f"{name}: pasted thread ×2 ÷ poolscope's trial", f"{ratio:.2f}",
                  f"≤ {GOAL}", ratio <= GOAL),
            Check(f"{name}: the same, each ÷ its serial", f"{relative:.2f}", f"≤ {GOAL}",
                  relative <= GOAL),
            Check(f"{name}: item-by-item map, ÷ its serial, ÷ the trial's", f"{before:.2f}",
                  "(the form before)", None)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the items, 3 rounds")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each pasted script")
    parser.add_argument("--repeat", type=int, default=7, help="poolscope trials of each")
    args = parser.parse_args(argv)
    rounds, repeat = (3, 3) if args.quick else (args.rounds, args.repeat)
    console.print(machine_line())
    checks = []
    for name, items in CASES.items():
        items = items // 4 if args.quick else items
        walls, chunksize = poolscope_walls(name, items, repeat)
        pasted = time_scripts(scripts(name, items, chunksize), rounds)
        serial = walls["serial"]
        console.print(
            f"{name} ({items:,} items, chunks of {chunksize}): poolscope serial {serial:.3f} s, "
            f"thread ×2 {walls['thread']:.3f} s ({walls['thread'] / serial:.2f}× serial); "
            f"pasted serial {pasted['serial']:.3f} s, thread ×2 {pasted['thread']:.3f} s "
            f"({pasted['thread'] / pasted['serial']:.2f}× serial); item by item "
            f"{pasted['item by item']:.3f} s ({pasted['item by item'] / pasted['serial']:.2f}×)")
        checks += compare(name, walls, pasted)
    passed = print_checks("code to paste against poolscope's trial", checks)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
