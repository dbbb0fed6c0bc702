"""Prompt-only interventions: plain LM (1-shot), prompted LM (HHH few-shot), system prompt, bare model."""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.resources import files
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sparring.conversation import ASSISTANT_PREFIX, HUMAN_PREFIX
from sparring.interventions.base import PromptIntervention, interventions

DIALOGUE_SEPARATOR = "\n\n-----"


@cache
def hhh_prompt_data() -> dict[str, Any]:
    """The project's own helpful-honest-harmless dialogues (``hhh_dialogues.toml``)."""
    return tomllib.loads(files("sparring.interventions").joinpath("hhh_dialogues.toml").read_text("utf-8"))


def render_dialogue(turns: list[list[str]]) -> str:
    return "".join(HUMAN_PREFIX + human + ASSISTANT_PREFIX + assistant for human, assistant in turns)


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


@interventions.register("none")
class Bare(PromptIntervention):
    """The model exactly as served: e.g. a user's RLHF-tuned checkpoint behind an endpoint."""

    description = "No prompt added; the model as it is."
    model_type = "model"
    Config = NoArguments

    def __init__(self, config: NoArguments) -> None:
        self.config = config

    def preamble(self) -> str:
        return ""


@interventions.register("plain")
class Plain(PromptIntervention):
    """The paper's plain LM: one 3-turn Human/Assistant dialogue as a 1-shot prompt."""

    description = "1-shot prompt with one 3-turn Human/Assistant dialogue."
    model_type = "plain lm"
    Config = NoArguments

    def __init__(self, config: NoArguments) -> None:
        self.config = config
        self._text = render_dialogue(hhh_prompt_data()["one_shot"]).lstrip("\n") + DIALOGUE_SEPARATOR

    def preamble(self) -> str:
        return self._text


class PromptedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dialogues: int = Field(14, ge=1, le=len(hhh_prompt_data()["dialogues"]))


@interventions.register("prompted")
class Prompted(PromptIntervention):
    """The paper's prompted LM: a helpful-honest-harmless few-shot dialogue prompt (14 dialogues by default)."""

    description = "Helpful-honest-harmless few-shot dialogue prompt."
    model_type = "context distillation"  # the label the released data uses for the prompted LM
    Config = PromptedConfig

    def __init__(self, config: PromptedConfig) -> None:
        self.config = config
        data = hhh_prompt_data()
        dialogues = [render_dialogue(d["turns"]) for d in data["dialogues"][: config.dialogues]]
        self._text: str = data["intro"] + DIALOGUE_SEPARATOR + DIALOGUE_SEPARATOR.join(dialogues) + DIALOGUE_SEPARATOR

    def preamble(self) -> str:
        return self._text


class SystemConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(default_factory=lambda: hhh_prompt_data()["intro"], min_length=1)


@interventions.register("system")
class SystemPrompt(PromptIntervention):
    """A system prompt for chat models (defaults to the HHH intro)."""

    description = "A system prompt for chat models."
    model_type = "system prompt"
    Config = SystemConfig

    def __init__(self, config: SystemConfig) -> None:
        self.config = config

    def preamble(self) -> str:
        return self.config.text
