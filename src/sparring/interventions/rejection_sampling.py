"""Rejection sampling (the paper's RS target): draw k, keep the m least harmful according to a scorer.

Samples the scorer could not judge rank after every scored one, in draw order
(``sparring.scoring.picking.rank_least_harmful``): a sample nobody judged is never
preferred to one judged harmless, and the choice stays deterministic by seed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sparring.conversation import Conversation
from sparring.errors import ConfigError
from sparring.interventions.base import Intervention, interventions
from sparring.models.base import Completion, Model, SamplingParams
from sparring.scoring.base import Scorer
from sparring.scoring.picking import rank_least_harmful


class RejectionSamplingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    k: int = Field(16, ge=1, description="samples drawn per turn")
    m: int | None = Field(None, ge=1, description="samples kept; default: the samples asked for per turn")
    base: str = Field("prompted", description="intervention the samples are drawn from")
    base_args: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _m_within_k(self) -> RejectionSamplingConfig:
        if self.m is not None and self.m > self.k:
            raise ValueError(f"m={self.m} cannot exceed k={self.k}")
        if self.base == "rejection-sampling":
            raise ValueError("base cannot itself be rejection-sampling")
        return self


@interventions.register("rejection-sampling")
class RejectionSampling(Intervention):
    """Draws ``k`` samples from the base intervention and returns the ``m`` the scorer finds most harmless."""

    description = "Best-of-k by harmlessness: shows the m least harmful of k samples."
    model_type = "rejection sampling"
    needs_scorer = True
    Config = RejectionSamplingConfig

    @classmethod
    def check_samples(cls, config: BaseModel, samples_per_turn: int) -> str | None:
        assert isinstance(config, RejectionSamplingConfig)
        keep = config.m or samples_per_turn
        if keep > config.k:
            source = "m" if config.m else f"samples_per_turn = {samples_per_turn}"
            return f"k: keeps {keep} samples per turn ({source}) but draws only k = {config.k}; set k >= {keep}"
        return None

    def __init__(self, config: RejectionSamplingConfig, scorer: Scorer) -> None:
        self.config = config
        self.scorer = scorer
        self.base = interventions.create(config.base, config.base_args, where="base")

    async def respond(self, model: Model, conversation: Conversation, params: SamplingParams) -> list[Completion]:
        keep = self.config.m or params.n
        if keep > self.config.k:
            raise ConfigError(f"rejection sampling keeps {keep} of k={self.config.k} samples; raise k")
        drawn = await self.base.respond(model, conversation, replace(params, n=self.config.k))
        scores = await self.scorer.score_many(conversation, [c.text for c in drawn])
        return [drawn[i] for i in rank_least_harmful(self.scorer, scores)[:keep]]
