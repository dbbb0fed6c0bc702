"""Wrappers that turn a model into a red-team target."""

from sparring.interventions import prompting, rejection_sampling  # noqa: F401  (register)
from sparring.interventions.base import Intervention, Target, interventions

__all__ = ["Intervention", "Target", "interventions"]
