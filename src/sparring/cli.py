"""The ``sparring`` command line: run, show, export, runs."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sparring.errors import SparringError
from sparring.terminal import console, err

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Red team language models, end to end.")

DbOption = Annotated[
    Optional[str],
    typer.Option("--db", help="Database URL (default: $SPARRING_DATABASE_URL, else the SQLite file in the data dir)."),
]


def _database_url(option: str | None, from_config: str | None = None) -> str:
    from sparring.store import resolve_database_url

    return resolve_database_url(option, from_config)


def _store(url: str):  # type: ignore[no-untyped-def]
    from sparring.store import Store

    return Store(url)


@app.command()
def run(
    config: Annotated[Optional[Path], typer.Argument(help="Experiment TOML; default: the built-in grid on the embedded model.")] = None,
    db: DbOption = None,
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="Run id; default: derived from the config, so the same command resumes.")] = None,
    concurrency: Annotated[Optional[int], typer.Option(min=1, help="Conversations in flight (overrides the config).")] = None,
) -> None:
    """Run (or resume) an experiment and print the results table."""
    from sparring.experiments import arun_experiment, load_config
    from sparring.experiments.summary import render_summary, summarize

    parsed, text = load_config(config)
    if concurrency:
        parsed = parsed.model_copy(update={"concurrency": concurrency})
    store = _store(_database_url(db, parsed.database))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=not err.is_terminal) as progress:
        task = progress.add_task("conversations", total=None)

        def on_plan(rid: str, total: int) -> None:
            progress.update(task, total=total, description=f"run {escape(rid)}")
            err.print(f"run {escape(rid)}: {total} conversations planned; database {escape(store.url)}")

        outcome = asyncio.run(arun_experiment(parsed, text, store, run_id, on_plan,
                                              lambda n: progress.advance(task, n)))
    if outcome.stopped:
        err.print(f"[yellow]Stopped.[/yellow] {outcome.turns_written} turns saved this session; "
                  "run the same command again to resume.")
    render_summary(summarize(store, outcome.run_id), console)
    if outcome.stopped:
        raise typer.Exit(130)


@app.command()
def show(run_id: Annotated[str, typer.Argument(help="Run id (see `sparring runs`).")], db: DbOption = None) -> None:
    """Per target: conversations, errors, refusal rate, mean minimum harmlessness with a 95% bootstrap CI."""
    from sparring.experiments.summary import render_summary, summarize

    render_summary(summarize(_store(_database_url(db)), run_id), console)


@app.command()
def export(
    run_id: Annotated[str, typer.Argument(help="Run id (see `sparring runs`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output directory.")] = Path("sparring-export"),
    db: DbOption = None,
) -> None:
    """Write finished conversations in the released red-team format and the comparison pairs as hh-rlhf JSONL."""
    from sparring.datasets.export import export_run

    result = export_run(_store(_database_url(db)), run_id, output)
    console.print(f"{result.conversations} conversations and {result.pairs} comparison pairs written to "
                  f"{escape(str(result.directory))}")


def _register_scoring_commands() -> None:
    from sparring.pm_cli import pm_app, score

    app.command()(score)
    app.add_typer(pm_app, name="pm")


_register_scoring_commands()


def _register_web_commands() -> None:
    from sparring.web.cli import serve, users_app

    app.command()(serve)
    app.add_typer(users_app, name="users")


_register_web_commands()


def _register_report_command() -> None:
    from sparring.analysis.report_cli import report

    app.command()(report)


_register_report_command()


@app.command()
def runs(db: DbOption = None) -> None:
    """List runs in the database."""
    store = _store(_database_url(db))
    for row in store.runs():
        counts = store.status_counts(row.id)
        console.print(f"{escape(row.id)}  {escape(row.status)}  created {row.created_at:%Y-%m-%d %H:%M}  "
                      + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))


def main() -> None:
    try:
        app()
    except SparringError as error:
        err.print(f"[red]error:[/red] {escape(str(error))}")
        sys.exit(2)
