"""Code to paste: the recommendation's script runs, beside the target, for each executor."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from poolscope.analysis.snippet import snippet

TARGET = '''
import asyncio
import os
import threading
import time
from pathlib import Path


def square(x):
    Path(os.environ["MARKS"], f"{x}-{os.getpid()}").touch()  # which item ran, in which process
    return x * x


async def fetch(x):
    await asyncio.sleep(0.001)
    return square(x)


def where(x):
    """Which process and thread ran the item; slow enough that idle workers take the next."""
    time.sleep(0.02)
    Path(os.environ["MARKS"], f"{x}-{os.getpid()}-{threading.get_ident()}").touch()
    return -x
'''


def run_script(folder: Path, code: str, marks: Path) -> set[int]:
    """Save ``code`` beside work.py, run it, and return the items that ran."""
    return run_for_results(folder, code, marks)[0]


def run_for_results(folder: Path, code: str, marks: Path) -> tuple[set[int], list]:
    """Save ``code`` beside work.py, run it: (the items that ran, its ``results``)."""
    script = folder / "main.py"
    script.write_text(code + '\nif __name__ == "__main__":\n    print(repr(results))\n',
                      encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], cwd=folder, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "MARKS": str(marks)})
    assert done.returncode == 0, f"{code}\n--- stderr:\n{done.stderr}"
    ran = {int(name.split("-")[0]) for name in os.listdir(marks)}
    return ran, ast.literal_eval(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "work.py").write_text(TARGET, encoding="utf-8")
    (tmp_path / "marks").mkdir()
    return tmp_path


EXECUTORS = [
    ("serial", "serial", None), ("thread", "thread", 2), ("thread-pool", "thread", 2),
    ("process", "process", 3), ("process-fork", "process", 3), ("process-spawn", "process", 3),
    ("process-pool", "process", 3), ("asyncio", "async", 1), ("asyncio", "async", 3)]


@pytest.mark.parametrize(("executor", "family", "chunksize"), EXECUTORS)
def test_the_script_runs_every_item(folder: Path, executor: str, family: str,
                                    chunksize: int | None):
    code = snippet(executor, family, 2, chunksize, "./work.py:square", "range(7)", n_items=7)
    assert code is not None
    assert "from work import square" in code
    assert "beside work.py" in code
    assert ('if __name__ == "__main__":' in code) == (family == "process")
    if chunksize and family == "process":
        assert f"chunksize={chunksize}" in code
    ran, results = run_for_results(folder, code, folder / "marks")
    assert ran == set(range(7))
    assert results == [x * x for x in range(7)]  # every item's result, in the items' order


@pytest.mark.parametrize(("executor", "family", "chunksize"), EXECUTORS[1:])
def test_the_script_hands_work_over_in_chunks_as_the_trial_did(folder: Path, executor: str,
                                                                family: str, chunksize: int):
    """Each backend submits chunks of ``chunksize`` items (runner.make_chunks); so does the
    script: a worker runs a chunk's items one after another in one thread."""
    code = snippet(executor, family, 2, chunksize, "./work.py:where", "range(10)", n_items=10)
    ran, results = run_for_results(folder, code, folder / "marks")
    assert ran == set(range(10)) and results == [-x for x in range(10)]
    runs = {}
    for name in os.listdir(folder / "marks"):
        item, pid, thread = name.split("-")
        runs[int(item)] = (pid, thread)
    for first in range(0, 10, chunksize):  # a chunk's items all ran on one worker thread
        chunk = range(first, min(first + chunksize, 10))
        assert len({runs[item] for item in chunk}) == 1, (executor, runs)


def test_a_file_whose_name_is_no_identifier_is_imported_by_name(folder: Path):
    (folder / "my-work.py").write_text(TARGET, encoding="utf-8")
    code = snippet("process-spawn", "process", 2, 1, "./my-work.py:square", "range(4)")
    assert 'importlib.import_module("my-work").square' in code
    assert run_script(folder, code, folder / "marks") == set(range(4))


def test_spawned_workers_really_ran_the_items(folder: Path):
    code = snippet("process-spawn", "process", 2, 1, "work.py:square", "range(6)")
    assert 'get_context("spawn")' in code
    run_script(folder, code, folder / "marks")
    pids = {name.split("-")[1] for name in os.listdir(folder / "marks")}
    assert str(os.getpid()) not in pids and len(pids) >= 1


def test_asyncio_awaits_a_coroutine_function_under_a_semaphore(folder: Path):
    code = snippet("asyncio", "async", 3, 2, "work.py:fetch", "range(5)", coroutine=True)
    assert "asyncio.Semaphore(3)" in code and "await fetch(item)" in code
    ran, results = run_for_results(folder, code, folder / "marks")
    assert ran == set(range(5)) and results == [x * x for x in range(5)]


@pytest.mark.parametrize(("executor", "family"), [
    ("serial", "serial"), ("thread", "thread"), ("thread-pool", "thread"),
    ("process-pool", "process"), ("process-spawn", "process")])
def test_a_coroutine_function_elsewhere_gets_an_event_loop_per_chunk(folder: Path,
                                                                     executor: str, family: str):
    code = snippet(executor, family, 2, 2, "work.py:fetch", "range(5)", coroutine=True)
    assert "asyncio.Runner()" in code and "asyncio.run(" not in code
    ran, results = run_for_results(folder, code, folder / "marks")
    assert ran == set(range(5)) and results == [x * x for x in range(5)]


def test_a_module_target_is_imported_and_a_builtin_keeps_its_size(folder: Path):
    code = snippet("thread", "thread", 4, 1, "pkg.sub:Tool.run", None, n_items=50)
    assert "from pkg.sub import Tool" in code and "fn = Tool.run" in code
    assert "items = []  # fill in: your items (poolscope ran 50)" in code
    builtin = snippet("process", "process", 2, 2, "cpu", "range(3)", size=1000)
    assert "from poolscope.workloads import cpu" in builtin
    assert "partial(cpu, size=1000)" in builtin
    run_script(folder, builtin, folder / "marks")  # runs (it marks nothing: cpu does not)


def test_functions_that_cannot_be_imported_get_a_placeholder_that_says_so():
    code = snippet("serial", "serial", 1, None, "__main__:<lambda>", None)
    assert "fn = ...  # fill in" in code
    code = snippet("serial", "serial", 1, None, "__main__:work", "range(3)")
    assert "fn = work" in code and "where work is defined" in code
    assert snippet("no-such-executor", "", 1, 1, "cpu", None) is None


def test_other_executors_use_their_documented_apis():
    loky = snippet("loky", "process", 2, 4, "m:f", None)
    assert "get_reusable_executor(max_workers=2)" in loky and "chunksize=4" in loky
    dask = snippet("dask", "process", 3, 1, "m:f", None)
    assert "LocalCluster(n_workers=3, threads_per_worker=1)" in dask
    assert 'if __name__ == "__main__":' in dask
    interp = snippet("interpreter", "interpreter", 2, 1, "m:f", None)
    assert "InterpreterPoolExecutor(max_workers=2)" in interp
    elsewhere = snippet("thread@/opt/py314t/bin/python", "thread", 4, 1, "m:f", None)
    assert "run this script with it" in elsewhere and "/opt/py314t/bin/python" in elsewhere


def test_the_cli_json_carries_code_that_runs(folder: Path):
    poolscope = Path(sys.executable).with_name("poolscope")
    done = subprocess.run(
        [str(poolscope), "run", "./work.py:square", "--items", "6", "-e", "thread,process",
         "-w", "2", "--repeat", "1", "--no-store", "--json", "-"], cwd=folder,
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "MARKS": str(folder / "marks")})
    assert done.returncode == 0, done.stderr
    rec = json.loads(done.stdout)["recommendation"]
    assert rec["code"].startswith(f"# poolscope's recommendation: {rec['executor']} ")
    assert "items = range(6)" in rec["code"]
    for mark in os.listdir(folder / "marks"):
        os.unlink(folder / "marks" / mark)
    assert run_script(folder, rec["code"], folder / "marks") == set(range(6))


def test_terminal_and_markdown_show_the_code_whole():
    from poolscope.api import run_workload
    from poolscope.present.notebook import result_text
    from poolscope.present.terminal import markdown_summary
    from poolscope.workloads import resolve_workload

    result = run_workload(resolve_workload("cpu", 4, size=20_000), executors="serial",
                          repeat=1)
    code = result.recommendation.code
    assert "items = range(4)" in code
    text = result_text(result, width=60)  # narrower than the code: it must not wrap
    assert "code to paste" in text
    for line in code.splitlines():
        assert line in text.splitlines()
    markdown = markdown_summary(result)
    assert "```python\n" + code.rstrip("\n") + "\n```" in markdown


@pytest.mark.parametrize("name", ["run_chunk", "chunks", "chunk", "done", "result"])
def test_a_function_named_like_the_scripts_own_names_still_runs(folder: Path, name: str):
    (folder / "tools.py").write_text(f"def {name}(x):\n    return x + 100\n", encoding="utf-8")
    code = snippet("thread", "thread", 2, 3, f"./tools.py:{name}", "range(8)")
    assert run_for_results(folder, code, folder / "marks")[1] == [x + 100 for x in range(8)]
