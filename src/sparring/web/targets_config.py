"""A campaign's targets, written as TOML in the experiment format ([[models]], [[targets]], [scorer], [sampling]).

Validated with the experiment config's entry types and the component registries,
so an error names the key path (``targets[1].model: ...``) exactly as ``sparring run`` would.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sparring.experiments.build import LiveComponents, build_target_set
from sparring.experiments.config import (
    ModelEntry,
    SamplingConfig,
    ScorerEntry,
    TargetEntry,
    check_components,
    parse_toml_as,
)
from sparring.interventions import Target
from sparring.models import Model
from sparring.scoring import Scorer

DEFAULT_TARGETS_TOML = """\
# Targets red teamers are assigned to at random (blind). Same format as an experiment config.
[sampling]
temperature = 0.8
max_tokens = 96

[scorer]  # scores every response; the transcript minimum is exported as min_harmlessness_score_transcript
name = "pm"

[[models]]
name = "smollm2-135m"
backend = "llamacpp"
size = "135M"

[[targets]]
model = "smollm2-135m"
intervention = "plain"

[[targets]]
model = "smollm2-135m"
intervention = "prompted"

[[targets]]
model = "smollm2-135m"
intervention = "rejection-sampling"
k = 8
"""


class CampaignTargetsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    scorer: ScorerEntry = Field(default_factory=ScorerEntry)
    models: list[ModelEntry] = Field(min_length=1)
    targets: list[TargetEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> CampaignTargetsConfig:
        names = [m.name for m in self.models]
        for index, target in enumerate(self.targets):
            if target.model not in names:
                raise ValueError(f"targets[{index}].model: no model named {target.model!r}; models are: {', '.join(names)}")
        for kind, labels in (("models", names), ("targets", [t.label for t in self.targets])):
            duplicates = sorted({x for x in labels if labels.count(x) > 1})
            if duplicates:
                raise ValueError(f"{kind}: duplicate name {duplicates[0]!r}; give each entry a distinct name")
        return self


def parse_targets(text: str, source: str = "targets", responses_per_turn: int = 2) -> CampaignTargetsConfig:
    """Parse and validate; raises ConfigError naming the source and the key path."""
    config = parse_toml_as(text, CampaignTargetsConfig, source)
    check_components(config.models, config.targets, config.scorer, source, responses_per_turn)
    return config


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class CampaignComponents(LiveComponents):
    """Live targets and scorers of one campaign; models load their weights on first use."""

    models: dict[str, Model]
    targets: dict[str, Target]
    scorer: Scorer
    extra_scorers: list[Scorer]
    sampling: SamplingConfig

    def describe(self) -> dict[str, Any]:
        """The run's ``components``: what produced the results (export reads ``primary_scorer``)."""
        return {
            "targets": [t.describe() for t in self.targets.values()],
            "attacks": {"person": {"kind": "attack", "name": "person", "args": {}}},
            "scorers": [s.spec.as_dict() for s in self.all_scorers],
            "primary_scorer": self.scorer.spec.name,
        }


def build_targets(config: CampaignTargetsConfig) -> CampaignComponents:
    """Like the experiment's ``build_components``, without attacks: people speak the human side."""
    built = build_target_set(config.models, config.targets, config.scorer)
    return CampaignComponents(built.models, {t.name: t for t in built.targets}, built.scorer, built.extra_scorers,
                              config.sampling)
