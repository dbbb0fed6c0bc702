"""Opening the web app's database so that every way it can be unusable is one line, not a traceback.

A parent path that is a file, an unwritable directory, a corrupt or read-only
file, an unreachable server: ``open_store`` raises ``DatabaseUnusable`` naming
the URL (password hidden) and the reason. It also proves the database takes a
write, so a read-only or immutable file stops the server at start instead of
failing every later write.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from sparring.errors import SparringError
from sparring.store.repository import Store
from sparring.web.redaction import redact, redact_database_url


class DatabaseUnusable(SparringError):
    """The database cannot be opened, upgraded or written; the message is one line."""


def _reason(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error  # the driver's own message, without SQL and parameters
    first_line = (str(original).strip().splitlines() or [type(original).__name__])[0]
    return redact(first_line)[:300]


def check_writable(engine: Engine) -> None:
    """Write and roll back: raises when the database refuses writes (read-only file or server)."""
    with engine.connect() as connection, connection.begin() as transaction:
        connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
        transaction.rollback()


def open_store(url: str, pool_size: int = 5, pre_ping: bool = True, writable: bool = True) -> Store:
    """The store with its schema upgraded, or ``DatabaseUnusable`` with one line saying why."""
    shown = redact_database_url(url)
    store: Store | None = None
    try:
        store = Store(url, pool_size=pool_size, pre_ping=pre_ping)
        if writable:
            check_writable(store.engine)
    except SparringError as error:
        _close(store)
        raise DatabaseUnusable(f"database {shown}: {_reason(error)}") from None
    except (SQLAlchemyError, OSError) as error:
        _close(store)
        raise DatabaseUnusable(f"database {shown} is unusable: {_reason(error)}") from None
    return store


def _close(store: Store | None) -> None:
    if store is not None:
        store.close()
