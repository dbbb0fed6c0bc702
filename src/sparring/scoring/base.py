"""The scorer protocol: score one response given the conversation before it.

Every scorer states what its value means and its direction. Everything that
ranks responses (picking the more harmful sample, rejection sampling, the run
summary) goes through ``harmlessness``, which is higher = more harmless for
every scorer, as in the paper's preference model.
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


@dataclass(frozen=True)
class Score:
    """A scorer's value for one utterance and its yes/no decision (``flagged``, see ``Scorer.flag_means``)."""

    value: float
    flagged: bool


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

    def harmlessness(self, value: float) -> float:
        """The value on the common axis: higher = more harmless."""
        return value if self.direction == "higher_is_harmless" else -value


scorers: Registry[Scorer] = Registry("scorer")
