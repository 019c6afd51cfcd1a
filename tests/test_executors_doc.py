"""docs/executors.md's worked example, as written: an executor of a new family is one module."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

import poolscope
from poolscope.analysis.decide import simplicity
from poolscope.backends import REGISTRY
from poolscope.families import FAMILIES, family_of
from poolscope.store import RunStore

DOC = Path(__file__).resolve().parent.parent / "docs" / "executors.md"

pytestmark = pytest.mark.timeout(120)


def square(x: int) -> int:
    return sum(i * i for i in range(x * 200))


@pytest.fixture
def fork_per_chunk(tmp_path, monkeypatch):
    """The page's module, written out and imported as the page says; unregistered after."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    module = next(b for b in blocks if b.startswith('"""fork_per_chunk.py'))
    path = tmp_path / "fork_per_chunk.py"
    path.write_text(module, encoding="utf-8")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    registry, families = dict(REGISTRY), dict(FAMILIES)
    spec = importlib.util.spec_from_file_location("fork_per_chunk", path)
    loaded = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "fork_per_chunk", loaded)
    try:
        spec.loader.exec_module(loaded)
        yield loaded
    finally:
        REGISTRY.clear()
        REGISTRY.update(registry)
        FAMILIES.clear()
        FAMILIES.update(families)


def test_the_new_executor_runs_beside_the_built_in_ones(fork_per_chunk, tmp_path):
    assert "fork-per-chunk" in REGISTRY and family_of("fork") is fork_per_chunk.FORK
    with RunStore(tmp_path / "runs.db") as store:
        result = poolscope.compare(square, range(24), executors="fork-per-chunk,process",
                                   workers=2, repeat=3, store=store)
    rows = result.summary.set_index("executor")
    assert {"serial", "fork-per-chunk", "process"} <= set(rows.index)
    mine = [t for t in result.trial_results if t.executor == "fork-per-chunk"]
    assert mine and all(t.status == "ok" and t.family == "fork" for t in mine)
    assert all(len(t.items) == 24 for t in mine)
    # Each chunk ran in a process of its own, and its CPU is counted from its records.
    assert all(len(set(t.items.pid.tolist())) >= 2 for t in mine)
    assert rows.loc["fork-per-chunk", "cpu_s"] > 0.5 * rows.loc["serial", "cpu_s"]
    # Its family's traits are asked of it: ranked with the process pools, pickling counted.
    families = result.families
    assert families["fork-per-chunk"] == "fork"
    assert simplicity("fork-per-chunk", 2, families) == simplicity("process", 2, families)
    assert simplicity("fork-per-chunk", 2, families) > simplicity("thread", 2, {"thread": "thread"})


def test_a_stored_run_of_it_reads_back_without_it(fork_per_chunk, tmp_path):
    with RunStore(tmp_path / "runs.db") as store:
        poolscope.compare(square, range(8), executors="fork-per-chunk", workers=2, repeat=1,
                          store=store)
    REGISTRY.pop("fork-per-chunk")
    FAMILIES.pop("fork")
    back = poolscope.load("latest", store=tmp_path / "runs.db")
    assert back.families["fork-per-chunk"] == "fork"  # recorded with each trial
    assert family_of("fork").rank > family_of("cluster").rank  # unknown here now: ranked last
    assert back.recommendation is not None
