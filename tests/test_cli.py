"""The real CLI, run as a user runs it: exit codes, one-line errors, JSON, CSV and plots."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

SMALL = ["--items", "6", "--size", "20000", "--workers", "2", "--quiet", "--repeat", "1"]


def test_run_prints_a_table_and_recommendation(cli):
    result = cli("run", "cpu", *SMALL, "--executors", "thread,process")
    assert result.returncode == 0, result.stderr
    for text in ("serial ×1", "thread ×2", "process ×2", "recommendation:", "workload:"):
        assert text in result.stdout
    caption = " ".join(result.stdout.split())  # the caption wraps
    assert "serial, thread: in a child process (--no-isolate: in poolscope's own)" in caption
    here = cli("run", "cpu", *SMALL, "--executors", "thread", "--no-isolate")
    assert here.returncode == 0, here.stderr
    assert "in a child process" not in " ".join(here.stdout.split())


def test_json_follows_schema_poolscope_1(cli, tmp_path):
    result = cli("run", "cpu", *SMALL, "--executors", "thread-pool,process-pool",
                 "--repeat", "2", "--json", "out.json")
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["schema"] == "poolscope/1"
    assert {"schema", "run_id", "target", "items", "environment", "summary", "classification",
            "recommendation", "errors"} <= set(doc)
    assert doc["target"] == "cpu" and doc["items"] == 6
    env = doc["environment"]
    assert isinstance(env["python"], str) and isinstance(env["implementation"], str)
    assert isinstance(env["gil_enabled"], bool) and isinstance(env["cpu_count"], int)
    assert [row["executor"] for row in doc["summary"]] == ["serial", "thread-pool",
                                                            "process-pool"]
    for row in doc["summary"]:
        for key in ("wall_s", "speedup", "efficiency", "cpu_s", "cpu_utilization",
                    "parallelism", "offcpu_fraction", "startup_s"):
            assert isinstance(row[key], float), key
        assert isinstance(row["workers"], int) and row["trials"] == 2
        lo, hi = row["wall_ci"]
        assert lo <= row["wall_s"] <= hi
        assert row["errors"] == 0
    rec = doc["recommendation"]
    assert rec["executor"] in ("serial", "thread-pool", "process-pool")
    assert isinstance(rec["workers"], int) and rec["reasons"] and isinstance(rec["caveats"], list)
    assert isinstance(doc["classification"], str)
    assert doc["errors"] == []


def test_json_to_stdout_is_pure_json(cli):
    result = cli("run", "tiny", "--items", "50", "--executors", "thread", "--quiet",
                 "--json", "-")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["schema"] == "poolscope/1"
    assert "recommendation" in result.stderr  # the table went to stderr


def test_csv_and_plot(cli, tmp_path):
    result = cli("run", "cpu", *SMALL, "--executors", "thread", "--csv", "items.csv",
                 "--plot", "timeline.png")
    assert result.returncode == 0, result.stderr
    items = pd.read_csv(tmp_path / "items.csv")
    assert len(items) == 12  # serial + thread, 6 items each
    for column in ("item", "start_s", "end_s", "cpu_s", "pid", "tid", "host", "core",
                   "status"):
        assert column in items.columns
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_items_from_file_and_file_target(cli, tmp_path):
    (tmp_path / "work.py").write_text(
        "def crunch(item):\n    return sum(range(item['n']))\n")
    (tmp_path / "items.jsonl").write_text("".join(f'{{"n": {n}}}\n' for n in range(1, 9)))
    result = cli("run", "./work.py:crunch", "--items-from", "items.jsonl",
                 "--executors", "process-spawn", "--workers", "2", "--quiet", "--json", "r.json")
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["items"] == 8 and doc["errors"] == []


def test_failed_items_exit_1_and_are_kept(cli, tmp_path):
    (tmp_path / "flaky.py").write_text(
        "def work(x):\n    if x % 3 == 0:\n        raise KeyError(x)\n    return x\n")
    result = cli("run", "flaky.py:work", "--items", "9", "--executors", "process", "-r", "1",
                 "--quiet", "--json", "r.json")
    assert result.returncode == 1
    doc = json.loads((tmp_path / "r.json").read_text())
    failed = sorted((e["executor"], e["item"]) for e in doc["errors"])
    assert failed == [("process", 0), ("process", 3), ("process", 6),
                      ("serial", 0), ("serial", 3), ("serial", 6)]
    assert "6 items failed; first: item" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["run", "nosuch"], "unknown workload 'nosuch'"),
    (["run", "json:nope", "--items", "3"], "has no attribute 'nope'"),
    (["run", "json:__doc__", "--items", "3"], "is not callable"),
    (["run", "cpu", "--items-from", "missing.jsonl"], "items file not found"),
    (["run", "cpu", "--executors", "threads"], "unknown executor 'threads'"),
    (["run", "cpu", "--workers", "0"], "workers must be a whole number of at least 1"),
    (["run", "cpu", "--workers", "two"], "--workers: 'two' is not a whole number"),
    (["run", "cpu", "--chunksize", "big"], "--chunksize must be a whole number or 'auto'"),
    (["run", "cpu", "--repeat", "0"], "repeat must be 'auto' or at least 1, got 0"),
    (["run", "cpu", "--repeat", "many"], "--repeat must be a whole number or 'auto'"),
    (["run", "cpu", "--max-time", "0"], "max time must be more than 0 seconds"),
    (["run", "cpu", "--warmup", "-1"], "warmup must be zero or more"),
    (["run", "cpu", "--items", "0"], "--items must be at least 1"),
    (["run", "cpu", "--items", "x"], "Invalid value for '--items'"),
    (["run", "cpu", "--plot", "out.gif"], "--plot: use a .png, .svg or .pdf"),
    (["run", "cpu", "--json", "no/such/dir/r.json"], "--json: directory does not exist"),
    (["run", "cpu", "--bogus"], "No such option"),
    (["nosuchcommand"], "No such command"),
])
def test_bad_input_is_one_line_and_exit_2(cli, args, message):
    result = cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("poolscope: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_malformed_items_file(cli, tmp_path):
    (tmp_path / "bad.jsonl").write_text("1\n{\n")
    result = cli("run", "json:dumps", "--items-from", "bad.jsonl")
    assert result.returncode == 2
    assert result.stderr.strip() == "poolscope: error: bad.jsonl:2: not a JSON value " \
                                    "(Expecting property name enclosed in double quotes)"


def test_workloads_and_executors_commands(cli):
    workloads = cli("workloads")
    assert workloads.returncode == 0
    for name in ("cpu", "io", "hash", "json", "tiny", "payload"):
        assert f"\n {name} " in workloads.stdout or f"│ {name} " in workloads.stdout
    executors = cli("executors")
    assert executors.returncode == 0
    for name in ("serial", "thread-pool", "process-forkserver", "process-pool"):
        assert name in executors.stdout
    assert "yes" in executors.stdout
    # In 80 columns, text wraps (long names fold) and nothing is cut with "…".
    for command in ("workloads", "executors"):
        narrow = subprocess.run([sys.executable, "-m", "poolscope", command], capture_output=True,
                                text=True, timeout=120,
                                env={**os.environ, "COLUMNS": "80", "NO_COLOR": "1"})
        assert narrow.returncode == 0, narrow.stderr
        assert "…" not in narrow.stdout
        assert max(len(line) for line in narrow.stdout.splitlines()) <= 80


def test_demo_reproduces_the_notebook(cli, tmp_path):
    result = cli("demo", "--size", "200000", "--items-per-worker", "5", "--quiet")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "finished sooner" in out and "in progress" in out
    assert "plot written to poolscope-demo.png" in out
    assert (tmp_path / "poolscope-demo.png").stat().st_size > 10_000


def test_python_dash_m_and_help(cli):
    result = cli("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout and "run" in result.stdout


def test_sweep_scaling_table_json_and_plot(cli, tmp_path):
    result = cli("sweep", "cpu", "--items", "4,12", "--size", "20000", "--workers", "1,2",
                 "--executors", "thread,process", "--repeat", "2", "--quiet",
                 "--json", "sweep.json", "--plot", "scaling.png")
    assert result.returncode == 0, result.stderr
    assert "scaling" in result.stdout and "Amdahl fit, process" in result.stdout
    assert "growth with items, process" in result.stdout
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["schema"] == "poolscope/1"
    rows = {(r["executor"], r["workers"]) for r in doc["scaling"]}
    assert {("thread", 1), ("thread", 2), ("process", 1), ("process", 2)} <= rows
    for row in doc["scaling"]:
        assert {"executor", "workers", "chunksize", "wall_s", "speedup", "efficiency"} <= set(row)
    assert isinstance(doc["amdahl"]["serial_fraction"], float)
    assert 0.0 <= doc["amdahl"]["serial_fraction"] <= 1.0
    assert set(doc["growth"]) == {"serial", "thread", "process"}
    assert (tmp_path / "scaling.png").read_bytes()[:4] == b"\x89PNG"


# --- terminal formats, the report and the trace ------------------------------------------------
def test_markdown_format_prints_only_a_table_to_stdout(cli):
    result = cli("run", "cpu", *SMALL, "--executors", "thread", "--format", "markdown",
                 "--no-store")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0].startswith("| executor × workers | wall |")
    assert table[1].startswith("|:--|--:|")
    assert len(table) == 2 + 2  # header, alignment, serial and thread rows
    assert all(row.count("|") == table[0].count("|") for row in table)
    assert any(line.startswith("Recommendation: **") for line in lines)
    assert "\x1b[" not in result.stdout


def test_markdown_and_json_on_stdout_clash(cli):
    result = cli("run", "cpu", *SMALL, "--format", "markdown", "--json", "-")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "stdout" in result.stderr


def _colour_codes(text: str) -> int:
    import re

    # Foreground/background colours: 30-37, 40-47, 90-97, 38;5;n and 38;2;r;g;b.
    return len(re.findall(r"\x1b\[[0-9;]*(?:3[0-8]|4[0-8]|9[0-7])[;m]", text))


@pytest.mark.parametrize("no_color", [False, True])
def test_no_color_is_honoured(tmp_path, no_color):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update({"FORCE_COLOR": "1", "COLUMNS": "80"})
    if no_color:
        env["NO_COLOR"] = "1"
    done = subprocess.run([sys.executable, "-m", "poolscope", "run", "cpu", *SMALL,
                           "--executors", "thread", "--no-store"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    if no_color:
        assert _colour_codes(done.stdout) == 0
    else:
        assert _colour_codes(done.stdout) > 0  # the check can see colour when it is there
    plain = __import__("re").sub(r"\x1b\[[0-9;]*m", "", done.stdout)
    assert max(len(line) for line in plain.splitlines()) <= 80


def test_trace_and_report_from_run_and_export_perfetto(cli, tmp_path):
    result = cli("run", "cpu", *SMALL, "--executors", "thread", "--trace", "t.json",
                 "--report", "r.html")
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "t.json").read_text())
    items = [e for e in doc["traceEvents"] if e["ph"] in ("X", "b") and e.get("cat", "")
             .startswith("item")]
    assert len(items) == 6 * 2  # serial and thread trials of 6 items
    assert (tmp_path / "r.html").stat().st_size > 100_000
    exported = cli("export", "latest", "--format", "perfetto")
    assert exported.returncode == 0, exported.stderr
    [trace] = tmp_path.glob("*.trace.json")
    assert json.loads(trace.read_text())["otherData"]["run_id"] in trace.name
    for args, message in ((["--trace", "t.txt"], "--trace"), (["--report", "r.png"], "--report")):
        bad = cli("run", "cpu", *SMALL, *args)
        assert bad.returncode == 2 and message in bad.stderr and bad.stderr.count("\n") == 1


def test_process_trials_fork_a_parent_without_pandas(cli, tmp_path):
    """The CLI loads pandas, the analysis and the pictures only once the trials are done: a
    fork worker of a process trial is a copy of poolscope's process, and one with pandas in it
    is 100 MiB more to copy (+8 ms start-up and +6 ms teardown a trial, docs/benchmarks.md §1)
    than a user's script pays. The function tells, from inside each fork worker."""
    (tmp_path / "lean.py").write_text(
        "import sys\n\n"
        "def work(x):\n"
        "    if 'pandas' in sys.modules:\n"
        "        raise RuntimeError('forked from a parent that had loaded pandas')\n"
        "    return x\n", encoding="utf-8")
    result = cli("run", "lean.py:work", "--items", "8", "-e", "process-fork,process-pool",
                 "--repeat", "3", "--no-store", "--quiet")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert "forked from a parent" not in result.stdout


def test_module_targets_import_from_pythonpath_and_the_working_directory(tmp_path):
    """Through the ``poolscope`` script, as a user runs it (its sys.path starts with the
    environment's bin, not the working directory): a module on PYTHONPATH, and one beside the
    user, import in poolscope, in the isolated child (serial, thread) and in spawned workers."""
    script = Path(sys.executable).parent / "poolscope"
    if not script.exists():
        pytest.skip("no poolscope script beside this interpreter (not installed with pip)")
    source = "def crunch(x):\n    return x * 2\n"
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "workmod.py").write_text(source, encoding="utf-8")
    (tmp_path / "beside.py").write_text(source, encoding="utf-8")
    for target, pythonpath in (("workmod:crunch", str(tmp_path / "pkg")), ("beside:crunch", "")):
        env = {**os.environ, "PYTHONPATH": pythonpath, "NO_COLOR": "1"}
        done = subprocess.run([str(script), "run", target, "--items", "4", "-e",
                               "thread,process-spawn", "-r", "1", "--no-store", "--quiet"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, f"{target}: {done.stderr}"
        assert "recommendation" in done.stdout


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_an_output_that_cannot_be_written_is_one_line_after_the_run(cli, tmp_path):
    """--json to a full disk: the other outputs and "stored as run" still come, then one line
    and exit 2; the run is in the store. show --json and export -o say it the same way."""
    done = cli("run", "cpu", "--items", "2", "--size", "1000", "-e", "thread", "-r", "1",
               "--json", "/dev/full", "--csv", "items.csv", "--store", "s.db")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "poolscope: error: cannot write the JSON to /dev/full: No space left on device"]
    assert "items written to items.csv" in done.stdout and "stored as run" in done.stdout
    assert (tmp_path / "items.csv").stat().st_size > 0
    for args, what in ((("show", "latest", "--json", "/dev/full"), "JSON"),
                       (("export", "latest", "--format", "csv", "-o", "/dev/full"), "csv")):
        again = cli(*args, "--store", "s.db")
        assert again.returncode == 2, again.stderr
        assert again.stderr.strip().splitlines() == [
            f"poolscope: error: cannot write the {what} to /dev/full: No space left on device"]
