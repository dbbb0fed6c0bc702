"""Opening a database so that every way it can be unusable is one line, not a traceback.

A parent path that is a file, an unwritable directory, a corrupt or read-only
file, a URL with an unknown scheme, an unreachable server: ``open_store``
raises ``DatabaseUnusable`` naming the URL (password hidden) and the reason.
A writer also proves the database takes a write, so a read-only file stops a
command at start instead of failing every later write. A reader
(``writable=False``) creates and upgrades nothing: a mistyped ``--db`` is an
error, not a new empty database.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from sparring.errors import SparringError
from sparring.redaction import redact, redact_database_url
from sparring.store.database import check_current
from sparring.store.repository import Store


class DatabaseUnusable(SparringError):
    """The database cannot be opened, upgraded or written; the message is one line."""


def _reason(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error  # the driver's own message, without SQL and parameters
    first_line = (str(original).strip().splitlines() or [type(original).__name__])[0]
    return redact(first_line.removeprefix("database: "))[:300]


def check_writable(engine: Engine) -> None:
    """Write and roll back: raises when the database refuses writes (read-only file or server)."""
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
        transaction.rollback()


def open_store(url: str, pool_size: int = 5, pre_ping: bool = True, writable: bool = True) -> Store:
    """The store (upgraded when ``writable``), or ``DatabaseUnusable`` with one line saying why."""
    shown = redact_database_url(url)
    store: Store | None = None
    try:
        store = Store(url, pool_size=pool_size, pre_ping=pre_ping, migrate=writable)
        if writable:
            check_writable(store.engine)
        else:
            check_current(store.engine)
    except SparringError as error:
        _close(store)
        raise DatabaseUnusable(f"database {shown}: {_reason(error)}") from None
    except (SQLAlchemyError, OSError, ValueError) as error:
        _close(store)
        raise DatabaseUnusable(f"database {shown} is unusable: {_reason(error)}") from None
    return store


def _close(store: Store | None) -> None:
    if store is not None:
        store.close()
