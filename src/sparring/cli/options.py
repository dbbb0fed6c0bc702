"""Options and helpers every command group shares: the database option and opening the store for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sparring.store import Store

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: $SPARRING_DATABASE_URL, else the SQLite file in the data dir)."),
]


def database_url(option: str | None, from_config: str | None = None) -> str:
    from sparring.store import resolve_database_url

    return resolve_database_url(option, from_config)


def open_for_writing(option: str | None, from_config: str | None = None) -> Store:
    """Create or upgrade the database; ``DatabaseUnusable`` (one line) when it cannot take writes."""
    from sparring.store.opening import open_store

    return open_store(database_url(option, from_config))


def open_for_reading(option: str | None) -> Store:
    """An existing database at this version's schema; nothing is created or upgraded."""
    from sparring.store.opening import open_store

    return open_store(database_url(option), writable=False)
