"""Chat backends behind one small async protocol (``Model.sample``)."""

# Importing a backend module registers it; heavy dependencies inside are imported lazily.
from sparring.models import llamacpp, openai_compatible, scripted  # noqa: F401
from sparring.models.base import Completion, Message, Model, Prompt, SamplingParams, models

__all__ = ["Completion", "Message", "Model", "Prompt", "SamplingParams", "models"]
