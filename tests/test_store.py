"""The run history: stored as it happens, read back whole, safe against kills and neighbours."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import poolscope
from conftest import run_cli
from poolscope.api import run_workload
from poolscope.store import SCHEMA_VERSION, RunStore
from poolscope.workloads import resolve_workload


def test_a_stored_run_loads_as_the_same_result(tmp_path):
    with RunStore(tmp_path / "s.db") as store:
        fresh = run_workload(resolve_workload("cpu", 12, size=50_000),
                             executors="thread,process", workers=2, repeat=2, store=store)
    loaded = poolscope.load(fresh.run_id, store=tmp_path / "s.db")
    assert loaded.run_id == fresh.run_id
    cols = ["executor", "item", "start_s", "end_s", "cpu_s", "pid", "tid", "core", "status"]
    assert loaded.items[cols].equals(fresh.items[cols])
    assert loaded.summary.equals(fresh.summary)
    assert loaded.recommendation.executor == fresh.recommendation.executor
    ours, theirs = loaded.to_json(), fresh.to_json()
    for key in ("summary", "classification", "errors", "items", "target"):
        assert ours[key] == theirs[key], key
    assert loaded.plot(tmp_path / "again.png") is not None


def test_a_stored_run_says_each_executors_family_without_the_registry(tmp_path, monkeypatch):
    """Schema 5: each trial's family is stored, so an executor the registry no longer has (a
    renamed one, a plugin not installed) still reads back as the family it ran as."""
    with RunStore(tmp_path / "s.db") as store:
        fresh = run_workload(resolve_workload("cpu", 8, size=20_000),
                             executors="thread,process", workers=2, repeat=1, store=store)
    assert {t.executor: t.family for t in fresh.trial_results} == {
        "serial": "serial", "thread": "thread", "process": "process"}
    monkeypatch.setattr("poolscope.result.REGISTRY", {})
    loaded = poolscope.load(fresh.run_id, store=tmp_path / "s.db")
    assert loaded.families == {"serial": "serial", "thread": "thread", "process": "process"}
    assert [row["family"] for row in loaded.to_json()["summary"]] == [
        "serial", "thread", "process"]
    assert loaded.classification == fresh.classification


def test_cli_stores_by_default_and_reads_back(cli, tmp_path):
    assert cli("run", "cpu", "--items", "4", "--size", "10000", "-r", "1", "--quiet",
               "-e", "thread").returncode == 0
    assert (tmp_path / ".poolscope" / "poolscope.db").is_file()
    assert cli("run", "tiny", "--items", "50", "-r", "1", "--quiet", "-e", "thread",
               "--no-store").returncode == 0
    history = cli("history")
    assert history.returncode == 0
    assert history.stdout.count("complete") == 1 and "cpu" in history.stdout
    shown = cli("show", "latest", "--json", "-")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["target"] == "cpu"


def test_store_location_from_the_environment(tmp_path):
    env_store = tmp_path / "elsewhere.db"
    env = {**os.environ, "POOLSCOPE_STORE": str(env_store)}
    done = subprocess.run([sys.executable, "-m", "poolscope", "run", "tiny", "--items", "20",
                           "-r", "1", "-e", "thread", "--quiet"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert env_store.is_file() and not (tmp_path / ".poolscope").exists()


def test_run_references(tmp_path):
    path = tmp_path / "s.db"
    with RunStore(path) as store:
        ids = [run_workload(resolve_workload("tiny", 10), executors="thread", workers=1,
                            repeat=1, store=store).run_id for _ in range(3)]
        assert store.resolve("latest") == ids[-1]
        assert store.resolve("latest~2") == ids[0]
        assert store.resolve(ids[1][:22]) == ids[1]
        with pytest.raises(poolscope.UsageError, match="ambiguous"):
            store.resolve("2")
        with pytest.raises(poolscope.UsageError, match="no run"):
            store.resolve("latest~9")


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_bytes(os.urandom(4096)), "is not a usable poolscope store"),
    (lambda p: sqlite3.connect(p).execute("CREATE TABLE t (x)").connection.commit(),
     "not a poolscope store"),
    (lambda p: sqlite3.connect(p).executescript(
        f"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);"
        f"INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION + 1}');"),
     "written by a newer poolscope"),
])
def test_bad_stores_exit_2_and_are_left_alone(tmp_path, make, message):
    path = tmp_path / "bad.db"
    make(path)
    before = path.read_bytes()
    for args in (["history"], ["show", "latest"],
                 ["run", "tiny", "--items", "5", "-e", "thread", "-r", "1", "--quiet"]):
        done = run_cli(*args, "--store", str(path), cwd=tmp_path)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.count("\n") == 1 and message in done.stderr
    assert path.read_bytes() == before


def test_unknown_run_and_missing_store(cli, tmp_path):
    assert cli("show", "latest").stderr.startswith("poolscope: error: no poolscope store at")
    cli("run", "tiny", "--items", "5", "-e", "thread", "-r", "1", "--quiet")
    done = cli("show", "nope")
    assert done.returncode == 2 and "no run 'nope'" in done.stderr


def test_two_writers_at_once(tmp_path):
    # Each run stores for about 5 s, longer than a CLI's start-up: their writes overlap.
    command = [sys.executable, "-m", "poolscope", "run", "io", "--items", "30", "--size", "20",
               "-e", "thread", "-w", "2", "-r", "5", "--quiet", "--store", "shared.db"]
    procs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    with RunStore(tmp_path / "shared.db") as store:
        runs = store.history()
        assert [r["status"] for r in runs] == ["complete", "complete"]
        for run in runs:
            assert len(store.load(run["run_id"]).trial_results) == 10
    with sqlite3.connect(tmp_path / "shared.db") as db:
        (_, first_end), (second_start, _) = db.execute(
            "SELECT started_at, finished_at FROM runs ORDER BY started_at")
    assert second_start < first_end, "the two runs did not write at the same time"


def test_writes_together_wait_for_a_neighbours_lock_and_land_whole(tmp_path):
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        store.begin_run("r1", "2026-01-01T00:00:00", "t", 2, ["serial"], {}, {})
        neighbour = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        neighbour.execute("BEGIN IMMEDIATE")  # another poolscope holds the write lock
        released = threading.Timer(0.3, lambda: neighbour.execute("COMMIT"))
        released.start()
        began = time.monotonic()
        store.together(lambda: [store._write("INSERT INTO meta VALUES (?, ?)", (key, "v"))
                                for key in ("k1", "k2")])
        assert time.monotonic() - began >= 0.25  # it waited for the lock, then wrote
        released.join(timeout=10)
        neighbour.close()
        with pytest.raises(sqlite3.IntegrityError):  # the second row fails: the first goes too
            store.together(lambda: [store._write("INSERT INTO meta VALUES (?, ?)", (key, "v"))
                                    for key in ("k3", "k1")])
        keys = {k for (k,) in store.db.execute("SELECT key FROM meta WHERE key LIKE 'k%'")}
    assert keys == {"k1", "k2"}


def _committed_trials(path: Path) -> set[tuple[str, int]]:
    """The trials a reader sees committed now (none before the store exists)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=5)) as db:
            return set(db.execute("SELECT run_id, trial FROM trials"))
    except sqlite3.OperationalError:
        return set()  # not created yet


@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing_committed(tmp_path):
    """Kill the real CLI and its workers 12 times: half at a random moment after launch (some
    before the store exists), half at a random moment once its run is being stored."""
    rng = random.Random(1234)
    path = tmp_path / "killed.db"
    command = [sys.executable, "-m", "poolscope", "run", "io", "--items", "40", "--size", "10",
               "-e", "thread,process", "-w", "2", "-r", "20", "--chunksize", "2", "--quiet",
               "--store", str(path)]
    kills = 12
    for kill in range(kills):
        runs_before = _count_runs(path)
        proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        if kill % 2 == 0:
            time.sleep(rng.uniform(0.0, 4.0))
        else:  # wait for this run's row (a busy machine may take seconds to start), then some
            deadline = time.monotonic() + 60
            while _count_runs(path) <= runs_before and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 3.0))
        committed = _committed_trials(path)  # read just before the kill: all must survive it
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its workers, as the OOM killer might
        proc.wait(timeout=30)
        if not path.exists():
            continue
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert committed <= set(db.execute("SELECT run_id, trial FROM trials"))
        # every committed trial has all of its chunks: 40 items in chunks of 2, serial too
        for run_id, trial, chunksize in db.execute(
                "SELECT run_id, trial, chunksize FROM trials WHERE status = 'ok'"):
            count = db.execute("SELECT COUNT(*) FROM chunks WHERE run_id = ? AND trial = ?",
                               (run_id, trial)).fetchone()[0]
            assert count == 40 // chunksize
        db.close()
    with RunStore(path) as store:
        runs = store.history()
        assert len(runs) >= kills // 2  # every kill after a run row leaves that run
        assert {r["status"] for r in runs} == {"incomplete"}
        for run in runs:
            result = store.load(run["run_id"])
            assert result.interrupted
            indexes = [t.index for t in result.trial_results]
            assert indexes == sorted(set(indexes))  # no duplicates
            assert all(len(t.items) == 40 for t in result.trial_results if t.status == "ok")
    history = run_cli("history", "--store", str(path), cwd=tmp_path)
    assert history.returncode == 0 and "incomplete" in history.stdout


def _count_runs(path: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=5)) as db:
            return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_history_filters(tmp_path):
    path = tmp_path / "s.db"
    with RunStore(path) as store:
        for target in ("tiny", "tiny", "cpu"):
            run_workload(resolve_workload(target, 4, size=1000 if target == "cpu" else None),
                         executors="thread", workers=1, repeat=1, store=store)
        assert len(store.history(target="tiny")) == 2
        assert store.history(since="2999-01-01") == []
    done = run_cli("history", "--store", str(path), "--since", "yesterday", cwd=tmp_path)
    assert done.returncode == 2 and "--since" in done.stderr


@pytest.mark.parametrize("columns", [None, "80", "60"])
def test_history_rows_keep_their_id_and_status_whole(tmp_path, columns):
    """Piped (no COLUMNS), a row is one whole line, for grep; a narrow terminal wraps the
    target and executors, and drops the start time (the id begins with it), never cutting the
    id or the status."""
    path = tmp_path / "s.db"
    with RunStore(path) as store:
        run_workload(resolve_workload("tiny", 4), executors="thread,process", workers=1,
                     repeat=1, store=store)
        (run,) = store.history()
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    if columns:
        env["COLUMNS"] = columns
    done = subprocess.run([sys.executable, "-m", "poolscope", "history", "--store", str(path)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    row = next(line for line in lines if run["run_id"] in line)
    assert row.split()[-1] == "complete" and "…" not in done.stdout
    if columns is None:
        assert "tiny" in row and run["executors"].replace(",", ", ") in row
        assert run["best"] and run["best"] in row
        assert run["started_at"].replace("T", " ")[:19] in row
    else:
        assert max(len(line) for line in lines) <= int(columns)


def test_stored_chunks_are_columnar(tmp_path):
    path = tmp_path / "s.db"
    with RunStore(path) as store:
        run_workload(resolve_workload("tiny", 10_000), executors="serial", workers=1,
                     repeat=1, baseline=False, store=store)
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == 4  # auto: 4 chunks
    assert Path(path).stat().st_size < 2_000_000


def test_remote_workers_hosts_and_retries_are_stored(tmp_path):
    """What an executor with workers on other hosts adds (dask): each chunk's host, worker
    address and retried flag, and the trial's workers with their clock offsets."""
    from array import array

    from poolscope.measure.probe import ChunkRecord
    from poolscope.model import ItemColumns, TrialResult
    from poolscope.result import Result

    def record(first: int, host: str, worker: str, retried: bool) -> ChunkRecord:
        return ChunkRecord(first=first, start_ns=array("q", [10, 20]), end_ns=array("q", [15, 30]),
                           cpu_marks_ns=array("q", [0, 4, 12]), core=array("i", [0, 1]),
                           status=array("b", [0, 0]), errors=[], pid=7, tid=8, process_cpu_s=0.5,
                           process_maxrss=1 << 20, results=[], host=host, worker=worker,
                           retried=retried)

    records = [record(0, "alpha", "tcp://10.0.0.1:1", False),
               record(2, "beta", "tcp://10.0.0.2:1", True)]
    info = [{"address": "tcp://10.0.0.1:1", "host": "alpha", "clock_offset_s": 0.001,
             "clock_uncertainty_s": 0.0002},
            {"address": "tcp://10.0.0.2:1", "host": "beta", "clock_offset_s": -0.003,
             "clock_uncertainty_s": 0.0004}]
    trial = TrialResult(index=0, executor="dask", workers=2, chunksize=2, repeat=0, wall_s=1.0,
                        cpu_s=1.0, startup_s=0.0, teardown_s=0.0, peak_rss=0, status="ok",
                        host="here", items=ItemColumns.from_chunks(records, 0), t0_ns=0,
                        worker_info=info)
    fresh = Result(run_id="remote", target="t", n_items=4, trial_results=[trial],
                   environment={"cpu_count": 2})
    with RunStore(tmp_path / "s.db") as store:
        store.begin_run("remote", "2026-11-26T00:00:00", "t", 4, ["dask"], fresh.environment, {})
        for r in records:
            store.add_chunk("remote", 0, r)
        store.end_trial("remote", trial)
        store.end_run(fresh)
        loaded = store.load("remote")
    assert loaded.trial_results[0].worker_info == info
    items = loaded.items
    assert items["host"].tolist() == ["alpha", "alpha", "beta", "beta"]
    assert items["worker"].tolist() == ["tcp://10.0.0.1:1"] * 2 + ["tcp://10.0.0.2:1"] * 2
    assert items["retried"].tolist() == [False, False, True, True]


WORK = """from pathlib import Path


def work(x):  # the code under test: factor.txt says how slow this version of it is
    return sum(range(int(Path(__file__).with_name("factor.txt").read_text()) * 100_000))
"""


def test_compare_finds_a_real_regression_and_fails_ci_only_then(cli, tmp_path):
    (tmp_path / "work.py").write_text(WORK, encoding="utf-8")
    base = ["work.py:work", "--items", "8", "-e", "process", "-w", "2", "-r", "5", "--quiet"]
    (tmp_path / "factor.txt").write_text("1")
    assert cli("run", *base).returncode == 0
    (tmp_path / "factor.txt").write_text("4")  # the code got 4× slower
    assert cli("run", *base).returncode == 0
    slower = cli("compare", "latest~1", "latest", "--fail-on-regression", "20",
                 "--json", "change.json")
    assert slower.returncode == 1, slower.stdout + slower.stderr
    assert "regression beyond 20%" in slower.stdout
    doc = json.loads((tmp_path / "change.json").read_text())
    verdicts = {c["executor"]: c["verdict"] for c in doc["changes"]}
    assert verdicts == {"serial": "slower", "process": "slower"}
    faster = cli("compare", "latest", "latest~1", "--fail-on-regression", "20")
    assert faster.returncode == 0 and "faster" in faster.stdout
    same = cli("compare", "latest", "latest", "--fail-on-regression", "5")
    assert same.returncode == 0 and "no measurable change" in same.stdout
    # In 80 columns the verdict wraps; no number and no verdict is cut ("…" only as the
    # interval's own dash).
    for refs, verdict in ((["latest~1", "latest"], "slower"), (["latest", "latest"], "no")):
        narrow = subprocess.run([sys.executable, "-m", "poolscope", "compare", *refs],
                                cwd=tmp_path, capture_output=True, text=True, timeout=120,
                                env={**os.environ, "COLUMNS": "80", "NO_COLOR": "1"})
        assert narrow.returncode == 0, narrow.stderr
        lines = narrow.stdout.splitlines()
        rows = [line for line in lines if re.match(r" (serial|process) ×", line)]
        assert len(rows) == 2 and max(len(line) for line in lines) <= 80
        assert "…" not in narrow.stdout.replace(" … ", "")
        number = r"\d+(\.\d+)? (µs|ms|s)"
        for row in rows:
            assert re.search(rf"{number} +{number} +[+-]\d+\.\d% +[+-]\d+% … [+-]\d+% +"
                             rf"{verdict}", row), row


def test_compare_says_when_two_runs_are_not_the_same_experiment(cli, tmp_path):
    base = ["--items", "8", "-e", "thread", "-w", "2", "-r", "3", "--quiet"]
    assert cli("run", "cpu", "--size", "20000", *base).returncode == 0
    assert cli("run", "cpu", "--size", "80000", *base).returncode == 0  # other items
    assert cli("run", "tiny", *base).returncode == 0  # another target
    shown = cli("compare", "latest~2", "latest~1", "--json", "change.json")
    assert shown.returncode == 0, shown.stderr
    assert "not the same experiment: different items: --size 20000 and 80000" in shown.stdout
    assert json.loads((tmp_path / "change.json").read_text())["not_the_same_experiment"] == [
        "different items: --size 20000 and 80000"]
    refused = cli("compare", "latest~2", "latest~1", "--fail-on-regression", "20")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "not the same experiment (different items" in refused.stderr
    other = cli("compare", "latest~1", "latest")
    assert "different targets: cpu and tiny" in other.stdout
    same = cli("compare", "latest~1", "latest~1")
    assert same.returncode == 0 and "not the same experiment" not in same.stdout


def test_machines_differ_by_their_hardware_not_their_names():
    from types import SimpleNamespace

    from poolscope.analysis.change import mismatches

    def run(**environment):
        machine = {"hostname": "ci-1", "processor": "x86_64", "cpu_count": 2,
                   "memory_bytes": 2**34, **environment}
        return SimpleNamespace(target="t", n_items=4, options={"size": None},
                               environment=machine)

    assert mismatches(run(), run(hostname="ci-2")) == []
    (said,) = mismatches(run(), run(hostname="big", cpu_count=16))
    assert said == "different machines: ci-1 (2 cores, x86_64, 16.0 GiB) and big (16 cores, " \
                   "x86_64, 16.0 GiB)"


def test_export_formats(cli, tmp_path):
    assert cli("run", "tiny", "--items", "30", "-e", "thread", "-r", "2", "--quiet"
               ).returncode == 0
    for fmt in ("csv", "parquet", "json", "perfetto"):
        done = cli("export", "latest", "--format", fmt, "-o", f"out.{fmt}")
        assert done.returncode == 0, done.stderr
    import pandas as pd

    assert len(pd.read_csv(tmp_path / "out.csv")) == 4 * 30  # serial and thread, 2 trials each
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == 4 * 30
    assert json.loads((tmp_path / "out.json").read_text())["schema"] == "poolscope/1"
    trace = json.loads((tmp_path / "out.perfetto").read_text())["traceEvents"]
    assert sum(e["ph"] in ("X", "b") and e.get("cat", "").startswith("item")
               for e in trace) == 4 * 30
    bad = cli("export", "latest", "--format", "xml")
    assert bad.returncode == 2 and "--format must be csv, parquet, json or perfetto" in bad.stderr


def test_a_read_only_location_is_one_line_and_exit_2(cli):
    done = cli("run", "tiny", "--items", "5", "-e", "thread", "-r", "1", "--quiet",
               "--store", "/proc/poolscope/poolscope.db")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "cannot create the store's directory /proc/poolscope" in done.stderr


def test_a_full_disk_is_one_line_and_exit_2(tmp_path):
    """RLIMIT_FSIZE makes every write past 200 KiB fail with EFBIG, as a full disk would."""
    import resource

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write instead of the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (200 << 10, 200 << 10))

    done = subprocess.run(
        [sys.executable, "-m", "poolscope", "run", "tiny", "--items", "200000", "-e", "thread",
         "-r", "2", "--chunksize", "100", "--quiet", "--store", "full.db"],
        cwd=tmp_path, capture_output=True, text=True, timeout=180, preexec_fn=small_disk)
    assert done.returncode == 2, (done.stdout[-500:], done.stderr)
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("poolscope: error: cannot write to the store full.db")


# --- schema migrations -------------------------------------------------------------------------
DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_every_earlier_schema_is_upgraded_and_read_back(tmp_path, version):
    """tests/data/store-vN.db was written by poolscope's own code at store schema N: a run of
    cpu under thread and process ×2 (2 trials each), then a sweep with two item counts."""
    path = tmp_path / "old.db"
    path.write_bytes((DATA / f"store-v{version}.db").read_bytes())
    before = sqlite3.connect(path)
    runs = before.execute("SELECT run_id FROM runs ORDER BY rowid").fetchall()
    chunks = before.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    before.close()

    listed = run_cli("history", "--store", str(path), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert all(run_id in listed.stdout for (run_id,) in runs)
    loaded = poolscope.load(runs[0][0], store=path)
    assert {t.executor for t in loaded.trial_results} == {"serial", "thread", "process"}
    assert len(loaded.items) == 8 * len(loaded.trial_results)
    assert loaded.recommendation is not None
    growth = poolscope.load(runs[1][0], store=path).growth
    assert (growth == {}) if version < 2 else set(growth) == {"serial", "thread"}

    after = sqlite3.connect(path)
    assert after.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
        str(SCHEMA_VERSION),)
    assert after.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert after.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == chunks
    after.close()
    # The upgraded store takes new runs, a sweep's growth fits included.
    done = run_cli("sweep", "cpu", "--items", "4,8", "--size", "20000", "-e", "thread",
                   "-w", "1,2", "-r", "1", "--quiet", "--store", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    growth = poolscope.load("latest", store=path).growth
    assert set(growth) == {"serial", "thread"} and growth["thread"].points == 2


def test_every_schema_version_has_a_store_to_upgrade():
    assert sorted(p.name for p in DATA.glob("store-v*.db")) == [
        f"store-v{v}.db" for v in range(1, SCHEMA_VERSION)]


def test_the_default_store_is_found_as_git_finds_its_repository(tmp_path, monkeypatch):
    from poolscope.store import DEFAULT_STORE, project_store

    project = tmp_path / "project"
    deep = project / "src" / "pkg"
    deep.mkdir(parents=True)
    assert project_store(deep) == DEFAULT_STORE  # no project around it: the folder itself
    (project / "pyproject.toml").write_text("[project]\n")
    assert project_store(deep) == project / DEFAULT_STORE  # the enclosing project's root
    assert project_store(project) == DEFAULT_STORE  # relative, when it is the folder itself
    (project / "src" / ".poolscope").mkdir()
    assert project_store(deep) == project / "src" / DEFAULT_STORE  # the nearest .poolscope/
    monkeypatch.chdir(deep)
    monkeypatch.delenv("POOLSCOPE_STORE", raising=False)
    done = run_cli("run", "tiny", "--items", "5", "-e", "thread", "-r", "1", "--quiet",
                   cwd=deep)
    assert done.returncode == 0, done.stderr
    assert (project / "src" / DEFAULT_STORE).is_file() and not (deep / ".poolscope").exists()


def test_a_run_not_stored_has_no_run_id_and_store_true_stores_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POOLSCOPE_STORE", raising=False)
    loose = poolscope.compare(len, ["a", "bb"], executors=["thread"], workers=1, repeat=1)
    assert loose.run_id is None and loose.to_json()["run_id"] is None
    assert "(not stored)" in repr(loose) and not (tmp_path / ".poolscope").exists()
    kept = poolscope.compare(len, ["a", "bb"], executors=["thread"], workers=1, repeat=1,
                             store=True)
    assert poolscope.load(kept.run_id).run_id == kept.run_id
    path = tmp_path / "mine.db"
    there = poolscope.compare(len, ["a", "bb"], executors=["thread"], workers=1, repeat=1,
                              store=path)
    assert poolscope.load("latest", store=path).run_id == there.run_id
