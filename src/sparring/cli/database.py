"""``sparring db upgrade``: bring a database to this version's schema (commands that only read never do)."""

from __future__ import annotations

import typer
from rich.markup import escape

from sparring.cli.options import DbOption, open_for_writing
from sparring.terminal import console

db_app = typer.Typer(no_args_is_help=True, help="The database itself.")


@db_app.command("upgrade")
def upgrade(db: DbOption = None) -> None:
    """Create the database or upgrade its schema to this version (what `run` and `serve` do at start)."""
    from sparring.redaction import redact_database_url

    store = open_for_writing(db)
    store.close()
    console.print(f"database {escape(redact_database_url(store.url))} is at the current schema", soft_wrap=True)
