"""A deterministic test double, registered like the real backends, so tests run the real pipeline."""

from __future__ import annotations

import asyncio
import hashlib

from pydantic import BaseModel, ConfigDict, Field

from sparring.errors import ModelError
from sparring.models.base import Completion, Model, Prompt, SamplingParams, models


class ScriptedConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    responses: list[str] = Field(
        default_factory=lambda: ["I can't help with that.", "Sure, here is how you do it."],
        min_length=1,
    )
    delay_s: float = Field(0.0, ge=0)
    fail_every: int | None = Field(None, ge=1, description="every k-th call raises ModelError")
    fail_if_contains: str | None = Field(None, description="calls whose prompt contains this text fail")


@models.register("scripted")
class ScriptedModel(Model):
    """Picks a scripted response from a hash of (prompt, seed): same inputs, same output."""

    description = "Deterministic scripted responses for tests; no model runs."
    Config = ScriptedConfig

    def __init__(self, config: ScriptedConfig) -> None:
        self.config = config
        self.calls = 0
        self.prompts: list[Prompt] = []

    async def sample(self, prompt: Prompt, params: SamplingParams) -> list[Completion]:
        self.calls += 1
        self.prompts.append(prompt)
        if self.config.delay_s:
            await asyncio.sleep(self.config.delay_s)
        if self.config.fail_every and self.calls % self.config.fail_every == 0:
            raise ModelError(f"scripted failure on call {self.calls}")
        last = prompt.messages[-1].content if prompt.messages else ""
        if self.config.fail_if_contains and self.config.fail_if_contains in last:
            raise ModelError("scripted failure: prompt contains the trigger text")
        key = "\x00".join(m.content for m in prompt.messages)
        out = []
        for i in range(params.n):
            digest = hashlib.blake2b(f"{key}\x01{params.seed + i}".encode(), digest_size=8).digest()
            text = self.config.responses[int.from_bytes(digest, "big") % len(self.config.responses)]
            out.append(Completion(text=text, finish_reason="stop", completion_tokens=len(text.split())))
        return out
