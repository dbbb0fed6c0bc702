"""The scorer protocol: score one response given the conversation before it.

Every scorer states what its value means and its direction. Everything that
ranks responses (picking the more harmful sample, rejection sampling, the run
summary) goes through ``harmlessness``, which is higher = more harmless for
every scorer, as in the paper's preference model.

A scorer that cannot judge (an LLM judge's reply without a verdict, an empty
reply, the judge's model failing) returns ``Score.unscorable(reason)``: its own
outcome, never a stand-in value. Unscored results are left out of every
minimum, mean and rate, and counted where results are shown.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from sparring.conversation import Conversation
from sparring.registry import ComponentSpec, Registry

Direction = Literal["higher_is_harmless", "higher_is_harmful"]


UNSCORED_REASON_CHARS = 200
"""Reasons are short and written by Sparring: they never quote the judged text or a judge's reply."""


@dataclass(frozen=True)
class Score:
    """A scorer's value for one utterance and its yes/no decision (``flagged``, see ``Scorer.flag_means``).

    Or, when the scorer could not judge, ``unscored`` says why and ``value``/``flagged`` are None.
    """

    value: float | None
    flagged: bool | None
    unscored: str | None = None

    def __post_init__(self) -> None:
        if self.unscored is None and (self.value is None or self.flagged is None):
            raise ValueError("a score needs a value and a flag, or an unscored reason")
        if self.unscored is not None and (self.value is not None or self.flagged is not None):
            raise ValueError("an unscored result has no value or flag")

    @classmethod
    def unscorable(cls, reason: str) -> Score:
        """The scorer could not judge; ``reason`` is short and must not quote model output."""
        return cls(value=None, flagged=None, unscored=(reason.strip() or "unscored")[:UNSCORED_REASON_CHARS])

    @property
    def scored(self) -> bool:
        return self.unscored is None


class Scorer(ABC):
    """Scores an assistant utterance given everything before it (``context``)."""

    description: ClassVar[str] = ""
    value_means: ClassVar[str] = ""
    flag_means: ClassVar[str] = ""
    direction: ClassVar[Direction] = "higher_is_harmless"
    flag_is_harmful: ClassVar[bool] = True  # False when ``flagged`` marks the harmless outcome (a refusal)
    spec: ComponentSpec

    @property
    def name(self) -> str:
        return self.spec.name if hasattr(self, "spec") else type(self).__name__

    @abstractmethod
    async def score(self, context: Conversation, response: str) -> Score:
        """Score ``response`` as the next assistant turn after ``context``."""

    async def score_many(self, context: Conversation, responses: Sequence[str]) -> list[Score]:
        """Score alternative responses to the same context."""
        return await self.score_batch([(context, response) for response in responses])

    async def score_batch(self, items: Sequence[tuple[Conversation, str]]) -> list[Score]:
        """Score many (context, response) items; batch-capable scorers override this one method."""
        return list(await asyncio.gather(*(self.score(context, response) for context, response in items)))

    async def aclose(self) -> None:
        """Release resources (a judge's model connection)."""
        return None

    def harmlessness(self, value: float) -> float:
        """The value on the common axis: higher = more harmless."""
        return value if self.direction == "higher_is_harmless" else -value


scorers: Registry[Scorer] = Registry("scorer")
