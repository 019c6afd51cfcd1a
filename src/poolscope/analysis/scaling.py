"""How a workload scales: with the worker count (Amdahl, Karp–Flatt) and with the item count.

The analysis behind ``poolscope sweep``. Pure functions over pandas frames; numpy only.

Notation: ``p`` workers, ``c`` cores, ``S`` the measured speedup over ``serial`` and
``P = min(p, c)`` the processors the workers can actually use at once (the design's
efficiency divides by the same ``P``).

- ideal speedup: ``P = min(p, c)``; more workers than cores cannot compute at once.
- efficiency: ``S / P`` (taken from the summary as it is).
- Karp–Flatt metric, the experimentally determined serial fraction:
  ``e = (1/S − 1/P) / (1 − 1/P)``, undefined (NaN) where ``P == 1``. For a workload that obeys
  Amdahl's law with serial fraction ``f`` it equals ``f`` at every ``P``; an ``e`` that grows
  with ``P`` points at overhead that grows with the workers (start-up, dispatch, contention)
  rather than at a fixed serial part.
- Amdahl's law: ``S(p) = 1 / (f + (1 − f) / P)``, whose limit with unbounded cores is ``1 / f``.
  ``fit_amdahl`` finds the ``f`` in ``[0, 1]`` that minimises ``Σ (S_i − S(p_i))²`` over the
  points with ``1 ≤ p ≤ c``: with more workers than cores, the workers share the cores and their
  extra cost is time-slicing, not a serial part, so those points would bias ``f``; they stay in
  the table but not in the fit. The goodness of fit is ``r² = 1 − SS_res / SS_tot`` over the
  same points.
- growth with the item count ``n``: ``wall = a + b·n``, fitted by ordinary least squares;
  ``a`` is the fixed cost (pool start-up and teardown, imports) and ``b`` the cost per item, so
  ``a / b`` items are needed before the fixed cost stops dominating.

JSON has no NaN or infinity: every undefined number becomes ``null``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._format import json_number

__all__ = [
    "TABLE_COLUMNS",
    "AmdahlFit",
    "GrowthFit",
    "USLFit",
    "amdahl_speedup",
    "fit_amdahl",
    "fit_amdahl_per_executor",
    "fit_usl",
    "fit_usl_per_executor",
    "item_count_growth",
    "karp_flatt",
    "scaling_json",
    "scaling_table",
    "usl_speedup",
]

TABLE_COLUMNS = [
    "executor", "workers", "chunksize", "wall_s", "speedup", "efficiency", "ideal_speedup",
    "karp_flatt", "wall_ci_lo", "wall_ci_hi",
]
_REQUIRED = ("executor", "workers", "wall_s", "speedup", "efficiency")
_JSON_KEYS = (
    "executor", "workers", "chunksize", "wall_s", "speedup", "efficiency", "ideal_speedup",
    "karp_flatt",
)
_GRID = 2_001  # coarse search points on f in [0, 1] before the golden-section refinement
_TOLERANCE = 1e-13  # width of the final golden-section bracket on f
_ROUNDING = 1e-24  # squared-residual differences below this (times the scale) are rounding


# --- the table ---------------------------------------------------------------------------------
def scaling_table(summary: pd.DataFrame, cores: int) -> pd.DataFrame:
    """One row per executor × workers × chunksize, with the ideal speedup and Karp–Flatt metric.

    ``summary`` needs the columns ``executor``, ``workers``, ``wall_s``, ``speedup`` and
    ``efficiency`` (as ``analysis.metrics.summarize`` gives them); ``chunksize`` (absent: ``None``)
    and ``wall_ci_lo``/``wall_ci_hi`` (absent: NaN) are optional. The result has the columns
    ``TABLE_COLUMNS``, ``chunksize`` as a nullable integer, sorted by executor in order of first
    appearance, then chunksize (``None`` first), then workers. Raises ``ValueError`` for a
    missing column, a non-positive ``cores`` or a repeated executor × workers × chunksize.
    """
    cores = _check_cores(cores)
    missing = [name for name in _REQUIRED if name not in summary.columns]
    if missing:
        raise ValueError(f"the summary lacks the column(s) {', '.join(missing)}")
    table = pd.DataFrame({
        "executor": summary["executor"].astype(str).to_numpy(),
        "workers": summary["workers"].to_numpy(np.int64),
        "chunksize": _chunksizes(summary),
        "wall_s": summary["wall_s"].to_numpy(np.float64),
        "speedup": summary["speedup"].to_numpy(np.float64),
        "efficiency": summary["efficiency"].to_numpy(np.float64),
    })
    for name in ("wall_ci_lo", "wall_ci_hi"):
        table[name] = (summary[name].to_numpy(np.float64) if name in summary.columns
                       else np.full(len(table), np.nan))
    if table.duplicated(["executor", "workers", "chunksize"]).any():
        raise ValueError("the summary repeats an executor × workers × chunksize: aggregate first")
    table["ideal_speedup"] = np.minimum(table["workers"], cores).astype(np.int64)
    table["karp_flatt"] = karp_flatt(table["speedup"].to_numpy(), table["workers"].to_numpy(),
                                     cores)
    order = {name: i for i, name in enumerate(pd.unique(table["executor"]))}
    keys = pd.DataFrame({
        "executor": table["executor"].map(order),
        "has_chunksize": table["chunksize"].notna(),
        "chunksize": table["chunksize"].fillna(0),
        "workers": table["workers"],
    })
    ranks = keys.sort_values(list(keys.columns), kind="stable").index
    return table.loc[ranks, TABLE_COLUMNS].reset_index(drop=True)


def karp_flatt(speedups: Sequence[float] | np.ndarray, workers: Sequence[int] | np.ndarray,
               cores: int) -> np.ndarray:
    """``e = (1/S − 1/P) / (1 − 1/P)`` with ``P = min(workers, cores)``; NaN where ``P <= 1``.

    Also NaN where the speedup is not a positive finite number.
    """
    cores = _check_cores(cores)
    s = np.asarray(speedups, dtype=np.float64)
    p = np.minimum(np.asarray(workers, dtype=np.float64), cores)
    good = (p > 1) & np.isfinite(s) & (s > 0)
    safe_s = np.where(good, s, 1.0)
    safe_p = np.where(good, p, 2.0)
    value = (1.0 / safe_s - 1.0 / safe_p) / (1.0 - 1.0 / safe_p)
    return np.where(good, value, np.nan)


def scaling_json(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The ``"scaling"`` list of the JSON result, one object per row of ``scaling_table``.

    Keys: ``executor``, ``workers``, ``chunksize`` (int or null), ``wall_s``, ``speedup``,
    ``efficiency``, ``ideal_speedup`` (int) and ``karp_flatt``, in that order (the last two only
    where the table has them); NaN and infinity become ``null``.
    """
    rows = []
    for row in table.to_dict("records"):
        chunksize = row.get("chunksize")
        out: dict[str, Any] = {
            "executor": str(row["executor"]),
            "workers": int(row["workers"]),
            "chunksize": None if _missing(chunksize) else int(chunksize),
            "wall_s": json_number(row["wall_s"]),
            "speedup": json_number(row["speedup"]),
            "efficiency": json_number(row["efficiency"]),
        }
        if "ideal_speedup" in row:
            ideal = row["ideal_speedup"]
            out["ideal_speedup"] = None if _missing(ideal) else int(ideal)
        if "karp_flatt" in row:
            out["karp_flatt"] = json_number(row["karp_flatt"])
        rows.append({key: out[key] for key in _JSON_KEYS if key in out})
    return rows


# --- Amdahl ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AmdahlFit:
    """Amdahl's law fitted to measured speedups.

    ``serial_fraction`` is ``f`` in ``[0, 1]`` (NaN when fewer than two distinct worker counts
    up to the core count were measured), ``max_speedup`` is ``1 / f`` (infinite when ``f == 0``),
    ``r_squared`` the coefficient of determination of the fitted speedups (NaN when the measured
    speedups do not vary) and ``points`` the number of measurements the fit used.
    """

    serial_fraction: float
    max_speedup: float
    r_squared: float
    points: int

    @property
    def ok(self) -> bool:
        """Whether a serial fraction could be fitted."""
        return math.isfinite(self.serial_fraction)

    @property
    def explains(self) -> bool:
        """Whether the fit is worth showing: fitted, and closer to the measured speedups than
        their mean is (r² not negative). Amdahl's law says one worker is serial's speed, so
        overhead that makes one worker slower can leave it worse than a flat line."""
        return self.ok and not (math.isfinite(self.r_squared) and self.r_squared < 0)

    def speedup(self, workers: Sequence[float] | np.ndarray, cores: int) -> np.ndarray:
        """The fitted curve ``1 / (f + (1 − f) / min(p, cores))`` at ``workers``."""
        return amdahl_speedup(self.serial_fraction, workers, cores)

    def to_json(self) -> dict[str, Any]:
        return {
            "serial_fraction": json_number(self.serial_fraction),
            "max_speedup": json_number(self.max_speedup),
            "r_squared": json_number(self.r_squared),
            "points": int(self.points),
        }


def amdahl_speedup(serial_fraction: float, workers: Sequence[float] | np.ndarray,
                   cores: int) -> np.ndarray:
    """Amdahl's ``S(p) = 1 / (f + (1 − f) / min(p, cores))``, element-wise over ``workers``."""
    cores = _check_cores(cores)
    p = np.minimum(np.asarray(workers, dtype=np.float64), cores)
    f = float(serial_fraction)
    return 1.0 / (f + (1.0 - f) / p)


def fit_amdahl(workers: Sequence[int], speedups: Sequence[float], cores: int) -> AmdahlFit:
    """Fit the serial fraction ``f`` of Amdahl's law to measured speedups by least squares.

    ``cores`` caps the processors in the model (``P = min(p, cores)``) and selects the points:
    only measurements with ``1 <= workers <= cores`` and a positive finite speedup are fitted
    (more workers than cores only time-slice the same cores). The fit needs at least two
    distinct such worker counts; otherwise ``serial_fraction``, ``max_speedup`` and ``r_squared``
    are NaN. ``f`` is found by minimising the squared speedup residuals over ``[0, 1]``: a grid,
    then a golden-section search, and the bounds are kept when they fit as well (so perfectly
    parallel data give exactly ``f == 0``).
    """
    cores = _check_cores(cores)
    p = np.asarray(workers, dtype=np.float64)
    s = np.asarray(speedups, dtype=np.float64)
    if p.shape != s.shape:
        raise ValueError(f"{len(p)} worker counts but {len(s)} speedups")
    use = np.isfinite(p) & np.isfinite(s) & (s > 0) & (p >= 1) & (p <= cores)
    p, s = p[use], s[use]
    if len(np.unique(p)) < 2:
        return AmdahlFit(math.nan, math.nan, math.nan, len(p))

    def cost(f: float) -> float:
        return float(np.sum((s - 1.0 / (f + (1.0 - f) / p)) ** 2))

    grid = np.linspace(0.0, 1.0, _GRID)[:, None]
    grid_costs = np.sum((s - 1.0 / (grid + (1.0 - grid) / p)) ** 2, axis=1)
    f = _minimise_on_unit_interval(cost, grid_costs)
    residual = cost(f)
    total = float(np.sum((s - s.mean()) ** 2))
    r_squared = 1.0 - residual / total if total > 0 else math.nan
    max_speedup = math.inf if f == 0 else 1.0 / f
    return AmdahlFit(float(f), max_speedup, r_squared, len(p))


def fit_amdahl_per_executor(table: pd.DataFrame, cores: int | None = None) -> dict[str, AmdahlFit]:
    """``fit_amdahl`` for each executor of a ``scaling_table``, in the table's order.

    Where an executor ran several chunksizes, each worker count contributes its best (highest)
    speedup. ``cores`` defaults to the table's own: the largest ``ideal_speedup`` seen where
    ``ideal_speedup < workers`` (some worker count exceeded the cores), else the largest worker
    count (no point exceeded the cores, so every point is fitted either way). An executor with a
    single worker count, such as ``serial``, gets a NaN fit.
    """
    if cores is None:
        cores = _table_cores(table)
    fits: dict[str, AmdahlFit] = {}
    for executor, group in table.groupby("executor", sort=False):
        best = group.groupby("workers", sort=True)["speedup"].max()
        fits[str(executor)] = fit_amdahl(best.index.to_list(), best.to_list(), cores)
    return fits


# --- the Universal Scalability Law ----------------------------------------------------------------
@dataclass(frozen=True)
class USLFit:
    """Gunther's Universal Scalability Law fitted to measured speedups:
    ``S(p) = p / (1 + σ (p − 1) + κ p (p − 1))``.

    ``sigma`` (σ) is contention — the share that waits in turn, as Amdahl's serial part — and
    ``kappa`` (κ) coherency — a cost that grows with every pair of workers, which makes the curve
    fall after its peak at ``peak_workers = √((1 − σ) / κ)`` (infinite when κ is 0). NaN
    coefficients when fewer than three distinct worker counts were measured.
    """

    sigma: float
    kappa: float
    r_squared: float
    points: int

    @property
    def ok(self) -> bool:
        return math.isfinite(self.sigma) and math.isfinite(self.kappa)

    @property
    def peak_workers(self) -> float:
        if not self.ok:
            return math.nan
        return math.inf if self.kappa == 0 else math.sqrt(max(0.0, 1 - self.sigma) / self.kappa)

    def speedup(self, workers: Sequence[float] | np.ndarray) -> np.ndarray:
        return usl_speedup(self.sigma, self.kappa, workers)

    def to_json(self) -> dict[str, Any]:
        return {"sigma": json_number(self.sigma), "kappa": json_number(self.kappa),
                "peak_workers": json_number(self.peak_workers),
                "r_squared": json_number(self.r_squared), "points": int(self.points)}


def usl_speedup(sigma: float, kappa: float, workers: Sequence[float] | np.ndarray) -> np.ndarray:
    p = np.asarray(workers, dtype=np.float64)
    return p / (1.0 + sigma * (p - 1.0) + kappa * p * (p - 1.0))


_USL_SIGMAS = np.linspace(0.0, 1.0, 401)
_USL_KAPPAS = np.concatenate(([0.0], np.logspace(-7, 0, 281)))


def fit_usl(workers: Sequence[int], speedups: Sequence[float]) -> USLFit:
    """Least squares over σ in [0, 1] and κ in [0, 1], on a grid fine enough for three
    significant digits of the curve, then refined around its best cell. Every worker count
    measured is used: the law describes the loss past the cores as contention and coherency."""
    p = np.asarray(workers, dtype=np.float64)
    s = np.asarray(speedups, dtype=np.float64)
    use = np.isfinite(p) & np.isfinite(s) & (s > 0) & (p >= 1)
    p, s = p[use], s[use]
    if len(np.unique(p)) < 3:
        return USLFit(math.nan, math.nan, math.nan, len(p))
    sigmas, kappas = _USL_SIGMAS, _USL_KAPPAS
    for _ in range(3):
        sg, kg = np.meshgrid(sigmas, kappas, indexing="ij")
        model = p / (1.0 + sg[..., None] * (p - 1.0) + kg[..., None] * p * (p - 1.0))
        cost = np.sum((model - s) ** 2, axis=-1)
        i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
        sigma, kappa = float(sigmas[i]), float(kappas[j])
        sigmas = np.clip(np.linspace(sigmas[max(i - 1, 0)], sigmas[min(i + 1, len(sigmas) - 1)],
                                     41), 0.0, 1.0)
        kappas = np.clip(np.linspace(kappas[max(j - 1, 0)], kappas[min(j + 1, len(kappas) - 1)],
                                     41), 0.0, 1.0)
    residual = float(np.sum((usl_speedup(sigma, kappa, p) - s) ** 2))
    total = float(np.sum((s - s.mean()) ** 2))
    return USLFit(sigma, kappa, 1.0 - residual / total if total > 0 else math.nan, len(p))


def fit_usl_per_executor(table: pd.DataFrame) -> dict[str, USLFit]:
    """``fit_usl`` per executor of a ``scaling_table`` (each worker count's best speedup)."""
    fits: dict[str, USLFit] = {}
    for executor, group in table.groupby("executor", sort=False):
        best = group.groupby("workers", sort=True)["speedup"].max()
        fits[str(executor)] = fit_usl(best.index.to_list(), best.to_list())
    return fits


# --- item count --------------------------------------------------------------------------------
@dataclass(frozen=True)
class GrowthFit:
    """``wall = fixed_s + per_item_s · n`` fitted by least squares over ``points`` runs.

    NaN coefficients when fewer than two distinct item counts were measured; NaN ``r_squared``
    when the wall times do not vary.
    """

    fixed_s: float
    per_item_s: float
    r_squared: float
    points: int

    def wall(self, sizes: Sequence[float] | np.ndarray) -> np.ndarray:
        """The fitted wall time at each item count."""
        return self.fixed_s + self.per_item_s * np.asarray(sizes, dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        return {
            "fixed_s": json_number(self.fixed_s),
            "per_item_s": json_number(self.per_item_s),
            "r_squared": json_number(self.r_squared),
        }


def item_count_growth(sizes: Sequence[int], walls: Sequence[float]) -> GrowthFit:
    """Fit ``wall = a + b·n``: ``a`` the fixed cost in seconds, ``b`` the cost per item.

    Pairs with a non-finite wall time or a negative item count are left out.
    """
    n = np.asarray(sizes, dtype=np.float64)
    w = np.asarray(walls, dtype=np.float64)
    if n.shape != w.shape:
        raise ValueError(f"{len(n)} item counts but {len(w)} wall times")
    use = np.isfinite(n) & np.isfinite(w) & (n >= 0)
    n, w = n[use], w[use]
    if len(np.unique(n)) < 2:
        return GrowthFit(math.nan, math.nan, math.nan, len(n))
    n_mean, w_mean = n.mean(), w.mean()
    dn = n - n_mean
    per_item = float(np.sum(dn * (w - w_mean)) / np.sum(dn * dn))
    fixed = float(w_mean - per_item * n_mean)
    residual = float(np.sum((w - (fixed + per_item * n)) ** 2))
    total = float(np.sum((w - w_mean) ** 2))
    r_squared = 1.0 - residual / total if total > 0 else math.nan
    return GrowthFit(fixed, per_item, r_squared, len(n))


# --- helpers -----------------------------------------------------------------------------------
def _minimise_on_unit_interval(cost: Any, grid_costs: np.ndarray) -> float:
    """The ``x`` in ``[0, 1]`` with the least ``cost(x)``, given ``cost`` on ``_GRID`` points.

    Golden-section search between the best grid point's neighbours; a bound of the interval is
    preferred when it fits as well up to rounding, so that exact data reach ``0`` or ``1``.
    """
    grid = np.linspace(0.0, 1.0, _GRID)
    best = int(np.argmin(grid_costs))
    lo, hi = float(grid[max(best - 1, 0)]), float(grid[min(best + 1, _GRID - 1)])
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    cost_a, cost_b = cost(a), cost(b)
    while hi - lo > _TOLERANCE:
        if cost_a <= cost_b:
            hi, b, cost_b = b, a, cost_a
            a = hi - ratio * (hi - lo)
            cost_a = cost(a)
        else:
            lo, a, cost_a = a, b, cost_b
            b = lo + ratio * (hi - lo)
            cost_b = cost(b)
    inner = (lo + hi) / 2.0
    inner_cost = cost(inner)
    slack = _ROUNDING * max(1.0, float(np.min(grid_costs)))
    for bound, bound_cost in ((0.0, float(grid_costs[0])), (1.0, float(grid_costs[-1]))):
        if bound_cost <= inner_cost + slack:
            return bound
    return inner


def _check_cores(cores: int) -> int:
    value = int(cores)
    if value < 1:
        raise ValueError(f"cores must be at least 1, not {cores!r}")
    return value


def _table_cores(table: pd.DataFrame) -> int:
    if not len(table):
        return 1
    capped = table.loc[table["ideal_speedup"] < table["workers"], "ideal_speedup"]
    return int(capped.max()) if len(capped) else max(1, int(table["workers"].max()))


def _chunksizes(summary: pd.DataFrame) -> pd.Series:
    if "chunksize" not in summary.columns:
        return pd.Series([pd.NA] * len(summary), dtype="Int64")
    values = [pd.NA if _missing(v) else int(v) for v in summary["chunksize"]]
    return pd.Series(values, dtype="Int64")


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
