"""Wrappers that turn a model into a red-team target."""

from sparring.interventions.base import Intervention, Target, interventions
from sparring.interventions import prompting, rejection_sampling  # noqa: E402,F401  (register)

__all__ = ["Intervention", "Target", "interventions"]
