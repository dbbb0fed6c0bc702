"""Scorers (refusal now; the harmlessness preference model next) and transcript aggregation."""

from sparring.scoring.base import Score, Scorer, scorers
from sparring.scoring import refusal  # noqa: E402,F401  (registers the scorer)

__all__ = ["Score", "Scorer", "scorers"]
