"""Is a rebuilt scorer artifact the shipped one? Compared as a user relies on it, not bit for bit.

Encoders, BLAS kernels and optimisers give slightly different floats on
another CPU, so a rebuild elsewhere never matches to the last bit. What must
match: the recipe, data and split exactly; the documented metrics within a
pair or two of the evaluation set; the threshold and weights within a small
relative tolerance. A changed recipe, split or data file moves at least one
of these far beyond float noise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

WEIGHT_RTOL = 1e-3  # cross-machine noise measured ~1e-5 relative; a changed recipe moves weights by >1e-2
THRESHOLD_RTOL = 1e-3
METRIC_PAIRS = 2  # a metric may move by this many evaluation items (a near-tie flipping on another CPU)


def artifact_differences(
    rebuilt: Mapping[str, Any],
    shipped: Mapping[str, Any],
    rebuilt_weights: Mapping[str, np.ndarray],
    shipped_weights: Mapping[str, np.ndarray],
    *,
    exact_keys: Iterable[str],
    metrics: Mapping[str, int],
) -> list[str]:
    """What differs beyond cross-machine noise; empty when the rebuild reproduces the shipped artifact.

    ``metrics`` maps a metric key to the size of the set it is measured on, so the
    tolerance is ``METRIC_PAIRS`` items of that set.
    """
    problems = [f"{key}: {rebuilt.get(key)!r} != {shipped.get(key)!r}"
                for key in exact_keys if rebuilt.get(key) != shipped.get(key)]
    for key, size in metrics.items():
        if abs(float(rebuilt[key]) - float(shipped[key])) > METRIC_PAIRS / size:
            problems.append(f"{key}: {rebuilt[key]} vs {shipped[key]} (more than {METRIC_PAIRS} of {size})")
    threshold_gap = abs(float(rebuilt["threshold"]) - float(shipped["threshold"]))
    if threshold_gap > THRESHOLD_RTOL * max(1.0, abs(float(shipped["threshold"]))):
        problems.append(f"threshold: {rebuilt['threshold']} vs {shipped['threshold']}")
    if set(rebuilt_weights) != set(shipped_weights):
        problems.append(f"weight arrays: {sorted(rebuilt_weights)} vs {sorted(shipped_weights)}")
        return problems
    for name, expected in shipped_weights.items():
        got = rebuilt_weights[name]
        if got.shape != expected.shape:
            problems.append(f"weights {name}: shape {got.shape} vs {expected.shape}")
            continue
        relative = float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-12))
        if relative > WEIGHT_RTOL:
            problems.append(f"weights {name}: relative difference {relative:.2e} > {WEIGHT_RTOL:.0e}")
    return problems
