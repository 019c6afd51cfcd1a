"""The terminal view as hyperfine and pyperf users expect it (issue 16, point 1): the verdict
first, the details behind ``-v``, whole lines in a pipe, indents kept when a terminal wraps, and
a demo that fits on one screen."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from rich.console import Console

from poolscope.present.terminal import bullet

pytestmark = pytest.mark.slow

# 16 naps of 20 ms: four threads are clearly faster than serial, on any machine.
RUN = ["run", "io", "--items", "16", "--size", "20", "-e", "thread", "-w", "4", "-r", "5",
       "--quiet", "--no-store"]


def test_a_run_starts_with_the_verdict_and_keeps_the_details_for_verbose(cli):
    done = cli(*RUN)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("recommendation: thread with 4 workers, chunksize ")
    assert "× serial's speed (95% CI " in lines[0]
    assert lines[1].startswith("  · thread ×4 measured fastest")
    table = next(i for i, line in enumerate(lines) if line.startswith("io · 16 items"))
    assert table > 1 and "executor × workers" in lines[table + 1]
    assert "where the time went:" not in done.stdout
    assert not any(line.startswith("  = ") for line in lines)
    assert lines[-1].startswith("-v: ")

    verbose = cli(*RUN, "-v")
    assert verbose.returncode == 0, verbose.stderr
    shown = verbose.stdout.splitlines()
    assert shown[0].startswith("recommendation: thread with 4 workers")
    assert "where the time went:" in verbose.stdout
    assert any(line.startswith("  = thread ×4 is ") for line in shown)  # against serial
    assert not shown[-1].startswith("-v: ")


def test_piped_output_has_whole_lines(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    env["NO_COLOR"] = "1"
    done = subprocess.run([sys.executable, "-m", "poolscope", *RUN], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # The table's key and the first reason are each one line, however long.
    assert any(line.startswith("±: ") and "start: pool creation to first item" in line
               for line in lines), done.stdout
    reason = next(line for line in lines if line.startswith("  · thread ×4 measured fastest"))
    assert "serial's speed (95% CI" in reason and len(reason) > 100
    assert all(line.strip() for line in lines[:2])


def test_a_wrapped_bullet_keeps_its_indent_on_a_terminal():
    out = io.StringIO()
    Console(file=out, width=40, color_system=None).print(
        bullet("·", "the chosen configuration is shown faster than every simpler one"))
    lines = out.getvalue().splitlines()
    assert len(lines) > 1 and lines[0].startswith("  · the chosen")
    assert all(line.startswith("    ") and line[4] != " " for line in lines[1:])


def test_the_demo_fits_on_one_screen(cli):
    """25 lines of 100 columns, besides the warnings a noisy machine adds (which come together,
    before the "-v:" line)."""
    args = ["demo", "--items-per-job", "10", "--size", "200000", "-r", "3", "--quiet",
            "--plot", "demo.png", "--report", "demo.html"]
    done = cli(*args)
    assert done.returncode in (0, 1), done.stderr
    lines = done.stdout.splitlines()
    hint = next(i for i, line in enumerate(lines) if line.startswith("-v: "))
    noisy = next((i for i, line in enumerate(lines) if line.startswith("noisy: ")), hint)
    assert len(lines) - (hint - noisy) <= 25, done.stdout
    assert lines[1].startswith("recommendation: ")  # after the line saying what runs
    assert "code to paste" not in done.stdout
    verbose = cli(*args, "-v")
    assert "code to paste" in verbose.stdout and "where the time went:" in verbose.stdout
