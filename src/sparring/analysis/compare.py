"""Two sources side by side (manual vs automated, two campaigns): success, harmlessness, tags, diversity."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import pandas as pd

from sparring.analysis.bootstrap import interval, resampled_means
from sparring.analysis.cells import success
from sparring.analysis.dataset import RedTeamData
from sparring.analysis.diversity import DISPERSION_SAMPLE, dispersion
from sparring.analysis.embedding_map import human_side, human_turns

METRICS = (("mean_rating", "rating"), ("success_rate", "success"), ("mean_min_harmlessness", "harm"))
DIVERSITY_SAMPLE = 1000  # attempts per source for distinct-2, the same number for both
_WORD = re.compile(r"\w+")


@dataclass
class Comparison:
    sources: pd.DataFrame  # name, n, <metric>, <metric>_lo, <metric>_hi for each metric
    differences: pd.DataFrame  # metric, a, b, difference (b - a), lo, hi
    tag_mix: pd.DataFrame  # tag, share_a, share_b (shares of each source's tagged attempts)
    diversity: pd.DataFrame  # name, sample_size, distinct_2, dispersion, mean_human_turns
    notes: list[str] = field(default_factory=list)


def _metric_values(attempts: pd.DataFrame) -> dict[str, np.ndarray]:
    values = {"rating": attempts["rating"].to_numpy(float), "success": success(attempts["rating"]),
              "harm": attempts["min_harmlessness"].to_numpy(float)}
    return {k: v[~np.isnan(v)] for k, v in values.items()}


def compare_sources(a: RedTeamData, b: RedTeamData, n_boot: int = 2000, seed: int = 0) -> Comparison:
    """Differences are b - a, with CIs from independent bootstrap resamples of each source."""
    rng = np.random.default_rng(seed)
    values = [_metric_values(a.attempts), _metric_values(b.attempts)]
    source_rows: list[dict[str, str | int | float]] = [{"name": d.name, "n": len(d.attempts)} for d in (a, b)]
    differences = []
    for metric, key in METRICS:
        draws: list[np.ndarray | None] = []
        for row, data in zip(source_rows, values, strict=False):
            sample = data[key]
            if sample.size == 0:
                row.update({metric: np.nan, f"{metric}_lo": np.nan, f"{metric}_hi": np.nan})
                draws.append(None)
                continue
            means = resampled_means(sample, n_boot, rng)
            low, high = interval(means)
            row.update({metric: float(sample.mean()), f"{metric}_lo": low, f"{metric}_hi": high})
            draws.append(means)
        mean_a, mean_b = source_rows[0][metric], source_rows[1][metric]
        if draws[0] is None or draws[1] is None:
            low = high = np.nan
        else:
            low, high = interval(draws[1] - draws[0])
        differences.append({"metric": metric, "a": mean_a, "b": mean_b,
                            "difference": float(mean_b) - float(mean_a), "lo": low, "hi": high})
    notes = [f"differences are {b.name} minus {a.name}; 95% percentile bootstrap CIs"]
    warning = scorer_mismatch(a, b)
    if warning:
        notes.append(warning)
    sample_size = min(len(a.attempts), len(b.attempts), DIVERSITY_SAMPLE)
    diversity = pd.DataFrame([_diversity(d, sample_size, np.random.default_rng(seed + i)) for i, d in enumerate((a, b))])
    notes.append(f"distinct-2 over the human turns of {sample_size} random attempts per source "
                 "(unique word bigrams / all bigrams, lower-cased); dispersion: mean pairwise cosine distance of "
                 f"the MiniLM embeddings of the human side of the first {min(sample_size, DISPERSION_SAMPLE)} of them")
    return Comparison(pd.DataFrame(source_rows), pd.DataFrame(differences), _tag_mix(a, b), diversity, notes)


def scorer_mismatch(a: RedTeamData, b: RedTeamData) -> str | None:
    """A warning when the two sources' min harmlessness do not come from the same, known scorer."""
    if a.scorer and b.scorer and a.scorer != b.scorer:
        return (f"WARNING: min harmlessness comes from different scorers ({a.name}: {a.scorer}, {b.name}: "
                f"{b.scorer}); its difference compares two scales, not two sources")
    if not (a.scorer and b.scorer):
        unknown = ", ".join(d.name for d in (a, b) if not d.scorer)
        return f"min harmlessness: the scorer behind {unknown} is not recorded; compare its difference with care"
    return None


def _tag_mix(a: RedTeamData, b: RedTeamData) -> pd.DataFrame:
    shares = []
    for data in (a, b):
        tagged = data.attempts["tags"].dropna()
        exploded = tagged.map(lambda t: list(dict.fromkeys(t))).explode().dropna()
        shares.append(exploded.value_counts() / len(tagged) if len(tagged) else pd.Series(dtype=float))
    mix = pd.concat(shares, axis=1, keys=["share_a", "share_b"]).fillna(0.0)
    mix.index.name = "tag"
    mix = mix.reset_index()
    if mix.empty:
        return pd.DataFrame(columns=["tag", "share_a", "share_b"])
    order = (mix["share_a"] + mix["share_b"]).sort_values(ascending=False, kind="stable").index
    return mix.loc[order].reset_index(drop=True)


def distinct_2(texts: list[str]) -> float:
    """Unique word bigrams / all word bigrams; bigrams never cross a turn boundary."""
    bigrams: list[tuple[str, str]] = []
    for text in texts:
        words = _WORD.findall(text.lower())
        bigrams += pairwise(words)
    return len(set(bigrams)) / len(bigrams) if bigrams else float("nan")


def _diversity(data: RedTeamData, sample_size: int, rng: np.random.Generator) -> dict[str, object]:
    transcripts = data.attempts["transcript"]
    picks = rng.choice(len(transcripts), size=sample_size, replace=False) if sample_size else np.array([], int)
    turns = [turn for t in transcripts.iloc[picks] for turn in human_turns(t)]
    counts = transcripts.str.count("\n\nHuman:")
    spread = dispersion([human_side(t) for t in transcripts.iloc[picks[:DISPERSION_SAMPLE]]])
    return {"name": data.name, "sample_size": sample_size, "distinct_2": distinct_2(turns), "dispersion": spread,
            "mean_human_turns": float(counts.mean()) if len(counts) else float("nan")}
