"""What every request handler shares: settings, the database, the targets pool, conversation locks."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from sparring.store.repository import Store
from sparring.web.settings import WebSettings
from sparring.web.targets_pool import TargetsPool


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time the app writes is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class WebContext:
    settings: WebSettings
    store: Store
    pool: TargetsPool
    _locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(default_factory=weakref.WeakValueDictionary)

    @property
    def engine(self) -> Engine:
        return self.store.engine

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed whole at the end, rolled back on any error."""
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def conversation_lock(self, conversation_id: str) -> asyncio.Lock:
        """Serialises writes to one conversation in this process (double submits wait, then see the new state)."""
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[conversation_id] = lock
        return lock

    def is_locked(self, conversation_id: str) -> bool:
        lock = self._locks.get(conversation_id)
        return lock is not None and lock.locked()


async def web_context(request: Request) -> WebContext:
    """Async because it does no I/O: FastAPI would otherwise run it on a worker thread for every request."""
    return request.app.state.web  # type: ignore[no-any-return]
