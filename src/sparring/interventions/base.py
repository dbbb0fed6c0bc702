"""Interventions turn a model into a red-team target (the paper's plain LM, prompted LM, rejection sampling, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel

from sparring.conversation import Conversation, Role
from sparring.models.base import Completion, Message, Model, Prompt, SamplingParams
from sparring.registry import ComponentSpec, Registry

PAPER_MODEL_TYPES = ("plain lm", "context distillation", "rejection sampling", "rlhf")
"""The released red-team data's ``model_type`` values (Ganguli et al. 2022)."""
MODEL_TYPES = (*PAPER_MODEL_TYPES, "dpo", "system prompt", "model")
"""What a target may be labelled: the paper's four, a preference-tuned model (``sparring improve``), a
system-prompted chat model, a model as served."""


def conversation_messages(conversation: Conversation) -> tuple[Message, ...]:
    """The picked path as chat messages: human -> user, assistant -> assistant."""
    return tuple(
        Message("user" if turn.role is Role.HUMAN else "assistant", turn.text) for turn in conversation.turns
    )


class Intervention(ABC):
    """Wraps a model: decides what it is prompted with and which samples come back."""

    description: ClassVar[str] = ""
    model_type: ClassVar[str] = ""  # the label in the released red-team format
    needs_scorer: ClassVar[bool] = False  # built with the run's scorer (``scorer=`` in the constructor)
    spec: ComponentSpec

    @classmethod
    def check_samples(cls, config: BaseModel, samples_per_turn: int) -> str | None:
        """A problem with this intervention at ``samples_per_turn`` (``"key: what is wrong"``), checked at load."""
        return None

    @abstractmethod
    async def respond(self, model: Model, conversation: Conversation, params: SamplingParams) -> list[Completion]:
        """Return ``params.n`` candidate next assistant turns."""


class PromptIntervention(Intervention):
    """An intervention that only adds text before the dialogue."""

    @abstractmethod
    def preamble(self) -> str: ...

    async def respond(self, model: Model, conversation: Conversation, params: SamplingParams) -> list[Completion]:
        prompt = Prompt(messages=conversation_messages(conversation), preamble=self.preamble())
        return await model.sample(prompt, params)


@dataclass
class Target:
    """What a red teamer talks to: a model behind an intervention, with a size label for grouping."""

    name: str
    size: str
    model_name: str
    model: Model
    intervention: Intervention
    model_type_label: str | None = None  # the config's ``model_type``, e.g. "rlhf" for a tuned model behind "none"
    seeds_from: str | None = None  # draw the seeds of the target of this name (paired before/after comparisons)

    @property
    def model_type(self) -> str:
        return self.model_type_label or self.intervention.model_type

    async def respond(self, conversation: Conversation, params: SamplingParams) -> list[Completion]:
        return await self.intervention.respond(self.model, conversation, params)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "size": self.size,
            "model": self.model.spec.as_dict(),
            "intervention": self.intervention.spec.as_dict(),
        }


interventions: Registry[Intervention] = Registry("intervention")
