"""Persistence: SQLAlchemy 2 with Alembic migrations; SQLite by default, PostgreSQL for teams."""

from sparring.store import campaign_schema  # noqa: F401  (campaign tables share the metadata)
from sparring.store.database import default_database_path, default_database_url, resolve_database_url
from sparring.store.repository import ErrorWrite, FinishWrite, Store, StoredConversation, TurnWrite, UnitRecord

__all__ = [
    "ErrorWrite", "FinishWrite", "Store", "StoredConversation", "TurnWrite", "UnitRecord",
    "default_database_path", "default_database_url", "resolve_database_url",
]
