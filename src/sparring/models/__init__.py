"""Chat backends behind one small async protocol (``Model.sample``)."""

from sparring.models.base import Completion, Message, Model, Prompt, SamplingParams, models

# Importing a backend module registers it; heavy dependencies inside are imported lazily.
from sparring.models import llamacpp, openai_compatible, scripted  # noqa: E402,F401

__all__ = ["Completion", "Message", "Model", "Prompt", "SamplingParams", "models"]
