"""The sweep's scaling analysis, checked exactly on synthetic data: Amdahl, Karp–Flatt, growth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from poolscope import UsageError
from poolscope.analysis.scaling import (
    TABLE_COLUMNS,
    AmdahlFit,
    fit_amdahl,
    fit_amdahl_per_executor,
    fit_usl,
    item_count_growth,
    karp_flatt,
    scaling_json,
    scaling_table,
    usl_speedup,
)
from poolscope.present.scaling_plot import plot_scaling

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SERIAL_WALL = 8.0
WORKERS = [1, 2, 4, 8]


def amdahl(f: float, p: float, cores: int = 8) -> float:
    return 1.0 / (f + (1.0 - f) / min(p, cores))


def summary(cores: int = 8, chunksize: bool = False) -> pd.DataFrame:
    """serial, ``process`` obeying Amdahl with f = 0.1 and a perfectly parallel ``ideal``."""
    rows = [{"executor": "serial", "workers": 1, "wall_s": SERIAL_WALL, "speedup": 1.0,
             "efficiency": 1.0}]
    # Listed in a scrambled worker order: the table sorts them.
    for executor, f in (("process", 0.1), ("ideal", 0.0)):
        for p in (8, 2, 1, 4):
            s = amdahl(f, p, cores)
            rows.append({"executor": executor, "workers": p, "wall_s": SERIAL_WALL / s,
                         "speedup": s, "efficiency": s / min(p, cores)})
    frame = pd.DataFrame(rows)
    if chunksize:
        frame["chunksize"] = [None, 4, 4, 4, 4, 1, 1, 1, 1]
    return frame


# --- Amdahl ------------------------------------------------------------------------------------
def test_amdahl_fit_recovers_the_serial_fraction():
    speedups = [amdahl(0.1, p) for p in WORKERS]
    fit = fit_amdahl(WORKERS, speedups, cores=8)
    assert fit.serial_fraction == pytest.approx(0.1, abs=1e-6)
    assert fit.max_speedup == pytest.approx(10.0, rel=1e-5)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-9)
    assert fit.points == 4
    out = fit.to_json()
    assert set(out) == {"serial_fraction", "max_speedup", "r_squared", "points"}
    assert out["serial_fraction"] == pytest.approx(0.1, abs=1e-6)
    assert out["points"] == 4


def test_perfectly_parallel_has_no_serial_fraction_and_no_limit():
    fit = fit_amdahl(WORKERS, [float(p) for p in WORKERS], cores=8)
    assert fit.serial_fraction == pytest.approx(0.0, abs=1e-12)
    assert math.isinf(fit.max_speedup)
    assert fit.r_squared == pytest.approx(1.0)
    out = fit.to_json()
    assert out["max_speedup"] is None
    json.dumps(out, allow_nan=False)


def test_no_speedup_at_all_is_all_serial():
    fit = fit_amdahl(WORKERS, [1.0] * 4, cores=8)
    assert fit.serial_fraction == pytest.approx(1.0)
    assert fit.max_speedup == pytest.approx(1.0)
    assert math.isnan(fit.r_squared)  # the speedups do not vary: r² is undefined
    assert fit.to_json()["r_squared"] is None


def test_only_workers_up_to_the_cores_are_fitted():
    # 2 cores: the 4 and 8 worker points time-slice the same cores and are left out.
    speedups = [1.0, amdahl(0.2, 2, cores=2), 1.5, 1.2]
    fit = fit_amdahl(WORKERS, speedups, cores=2)
    assert fit.points == 2
    assert fit.serial_fraction == pytest.approx(0.2, abs=1e-6)


@pytest.mark.parametrize(("workers", "speedups"), [([], []), ([4], [3.0]), ([2, 2], [1.8, 1.9]),
                                                   ([1, 16], [1.0, 7.0])])
def test_too_few_worker_counts_give_a_null_fit(workers, speedups):
    fit = fit_amdahl(workers, speedups, cores=8)
    assert math.isnan(fit.serial_fraction)
    assert not fit.ok
    assert fit.to_json() == {"serial_fraction": None, "max_speedup": None, "r_squared": None,
                             "points": len([p for p in workers if p <= 8])}


def test_fit_rejects_mismatched_inputs_and_no_cores():
    with pytest.raises(ValueError, match="speedups"):
        fit_amdahl([1, 2], [1.0], cores=2)
    with pytest.raises(ValueError, match="cores"):
        fit_amdahl([1, 2], [1.0, 2.0], cores=0)


def test_fit_per_executor():
    table = scaling_table(summary(), cores=8)
    fits = fit_amdahl_per_executor(table)
    assert list(fits) == ["serial", "process", "ideal"]
    assert all(isinstance(f, AmdahlFit) for f in fits.values())
    assert not fits["serial"].ok  # one worker count
    assert fits["process"].serial_fraction == pytest.approx(0.1, abs=1e-6)
    assert fits["ideal"].serial_fraction == pytest.approx(0.0, abs=1e-12)


def test_fit_per_executor_takes_the_best_chunksize_per_worker_count():
    frame = summary(chunksize=True)
    worse = frame[frame["executor"] == "process"].copy()
    worse["chunksize"] = 1
    worse["speedup"] = worse["speedup"] * 0.5
    table = scaling_table(pd.concat([frame, worse], ignore_index=True), cores=8)
    fit = fit_amdahl_per_executor(table, cores=8)["process"]
    assert fit.serial_fraction == pytest.approx(0.1, abs=1e-6)


# --- Karp–Flatt and the table ------------------------------------------------------------------
def test_karp_flatt_of_amdahl_data_is_the_serial_fraction():
    speedups = [amdahl(0.1, p) for p in WORKERS]
    e = karp_flatt(speedups, WORKERS, cores=8)
    assert math.isnan(e[0])
    assert e[1:] == pytest.approx([0.1, 0.1, 0.1], abs=1e-12)


def test_table_rows_columns_and_order():
    table = scaling_table(summary(), cores=8)
    assert list(table.columns) == TABLE_COLUMNS
    assert list(table["executor"]) == ["serial"] + ["process"] * 4 + ["ideal"] * 4
    assert list(table["workers"]) == [1, 1, 2, 4, 8, 1, 2, 4, 8]
    assert table["chunksize"].isna().all()
    assert list(table["ideal_speedup"]) == [1, 1, 2, 4, 8, 1, 2, 4, 8]
    process = table[table["executor"] == "process"]
    assert math.isnan(process["karp_flatt"].iloc[0])
    assert process["karp_flatt"].iloc[1:].to_numpy() == pytest.approx([0.1] * 3, abs=1e-12)
    ideal = table[table["executor"] == "ideal"]
    assert ideal["karp_flatt"].iloc[1:].to_numpy() == pytest.approx([0.0] * 3, abs=1e-12)
    assert table["wall_ci_lo"].isna().all()


def test_ideal_speedup_is_capped_by_the_cores():
    table = scaling_table(summary(cores=2), cores=2)
    assert list(table.loc[table["executor"] == "process", "ideal_speedup"]) == [1, 2, 2, 2]
    # Karp–Flatt counts the processors the workers can use: min(workers, cores).
    e = table.loc[table["executor"] == "process", "karp_flatt"].to_numpy()
    assert e[1:] == pytest.approx([0.1] * 3, abs=1e-12)


def test_table_sorts_by_chunksize_within_an_executor():
    table = scaling_table(summary(chunksize=True), cores=8)
    assert str(table["chunksize"].dtype) == "Int64"
    assert list(table["executor"])[:1] == ["serial"]
    assert pd.isna(table["chunksize"].iloc[0])
    assert list(table["chunksize"].iloc[1:]) == [4] * 4 + [1] * 4


def test_table_rejects_missing_columns_and_repeats():
    with pytest.raises(ValueError, match="speedup"):
        scaling_table(summary().drop(columns=["speedup"]), cores=8)
    doubled = pd.concat([summary(), summary()], ignore_index=True)
    with pytest.raises(ValueError, match="repeats"):
        scaling_table(doubled, cores=8)


def test_empty_summary_gives_an_empty_table():
    table = scaling_table(summary().iloc[:0], cores=4)
    assert list(table.columns) == TABLE_COLUMNS
    assert len(table) == 0
    assert scaling_json(table) == []


def test_scaling_json_keys_and_nulls():
    frame = summary(chunksize=True)
    failed = (frame["executor"] == "ideal") & (frame["workers"] == 8)
    frame.loc[failed, "speedup"] = np.nan  # its trials all failed
    rows = scaling_json(scaling_table(frame, cores=8))
    json.dumps(rows, allow_nan=False)
    assert len(rows) == 9
    for row in rows:
        assert list(row) == ["executor", "workers", "chunksize", "wall_s", "speedup",
                             "efficiency", "ideal_speedup", "karp_flatt"]
        assert isinstance(row["workers"], int)
        assert row["chunksize"] is None or isinstance(row["chunksize"], int)
    assert rows[0] == {"executor": "serial", "workers": 1, "chunksize": None, "wall_s": 8.0,
                       "speedup": 1.0, "efficiency": 1.0, "ideal_speedup": 1,
                       "karp_flatt": None}
    assert rows[1]["chunksize"] == 4
    assert rows[-1]["speedup"] is None
    assert rows[-1]["karp_flatt"] is None


def test_scaling_json_of_the_required_columns_only():
    table = scaling_table(summary(), cores=8)[
        ["executor", "workers", "chunksize", "wall_s", "speedup", "efficiency"]]
    assert set(scaling_json(table)[0]) == {"executor", "workers", "chunksize", "wall_s",
                                           "speedup", "efficiency"}


# --- item count --------------------------------------------------------------------------------
def test_growth_fit_recovers_fixed_and_per_item_cost():
    sizes = [10, 100, 1_000, 10_000]
    walls = [0.5 + 0.01 * n for n in sizes]
    fit = item_count_growth(sizes, walls)
    assert fit.fixed_s == pytest.approx(0.5, rel=1e-9)
    assert fit.per_item_s == pytest.approx(0.01, rel=1e-9)
    assert fit.r_squared == pytest.approx(1.0)
    assert fit.points == 4
    out = fit.to_json()
    assert set(out) == {"fixed_s", "per_item_s", "r_squared"}
    assert out["fixed_s"] == pytest.approx(0.5, rel=1e-9)
    assert fit.wall([200]) == pytest.approx([2.5])


def test_growth_fit_needs_two_item_counts():
    fit = item_count_growth([100, 100], [1.0, 1.1])
    assert fit.to_json() == {"fixed_s": None, "per_item_s": None, "r_squared": None}
    with pytest.raises(ValueError, match="wall times"):
        item_count_growth([1, 2], [1.0])


# --- the picture -------------------------------------------------------------------------------
def test_plot_writes_a_png(tmp_path: Path):
    frame = summary(cores=4)
    frame["wall_ci_lo"] = frame["wall_s"] * 0.97
    frame["wall_ci_hi"] = frame["wall_s"] * 1.03
    table = scaling_table(frame, cores=4)
    fits = fit_amdahl_per_executor(table, cores=4)
    path = tmp_path / "scaling.png"
    fig = plot_scaling(table, fits, cores=4, path=path)
    assert isinstance(fig, Figure)
    assert fig.canvas.manager is None  # built without pyplot
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert path.stat().st_size > 20_000
    speedup_ax, efficiency_ax = fig.axes[:2]
    assert speedup_ax.get_xscale() == "log"
    assert list(speedup_ax.get_xticks()) == [1, 2, 4, 8]
    assert "Speedup" in speedup_ax.get_ylabel()
    assert "Workers" in efficiency_ax.get_xlabel()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0].startswith("ideal")
    assert any(label.startswith("process — serial fraction 0.100") for label in labels)


def test_plot_saves_svg_and_handles_an_empty_table(tmp_path: Path):
    table = scaling_table(summary().iloc[:0], cores=2)
    path = tmp_path / "empty.svg"
    plot_scaling(table, {}, cores=2, path=path)
    assert "<svg" in path.read_text(encoding="utf-8")[:2000]


def test_plot_rejects_a_bad_path(tmp_path: Path):
    table = scaling_table(summary(), cores=8)
    with pytest.raises(UsageError, match=r"\.png"):
        plot_scaling(table, {}, cores=8, path=tmp_path / "scaling.gif")
    with pytest.raises(UsageError, match="does not exist"):
        plot_scaling(table, {}, cores=8, path=tmp_path / "missing" / "scaling.png")


@pytest.mark.parametrize(("sigma", "kappa"), [(0.05, 0.002), (0.2, 0.0), (0.01, 0.0005)])
def test_the_universal_scalability_law_recovers_contention_and_coherency(sigma, kappa):
    workers = [1, 2, 4, 8, 16, 32, 64]
    fit = fit_usl(workers, usl_speedup(sigma, kappa, workers).tolist())
    assert fit.sigma == pytest.approx(sigma, rel=0.05, abs=1e-4)
    assert fit.kappa == pytest.approx(kappa, rel=0.05, abs=1e-6)
    if kappa:
        assert fit.peak_workers == pytest.approx(math.sqrt((1 - sigma) / kappa), rel=0.05)
    else:
        assert math.isinf(fit.peak_workers)
    assert fit.r_squared > 0.999


def test_the_universal_scalability_law_needs_three_worker_counts():
    assert not fit_usl([1, 2, 2], [1.0, 1.9, 1.8]).ok
