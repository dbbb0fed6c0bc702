"""The model protocol: sample N responses to a prompt. One required method, defaults for the rest."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

from sparring.registry import ComponentSpec, Registry

Role = Literal["system", "user", "assistant"]
Mode = Literal["chat", "raw"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Prompt:
    """What a target sends to a model.

    ``preamble`` is text placed before the dialogue (a few-shot prompt, a system
    prompt); ``messages`` is the dialogue so far, ending with a user message.
    Chat backends send the preamble as the system message; raw backends render
    everything in the Human/Assistant text format (see ``sparring.models.raw_format``).
    """

    messages: tuple[Message, ...]
    preamble: str = ""


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    seed: int = 0
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 64
    stop: tuple[str, ...] = ()

    def with_seed(self, seed: int) -> SamplingParams:
        return replace(self, seed=seed)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Model(ABC):
    """A chat or completion backend. Sample ``params.n`` responses; sample i uses seed ``params.seed + i``."""

    description: ClassVar[str] = ""
    spec: ComponentSpec

    @abstractmethod
    async def sample(self, prompt: Prompt, params: SamplingParams) -> list[Completion]:
        """Return exactly ``params.n`` completions, or raise ``ModelError``."""

    async def aclose(self) -> None:
        """Release resources (connections, loaded weights)."""
        return None


models: Registry[Model] = Registry("model backend")
