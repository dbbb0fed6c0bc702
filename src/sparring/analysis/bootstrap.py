"""Percentile bootstrap confidence intervals, vectorised with NumPy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Resampling data with few distinct values (0-4 ratings, 0/1 success) is the same as drawing
# multinomial counts over those values: exact, and independent of the number of rows.
MAX_DISCRETE_VALUES = 32
_CHUNK_CELLS = 2_000_000  # bound memory of index matrices on large inputs


@dataclass(frozen=True)
class Estimate:
    mean: float
    low: float
    high: float
    n: int


def resampled_means(data: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``resamples`` bootstrap resamples of ``data`` (1-D, no NaN, at least one value)."""
    values, counts = np.unique(data, return_counts=True)
    n = data.size
    if values.size <= MAX_DISCRETE_VALUES:
        draws = rng.multinomial(n, counts / n, size=resamples)
        return draws @ values / n
    means = np.empty(resamples)
    chunk = max(1, _CHUNK_CELLS // n)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        means[start:stop] = data[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means


def interval(means: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_mean(
    values: Sequence[float] | np.ndarray, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> Estimate | None:
    """Mean with a percentile bootstrap CI; None for no data. Seeded, so tables are reproducible."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    mean = float(data.mean())
    if data.size == 1:
        return Estimate(mean, mean, mean, 1)
    low, high = interval(resampled_means(data, resamples, np.random.default_rng(seed)), confidence)
    return Estimate(mean, low, high, int(data.size))


def bootstrap_nanmean(
    values: np.ndarray, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> Estimate:
    """Like ``bootstrap_mean`` over the non-NaN values; NaN mean and bounds (n = 0) when there are none."""
    data = np.asarray(values, dtype=float)
    estimate = bootstrap_mean(data[~np.isnan(data)], confidence, resamples, seed)
    return estimate if estimate is not None else Estimate(np.nan, np.nan, np.nan, 0)
