"""Scorers (refusal now; the harmlessness preference model next) and transcript aggregation."""

from sparring.scoring.base import Score, Scorer, scorers
from sparring.scoring import composite, guard, harmlessness, llm_judge, refusal  # noqa: E402,F401  (register the scorers)

__all__ = ["Score", "Scorer", "scorers"]
