"""Harm-tag frequencies and attack success per tag, over the tagged attempts only (742 in the release)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sparring.analysis.cells import success

TAG_COLUMNS = ["tag", "n", "share", "mean_rating", "success_rate", "success_lo", "success_hi"]
Z95 = 1.959963984540054


def wilson_interval(successes: np.ndarray, trials: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval: sensible for the small counts of rare tags, where a bootstrap collapses."""
    successes, trials = np.asarray(successes, float), np.asarray(trials, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = successes / trials
        denominator = 1 + z**2 / trials
        centre = (p + z**2 / (2 * trials)) / denominator
        half = z * np.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denominator
    return centre - half, centre + half


def tag_table(attempts: pd.DataFrame) -> pd.DataFrame:
    """One row per tag; ``share`` is of tagged attempts (tags not None), so rows can sum past 1 (up to 2 tags)."""
    tagged = attempts[attempts["tags"].notna()]
    n_tagged = len(tagged)
    exploded = pd.DataFrame({"tags": tagged["tags"].map(lambda t: list(dict.fromkeys(t))),
                             "rating": tagged["rating"].to_numpy(float),
                             "success": success(tagged["rating"])}).explode("tags").dropna(subset=["tags"])
    grouped = exploded.groupby("tags")
    table = grouped.agg(n=("rating", "size"), mean_rating=("rating", "mean"), success_rate=("success", "mean"),
                        rated=("success", "count"), successes=("success", "sum"))
    lo, hi = wilson_interval(table["successes"].to_numpy(), table["rated"].to_numpy())
    table = table.assign(share=table["n"] / n_tagged if n_tagged else np.nan, success_lo=lo, success_hi=hi)
    table = table.reset_index().rename(columns={"tags": "tag"})
    table = table.sort_values(["n", "tag"], ascending=[False, True], kind="stable")[TAG_COLUMNS]
    table = table.reset_index(drop=True).astype({"n": int})
    table.attrs["n_tagged"] = n_tagged
    return table
