"""Smoke test of the truth suite (benchmarks/bench_truth.py): it runs and gives every workload
a verdict. Whether the verdicts are right is the benchmark's job, not this test's."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_truth.py"
CHEAP = ("tiny", "py_compute")


def bench(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_quick_run_prints_a_verdict_per_workload() -> None:
    done = bench("--quick", "--workloads", ",".join(CHEAP), "--rounds", "1", "--max-time", "2",
                 timeout=240)
    assert done.returncode == 0, done.stderr
    assert "truth suite" in done.stdout
    for name in CHEAP:
        rows = [line for line in done.stdout.splitlines() if line.startswith(f"│ {name} ")]
        assert len(rows) == 1, done.stdout
        cells = [cell.strip() for cell in rows[0].strip("│").split("│")]
        assert cells[-1] in ("right", "WRONG"), rows[0]
        # its bare time ÷ the best ("–": poolscope gave no recommendation)
        assert re.fullmatch(r"\d+\.\d\d|–", cells[-2]), rows[0]
    assert re.search(r"^\d of 2 right", done.stdout, re.MULTILINE), done.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("--workloads", "tiny,nope"), "unknown workload(s) nope"),
    (("--workloads", ","), "--workloads names none"),
    (("--rounds", "0"), "--rounds must be at least 1"),  # not taken as "the default"
    (("--max-time", "0"), "--max-time more than 0"),
])
def test_bad_options_are_bad_usage(args: tuple[str, ...], message: str) -> None:
    done = bench(*args, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def truth() -> Any:
    """bench_truth imported as the script imports it (its folder on sys.path)."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        yield importlib.import_module("bench_truth")
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_every_local_executor_has_a_bare_equivalent(truth: Any) -> None:
    from poolscope.backends import REGISTRY

    # Subinterpreters and Dask have no standard-library run to compare against.
    assert set(REGISTRY) - {"interpreter", "dask"} == set(truth.BARE)


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["serial", "thread", "thread-pool", "process",
                                      "process-spawn", "process-pool", "asyncio", "loky"])
def test_a_bare_run_returns_every_result_in_order(truth: Any, executor: str) -> None:
    if executor == "loky":
        pytest.importorskip("loky")
    items = list(range(30))
    done = truth.bare_map(truth.Config(executor, 2, 4), truth.truth_workloads.tiny, items)
    assert done == [truth.truth_workloads.tiny(item) for item in items]


def test_a_failed_cli_run_is_no_recommendation(truth: Any, tmp_path: Path) -> None:
    case = truth.Case("no_such_function", "none", 2, 2)
    stale = {"classification": "cpu-bound", "recommendation": {"executor": "serial", "workers": 1}}
    (tmp_path / "no_such_function.json").write_text(json.dumps(stale), encoding="utf-8")
    verdict = truth.poolscope_verdict(case, ["--items", "2"], 1.0, tmp_path)
    assert verdict.config is None  # not the stale result left in the folder
    assert verdict.problem.startswith("exit 2: ")
    assert "no_such_function" in verdict.problem
