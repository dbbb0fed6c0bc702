"""Entry points for running an experiment: async core, thin sync wrapper."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from sparring.errors import ConfigError
from sparring.experiments.build import Components, WorkUnit, build_components, iter_units, plan_units
from sparring.experiments.config import ExperimentConfig
from sparring.experiments.engine import Engine, RunOutcome
from sparring.store.repository import Store, UnitRecord


class Executor(Protocol):
    """Runs the registered plan of a run somewhere else (a Ray cluster); the default runs it in this process."""

    async def execute(self, config: ExperimentConfig, store: Store, run_id: str, resumed: bool,
                      on_progress: Callable[[int], None] | None) -> RunOutcome: ...


async def arun_experiment(
    config: ExperimentConfig,
    config_toml: str,
    store: Store,
    run_id: str | None = None,
    on_plan: Callable[[str, int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    executor: Executor | None = None,
) -> RunOutcome:
    """Create or resume the run ``run_id`` (default: derived from the config) and execute what is left.

    Planning and registering the plan happen here either way; ``executor`` (default: this
    process's engine) runs the units the store holds as unfinished.
    """
    run_id = run_id or config.default_run_id()
    components = build_components(config)
    try:
        _use_judge(components)
        await asyncio.to_thread(_give_history, store, run_id, components)
        # The local engine keeps its units; a distributed executor streams the plan from the store, so its
        # driver registers the plan as it is generated and holds nothing per conversation.
        units = plan_units(run_id, config, components) if executor is None else None
        planned = _Counted(units if units is not None else iter_units(run_id, config, components))
        targets = [{"name": t.name, "size": t.size, "model_type": t.model_type, "spec": t.describe()}
                   for t in components.targets]
        resumed = await asyncio.to_thread(store.open_run, run_id, config.fingerprint(), config_toml,
                                          components.describe(), targets, planned.records())
        if components.history:  # the stored snapshot decides, also when another process created the run first
            await asyncio.to_thread(_use_stored_history, store, run_id, components)
        if on_plan:
            on_plan(run_id, planned.count)
        if units is None:
            assert executor is not None
            return await executor.execute(config, store, run_id, resumed, on_progress)
        engine = Engine(config, components, store, run_id)
        return await engine.execute(units, resumed, on_progress)
    finally:
        await components.aclose()


class _Counted:
    """The plan's store records, counted as the store reads them."""

    def __init__(self, units: Iterable[WorkUnit]) -> None:
        self.units, self.count = units, 0

    def records(self) -> Iterator[UnitRecord]:
        for u in self.units:
            self.count += 1
            yield UnitRecord(u.id, u.target.name, u.attack_name, u.item.id, u.repetition,
                             u.item.task_description, u.attack_name)


def worker_components(config: ExperimentConfig, store: Store, run_id: str) -> Components:
    """The components of a run that already exists, as a worker of a distributed executor builds them once."""
    components = build_components(config)
    _use_judge(components)
    _use_stored_history(store, run_id, components)
    return components


def _use_judge(components: Components) -> None:
    for attack in components.attacks.values():
        attack.use_judge(components.scorer.name, components.scorer.flag_is_harmful)


def _give_history(store: Store, run_id: str, components: Components) -> None:
    """Attacks that learn from past successes get them from the run's snapshot, taken once at its creation."""
    from sparring.attacks.history import HISTORY, past_successes

    learners = {name: attack for name, attack in components.attacks.items() if attack.history_size}
    if not learners:
        return
    existing = store.run(run_id).components.get(HISTORY, {}) if run_id in store.run_ids() else None
    snapshot: dict[str, list[str]] = {}
    for name, attack in learners.items():
        openings = existing.get(name, []) if existing is not None else past_successes(store, run_id,
                                                                                         attack.history_size)
        if not openings:
            raise ConfigError(f"attacks: {name!r} learns from past successes, but the store has no successful "
                              "attempt yet (a conversation rated 3 or 4, or judged harmful); run another attack first")
        attack.use_history(openings)
        snapshot[name] = openings
    components.history = snapshot


def _use_stored_history(store: Store, run_id: str, components: Components) -> None:
    from sparring.attacks.history import HISTORY

    stored: dict[str, list[str]] = store.run(run_id).components.get(HISTORY, {})
    for name, openings in stored.items():
        if name in components.attacks:
            components.attacks[name].use_history(openings)


def run_experiment(config: ExperimentConfig, config_toml: str, store: Store, run_id: str | None = None) -> RunOutcome:
    return asyncio.run(arun_experiment(config, config_toml, store, run_id))
