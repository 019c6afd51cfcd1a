"""Subinterpreters (``interpreter``) and other interpreters (``NAME@/path/to/python``).

The other interpreters are pyenv's 3.12 and 3.13, each in a fresh venv (built once per session
under a temporary directory) holding only what poolscope's child needs there: cloudpickle.
These tests are skipped only when pyenv's interpreters are absent; a free-threaded build is
looked for too, and its test is skipped when there is none.
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import psutil
import pytest

import poolscope
from conftest import ROOT, run_cli
from poolscope import UsageError
from poolscope.api import run_workload
from poolscope.backends import REGISTRY, get_backend
from poolscope.backends.elsewhere import backend_for, function_reference
from poolscope.measure.runner import make_chunks, run_trial
from poolscope.workloads import Workload, resolve_workload

TESTS = Path(__file__).resolve().parent
CHILD_NEEDS = ["cloudpickle"]


def _pyenv_root() -> Path | None:
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        done = subprocess.run(["pyenv", "root"], capture_output=True, text=True)
        root = done.stdout.strip() if done.returncode == 0 else None
    root = root or os.path.expanduser("~/.pyenv")
    return Path(root) if os.path.isdir(root) else None


def _pyenv_python(version: str) -> str | None:
    """pyenv's CPython ``version`` (e.g. "3.13"), the newest patch release, GIL build."""
    root = _pyenv_root()
    if root is None:
        return None
    found = [p for p in glob.glob(str(root / "versions" / f"{version}.*" / "bin" / "python"))
             if not Path(p).parent.parent.name.endswith("t")]
    return max(found, key=lambda p: [int(x) for x in Path(p).parent.parent.name.split(".")
                                     if x.isdigit()], default=None)


def _venv(base: str | None, where: Path, name: str) -> str:
    """A venv of ``base`` with only what poolscope's child needs; skipped without ``base``."""
    if base is None:
        pytest.skip(f"pyenv's Python {name} is not installed")
    target = where / name
    subprocess.run([base, "-m", "venv", str(target)], check=True, timeout=120)
    python = str(target / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *CHILD_NEEDS], check=True, timeout=300)
    return python


@pytest.fixture(scope="session")
def py313(tmp_path_factory) -> str:
    return _venv(_pyenv_python("3.13"), tmp_path_factory.mktemp("venvs"), "3.13")


@pytest.fixture(scope="session")
def py312(tmp_path_factory) -> str:
    return _venv(_pyenv_python("3.12"), tmp_path_factory.mktemp("venvs"), "3.12")


def _free_threaded_python() -> str | None:
    candidates = [shutil.which(n) for n in ("python3.14t", "python3.13t")]
    root = _pyenv_root()
    if root is not None:
        candidates += glob.glob(str(root / "versions" / "*t" / "bin" / "python"))
    for candidate in filter(None, candidates):
        done = subprocess.run([candidate, "-c", "import sysconfig; print(sysconfig."
                               "get_config_var('Py_GIL_DISABLED'))"], capture_output=True,
                              text=True)
        if done.stdout.strip() == "1":
            return candidate
    return None


# --- without another interpreter ------------------------------------------------------------

def test_interpreter_says_why_it_is_unavailable_before_313():
    reason = REGISTRY["interpreter"].unavailable_reason()
    if sys.version_info >= (3, 13):
        assert reason is None
    else:
        assert reason.startswith("needs Python 3.13+")
        with pytest.raises(UsageError, match=r"executor 'interpreter' is not available here: "
                                             r"needs Python 3\.13\+"):
            get_backend("interpreter")


def test_interpreter_family_is_weighed_before_processes_and_other_interpreters():
    # design.md's simplicity order: one process with a GIL per interpreter is simpler than
    # worker processes; another interpreter (NAME@PATH) comes after both.
    from poolscope.families import family_of

    assert REGISTRY["interpreter"].family == "interpreter"
    rank = {name: family_of(name).rank for name in ("thread", "interpreter", "process")}
    assert rank["thread"] < rank["interpreter"] < rank["process"]
    assert rank["process"] < family_of("another interpreter's executor").rank


def _closure():
    k = 3
    return lambda x: x * k


def test_functions_go_to_other_interpreters_by_reference_only(tmp_path):
    import interp_workloads

    # Built-ins (a partial of a module function) and importable functions: by reference.
    function_reference(resolve_workload("cpu", 4, 10).fn)
    function_reference(interp_workloads.square)
    # A path/to/file.py:function target travels as its path, loaded again in the child.
    script = tmp_path / "work.py"
    script.write_text("def double(x):\n    return 2 * x\n")
    reference = function_reference(resolve_workload(f"{script}:double", 3).fn)
    assert str(script).encode() in reference
    namespace: dict = {"__name__": "__main__"}
    exec("def from_main(x):\n    return x\n", namespace)
    for fn, why in ((lambda x: x, "it is a lambda"), (_closure(), "it is a lambda"),
                    (namespace["from_main"], "from_main is defined in __main__")):
        with pytest.raises(UsageError, match=why) as info:
            function_reference(fn)
        assert "put it in a module" in str(info.value)


def test_executor_names_with_an_interpreter_are_checked():
    with pytest.raises(UsageError, match="unknown executor 'threads@/usr/bin/python3'"):
        get_backend("threads@/usr/bin/python3")
    with pytest.raises(UsageError, match="name the interpreter after '@'"):
        get_backend("thread@")
    cls = backend_for(f"process@{sys.executable}")
    assert cls.family == "process" and not cls.in_process
    assert cls.effective_workers(3) == 3
    assert backend_for(f"serial@{sys.executable}").effective_workers(4) == 1


def test_the_child_imports_this_poolscope_and_nothing_else_of_this_interpreter(tmp_path):
    from poolscope.backends.elsewhere import _child_env, isolated_root

    site = tmp_path / "site-packages"  # an installed poolscope, beside numpy built for 3.11
    (site / "poolscope").mkdir(parents=True)
    (site / "numpy").mkdir()
    (site / "numpy" / "__init__.py").write_text("")
    root = Path(isolated_root(site / "poolscope"))
    assert sorted(p.name for p in root.iterdir()) == ["poolscope"]
    assert (root / "poolscope").resolve() == (site / "poolscope").resolve()
    src = tmp_path / "src"  # a checkout's src: used as it is
    (src / "poolscope").mkdir(parents=True)
    (src / "poolscope.egg-info").mkdir()
    assert isolated_root(src / "poolscope") == str(src)
    path = _child_env()["PYTHONPATH"].split(os.pathsep)
    assert path[0] == str(ROOT / "src") and str(TESTS) in path  # pytest's test directory
    assert not any("site-packages" in p for p in path)


def _fake_python(tmp_path: Path, name: str, answer: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\necho '{answer}'\n")
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize("kind", ["missing", "not-executable", "directory", "not-python",
                                  "too-old"])
def test_bad_interpreter_paths_fail_in_one_line(tmp_path, kind):
    if kind == "not-executable":
        (tmp_path / "file").write_text("")
    path = {"missing": str(tmp_path / "nope" / "python"),
            "not-executable": str(tmp_path / "file"),
            "directory": str(tmp_path),
            "not-python": _fake_python(tmp_path, "hello", "hello"),
            "too-old": _fake_python(tmp_path, "python3.9", "poolscope-python 3 9 18")}[kind]
    expected = {"missing": "no such file", "not-executable": "is not executable",
                "directory": "is a directory", "not-python": "is not a Python interpreter",
                "too-old": "is Python 3.9.18; poolscope needs Python 3.10 or newer"}[kind]
    for args in (["executors", "--python", path],
                 ["run", "cpu", "--items", "2", "--size", "10", "-e", f"thread@{path}",
                  "--repeat", "1", "--no-store"]):
        done = run_cli(*args, cwd=tmp_path, timeout=60)
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("poolscope: error: "), done.stderr
        assert expected in lines[0]


# --- other interpreters: pyenv's 3.12 and 3.13 -----------------------------------------------

def _json_run(*args: str, cwd: Path) -> dict:
    done = run_cli("run", *args, "--json", "-", cwd=cwd, timeout=240)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.slow
def test_other_interpreters_run_a_builtin_workload_through_the_cli(tmp_path, py312, py313):
    executors = f"thread,thread@{py312},process@{py313}"
    store = tmp_path / "runs.db"
    result = _json_run("cpu", "--items", "8", "--size", "20000", "-e", executors, "-w", "2",
                       "--repeat", "1", "--store", str(store), cwd=tmp_path)
    rows = {row["executor"]: row for row in result["summary"]}
    assert set(rows) == {"serial", "thread", f"thread@{py312}", f"process@{py313}"}
    assert result["errors"] == []
    assert all(row["errors"] == 0 and row["wall_s"] > 0 for row in rows.values())
    interpreters = result["environment"]["interpreters"]
    for name, version, inner in ((f"thread@{py312}", "3.12.", "thread"),
                                 (f"process@{py313}", "3.13.", "process")):
        facts = interpreters[name]
        assert facts["executor"] == inner and facts["python"].startswith(version)
        assert facts["implementation"] == "CPython" and facts["free_threaded"] is False
        assert facts["gil_enabled"] is True
        [child] = facts["trials"]  # one trial: one child
        assert child["gil_enabled"] is True and child["gil_enabled_after"] is True
        assert 0 < child["startup_s"] < 60
    # The store keeps what was known before the trials (the interpreter, not the children).
    done = run_cli("show", "latest", "--json", "-", "--store", str(store), cwd=tmp_path)
    stored = json.loads(done.stdout)["environment"]["interpreters"]
    assert stored[f"thread@{py312}"]["python"].startswith("3.12.")


@pytest.mark.slow
def test_records_of_another_interpreter_join_the_time_axis(py313):
    workload = resolve_workload("cpu", 8, 20_000)
    result = run_workload(workload, executors=["thread", f"thread@{py313}"], workers=2,
                          repeat=2, explore_io=False)
    trials = sorted(result.trial_results, key=lambda t: t.t0_ns)
    assert [t.executor for t in trials] == ["serial", "thread", f"thread@{py313}"] * 2
    for t in trials:
        assert t.status == "ok", t.errors
        assert (t.items.start_ns >= 0).all() and (t.items.end_ns >= t.items.start_ns).all()
        assert t.items.end_ns.max() <= t.wall_s * 1e9
    for earlier, later in itertools.pairwise(trials):  # interleaved, one at a time
        assert earlier.t0_ns + earlier.wall_s * 1e9 <= later.t0_ns
    child = [t for t in trials if "@" in t.executor]
    pids = {int(p) for t in child for p in np.unique(t.items.pid)}
    # One child, kept for the configuration's second trial: it starts only once.
    assert os.getpid() not in pids and len(pids) == 1
    recorded = result.environment["interpreters"][f"thread@{py313}"]["trials"]
    assert [c["pid"] for c in recorded] == [*pids] * 2
    assert recorded[0]["startup_s"] > 0 and recorded[1]["startup_s"] == 0
    assert not pids & {p.pid for p in psutil.Process().children()}  # stopped with the run


@pytest.mark.slow
def test_interpreter_contract_under_313(py313):
    """The executor contract for ``interpreter``, run by 3.13 itself (tests/interp_contract.py):
    every item once, one time axis, threads of one process, item errors, lambdas and __main__
    functions by value, an unpicklable closure and an extension without subinterpreter
    support refused with the reason, nothing left behind."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}
    done = subprocess.run([py313, str(TESTS / "interp_contract.py")], capture_output=True,
                          text=True, timeout=120, env=env)
    outcome = json.loads(done.stdout)
    assert all(v == "ok" for v in outcome.values()), "\n".join(
        f"{k}: {v}" for k, v in outcome.items() if v != "ok")
    assert done.returncode == 0, done.stderr


def _min_wall(result, executor: str) -> float:
    return min(t.wall_s for t in result.trial_results
               if t.executor == executor and t.status == "ok")


def _parallel_speedup(serial: str, parallel: str):
    """Serial's best wall over the parallel executor's (2 workers, pools kept across trials),
    pure-Python loops; up to three runs, since this machine is shared and a busy moment
    deserves another chance. Returns the last result and every speedup measured."""
    workload = resolve_workload("cpu", 12, 1_500_000)
    speedups = []
    for _ in range(3):
        result = run_workload(workload, executors=[serial, parallel], workers=2, repeat=3,
                              baseline=False, reuse_pool=True, explore_io=False)
        speedups.append(round(_min_wall(result, serial) / _min_wall(result, parallel), 2))
        if speedups[-1] > 1.3:
            break
    return result, speedups


@pytest.mark.slow
def test_subinterpreters_run_python_in_parallel(py313):
    """Two isolated subinterpreters (a GIL each) run pure-Python loops side by side: clearly
    faster than serial under the same interpreter, items on two threads of one process."""
    serial, interpreter = f"serial@{py313}", f"interpreter@{py313}"
    result, speedups = _parallel_speedup(serial, interpreter)
    assert max(speedups) > 1.3, f"interpreter ×2 only {speedups}× serial"
    for t in result.trial_results:
        if t.executor == interpreter:
            assert len(np.unique(t.items.tid)) == 2 and len(np.unique(t.items.pid)) == 1
    facts = result.environment["interpreters"][interpreter]
    assert facts["executor"] == "interpreter" and facts["python"].startswith("3.13.")


@pytest.mark.slow
@pytest.mark.parametrize("inner", ["serial", "thread", "process", "interpreter"])
def test_contract_under_another_interpreter(py313, inner):
    import interp_workloads as w

    name = f"{inner}@{py313}"
    cls = get_backend(name)

    def trial(fn, n=12, chunksize=2):
        return run_trial(0, cls, fn, 2, make_chunks(list(range(n)), chunksize))

    t = trial(w.square)
    assert t.status == "ok", t.errors
    assert t.items.item.tolist() == list(range(12))
    assert (t.items.start_ns >= 0).all() and t.items.end_ns.max() <= t.wall_s * 1e9
    assert 0 <= t.startup_s <= t.wall_s and t.cpu_s >= 0 and t.peak_rss > 1 << 20
    pids = set(t.items.pid.tolist())
    assert os.getpid() not in pids
    assert len(pids) == 1 if inner != "process" else 1 <= len(pids) <= 2
    t = trial(w.fail_on_three)
    assert t.status == "partial"
    assert t.errors == [{"executor": name, "item": 3, "kind": "ValueError",
                         "message": "item 3 is bad"}]
    t = trial(lambda x: x)
    assert t.status == "failed" and t.errors[0]["kind"] == "UsageError"
    assert "it is a lambda" in t.errors[0]["message"]
    t = trial(w.exit_on_three, chunksize=1)
    assert len(t.errors) == 1
    if inner == "process":  # a worker of the child's pool died: the child names it
        assert t.status == "failed" and t.errors[0]["kind"] == "WorkerDiedError"
        assert t.errors[0]["item"] == 3
        assert re.match(r"item 3 \(worker pid \d+\): exit code 7 — the function ended the "
                        r"process itself.*; the pool broke", t.errors[0]["message"])
    else:  # the child itself died in item 3 (the board says so): the rest ran in a new child;
        # when its other thread was in an item too, that one ran again alone, and item 3 too
        assert t.status == "partial" and t.restarts in (1, 2)
        assert t.errors[0]["kind"] == "WorkerDiedError" and t.errors[0]["item"] == 3
        assert re.match(r"item 3 \(worker pid \d+\): exit code 7", t.errors[0]["message"])
        assert t.items.item.tolist() == [i for i in range(12) if i != 3]


@pytest.mark.slow
def test_a_function_that_cannot_go_by_reference_is_refused_before_any_trial(py313):
    workload = Workload(fn=lambda x: x, items=[1, 2], target="lambda")
    with pytest.raises(UsageError, match=r"it is a lambda.*put it in a module"):
        run_workload(workload, executors=[f"thread@{py313}"], workers=1, repeat=1)


@pytest.mark.slow
def test_executors_python_tells_what_runs_there_and_what_it_needs(tmp_path, py313):
    done = run_cli("executors", "--python", py313, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert "CPython 3.13." in out and "GIL build, GIL enabled" in out
    for name in ("serial", "thread", "process", "interpreter"):
        assert f"│ {name} " in done.stdout
    assert "cloudpickle: installed" in out
    # A bare interpreter: the command says what to install there.
    bare = _pyenv_python("3.13")
    done = run_cli("executors", "--python", bare, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert f"cloudpickle: missing — {bare} -m pip install cloudpickle" in out


# --- a free-threaded build -------------------------------------------------------------------

FREE_THREADED = _free_threaded_python()


@pytest.mark.slow
@pytest.mark.skipif(FREE_THREADED is None, reason="no free-threaded build on this machine")
def test_free_threaded_threads_run_in_parallel(tmp_path_factory, monkeypatch):
    """``thread@python3.14t``: the build is free-threaded, the GIL stays off once the workload
    is imported, and two threads run pure-Python loops side by side; with PYTHON_GIL=1 the
    same build reports the GIL on."""
    python = _venv(FREE_THREADED, tmp_path_factory.mktemp("venvs"), "free-threaded")
    serial, thread = f"serial@{python}", f"thread@{python}"
    result, speedups = _parallel_speedup(serial, thread)
    assert max(speedups) > 1.3, f"thread ×2 only {speedups}× serial with the GIL off"
    facts = result.environment["interpreters"][thread]
    assert facts["free_threaded"] is True and facts["gil_enabled"] is False
    assert all(c["gil_enabled"] is False and c["gil_enabled_after"] is False
               for c in facts["trials"])
    monkeypatch.setenv("PYTHON_GIL", "1")  # the same build, the GIL forced back on
    again = run_workload(resolve_workload("cpu", 4, 1000), executors=[thread], workers=2,
                         repeat=1, baseline=False, explore_io=False)
    assert again.environment["interpreters"][thread]["gil_enabled"] is True



@pytest.mark.slow
def test_subinterpreters_take_the_call_shape(py313):
    """issue 16, point 4, for the interpreter family: each subinterpreter runs the initializer
    once, outside the items' times, and the items are unpacked as arguments."""
    import shape_workloads as db

    name = f"interpreter@{py313}"
    items = [[1, 2], {"a": 3, "b": 4}, [5]] * 4
    result = poolscope.compare(db.query, items, executors=[name], workers=2, repeat=2,
                               baseline=False, star=True, initializer=db.connect,
                               initargs=("db", 0.05))
    assert not result.errors, result.errors[:3]
    for trial in result.trial_results:
        assert 1 <= len(trial.initializer_s) <= 2 and min(trial.initializer_s) >= 0.045
        assert (trial.items.end_ns - trial.items.start_ns).max() < 0.025e9
