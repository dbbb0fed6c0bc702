"""Accounts as records: create, list, deactivate or reactivate, reset a password, end sessions.

The CLI and the admin page call these. Every change that takes access away
also deletes the person's sessions in the same transaction, so it takes effect
at their next request; a session whose password stamp no longer matches is
refused anyway (see ``security.find_viewer``), even after a change by hand.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sparring.store.campaign_schema import ROLES, SessionRow, UserRow
from sparring.web.context import utcnow
from sparring.web.passwords import hash_password

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")


class AccountError(ValueError):
    """An account could not be created or changed; the message names the field or the user."""


@dataclass(frozen=True)
class UserSummary:
    """One account as ``sparring users list`` and the admin page show it."""

    id: int
    username: str
    role: str
    pseudonym: str
    active: bool
    live_sessions: int


def _new_hash(password: str) -> str:
    try:
        return hash_password(password)
    except ValueError as error:
        raise AccountError(str(error)) from None


def create_user(engine: Engine, username: str, password: str, role: str) -> UserRow:
    """Create an account with an Argon2id password hash and a random pseudonym (the id used in exports)."""
    if not USERNAME.match(username):
        raise AccountError("username: expected 2-64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise AccountError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    row = UserRow(username=username, password_hash=_new_hash(password), role=role,
                  pseudonym=f"rt-{secrets.token_hex(6)}", active=True, created_at=utcnow())
    try:
        with Session(engine, expire_on_commit=False) as db, db.begin():
            db.add(row)
    except IntegrityError:
        raise AccountError(f"username: {username!r} is already taken") from None
    return row


def list_users(engine: Engine) -> list[UserSummary]:
    now = utcnow()
    live = (select(SessionRow.user_id, func.count().label("n")).where(SessionRow.expires_at > now)
            .group_by(SessionRow.user_id).subquery())
    with Session(engine) as db:
        rows = db.execute(select(UserRow, live.c.n).outerjoin(live, live.c.user_id == UserRow.id)
                          .order_by(UserRow.username)).all()
    return [UserSummary(u.id, u.username, u.role, u.pseudonym, u.active, n or 0) for u, n in rows]


def _change(engine: Engine, username: str, *, active: bool | None = None, password: str | None = None,
            end_sessions: bool = True) -> tuple[UserRow, int]:
    """Apply the change and delete the user's sessions in one transaction; returns the user and sessions ended."""
    new_hash = _new_hash(password) if password is not None else None  # hashed before any lock is taken
    with Session(engine, expire_on_commit=False) as db, db.begin():
        user = db.scalar(select(UserRow).where(UserRow.username == username).with_for_update())
        if user is None:
            raise AccountError(f"no user {username!r}")
        if active is not None:
            user.active = active
        if new_hash is not None:
            user.password_hash = new_hash
        # a DELETE's result is a CursorResult at runtime (Session.execute is typed as returning Result)
        ended = (cast(CursorResult[Any], db.execute(delete(SessionRow).where(SessionRow.user_id == user.id))).rowcount
                 if end_sessions else 0)
    return user, ended or 0


def set_active(engine: Engine, username: str, active: bool) -> tuple[UserRow, int]:
    """Deactivating ends every session of the user; reactivating ends none (there are none)."""
    return _change(engine, username, active=active, end_sessions=not active)


def reset_password(engine: Engine, username: str, password: str) -> tuple[UserRow, int]:
    return _change(engine, username, password=password)


def end_sessions(engine: Engine, username: str) -> tuple[UserRow, int]:
    return _change(engine, username)
