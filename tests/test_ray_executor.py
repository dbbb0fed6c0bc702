"""``sparring run --executor ray``: the same plan on Ray workers gives the local executor's exports, and a killed
driver resumes exactly (SQLite on a local cluster, PostgreSQL on a cluster joined by address)."""

from __future__ import annotations

import asyncio
import filecmp
import glob
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from experiment_support import scripted_toml
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from test_resume import SLOW, check_integrity, sparring, transcripts
from typer.testing import CliRunner

from sparring.cli import app, exit_codes
from sparring.datasets.export import export_run
from sparring.errors import ConfigError
from sparring.experiments import parse_config, run_experiment
from sparring.experiments.engine import Engine
from sparring.experiments.ray_executor import RayExecutor
from sparring.experiments.runner import arun_experiment
from sparring.store import Store

RUN = "resumable"
# slower than the local resume tests: a killed driver's workers go on for a second or two, and must not finish the plan
DRIVER_KILLED = {**SLOW, "model_delay_s": 0.4}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """One local Ray cluster (2 CPUs) for the module; yields its address, which another driver can join."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The resume tests' plan run by the local executor without interruption."""
    config_text = scripted_toml(**{**SLOW, "model_delay_s": 0.0})
    url = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'reference.db'}"
    run_experiment(parse_config(config_text), config_text, Store(url), RUN)
    return transcripts(url, RUN)


def test_the_same_config_exports_the_same_files_locally_and_on_ray(tmp_path: Path, ray_cluster: str, monkeypatch):
    text = scripted_toml(limit=12, concurrency=4)
    local = Store(f"sqlite:///{tmp_path / 'local.db'}")
    run_experiment(parse_config(text), text, local, "same")

    async def not_here(*args: Any) -> None:
        raise AssertionError("the driver ran conversations itself")

    monkeypatch.setattr(Engine, "execute", not_here)  # the workers are other processes: only the driver is patched
    on_ray = Store(f"sqlite:///{tmp_path / 'ray.db'}")
    outcome = asyncio.run(arun_experiment(parse_config(text), text, on_ray, "same",
                                          executor=RayExecutor(workers=2, batch_size=5)))
    assert (outcome.total, outcome.finished, outcome.errors) == (24, 24, 0)
    assert on_ray.run("same").status == "finished"
    for store, name in ((local, "local"), (on_ray, "ray")):
        export_run(store, "same", tmp_path / name)
    files = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "ray").iterdir())
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "local", tmp_path / "ray", files, shallow=False)
    assert (mismatch, errors) == ([], [])


def test_a_second_driver_for_a_run_whose_workers_are_alive_is_refused(tmp_path: Path, ray_cluster: str, monkeypatch):
    import ray

    from sparring.errors import ConfigError
    from sparring.experiments import ray_executor

    class Holder:
        def ready(self) -> bool:
            return True

    # a worker of another driver of the same run, alive on the cluster
    alive = ray.remote(num_cpus=0)(Holder).options(name="run:twice:worker:1", namespace=ray_executor.NAMESPACE).remote()
    assert ray.get(alive.ready.remote())
    monkeypatch.setattr(ray_executor, "NAME_WAIT_S", 2.0)
    text = scripted_toml(limit=2)
    store = Store(f"sqlite:///{tmp_path / 'twice.db'}")
    with pytest.raises(ConfigError, match="'twice' is already running on this Ray cluster"):
        asyncio.run(arun_experiment(parse_config(text), text, store, "twice", executor=RayExecutor(workers=2)))
    assert store.status_counts("twice") == {"open": 4}  # nothing ran
    ray.kill(alive)


def test_a_worker_builds_the_components_once_for_all_its_batches(tmp_path: Path, monkeypatch):
    from sparring.experiments import runner
    from sparring.experiments.unit_batches import unfinished_batches
    from sparring.experiments.unit_worker import UnitWorker

    text = scripted_toml(limit=6, concurrency=4)
    config, url = parse_config(text), f"sqlite:///{tmp_path / 'w.db'}"
    store = Store(url)
    asyncio.run(arun_experiment(config, text, store, "w", executor=_RegisterOnly()))
    built = []
    real = runner.build_components
    monkeypatch.setattr(runner, "build_components", lambda c: built.append(1) or real(c))

    async def work() -> int:
        worker = UnitWorker(config, url, "w")
        done = 0
        for batch in unfinished_batches(store, "w", size=4, page=5):  # pages and batches cut the plan differently
            done += (await worker.run_batch(batch)).finished
        await worker.close()
        return done

    assert asyncio.run(work()) == 12
    assert len(built) == 1
    assert store.status_counts("w") == {"finished": 12}
    assert list(unfinished_batches(store, "w", size=4)) == []


def test_each_worker_keeps_its_share_of_a_servers_rate_limits(tmp_path: Path):
    """Rate limits are the server's: N workers (processes) each admit 1/N of them, so together they stay under."""
    from sparring.experiments.unit_worker import UnitWorker
    from sparring.models import rate_limits

    text = scripted_toml(limit=2).replace('backend = "scripted"', 'backend = "scripted"\n' + "\n".join([
        "[[models]]", 'name = "served"', 'backend = "openai"', 'model = "m"',
        'base_urls = ["http://127.0.0.1:9/v1", {url = "http://127.0.0.1:10/v1", requests_per_minute = 10}]',
        "requests_per_minute = 7", "tokens_per_minute = 1000", "[[models]]", 'name = "spare"',
        'backend = "scripted"'])).replace('model = "fake"\nintervention = "plain"', 'model = "served"\nintervention = "plain"')
    config, url = parse_config(text), f"sqlite:///{tmp_path / 'w.db'}"
    asyncio.run(arun_experiment(config, text, Store(url), "w", executor=_RegisterOnly()))

    async def windows(share: float) -> list[tuple[int | None, int | None]]:
        worker = UnitWorker(config, url, "w", rate_share=share)
        try:
            [served] = [t.model for t in worker.components.targets if t.model_name == "served"]
            return [(r.window.requests_per_minute, r.window.tokens_per_minute) for r in served.pool.bind()[1]]
        finally:
            await worker.close()

    assert asyncio.run(windows(1.0)) == [(7, 1000), (10, 1000)]
    assert asyncio.run(windows(0.25)) == [(1, 250), (2, 250)]  # floor, never below one request a minute
    assert rate_limits.process_share() == 1.0  # a closed worker leaves the process as it found it
    broken = scripted_toml(limit=2).replace('backend = "scripted"', 'backend = "llamacpp"\npath = "/nonexistent/m.gguf"')
    with pytest.raises(ConfigError, match="GGUF file not found"):
        UnitWorker(parse_config(broken), url, "w", rate_share=0.5)
    assert rate_limits.process_share() == 1.0  # so does a worker that could not start


def test_a_stopped_worker_commits_what_it_had_and_a_new_worker_finishes_the_plan_exactly(tmp_path: Path, reference):
    from sparring.experiments.unit_batches import unfinished_batches
    from sparring.experiments.unit_worker import UnitWorker

    config_text = scripted_toml(**SLOW)
    config, url = parse_config(config_text), f"sqlite:///{tmp_path / 'w.db'}"
    store = Store(url)
    asyncio.run(arun_experiment(config, config_text, store, RUN, executor=_RegisterOnly()))

    def assistant_turns() -> int:
        with store.engine.connect() as conn:
            return conn.execute(text("select count(*) from utterances where role='assistant' and sample_index=0")).scalar()

    async def stop_midway() -> int:
        worker = UnitWorker(config, url, RUN)
        batch = asyncio.ensure_future(worker.run_batch(next(unfinished_batches(store, RUN, size=20))))
        while assistant_turns() < 8:
            await asyncio.sleep(0.05)
        saved = await worker.stop()  # what the driver's Ctrl-C asks of every worker
        with pytest.raises(asyncio.CancelledError):
            await batch
        return saved

    saved = asyncio.run(stop_midway())
    assert saved == assistant_turns()  # every turn it counted is committed, nothing else
    assert store.status_counts(RUN).get("finished", 0) < 20

    async def finish() -> None:
        worker = UnitWorker(config, url, RUN)
        for batch in unfinished_batches(store, RUN, size=7):
            await worker.run_batch(batch)
        await worker.close()

    asyncio.run(finish())
    check_integrity(url, RUN)
    assert transcripts(url, RUN) == reference


def test_a_worker_refuses_a_unit_its_own_plan_does_not_have(tmp_path: Path):
    from sparring.errors import ConfigError
    from sparring.experiments.unit_batches import UnitRef, unfinished_batches
    from sparring.experiments.unit_worker import UnitWorker

    text = scripted_toml(limit=2)
    config, url = parse_config(text), f"sqlite:///{tmp_path / 'w.db'}"
    store = Store(url)
    asyncio.run(arun_experiment(config, text, store, "w", executor=_RegisterOnly()))
    real = next(unfinished_batches(store, "w", size=1))[0]

    async def work() -> None:
        worker = UnitWorker(config, url, "w")
        # a node whose data file differs: the key names an item it does not have, or the id does not match
        for ref in (UnitRef(real.id, real.target, real.attack, "no-such-item", 0),
                    UnitRef("0" * 32, real.target, real.attack, real.item_id, real.repetition)):
            with pytest.raises(ConfigError, match="every node must see the same config and data files"):
                await worker.run_batch([ref])
        await worker.close()

    asyncio.run(work())
    assert store.status_counts("w") == {"open": 4}  # nothing ran


class _RegisterOnly:
    """An executor that runs nothing: the plan is registered and left unfinished."""

    async def execute(self, config: Any, store: Store, run_id: str, resumed: bool, on_progress: Any) -> Any:
        from sparring.experiments.engine import RunOutcome

        return RunOutcome(run_id, resumed, total=0)


def wait_for_turns(url: str, minimum: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    engine = create_engine(url)
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the run finished before it could be interrupted"
            try:
                with engine.connect() as conn:
                    count = conn.execute(text("select count(*) from utterances where role='assistant'")).scalar() or 0
            except SQLAlchemyError:  # no database or schema yet
                count = 0
            if count >= minimum:
                return
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError("no progress was written in time")


def kill_driver_and_rerun(command: list[str], url: str) -> dict[str, str]:
    """SIGKILL the driver mid-run, wait until its workers are gone, rerun the same command to the end."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_turns(url, 8, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    _wait_for_workers_exit(process.pid)
    partial = transcripts(url, RUN)
    assert sum(bool(t) for t in partial.values()) < 20  # really interrupted
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    check_integrity(url, RUN)
    return transcripts(url, RUN)


def _wait_for_workers_exit(session: int, timeout: float = 60) -> None:
    """Workers outlive a SIGKILLed driver by a few seconds (the cluster reaps them); until then they may commit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_is_worker_of(Path(p), session) for p in glob.glob("/proc/[0-9]*")):
            return
        time.sleep(0.2)
    raise AssertionError("the killed driver's Ray workers did not exit")


def _is_worker_of(proc: Path, session: int) -> bool:
    try:
        stat = (proc / "stat").read_text()
        command = (proc / "cmdline").read_bytes()
    except OSError:  # gone meanwhile
        return False
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, pgrp, session, ...
    return int(fields[3]) == session and fields[0] != "Z" and command.startswith(b"ray::_Actor")


def test_sigkill_of_the_driver_on_a_local_cluster_then_rerun_finishes_exactly(tmp_path: Path, reference):
    config = tmp_path / "exp.toml"
    config.write_text(scripted_toml(**DRIVER_KILLED))
    url = f"sqlite:///{tmp_path / 'run.db'}"
    command = sparring("run", str(config), "--db", url, "--run-id", RUN, "--executor", "ray", "--workers", "2")
    assert kill_driver_and_rerun(command, url) == reference


@pytest.mark.postgres
def test_sigkill_of_a_driver_joined_by_address_then_rerun_finishes_exactly_on_postgres(
        tmp_path: Path, reference, ray_cluster: str, postgres_url: str):
    config = tmp_path / "exp.toml"
    config.write_text(scripted_toml(**DRIVER_KILLED))
    command = sparring("run", str(config), "--db", postgres_url, "--run-id", RUN, "--executor", "ray",
                       "--address", ray_cluster)
    # the rerun waits until the cluster has reaped the killed driver's workers (their names are the run's lock)
    assert kill_driver_and_rerun(command, postgres_url) == reference


cli_runner = CliRunner()


def test_sqlite_with_a_cluster_address_is_refused_before_anything_is_written(tmp_path: Path):
    config = tmp_path / "exp.toml"
    config.write_text(scripted_toml(limit=2))
    db = tmp_path / "run.db"
    result = cli_runner.invoke(app, ["run", str(config), "--db", str(db), "--executor", "ray", "--address", "head:6379"])
    assert result.exit_code == exit_codes.INPUT, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SQLite cannot be shared" in lines[0] and "PostgreSQL" in lines[0]
    assert not db.exists()


def test_without_ray_installed_the_error_says_how_to_install_it(tmp_path: Path, monkeypatch):
    config = tmp_path / "exp.toml"
    config.write_text(scripted_toml(limit=2))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ModuleNotFoundError
    result = cli_runner.invoke(app, ["run", str(config), "--db", str(tmp_path / "run.db"), "--executor", "ray"])
    assert result.exit_code == exit_codes.INPUT, result.output
    assert "pip install 'sparring[ray]'" in result.stderr
    assert "Traceback" not in result.output


def test_address_without_the_ray_executor_is_a_usage_error(tmp_path: Path):
    config = tmp_path / "exp.toml"
    config.write_text(scripted_toml(limit=2))
    result = cli_runner.invoke(app, ["run", str(config), "--db", str(tmp_path / "run.db"), "--address", "head:6379"])
    assert result.exit_code == exit_codes.USAGE, result.output
