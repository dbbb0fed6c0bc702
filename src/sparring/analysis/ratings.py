"""The red teamers' own 0-4 success ratings: their distribution, and how they track the harmlessness score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sparring.analysis.bootstrap import bootstrap_nanmean

RATINGS = (0, 1, 2, 3, 4)


@dataclass
class RatingHarmlessness:
    n: int
    pearson: float
    spearman: float
    by_rating: pd.DataFrame  # rating, n, mean_min_harmlessness, lo, hi


def rating_distribution(attempts: pd.DataFrame) -> pd.DataFrame:
    """Rows for every rating 0..4 (rounded; unknown ratings left out), with count and share."""
    ratings = attempts["rating"].dropna().round().clip(0, 4).astype(int)
    counts = ratings.value_counts().reindex(RATINGS, fill_value=0)
    total = int(counts.sum())
    return pd.DataFrame({"rating": list(RATINGS), "n": counts.to_numpy(int),
                         "share": counts.to_numpy(float) / total if total else np.full(len(RATINGS), np.nan)})


def rating_vs_harmlessness(attempts: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> RatingHarmlessness:
    """Correlation over rows with both values, and mean minimum harmlessness per (rounded) rating."""
    from scipy.stats import pearsonr, spearmanr

    both = attempts[["rating", "min_harmlessness"]].dropna()
    rating = both["rating"].round().clip(0, 4).astype(int)
    harm = both["min_harmlessness"].to_numpy(float)
    rows = []
    for value in RATINGS:
        estimate = bootstrap_nanmean(harm[rating.to_numpy() == value], resamples=n_boot, seed=seed + value)
        rows.append({"rating": value, "n": estimate.n, "mean_min_harmlessness": estimate.mean,
                     "lo": estimate.low, "hi": estimate.high})
    varies = len(both) > 2 and both["rating"].nunique() > 1 and both["min_harmlessness"].nunique() > 1
    pearson = float(pearsonr(both["rating"], harm)[0]) if varies else float("nan")
    spearman = float(spearmanr(both["rating"], harm)[0]) if varies else float("nan")
    return RatingHarmlessness(len(both), pearson, spearman, pd.DataFrame(rows))
