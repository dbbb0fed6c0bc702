"""Inter-annotator agreement of review ratings: Fleiss' kappa on 0-4 ratings and binarised (>= 3).

Only reviewers count as raters. The red teamer's own rating is not one of them:
the red teamer saw the conversation from the inside, reviewers rate it blind,
and the paper's kappas (0.32, 0.49) are among its 3 extra reviewers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sparring.analysis.cells import SUCCESS_THRESHOLD

CATEGORIES = 5  # ratings 0..4


@dataclass
class Agreement:
    n_items: int
    raters_per_item: int
    kappa: float
    kappa_binary: float
    n_needs_expertise: int  # items that at least one reviewer said need domain expertise
    note: str


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss (1971): ``counts[i, j]`` raters put item i in category j; every item has the same raters.

    kappa = (P_bar - P_e) / (1 - P_e) with P_i = (sum_j n_ij^2 - n) / (n (n - 1)),
    P_bar their mean, p_j the pooled category shares and P_e = sum_j p_j^2.
    NaN when there are no items or every rating falls in one category (chance agreement is 1).
    """
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0:
        return float("nan")
    raters = table.sum(axis=1)
    if not np.all(raters == raters[0]) or raters[0] < 2:
        raise ValueError("fleiss_kappa needs the same number (>= 2) of ratings for every item")
    n = raters[0]
    p_items = ((table**2).sum(axis=1) - n) / (n * (n - 1))
    p_bar = p_items.mean()
    shares = table.sum(axis=0) / table.sum()
    p_e = float((shares**2).sum())
    if np.isclose(p_e, 1.0):
        return float("nan")
    return float((p_bar - p_e) / (1 - p_e))


def review_agreement(reviews: pd.DataFrame, attempts: pd.DataFrame | None = None) -> Agreement:
    """Kappa over items with at least k reviewer ratings (first k of each; k = the most common count >= 2).

    ``attempts`` restricts the reviews to those attempts (e.g. one source or a subset); their own
    ratings are never counted as a rater.
    """
    notes = ["raters are reviewers only (the red teamer's own rating is not counted)"]
    rated = reviews[reviews["rating"].notna()]
    if attempts is not None:
        rated = rated[rated["attempt_id"].isin(attempts["attempt_id"])]
    flagged = reviews.loc[reviews["needs_expertise"].fillna(False).astype(bool), "attempt_id"]
    if attempts is not None:
        flagged = flagged[flagged.isin(attempts["attempt_id"])]
    n_expertise = int(flagged.nunique())
    per_item = rated.groupby("attempt_id", sort=False).size()
    eligible = per_item[per_item >= 2]
    if eligible.empty:
        notes.append("no item has two or more reviewer ratings")
        return Agreement(0, 0, float("nan"), float("nan"), n_expertise, "; ".join(notes))
    frequency = eligible.value_counts()
    k = int(frequency[frequency == frequency.max()].index.max())
    used = rated[rated["attempt_id"].isin(per_item[per_item >= k].index)]
    used = used[used.groupby("attempt_id", sort=False).cumcount() < k]
    if (per_item != k).any():
        notes.append(f"items have differing numbers of ratings: using the {used['attempt_id'].nunique()} items "
                     f"with at least {k}, first {k} ratings each; {int((per_item < k).sum())} items left out")
    categories = used["rating"].round().clip(0, CATEGORIES - 1).astype(int).to_numpy()
    items = pd.factorize(used["attempt_id"])[0]
    counts = np.zeros((items.max() + 1, CATEGORIES))
    np.add.at(counts, (items, categories), 1)
    binary = np.column_stack([counts[:, :int(SUCCESS_THRESHOLD)].sum(axis=1),
                              counts[:, int(SUCCESS_THRESHOLD):].sum(axis=1)])
    return Agreement(n_items=int(counts.shape[0]), raters_per_item=k, kappa=fleiss_kappa(counts),
                     kappa_binary=fleiss_kappa(binary), n_needs_expertise=n_expertise, note="; ".join(notes))
