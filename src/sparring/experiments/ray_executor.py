"""``sparring run --executor ray``: the run's conversation units spread over a Ray cluster.

The driver plans and registers the run as the local executor does, then streams
unfinished unit keys from the store to Ray actors in bounded batches; it keeps no
per-unit state. Each actor is a ``UnitWorker``: it builds the run's components
once (targets, judge) and runs every unit through the engine's own code path,
writing through the same store API to the shared database. Resuming is the
local executor's: the store says which units are unfinished and how far.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from sqlalchemy.engine import make_url

from sparring.errors import ConfigError
from sparring.experiments.config import ExperimentConfig
from sparring.experiments.engine import RunOutcome, install_sigint
from sparring.experiments.unit_batches import UnitRef, unfinished_batches
from sparring.experiments.unit_worker import BatchResult, UnitWorker
from sparring.redaction import redact_database_url
from sparring.store.repository import Store

INSTALL_HINT = "pip install 'sparring[ray]'"
NAMESPACE = "sparring"
STOP_WAIT_S = 30.0  # how long Ctrl-C waits for the workers to commit what they had queued
NAME_WAIT_S = 60.0  # how long a rerun waits for the workers of a killed driver to be reaped by the cluster


def import_ray() -> ModuleType:
    """Ray, or one line saying how to install it (it is an optional extra)."""
    try:
        import ray
    except ModuleNotFoundError as error:
        if error.name is None or error.name.split(".")[0] != "ray":
            raise
        raise ConfigError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def check_database(url: str, address: str | None) -> None:
    """Workers on other machines must reach the database: SQLite only serves a local cluster."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    if address:
        raise ConfigError(f"database {redact_database_url(url)}: SQLite cannot be shared by the workers of a Ray "
                          "cluster (--address); use PostgreSQL (--db postgresql://HOST/NAME)")
    database = parsed.database or ""
    if not database or database == ":memory:" or "mode=memory" in str(parsed.query):
        raise ConfigError("database: an in-memory SQLite database cannot be shared with Ray workers; "
                          "give a file (--db runs.db)")


class _Actor:
    """The Ray actor around a ``UnitWorker``; built in ``start`` so a failure there comes back as its exception."""

    def __init__(self) -> None:
        self.worker: UnitWorker | None = None

    async def start(self, config: ExperimentConfig, database_url: str, run_id: str, rate_share: float) -> None:
        self.worker = UnitWorker(config, database_url, run_id, rate_share)

    async def run_batch(self, refs: list[UnitRef]) -> BatchResult:
        assert self.worker is not None
        return await self.worker.run_batch(refs)

    async def stop(self) -> int:
        return 0 if self.worker is None else await self.worker.stop()

    async def close(self) -> int:
        return 0 if self.worker is None else await self.worker.close()


@dataclass
class RayExecutor:
    """Runs a registered plan on Ray: a local cluster (``address`` None) or an existing one.

    ``workers`` actors (default: one per CPU of the cluster), each running up to the
    config's ``concurrency`` conversations; ``batch_size`` units per call (default: the
    concurrency), ``queued`` calls per worker so none waits on the driver.
    """

    address: str | None = None
    workers: int | None = None
    batch_size: int | None = None
    queued: int = 2
    startup_s: float | None = field(default=None, init=False)  # the last run's time to start its workers

    async def execute(self, config: ExperimentConfig, store: Store, run_id: str, resumed: bool,
                      on_progress: Callable[[int], None] | None) -> RunOutcome:
        ray = import_ray()
        check_database(store.url, self.address)
        started = self._connect(ray)
        try:
            return await self._execute(ray, config, store, run_id, resumed, on_progress)
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray: ModuleType) -> bool:
        """Join the cluster at ``address`` or start a local one; True when this call started Ray (and stops it)."""
        if ray.is_initialized():  # the caller's own session (tests, notebooks)
            return False
        quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        if self.address:
            try:
                ray.init(address=self.address, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as error:
                first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
                raise ConfigError(f"--address {self.address}: cannot join the Ray cluster: {first}") from None
        else:
            ray.init(address="local", num_cpus=self.workers or os.cpu_count() or 1, include_dashboard=False, **quiet)
        return True

    async def _execute(self, ray: ModuleType, config: ExperimentConfig, store: Store, run_id: str, resumed: bool,
                       on_progress: Callable[[int], None] | None) -> RunOutcome:
        counts = await asyncio.to_thread(store.status_counts, run_id)
        outcome = RunOutcome(run_id, resumed, total=sum(counts.values()), finished=counts.get("finished", 0))
        if on_progress:
            on_progress(outcome.finished)
        workers = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        started = time.perf_counter()
        actors = await asyncio.to_thread(self._start_actors, ray, workers, config, store.url, run_id)
        self.startup_s = time.perf_counter() - started
        loop = asyncio.get_running_loop()
        work = asyncio.ensure_future(self._dispatch(ray, actors, store, run_id, outcome, config, on_progress))
        installed = install_sigint(loop, work)
        try:
            await work
            outcome.turns_written = sum(await asyncio.gather(*(_awaitable(a.close.remote()) for a in actors)))
        except asyncio.CancelledError:
            outcome.stopped = True
            outcome.turns_written = await _stop(actors)
        except BaseException:
            _kill(ray, actors)
            await asyncio.to_thread(store.set_status, run_id, "failed")
            raise
        finally:
            if installed:
                loop.remove_signal_handler(signal.SIGINT)
            _kill(ray, actors)  # an interrupted worker's open transaction rolls back; its committed turns stay
        status = "stopped" if outcome.stopped else ("incomplete" if outcome.errors else "finished")
        await asyncio.to_thread(store.set_status, run_id, status)
        return outcome

    def _start_actors(self, ray: ModuleType, workers: int, config: ExperimentConfig, url: str, run_id: str) -> list[Any]:
        """Named actors: the cluster's name registry lets only one driver run a given run at a time.

        After a driver is killed, its actors live until the cluster notices; a rerun waits for their names.
        """
        remote = ray.remote(num_cpus=1)(_Actor)
        actors: list[Any] = []
        deadline = time.monotonic() + NAME_WAIT_S
        while len(actors) < workers:
            name = f"run:{run_id}:worker:{len(actors)}"
            try:
                actors.append(remote.options(name=name, namespace=NAMESPACE).remote())
            except ValueError:  # the name is taken: another driver's worker (alive, or not yet reaped)
                if time.monotonic() > deadline:
                    _kill(ray, actors)
                    raise ConfigError(f"run {run_id!r} is already running on this Ray cluster (worker {name!r} "
                                      "is alive); wait for that driver to finish or stop it") from None
                time.sleep(1.0)
        try:
            # requests and tokens per minute are the server's: each of the workers keeps an equal share of them
            ray.get([actor.start.remote(config, url, run_id, 1.0 / workers) for actor in actors])
        except ray.exceptions.RayError as error:
            _kill(ray, actors)
            raise _cause(error) from None
        return actors

    async def _dispatch(self, ray: ModuleType, actors: list[Any], store: Store, run_id: str, outcome: RunOutcome,
                        config: ExperimentConfig, on_progress: Callable[[int], None] | None) -> None:
        batches: Iterator[list[UnitRef]] = unfinished_batches(store, run_id, self.batch_size or config.concurrency)
        pending: dict[asyncio.Future[Any], Any] = {}

        async def submit(actor: Any) -> None:
            batch = await asyncio.to_thread(next, batches, None)
            if batch is not None:
                pending[_awaitable(actor.run_batch.remote(batch))] = actor

        try:
            for _ in range(self.queued):
                for actor in actors:
                    await submit(actor)
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    actor = pending.pop(future)
                    try:
                        result: BatchResult = future.result()
                    except ray.exceptions.RayError as error:
                        raise _cause(error) from None
                    outcome.finished += result.finished
                    outcome.errors += result.errors
                    if on_progress:
                        on_progress(result.finished + result.errors)
                    await submit(actor)
        finally:
            for future in pending:  # stopped or failed: the workers are killed next, their batches are abandoned
                future.cancel()


async def _stop(actors: list[Any]) -> int:
    """Each worker stops its conversations and commits what it had queued; the turns they wrote in all."""
    try:
        async with asyncio.timeout(STOP_WAIT_S):
            return sum(await asyncio.gather(*(_awaitable(a.stop.remote()) for a in actors)))
    except Exception:  # noqa: BLE001 — a worker that cannot stop in time (or is gone) is killed next
        return 0


def _awaitable(ref: Any) -> asyncio.Future[Any]:
    return asyncio.wrap_future(ref.future())


def _cause(error: BaseException) -> BaseException:
    """A worker's own exception from Ray's wrapper, so a user's error stays one line (a bug keeps its type)."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, BaseException) else error


def _kill(ray: ModuleType, actors: list[Any]) -> None:
    for actor in actors:
        try:
            ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 — already dead: nothing to stop
            pass

