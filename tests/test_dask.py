"""The dask executor: a local cluster per trial, an existing cluster through --scheduler, clock
offsets by round trips, and a worker killed mid-run.

The external cluster is real: ``python -m dask scheduler`` and two ``python -m dask worker``
processes (``--no-nanny``, so the process we SIGKILL is the worker itself) on 127.0.0.1, each in
a session of its own, torn down after each test with every wait bounded.
"""

from __future__ import annotations

import contextlib
import csv
import http.server
import json
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from poolscope.backends import REGISTRY

pytestmark = pytest.mark.skipif(REGISTRY["dask"].unavailable_reason() is not None,
                                reason="distributed is not installed")

HOST = socket.gethostname()
START_TIMEOUT_S = 60.0


def cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m poolscope`` in a session of its own (``.pid`` names it), so whatever it
    leaves behind can be found."""
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    env.pop("POOLSCOPE_DASK_SCHEDULER", None)
    command = [sys.executable, "-m", "poolscope", *args]
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=10)
    done = subprocess.CompletedProcess(command, proc.returncode, out, err)
    done.pid = proc.pid  # type: ignore[attr-defined]
    return done


def session_members(sid: int, grace_s: float = 5.0) -> list[str]:
    """Processes still running in session ``sid`` once ``grace_s`` has passed: what a finished
    command left behind. Zombies have exited (multiprocessing's resource tracker ends as one,
    waiting for init to reap it) and do not count."""
    deadline = time.monotonic() + grace_s
    while True:
        members = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.getsid(int(entry)) != sid:
                        continue
                    with open(f"/proc/{entry}/stat") as f:
                        state = f.read().rpartition(")")[2].split()[0]
                    with open(f"/proc/{entry}/cmdline") as f:
                        command = f.read().replace("\0", " ").strip()
                except OSError:
                    continue
                if state != "Z":
                    members.append(f"{entry}: {command}")
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.1)


def read_items(path: Path, executor: str = "dask") -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if row["executor"] == executor]


def check_clocks(workers: list[dict]) -> None:
    """Same host: the estimate is within its uncertainty of 0, which is small, and not applied."""
    for w in workers:
        assert w["host"] == HOST and w["same_clock"] is True
        assert w["clock_method"] == "round trips"
        assert w["clock_offset_s"] == 0.0
        assert 0 < w["clock_uncertainty_s"] < 0.05
        assert abs(w["clock_estimate_s"]) <= w["clock_uncertainty_s"] + 1e-9


class ExternalCluster:
    """A dask scheduler and worker processes started from the command line."""

    def __init__(self, tmp_path: Path, workers: int = 2) -> None:
        self.dir = tmp_path
        self.workers: dict[str, subprocess.Popen[bytes]] = {}  # address -> process
        self.procs: list[subprocess.Popen[bytes]] = []
        scheduler_file = tmp_path / "scheduler.json"
        self.scheduler = self._start("scheduler", "scheduler", "--host", "127.0.0.1",
                                     "--port", "0", "--no-dashboard",
                                     "--dashboard-address", "127.0.0.1:0",  # not 8787
                                     "--scheduler-file", str(scheduler_file))
        self.address = self._wait_for_address(scheduler_file)
        for n in range(workers):
            self._start(f"worker-{n}", "worker", self.address, "--nthreads", "1",
                        "--no-dashboard", "--host", "127.0.0.1", "--no-nanny",
                        "--name", f"w{n}")
        from distributed import Client

        self.client = Client(self.address, timeout=30, set_as_default=False)
        self.client.wait_for_workers(workers, timeout=START_TIMEOUT_S)
        pids = self.client.run(os.getpid)
        by_pid = {p.pid: p for p in self.procs}
        self.workers = {address: by_pid[pid] for address, pid in pids.items()}

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.dir / f"{name}.log", "wb")  # noqa: SIM115  (closed with the process)
        proc = subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def _wait_for_address(self, path: Path) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.scheduler.poll() is not None:
                raise RuntimeError((self.dir / "scheduler.log").read_text())
            try:
                return str(json.loads(path.read_text())["address"])
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        raise TimeoutError("the dask scheduler did not write its address")

    def processing(self) -> dict[str, list[str]]:
        """Per worker address, the poolscope tasks it is running or holds queued."""
        return {w: [k for k in keys if str(k).startswith("poolscope-")]
                for w, keys in self.client.processing().items()}

    def close(self) -> None:
        """Workers first (a worker whose scheduler vanishes can hang on close), then the
        scheduler: SIGTERM, a bounded wait, SIGKILL for what is still there."""
        try:
            self.client.close(timeout=10)
        finally:
            for group in ([p for p in self.procs if p is not self.scheduler],
                          [self.scheduler]):
                for proc in group:
                    if proc.poll() is None:
                        proc.terminate()
                for proc in group:
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait(timeout=10)
        for proc in self.procs:
            assert proc.poll() is not None
            assert session_members(proc.pid) == []  # nothing it started is left


@pytest.fixture
def external_cluster(tmp_path: Path):
    cluster = ExternalCluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.close()


# --- no cluster needed ---------------------------------------------------------------------------


def test_addresses_are_checked_and_completed():
    from poolscope import UsageError
    from poolscope.backends.dask_ import normalize_address

    assert normalize_address("127.0.0.1:8786") == "tcp://127.0.0.1:8786"
    assert normalize_address(" tls://sched.example:8786 ") == "tls://sched.example:8786"
    for bad in ("127.0.0.1", "tcp://:8786", "tcp://host:port", "tcp://host:70000"):
        with pytest.raises(UsageError, match="expected tcp://HOST:PORT"):
            normalize_address(bad)


def test_scheduler_comes_from_the_api_then_the_environment(monkeypatch):
    from poolscope.backends.dask_ import ENV_SCHEDULER, scheduler_address, using_scheduler

    monkeypatch.delenv(ENV_SCHEDULER, raising=False)
    assert scheduler_address() is None
    monkeypatch.setenv(ENV_SCHEDULER, "127.0.0.1:9999")
    assert scheduler_address() == "tcp://127.0.0.1:9999"
    with using_scheduler("tcp://10.0.0.1:8786"):
        assert scheduler_address() == "tcp://10.0.0.1:8786"
    assert scheduler_address() == "tcp://127.0.0.1:9999"


def test_scheduler_without_dask_is_a_usage_error(tmp_path):
    done = cli("run", "cpu", "--items", "4", "-e", "thread", "--scheduler", "127.0.0.1:1",
               "--no-store", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == ("poolscope: error: --scheduler applies to the dask executor "
                                   "only: add -e dask")
    done = cli("run", "cpu", "--items", "4", "-e", "dask", "--scheduler", "nowhere",
               "--no-store", cwd=tmp_path)
    assert done.returncode == 2
    assert "expected tcp://HOST:PORT, got 'nowhere'" in done.stderr


def test_clock_bounds_from_the_task_itself():
    from array import array

    from poolscope.backends.dask_ import DaskBackend
    from poolscope.measure.probe import ChunkRecord

    def record(start: int, end: int, host: str) -> ChunkRecord:
        return ChunkRecord(0, array("q", [start]), array("q", [end]), array("q", [0, 0]),
                           array("i", [0]), array("b", [0]), [], 1, 1, 0.0, 0, [],
                           host=host, worker="tcp://w:1")

    backend = DaskBackend.__new__(DaskBackend)
    # Submitted at 1000, received at 2000 on our clock; the items ran 1400..1500 on theirs.
    same = backend._task_bounds(record(1400, 1500, HOST), 1000, 2000)
    assert same["same_clock"] and same["clock_offset_s"] == 0.0
    # Another host whose clock is 1_000_000 ahead: the offset lies in [-500 + 1e6, 400 + 1e6].
    other = backend._task_bounds(record(1_001_400, 1_001_500, "elsewhere"), 1000, 2000)
    assert not other["same_clock"]
    assert other["clock_offset_s"] * 1e9 == pytest.approx(1_000_000 - 50)
    assert other["clock_uncertainty_s"] * 1e9 == pytest.approx(450)


def test_unreachable_scheduler_fails_the_trial_quickly(monkeypatch):
    from poolscope.backends import dask_
    from poolscope.backends.dask_ import using_scheduler
    from poolscope.measure.runner import make_chunks, run_trial

    monkeypatch.setattr(dask_, "CONNECT_TIMEOUT_S", 2.0)
    began = time.monotonic()
    with using_scheduler("tcp://127.0.0.1:9"):  # the discard port: nothing listens
        t = run_trial(0, REGISTRY["dask"], abs, 2, make_chunks(list(range(4)), 2))
    assert time.monotonic() - began < 20
    assert t.status == "failed" and len(t.items) == 0
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in t.errors[0]["message"]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server() -> Iterator[str]:
    """A local HTTP server (``python -m http.server``'s) on a free port, in a thread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def closed_port() -> str:
    """An address on 127.0.0.1 where nothing listens (a port just let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("peer", ["http", "closed"])
def test_a_scheduler_address_without_a_scheduler_fails_quickly_through_the_cli(tmp_path, peer):
    """Issue 13 (9): an HTTP server as --scheduler kept the run waiting for minutes, or failed
    with "MemoryError: Unable to allocate 3.07 EiB". It fails the dask trial in one line within
    GREETING_TIMEOUT_S, as a closed port does, and exits 1; nothing is left running."""
    with contextlib.ExitStack() as stack:
        if peer == "http":
            address = stack.enter_context(http_server())
            expected = (f"dask failed: PoolscopeError: {address} is not a Dask scheduler (it "
                        "accepted the connection but sent nothing within 5 s, where a Dask "
                        "scheduler greets at once)")
        else:
            address = closed_port()
            expected = (f"dask failed: PoolscopeError: cannot reach the Dask scheduler at "
                        f"{address}: [Errno 111] Connection refused")
        began = time.monotonic()
        done = cli("run", "tiny", "--items", "4", "-e", "dask", "--scheduler", address,
                   "--repeat", "1", "--quiet", "--no-store", cwd=tmp_path, timeout=60)
        took = time.monotonic() - began
    assert done.returncode == 1, done.stderr
    assert expected in " ".join(done.stdout.split())
    assert "Traceback" not in done.stdout + done.stderr
    assert "MemoryError" not in done.stdout + done.stderr
    assert took < 30  # it waited for minutes
    assert session_members(done.pid) == []


def test_a_peer_that_greets_otherwise_is_not_a_scheduler():
    """What distributed would have read as frame lengths ("HTTP/1.0" is 3.07 EiB) is named."""
    from poolscope import PoolscopeError
    from poolscope.backends.dask_ import _check_scheduler

    with socket.create_server(("127.0.0.1", 0)) as server:
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"

        def greet() -> None:
            peer, _ = server.accept()
            with peer:
                peer.sendall(b"HTTP/1.0 400 Bad request\r\n\r\n")

        thread = threading.Thread(target=greet)
        thread.start()
        try:
            with pytest.raises(PoolscopeError, match=re.escape(
                    f"{address} is not a Dask scheduler (it greeted with "
                    "b'HTTP/1.0 400 Bad', which is not a Dask handshake)")):
                _check_scheduler(address)
        finally:
            thread.join(timeout=10)


def test_a_file_target_reaches_a_worker_without_the_file_by_value(tmp_path):
    """A file target goes by its module name, which a worker on another host cannot import:
    for an external cluster the task also carries its code, which such a worker loads."""
    import cloudpickle

    from poolscope.backends.dask_ import _file_targets_by_value
    from poolscope.workloads import resolve_workload

    script = tmp_path / "remote_work.py"
    script.write_text("def helper(x):\n    return x + 1\n\n"
                      "def crunch(x):\n    return helper(x) * 2\n")
    fn = resolve_workload(f"{script}:crunch", 3).fn
    payload = cloudpickle.dumps(fn)
    by_value = _file_targets_by_value(fn, payload)
    assert by_value and by_value != payload
    assert _file_targets_by_value(abs, cloudpickle.dumps(abs)) == b""
    script.unlink()  # the worker's host has no such file
    code = ("import sys, pickle; from poolscope.backends.dask_ import _load_function; "
            "payload, by_value = pickle.load(sys.stdin.buffer); "
            "print(_load_function(payload, by_value)(3)); "
            "print(_load_function(payload, b''))")
    args = pickle.dumps((payload, by_value))
    done = subprocess.run([sys.executable, "-c", code], input=args, capture_output=True,
                          timeout=60)
    assert done.stdout.decode().splitlines()[0] == "8"
    assert b"ModuleNotFoundError: No module named 'poolscope_user_" in done.stderr


# --- a local cluster per trial -------------------------------------------------------------------


@pytest.mark.slow
def test_local_cluster_run_through_the_cli(tmp_path):
    done = cli("run", "cpu", "--items", "8", "--size", "20000", "-e", "dask", "-w", "2",
               "--repeat", "1", "--no-store", "--json", "-", "--csv", "items.csv",
               cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert session_members(done.pid) == []  # the cluster went with the run
    document = json.loads(done.stdout)
    assert document["errors"] == []
    assert document["options"]["scheduler"] is None
    rows = read_items(tmp_path / "items.csv")
    assert sorted(int(r["item"]) for r in rows) == list(range(8))
    (_trial, workers), = document["options"]["worker_details"].items()
    assert len(workers) == 2
    check_clocks(workers)
    pids = {str(w["pid"]) for w in workers}
    assert {r["pid"] for r in rows} == pids  # records on both worker processes
    assert {r["host"] for r in rows} == {HOST}
    assert {r["worker"] for r in rows} == {w["address"] for w in workers}
    assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in rows)
    assert {r["retried"] for r in rows} == {"False"}
    dask_row, = [s for s in document["summary"] if s["executor"] == "dask"]
    assert dask_row["cpu_s"] > 0


@pytest.mark.slow
def test_a_fresh_remote_clock_is_estimated_and_applied(monkeypatch):
    """A worker that does not share our boot gets its estimate applied to its records."""
    from poolscope.backends.dask_ import DaskBackend
    from poolscope.measure.runner import make_chunks, run_trial

    monkeypatch.setattr(DaskBackend, "_same_boot", lambda self, facts: False)
    t = run_trial(0, REGISTRY["dask"], abs, 2, make_chunks(list(range(8)), 2))
    assert t.status == "ok", t.errors
    assert len(t.worker_info) == 2
    for w in t.worker_info:
        assert w["same_clock"] is False
        assert w["clock_offset_s"] == w["clock_estimate_s"]  # applied, and truly ~0 here
        assert abs(w["clock_offset_s"]) <= w["clock_uncertainty_s"] < 0.05
    # Shifted by less than the uncertainty: still inside the trial, give or take it.
    slack = max(w["clock_uncertainty_s"] for w in t.worker_info) * 1e9
    assert t.items.start_ns.min() >= -slack
    assert t.items.end_ns.max() <= t.wall_s * 1e9 + slack


# --- an existing cluster -------------------------------------------------------------------------


@pytest.mark.slow
def test_external_scheduler_and_two_workers(external_cluster, tmp_path):
    done = cli("run", "cpu", "--items", "8", "--size", "20000", "-e", "dask", "-w", "2",
               "--repeat", "1", "--no-store", "--no-baseline", "--json", "-", "--csv",
               "items.csv", "--scheduler", external_cluster.address, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["options"]["scheduler"] == external_cluster.address
    (_trial, workers), = document["options"]["worker_details"].items()
    check_clocks(workers)
    addresses = {w["address"]: w["pid"] for w in workers}
    assert addresses == {a: p.pid for a, p in external_cluster.workers.items()}
    rows = read_items(tmp_path / "items.csv")
    assert sorted(int(r["item"]) for r in rows) == list(range(8))
    assert {r["worker"] for r in rows} <= set(addresses)
    assert {int(r["pid"]) for r in rows} <= set(addresses.values())
    # The cluster is not ours to stop: it is still there for the next client.
    assert all(p.poll() is None for p in external_cluster.procs)
    assert len(external_cluster.client.scheduler_info()["workers"]) == 2


def test_a_file_target_whose_results_refer_to_it_on_an_external_cluster(external_cluster,
                                                                        tmp_path):
    """Issue 13 (7) under dask: the workers import the file by its module name, so results
    that refer to its functions and classes come back (the task carries its code as well)."""
    (tmp_path / "work.py").write_text(
        "import functools\n\n\ndef helper(x):\n    return x\n\n\nclass Box:\n"
        "    def __init__(self, x):\n        self.x = x\n\n\n"
        "def crunch(x):\n    return helper, functools.partial(helper, x), Box(x)\n")
    done = cli("run", "work.py:crunch", "--items", "6", "-e", "dask", "-w", "2", "--repeat",
               "1", "--no-store", "--no-baseline", "--json", "-", "--scheduler",
               external_cluster.address, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["errors"] == []


@pytest.mark.slow
def test_a_killed_worker_is_reported_and_its_chunks_retried(external_cluster, tmp_path):
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    run = subprocess.Popen(
        [sys.executable, "-m", "poolscope", "run", "io", "--items", "16", "--size", "300",
         "-e", "dask", "-w", "2", "--repeat", "1", "--no-store", "--no-baseline", "-q",
         "--json", "result.json", "--csv", "items.csv", "--report", "report.html",
         "--scheduler", external_cluster.address], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        victim = None
        while victim is None and time.monotonic() < deadline and run.poll() is None:
            busy = [w for w, keys in external_cluster.processing().items() if keys]
            victim = busy[0] if busy else None
            time.sleep(0.05)
        assert victim is not None, "no poolscope task ever reached a worker"
        killed = external_cluster.workers[victim]
        killed.send_signal(signal.SIGKILL)
        assert killed.wait(timeout=10) == -signal.SIGKILL
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=10)
    assert session_members(run.pid) == []
    assert run.returncode == 1, err  # finished, every item recorded, but a worker was lost
    document = json.loads((tmp_path / "result.json").read_text())
    lost, = document["errors"]
    assert lost["kind"] == "WorkerDiedError" and lost["item"] is None
    assert f"Dask worker {victim} (pid {killed.pid} on {HOST})" in lost["message"]
    assert "marked retried" in lost["message"]
    rows = read_items(tmp_path / "items.csv")
    assert sorted(int(r["item"]) for r in rows) == list(range(16))  # each item once
    assert {r["status"] for r in rows} == {"ok"}
    retried = [r for r in rows if r["retried"] == "True"]
    assert retried, "the killed worker's chunks are marked retried"
    survivor, = set(external_cluster.workers) - {victim}
    assert {r["worker"] for r in retried} == {survivor}
    (_trial, workers), = document["options"]["worker_details"].items()
    by_address = {w["address"]: w for w in workers}
    assert by_address[victim]["lost"]["expected"] is False
    rerun = {i for a, b in by_address[victim]["lost"]["rerun_items"] for i in range(a, b + 1)}
    assert rerun == {int(r["item"]) for r in retried}
    assert by_address[survivor]["lost"] is None
    # The report's bars tell each item's host and worker address, and whether it was retried.
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert all(tip in html for tip in ("@host", "@address", "@retried"))
    assert f'"{survivor}"' in html and '"yes"' in html


@pytest.mark.slow
def test_a_cluster_left_without_workers_fails_the_trial(external_cluster, monkeypatch):
    """Every wait has a timeout: dask would wait for a worker forever."""
    import threading

    from poolscope.backends import dask_
    from poolscope.measure.runner import make_chunks, run_trial

    monkeypatch.setattr(dask_, "NO_WORKERS_TIMEOUT_S", 2.0)

    def kill_every_worker_once_busy() -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if any(external_cluster.processing().values()):
                break
            time.sleep(0.05)
        for proc in external_cluster.workers.values():
            proc.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_every_worker_once_busy, daemon=True)
    killer.start()
    began = time.monotonic()
    with dask_.using_scheduler(external_cluster.address):
        t = run_trial(0, REGISTRY["dask"], time.sleep, 2, make_chunks([0.3] * 8, 2))
    killer.join(timeout=30)
    assert time.monotonic() - began < 30
    assert t.status == "failed"
    error, = t.errors
    assert error["kind"] == "WorkerDiedError"
    assert error["message"].startswith("the Dask cluster has had no workers for 2 s")
    assert all(p.wait(timeout=10) == -signal.SIGKILL for p in external_cluster.workers.values())


def test_a_local_cluster_leaves_this_process_environment_as_it_was():
    """distributed's nannies set OMP_NUM_THREADS=1 and the like in the environment of the
    process that starts them: every child poolscope started afterwards (an isolated child, a
    process pool) would inherit them and run its BLAS on one thread."""
    import poolscope
    from poolscope.measure.native import ENV_VARS

    before = {name: os.environ.get(name) for name in ENV_VARS}
    result = poolscope.compare(abs, range(4), executors=["dask"], workers=1, repeat=1,
                               baseline=False)
    assert result.trials["status"].eq("ok").all()
    assert {name: os.environ.get(name) for name in ENV_VARS} == before


def test_dask_workers_report_their_native_thread_pools():
    """Each worker process tells its BLAS and OpenMP pools once per run, read after its first
    chunk (when the function has loaded them), as process pools' workers do."""
    import poolscope

    def matmul(item):
        import numpy as np

        a = np.ones((50, 50))
        return float((a @ a)[0, 0]) + item

    result = poolscope.compare(matmul, range(8), executors=["dask"], workers=2, repeat=2,
                               baseline=False)
    assert result.trials["status"].eq("ok").all()
    entry = result.environment["native_threads"]["executors"]["dask"]
    # A local cluster per trial: 2 worker processes a trial, each telling once, 2 trials.
    assert 1 <= entry["workers_reported"] <= 4
    assert "blas" in {pool["user_api"] for pool in entry["pools"]}
    assert entry["threads_per_worker"] >= 1
