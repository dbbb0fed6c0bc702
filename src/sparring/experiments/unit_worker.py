"""One worker of a distributed executor: the run's components built once, batches of units run by the engine.

Nothing here imports Ray: the Ray executor wraps ``UnitWorker`` in an actor, and
the same class runs in-process in tests. A unit goes through ``Engine.run_unit``,
the local executor's own code path, and its turns through the same store API.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sparring.errors import ConfigError
from sparring.experiments.build import Components, WorkUnit, unit_id
from sparring.experiments.config import ExperimentConfig
from sparring.experiments.engine import Engine, RunOutcome
from sparring.experiments.unit_batches import UnitRef, stored_conversations
from sparring.experiments.writer import StoreWriter
from sparring.models.rate_limits import set_process_share
from sparring.store.opening import open_store
from sparring.store.repository import Store


@dataclass(frozen=True)
class BatchResult:
    finished: int
    errors: int


class UnitWorker:
    """Owns a store connection, the run's components and one group-commit writer for all its batches.

    Up to ``config.concurrency`` conversations run at once per worker, however many
    batches the driver has queued on it. ``rate_share``: the fraction of each server's
    declared rate limits this worker's process may use (1 / workers on Ray).
    """

    def __init__(self, config: ExperimentConfig, database_url: str, run_id: str, rate_share: float = 1.0) -> None:
        from sparring.experiments.runner import worker_components

        set_process_share(rate_share)  # before any model builds its servers' rate windows
        try:
            self.store: Store = open_store(database_url, pool_size=2)
            self.run_id = run_id
            self.components: Components = worker_components(config, self.store, run_id)
        except BaseException:
            set_process_share(1.0)  # a worker that never started leaves the process as it found it
            raise
        self.engine = Engine(config, self.components, self.store, run_id)
        self._targets = {t.name: t for t in self.components.targets}
        self._items = {name: {item.id: item for item in attack.items()} for name, attack in self.components.attacks.items()}
        self._limit: asyncio.Semaphore | None = None
        self._writer: StoreWriter | None = None
        self._running: set[asyncio.Future[None]] = set()
        self._session = RunOutcome(run_id, True, total=0)  # counts the turns this worker wrote, all batches together

    def _unit(self, ref: UnitRef) -> WorkUnit:
        """The unit the driver named, rebuilt from this worker's own components (its id proves it is the same)."""
        target, attack, item = self._targets.get(ref.target), self.components.attacks.get(ref.attack), None
        if target is not None and attack is not None:
            item = self._items[ref.attack].get(ref.item_id)
        unit = None if target is None or attack is None or item is None else \
            WorkUnit(ref.id, target, ref.attack, attack, item, ref.repetition)
        if unit is None or unit_id(self.run_id, unit.key) != ref.id:
            raise ConfigError(f"run {self.run_id!r}: conversation {ref.target}|{ref.attack}|{ref.item_id}|{ref.repetition} "
                              "is not in this worker's plan; every node must see the same config and data files")
        return unit

    async def run_batch(self, refs: list[UnitRef]) -> BatchResult:
        """Run these units (resumed from their stored turns); returns once every turn of them is committed."""
        units = [self._unit(ref) for ref in refs]
        if self._writer is None:
            self._limit = asyncio.Semaphore(self.engine.config.concurrency)
            self._writer = await StoreWriter(self.store).__aenter__()
        limit, writer = self._limit, self._writer
        assert limit is not None
        stored = await asyncio.to_thread(stored_conversations, self.store, self.run_id, [ref.id for ref in refs])
        results: list[bool] = []

        async def guarded(unit: WorkUnit) -> None:
            async with limit:
                results.append(await self.engine.run_unit(unit, stored[unit.id], writer, self._session))

        tasks = [asyncio.ensure_future(guarded(unit)) for unit in units]
        self._running.update(tasks)
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # a bug in one conversation stops the batch; committed turns stay
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            self._running.difference_update(tasks)
        return BatchResult(finished=sum(results), errors=len(results) - sum(results))

    async def stop(self) -> int:
        """Ctrl-C on the driver: stop every conversation, commit what was queued (as the local engine does), close."""
        running = list(self._running)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        return await self.close()

    async def close(self) -> int:
        """Flush the writer, close models and scorers, release the database; returns the turns this worker wrote."""
        if self._writer is not None:
            await self._writer.__aexit__(None, None, None)
            self._writer = None
        await self.components.aclose()
        self.store.close()
        set_process_share(1.0)
        return self._session.turns_written
