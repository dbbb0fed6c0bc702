"""Attacks: who speaks the human side of a conversation in an automated run (dataset replay; people use the web app)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from sparring.conversation import Conversation
from sparring.registry import ComponentSpec, Registry


@dataclass(frozen=True)
class AttackItem:
    """One planned attack: a stable id (part of the work-unit key), a goal, and scripted human turns if any."""

    id: str
    task_description: str
    human_turns: tuple[str, ...] = ()


class Attack(ABC):
    """Plans attack items and speaks the human side. Only ``items`` is required; the default speaker replays."""

    description: ClassVar[str] = ""
    spec: ComponentSpec

    @abstractmethod
    def items(self) -> list[AttackItem]:
        """The attack items, in a stable order with stable ids."""

    async def next_human_turn(self, item: AttackItem, conversation: Conversation) -> str | None:
        """The next human utterance, or None when this attack has nothing more to say."""
        index = len(conversation.human_turns)
        return item.human_turns[index] if index < len(item.human_turns) else None


attacks: Registry[Attack] = Registry("attack")
