"""Statistics over trial samples: medians with bootstrap confidence intervals."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["median_ci"]


def median_ci(samples: Sequence[float], confidence: float = 0.95, resamples: int = 2000,
              seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the median; None with fewer than two samples."""
    data = np.asarray(samples, dtype=float)
    if data.size < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = rng.choice(data, size=(resamples, data.size), replace=True)
    medians = np.median(draws, axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(medians, [tail, 100 - tail])
    return float(lo), float(hi)
