"""Real call shapes (issue 16, point 4): ``star`` unpacks each item as arguments and an
``initializer`` runs once in each worker before its first item, outside the items' times, under
every executor family (another interpreter's subinterpreters: test_interpreters.py)."""

from __future__ import annotations

import json

import pytest

import poolscope
import shape_workloads as db

pytestmark = pytest.mark.slow

ITEMS = [[1, 2], {"a": 3, "b": 4}, [5], (6, 7)] * 4  # positional, keywords, defaults, tuples
CONNECT_S = 0.05


@pytest.mark.parametrize("executor", ["serial", "thread", "thread-pool", "process",
                                      "process-spawn", "process-pool", "asyncio", "loky",
                                      "dask"])
def test_every_family_unpacks_items_and_initializes_each_worker_outside_the_items(executor):
    result = poolscope.compare(db.query, ITEMS, executors=[executor], workers=2, repeat=2,
                               baseline=False, star=True, initializer=db.connect,
                               initargs=("db.sqlite", CONNECT_S))
    assert not result.errors, result.errors[:3]
    for trial in result.trial_results:
        assert trial.status == "ok"
        workers = len(set(zip(trial.items.pid.tolist(), trial.items.tid.tolist(), strict=True)))
        assert 1 <= len(trial.initializer_s) <= max(workers, 2), trial.initializer_s
        assert min(trial.initializer_s) >= CONNECT_S * 0.9
        item_walls = trial.items.end_ns - trial.items.start_ns
        assert item_walls.max() < CONNECT_S * 1e9 * 0.5  # the connection is not in an item
    (row,) = result.to_json()["summary"]
    assert row["initializer_s"] >= CONNECT_S * 0.9
    assert result.options["star"] and result.options["initializer"].endswith(":connect")


def test_a_kept_pool_initializes_its_workers_once_a_fresh_pool_every_trial():
    kept = poolscope.compare(db.query, ITEMS, executors=["thread"], workers=2, repeat=3,
                             baseline=False, star=True, initializer=db.connect,
                             initargs=("db", 0.01), reuse_pool=True)
    assert sum(len(t.initializer_s) for t in kept.trial_results) == 2
    fresh = poolscope.compare(db.query, ITEMS, executors=["thread"], workers=2, repeat=3,
                              baseline=False, star=True, initializer=db.connect,
                              initargs=("db", 0.01))
    assert [len(t.initializer_s) >= 1 for t in fresh.trial_results] == [True] * 3


def test_an_initializer_that_raises_fails_its_workers_items_and_says_why():
    with pytest.raises(poolscope.PreflightError, match="InitializerFailed: the initializer "
                       r"shape_workloads:no_database raised OSError: no database at db\.sqlite"):
        poolscope.compare(db.query, ITEMS, executors=["thread"], workers=2, repeat=1,
                          star=True, initializer=db.no_database)


def test_bad_shapes_are_one_line_usage_errors(cli, tmp_path):
    (tmp_path / "items.jsonl").write_text("[1, 2]\n7\n", encoding="utf-8")
    target = f"{db.__file__}:query"
    for args, message in (
            (["--items", "4", "--star"], "star: item 0 is a int"),
            (["--items-from", "items.jsonl", "--star"], "star: item 1 is a int"),
            (["--items", "4", "--initargs", "[1]"], "--initargs needs --initializer"),
            (["--items", "4", "--initializer", f"{db.__file__}:connect", "--initargs", "{}"],
             "--initargs must be a JSON list"),
            (["--items", "4", "--initializer", "no_such_module_here:connect"], "no_such")):
        done = cli("run", target, *args, "-e", "thread", "-r", "1", "--quiet", "--no-store")
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1 and message in done.stderr, (args, done.stderr)


def test_the_cli_shows_the_initializer_apart_and_pastes_the_same_call(cli, tmp_path):
    lines = "".join(json.dumps(item) + "\n" for item in ITEMS)
    (tmp_path / "items.jsonl").write_text(lines, encoding="utf-8")
    done = cli("run", f"{db.__file__}:query", "--items-from", "items.jsonl", "--star",
               "--initializer", f"{db.__file__}:connect", "--initargs", '["db.sqlite", 0.05]',
               "-e", "thread,process", "-w", "2", "-r", "2", "--quiet", "--no-store",
               "--json", "out.json")
    assert done.returncode == 0, done.stderr
    shown = next(line for line in done.stdout.splitlines() if line.startswith("initializer: "))
    assert "thread ×2" in shown and "per worker" in shown
    doc = json.loads((tmp_path / "out.json").read_text())
    assert all(row["initializer_s"] >= 0.045 for row in doc["summary"])
    code = doc["recommendation"]["code"]
    assert "def call(item):" in code and "init('db.sqlite', 0.05)" in code
    assert "query(**item) if isinstance(item, dict) else query(*item)" in code


def test_the_magic_takes_the_call_shape(tmp_path, monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # no history thread left behind
    shell = InteractiveShell.instance(config=config)
    try:
        shell.run_cell("%load_ext poolscope", store_history=False)
        shell.user_ns.update(db=db, pairs=ITEMS, connect=db.connect)
        r = shell.run_cell("%poolscope db.query pairs --star --initializer connect "
                           "--initargs '[\"db\", 0.01]' -e thread -w 2 -r 1 -q --no-store"
                           ).result
        assert isinstance(r, poolscope.Result) and not r.errors
        assert all(t.initializer_s for t in r.trial_results)
    finally:
        InteractiveShell.clear_instance()


def test_sweep_takes_the_call_shape_too(cli, tmp_path):
    lines = "".join(json.dumps(item) + "\n" for item in ITEMS)
    (tmp_path / "items.jsonl").write_text(lines, encoding="utf-8")
    done = cli("sweep", f"{db.__file__}:query", "--items-from", "items.jsonl", "--star",
               "--initializer", f"{db.__file__}:connect", "--initargs", '["db", 0.02]',
               "-e", "thread", "-w", "1,2", "-r", "1", "--quiet", "--no-store", "--json", "-")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["summary"]
    assert {row["workers"] for row in rows} == {1, 2}
    assert all(row["initializer_s"] >= 0.018 for row in rows) and not any(
        row["errors"] for row in rows)


def test_a_hanging_initializer_is_stopped_by_the_limits(cli, tmp_path):
    """It runs where the first item of its chunk would: --timeout stops it as that item."""
    (tmp_path / "hang.py").write_text("import time\n\ndef forever():\n    time.sleep(1000)\n",
                                      encoding="utf-8")
    lines = "".join(json.dumps(item) + "\n" for item in ITEMS[:4])
    (tmp_path / "items.jsonl").write_text(lines, encoding="utf-8")
    done = cli("run", f"{db.__file__}:query", "--items-from", "items.jsonl", "--star",
               "--initializer", "hang.py:forever", "-e", "thread,process", "-w", "2", "-r", "1",
               "--quiet", "--no-store", "--timeout", "1", timeout=150)
    assert done.returncode == 1, done.stderr
    assert "it ran longer than --timeout 1 s" in done.stdout
