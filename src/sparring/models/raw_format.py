"""Render a prompt in the paper's raw Human/Assistant text format, for base (non-chat) models."""

from __future__ import annotations

from sparring.conversation import ASSISTANT_PREFIX, HUMAN_PREFIX, HUMAN_STOP
from sparring.models.base import Prompt

_PREFIX = {"user": HUMAN_PREFIX, "assistant": ASSISTANT_PREFIX}


def render_raw(prompt: Prompt) -> str:
    """Preamble, then the dialogue, then an open ``Assistant:`` turn for the model to complete."""
    parts = [prompt.preamble]
    for message in prompt.messages:
        if message.role == "system":
            parts.append(message.content)
        else:
            parts.append(_PREFIX[message.role] + message.content)
    parts.append(ASSISTANT_PREFIX.rstrip(" "))
    return "".join(parts)


def raw_stops(stop: tuple[str, ...]) -> tuple[str, ...]:
    """A raw-mode generation ends where the model starts writing the next human turn."""
    return stop if HUMAN_STOP in stop else (*stop, HUMAN_STOP)
