"""Who does the attacking: concentration of attacks among people, and each person's effectiveness.

The paper: about 80% of attacks came from about 15% of 324 red teamers, and
people differ widely in how harmful their attacks get.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from sparring.analysis.bootstrap import bootstrap_nanmean
from sparring.analysis.cells import success


@dataclass
class Concentration:
    n_people: int
    curve: pd.DataFrame  # people_share, attack_share; from (0, 0), people by attack count descending

    def share_from_top(self, fraction: float) -> float:
        """Share of attacks made by the most active ``fraction`` of people (linear between people)."""
        return float(np.interp(fraction, self.curve["people_share"], self.curve["attack_share"]))

    def people_share_for(self, attack_share: float) -> float:
        """The smallest share of (most active) people who made ``attack_share`` of the attacks."""
        people, attacks = self.curve["people_share"].to_numpy(), self.curve["attack_share"].to_numpy()
        if self.n_people == 0:
            return float("nan")
        index = int(np.searchsorted(attacks, attack_share, side="left"))
        if index == 0:
            return 0.0
        if index >= len(attacks):
            return 1.0
        low, high = attacks[index - 1], attacks[index]
        step = (attack_share - low) / (high - low) if high > low else 1.0
        return float(people[index - 1] + step * (people[index] - people[index - 1]))


def concentration(attempts: pd.DataFrame) -> Concentration:
    counts = np.sort(attempts["red_team_member_id"].value_counts().to_numpy())[::-1]
    n = counts.size
    total = counts.sum()
    people = np.concatenate([[0.0], np.arange(1, n + 1) / n]) if n else np.array([0.0])
    attacks = np.concatenate([[0.0], np.cumsum(counts) / total]) if n else np.array([0.0])
    return Concentration(n, pd.DataFrame({"people_share": people, "attack_share": attacks}))


def per_person_effectiveness(attempts: pd.DataFrame, min_attempts: int = 5, n_boot: int = 1000,
                             seed: int = 0) -> pd.DataFrame:
    """Per red teamer with at least ``min_attempts``: mean rating with a 95% bootstrap CI, success, harmlessness."""
    frame = pd.DataFrame({"person": attempts["red_team_member_id"].astype(str),
                          "rating": attempts["rating"].to_numpy(float), "success": success(attempts["rating"]),
                          "harm": attempts["min_harmlessness"].to_numpy(float)})
    sizes = frame.groupby("person").size()
    kept = sizes[sizes >= min_attempts].index
    grouped = frame[frame["person"].isin(kept)].groupby("person")
    summary = grouped.agg(n=("rating", "size"), mean_rating=("rating", "mean"), success_rate=("success", "mean"),
                          mean_min_harmlessness=("harm", "mean"))
    lo, hi = {}, {}
    for offset, (person, group) in enumerate(grouped["rating"]):  # one bootstrap per person, not per row
        estimate = bootstrap_nanmean(group.to_numpy(), resamples=n_boot, seed=seed + offset)
        lo[person], hi[person] = estimate.low, estimate.high
    summary["lo"], summary["hi"] = pd.Series(lo), pd.Series(hi)
    summary = summary.reset_index().rename(columns={"person": "red_team_member_id"})
    summary = summary.sort_values(["n", "red_team_member_id"], ascending=[False, True], kind="stable")
    columns = ["red_team_member_id", "n", "mean_rating", "lo", "hi", "success_rate", "mean_min_harmlessness"]
    return summary[columns].reset_index(drop=True).astype({"n": int})
