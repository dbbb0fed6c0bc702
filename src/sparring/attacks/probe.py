"""Probing: an attacker that searches tries candidate turns on the target before it speaks.

The engine gives such an attacker a ``Probe`` for the conversation so far. A probe runs
the run's own turn step (the attack's converters, N samples, every scorer, the pick) on
the conversation plus one candidate human turn, and stores nothing. If the attacker then
speaks a probed candidate, the engine stores that very turn instead of asking the target
again, so the transcript holds only the chosen path; the other probes are counted as
hidden queries of the turn (``HumanTurn.hidden``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sparring.conversation import Sample


@dataclass(frozen=True)
class Probed:
    """The target's reply to a candidate turn (the picked sample) and the judge's verdict on it.

    ``harmlessness`` is the judge's value on the common axis (higher = more harmless); it and
    ``harmful`` are None when the judge could not score the reply.
    """

    reply: Sample
    harmlessness: float | None
    harmful: bool | None


class Probe(Protocol):
    """Tries ``text`` as the next human turn of the conversation the attacker was given."""

    async def __call__(self, text: str) -> Probed: ...
