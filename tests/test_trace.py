"""The Chrome Trace Event export, checked against the format's rules on real and scripted runs.

The schema below follows Google's "Trace Event Format" document (the JSON Object Format):
complete events ("X") need ts, dur, pid, tid and name; metadata events ("M") name a process or
thread and carry args; nestable async events ("b"/"e") need cat and id; counters ("C") carry
numeric args.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import poolscope
from poolscope import UsageError
from poolscope.model import ItemColumns, TrialResult
from poolscope.present import fixed_width_json as fixed
from poolscope.present import trace as trace_module
from poolscope.present.trace import trace_events, write_trace
from poolscope.result import Result

EPS_US = 1e-6  # float slack when adding µs values written with three decimals

NUMBER = {"type": "number"}
INT = {"type": "integer"}
BASE = {"name": {"type": "string"}, "cat": {"type": "string"}, "pid": INT, "tid": INT,
        "ts": NUMBER, "args": {"type": "object"}}
EVENT_SCHEMA = {
    "oneOf": [
        {"type": "object", "required": ["ph", "name", "ts", "dur", "pid", "tid"],
         "properties": {**BASE, "ph": {"const": "X"}, "dur": {"type": "number", "minimum": 0},
                        "tdur": {"type": "number", "minimum": 0}}},
        {"type": "object", "required": ["ph", "name", "pid", "args"],
         "properties": {**BASE, "ph": {"const": "M"},
                        "name": {"enum": ["process_name", "thread_name", "process_sort_index",
                                          "thread_sort_index", "process_labels"]}},
         "allOf": [
             {"if": {"properties": {"name": {"enum": ["process_name", "thread_name"]}}},
              "then": {"properties": {"args": {"required": ["name"],
                                               "properties": {"name": {"type": "string"}}}}}},
             {"if": {"properties": {"name": {"pattern": "_sort_index$"}}},
              "then": {"properties": {"args": {"required": ["sort_index"],
                                               "properties": {"sort_index": INT}}}}},
             {"if": {"properties": {"name": {"const": "process_labels"}}},
              "then": {"properties": {"args": {"required": ["labels"]}}}},
         ]},
        {"type": "object", "required": ["ph", "name", "cat", "id", "ts", "pid", "tid"],
         "properties": {**BASE, "ph": {"enum": ["b", "e"]},
                        "id": {"type": "string", "pattern": "^0x[0-9a-f]+$"}}},
        {"type": "object", "required": ["ph", "name", "ts", "pid", "args"],
         "properties": {**BASE, "ph": {"const": "C"},
                        "args": {"type": "object", "minProperties": 1,
                                 "additionalProperties": NUMBER}}},
    ],
}
ITEM_ARGS = {"type": "object",
             "required": ["item", "status", "cpu_s", "wall_s", "core", "os_pid", "os_tid"],
             "properties": {"item": INT, "status": {"enum": ["ok", "error"]}, "cpu_s": NUMBER,
                            "wall_s": NUMBER, "core": {"type": ["integer", "null"]},
                            "os_pid": INT, "os_tid": INT, "error": {"type": "string"}}}
DOCUMENT_SCHEMA = {
    "type": "object", "required": ["traceEvents", "displayTimeUnit", "otherData"],
    "properties": {
        "traceEvents": {"type": "array", "items": EVENT_SCHEMA},
        "displayTimeUnit": {"enum": ["ms", "ns"]},
        "otherData": {"type": "object",
                      "required": ["poolscope", "schema", "run_id", "target", "environment",
                                   "time_zero"],
                      "properties": {"schema": {"const": "poolscope/1"}}},
    },
}


def work(x: int) -> int:
    """Module level, so spawn and forkserver workers could import it; item 7 fails."""
    if x == 7:
        raise ValueError("seven is unlucky")
    return sum(range(20_000 + x))


@pytest.fixture(scope="module")
def real():
    return poolscope.compare(work, range(40), executors=["serial", "thread", "process"],
                             workers=2, repeat=1)


@pytest.fixture(scope="module")
def real_doc(real):
    return trace_events(real)


def strict_loads(text: str | bytes):
    def reject(constant: str):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=reject)


def item_events(doc, phases=("X",)):
    return [e for e in doc["traceEvents"]
            if e["ph"] in phases and e.get("cat", "").startswith("item")]


# --- scripted trials -----------------------------------------------------------------------------
def scripted_trial(spans, *, index=0, t0_ns=10**12, executor="process", workers=1,
                   pids=None, tids=None, cpu=None, errors=(), wall_ns=None):
    """A trial from (start_ns, end_ns) spans; one worker unless pids/tids say otherwise."""
    n = len(spans)
    start = np.array([s for s, _ in spans], np.int64)
    end = np.array([e for _, e in spans], np.int64)
    status = np.zeros(n, np.int8)
    for item in errors:
        status[item] = 1
    cols = ItemColumns(
        item=np.arange(n, dtype=np.int64), start_ns=start, end_ns=end,
        cpu_ns=np.array(cpu if cpu is not None else end - start, np.int64),
        core=np.zeros(n, np.int16), status=status,
        pid=np.array(pids if pids is not None else [500] * n, np.int32),
        tid=np.array(tids if tids is not None else [500] * n, np.int64))
    wall = wall_ns if wall_ns is not None else int(end.max()) + 1000
    return TrialResult(
        index=index, executor=executor, workers=workers, chunksize=1, repeat=index, status="ok",
        wall_s=wall / 1e9, cpu_s=wall / 1e9, startup_s=int(start.min()) / 1e9, teardown_s=5e-7,
        peak_rss=1, host="h", items=cols, t0_ns=t0_ns,
        errors=[{"executor": executor, "item": i, "kind": "ValueError", "message": f"bad {i}"}
                for i in errors])


def scripted_result(*trials):
    return Result(run_id="scripted", target="tests:scripted", n_items=len(trials[0].items),
                  trial_results=list(trials), environment={"python": "3", "cpu_count": 2})


# --- the format ----------------------------------------------------------------------------------
def test_real_run_matches_the_schema_and_is_strict_json(real, tmp_path: Path):
    path = write_trace(real, tmp_path / "run.json")
    assert path == tmp_path / "run.json"
    doc = strict_loads(path.read_bytes())
    jsonschema.validate(doc, DOCUMENT_SCHEMA)
    for event in item_events(doc, ("X", "b")):
        jsonschema.validate(event["args"], ITEM_ARGS)
    assert doc["otherData"]["run_id"] == real.run_id
    assert doc["otherData"]["poolscope"] == poolscope.__version__
    assert doc["otherData"]["environment"] == json.loads(json.dumps(real.environment))
    assert doc == trace_events(real)  # the pure builder gives exactly the file's document


def test_one_item_event_per_item_record(real, real_doc):
    assert len(item_events(real_doc, ("X", "b"))) == len(real.items) == 3 * 40
    seen = Counter((e["pid"], e["args"]["item"]) for e in item_events(real_doc, ("X", "b")))
    assert set(seen.values()) == {1}
    assert {pid for pid, _ in seen} == {1, 2, 3}


def test_every_trial_is_a_named_process_in_order(real, real_doc):
    meta = defaultdict(dict)
    for e in real_doc["traceEvents"]:
        if e["ph"] == "M" and e["name"].startswith("process_"):
            meta[e["pid"]][e["name"]] = e["args"]
    assert sorted(meta) == [1, 2, 3]
    for pid, trial in zip([1, 2, 3], real.trial_results, strict=True):
        name = meta[pid]["process_name"]["name"]
        assert name == (f"{trial.executor} ×{trial.workers} · trial {trial.index + 1} "
                        f"(repeat {trial.repeat + 1})")
        assert meta[pid]["process_sort_index"]["sort_index"] == pid
        assert "wall" in meta[pid]["process_labels"]["labels"]


def test_every_thread_used_is_named(real_doc):
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in real_doc["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_name"}
    sorts = {(e["pid"], e["tid"]) for e in real_doc["traceEvents"]
             if e["ph"] == "M" and e["name"] == "thread_sort_index"}
    used = {(e["pid"], e["tid"]) for e in real_doc["traceEvents"] if e["ph"] != "M"}
    assert used <= set(names)
    assert set(names) == sorts
    by_pid = defaultdict(list)
    for (pid, _tid), name in sorted(names.items()):
        by_pid[pid].append(name)
    assert by_pid[1][0] == "trial" and by_pid[1][1].startswith("worker 0 · tid ")
    assert all(n.startswith(f"worker {k} · tid ") for k, n in enumerate(by_pid[2][1:]))
    assert all(n.startswith(f"worker {k} · pid ") for k, n in enumerate(by_pid[3][1:]))
    assert len(by_pid[3]) == 3  # the trial thread and two worker processes
    # Perfetto names threads by tid alone: a tid belongs to one process in the whole file.
    assert len({tid for _, tid in names}) == len(names)


def assert_x_events_nest(doc):
    """Per thread, sorted by start: each X event starts after the previous ends, or inside it."""
    lanes = defaultdict(list)
    for e in doc["traceEvents"]:
        if e["ph"] == "X":
            lanes[(e["pid"], e["tid"])].append((e["ts"], -e["dur"], e["ts"] + e["dur"]))
    for spans in lanes.values():
        stack: list[float] = []
        for ts, _, end in sorted(spans):
            while stack and stack[-1] <= ts + EPS_US:
                stack.pop()
            assert not stack or end <= stack[-1] + EPS_US, "partially overlapping X events"
            stack.append(end)


def test_x_events_on_a_thread_never_partially_overlap(real_doc):
    assert_x_events_nest(real_doc)
    items = item_events(real_doc)
    by_lane = defaultdict(list)
    for e in items:
        by_lane[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_lane.values():  # items on a lane do not even nest: one after another
        spans.sort()
        assert all(b[0] >= a[1] - EPS_US for a, b in pairwise(spans))


def test_thread_cpu_time_is_clipped_to_the_wall_time(real, real_doc):
    items = item_events(real_doc)
    assert all(0 <= e["tdur"] <= e["dur"] for e in items)
    # The raw reading is kept: it may exceed the wall time by the probe's own cost.
    raw = {(e["pid"], e["args"]["item"]): e["args"]["cpu_s"] for e in items}
    for pid, trial in enumerate(real.trial_results, 1):
        cpu = dict(zip(trial.items.item.tolist(), (trial.items.cpu_ns / 1e9).tolist(),
                       strict=True))
        assert all(raw[(pid, i)] == pytest.approx(cpu[i], abs=1e-9) for i in cpu)
    assert all(e["tdur"] == pytest.approx(min(e["args"]["cpu_s"], e["args"]["wall_s"]) * 1e6,
                                          abs=1e-3) for e in items)


def test_times_are_microseconds_with_nanosecond_precision(real, real_doc):
    trial = real.trial_results[0]
    zero = min(t.t0_ns for t in real.trial_results)
    events = {e["args"]["item"]: e for e in item_events(real_doc) if e["pid"] == 1}
    for item, start, end in zip(trial.items.item.tolist(), trial.items.start_ns.tolist(),
                                trial.items.end_ns.tolist(), strict=True):
        assert events[item]["ts"] == pytest.approx((trial.t0_ns - zero + start) / 1000, abs=5e-4)
        assert events[item]["dur"] == pytest.approx((end - start) / 1000, abs=5e-4)
        assert events[item]["args"]["wall_s"] == pytest.approx((end - start) / 1e9, abs=1e-12)


def test_a_failed_item_says_so(real_doc):
    failed = [e for e in item_events(real_doc, ("X", "b")) if e["args"]["status"] == "error"]
    assert len(failed) == 3  # item 7 in each trial
    for e in failed:
        assert e["args"]["item"] == 7 and e["name"] == "item 7"
        assert e["cat"] == "item,error"
        assert e["args"]["error"] == "ValueError: seven is unlucky"
    ok = [e for e in item_events(real_doc) if e["args"]["status"] == "ok"]
    assert all(e["cat"] == "item" and "error" not in e["args"] for e in ok)


def test_serial_trials_do_not_overlap_on_the_shared_axis(real, real_doc):
    slices = sorted((e["pid"], e["ts"], e["ts"] + e["dur"]) for e in real_doc["traceEvents"]
                    if e["ph"] == "X" and e["name"].startswith("trial: "))
    assert [pid for pid, _, _ in slices] == [1, 2, 3]
    assert slices[0][1] == 0
    for (_, _, end), (_, start, _) in pairwise(slices):
        assert start >= end  # trials ran one after another, and show so
    assert real_doc["otherData"]["time_zero"].startswith("the first trial's start")
    for pid, trial in enumerate(real.trial_results, 1):  # items sit inside their trial
        items = [e for e in item_events(real_doc) if e["pid"] == pid]
        _, start, end = slices[pid - 1]
        assert all(start <= e["ts"] and e["ts"] + e["dur"] <= end + EPS_US for e in items)
        assert end - start == pytest.approx(trial.wall_s * 1e6, abs=1e-3)


def test_trial_slice_with_start_up_and_teardown_inside(real_doc):
    trial_events = [e for e in real_doc["traceEvents"] if e.get("cat") == "trial"]
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in real_doc["traceEvents"]
             if e["name"] == "thread_name"}
    assert {names[(e["pid"], e["tid"])] for e in trial_events} == {"trial"}
    parents = [e for e in trial_events if e["name"].startswith("trial: ")]
    assert [p["name"] for p in parents] == ["trial: serial ×1", "trial: thread ×2",
                                            "trial: process ×2"]
    for p in parents:
        assert {"wall_s", "cpu_s", "startup_s", "teardown_s", "status"} <= set(p["args"])
        assert p["args"]["status"] == "partial"
        assert p["args"]["failed_items"] == 1
        children = [e for e in trial_events if e["pid"] == p["pid"] and e is not p]
        assert {c["name"] for c in children} <= {"start-up", "teardown"}
        for c in children:
            assert p["ts"] <= c["ts"] and c["ts"] + c["dur"] <= p["ts"] + p["dur"]


def test_items_in_progress_counter(real, real_doc):
    counters = defaultdict(list)
    for e in real_doc["traceEvents"]:
        if e["ph"] == "C":
            assert e["name"] == "items" and set(e["args"]) == {"in progress"}
            counters[e["pid"]].append((e["ts"], e["args"]["in progress"]))
    assert sorted(counters) == [1, 2, 3]
    assert max(v for _, v in counters[1]) == 1  # serial: one item at a time
    assert max(v for _, v in counters[3]) <= 2
    assert all(series[-1][1] == 0 for series in counters.values())


# --- overlapping items become async pairs ----------------------------------------------------
def test_overlapping_items_on_one_lane_become_async_pairs():
    # Items 1 and 3 start before the lane's previous item ended; 2 and 4 fit after item 0/2.
    spans = [(0, 10_000), (5_000, 15_000), (12_000, 20_000), (13_000, 14_000),
             (25_000, 30_000), (26_000, 40_000)]
    doc = trace_events(scripted_result(scripted_trial(spans, executor="asyncio-like")))
    jsonschema.validate(doc, DOCUMENT_SCHEMA)
    x = item_events(doc)
    begins = item_events(doc, ("b",))
    ends = item_events(doc, ("e",))
    assert sorted(e["args"]["item"] for e in begins) == [1, 3, 5]
    assert len(begins) == len(ends) == 3
    assert len(x) + len(begins) == len(spans)  # no item dropped
    assert_x_events_nest(doc)
    by_id = {e["id"]: e for e in begins}
    assert len(by_id) == 3
    for e in ends:
        b = by_id[e["id"]]
        assert (e["name"], e["cat"], e["pid"], e["tid"]) == (b["name"], b["cat"], b["pid"],
                                                             b["tid"])
        item = b["args"]["item"]
        assert b["ts"] == pytest.approx(spans[item][0] / 1000)
        assert e["ts"] == pytest.approx(spans[item][1] / 1000)
    assert {e["name"] for e in begins} == {"worker 0 · overlapping"}


# --- item events as dicts: the reference the fast (numpy) writer is checked against ----------
def item_args(trial, row: int) -> dict:
    core = int(trial.core[row])
    args = {
        "item": int(trial.item[row]), "status": "ok" if trial.ok[row] else "error",
        "cpu_s": int(trial.cpu[row]) / 1e9,
        "wall_s": max(0, int(trial.end[row]) - int(trial.start[row])) / 1e9,
        "core": core if core >= 0 else None,
        "os_pid": int(trial.os_pid[row]), "os_tid": int(trial.os_tid[row]),
    }
    if trial.worker is not None and trial.workers is not None and trial.retried is not None:
        address, host = trial.workers[int(trial.worker[row])]
        args.update(host=host, worker=address, retried=bool(trial.retried[row]))
    if not trial.ok[row]:
        args["error"] = trace_module._error_text(trial.errors.get(int(trial.item[row])))
    return args


def item_dicts(trial, row: int) -> list[dict]:
    """One item's event(s) as dicts, built the plain way."""
    us = trace_module._us
    start, end = int(trial.start[row]), int(trial.end[row])
    ts, dur = trial.offset + start, max(0, end - start)
    tid = trial.tid0 + int(trial.lane[row]) + 1
    cat = "item" if trial.ok[row] else "item,error"
    args = item_args(trial, row)
    if not trial.overlapping[row]:
        tdur = min(max(0, int(trial.cpu[row])), dur)
        return [{"name": f"item {args['item']}", "cat": cat, "ph": "X", "ts": us(ts),
                 "dur": us(dur), "tdur": us(tdur), "pid": trial.pid, "tid": tid,
                 "args": args}]
    name = f"{trial.lane_names[int(trial.lane[row])].split(' · ')[0]} · overlapping"
    ident = f"0x{(trial.pid << 32) | args['item']:x}"
    base = {"name": name, "cat": cat, "id": ident, "pid": trial.pid, "tid": tid}
    return [{**base, "ph": "b", "ts": us(ts), "args": args},
            {**base, "ph": "e", "ts": us(ts + dur)}]


def test_the_fast_writer_matches_the_slow_one():
    """Bulk text formatting (numpy) and json.dumps per item give the same events."""
    rng = np.random.default_rng(3)
    n = 300
    start = np.sort(rng.integers(0, 3_000_000, n))
    spans = list(zip(start.tolist(), (start + rng.integers(0, 40_000, n)).tolist(),
                     strict=True))
    pids = rng.integers(100, 103, n).tolist()
    cpu = rng.integers(-5, 60_000, n).tolist()  # negative: a clock oddity must still be JSON
    failed = sorted(rng.choice(n, 40, replace=False).tolist())
    trial = scripted_trial(spans, pids=pids, tids=pids, cpu=cpu, workers=3, errors=failed)
    trial.errors[0]["message"] = 'a "quoted" message, with ünïcode\nand a newline'
    del trial.errors[1]  # a failed item whose message was lost
    trial.items.core[:] = rng.integers(-1, 4, n)
    doc = trace_events(scripted_result(trial))
    fast = item_events(doc, ("X", "b", "e"))
    prepared = trace_module._prepare(trial, 1, 0)
    slow = [e for row in range(n) for e in item_dicts(prepared, row)]

    def key(e):
        return (e["ph"], e["pid"], e["tid"], e["ts"], e["name"], e.get("id", ""))

    assert len(fast) == len(slow) == n + len(item_events(doc, ("e",)))
    assert item_events(doc, ("b",)), "the random spans should overlap somewhere"
    assert {e["args"]["status"] for e in fast if "args" in e} == {"ok", "error"}
    assert "unknown error" in {e["args"].get("error") for e in fast if "args" in e}
    for a, b in zip(sorted(fast, key=key), sorted(slow, key=key), strict=True):
        assert a == b


def test_items_of_addressable_workers_carry_host_worker_and_retried():
    """Under dask each item says which worker and host ran it and whether its chunk ran again
    after a worker was lost; the fast writer and the reference dicts agree."""
    spans = [(k * 1000, k * 1000 + 800) for k in range(6)]
    trial = scripted_trial(spans, pids=[7, 7, 8, 8, 9, 9], tids=[7, 7, 8, 8, 9, 9],
                           executor="dask", workers=2)
    trial.worker_info = [{"address": "tcp://10.0.0.1:1", "host": "alpha"},
                         {"address": "tcp://10.0.0.2:1", "host": "beta"}]
    trial.items.worker[:] = [0, 0, 1, 1, -1, -1]
    trial.items.retried[:] = [False, False, True, True, False, False]
    doc = trace_events(scripted_result(trial))
    by_item = {e["args"]["item"]: e["args"] for e in item_events(doc)}
    assert [(by_item[k]["host"], by_item[k]["worker"], by_item[k]["retried"]) for k in range(6)
            ] == [("alpha", "tcp://10.0.0.1:1", False)] * 2 + [
                ("beta", "tcp://10.0.0.2:1", True)] * 2 + [("h", "", False)] * 2
    prepared = trace_module._prepare(trial, 1, 0)
    slow = {e["args"]["item"]: e["args"]
            for row in range(6) for e in item_dicts(prepared, row)}
    assert slow == by_item
    plain = trace_events(scripted_result(scripted_trial(spans)))  # no workers: no such args
    assert not {"host", "worker", "retried"} & set(item_events(plain)[0]["args"])


def test_number_formatting_round_trips():
    """Padded fixed-width columns: each token is the exact decimal, and the line is JSON."""
    rng = np.random.default_rng(7)
    values = np.concatenate((rng.integers(-10**12, 10**12, 2000),
                             [0, -1, 1, 999, -999, 1000, -1000, 10**15]))
    parts = [b"[", fixed.Int(values), b",", fixed.Decimal(values, 3), b",",
             fixed.Decimal(values, 9), b',"', fixed.InString(np.abs(values), 16),
             b"]\n"]
    lines = fixed.render(parts, len(values)).tobytes().decode().splitlines()
    for value, line in zip(values.tolist(), lines, strict=True):
        as_int, _, _, hexa = strict_loads(line)
        tokens = [token.strip() for token in line[1:].split(",")]
        assert as_int == value
        assert tokens[1] == _exact(value, 3)
        assert tokens[2] == _exact(value, 9)
        assert hexa == f"{abs(value):x}"


def _exact(value: int, places: int) -> str:
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}"


# --- time zero -------------------------------------------------------------------------------
def test_trials_keep_their_real_offsets_and_can_be_aligned():
    first = scripted_trial([(1_000, 2_000)], t0_ns=5 * 10**9)
    second = scripted_trial([(1_000, 2_000)], index=1, t0_ns=5 * 10**9 + 3_000_000)
    result = scripted_result(first, second)
    run = trace_events(result)
    starts = {e["pid"]: e["ts"] for e in item_events(run)}
    assert starts == {1: 1.0, 2: 3001.0}
    aligned = trace_events(result, align="trial")
    assert {e["pid"]: e["ts"] for e in item_events(aligned)} == {1: 1.0, 2: 1.0}
    assert aligned["otherData"]["time_zero"] == "each trial's own start"
    second.t0_ns = 0  # not recorded: each trial from its own start
    fallback = trace_events(result)
    assert {e["pid"]: e["ts"] for e in item_events(fallback)} == {1: 1.0, 2: 1.0}
    assert "not recorded" in fallback["otherData"]["time_zero"]
    with pytest.raises(UsageError, match="align"):
        trace_events(result, align="wall")


def test_a_busy_trial_gets_a_binned_counter():
    n = 5_000
    start = np.arange(n, dtype=np.int64) * 1_000
    spans = list(zip(start.tolist(), (start + 1_500).tolist(), strict=True))
    doc = trace_events(scripted_result(scripted_trial(spans, pids=[1, 2] * (n // 2),
                                                      tids=[1, 2] * (n // 2), workers=2)))
    counter = [e for e in doc["traceEvents"] if e["ph"] == "C"]
    assert len(counter) == trace_module.COUNTER_BINS + 1
    levels = [e["args"]["in progress"] for e in counter]
    assert levels[-1] == 0
    assert 1.4 < float(np.mean(levels[:-1])) < 1.6  # 1.5 items in progress on average
    assert len(item_events(doc)) == n and not item_events(doc, ("b",))


def test_empty_and_failed_trials_still_write():
    empty = scripted_trial([(0, 1)])
    empty.items = ItemColumns.empty()
    empty.status = "failed"
    empty.errors = [{"executor": "process", "item": None, "kind": "BrokenProcessPool",
                     "message": "a worker died"}]
    doc = trace_events(scripted_result(empty))
    jsonschema.validate(doc, DOCUMENT_SCHEMA)
    (trial,) = [e for e in doc["traceEvents"] if e["name"].startswith("trial: ")]
    assert trial["args"]["status"] == "failed"
    assert trial["args"]["errors"] == ["BrokenProcessPool: a worker died"]
    assert not item_events(doc, ("X", "b"))


# --- files -----------------------------------------------------------------------------------
def test_to_perfetto_writes_the_file(real, tmp_path: Path):
    path = real.to_perfetto(tmp_path / "run.json")
    assert Path(path) == tmp_path / "run.json"
    doc = strict_loads(Path(path).read_text(encoding="utf-8"))
    assert len(item_events(doc, ("X", "b"))) == len(real.items)


def test_gz_names_are_compressed(real, tmp_path: Path):
    path = write_trace(real, tmp_path / "run.json.gz")
    with gzip.open(path, "rb") as f:
        assert strict_loads(f.read()) == trace_events(real)


def test_bad_paths_are_usage_errors(real, tmp_path: Path):
    with pytest.raises(UsageError, match=r"^cannot write the trace to .*does not exist"):
        write_trace(real, tmp_path / "missing" / "run.json")
    with pytest.raises(UsageError, match=r"^cannot write the trace to .*is a directory"):
        write_trace(real, tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match=r"^cannot write the trace to .*is not a directory"):
        write_trace(real, tmp_path / "file" / "run.json")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
def test_a_failed_write_is_a_usage_error(real):
    with pytest.raises(UsageError, match=r"^cannot write the trace to /dev/full: No space"):
        write_trace(real, "/dev/full")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_directory_is_a_usage_error(real, tmp_path: Path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(UsageError, match=r"^cannot write the trace to .*not writable"):
            write_trace(real, folder / "run.json")
    finally:
        folder.chmod(0o700)
