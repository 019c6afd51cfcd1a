"""The cost model: readings in, parts out, and the parts add up to the trial's wall time."""

from __future__ import annotations

import pandas as pd
import pytest

from poolscope.analysis.costs import COST_PARTS, cost_model, trial_costs

FAMILIES = {"serial": "serial", "thread": "thread", "process": "process"}


def items(rows: list[tuple[int, float, float, float]], trial: int = 0,
          executor: str = "serial", workers: int = 1) -> pd.DataFrame:
    """Item rows from (lane, start_s, end_s, cpu_s)."""
    frame = pd.DataFrame(rows, columns=["lane", "start_s", "end_s", "cpu_s"])
    frame["wall_s"] = frame["end_s"] - frame["start_s"]
    frame["trial"], frame["executor"], frame["workers"] = trial, executor, workers
    frame["status"] = "ok"
    return frame


def trial_row(trial: int, executor: str, workers: int, wall: float, startup: float,
              teardown: float, chunksize: int = 1) -> dict:
    return {"trial": trial, "executor": executor, "workers": workers, "chunksize": chunksize,
            "wall_s": wall, "startup_s": startup, "teardown_s": teardown, "status": "ok"}


def total(parts: dict) -> float:
    return sum(parts[key] for key in COST_PARTS)


def test_serial_parts_add_up_to_the_wall():
    # Four 100 ms items, 1 ms apart, after 10 ms of start-up; the last result takes 2 ms back
    # and closing takes 5 ms: wall = 10 + 4×100 + 3×1 + 2 + 5 = 420 ms.
    frame = items([(0, 0.010 + k * 0.101, 0.110 + k * 0.101, 0.1) for k in range(4)])
    parts = trial_costs(0.420, 0.010, 0.005, 1, frame)
    assert total(parts) == pytest.approx(0.420)
    assert parts["compute_s"] == pytest.approx(0.400)
    assert parts["waiting_s"] == pytest.approx(0.0)
    assert parts["dispatch_s"] == pytest.approx(0.003 + 0.002)
    assert parts["idle_s"] == pytest.approx(0.0)
    assert parts["unexplained_s"] == pytest.approx(0.0, abs=1e-12)


def test_threads_under_the_gil_compute_as_serial_and_wait_the_rest():
    # Two threads, two items each: every item took 200 ms of wall for 100 ms of CPU (the GIL
    # let one run at a time). Compute is 4 × 100 ms / 2 lanes; waiting the same.
    frame = items([(0, 0.0, 0.2, 0.1), (1, 0.0, 0.2, 0.1), (0, 0.2, 0.4, 0.1),
                   (1, 0.2, 0.4, 0.1)], executor="thread", workers=2)
    parts = trial_costs(0.41, 0.0, 0.01, 2, frame)
    assert total(parts) == pytest.approx(0.41)
    assert parts["compute_s"] == pytest.approx(0.2)
    assert parts["waiting_s"] == pytest.approx(0.2)
    assert parts["unexplained_s"] == pytest.approx(0.0, abs=1e-12)


def test_processes_split_the_handoff_into_transfer_and_dispatch():
    # Two processes; 30 ms of start-up; 10 ms between a worker's items; one worker finishes
    # 50 ms before the other (idle); 4 items of 100 ms CPU.
    frame = items([(0, 0.03, 0.13, 0.1), (0, 0.14, 0.24, 0.1),
                   (1, 0.03, 0.13, 0.1), (1, 0.14, 0.24, 0.1), (1, 0.25, 0.29, 0.04)],
                  executor="process", workers=2)
    wall = 0.03 + 0.26 + 0.001 + 0.02  # start-up, span, last result back, teardown
    parts = trial_costs(wall, 0.03, 0.02, 2, frame, transfer_s_per_item=0.002)
    assert total(parts) == pytest.approx(wall)
    assert parts["compute_s"] == pytest.approx(0.44 / 2)
    # gaps: 10 ms on lane 0, 20 ms on lane 1 → 15 ms of wall, plus 1 ms back.
    assert parts["transfer_s"] + parts["dispatch_s"] == pytest.approx(0.016)
    assert parts["transfer_s"] == pytest.approx(5 * 0.002 / 2)
    assert parts["idle_s"] == pytest.approx(0.05 / 2)  # lane 0 idle for the last 50 ms
    assert parts["unexplained_s"] == pytest.approx(0.0, abs=1e-12)


def test_transfer_never_exceeds_the_measured_handoff():
    frame = items([(0, 0.0, 0.1, 0.1), (0, 0.101, 0.201, 0.1)], executor="process")
    parts = trial_costs(0.201, 0.0, 0.0, 1, frame, transfer_s_per_item=1.0)
    assert parts["transfer_s"] == pytest.approx(0.001)
    assert parts["dispatch_s"] == pytest.approx(0.0)
    assert total(parts) == pytest.approx(0.201)


def test_native_threads_cpu_beyond_wall_is_kept_out_of_the_sum():
    # numpy with BLAS threads: 40 ms of CPU in 20 ms of wall per item.
    frame = items([(0, 0.0, 0.02, 0.04), (0, 0.02, 0.04, 0.04)])
    parts = trial_costs(0.04, 0.0, 0.0, 1, frame)
    assert parts["compute_s"] == pytest.approx(0.04)  # never more than the wall
    assert parts["waiting_s"] == pytest.approx(0.0)  # never negative
    assert parts["cpu_beyond_wall_s"] == pytest.approx(0.04)
    assert total(parts) == pytest.approx(0.04)


def test_more_overlap_than_lanes_shows_as_negative_unexplained():
    # Three items at once on "2 workers": the readings contradict the lane count; the model
    # does not hide it.
    frame = items([(0, 0.0, 0.1, 0.1), (1, 0.0, 0.1, 0.1), (2, 0.0, 0.1, 0.1)], workers=2)
    parts = trial_costs(0.1, 0.0, 0.0, 2, frame)
    assert parts["unexplained_s"] == pytest.approx(-0.05)
    assert total(parts) == pytest.approx(0.1)


def test_cost_model_uses_each_configurations_own_items_and_median_trial():
    serial = items([(0, k * 0.1, (k + 1) * 0.1, 0.1) for k in range(4)], trial=0)
    threads = [items([(lane, k * 0.2, (k + 1) * 0.2, 0.1) for lane in (0, 1) for k in (0, 1)],
                     trial=t, executor="thread", workers=2) for t in (1, 2, 3)]
    trials = pd.DataFrame([trial_row(0, "serial", 1, 0.4, 0.0, 0.0),
                           trial_row(1, "thread", 2, 0.5, 0.0, 0.1),
                           trial_row(2, "thread", 2, 0.4, 0.0, 0.0),
                           trial_row(3, "thread", 2, 0.9, 0.0, 0.5)])
    table = cost_model(trials, pd.concat([serial, *threads], ignore_index=True), FAMILIES,
                       None, None).set_index("executor")
    thread = table.loc["thread"]
    assert thread["trial"] == 1  # the median of 0.4, 0.5, 0.9
    assert thread["wall_s"] == pytest.approx(0.5)
    assert sum(thread[key] for key in COST_PARTS) == pytest.approx(0.5)
    assert thread["compute_s"] == pytest.approx(0.2)  # its own items' CPU, 4 × 0.1 / 2
    assert thread["waiting_s"] == pytest.approx(0.2)
    assert thread["compute_wall_s_per_item"] == pytest.approx(0.2)  # not serial's 0.1
    assert thread["compute_vs_serial"] == pytest.approx(1.0)
    assert table.loc["serial", "compute_wall_s_per_item"] == pytest.approx(0.1)
    assert thread["transfer_s"] == 0.0
    assert table.loc["serial", "cpu_beyond_wall_s"] == pytest.approx(0.0)


def test_cost_model_of_a_real_run_adds_up():
    from poolscope.api import run_workload
    from poolscope.workloads import resolve_workload

    result = run_workload(resolve_workload("cpu", 6, size=50_000),
                          executors="serial,thread,process", workers=2, repeat=2)
    costs = result.costs
    assert set(costs["executor"]) == {"serial", "thread", "process"}
    for row in costs.to_dict(orient="records"):
        assert sum(row[key] for key in COST_PARTS) == pytest.approx(row["wall_s"], rel=1e-9)
        # Readings from one clock: what is left is noise, far under the wall time.
        assert abs(row["unexplained_s"]) < 0.05 * row["wall_s"], row
        assert row["compute_s"] > 0
    json_rows = result.to_json()["costs"]
    assert {"compute_s", "waiting_s", "unexplained_s"} <= set(json_rows[0])
