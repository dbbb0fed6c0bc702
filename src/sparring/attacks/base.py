"""Attacks: who speaks the human side of a conversation in an automated run (dataset replay; people use the web app)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from sparring.attacks.probe import Probe
from sparring.conversation import Conversation
from sparring.registry import ComponentSpec, Registry


@dataclass(frozen=True)
class HumanTurn:
    """A human turn an attacker generated, with what it cost: its model calls and completion tokens.

    Target replies a searching attacker probed and dropped are added by the engine, which saw them.
    """

    text: str
    queries: int
    tokens: int


@dataclass(frozen=True)
class AttackItem:
    """One planned attack: a stable id (part of the work-unit key), a goal, and scripted human turns if any."""

    id: str
    task_description: str
    human_turns: tuple[str, ...] = ()


class Attack(ABC):
    """Plans attack items and speaks the human side. Only ``items`` is required; the default speaker replays."""

    description: ClassVar[str] = ""
    written_by: ClassVar[str] = "dataset"  # "people" (replayed red-team dialogues), "model" (an attacker), "dataset"
    spec: ComponentSpec

    @property
    def history_size(self) -> int:
        """More than 0: the attack learns from this many past successes, given once per run (``use_history``)."""
        return 0

    def use_judge(self, scorer: str, flag_is_harmful: bool) -> None:
        """The run's measuring scorer: an attacker that may see its verdicts reads them from the samples."""
        return None

    def use_history(self, openings: list[str]) -> None:
        """The past successes this run learns from (a snapshot taken when the run was created)."""
        return None

    @abstractmethod
    def items(self) -> list[AttackItem]:
        """The attack items, in a stable order with stable ids."""

    async def next_human_turn(self, item: AttackItem, conversation: Conversation,
                              probe: Probe | None = None) -> str | HumanTurn | None:
        """The next human utterance (with its cost if a model wrote it), or None when there is nothing more to say.

        A generated turn must depend only on the item, the conversation so far and the attack's own
        seed, so a resumed run asks the same questions. ``probe`` (given by the engine) tries a candidate
        turn on the target without storing it, for attackers that search before they speak.
        """
        index = len(conversation.human_turns)
        return item.human_turns[index] if index < len(item.human_turns) else None

    async def aclose(self) -> None:
        """Release the attacker's model, if it has one."""
        return None


attacks: Registry[Attack] = Registry("attack")
