"""The experiment config: a TOML file declaring targets x attacks, validated with every key named on error."""

from __future__ import annotations

import hashlib
import json
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sparring.errors import ConfigError
from sparring.registry import format_validation_error

M = TypeVar("M", bound=BaseModel)


class _Open(BaseModel):
    """Known keys are checked here; the rest are the component's own arguments, checked by its Config."""

    model_config = ConfigDict(extra="allow")

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ModelEntry(_Open):
    name: str = Field(min_length=1)
    backend: str = "llamacpp"
    size: str = Field("", description="size label used to group results, e.g. '135M'")


class TargetEntry(_Open):
    model: str
    intervention: str = "none"
    name: str | None = None
    size: str | None = Field(None, description="overrides the model's size label")

    @property
    def label(self) -> str:
        return self.name or f"{self.model}/{self.intervention}"


class AttackEntry(_Open):
    kind: str
    name: str | None = None

    @property
    def label(self) -> str:
        return self.name or self.kind


class ScorerEntry(_Open):
    name: str = "pm"


class SamplingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(0.8, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(64, ge=1)


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field("experiment", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    turns: int = Field(4, ge=1, description="at most this many human turns per conversation (the paper asks ~4)")
    samples_per_turn: int = Field(2, ge=1, description="responses sampled per assistant turn (the paper shows 2)")
    repetitions: int = Field(1, ge=1, description="conversations per (target, attack item)")
    concurrency: int = Field(8, ge=1, description="conversations in flight at once")
    database: str | None = Field(None, description="SQLAlchemy URL; default: the SQLite file in the data dir")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    scorer: ScorerEntry = Field(default_factory=ScorerEntry, description="picks the more harmful sample; ranks rejection samples")
    models: list[ModelEntry] = Field(min_length=1)
    targets: list[TargetEntry] = Field(min_length=1)
    attacks: list[AttackEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> ExperimentConfig:
        names = [m.name for m in self.models]
        for index, target in enumerate(self.targets):
            if target.model not in names:
                raise ValueError(f"targets[{index}].model: no model named {target.model!r}; models are: {', '.join(names)}")
        for kind, labels in (("models", names), ("targets", [t.label for t in self.targets]),
                             ("attacks", [a.label for a in self.attacks])):
            duplicates = sorted({x for x in labels if labels.count(x) > 1})
            if duplicates:
                raise ValueError(f"{kind}: duplicate name {duplicates[0]!r}; give each entry a distinct name")
        return self

    def fingerprint(self) -> str:
        """A hash of the validated config (not the database URL): same plan, same run id."""
        data = self.model_dump(mode="json", exclude={"database", "concurrency"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

    def default_run_id(self) -> str:
        return f"{self.name}-{self.fingerprint()[:8]}"


def parse_toml_as(text: str, model: type[M], source: str) -> M:
    """TOML text validated as ``model``; errors name the source and the line or key path."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: invalid TOML: {error}") from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: {format_validation_error(error, '')}") from None


def parse_config(text: str, source: str = "config") -> ExperimentConfig:
    """Parse and validate TOML text; errors name the source, line or key."""
    config = parse_toml_as(text, ExperimentConfig, source)
    _check_component_args(config, source)
    return config


def _check_component_args(config: ExperimentConfig, source: str) -> None:
    from sparring.attacks import attacks
    from sparring.interventions import interventions
    from sparring.models import models
    from sparring.scoring import scorers

    try:
        for i, model in enumerate(config.models):
            models.validate(model.backend, model.args, where=f"models[{i}]")
        for i, target in enumerate(config.targets):
            interventions.validate(target.intervention, target.args, where=f"targets[{i}]")
        for i, attack in enumerate(config.attacks):
            attacks.validate(attack.kind, attack.args, where=f"attacks[{i}]")
        scorers.validate(config.scorer.name, config.scorer.args, where="scorer")
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def load_config(path: Path | None) -> tuple[ExperimentConfig, str]:
    """The config at ``path``, or the built-in default grid when ``path`` is None."""
    if path is None:
        text = files("sparring.experiments").joinpath("default.toml").read_text("utf-8")
        return parse_config(text, "built-in default config"), text
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text("utf-8")
    return parse_config(text, str(path)), text
