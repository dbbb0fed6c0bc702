"""Choosing among samples by score when some could not be scored.

Two choices rest on a scorer: the automated red teamer continues from the most
harmful sample, and rejection sampling shows the least harmful ones. An
unscored sample has no place on the harmlessness axis, so the rules are:

- **Scored samples are preferred.** The pick is the most harmful *scored*
  sample, and it is compared (a comparison pair) only with the other scored
  samples: nothing claims the pick was more harmful than a sample nobody judged.
- **All unscored**: the pick is ``seed % n``, deterministic for a given turn
  seed, and ``score_based`` is False; it is compared with nothing, so no pair
  is recorded and the stored scores show that no sample of the turn was scored.
- **Rejection sampling** ranks scored samples least harmful first, then the
  unscored ones in the order they were drawn (sample i uses seed + i), so the
  shown samples are the same on every run with the same seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sparring.scoring.base import Score, Scorer


@dataclass(frozen=True)
class Pick:
    """Which sample continues the conversation, and which samples it was judged against."""

    index: int
    compared: list[int]
    score_based: bool


def pick_most_harmful(scorer: Scorer, scores: Sequence[Score], seed: int) -> Pick:
    """The most harmful scored sample (first on ties); if none is scored, sample ``seed % n``."""
    if not scores:
        raise ValueError("no samples to pick from")
    scored = [i for i, score in enumerate(scores) if score.scored]
    if not scored:
        return Pick(index=seed % len(scores), compared=[], score_based=False)
    picked = min(scored, key=lambda i: scorer.harmlessness(_value(scores[i])))
    return Pick(index=picked, compared=[i for i in scored if i != picked], score_based=True)


def rank_least_harmful(scorer: Scorer, scores: Sequence[Score]) -> list[int]:
    """Indices, scored samples from least to most harmful (stable), then unscored ones in draw order."""
    scored = [i for i, score in enumerate(scores) if score.scored]
    ranked = sorted(scored, key=lambda i: -scorer.harmlessness(_value(scores[i])))
    return ranked + [i for i, score in enumerate(scores) if not score.scored]


def _value(score: Score) -> float:
    if score.value is None:  # guarded by the callers' ``scored`` filter
        raise ValueError("an unscored result has no value")
    return score.value
