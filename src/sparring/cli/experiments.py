"""``sparring run``, ``show``, ``export`` and ``runs``: experiments in the store."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from sparring.cli import exit_codes
from sparring.cli.options import DbOption, database_url, open_for_reading, open_for_writing
from sparring.cli.progress import RunProgress
from sparring.errors import ConfigError
from sparring.terminal import console, err

if TYPE_CHECKING:
    from sparring.store import Store

RunIdArgument = Annotated[str | None, typer.Argument(help="Run id (see `sparring runs`); default: the latest run.")]


class ExecutorKind(StrEnum):
    local = "local"
    ray = "ray"


def run(
    config: Annotated[Path | None, typer.Argument(help="Experiment TOML; default: the built-in grid on the embedded model.")] = None,
    db: DbOption = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Run id; default: derived from the config, so the same command resumes.")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Conversations in flight (overrides the config); per worker with --executor ray.")] = None,
    executor: Annotated[ExecutorKind, typer.Option(help="Where conversations run: this process, or Ray workers (needs the optional ray extra of sparring).")] = ExecutorKind.local,
    address: Annotated[str | None, typer.Option(help="With --executor ray: the cluster to join (e.g. HEAD:6379); default: a local cluster. Needs PostgreSQL.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="With --executor ray: worker actors (default: one per CPU of the cluster).")] = None,
) -> None:
    """Run (or resume) an experiment and print the results table. Exit 4 if conversations failed, 130 if stopped."""
    from sparring.experiments import arun_experiment, load_config
    from sparring.experiments.summary import render_summary, summarize
    from sparring.redaction import redact_database_url

    if executor is not ExecutorKind.ray and (address is not None or workers is not None):
        raise typer.BadParameter("--address and --workers go with --executor ray", param_hint="--address/--workers")
    parsed, text = load_config(config)
    if concurrency:
        parsed = parsed.model_copy(update={"concurrency": concurrency})
    ray_executor = None
    if executor is ExecutorKind.ray:
        from sparring.experiments.ray_executor import RayExecutor, check_database, import_ray

        check_database(database_url(db, parsed.database), address)  # before a file is created for nothing
        import_ray()
        ray_executor = RayExecutor(address=address, workers=workers)
    store = open_for_writing(db, parsed.database)
    with RunProgress(err) as progress:

        def on_plan(rid: str, total: int) -> None:
            progress.planned(rid, total)
            err.print(f"run {escape(rid)}: {total} conversations planned; database "
                      f"{escape(redact_database_url(store.url))}", soft_wrap=True)

        outcome = asyncio.run(arun_experiment(parsed, text, store, run_id, on_plan, progress.advance, ray_executor))
    if outcome.stopped:
        err.print(f"[yellow]Stopped.[/yellow] {outcome.turns_written} turns saved this session; "
                  "run the same command again to resume.")
    render_summary(summarize(store, outcome.run_id), console)
    if outcome.stopped:
        raise typer.Exit(exit_codes.INTERRUPTED)
    if outcome.errors:
        err.print(f"[red]run {escape(outcome.run_id)}: {outcome.errors} of {outcome.total} conversations failed[/red]; "
                  "run the same command again to retry them", soft_wrap=True)
        raise typer.Exit(exit_codes.RUN_FAILED)


def _run_or_latest(store: Store, run_id: str | None) -> str:
    if run_id is not None:
        return run_id
    known = store.run_ids()
    if not known:
        raise ConfigError("no runs in this database; start one with `sparring run`")
    return known[-1]


def show(run_id: RunIdArgument = None, db: DbOption = None) -> None:
    """Per target: conversations, errors, refusal rate, mean minimum harmlessness with a 95% bootstrap CI."""
    from sparring.experiments.summary import render_summary, summarize

    store = open_for_reading(db)
    render_summary(summarize(store, _run_or_latest(store, run_id)), console)


def export(
    run_id: RunIdArgument = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output directory.")] = Path("sparring-export"),
    db: DbOption = None,
) -> None:
    """Write finished conversations in the released red-team format and the comparison pairs as hh-rlhf JSONL."""
    from sparring.datasets.export import export_run

    store = open_for_reading(db)
    result = export_run(store, _run_or_latest(store, run_id), output)
    console.print(f"{result.conversations} conversations and {result.pairs} comparison pairs written to "
                  f"{escape(str(result.directory))}", soft_wrap=True)


def runs(db: DbOption = None) -> None:
    """List runs in the database, oldest first."""
    store = open_for_reading(db)
    listed = store.runs()
    for row in listed:
        counts = store.status_counts(row.id)
        console.print(f"{escape(row.id)}  {escape(row.status)}  created {row.created_at:%Y-%m-%d %H:%M}  "
                      + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())), soft_wrap=True)
    console.print(f"{len(listed)} runs")
