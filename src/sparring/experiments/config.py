"""The experiment config: a TOML file declaring targets x attacks, validated with every key named on error."""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

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
    model_type: str | None = Field(None, description="overrides the intervention's label, e.g. 'rlhf' for a "
                                                     "safety-tuned model served as is (intervention 'none')")
    seeds_from: str | None = Field(None, description="draw the same seeds as the target of this name, so two "
                                                     "targets answer each attack item with the same seeds (before/after)")

    @field_validator("model_type")
    @classmethod
    def _known_type(cls, value: str | None) -> str | None:
        from sparring.interventions.base import MODEL_TYPES

        if value is not None and value not in MODEL_TYPES:
            raise ValueError(f"unknown model_type {value!r}; expected one of: {', '.join(MODEL_TYPES)}")
        return value

    @property
    def label(self) -> str:
        return self.name or f"{self.model}/{self.intervention}"


def _check_converter(spec: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    from sparring.attacks.converters import converters
    from sparring.registry import validate_nested

    return validate_nested(converters, "name", spec, info.context)


class AttackEntry(_Open):
    kind: str
    name: str | None = None
    converters: list[Annotated[dict[str, Any], AfterValidator(_check_converter)]] = Field(
        default_factory=list, description="rewrite each human turn before the target sees it, in order")

    @property
    def label(self) -> str:
        return self.name or self.kind


class ScorerEntry(_Open):
    name: str = "pm"


RANDOM_PICKER = "random"


class PickerEntry(_Open):
    """Who plays the red teamer's pick of the more harmful sample in automated runs.

    ``random`` (the default) picks by the turn's seed and records no comparison
    pair: the measuring scorer's minimum is then unbiased. A scorer name picks
    its most harmful sample and records pairs; if it is the measuring scorer,
    the minimum is biased downward (it was selected on the same noise), which
    ``show`` and the export say.
    """

    name: str = RANDOM_PICKER


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
    scorer: ScorerEntry = Field(default_factory=ScorerEntry, description="measures harmlessness; ranks rejection samples")
    picker: PickerEntry = Field(default_factory=PickerEntry, description="picks the more harmful sample to continue from")
    models: list[ModelEntry] = Field(min_length=1)
    targets: list[TargetEntry] = Field(min_length=1)
    attacks: list[AttackEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> ExperimentConfig:
        names = [m.name for m in self.models]
        for index, target in enumerate(self.targets):
            if target.model not in names:
                raise ValueError(f"targets[{index}].model: no model named {target.model!r}; models are: {', '.join(names)}")
        target_labels = [t.label for t in self.targets]
        for index, target in enumerate(self.targets):
            if target.seeds_from is not None and target.seeds_from not in target_labels:
                raise ValueError(f"targets[{index}].seeds_from: no target named {target.seeds_from!r}; "
                                 f"targets are: {', '.join(target_labels)}")
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


def parse_config(text: str, source: str = "config", base: Path | None = None) -> ExperimentConfig:
    """Parse and validate TOML text; errors name the source, line or key.

    ``base`` is the folder of the config file: relative paths in it (component
    arguments typed ``ConfigPath``, an SQLite ``database``) resolve against it.
    """
    config = parse_toml_as(text, ExperimentConfig, source)
    _check_component_args(config, source, base)
    if base is not None and config.database:
        config.database = _sqlite_relative_to(config.database, base)
    return config


def _sqlite_relative_to(url: str, base: Path) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if "://" not in url:  # a bare path names an SQLite file
        path = Path(url).expanduser()
        return str(path if path.is_absolute() else base / path)
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # reported with the key when the store opens it
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:") or Path(database).expanduser().is_absolute():
        return url
    return parsed.set(database=str(base / database)).render_as_string(hide_password=False)


def _check_component_args(config: ExperimentConfig, source: str, base: Path | None) -> None:
    check_components(config.models, config.targets, config.scorer, source, config.samples_per_turn, base,
                     config.attacks, config.picker)


def check_components(models_: Sequence[ModelEntry], targets: Sequence[TargetEntry], scorer: ScorerEntry, source: str,
                     samples_per_turn: int, base: Path | None = None, attacks_: Sequence[AttackEntry] = (),
                     picker: PickerEntry | None = None) -> None:
    """Validate each component's arguments and the rules between them (e.g. rejection sampling's k >= samples).

    The arguments given are written back validated, paths resolved against ``base`` (the config's folder).
    Experiments and campaigns share this, so a target file means the same in both.
    """
    from sparring.attacks import attacks
    from sparring.interventions import interventions
    from sparring.models import models
    from sparring.registry import CONFIG_DIR, Registry
    from sparring.scoring import scorers

    context = {CONFIG_DIR: str(base)} if base is not None else {}

    def check(registry: Registry[Any], name: str, entry: _Open, where: str) -> BaseModel:
        validated = registry.validate(name, entry.args, where=where, context=context)
        dumped = validated.model_dump(mode="json")
        for key in entry.args:
            (entry.model_extra or {})[key] = dumped[key]
        return validated

    try:
        for i, model in enumerate(models_):
            check(models, model.backend, model, f"models[{i}]")
        for i, target in enumerate(targets):
            validated = check(interventions, target.intervention, target, f"targets[{i}]")
            problem = interventions.get(target.intervention).check_samples(validated, samples_per_turn)
            if problem:
                raise ConfigError(f"targets[{i}].{problem}")
        for i, attack in enumerate(attacks_):
            check(attacks, attack.kind, attack, f"attacks[{i}]")
        check(scorers, scorer.name, scorer, "scorer")
        if picker is not None and picker.name != RANDOM_PICKER:
            check(scorers, picker.name, picker, "picker")
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


def load_config(path: Path | None) -> tuple[ExperimentConfig, str]:
    """The config at ``path``, or the built-in default grid when ``path`` is None."""
    if path is None:
        text = files("sparring.experiments").joinpath("default.toml").read_text("utf-8")
        return parse_config(text, "built-in default config"), text
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {error.start}); TOML files are UTF-8") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    return parse_config(text, str(path), base=path.parent), text
