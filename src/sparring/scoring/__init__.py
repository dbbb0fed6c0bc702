"""Scorers (the harm judge, refusal phrases, LLM judges, guard models, composites) and transcript aggregation."""

from sparring.scoring import composite, guard, harmlessness, llm_judge, refusal  # noqa: F401  (register the scorers)
from sparring.scoring.base import Score, Scorer, scorers

__all__ = ["Score", "Scorer", "scorers"]
