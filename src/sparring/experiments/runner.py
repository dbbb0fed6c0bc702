"""Entry points for running an experiment: async core, thin sync wrapper."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sparring.experiments.build import build_components, plan_units
from sparring.experiments.config import ExperimentConfig
from sparring.experiments.engine import Engine, RunOutcome
from sparring.store.repository import Store, UnitRecord


async def arun_experiment(
    config: ExperimentConfig,
    config_toml: str,
    store: Store,
    run_id: str | None = None,
    on_plan: Callable[[str, int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> RunOutcome:
    """Create or resume the run ``run_id`` (default: derived from the config) and execute what is left."""
    run_id = run_id or config.default_run_id()
    components = build_components(config)
    try:
        units = plan_units(run_id, config, components)
        records = [UnitRecord(u.id, u.target.name, u.attack_name, u.item.id, u.repetition,
                              u.item.task_description, u.attack_name) for u in units]
        targets = [{"name": t.name, "size": t.size, "model_type": t.model_type, "spec": t.describe()}
                   for t in components.targets]
        resumed = await asyncio.to_thread(store.open_run, run_id, config.fingerprint(), config_toml,
                                          components.describe(), targets, records)
        if on_plan:
            on_plan(run_id, len(units))
        engine = Engine(config, components, store, run_id)
        return await engine.execute(units, resumed, on_progress)
    finally:
        await components.aclose()


def run_experiment(config: ExperimentConfig, config_toml: str, store: Store, run_id: str | None = None) -> RunOutcome:
    return asyncio.run(arun_experiment(config, config_toml, store, run_id))
