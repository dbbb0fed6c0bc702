"""A file in the exact released format with planted effects, so every analysis can be checked on known answers.

Transcripts are REAL hh-rlhf red-team dialogues (the bundled harmless-base test
split; each attempt is a dialogue's ``rejected`` path, its first human turn the
task description); only the numbers are generated. Planted:

- per-cell counts (default: the paper's Table 1) and mean minimum harmlessness
  (default: the paper's released means), hit exactly by centring each cell;
- per-cell mean ratings (0-4 integers, bimodal, ranked by harmfulness within the cell);
- red teamers with a Zipf-like number of attacks and a random intercept on harmlessness;
- a cluster: attempts built only from dialogues asking for someone's address, phone
  number or e-mail (the paper's PII cluster), and no other attempt uses those dialogues;
- a tagged subset, and review ratings by several reviewers with target Fleiss' kappas.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from sparring.analysis.dataset import REVIEW_COLUMNS, RedTeamData, read_source, reviews_frame
from sparring.harm_tags import HARM_TAGS

SIZES = ("2.7B", "13B", "52B")
MODEL_TYPES = ("plain lm", "context distillation", "rejection sampling", "rlhf")
PAPER_COUNTS: dict[tuple[str, str], int] = {
    **dict(zip(((s, "plain lm") for s in SIZES), (1151, 2587, 1414), strict=False)),
    **dict(zip(((s, "context distillation") for s in SIZES), (2044, 2174, 17739), strict=False)),
    **dict(zip(((s, "rejection sampling") for s in SIZES), (1445, 1263, 1273), strict=False)),
    **dict(zip(((s, "rlhf") for s in SIZES), (2498, 2292, 3081), strict=False)),
}
PAPER_HARMLESSNESS: dict[tuple[str, str], float] = {
    **dict(zip(((s, "plain lm") for s in SIZES), (-0.75, -0.77, -0.63), strict=False)),
    **dict(zip(((s, "context distillation") for s in SIZES), (-0.65, -0.73, -0.83), strict=False)),
    **dict(zip(((s, "rejection sampling") for s in SIZES), (1.49, 1.58, 1.72), strict=False)),
    **dict(zip(((s, "rlhf") for s in SIZES), (0.52, 1.43, 1.70), strict=False)),
}
# Not published per cell: planted to fall as harmlessness rises (1.5 - 0.4 x the cell's mean).
DEFAULT_RATINGS: dict[tuple[str, str], float] = {k: round(1.5 - 0.4 * v, 2) for k, v in PAPER_HARMLESSNESS.items()}
PII_TAG = "Soliciting personally identifiable information"
INVALID_TAG = "N/A - Invalid attempt"
# The first human turn asks for where someone lives or how to reach them.
PII_PATTERN = (r"\b(home address|residential address|email address|e-mail address|phone number|"
               r"address (?:for|of)|where (?:does|do) .{0,40}\blive\b)")
# Rating shapes mixed to reach a cell's mean: mostly-failed and mostly-succeeded attacks (bimodal, like the paper).
_LOW = np.array([0.62, 0.14, 0.10, 0.07, 0.07])
_HIGH = np.array([0.22, 0.08, 0.12, 0.18, 0.40])


@dataclass
class PlantedEffects:
    cell_counts: dict[tuple[str, str], int] = field(default_factory=lambda: dict(PAPER_COUNTS))
    cell_mean_harmlessness: dict[tuple[str, str], float] = field(default_factory=lambda: dict(PAPER_HARMLESSNESS))
    cell_mean_rating: dict[tuple[str, str], float] = field(default_factory=lambda: dict(DEFAULT_RATINGS))
    n_red_teamers: int = 324
    zipf_exponent: float = 1.35  # with the offset: about 80% of attacks from the top 15% of people
    zipf_offset: float = 2.0
    upworker_share: float = 0.3  # of people
    person_sd: float = 0.5  # SD of the red teamer's random intercept on min harmlessness
    task_effect: float = 0.3  # coefficient of the task-description score
    noise_sd: float = 1.0
    cluster_size: int = 916  # the paper's PII cluster
    cluster_pattern: str = PII_PATTERN
    n_tagged: int = 742
    invalid_share: float = 0.4  # tagged failed (rating 0) attempts marked "N/A - Invalid attempt"
    n_reviewed: int = 1000  # the paper: 500 + 500
    n_reviewers: int = 3
    review_kappa: float = 0.32
    review_kappa_binary: float = 0.49
    needs_expertise_share: float = 0.03  # of reviews

    @property
    def total(self) -> int:
        return int(sum(self.cell_counts.values()))

    def scaled(self, total: int) -> PlantedEffects:
        """The same effects on about ``total`` rows (cells keep their proportions, at least 20 each)."""
        factor = total / self.total
        counts = {k: max(20, round(v * factor)) for k, v in self.cell_counts.items()}
        return replace(self, cell_counts=counts, cluster_size=max(10, round(self.cluster_size * factor)),
                       n_tagged=max(40, round(self.n_tagged * factor)),
                       n_reviewed=min(self.n_reviewed, max(100, round(self.n_reviewed * factor))),
                       n_red_teamers=min(self.n_red_teamers, max(20, round(self.n_red_teamers * factor**0.5))))


@dataclass
class PlantedTruth:
    path: Path
    reviews_path: Path
    truth_path: Path
    n_rows: int
    cell_counts: dict[tuple[str, str], int]
    cell_mean_harmlessness: dict[tuple[str, str], float]  # realised (equal to the planted means)
    cell_mean_rating: dict[tuple[str, str], float]  # realised (within 1/(2n) of the planted means)
    cell_success_rate: dict[tuple[str, str], float]  # realised share of ratings >= 3
    person_counts: dict[str, int]  # attempts per red_team_member_id
    person_effects: dict[str, float]  # planted random intercepts
    cluster_ids: list[str]  # attempt ids (positions in the array) of the planted cluster
    tag_counts: dict[str, int]
    tag_success_rate: dict[str, float]
    kappa: float  # expected Fleiss' kappa of the reviews, 0-4
    kappa_binary: float  # expected Fleiss' kappa of the reviews, rating >= 3
    reviews: pd.DataFrame


def write_planted_release(path: Path, effects: PlantedEffects | None = None, seed: int = 0) -> PlantedTruth:
    """Write ONE gzipped JSON array with the 10 published keys, plus ``<stem>.reviews.json`` and ``<stem>.truth.json``."""
    effects = effects or PlantedEffects()
    rng = np.random.default_rng(seed)
    cells = list(effects.cell_counts)
    counts = np.array([effects.cell_counts[c] for c in cells])
    n = int(counts.sum())
    cell = rng.permutation(np.repeat(np.arange(len(cells)), counts))

    person_counts = _zipf_counts(n, effects)
    person_ids = rng.permutation(effects.n_red_teamers)  # pseudonymous ids, unrelated to activity rank
    person = rng.permutation(np.repeat(np.arange(effects.n_red_teamers), person_counts))
    effect = rng.normal(0.0, effects.person_sd, effects.n_red_teamers)
    effect -= np.average(effect, weights=person_counts)
    upworker = rng.random(effects.n_red_teamers) < effects.upworker_share

    task = rng.normal(0.5, 1.0, n)
    harm_means = np.array([effects.cell_mean_harmlessness[c] for c in cells])
    deviation = effect[person] + effects.task_effect * (task - task.mean()) + rng.normal(0, effects.noise_sd, n)
    deviation -= (np.bincount(cell, deviation) / counts)[cell]  # each cell's mean is exactly its planted mean
    harmlessness = harm_means[cell] + deviation

    ratings = _ratings(cell, counts, harmlessness, [effects.cell_mean_rating[c] for c in cells], rng)
    dialogues, firsts, in_cluster = _dialogues(effects.cluster_pattern)
    cluster_rows = np.sort(rng.choice(n, size=min(effects.cluster_size, n), replace=False))
    dialogue = rng.choice(np.flatnonzero(~in_cluster), size=n)
    dialogue[cluster_rows] = rng.choice(np.flatnonzero(in_cluster), size=cluster_rows.size)
    cluster_mask = np.zeros(n, bool)
    cluster_mask[cluster_rows] = True
    tags = _tags(n, effects, cluster_mask, ratings, rng)

    records = [
        {"transcript": t, "min_harmlessness_score_transcript": h, "num_params": cells[c][0], "model_type": cells[c][1],
         "rating": r, "task_description": d, "task_descripton_harmlessness_score": s,
         "red_team_member_id": p, "is_upworker": u, "tags": g}
        for t, h, c, r, d, s, p, u, g in zip(
            dialogues[dialogue].tolist(), harmlessness.tolist(), cell.tolist(), ratings.astype(float).tolist(),
            firsts[dialogue].tolist(), task.tolist(), person_ids[person].tolist(), upworker[person].tolist(), tags, strict=False)
    ]
    partial = path.with_name(path.name + ".partial")
    with gzip.open(partial, "wt", encoding="utf-8", compresslevel=1) as handle:
        json.dump(records, handle, ensure_ascii=False)
    partial.replace(path)

    reviews, kappa, kappa_binary = _reviews(ratings, effects, rng)
    side = reviews_path(path)
    side.write_text(json.dumps(reviews.to_dict(orient="records")), "utf-8")
    truth = _truth(path, side, cells, cell, counts, harmlessness, ratings, person_ids, person_counts, effect,
                   cluster_rows, tags, kappa, kappa_binary, reviews)
    truth.truth_path.write_text(json.dumps(_truth_json(truth, effects), indent=1), "utf-8")
    return truth


def _zipf_counts(n: int, effects: PlantedEffects) -> np.ndarray:
    """Attempts per person, most active first: weights 1 / (rank + offset)^s, largest-remainder rounding."""
    weights = 1.0 / (np.arange(1, effects.n_red_teamers + 1) + effects.zipf_offset) ** effects.zipf_exponent
    exact = n * weights / weights.sum()
    counts = np.maximum(np.floor(exact).astype(int), 1)
    remainder = n - counts.sum()
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    if remainder > 0:
        counts[order[:remainder]] += 1
    elif remainder < 0:
        counts[np.argsort(-counts, kind="stable")[:-remainder]] -= 1
    return counts


def _ratings(cell: np.ndarray, counts: np.ndarray, harmlessness: np.ndarray, targets: list[float],
             rng: np.random.Generator) -> np.ndarray:
    """0-4 ratings: within a cell the more harmful (low harmlessness) attempts get the higher ratings."""
    n = cell.size
    harm = -harmlessness + rng.normal(0, 0.7, n)  # ratings track harmlessness, imperfectly (as in the paper)
    order = np.lexsort((harm, cell))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(n)
    rank[order] = np.arange(n) - starts[cell[order]]
    quantile = (rank + 0.5) / counts[cell]
    ratings = np.empty(n, dtype=int)
    for index, target in enumerate(targets):  # one step per cell, not per row
        rows = np.flatnonzero(cell == index)
        weight = np.clip((target - _LOW @ np.arange(5)) / ((_HIGH - _LOW) @ np.arange(5)), 0, 1)
        cdf = np.cumsum((1 - weight) * _LOW + weight * _HIGH)
        values = np.minimum(np.searchsorted(cdf, quantile[rows]), 4)
        deficit = round(target * rows.size) - int(values.sum())
        while deficit != 0:  # nudge random ratings by one until the cell's total hits the target
            step = 1 if deficit > 0 else -1
            movable = np.flatnonzero(values < 4 if step > 0 else values > 0)
            if movable.size == 0:
                break
            chosen = rng.choice(movable, size=min(abs(deficit), movable.size), replace=False)
            values[chosen] += step
            deficit -= step * chosen.size
        ratings[rows] = values
    return ratings


def _dialogues(pattern: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Real transcripts (the ``rejected`` path), their first human turns, and which match ``pattern``."""
    from sparring.attacks.replay import bundled_hh_rlhf
    from sparring.datasets.hh_rlhf import read_pairs

    transcripts = [p.rejected for p in read_pairs(bundled_hh_rlhf())]
    firsts = [t.split("\n\nHuman: ", 1)[-1].split("\n\nAssistant:", 1)[0].strip() for t in transcripts]
    matcher = re.compile(pattern, re.IGNORECASE)
    in_cluster = np.array([bool(matcher.search(f)) for f in firsts])
    if not in_cluster.any() or in_cluster.all():
        raise ValueError(f"cluster pattern {pattern!r} must match some but not all first human turns")
    return np.array(transcripts, dtype=object), np.array(firsts, dtype=object), in_cluster


def _tags(n: int, effects: PlantedEffects, cluster: np.ndarray, ratings: np.ndarray,
          rng: np.random.Generator) -> list[list[str] | None]:
    """Cluster attempts carry the PII tag; failed ones are often "invalid"; others 1-2 tags, Zipf-like."""
    tags: list[list[str] | None] = [None] * n
    others = [t for t in HARM_TAGS if t not in (PII_TAG, INVALID_TAG)]
    weights = 1.0 / np.arange(1, len(others) + 1)
    weights /= weights.sum()
    for row in rng.choice(n, size=min(effects.n_tagged, n), replace=False).tolist():  # the tagged subset only
        if cluster[row]:
            tags[row] = [PII_TAG]
        elif ratings[row] == 0 and rng.random() < effects.invalid_share:
            tags[row] = [INVALID_TAG]
        else:
            size = 2 if rng.random() < 0.3 else 1
            tags[row] = [others[i] for i in rng.choice(len(others), size=size, replace=False, p=weights)]
    return tags


def review_mixture(shares: np.ndarray, kappa: float, kappa_binary: float) -> tuple[float, float]:
    """Probabilities (a, b) that a reviewer copies the true rating (a) or only its success class (b).

    Otherwise the reviewer draws from the rating shares. With the reviewers' marginal equal to
    ``shares``: binary kappa = (a + b)^2 and 0-4 kappa = a^2 + ((a + b)^2 - a^2) g, where
    g = (S - P_e) / (1 - P_e), P_e = sum p_k^2 and S = sum over classes of sum_k p_k^2 / P_class.
    """
    p = np.asarray(shares, float)
    low, high = p[:3].sum(), p[3:].sum()
    p_e = float((p**2).sum())
    s_class = (p[:3] ** 2).sum() / low if low else 0.0
    s_class += (p[3:] ** 2).sum() / high if high else 0.0
    g = (s_class - p_e) / (1 - p_e)
    both = kappa_binary
    a_squared = (kappa - both * g) / (1 - g)
    if a_squared < 0 or a_squared > both:
        raise ValueError(f"kappa {kappa} is not reachable with binary kappa {kappa_binary} for these ratings "
                         f"(needs {both * g:.3f} <= kappa <= {kappa_binary})")
    a = math.sqrt(a_squared)
    return a, math.sqrt(both) - a


def _reviews(ratings: np.ndarray, effects: PlantedEffects, rng: np.random.Generator
             ) -> tuple[pd.DataFrame, float, float]:
    items = np.sort(rng.choice(ratings.size, size=min(effects.n_reviewed, ratings.size), replace=False))
    truth = np.repeat(ratings[items], effects.n_reviewers)
    shares = np.bincount(ratings[items], minlength=5) / items.size
    a, b = review_mixture(shares, effects.review_kappa, effects.review_kappa_binary)
    draw = rng.random(truth.size)
    random_rating = rng.choice(5, size=truth.size, p=shares)
    low = shares[:3] / shares[:3].sum() if shares[:3].sum() else np.full(3, 1 / 3)
    high = shares[3:] / shares[3:].sum() if shares[3:].sum() else np.full(2, 1 / 2)
    same_class = np.where(truth >= 3, 3 + rng.choice(2, size=truth.size, p=high), rng.choice(3, size=truth.size, p=low))
    given = np.where(draw < a, truth, np.where(draw < a + b, same_class, random_rating))
    reviews = pd.DataFrame({
        "attempt_id": np.repeat(items, effects.n_reviewers).astype(str),
        "reviewer": np.tile([f"reviewer-{i + 1}" for i in range(effects.n_reviewers)], items.size),
        "rating": given.astype(float),
        "tags": None,
        "needs_expertise": rng.random(truth.size) < effects.needs_expertise_share,
    })[REVIEW_COLUMNS]
    return reviews, effects.review_kappa, effects.review_kappa_binary


def _truth(path: Path, side: Path, cells: list[tuple[str, str]], cell: np.ndarray, counts: np.ndarray,
           harmlessness: np.ndarray, ratings: np.ndarray, person_ids: np.ndarray, person_counts: np.ndarray,
           effect: np.ndarray, cluster_rows: np.ndarray, tags: list[list[str] | None], kappa: float,
           kappa_binary: float, reviews: pd.DataFrame) -> PlantedTruth:
    harm_sum = np.bincount(cell, harmlessness)
    rating_sum = np.bincount(cell, ratings.astype(float))
    success_sum = np.bincount(cell, (ratings >= 3).astype(float))
    tag_rows: dict[str, list[int]] = {}
    for row, row_tags in enumerate(tags):
        for tag in row_tags or ():
            tag_rows.setdefault(tag, []).append(row)
    return PlantedTruth(
        path=path, reviews_path=side, truth_path=path.with_name(path.name.split(".")[0] + ".truth.json"),
        n_rows=int(cell.size),
        cell_counts={c: int(counts[i]) for i, c in enumerate(cells)},
        cell_mean_harmlessness={c: float(harm_sum[i] / counts[i]) for i, c in enumerate(cells)},
        cell_mean_rating={c: float(rating_sum[i] / counts[i]) for i, c in enumerate(cells)},
        cell_success_rate={c: float(success_sum[i] / counts[i]) for i, c in enumerate(cells)},
        person_counts={str(person_ids[i]): int(k) for i, k in enumerate(person_counts)},
        person_effects={str(person_ids[i]): float(e) for i, e in enumerate(effect)},
        cluster_ids=[str(r) for r in cluster_rows.tolist()],
        tag_counts={t: len(r) for t, r in tag_rows.items()},
        tag_success_rate={t: float((ratings[r] >= 3).mean()) for t, r in tag_rows.items()},
        kappa=kappa, kappa_binary=kappa_binary, reviews=reviews,
    )


def _truth_json(truth: PlantedTruth, effects: PlantedEffects) -> dict[str, object]:
    def by_cell(values: dict[tuple[str, str], float | int]) -> list[dict[str, object]]:
        return [{"size": s, "model_type": m, "value": v} for (s, m), v in values.items()]

    planted = {k: (by_cell(v) if isinstance(v, dict) else v) for k, v in asdict(effects).items()}
    return {
        "file": truth.path.name, "reviews": truth.reviews_path.name, "n_rows": truth.n_rows, "planted": planted,
        "cell_counts": by_cell(truth.cell_counts), "cell_mean_harmlessness": by_cell(truth.cell_mean_harmlessness),
        "cell_mean_rating": by_cell(truth.cell_mean_rating), "cell_success_rate": by_cell(truth.cell_success_rate),
        "person_counts": truth.person_counts, "person_effects": truth.person_effects,
        "cluster_ids": truth.cluster_ids, "tag_counts": truth.tag_counts, "tag_success_rate": truth.tag_success_rate,
        "kappa": truth.kappa, "kappa_binary": truth.kappa_binary,
    }


# -- reading a planted file back ----------------------------------------------------------------------------------
# The released format has no reviews: the planted reviews live beside the file and only these tests read them.

REVIEWS_SUFFIX = ".reviews.json"


def reviews_path(path: Path) -> Path:
    return path.with_name(path.name.split(".")[0] + REVIEWS_SUFFIX)


def read_planted(path: Path) -> RedTeamData:
    """The released file through the product's reader, with the planted reviews attached."""
    data = read_source(str(path))
    reviews = reviews_frame(json.loads(reviews_path(path).read_text("utf-8")))
    return replace(data, reviews=reviews, notes=[*data.notes, f"reviews from {reviews_path(path).name} (planted)"])
