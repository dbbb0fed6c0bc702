"""Opening a database: SQLite by default, any SQLAlchemy URL (PostgreSQL for teams); schema via Alembic."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from sparring.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"


def default_database_path() -> Path:
    """``$XDG_DATA_HOME/sparring/sparring.db`` (``~/.local/share/sparring/sparring.db``)."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "sparring" / "sparring.db"


def default_database_url() -> str:
    return f"sqlite:///{default_database_path()}"


def resolve_database_url(option: str | None, from_config: str | None = None) -> str:
    """``--db``, else the config's ``database``, else ``$SPARRING_DATABASE_URL``, else the default file.

    A value without ``://`` is a path to an SQLite file (``--db runs.db``).
    """
    chosen = option or from_config or os.environ.get("SPARRING_DATABASE_URL") or default_database_url()
    return chosen if "://" in chosen else f"sqlite:///{Path(chosen).expanduser().absolute()}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (sparring show, the web app) never block the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable at every commit under WAL, except on power loss
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def connect(url: str, pool_size: int = 5, pre_ping: bool = True, migrate: bool = True) -> Engine:
    """An engine for ``url`` with the schema upgraded to the latest migration (``migrate``).

    With ``migrate=False`` (commands that only read) an SQLite file must already
    exist and nothing is created or upgraded; ``check_current`` says whether the
    schema is the one this version reads.

    ``pool_size`` connections are kept open; a server passes as many as it has
    threads doing database work, since a connection opened beyond the pool is
    closed again after one use (and PostgreSQL forks a process per connection).
    ``pre_ping`` tests a PostgreSQL connection at each checkout, which survives a
    database restart silently but costs a round trip per transaction; the web
    server turns it off (after a restart one request fails, then the pool reconnects).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database: not a database URL: {url!r} (e.g. sqlite:///runs.db)") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        in_memory = not database or database == ":memory:" or "mode=memory" in str(parsed.query)
        if not in_memory and not migrate and not Path(database).expanduser().is_file():
            raise ConfigError(f"database: no database file at {database} (check --db; a run or `sparring serve` creates it)")
        if not in_memory and migrate:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **({} if in_memory else {"pool_size": pool_size}))
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            engine = create_engine(parsed, pool_pre_ping=pre_ping, pool_size=pool_size)
        except NoSuchModuleError:
            raise ConfigError(f"database: unknown kind of database {parsed.drivername!r}; "
                              "expected sqlite:///FILE or postgresql://HOST/NAME") from None
        except ModuleNotFoundError as error:
            raise ConfigError(f"database: driver for {parsed.drivername} is not installed ({error.name}); "
                              "for PostgreSQL: pip install 'sparring[postgres]'") from None
    if migrate:
        upgrade(engine)
    return engine


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade(engine: Engine) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def check_current(engine: Engine) -> None:
    """Raise ``ConfigError`` unless the database is at this version's schema (read-only commands never upgrade)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        raise ConfigError("database: not a Sparring database (no schema version); check --db")
    if current != head:
        raise ConfigError(f"database: schema {current}, this Sparring reads {head}; "
                          "upgrade it with `sparring db upgrade` (or any command that writes)")
