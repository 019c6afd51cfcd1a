"""`poolscope map`, run as a user runs it: results as JSON lines in item order, exit codes,
one-line errors, nothing left running."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from conftest import run_cli

WORK = '''\
import os


def square(x):
    return x * x


def picky(x):
    if x % 5 == 2:
        raise ValueError(f"no {x}")
    return x + 1


def add(a=0, b=0, c=0):
    return a + 10 * b + 100 * c


def odd(x):
    if x == 0:
        return {1, 2}
    if x == 1:
        return b"raw"
    if x == 2:
        return float("nan")
    return [x, {"k": x}]


def chatty(x):
    print("chatter", x)
    return x


def die(x):
    if x == 5:
        os._exit(3)
    return x


def slow(x):
    import time

    time.sleep(0.002)
    return x


TAG = None


def setup(tag, number):
    global TAG
    TAG = f"{tag}-{number}"


def tagged(x):
    return [x, TAG]


def refuse():
    raise RuntimeError("no database")


def blas_env(x):
    return os.environ.get("OPENBLAS_NUM_THREADS")

'''


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "work.py").write_text(WORK)
    return tmp_path


def write_items(path: Path, items: list[object]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def strict(constant: str) -> object:
    raise AssertionError(f"{constant} is not JSON")


def result_lines(text: str) -> list[dict[str, object]]:
    """The results written, each line strict JSON, in item order."""
    lines = [json.loads(line, parse_constant=strict) for line in text.splitlines()]
    assert [line["item"] for line in lines] == list(range(len(lines)))
    return lines


def map_cli(cwd: Path, *args: str, input_text: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_cli("map", *args, cwd=cwd, timeout=timeout, input_text=input_text)


@pytest.mark.parametrize("options", [
    [],  # serial, thread and process-pool: calibration decides
    ["-e", "process-pool", "--max-workers", "2", "--chunksize", "7"],
    ["-e", "thread", "--max-workers", "3", "--budget", "0.2"],
])
def test_results_are_those_of_builtin_map(work, options):
    items = list(range(300))
    write_items(work / "items.jsonl", items)
    done = map_cli(work, "./work.py:square", "--items-from", "items.jsonl", "-q", *options)
    assert done.returncode == 0, done.stderr
    lines = result_lines(done.stdout)
    assert [line["result"] for line in lines] == list(map(lambda x: x * x, items))
    assert all(set(line) == {"item", "result"} for line in lines)
    assert "decision: " in done.stderr and "300 items, 0 failed" in done.stderr


def add(a=0, b=0, c=0):  # as work.py's, for the expected results
    return a + 10 * b + 100 * c


@pytest.mark.parametrize("executors", ["serial", "thread,process-pool"])
def test_star_takes_lists_as_positional_and_objects_as_keyword_arguments(work, executors):
    items: list[object] = [[1], [1, 2], {"a": 3, "c": 4}, [5, 6, 7], {"b": 8, "a": 9}, []]
    items = items * 20
    write_items(work / "args.jsonl", items)
    done = map_cli(work, "work.py:add", "--items-from", "args.jsonl", "--star", "-e", executors,
                   "--max-workers", "2", "-q")
    assert done.returncode == 0, done.stderr
    expected = [add(**item) if isinstance(item, dict) else add(*item) for item in items]
    assert [line["result"] for line in result_lines(done.stdout)] == expected


@pytest.mark.parametrize("executors", ["serial", "process-pool"])
def test_failed_items_are_error_lines_and_exit_1(work, executors):
    write_items(work / "items.jsonl", list(range(100)))
    done = map_cli(work, "work.py:picky", "--items-from", "items.jsonl", "-e", executors,
                   "--max-workers", "2", "-q")
    assert done.returncode == 1, done.stderr
    lines = result_lines(done.stdout)
    assert len(lines) == 100
    for x, line in enumerate(lines):
        if x % 5 == 2:
            assert line["error"] == {"kind": "ValueError", "message": f"no {x}"}
            assert "result" not in line
        else:
            assert line["result"] == x + 1 and "error" not in line
    assert "100 items, 20 failed" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_worker_that_dies_is_its_items_error(work):
    write_items(work / "items.jsonl", list(range(30)))
    done = map_cli(work, "work.py:die", "--items-from", "items.jsonl", "-e", "process-pool",
                   "--max-workers", "2", "-q")
    assert done.returncode == 1, done.stderr
    lines = result_lines(done.stdout)
    assert len(lines) == 30
    assert lines[5]["error"]["kind"] == "WorkerDiedError"
    assert "exit code 3" in lines[5]["error"]["message"]
    assert [line["result"] for i, line in enumerate(lines) if i != 5] == [
        i for i in range(30) if i != 5]


def test_out_file_or_stdout(work):
    write_items(work / "items.jsonl", list(range(50)))
    args = ["work.py:chatty", "--items-from", "items.jsonl", "-e", "serial,thread,process-pool",
            "--max-workers", "2", "-q"]
    to_stdout = map_cli(work, *args)  # --out - is the default
    assert to_stdout.returncode == 0, to_stdout.stderr
    # Only the results on stdout: the function's prints go to stderr, with the decision.
    assert [line["result"] for line in result_lines(to_stdout.stdout)] == list(range(50))
    assert "chatter 7" in to_stdout.stderr
    assert "decision: " in to_stdout.stderr and "50 items, 0 failed" in to_stdout.stderr
    assert "calibration: " in to_stdout.stderr

    to_file = map_cli(work, *args, "--out", "results.jsonl")
    assert to_file.returncode == 0, to_file.stderr
    written = (work / "results.jsonl").read_text()
    assert written == to_stdout.stdout
    assert "results written to results.jsonl" in to_file.stdout
    assert "decision: " in to_file.stdout and "50 items, 0 failed" in to_file.stdout
    assert "decision: " not in to_file.stderr


def test_items_from_stdin_with_blank_lines(work):
    done = map_cli(work, "work.py:square", "--items-from", "-", "-q",
                   input_text="3\n\n4\n   \n5\n")
    assert done.returncode == 0, done.stderr
    assert [line["result"] for line in result_lines(done.stdout)] == [9, 16, 25]


def test_a_result_json_cannot_hold_is_written_as_its_repr(work):
    write_items(work / "items.jsonl", [0, 1, 2, 3])
    done = map_cli(work, "work.py:odd", "--items-from", "items.jsonl", "-e", "serial", "-q")
    assert done.returncode == 0, done.stderr
    lines = result_lines(done.stdout)
    assert lines[0] == {"item": 0, "result": "{1, 2}", "repr": True}
    assert lines[1] == {"item": 1, "result": "b'raw'", "repr": True}
    assert lines[2] == {"item": 2, "result": "nan", "repr": True}
    assert lines[3] == {"item": 3, "result": [3, {"k": 3}]}


def test_a_built_in_workload_is_a_target(work):
    write_items(work / "items.jsonl", ["a", 1, None, {"x": [1]}])
    done = map_cli(work, "tiny", "--items-from", "items.jsonl", "-q")
    assert done.returncode == 0, done.stderr
    assert [line["result"] for line in result_lines(done.stdout)] == ["a", 1, None, {"x": [1]}]


def test_the_run_is_recorded_in_the_store_unless_no_store(work):
    write_items(work / "items.jsonl", list(range(20)))
    done = map_cli(work, "work.py:square", "--items-from", "items.jsonl", "--store", "runs.db",
                   "-q")
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(work / "runs.db") as con:
        assert con.execute("SELECT target FROM runs").fetchall() == [("work.py:square",)]
    done = map_cli(work, "work.py:square", "--items-from", "items.jsonl", "--no-store", "-q")
    assert done.returncode == 0, done.stderr
    assert not (work / ".poolscope").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["work.py:square", "--items-from", "missing.jsonl"], "items file not found: missing.jsonl"),
    (["work.py:square", "--items-from", "."], "items file is a directory"),
    (["work.py:square", "--items-from", "items.jsonl", "-e", "threads"],
     "unknown executor 'threads'"),
    (["work.py:square", "--items-from", "items.jsonl", "-e", "dask"], "dask is a cluster"),
    (["work.py:square", "--items-from", "items.jsonl", "-e", "serial,serial"], "listed twice"),
    (["work.py:square", "--items-from", "items.jsonl", "--max-workers", "0"],
     "--max-workers must be at least 1, got 0"),
    (["work.py:square", "--items-from", "items.jsonl", "--chunksize", "0"],
     "--chunksize must be at least 1, got 0"),
    (["work.py:square", "--items-from", "items.jsonl", "--native-threads", "0"],
     "--native-threads must be at least 1, got 0"),
    (["work.py:square", "--items-from", "items.jsonl", "--initargs", "[1]"],
     "--initargs needs --initializer"),
    (["work.py:square", "--items-from", "items.jsonl", "--initializer", "work.py:setup",
      "--initargs", "{1"], "--initargs must be a JSON list"),
    (["work.py:square", "--items-from", "items.jsonl", "--initializer", "work.py:setup",
      "--initargs", '{"a": 1}'], "--initargs must be a JSON list"),
    (["work.py:square", "--items-from", "items.jsonl", "--initializer", "work.py:nothing"],
     "has no attribute 'nothing'"),
    (["work.py:square", "--items-from", "items.jsonl", "--budget", "0"],
     "--budget must be a number of seconds more than 0"),
    (["work.py:square", "--items-from", "items.jsonl", "--star"],
     "items.jsonl:1: --star takes a JSON list (arguments) or object (keywords), got 1"),
    (["work.py:square", "--items-from", "items.jsonl", "--out", "items.jsonl"],
     "--out items.jsonl is the --items-from file"),
    (["work.py:square", "--items-from", "items.jsonl", "--out", "no/such/dir/r.jsonl"],
     "--out: directory does not exist"),
    (["work.py:nope", "--items-from", "items.jsonl"], "has no attribute 'nope'"),
    (["nosuch", "--items-from", "items.jsonl"], "unknown workload 'nosuch'"),
    (["work.py:square", "--items-from", "items.jsonl", "--size", "3"],
     "--size applies only to the built-in workloads"),
    (["work.py:square"], "Missing option '--items-from'"),
])
def test_bad_input_is_one_line_and_exit_2(work, args, message):
    write_items(work / "items.jsonl", [1, 2, 3])
    done = map_cli(work, *args, "--out", "r.jsonl") if "--out" not in args else map_cli(
        work, *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("poolscope: error: ")
    assert message in lines[0]
    assert "Traceback" not in done.stderr
    assert not (work / "r.jsonl").exists()  # stopped before any result: no file


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_results_that_cannot_be_written_are_one_line_and_exit_2(work):
    write_items(work / "items.jsonl", list(range(50)))
    done = map_cli(work, "work.py:square", "--items-from", "items.jsonl", "-e", "process-pool",
                   "--max-workers", "2", "--out", "/dev/full", "-q")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == ("poolscope: error: cannot write the results to /dev/full: "
                                   "No space left on device")


# --- the options shared with poolscope.map ---------------------------------------------------
@pytest.mark.parametrize("executors", ["serial", "thread", "process-pool"])
def test_the_initializer_runs_in_each_worker_with_its_arguments(work, executors):
    write_items(work / "items.jsonl", list(range(200)))
    done = map_cli(work, "work.py:tagged", "--items-from", "items.jsonl", "-e", executors,
                   "--max-workers", "2", "--initializer", "work.py:setup", "--initargs",
                   '["db", 4]', "-q")
    assert done.returncode == 0, done.stderr
    assert [line["result"] for line in result_lines(done.stdout)] == [
        [x, "db-4"] for x in range(200)]


def test_an_initializer_that_raises_fails_the_items_and_exits_1(work):
    write_items(work / "items.jsonl", list(range(40)))
    done = map_cli(work, "work.py:square", "--items-from", "items.jsonl", "-e", "thread",
                   "--max-workers", "2", "--initializer", "work.py:refuse", "-q")
    assert done.returncode == 1, done.stderr
    lines = result_lines(done.stdout)
    assert len(lines) == 40
    assert {line["error"]["kind"] for line in lines} == {"InitializerFailed"}
    assert "work.py:refuse raised RuntimeError: no database" in lines[0]["error"]["message"]
    assert "40 items, 40 failed" in done.stderr and "Traceback" not in done.stderr


def test_native_threads_caps_the_workers_and_the_options_are_shown(work):
    write_items(work / "items.jsonl", list(range(60)))
    done = map_cli(work, "work.py:blas_env", "--items-from", "items.jsonl", "-e",
                   "serial,thread,process-pool", "--max-workers", "2", "--native-threads", "1",
                   "--chunksize", "3", "--store", "runs.db", "-q")
    assert done.returncode == 0, done.stderr
    assert {line["result"] for line in result_lines(done.stdout)} == {"1"}
    shown = run_cli("show", "latest", "--store", "runs.db", cwd=work, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "chunksize 3" in shown.stdout and "native threads 1" in shown.stdout


@pytest.mark.parametrize("quiet", [False, True])
def test_progress_is_on_stderr_and_stdout_has_only_the_results(work, quiet):
    """stderr a terminal (a pty), stdout a pipe: the count is drawn on stderr unless -q, and
    stdout carries the JSON lines alone."""
    import pty
    import threading

    write_items(work / "items.jsonl", list(range(3000)))
    parent, child = pty.openpty()
    drawn: list[bytes] = []

    def read() -> None:
        with contextlib.suppress(OSError):  # EIO once the child side is closed
            while chunk := os.read(parent, 65536):
                drawn.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "poolscope", "map", "work.py:slow", "--items-from",
             "items.jsonl", "-e", "serial,thread", "--out", "-", *(["-q"] if quiet else [])],
            cwd=work, env=env, stdout=subprocess.PIPE, stderr=child, text=True, timeout=120)
    finally:
        os.close(child)
    reader.join(timeout=10)
    os.close(parent)
    assert done.returncode == 0
    assert [line["result"] for line in result_lines(done.stdout)] == list(range(3000))
    err = b"".join(drawn).decode("utf-8", "replace")
    assert "3,000 items, 0 failed" in err or "3000 items" in err, err
    assert ("items done" in err) != quiet, err


# --- stopping part way: nothing left running, what finished kept ---------------------------------
def start_session(cwd: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100"}
    return subprocess.Popen([sys.executable, "-m", "poolscope", "map", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def session_gone(sid: int, timeout: float = 15.0) -> bool:
    """Whether every process of the CLI's session (its workers included) has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if os.getsid(process.pid) == sid and process.status() != psutil.STATUS_ZOMBIE:
                    left.append(process.pid)
        if not left:
            return True
        time.sleep(0.1)
    return False


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)


def test_a_bad_json_line_part_way_stops_with_exit_2_and_no_worker_left(work):
    good = "".join(f"{x}\n" for x in range(200))
    (work / "items.jsonl").write_text(good + "{oops\n" + "1\n2\n")
    # One candidate, a process pool: it is running when the bad line is read.
    proc = start_session(work, "work.py:square", "--items-from", "items.jsonl", "-e",
                         "process-pool", "--max-workers", "2", "--out", "r.jsonl", "-q")
    _out, err = finish(proc)
    assert proc.returncode == 2, err
    assert err.strip() == ("poolscope: error: items.jsonl:201: not a JSON value "
                           "(Expecting property name enclosed in double quotes)")
    assert session_gone(proc.pid), "a worker outlived the run"
    kept = result_lines((work / "r.jsonl").read_text())  # whatever finished, in order
    assert all(line["result"] == line["item"] ** 2 for line in kept)


@pytest.mark.slow
def test_ctrl_c_keeps_the_results_written_and_exits_130(work):
    write_items(work / "items.jsonl", list(range(20_000)))
    proc = start_session(work, "work.py:slow", "--items-from", "items.jsonl", "-e",
                         "serial,process-pool", "--max-workers", "2", "--out", "r.jsonl", "-q")
    deadline = time.monotonic() + 30
    path = work / "r.jsonl"
    while not (path.exists() and path.read_text().count("\n") >= 100):  # results coming
        if time.monotonic() > deadline or proc.poll() is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"no results written: {finish(proc, 10)}")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = finish(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err + out and "KeyboardInterrupt" not in err
    kept = result_lines((work / "r.jsonl").read_text())
    assert 100 <= len(kept) < 20_000
    assert [line["result"] for line in kept] == list(range(len(kept)))
    assert f"interrupted: kept the results of the first {len(kept):,} items" in out
    assert session_gone(proc.pid), "a worker outlived the interrupted run"
