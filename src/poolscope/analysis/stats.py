"""Statistics over trial samples: medians with bootstrap intervals, ratios, outliers.

Intervals are percentile bootstraps of the median (2,000 resamples, fixed seed so a result's
numbers are reproducible). A ratio of two executors' medians gets its interval by resampling both
samples independently; a difference is called real only when that interval excludes 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Comparison", "compare_samples", "median_ci", "modified_z", "ratio_ci"]

RESAMPLES = 2000
OUTLIER_Z = 3.5  # Iglewicz and Hoaglin's cut-off for the modified Z-score


def _medians(data: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    draws = rng.choice(data, size=(resamples, data.size), replace=True)
    return np.median(draws, axis=1)


def median_ci(samples: Sequence[float], confidence: float = 0.95, resamples: int = RESAMPLES,
              seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the median; None with fewer than two samples."""
    data = np.asarray(samples, dtype=float)
    if data.size < 2:
        return None
    medians = _medians(data, np.random.default_rng(seed), resamples)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(medians, [tail, 100 - tail])
    return float(lo), float(hi)


def ratio_ci(numerator: Sequence[float], denominator: Sequence[float],
             confidence: float = 0.95, resamples: int = RESAMPLES,
             seed: int = 0) -> tuple[float, float] | None:
    """Interval of median(numerator) / median(denominator); None unless both have 2+ samples."""
    a = np.asarray(numerator, dtype=float)
    b = np.asarray(denominator, dtype=float)
    if a.size < 2 or b.size < 2:
        return None
    rng = np.random.default_rng(seed)
    ratios = _medians(a, rng, resamples) / _medians(b, rng, resamples)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return float(lo), float(hi)


def modified_z(samples: Sequence[float]) -> np.ndarray:
    """0.6745 (x − median) / MAD for each sample; zeros when the MAD is zero."""
    data = np.asarray(samples, dtype=float)
    if data.size == 0:
        return data
    median = np.median(data)
    mad = np.median(np.abs(data - median))
    if mad == 0:
        return np.zeros_like(data)
    return 0.6745 * (data - median) / mad


@dataclass(frozen=True)
class Comparison:
    """How many times faster ``a`` ran than ``b``: median(b) / median(a), with its interval."""

    a: str
    b: str
    ratio: float
    ci: tuple[float, float] | None

    @property
    def verdict(self) -> str:
        """'faster', 'slower', 'no measurable difference', or 'unknown' (too few trials)."""
        if self.ci is None:
            return "unknown"
        if self.ci[0] > 1:
            return "faster"
        if self.ci[1] < 1:
            return "slower"
        return "no measurable difference"

    def sentence(self) -> str:
        if self.verdict == "unknown":
            return (f"{self.a} ran {self._times()} {self.b} in a single trial each: "
                    "no interval, so no verdict (use --repeat)")
        if self.verdict == "no measurable difference":
            return (f"no measurable difference between {self.a} and {self.b} "
                    f"(ratio {self.ratio:.2f}, 95% CI {self.ci[0]:.2f}–{self.ci[1]:.2f})")
        return f"{self.a} is {self._times()} {self.b} (95% CI {self._ci_text()})"

    def _times(self) -> str:
        if self.ratio >= 1:
            return f"{self.ratio:.2f}× faster than"
        return f"{1 / self.ratio:.2f}× slower than"

    def _ci_text(self) -> str:
        assert self.ci is not None
        lo, hi = self.ci if self.ratio >= 1 else (1 / self.ci[1], 1 / self.ci[0])
        return f"{lo:.2f}–{hi:.2f}"


def compare_samples(a: str, a_walls: Sequence[float], b: str,
                    b_walls: Sequence[float]) -> Comparison:
    ratio = float(np.median(b_walls) / np.median(a_walls))
    return Comparison(a, b, ratio, ratio_ci(b_walls, a_walls))
