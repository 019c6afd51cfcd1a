"""The Python front: poolscope.compare, as a notebook or a script uses it."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

import poolscope


def test_public_surface():
    assert set(poolscope.__all__) == {"Executor", "ItemsError", "PoolscopeError",
                                      "PreflightError", "Result", "TargetError", "UsageError",
                                      "compare", "load", "map", "sweep"}
    for name in poolscope.__all__:
        assert getattr(poolscope, name) is not None


def test_compare_returns_frames_and_a_recommendation():
    r = poolscope.compare(lambda x: sum(range(x * 1000)), range(12),
                          executors=["thread-pool", "process-pool"], workers=2, repeat=2)
    assert isinstance(r.summary, pd.DataFrame) and isinstance(r.items, pd.DataFrame)
    assert list(r.summary["executor"]) == ["serial", "thread-pool", "process-pool"]
    assert len(r.trials) == 6  # three executors × two repeats, interleaved
    assert list(r.trials["executor"][:3]) == ["serial", "thread-pool", "process-pool"]
    assert len(r.items) == 6 * 12
    assert r.recommendation.executor in ("serial", "thread-pool", "process-pool")
    assert r.classification in ("cpu-bound", "gil-releasing", "io-bound", "overhead-bound",
                                "transfer-bound", "mixed")
    assert r.exit_code == 0
    melted = r.melted()
    assert list(melted.columns) == ["variable", "value", "type"]
    assert set(melted["type"]) == {"serial", "thread-pool", "process-pool"}
    json.dumps(r.to_json(), allow_nan=False)


def test_compare_rejects_bad_arguments():
    with pytest.raises(poolscope.UsageError, match="unknown executor"):
        poolscope.compare(abs, range(3), executors=["nope"])
    with pytest.raises(poolscope.UsageError, match="no items"):
        poolscope.compare(abs, [])
    with pytest.raises(poolscope.UsageError, match="workers must be"):
        poolscope.compare(abs, range(3), workers=0)
    with pytest.raises(poolscope.UsageError, match="items must be a count or an iterable"):
        poolscope.compare(abs, 3.5)


SCRIPT = """
import json, sys
import poolscope

class Point:  # items of a class defined in __main__
    def __init__(self, n):
        self.n = n

def worker(p):
    return sum(range(10_000 + p.n))

def main():
    r = poolscope.compare(worker, [Point(i) for i in range(10)], executors=[
        "process", "process-fork", "process-spawn", "process-forkserver", "process-pool"],
        workers=2, repeat=1)
    json.dump({"errors": r.errors, "statuses": [t.status for t in r.trial_results],
               "items": len(r.items)}, sys.stdout)
"""


@pytest.mark.parametrize("how", ["guarded script", "unguarded script", "stdin"])
def test_function_defined_in_main_runs_under_every_process_executor(tmp_path, how):
    """The notebook's 'the worker must live in a separate module' step is gone."""
    script = tmp_path / "analysis.py"
    if how == "guarded script":
        script.write_text(SCRIPT + "\nif __name__ == '__main__':\n    main()\n")
        command, stdin = [sys.executable, str(script)], None
    elif how == "unguarded script":  # like a notebook cell: spawn must not re-run it
        script.write_text(SCRIPT.replace("class Point", "class _Unused").replace(
            "[Point(i) for i in range(10)]", "range(10)").replace("p.n", "p") + "\nmain()\n")
        command, stdin = [sys.executable, str(script)], None
    else:  # no file at all, as in a notebook
        command, stdin = [sys.executable, "-"], SCRIPT.replace(
            "class Point", "class _Unused").replace("[Point(i) for i in range(10)]",
                                                    "range(10)").replace("p.n", "p") + "main()\n"
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=tmp_path,
                          input=stdin)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["errors"] == []
    assert out["statuses"] == ["ok"] * 6
    assert out["items"] == 60
