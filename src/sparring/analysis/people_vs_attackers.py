"""People vs attackers: replayed or live red teamers and each model attacker, on the same targets and judge.

Rows are groups of attempts: the people (a campaign, or replayed hh-rlhf red-team dialogues)
and each attack written by a model. Only (size, intervention) cells that both sides attacked
are compared, so a group is never credited for an easier target. Success is the judge's
verdict (a person's own rating where one was given); attempts the judge could not decide
and conversations that failed are counted in their own columns, never as failed attacks.
Coverage lists the attack-map clusters, and the harm tags that name them, one side reached and
the other did not (without a map there is no coverage).
Two sources (a campaign compared with a run) are pooled first: a group label both use keeps
its source's name, so every source's people and attackers stay their own rows.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sparring.analysis.bootstrap import bootstrap_mean
from sparring.analysis.cells import success
from sparring.analysis.compare import distinct_2
from sparring.analysis.diversity import DISPERSION_SAMPLE, dispersion
from sparring.analysis.embedding_map import AttackMap, attack_map, embed_transcripts, human_side, human_turns
from sparring.analysis.tags import wilson_interval

PEOPLE = "people"


@dataclass
class PeopleVsAttackers:
    groups: pd.DataFrame  # one row per group: side, attempts, errors, undecided, success and harmlessness with CIs, ...
    coverage: pd.DataFrame  # attacker, what (cluster | harm tag), only people, only the attacker
    sample_size: int  # attempts per group in the diversity measures
    notes: list[str] = field(default_factory=list)
    mapped: int = 0  # compared attempts with a place on the attack map (the cluster columns count only these)


def pool(sources: Sequence[tuple[str, pd.DataFrame, dict[str, int]]]) -> tuple[pd.DataFrame, dict[str, int]]:
    """(source name, attempts with ``attack`` and ``side``, failed conversations per attack) as one frame.

    A label two sources both use (two campaigns' ``people``, two runs' ``zero-shot``) becomes
    ``label (source)``; each row keeps its ``source``. Returns the attempts and the errors per group.
    """
    uses = Counter(label for _, frame, errors in sources
                   for label in set(frame["attack"].astype(str)) | set(errors))
    frames: list[pd.DataFrame] = []
    pooled_errors: dict[str, int] = {}
    for name, frame, errors in sources:
        def group(label: str, name: str = name) -> str:
            return f"{label} ({name})" if uses[label] > 1 else label

        frames.append(frame.assign(attack=frame["attack"].astype(str).map(group), source=name))
        for label, count in errors.items():
            pooled_errors[group(label)] = pooled_errors.get(group(label), 0) + count
    return pd.concat(frames, ignore_index=True), pooled_errors


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
    """``attempts`` carries ``attack`` and ``side``; ``clusters`` maps attempt id -> (map cluster, its harm tag)
    for the attempts on the map (all of them, or a sample: clusters are counted over the mapped ones).

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
        reached[name] = _reached(frame, clusters or {})
        rows.append({
            "group": name, "side": "people" if name in people else "attacker",
            "source": str(frame["source"].iloc[0]) if "source" in frame else "", "attempts": len(frame),
            "errors": errors.get(name, 0), "undecided": int(np.isnan(verdicts).sum()),
            "success_rate": float(decided.mean()) if decided.size else np.nan,
            "success_lo": float(low[0]) if decided.size else np.nan, "success_hi": float(high[0]) if decided.size else np.nan,
            "mean_min_harmlessness": harm.mean if harm else np.nan, "harmlessness_lo": harm.low if harm else np.nan,
            "harmlessness_hi": harm.high if harm else np.nan,
            "distinct_2": distinct_2([turn for t in sample for turn in human_turns(t)]),
            "dispersion": dispersion([human_side(t) for t in sample]),
            "clusters": len(reached[name][0]) if clusters is not None else np.nan,
            "harm_tags": len(reached[name][1]) if clusters is not None else np.nan,
        })
    human_clusters = set().union(*(reached[name][0] for name in people))
    human_tags = set().union(*(reached[name][1] for name in people))
    coverage = []
    for name in attackers if clusters is not None else []:  # without a map there is nothing to compare
        own_clusters, own_tags = reached[name]
        coverage.append({"attacker": name, "what": "map clusters", "only_people": _listed(human_clusters - own_clusters),
                         "only_attacker": _listed(own_clusters - human_clusters)})
        coverage.append({"attacker": name, "what": "harm tags", "only_people": _listed(human_tags - own_tags),
                         "only_attacker": _listed(own_tags - human_tags)})
    notes = [f"{dropped} attempt(s) left out: their (size, intervention) cell was attacked by one side only"] \
        if dropped else []
    mapped = int(kept["attempt_id"].astype(str).isin(set(clusters)).sum()) if clusters is not None else 0
    return PeopleVsAttackers(pd.DataFrame(rows), pd.DataFrame(coverage), size, notes, mapped)


def map_clusters(result: AttackMap, ids: Sequence[str]) -> dict[str, tuple[int, str]]:
    """Attempt id -> (cluster, the cluster's harm tag) for each attempt on ``result`` (ids align with its rows)."""
    names = {c.id: c.nearest_tag for c in result.clusters}
    return {i: (int(label), names.get(int(label), "")) for i, label in zip(ids, result.labels, strict=False)}


def joint_clusters(compared: pd.DataFrame, map_sample: int | None,
                   seed: int) -> tuple[dict[str, tuple[int, str]] | None, str]:
    """One attack map of the compared attempts of every source, so people and attackers from two
    sources are placed on the same map (a seeded sample of ``map_sample`` if there are more).

    Returns the clusters by attempt id (None if the map found none) and a line saying what was mapped.
    """
    mapped = compared[compared["transcript"].map(lambda t: isinstance(t, str) and bool(t.strip()))]
    if map_sample is not None and len(mapped) > map_sample:
        mapped = mapped.sample(n=map_sample, random_state=seed)
    mapped = mapped.reset_index(drop=True)
    result = attack_map(mapped, embed_transcripts(mapped["transcript"].tolist()), seed=seed)
    if not result.clusters:
        return None, f"one map of both sources' compared attempts found no clusters ({result.note})"
    return (map_clusters(result, mapped["attempt_id"].astype(str).tolist()),
            f"one map of both sources' compared attempts ({len(result.clusters)} clusters)")


def _reached(frame: pd.DataFrame, clusters: dict[str, tuple[int, str]]) -> tuple[set[str], set[str]]:
    """The map clusters a group's mapped attempts fall in, and their names (harm tags).

    Tags come from the map for every side alike: a person's own tags are left out, since no attacker
    tags its attempts and the comparison would credit people for labelling, not for reaching a harm.
    """
    found_clusters: set[str] = set()
    tags: set[str] = set()
    for attempt_id in frame["attempt_id"].astype(str):
        cluster, tag = clusters.get(attempt_id, (-1, ""))
        if cluster >= 0:
            found_clusters.add(f"{cluster} ({tag})")
            tags.add(tag)
    return found_clusters, tags


def _listed(items: set[str]) -> str:
    return ", ".join(sorted(items, key=lambda s: (len(s.split(" ")[0]), s))) or "none"
