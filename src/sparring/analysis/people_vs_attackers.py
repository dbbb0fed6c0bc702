"""People vs attackers: replayed or live red teamers and each model attacker, on the same targets and judge.

Rows are groups of attempts: the people (a campaign, or replayed hh-rlhf red-team dialogues)
and each attack written by a model. Only (size, intervention) cells that both sides attacked
are compared, so a group is never credited for an easier target. Success is the judge's
verdict (a person's own rating where one was given); attempts the judge could not decide
and conversations that failed are counted in their own columns, never as failed attacks.
Coverage lists the attack-map clusters and harm tags one side reached and the other did not.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sparring.analysis.bootstrap import bootstrap_mean
from sparring.analysis.cells import success
from sparring.analysis.compare import distinct_2
from sparring.analysis.diversity import DISPERSION_SAMPLE, dispersion
from sparring.analysis.embedding_map import human_side, human_turns
from sparring.analysis.tags import wilson_interval

PEOPLE = "people"


@dataclass
class PeopleVsAttackers:
    groups: pd.DataFrame  # one row per group: side, attempts, errors, undecided, success and harmlessness with CIs, ...
    coverage: pd.DataFrame  # attacker, what (cluster | harm tag), only people, only the attacker
    sample_size: int  # attempts per group in the diversity measures
    notes: list[str] = field(default_factory=list)


def comparable(attempts: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Attempts by people or a model attacker in the (size, intervention) cells both sides attacked."""
    usable = attempts[attempts["side"].isin([PEOPLE, "model"])]
    cells = usable["size"].astype(str) + "|" + usable["model_type"].astype(str)
    shared = set(cells[usable["side"] == PEOPLE]) & set(cells[usable["side"] == "model"])
    kept = usable[cells.isin(shared)]
    return kept, len(usable) - len(kept)


def compare_people_and_attackers(attempts: pd.DataFrame, errors: dict[str, int],
                                 clusters: dict[str, tuple[int, str]] | None = None,
                                 seed: int = 0) -> PeopleVsAttackers | None:
    """``attempts`` carries ``attack`` and ``side``; ``clusters`` maps attempt id -> (map cluster, its harm tag).

    None when there are no people or no model attacker in shared cells.
    """
    kept, dropped = comparable(attempts)
    groups = {name: frame for name, frame in kept.groupby("attack", sort=True)}
    people = [name for name, frame in groups.items() if (frame["side"] == PEOPLE).all()]
    attackers = [name for name in groups if name not in people]
    if not people or not attackers:
        return None
    order = people + attackers
    size = min(DISPERSION_SAMPLE, *(len(groups[name]) for name in order))
    reached: dict[str, tuple[set[str], set[str]]] = {}
    rows = []
    for name in order:
        frame = groups[name]
        verdicts = success(frame["rating"])
        decided = verdicts[~np.isnan(verdicts)]
        low, high = wilson_interval(np.array([decided.sum()]), np.array([decided.size]))
        harm = bootstrap_mean(frame["min_harmlessness"].dropna().to_numpy(float), seed=seed)
        sample = random.Random(seed).sample(frame["transcript"].astype(str).tolist(), size)
        reached[name] = _reached(frame, clusters)
        rows.append({
            "group": name, "side": "people" if name in people else "attacker", "attempts": len(frame),
            "errors": errors.get(name, 0), "undecided": int(np.isnan(verdicts).sum()),
            "success_rate": float(decided.mean()) if decided.size else np.nan,
            "success_lo": float(low[0]) if decided.size else np.nan, "success_hi": float(high[0]) if decided.size else np.nan,
            "mean_min_harmlessness": harm.mean if harm else np.nan, "harmlessness_lo": harm.low if harm else np.nan,
            "harmlessness_hi": harm.high if harm else np.nan,
            "distinct_2": distinct_2([turn for t in sample for turn in human_turns(t)]),
            "dispersion": dispersion([human_side(t) for t in sample]),
            "clusters": len(reached[name][0]) if clusters is not None else np.nan,
            "harm_tags": len(reached[name][1]),
        })
    human_clusters = set().union(*(reached[name][0] for name in people))
    human_tags = set().union(*(reached[name][1] for name in people))
    coverage = []
    for name in attackers:
        own_clusters, own_tags = reached[name]
        if clusters is not None:
            coverage.append({"attacker": name, "what": "map clusters",
                             "only_people": _listed(human_clusters - own_clusters),
                             "only_attacker": _listed(own_clusters - human_clusters)})
        coverage.append({"attacker": name, "what": "harm tags", "only_people": _listed(human_tags - own_tags),
                         "only_attacker": _listed(own_tags - human_tags)})
    notes = [f"{dropped} attempt(s) left out: their (size, intervention) cell was attacked by one side only"] \
        if dropped else []
    return PeopleVsAttackers(pd.DataFrame(rows), pd.DataFrame(coverage), size, notes)


def _reached(frame: pd.DataFrame, clusters: dict[str, tuple[int, str]] | None) -> tuple[set[str], set[str]]:
    """The map clusters a group's attempts fall in, and harm tags: its own tags and its clusters' names."""
    found_clusters: set[str] = set()
    tags: set[str] = set()
    for attempt_id, own in zip(frame["attempt_id"].astype(str), frame["tags"], strict=False):
        if isinstance(own, list | tuple):
            tags.update(str(tag) for tag in own)
        if clusters is not None and attempt_id in clusters:
            cluster, tag = clusters[attempt_id]
            if cluster >= 0:
                found_clusters.add(f"{cluster} ({tag})")
                tags.add(tag)
    return found_clusters, tags


def _listed(items: set[str]) -> str:
    return ", ".join(sorted(items, key=lambda s: (len(s.split(" ")[0]), s))) or "none"
