"""The login throttle: every attempt is counted before its password is checked.

An attempt row is written and committed first; only then are the recent rows
counted, its own included. Ordered by commit, the k-th of any number of
concurrent guesses sees at least k rows, so no more than the limit are ever
verified within the window, on SQLite and PostgreSQL alike, in one process or
several. An attempt over a limit is refused before any hashing and its row is
removed again, so a flood neither costs hashing time nor extends the lock.

Failures are counted per (username, client address), so a guesser elsewhere
cannot lock the real person out; per address over all usernames; and per
username over all addresses, a ceiling on guessing spread over many addresses.
A success removes only its own row: failures expire with the window, never
because someone logged in meanwhile.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, select

from sparring.store.campaign_schema import LoginAttemptRow
from sparring.web.context import WebContext, utcnow


def _key(username: str, address: str) -> tuple[str, str]:
    return username[:64], address[:64]


def _over_limit(ctx: WebContext, username: str, address: str, *, including_own: bool) -> bool:
    """Whether the recent attempts reach a limit; ``including_own``: the caller's row is among them."""
    settings, extra = ctx.settings, 0 if including_own else 1
    since = utcnow() - timedelta(minutes=settings.login_window_minutes)
    recent = select(func.count()).select_from(LoginAttemptRow).where(LoginAttemptRow.at >= since)
    with ctx.transaction() as db:
        pair = db.scalar(recent.where(LoginAttemptRow.username == username,
                                      LoginAttemptRow.address == address)) or 0
        by_address = db.scalar(recent.where(LoginAttemptRow.address == address)) or 0
        by_user = db.scalar(recent.where(LoginAttemptRow.username == username)) or 0
    return (pair + extra > settings.login_max_failures
            or by_address + extra > settings.login_max_failures_per_address
            or by_user + extra > settings.login_max_failures_per_username)


def begin_attempt(ctx: WebContext, username: str, address: str) -> int | None:
    """Count one attempt; its id when its password may be checked, None when it is over a limit."""
    username, address = _key(username, address)
    if _over_limit(ctx, username, address, including_own=False):
        return None  # already over: refused without a write, so a flood does not grow the table
    now = utcnow()
    with ctx.transaction() as db:
        db.execute(delete(LoginAttemptRow).where(
            LoginAttemptRow.at < now - timedelta(minutes=ctx.settings.login_window_minutes)))
        row = LoginAttemptRow(username=username, address=address, at=now)
        db.add(row)
        db.flush()
        attempt_id = row.id
    if _over_limit(ctx, username, address, including_own=True):  # counted after our own commit: the decision
        forget_attempt(ctx, attempt_id)
        return None
    return attempt_id


def forget_attempt(ctx: WebContext, attempt_id: int) -> None:
    """A success, or an attempt whose password was never checked: it is not a failure."""
    with ctx.transaction() as db:
        db.execute(delete(LoginAttemptRow).where(LoginAttemptRow.id == attempt_id))
