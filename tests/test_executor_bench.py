"""`poolscope executors --bench`: start-up and overhead per item of each executor, measured."""

from __future__ import annotations

import json
import math

import pytest

from poolscope.executor_bench import bench_executors

pytestmark = pytest.mark.slow


def test_bench_orders_the_executors_as_their_machinery_says():
    # Three repeats, so that the median sets aside one trial slowed by the shared machine
    # (with two, one such trial made serial's overhead look like a process pool's).
    table = bench_executors(["serial", "thread", "process-fork", "process-pool"], items=1000,
                            repeat=3).set_index("executor")
    assert table["available"].all()
    # A forked process pool takes far longer to start than a thread pool or no pool at all.
    assert table.loc["process-fork", "startup_s"] > 3 * table.loc["thread", "startup_s"]
    assert table.loc["process-fork", "startup_s"] > 3 * table.loc["serial", "startup_s"]
    # One task per item costs a process pool a round trip per item; chunks amortise it. With
    # 1,000 items (300 before) the chunked run's fixed latency no longer holds the ratio near 3.
    for name in ("process-fork", "process-pool"):
        assert table.loc[name, "per_item_s"] > 3 * table.loc[name, "per_item_auto_s"]
    assert table.loc["process-fork", "per_item_s"] > table.loc["serial", "per_item_s"]
    assert all(value > 0 for value in table["per_item_s"])


def test_unavailable_executors_say_why(monkeypatch):
    from poolscope.backends import REGISTRY

    monkeypatch.setattr(REGISTRY["thread"], "unavailable_reason",
                        classmethod(lambda cls: "not on this machine"))
    row = bench_executors(["thread"], items=10, repeat=1).iloc[0]
    assert not row["available"] and row["reason"] == "not on this machine"
    assert math.isnan(row["startup_s"])


def test_cli_table_and_json(cli, tmp_path):
    done = cli("executors", "--bench", "--bench-items", "200", "--json", "bench.json",
               timeout=600)
    assert done.returncode == 0, done.stderr
    assert "start-up" in done.stdout and "per item, chunked" in done.stdout
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert doc["kind"] == "executor-bench"
    names = {row["executor"] for row in doc["executors"]}
    assert {"serial", "thread", "process-pool"} <= names
    for row in doc["executors"]:
        assert row["available"] is (row["startup_s"] is not None)
