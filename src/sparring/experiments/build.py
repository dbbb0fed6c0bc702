"""Turn a validated config into live components and the plan of work units."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparring.attacks import Attack, AttackItem, attacks
from sparring.attacks.converters import Converter, converters
from sparring.experiments.config import RANDOM_PICKER, ExperimentConfig, ModelEntry, PickerEntry, ScorerEntry, TargetEntry
from sparring.interventions import Target, interventions
from sparring.models import Model, models
from sparring.scoring import Scorer, scorers


@dataclass(frozen=True)
class WorkUnit:
    """One conversation: independent, idempotent, keyed by (run, target, attack, item, repetition)."""

    id: str
    target: Target
    attack_name: str
    attack: Attack
    item: AttackItem
    repetition: int

    @property
    def key(self) -> str:
        return f"{self.target.name}|{self.attack_name}|{self.item.id}|{self.repetition}"

    @property
    def seed_key(self) -> str:
        """The key seeds derive from: the unit's own, or its twin's on the target named by ``seeds_from``."""
        return f"{self.target.seeds_from or self.target.name}|{self.attack_name}|{self.item.id}|{self.repetition}"


class LiveComponents:
    """Owns live models and scorers (experiments and campaigns alike): every scorer, and closing them all."""

    models: dict[str, Model]
    scorer: Scorer
    extra_scorers: list[Scorer]

    @property
    def all_scorers(self) -> list[Scorer]:
        return [self.scorer, *self.extra_scorers]

    async def aclose(self) -> None:
        for model in self.models.values():
            await model.aclose()
        for scorer in self.all_scorers:
            await scorer.aclose()


@dataclass
class Components(LiveComponents):
    models: dict[str, Model]
    targets: list[Target]
    attacks: dict[str, Attack]
    scorer: Scorer
    extra_scorers: list[Scorer]
    picker: Scorer | None = None  # None: the pick is by seed (``[picker] name = "random"``)
    history: dict[str, list[str]] | None = None  # attack -> the past successes it learns from (a run's snapshot)
    converters: dict[str, list[Converter]] = field(default_factory=dict)  # attack -> its converters, in order

    def describe(self) -> dict[str, Any]:
        return {
            "targets": [t.describe() for t in self.targets],
            "attacks": {name: a.spec.as_dict() for name, a in self.attacks.items()},
            "scorers": [s.spec.as_dict() for s in self.all_scorers],
            "primary_scorer": self.scorer.spec.name,
            "picker": self.picker.spec.as_dict() if self.picker is not None else {"kind": "picker", "name": RANDOM_PICKER,
                                                                                  "args": {}},
            **({"history": self.history} if self.history else {}),
            **({"converters": {name: [c.spec.as_dict() for c in chain] for name, chain in self.converters.items()}}
               if self.converters else {}),
        }

    async def aclose(self) -> None:
        await super().aclose()
        for attack in self.attacks.values():
            await attack.aclose()
        for chain in self.converters.values():
            for converter in chain:
                await converter.aclose()
        if self.picker is not None and all(self.picker is not s for s in self.all_scorers):
            await self.picker.aclose()


def _build_picker(entry: PickerEntry, measuring: list[Scorer]) -> Scorer | None:
    """The picker scorer; one of the measuring scorers when it is the same component with the same arguments."""
    if entry.name == RANDOM_PICKER:
        return None
    picker = scorers.create(entry.name, entry.args, where="picker")
    for scorer in measuring:
        if scorer.spec == picker.spec:
            return scorer  # never loaded twice (a model-backed scorer is costly)
    return picker


@dataclass
class TargetSet(LiveComponents):
    """Models, the targets built on them and the scorers: what experiments and campaigns share."""

    models: dict[str, Model]
    targets: list[Target]
    scorer: Scorer
    extra_scorers: list[Scorer]


def build_target_set(model_entries: Sequence[ModelEntry], target_entries: Sequence[TargetEntry],
                     scorer_entry: ScorerEntry) -> TargetSet:
    """Live models, targets and scorers; models load their weights on first use, so this is cheap."""
    scorer = scorers.create(scorer_entry.name, scorer_entry.args, where="scorer")
    # The refusal rate is always reported, so the refusal scorer always runs (it is cheap).
    extra = [] if scorer.spec.name == "refusal" else [scorers.create("refusal")]
    built_models = {m.name: models.create(m.backend, m.args, where=f"models[{i}]") for i, m in enumerate(model_entries)}
    sizes = {m.name: m.size for m in model_entries}
    targets = []
    for i, entry in enumerate(target_entries):
        deps = {"scorer": scorer} if interventions.get(entry.intervention).needs_scorer else {}
        intervention = interventions.create(entry.intervention, entry.args, where=f"targets[{i}]", **deps)
        targets.append(Target(
            name=entry.label, size=entry.size or sizes[entry.model], model_name=entry.model,
            model=built_models[entry.model], intervention=intervention, model_type_label=entry.model_type, seeds_from=entry.seeds_from,
        ))
    return TargetSet(built_models, targets, scorer, extra)


def build_components(config: ExperimentConfig) -> Components:
    built = build_target_set(config.models, config.targets, config.scorer)
    built_attacks = {
        a.label: attacks.create(a.kind, a.args, where=f"attacks[{i}]") for i, a in enumerate(config.attacks)
    }
    chains = {
        a.label: [converters.create(c["name"], {k: v for k, v in c.items() if k != "name"},
                                    where=f"attacks[{i}].converters[{j}]") for j, c in enumerate(a.converters)]
        for i, a in enumerate(config.attacks) if a.converters
    }
    return Components(built.models, built.targets, built_attacks, built.scorer, built.extra_scorers,
                      _build_picker(config.picker, built.all_scorers), converters=chains)


def unit_id(run_id: str, key: str) -> str:
    return hashlib.blake2b(f"{run_id}\x00{key}".encode(), digest_size=16).hexdigest()


def iter_units(run_id: str, config: ExperimentConfig, components: Components) -> Iterator[WorkUnit]:
    """The plan one unit at a time, so a driver that only registers it holds no unit per conversation."""
    items = {name: attack.items() for name, attack in components.attacks.items()}
    for target in components.targets:
        for name, attack in components.attacks.items():
            for item in items[name]:
                for repetition in range(config.repetitions):
                    key = f"{target.name}|{name}|{item.id}|{repetition}"
                    yield WorkUnit(unit_id(run_id, key), target, name, attack, item, repetition)


def plan_units(run_id: str, config: ExperimentConfig, components: Components) -> list[WorkUnit]:
    return list(iter_units(run_id, config, components))


def turn_seed(run_seed: int, unit: WorkUnit, turn_index: int) -> int:
    """Seeds derive from the unit key, so a resumed conversation samples what it would have sampled."""
    digest = hashlib.blake2b(f"{run_seed}\x00{unit.seed_key}\x00{turn_index}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % (2**31 - 1024)
