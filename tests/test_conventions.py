"""What users of hyperfine, pyperf and pytest-benchmark expect to find (issue 16, point 3):
``--version``, ``history --json``, per-trial ``times``, ``poolscope.sweep``, a printable result
and recommendation, and ``dir(poolscope)`` that shows the public names."""

from __future__ import annotations

import json
import re
import statistics

import pytest

import poolscope
from poolscope.model import COUNTED
from poolscope.workloads import cpu


def spin(x: int) -> int:
    return sum(range(2_000 + x))


def test_version_is_the_packages(cli):
    done = cli("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"poolscope {poolscope.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", poolscope.__version__)
    from importlib.metadata import version

    assert version("poolscope") == poolscope.__version__  # pyproject reads it from there


def test_history_as_json(cli, tmp_path):
    assert cli("run", "tiny", "--items", "20", "-e", "thread", "-r", "1", "--quiet",
               "--store", "s.db").returncode == 0
    assert cli("run", "cpu", "--items", "4", "--size", "1000", "-e", "thread", "-r", "1",
               "--quiet", "--store", "s.db").returncode == 0
    done = cli("history", "--store", "s.db", "--json", "-")
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout)
    assert [run["target"] for run in runs] == ["cpu", "tiny"]  # newest first
    assert runs[0]["executors"] == ["serial", "thread"] and runs[0]["status"] == "complete"
    assert set(runs[0]) == {"run_id", "started_at", "target", "executors", "best", "status"}
    assert cli("history", "--store", "s.db", "--json", "h.json").returncode == 0
    assert json.loads((tmp_path / "h.json").read_text()) == runs
    bad = cli("history", "--store", "s.db", "--json", "no/such/dir/h.json")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_summary_rows_carry_each_trials_wall_time():
    result = poolscope.compare(spin, range(8), executors=["thread"], workers=2, repeat=3)
    rows = result.to_json()["summary"]
    for row in rows:
        trials = [t.wall_s for t in result.trial_results
                  if t.executor == row["executor"] and t.status in COUNTED]
        assert row["times"] == pytest.approx(trials) and len(row["times"]) == 3
        assert row["wall_s"] == pytest.approx(statistics.median(row["times"]))


def test_sweep_in_the_api_scales_over_workers_and_items():
    result = poolscope.sweep(spin, range(8), executors="thread", workers=[1, 2],
                             item_counts=[4, 8], repeat=1)
    assert result.options["sweep"] is True and result.options["item_counts"] == [4, 8]
    assert {(t.executor, t.workers) for t in result.trial_results} >= {
        ("serial", 1), ("thread", 1), ("thread", 2)}
    assert set(result.growth) == {"serial", "thread"}
    assert result.target.endswith(":spin")


def test_a_result_prints_as_its_tables_and_the_recommendation_as_a_sentence():
    result = poolscope.compare(cpu, range(4), executors=["thread"], workers=2, repeat=3)
    text = str(result)
    assert text.splitlines()[0].startswith("recommendation: ")  # the verdict first
    assert f"{result.target} · 4 items" in text and "executor × workers" in text
    rec = result.recommendation
    sentence = str(rec)
    verdict = "inconclusive — " if rec.inconclusive else ""
    assert sentence.startswith(f"{verdict}{rec.executor} with {rec.workers} worker")
    assert "(s)" not in sentence and "(s)" not in text
    assert sentence.endswith(rec.reasons[0].removeprefix("inconclusive: "))
    assert sentence.count("inconclusive") <= 1
    assert repr(rec).startswith("Recommendation(executor=")  # the fields, for a debugger


def test_dir_shows_the_public_names():
    names = dir(poolscope)
    assert {"compare", "sweep", "map", "load", "Executor", "Result", "__version__"} <= set(names)
    assert not {"Any", "TYPE_CHECKING", "annotations"} & set(names)
    assert callable(poolscope.sweep)
