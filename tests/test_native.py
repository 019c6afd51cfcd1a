"""Native thread pools (BLAS): reported per worker, capped with --native-threads, warned about.

A 400×400 float64 matmul per item: OpenBLAS runs it on its own threads (one per core unless
capped), which the items' thread CPU does not see — the process's CPU does.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from threadpoolctl import threadpool_info

import poolscope
from poolscope.analysis.noise import oversubscription_warnings
from poolscope.environment import usable_cores
from poolscope.measure.native import pools

MATMUL = '''import numpy as np

A = np.random.default_rng(0).random((400, 400))

def matmul(x):
    return float((A @ A)[0, 0])
'''


def _blas_threads() -> int:
    import numpy  # noqa: F401  (loads OpenBLAS)

    return max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"),
               default=0)


needs_threaded_blas = pytest.mark.skipif(
    _blas_threads() < 2 or usable_cores() < 2,
    reason="the BLAS here runs one thread (or one core): nothing to see or cap")


@pytest.fixture
def matmul(tmp_path):
    path = tmp_path / "mm.py"
    path.write_text(MATMUL, encoding="utf-8")
    return f"{path}:matmul"


def _run(cli, tmp_path, target, *extra):
    result = cli("run", target, "--items", "12", "-e", "thread,process", "-w", "2", "--repeat",
                 "3", "--quiet", "--no-store", "--json", "out.json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / "out.json").read_text())


def _outside_own_thread(doc, executor="serial"):
    """CPU the process used outside the items' own thread, per second of wall (native threads)."""
    row = next(r for r in doc["summary"] if r["executor"] == executor)
    return row["cpu_s"] / row["wall_s"] - row["cpu_parallelism"]


@needs_threaded_blas
def test_pools_are_reported_and_capped_per_worker(cli, tmp_path, matmul):
    free = _run(cli, tmp_path, matmul)
    native = free["environment"]["native_threads"]
    assert native["cap"] is None
    for name in ("serial", "thread", "process"):
        entry = native["executors"][name]
        assert entry["workers_reported"] >= 1, name
        (pool,) = [p for p in entry["pools"] if p["user_api"] == "blas"]
        assert {"user_api", "internal_api", "prefix", "num_threads"} <= set(pool)
        assert pool["num_threads"] == _blas_threads()
    # process workers: one report each, 2 per trial, 3 trials (pids may repeat, never more)
    assert 2 <= native["executors"]["process"]["workers_reported"] <= 6
    assert free["classification"] == "native-threaded"
    assert any(w.startswith("oversubscription: process ×2: 2 workers × ")
               for w in free["warnings"])

    capped = _run(cli, tmp_path, matmul, "--native-threads", "1")
    native = capped["environment"]["native_threads"]
    assert native["cap"] == 1 and capped["options"]["native_threads"] == 1
    for name in ("serial", "thread", "process"):
        assert native["executors"][name]["threads_per_worker"] == 1, name
    assert not any(w.startswith("oversubscription") for w in capped["warnings"])
    # Without the cap OpenBLAS's threads compute beside the item's own thread; with it, no one
    # does (a loaded machine stretches the wall, so the share outside, not CPU/wall > 1). What
    # is left outside is the trial's bookkeeping between items: 2.5-9% of these 50 ms trials.
    assert _outside_own_thread(free) > 0.15, free["summary"]
    assert _outside_own_thread(capped) < min(0.12, _outside_own_thread(free) / 2), (
        capped["summary"], free["summary"])
    assert capped["classification"] != "native-threaded"


@needs_threaded_blas
def test_pools_loaded_by_the_function_itself_are_seen(cli, tmp_path):
    """A function that imports numpy only when it runs: the isolated child (serial, thread)
    and spawned process workers (which import nothing of their parent's) read their pools
    after it ran, not when they started."""
    (tmp_path / "lazy.py").write_text(
        "def matmul(x):\n"
        "    import numpy as np\n\n"
        "    a = np.random.default_rng(x).random((400, 400))\n"
        "    return float((a @ a)[0, 0])\n", encoding="utf-8")
    result = cli("run", "lazy.py:matmul", "--items", "12", "-e", "thread,process-spawn", "-w",
                 "2", "--repeat", "3", "--quiet", "--no-store", "--json", "out.json")
    assert result.returncode == 0, result.stderr
    doc = json.loads((tmp_path / "out.json").read_text())
    native = doc["environment"]["native_threads"]
    for name in ("serial", "thread", "process-spawn"):
        assert "blas" in {p["user_api"] for p in native["executors"][name]["pools"]}, name
    assert doc["classification"] == "native-threaded"


@needs_threaded_blas
def test_api_caps_in_process_executors(matmul):
    import importlib.util

    path = matmul.split(":")[0]
    spec = importlib.util.spec_from_file_location("poolscope_test_mm", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = poolscope.compare(module.matmul, 6, executors=["thread"], workers=2, repeat=1,
                               native_threads=1)
    native = result.environment["native_threads"]
    assert [p["num_threads"] for p in native["here"] if p["user_api"] == "blas"] == [1]
    assert native["executors"]["thread"]["threads_per_worker"] == 1
    # restored after the run
    assert [p["num_threads"] for p in pools() if p["user_api"] == "blas"] == [_blas_threads()]


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_native_threads_exit_2_with_one_line(cli, value):
    result = cli("run", "cpu", "--items", "2", "--native-threads", value, "--no-store")
    assert result.returncode == 2
    assert result.stderr.startswith("poolscope: error:") and "--native-threads" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "2"])
def test_api_refuses_bad_native_threads(value):
    with pytest.raises(poolscope.UsageError, match="native threads"):
        poolscope.compare(abs, 2, executors=["thread"], repeat=1, native_threads=value)


def _summary(rows):
    return pd.DataFrame(rows, columns=["executor", "workers", "items", "cpu_s", "wall_s",
                                       "cpu_utilization", "cpu_parallelism"])


def _environment(threads):
    pool = {"user_api": "blas", "internal_api": "openblas", "prefix": "libopenblas",
            "num_threads": threads}
    return {"cpu_count": 4, "native_threads": {"executors": {
        name: {"pools": [pool]} for name in ("serial", "process")}}}


def test_oversubscription_warning_names_the_numbers():
    # serial: process CPU 1.9× its wall on 4 cores (0.475 utilisation), items' own thread 1.0
    summary = _summary([("serial", 1, 8, 0.19, 0.1, 0.475, 1.0),
                        ("process", 2, 8, 0.2, 0.06, 0.8, 1.8),
                        ("process", 4, 8, 0.2, 0.06, 0.8, 3.5)])
    warnings = oversubscription_warnings(summary, _environment(4))
    assert len(warnings) == 2  # serial: 1 × 4 threads on 4 cores fits
    assert warnings[0] == ("oversubscription: process ×2: 2 workers × 4 native threads each "
                           "(OpenBLAS, 4 threads) = 8 threads on 4 cores; cap them with "
                           "--native-threads 2 (native_threads=2)")
    assert "process ×4: 4 workers × 4" in warnings[1] and "--native-threads 1" in warnings[1]
    assert oversubscription_warnings(summary, _environment(1)) == []  # capped
    # A serial trial of 3 ms: the run's own bookkeeping alone looks like threads computing.
    summary.loc[summary["executor"] == "serial", "wall_s"] = 0.003
    assert oversubscription_warnings(summary, _environment(4)) == []


def test_no_oversubscription_warning_when_the_threads_do_not_compute():
    # the pool is loaded, but serial's process used no CPU beside the items' own thread
    summary = _summary([("serial", 1, 8, 0.1, 0.1, 0.25, 1.0),
                        ("process", 2, 8, 0.2, 0.06, 0.8, 1.8)])
    assert oversubscription_warnings(summary, _environment(4)) == []


def test_pools_and_preflight_are_stored_with_the_run(cli):
    result = cli("run", "cpu", "--items", "4", "--size", "20000", "-e", "process", "-w", "2",
                 "--repeat", "1", "--quiet", "--native-threads", "1", "--store", "runs.db")
    assert result.returncode == 0, result.stderr
    shown = cli("show", "latest", "--store", "runs.db", "--json", "-")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    native = doc["environment"]["native_threads"]
    assert native["cap"] == 1 and native["executors"]["process"]["workers_reported"] >= 1
    assert doc["options"]["native_threads"] == 1 and doc["options"]["preflight"]["passed"]
