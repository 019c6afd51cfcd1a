"""--timeout, --trial-timeout and --max-memory: the runaway item is stopped where it runs,
recorded, and the trial goes on (limits.py); a worker killed as by the OOM killer is reported
with its peak memory (faults.py)."""

from __future__ import annotations

import json
import re
import time

import psutil
import pytest

from fault_workloads import grow_on_three, killed_on_three, sleep_on_three, spin_on_three
from poolscope import UsageError
from poolscope.backends import REGISTRY, Backend, get_backend
from poolscope.backends.elsewhere import isolated
from poolscope.measure.runner import Plan, make_chunks, run_trial

pytestmark = pytest.mark.timeout(120)

PROCESS_EXECUTORS = [name for name in ("process", "process-spawn", "process-forkserver",
                                       "process-pool", "loky")
                     if REGISTRY[name].unavailable_reason() is None]


def trial(name: str, fn, **timeouts):
    return trial_of(get_backend(name), fn, **timeouts)


def trial_of(backend: type[Backend], fn, **timeouts):
    began = time.monotonic()
    t = run_trial(0, backend, fn, 2, make_chunks(list(range(12)), 2), **timeouts)
    return t, time.monotonic() - began


def left_behind() -> list[psutil.Process]:
    """Children of this process still alive (forkserver's and loky's helpers excepted)."""
    alive = []
    for child in psutil.Process().children(recursive=True):
        try:
            line = " ".join(child.cmdline())
            if child.status() != psutil.STATUS_ZOMBIE and "forkserver" not in line \
                    and "resource_tracker" not in line and "semaphore_tracker" not in line:
                alive.append(child)
        except psutil.Error:
            continue
    return alive


@pytest.mark.parametrize("name", PROCESS_EXECUTORS)
def test_a_stuck_worker_process_is_stopped_and_the_trial_goes_on(name):
    t, took = trial(name, sleep_on_three, timeout_s=0.5)
    assert took < 20  # not the 60 s item
    assert t.status == "partial" and t.restarts == 1
    assert sorted(t.items.item.tolist()) == list(range(12))  # the others ran, on a new pool
    stuck = t.items.item.tolist().index(3)
    assert t.items.status[stuck] == 1
    assert 0.4e9 < t.items.end_ns[stuck] - t.items.start_ns[stuck] < 10e9  # seen to when stopped
    assert [e["item"] for e in t.errors] == [3]
    error = t.errors[0]
    assert error["kind"] == "Timeout"
    assert re.match(r"item 3 \(worker pid \d+\) was stopped \(SIGTERM[^)]*\): it ran longer "
                    r"than --timeout 0.5 s", error["message"]), error["message"]
    assert left_behind() == []


def test_a_worker_that_ignores_sigterm_is_killed():
    import signal

    t, _ = trial("process", _ignores_sigterm_on_three, timeout_s=0.5)
    assert t.status == "partial"
    assert "SIGTERM, then SIGKILL" in t.errors[0]["message"], t.errors[0]["message"]
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN  # only the worker's
    assert left_behind() == []


def _ignores_sigterm_on_three(x: int) -> int:
    import signal

    if x == 3:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return sleep_on_three(x)


@pytest.mark.parametrize("name,fn", [("serial", sleep_on_three), ("serial", spin_on_three),
                                     ("thread-pool", spin_on_three), ("thread", spin_on_three)])
def test_an_item_in_this_process_gets_an_exception(name, fn):
    t, took = trial(name, fn, timeout_s=0.5)
    assert took < 20
    assert t.status == "partial" and t.restarts == 0
    assert sorted(t.items.item.tolist()) == list(range(12))
    assert [(e["item"], e["kind"]) for e in t.errors] == [(3, "Timeout")]
    assert "it ran longer than --timeout 0.5 s" in t.errors[0]["message"]


@pytest.mark.parametrize("name,fn", [("serial", sleep_on_three), ("serial", spin_on_three),
                                     ("thread-pool", spin_on_three)])
def test_an_isolated_child_stopped_for_a_timeout_first_sends_the_records_it_held(name, fn):
    """The child holds records to send them together (_child._Server); stopped by SIGTERM, it
    sends them first: the items that finished there before the stuck one are not run again."""
    t, took = trial_of(isolated(name), fn, timeout_s=0.5)
    assert took < 20
    assert t.status == "partial" and t.restarts == 1
    assert sorted(t.items.item.tolist()) == list(range(12))
    items, pids = t.items.item.tolist(), t.items.pid.tolist()
    stopped_child = pids[items.index(3)]
    assert pids[items.index(0)] == stopped_child  # not run again in the next child
    assert len(set(pids)) == 2
    assert [(e["item"], e["kind"]) for e in t.errors] == [(3, "Timeout")]
    assert left_behind() == []


@pytest.mark.parametrize("isolate,name", [(True, "serial"), (False, "process"),
                                          (False, "process-pool")])
def test_the_rest_of_a_chunk_whose_first_item_was_stopped_runs_on_the_new_pool(isolate, name):
    """Item 3 opens the chunk [3, 4, 5]: its stopped record (first item 3) is not the chunk's,
    so items 4 and 5 run again on the new pool (they were once left out)."""
    backend = isolated(name) if isolate else get_backend(name)
    began = time.monotonic()
    t = run_trial(0, backend, sleep_on_three, 2, make_chunks(list(range(12)), 3), timeout_s=0.5)
    assert time.monotonic() - began < 20
    assert t.status == "partial" and t.restarts == 1
    assert sorted(t.items.item.tolist()) == list(range(12))
    assert [(e["item"], e["kind"]) for e in t.errors] == [(3, "Timeout")]
    assert left_behind() == []


@pytest.mark.parametrize("name", ["process", "process-pool"])
def test_the_trial_timeout_stops_the_trial_and_keeps_what_finished(name):
    t, took = trial(name, sleep_on_three, trial_timeout_s=1.0)
    assert took < 20
    assert t.status == "failed" and t.restarts == 0
    assert t.errors[0]["kind"] == "TrialTimeout"
    assert re.match(r"the trial ran longer than --trial-timeout 1 s; stopped with \d+ of 12 "
                    r"items done", t.errors[0]["message"])
    assert any(e["item"] == 3 and e["kind"] == "Timeout" for e in t.errors)
    assert 3 <= int((t.items.status == 0).sum()) < 12
    assert left_behind() == []


def test_the_trial_timeout_stops_threads_at_the_next_chunk():
    t, took = trial("thread-pool", spin_on_three, trial_timeout_s=1.0)
    assert took < 20
    assert t.status == "failed" and t.errors[0]["kind"] == "TrialTimeout"
    assert any(e["item"] == 3 and e["kind"] == "Timeout" for e in t.errors)


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), "2"])
def test_timeouts_must_be_positive_seconds(value):
    with pytest.raises(UsageError, match="timeout must be a number of seconds more than 0"):
        Plan(executors=("serial",), workers=(1,), timeout_s=value)
    with pytest.raises(UsageError, match="trial timeout must be"):
        Plan(executors=("serial",), workers=(1,), trial_timeout_s=value)


def test_cli_reports_the_timed_out_item_and_exits_1(cli, tmp_path):
    (tmp_path / "stuck.py").write_text(
        "import time\n\ndef work(x):\n    time.sleep(60 if x == 3 else 0.01)\n    return x\n")
    done = cli("run", "stuck.py:work", "--items", "8", "-e", "process", "-w", "2", "-r", "1",
               "--timeout", "0.5", "--no-baseline", "--no-store", "--quiet", timeout=60)
    assert done.returncode == 1, done.stderr
    assert re.search(r"item 3 under process: Timeout: item 3 \(worker pid \d+\) was stopped",
                     " ".join(done.stdout.split())), done.stdout


@pytest.mark.parametrize("name", ["process", "process-pool"])
def test_a_worker_over_max_memory_is_stopped_and_the_trial_goes_on(name):
    t, took = trial(name, grow_on_three, max_memory=400 << 20)
    assert took < 30
    assert t.status == "partial" and t.restarts == 1
    assert sorted(t.items.item.tolist()) == list(range(12))
    assert [(e["item"], e["kind"]) for e in t.errors] == [(3, "MemoryLimit")]
    assert re.match(r"item 3 \(worker pid \d+\) was stopped \(SIGTERM[^)]*\): its worker's peak "
                    r"RSS reached [\d.]+ MiB, over --max-memory 400.0 MiB", t.errors[0]["message"])
    assert left_behind() == []


def test_cli_max_memory_stops_an_isolated_thread_whose_other_thread_is_idle(cli, tmp_path):
    """The isolated child runs both threads; the watch once read the memory of an idle one's
    lane only, and the item holding 1 GiB finished as "ok"."""
    (tmp_path / "grow.py").write_text(
        "import time\n\ndef work(x):\n"
        "    if x == 1:\n"
        "        held = [bytearray(64 << 20) for _ in range(16)]\n"
        "        time.sleep(5)\n"
        "        return len(held)\n"
        "    return x\n")
    done = cli("run", "grow.py:work", "--items", "4", "-e", "thread", "-w", "2", "-r", "1",
               "--max-memory", "500M", "--no-baseline", "--no-store", "--json", "-", timeout=90)
    assert done.returncode == 1, done.stderr
    errors = json.loads(done.stdout)["errors"]
    assert [(e["item"], e["kind"]) for e in errors] == [(1, "MemoryLimit")], errors


def test_cli_max_memory_holds_for_trials_shorter_than_the_watch_reads(cli):
    """Memory is read every 0.1 s: a shorter trial over the limit is a MemoryLimit error of its
    trial afterwards, not an "ok" run."""
    done = cli("run", "tiny", "--items", "3", "-e", "serial,process", "-r", "1",
               "--max-memory", "2M", "--no-store", "--json", "-", timeout=90)
    assert done.returncode == 1, done.stderr
    errors = json.loads(done.stdout)["errors"]
    assert {e["executor"] for e in errors} == {"serial", "process"}, errors
    assert all(e["kind"] == "MemoryLimit" and e["item"] is None and re.match(
        r"worker pid \d+'s peak RSS reached [\d.]+ MiB, over --max-memory 2.0 MiB; the trial "
        r"ended before", e["message"]) for e in errors), errors


def test_a_worker_killed_as_by_the_oom_killer_is_reported_with_its_peak_memory():
    t, _ = trial("process", killed_on_three)
    assert t.status == "partial" and t.restarts == 1
    assert [(e["item"], e["kind"]) for e in t.errors] == [(3, "WorkerDiedError")]
    message = t.errors[0]["message"]
    assert "signal SIGKILL — killed from outside: the kernel's OOM killer" in message
    peak = re.search(r"its peak RSS was at least ([\d.]+) MiB", message)
    assert peak and float(peak.group(1)) > 300, message  # the 300 MiB it held
    assert left_behind() == []


@pytest.mark.parametrize("text", ["lots", "-1G", "2X", "1.5.2M"])
def test_cli_max_memory_must_be_a_size(cli, text):
    done = cli("run", "tiny", "--items", "4", "--max-memory", text, "--no-store")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"poolscope: error: --max-memory must be a size like 512M or 2G, got {text!r}"]


def test_cli_max_memory_below_one_mib_is_refused(cli):
    done = cli("run", "tiny", "--items", "4", "--max-memory", "1K", "--no-store")
    assert done.returncode == 2 and "max memory must be at least 1 MiB" in done.stderr


def test_an_async_item_past_the_timeout_is_cancelled():
    from fault_workloads import nap_on_three

    t, took = trial("asyncio", nap_on_three, timeout_s=0.5)
    assert took < 20
    assert t.status == "partial"
    assert sorted(t.items.item.tolist()) == list(range(12))
    assert [(e["item"], e["kind"]) for e in t.errors] == [(3, "Timeout")]
    assert t.errors[0]["message"] == "cancelled: it ran longer than --timeout 0.5 s"
