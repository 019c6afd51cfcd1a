"""Predictions for other core counts (analysis/predict.py): on scripted trials whose parameters
are known — a fixed serial part, a GIL-bound thread pool, a dispatch-bound process pool, load
imbalance from few large chunks — the model recovers the parameters and the times within 5%;
through the CLI, `run --predict-cores` and `poolscope predict` answer, and bad input exits 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from poolscope.analysis.predict import executor_parts, item_parts, predict
from poolscope.model import ItemColumns, TrialResult
from poolscope.result import Result, TransferSample

MS = 1e-3


def scripted(index: int, executor: str, family: str, lanes: list[list[tuple[float, float, float]]],
             *, startup: float = 0.0, teardown: float = 0.0, chunksize: int = 1,
             first_item: int = 0) -> TrialResult:
    """A trial whose worker ``lane`` ran ``lanes[lane]``: (start_s, end_s, cpu_s) after the
    trial's start; items are numbered lane by lane."""
    rows = [(lane, *item) for lane, items in enumerate(lanes) for item in items]
    n = len(rows)
    lane = np.array([r[0] for r in rows], np.int64)

    def ns(k: int) -> np.ndarray:
        return np.round(np.array([r[k] for r in rows]) * 1e9).astype(np.int64)

    threads = family == "thread"
    order = np.argsort(ns(1), kind="stable")
    items = ItemColumns(
        item=first_item + np.arange(n, dtype=np.int64)[np.argsort(order)], start_ns=ns(1),
        end_ns=ns(2), cpu_ns=ns(3), core=(lane % 2).astype(np.int16),
        status=np.zeros(n, np.int8),
        pid=np.full(n, 100, np.int32) if threads else (100 + lane).astype(np.int32),
        tid=(200 + lane) if threads else np.ones(n, np.int64))
    end = max(r[2] for r in rows)
    return TrialResult(
        index=index, executor=executor, workers=len(lanes), chunksize=chunksize, repeat=0,
        wall_s=end + teardown, cpu_s=sum(r[3] for r in rows), startup_s=startup,
        teardown_s=teardown, peak_rss=0, status="ok", host="test", items=items, family=family)


def lane_of(count: int, wall: float, cpu: float, start: float = 0.0, gap: float = 0.0):
    """``count`` items back to back from ``start``, each ``wall`` long with ``cpu`` of CPU,
    ``gap`` apart."""
    return [(start + i * (wall + gap), start + i * (wall + gap) + wall, cpu)
            for i in range(count)]


def result_of(*trials: TrialResult, cores: int = 2, chunksize: list | None = None,
              transfer: TransferSample | None = None) -> Result:
    return Result(run_id="scripted", target="scripted", n_items=len(trials[0].items),
                  trial_results=list(trials), transfer=transfer,
                  environment={"cpu_count": cores, "gil_enabled": True},
                  options={"chunksize": chunksize or ["auto"]})


def serial_trials(count: int, wall: float, cpu: float, repeats: int = 3) -> list[TrialResult]:
    return [scripted(i, "serial", "serial", [lane_of(count, wall, cpu)]) for i in range(repeats)]


def one(frame, executor: str, workers: int, cores: int):
    row = frame[(frame["executor"] == executor) & (frame["workers"] == workers)
                & (frame["cores"] == cores)]
    assert len(row) == 1, frame
    return row.iloc[0]


def test_a_fixed_serial_part_start_up_is_recovered_and_caps_the_speedup():
    # 40 items of 10 ms CPU; a process pool whose start-up is 200 ms however many workers.
    serial = serial_trials(40, 10 * MS, 10 * MS)
    trials = [*serial]
    for index, workers in enumerate((1, 2), start=len(trials)):
        per_lane = 40 // workers
        lanes = [lane_of(per_lane, 10 * MS, 10 * MS, start=0.2) for _ in range(workers)]
        trials += [scripted(index * 10 + r, "process", "process", lanes, startup=0.2,
                            chunksize=1) for r in range(3)]
    result = result_of(*trials, chunksize=[1])
    parts = executor_parts(result, "process", item_parts(result))
    assert parts.startup == pytest.approx((0.2, 0.0), abs=0.2 * 0.05)
    frame = result.predict(cores=[4, 8], workers=[4, 8])
    # 200 ms fixed + 400 ms of items over p workers.
    assert one(frame, "process", 4, 4)["wall_s"] == pytest.approx(0.2 + 0.1, rel=0.05)
    assert one(frame, "process", 8, 8)["wall_s"] == pytest.approx(0.2 + 0.05, rel=0.05)
    assert one(frame, "process", 8, 8)["speedup"] == pytest.approx(0.4 / 0.25, rel=0.05)
    assert "start-up" in one(frame, "process", 8, 8)["bottleneck"]
    # A machine with fewer cores than workers time-slices them.
    slow = result.predict(cores=1, workers=[2])
    assert one(slow, "process", 2, 1)["wall_s"] == pytest.approx(0.2 + 0.4, rel=0.05)


def test_a_gil_bound_thread_pool_is_predicted_no_faster_on_more_cores():
    serial = serial_trials(40, 10 * MS, 10 * MS)
    # Two threads take turns: each item is 20 ms of wall for its 10 ms of CPU.
    lanes = [lane_of(20, 20 * MS, 10 * MS), lane_of(20, 20 * MS, 10 * MS)]
    threads = [scripted(10 + r, "thread", "thread", lanes) for r in range(3)]
    result = result_of(*serial, *threads)
    parts = executor_parts(result, "thread", item_parts(result))
    assert parts.gil_share == pytest.approx(1.0, rel=0.05)
    frame = result.predict(cores=[8, 16], workers=[8, 16])
    for cores in (8, 16):
        row = one(frame, "thread", cores, cores)
        assert row["speedup"] == pytest.approx(1.0, rel=0.05)
        assert row["bottleneck"].startswith("items hold the GIL 100%")


def test_threads_that_wait_are_not_taken_for_a_gil():
    # 64 items: Pool.map's chunks of 2 fill 8 workers evenly (40 would leave a short round).
    serial = serial_trials(64, 10 * MS, 0.1 * MS)
    lanes = [lane_of(16, 10 * MS, 0.1 * MS) for _ in range(4)]
    result = result_of(*serial, *[scripted(10 + r, "thread", "thread", lanes) for r in range(3)])
    assert executor_parts(result, "thread", item_parts(result)).gil_share == 0.0
    frame = result.predict(cores=8, workers=[8])
    assert one(frame, "thread", 8, 8)["speedup"] == pytest.approx(8.0, rel=0.05)


def test_a_dispatch_bound_process_pool_is_capped_by_the_parent():
    # 200 items of 1 ms CPU; the parent pickles 2 ms per item: no pool beats 0.5× serial.
    serial = serial_trials(200, 1 * MS, 1 * MS)
    lanes = [lane_of(100, 1 * MS, 1 * MS, start=0.01, gap=3 * MS) for _ in range(2)]
    pool = [scripted(10 + r, "process", "process", lanes, startup=0.01) for r in range(3)]
    result = result_of(*serial, *pool, chunksize=[1],
                       transfer=TransferSample(bytes_per_item=1e6, seconds_per_item=2 * MS))
    parts = executor_parts(result, "process", item_parts(result))
    assert parts.parent_s == pytest.approx(2 * MS, rel=0.05)
    frame = result.predict(cores=16, workers=[16])
    row = one(frame, "process", 16, 16)
    assert row["bottleneck"].startswith("the parent's pickling, 2.00 ms per item")
    assert row["wall_s"] >= 200 * 2 * MS * 0.95
    assert row["speedup"] <= 0.5 * 1.05


def test_few_large_chunks_leave_cores_idle_load_imbalance():
    # 10 items of 100 ms in chunks of 5: two chunks, so more than two workers cannot help.
    serial = serial_trials(10, 100 * MS, 100 * MS)
    lanes = [lane_of(5, 100 * MS, 100 * MS), lane_of(5, 100 * MS, 100 * MS)]
    pool = [scripted(10 + r, "process", "process", lanes, chunksize=5) for r in range(3)]
    result = result_of(*serial, *pool, chunksize=[5])
    frame = result.predict(cores=[4, 8], workers=[4, 8])
    for workers in (4, 8):
        row = one(frame, "process", workers, workers)
        assert row["wall_s"] == pytest.approx(0.5, rel=0.05)
        assert row["speedup"] == pytest.approx(2.0, rel=0.05)
        assert row["bottleneck"].startswith("load imbalance")
    # With Pool.map's own chunks (about four per worker) the same items spread out.
    spread = result_of(*serial, *pool)
    row = one(spread.predict(cores=4, workers=[4]), "process", 4, 4)
    assert row["wall_s"] < 0.45


def test_the_prediction_is_in_the_json_with_its_assumptions():
    serial = serial_trials(8, 10 * MS, 10 * MS)
    pool = [scripted(10 + r, "process", "process", [lane_of(4, 10 * MS, 10 * MS)] * 2)
            for r in range(3)]
    result = result_of(*serial, *pool)
    result.predict(cores=[4])
    doc = json.loads(json.dumps(result.to_json(), allow_nan=False))
    (entry, *_) = doc["prediction"]
    assert {"executor", "workers", "cores", "wall_s", "wall_ci", "speedup",
            "bottleneck"} <= set(entry)
    assert entry["cores"] == 4 and "per-core speed" in doc["prediction_assumptions"]
    # Each component the model read is shown, per executor.
    parts = doc["prediction_model"]["process"]
    assert {"handoff_s_per_item", "parent_s_per_item", "bytes_per_item", "bytes_per_s",
            "gil_share", "startup_s", "teardown_s", "calibration"} <= set(parts)
    assert parts["calibration"]["2"] == pytest.approx(1.0, rel=0.05)


def test_cli_run_with_predict_cores_and_the_predict_command(tmp_path):
    done = run_cli("run", "cpu", "--size", "20000", "--items", "16", "-e", "thread,process",
                   "-w", "1,2", "-r", "2", "--predict-cores", "4,8", "--json", "out.json",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "predicted on 4 cores (measured on" in done.stdout
    assert "predicted on 8 cores" in done.stdout and "assumes" in done.stdout
    assert "process: hand-off" in done.stdout and "measured ÷ model here" in done.stdout
    doc = json.loads((tmp_path / "out.json").read_text())
    cores = {entry["cores"] for entry in doc["prediction"]}
    assert cores == {4, 8}
    assert {(e["executor"], e["workers"]) for e in doc["prediction"] if e["cores"] == 4} >= {
        ("thread", 1), ("thread", 2), ("thread", 4), ("process", 4)}

    again = run_cli("predict", "latest", "--cores", "16", "-e", "process", "--json", "-",
                    cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    assert {e["executor"] for e in doc["prediction"]} == {"process"}
    assert {e["cores"] for e in doc["prediction"]} == {16}

    for args, words in ((["--cores", "0"], "--cores"), (["--cores", "4", "-e", "loky"], "loky"),
                        (["--cores", "x"], "--cores")):
        bad = run_cli("predict", "latest", *args, cwd=tmp_path)
        assert bad.returncode == 2, bad.stderr
        assert bad.stderr.count("\n") == 1 and words in bad.stderr
    bad = run_cli("run", "cpu", "--items", "4", "--predict-cores", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--predict-cores" in bad.stderr


def test_the_picture_draws_each_prediction_with_its_band_beside_the_measured_points(tmp_path):
    from poolscope import UsageError

    serial = serial_trials(16, 10 * MS, 10 * MS)
    pool = [scripted(10 + r, "process", "process", [lane_of(8, 11 * MS, 10 * MS)] * 2)
            for r in range(3)]
    result = result_of(*serial, *pool)
    with pytest.raises(UsageError, match="predict first"):
        result.plot_prediction()
    result.predict(cores=[4, 8])
    fig = result.plot_prediction(tmp_path / "prediction.png")
    assert (tmp_path / "prediction.png").read_bytes()[:4] == b"\x89PNG"
    assert len(fig.axes) == 2  # a panel per core count
    for ax in fig.axes:
        gids = {artist.get_gid() for artist in [*ax.lines, *ax.collections]}
        assert {"predicted-process", "band-process", "measured-process"} <= gids


def test_short_computing_items_on_one_core_are_taken_to_hold_the_gil_under_threads():
    # Measured on one core, two threads cannot show a GIL, and no watch read a share (items
    # too short): items that compute are taken to hold it, and said to be taken so.
    serial = serial_trials(400, 0.1 * MS, 0.1 * MS)
    lanes = [[(i * 0.2 * MS + k * 0.1 * MS, i * 0.2 * MS + (k + 1) * 0.1 * MS, 0.1 * MS)
              for i in range(200)] for k in range(2)]
    threads = [scripted(10 + r, "thread", "thread", lanes) for r in range(3)]
    result = result_of(*serial, *threads, cores=1)
    parts = executor_parts(result, "thread", item_parts(result))
    assert (parts.gil_share, parts.gil_assumed) == (1.0, True)
    row = one(result.predict(cores=4, workers=[4]), "thread", 4, 4)
    assert row["speedup"] == pytest.approx(1.0, rel=0.05)
    assert "taken to hold the GIL" in row["bottleneck"]
    # Items that wait are not taken for a GIL, and processes have none.
    waiting = result_of(*serial_trials(40, 10 * MS, 0.1 * MS), cores=1)
    assert executor_parts(waiting, "thread", item_parts(waiting)).gil_share == 0.0
    assert executor_parts(result, "process", item_parts(result)).gil_share == 0.0


def test_the_parents_pickling_and_the_workers_share_the_cores():
    # 100 items of 2 ms CPU, the parent pickling 2 ms per item: on one core the two take
    # turns (0.4 s in all); on 4 cores the parent's 0.2 s is the longest part.
    serial = serial_trials(100, 2 * MS, 2 * MS)
    lanes = [lane_of(50, 2 * MS, 2 * MS, gap=2 * MS) for _ in range(2)]
    pool = [scripted(10 + r, "process", "process", lanes) for r in range(3)]
    result = result_of(*serial, *pool, chunksize=[1], cores=1,
                       transfer=TransferSample(bytes_per_item=1e5, seconds_per_item=2 * MS))
    found = {(p.executor, p.cores): p
             for p in predict(result, cores=[1, 4], workers=[2]).predictions}
    one_core, four = found["process", 1], found["process", 4]
    assert one_core.parts["cores_shared_s"] == pytest.approx(0.4, rel=0.05)
    assert "share 1 core" in one_core.bottleneck
    assert four.parts["cores_shared_s"] == pytest.approx(0.1, rel=0.05)
    assert four.bottleneck.startswith("the parent's pickling")
    assert four.wall_s < one_core.wall_s
