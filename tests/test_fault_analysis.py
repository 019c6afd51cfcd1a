"""Faults must not fool the analysis (issue 13, 10 and 11).

Items that did not finish (timed out, stopped for memory, lost with their worker) have no known
CPU time: they stay out of the CPU evidence, and a run of them only is not "io-bound". An item's
CPU counts at most its wall; start-up is never negative. The isolated child survives a function
that closes ``sys.stdout``; ``latest~-1`` is refused. Scripted trials (fake backend) for the
arithmetic, the real CLI for each defect as a user meets it.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest

from poolscope import UsageError
from poolscope.analysis.classify import MIN_FINISHED, classify
from poolscope.analysis.costs import cost_model
from poolscope.analysis.metrics import summarize
from poolscope.backends.fake import FakeClock, ScriptedItem, scripted_backend
from poolscope.frames import finished, items_frame, trials_frame, unfinished_rows
from poolscope.measure.runner import make_chunks, run_trial
from poolscope.model import TrialResult
from poolscope.store import RunStore

MS = 1_000_000
FAMILIES = {"serial": "serial", "thread": "thread"}


def _trial(index: int, name: str, family: str, script: list[ScriptedItem],
           workers: int = 1, kinds: dict[int, str] | None = None) -> TrialResult:
    """A scripted trial; ``kinds`` renames failed items' error kinds (Timeout, MemoryLimit…)."""
    clock = FakeClock()
    backend = scripted_backend(name, script, clock, family=family)
    trial = run_trial(index, backend, abs, workers, make_chunks(list(range(len(script))), 1),
                      clock=clock, tree_usage=lambda: (0.0, 0.0))
    for error in trial.errors:
        error["kind"] = (kinds or {}).get(error["item"], error["kind"])
    return trial


def _back_to_back(n: int, wall: int, cpu: int, stuck: set[int] = frozenset(),
                  raised: set[int] = frozenset()) -> list[ScriptedItem]:
    """Serial items one after another; ``stuck`` ones failed with CPU 0 (as limits.py records
    a stopped item), ``raised`` ones failed with their CPU."""
    return [ScriptedItem(i * wall, (i + 1) * wall, 0 if i in stuck else cpu,
                         error="x" if i in stuck | raised else None) for i in range(n)]


# --- trials_frame ----------------------------------------------------------------------------

def test_unfinished_items_stay_out_of_the_cpu_evidence():
    items = _back_to_back(4, 10 * MS, 10 * MS, stuck={1}, raised={2})
    trial = _trial(0, "serial", "serial", items, kinds={1: "Timeout", 2: "ValueError"})
    assert finished(trial).tolist() == [True, False, True, True]  # a raise did run
    row = trials_frame([trial]).iloc[0]
    assert row["unfinished"] == 1
    assert row["offcpu_fraction"] == pytest.approx(0.0)  # not 25% off-CPU
    assert row["parallelism"] == pytest.approx(1.0)  # it was in progress all the same
    assert row["cpu_parallelism"] == pytest.approx(0.75)
    frame = items_frame([trial])
    assert unfinished_rows(frame).tolist() == [False, True, False, False]


def test_a_stopped_item_with_a_second_error_stays_unfinished_in_both_frames():
    trial = _trial(0, "serial", "serial", _back_to_back(4, 10 * MS, 10 * MS, stuck={1}),
                   kinds={1: "Timeout"})
    trial.errors.append({"executor": "serial", "item": 1, "kind": "KeyboardInterrupt",
                         "message": "raised while it was being stopped"})
    assert not finished(trial)[1]
    assert unfinished_rows(items_frame([trial])).tolist() == [False, True, False, False]


@pytest.mark.parametrize("kind", ["Timeout", "MemoryLimit", "WorkerDiedError"])
def test_a_trial_of_unfinished_items_has_no_off_cpu_fraction(kind):
    items = _back_to_back(2, 10 * MS, 10 * MS, stuck={0, 1})
    row = trials_frame([_trial(0, "serial", "serial", items,
                               kinds={0: kind, 1: kind})]).iloc[0]
    assert math.isnan(row["offcpu_fraction"]) and row["cpu_parallelism"] == 0.0


def test_cpu_beyond_wall_counts_as_wall():
    # Sub-µs items: the CPU reading also holds the probe's own work between items.
    items = [ScriptedItem(i * 1_000, i * 1_000 + 300, 900) for i in range(4)]
    row = trials_frame([_trial(0, "serial", "serial", items)]).iloc[0]
    assert row["cpu_parallelism"] == pytest.approx(row["parallelism"])
    assert row["offcpu_fraction"] == pytest.approx(0.0)


def test_start_up_is_never_negative():
    trial = _trial(0, "serial", "serial", _back_to_back(2, 10 * MS, 10 * MS))
    # A stopped item the watch had not seen carries the watch's start, before the trial's.
    early = dataclasses.replace(trial, startup_s=-145e-6)
    assert trials_frame([early]).iloc[0]["startup_s"] == 0.0
    assert summarize(trials_frame([early]), cores=2).iloc[0]["startup_s"] == 0.0


# --- classification and costs ------------------------------------------------------------------

def _classified(stuck: set[int], n: int = 8, cpu: int = 10 * MS):
    kinds = dict.fromkeys(stuck, "Timeout")
    trials = [_trial(0, "serial", "serial", _back_to_back(n, 10 * MS, cpu, stuck=stuck),
                     kinds=kinds)]
    return classify(summarize(trials_frame(trials), cores=2), items_frame(trials), FAMILIES)


def test_timed_out_spins_are_not_io_bound():
    result = _classified(stuck=set(range(8)))
    assert result.kind == "unknown"
    assert "8 of 8 serial item runs did not finish" in result.evidence[0]
    assert "too few to tell" in result.evidence[0]


def test_enough_finished_items_still_classify_and_say_what_was_left_out():
    result = _classified(stuck={0, 1})
    assert result.kind == "cpu-bound", result.evidence
    assert any("2 of 8 serial item runs did not finish" in line for line in result.evidence)
    too_few = _classified(stuck=set(range(8 - MIN_FINISHED + 1)))
    assert too_few.kind == "unknown"


def test_no_fault_no_left_out_sentence():
    result = _classified(stuck=set())
    assert result.kind == "cpu-bound"
    assert not any("did not finish" in line for line in result.evidence)


def test_costs_do_not_call_a_stopped_item_waiting():
    trials = [_trial(0, "serial", "serial", _back_to_back(4, 10 * MS, 10 * MS, stuck={3}),
                     kinds={3: "Timeout"})]
    frame = trials_frame(trials)
    row = cost_model(frame, items_frame(trials), FAMILIES, None, None).iloc[0]
    assert row["waiting_s"] == pytest.approx(0.0)
    assert row["compute_s"] == pytest.approx(0.03)
    assert row["unexplained_s"] == pytest.approx(0.01)  # its 10 ms: CPU unknown
    assert row["compute_cpu_s_per_item"] == pytest.approx(0.01)


# --- run references ----------------------------------------------------------------------------

@pytest.mark.parametrize("ref", ["latest~-1", "latest~-0", "latest~+1", "latest~1.5",
                                 "latest~x", "latest~", "latest~ 1", "latest~1_0"])
def test_bad_latest_references_are_refused(tmp_path, ref):
    with RunStore(tmp_path / "s.db") as store, pytest.raises(UsageError,
                                                             match="bad run reference"):
        store.resolve(ref)


# --- through the real CLI ------------------------------------------------------------------------

def _words(text: str) -> str:
    return " ".join(text.split())  # the terminal wraps


def _summary_is_sane(doc: dict) -> None:
    for row in doc["summary"]:
        assert row["startup_s"] is None or row["startup_s"] >= 0, row
        if row["parallelism"] is not None and row["cpu_parallelism"] is not None:
            assert row["cpu_parallelism"] <= row["parallelism"] + 1e-12, row


def test_cli_a_timed_out_spin_is_not_io_bound(cli, tmp_path):
    (tmp_path / "spin.py").write_text("def spin(x):\n    while True:\n        pass\n")
    done = cli("run", "spin.py:spin", "--items", "2", "--timeout", "0.5", "-e", "serial,thread",
               "-w", "2", "-r", "1", "--quiet", "--json", "r.json", timeout=240)
    assert done.returncode == 1, done.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["classification"] == "unknown"
    # io-bound would have added thread configurations beyond the cores, each timing out again
    assert [(r["executor"], r["workers"]) for r in doc["summary"]] == [("serial", 1),
                                                                       ("thread", 2)]
    serial = doc["summary"][0]
    assert serial["offcpu_fraction"] is None  # unknown, not 100%
    _summary_is_sane(doc)
    assert "2 of 2 serial item runs did not finish" in _words(done.stdout)
    shown = cli("show", "latest", "--json", "-")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["classification"] == "unknown"


def test_cli_a_memory_stop_leaves_start_up_at_zero_or_more(cli, tmp_path):
    # Stopped before the watch timed it (no --timeout): its record starts at the watch's own
    # start, just before the trial's clock.
    (tmp_path / "hog.py").write_text(
        "import time\n"
        "def hog(x):\n"
        "    if x == 1:\n"
        "        held = bytearray(b'x') * (200 << 20)\n"
        "        time.sleep(5)\n"
        "    return x\n")
    done = cli("run", "hog.py:hog", "--items", "3", "--max-memory", "100M", "-e", "serial",
               "-r", "1", "--quiet", "--json", "r.json", timeout=240)
    assert done.returncode == 1, done.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert [e["kind"] for e in doc["errors"]] == ["MemoryLimit"]
    _summary_is_sane(doc)
    assert "-" not in done.stdout.split("serial ×1")[1].split("\n")[0]  # the table's row


def test_cli_sub_microsecond_items_compute_no_more_than_they_run(cli, tmp_path):
    (tmp_path / "tiny.py").write_text("def same(x):\n    return x\n")
    done = cli("run", "tiny.py:same", "--items", "200", "-e", "serial,thread", "-w", "2",
               "-r", "3", "--quiet", "--json", "r.json")
    assert done.returncode == 0, done.stderr
    _summary_is_sane(json.loads((tmp_path / "r.json").read_text()))


def test_cli_a_function_that_closes_stdout_and_stderr(cli, tmp_path):
    (tmp_path / "closer.py").write_text(
        "import sys\n"
        "def closer(x):\n"
        "    if x == 0:\n"
        "        print('item zero speaks', flush=True)\n"
        "        sys.stdout.close()\n"
        "        sys.stderr.close()\n"
        "    return x * 2\n")
    done = cli("run", "closer.py:closer", "--items", "6", "-e", "serial,thread", "-w", "2",
               "-r", "2", "--quiet", "--json", "r.json")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "ValueError" not in done.stderr, done.stderr
    # Restored for each trial: item 0 speaks in every one of the 4 (and in the preflight).
    assert done.stderr.count("item zero speaks") >= 4, done.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["errors"] == [] and all(r["trials"] == 2 for r in doc["summary"])


def test_cli_show_refuses_a_negative_run_reference(cli):
    assert cli("run", "tiny", "--items", "5", "-e", "thread", "-r", "1",
               "--quiet").returncode == 0
    assert cli("show", "latest~0").returncode == 0
    for ref in ("latest~-1", "latest~1.5", "latest~x"):
        done = cli("show", ref)
        assert done.returncode == 2, (ref, done.stdout)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("poolscope: error: bad run reference")
        assert "Traceback" not in done.stderr
