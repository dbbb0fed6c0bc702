"""The login throttle: every attempt is counted before its password is checked.

An attempt row is written (pending) and committed first; only then are the
recent rows counted, its own included. Ordered by commit, the k-th of any
number of concurrent guesses sees at least k rows, so no more than the limit
are ever verified within the window, on SQLite and PostgreSQL alike, in one
process or several. An attempt over a limit is refused before any hashing and
its row is removed again, so a flood neither costs hashing time nor extends
the lock. A refusal caused only by attempts still being checked is "busy, try
again in a moment", not a lockout: many real people behind one address may log
in at once.

Failures are counted per (username, client address), so a guesser elsewhere
cannot lock the real person out; per address over all usernames; and per
username over all addresses, a ceiling on guessing spread over many addresses.
A success removes only its own row: failures expire with the window, never
because someone logged in meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy import delete, func, select, update

from sparring.store.campaign_schema import LoginAttemptRow
from sparring.web.context import WebContext, utcnow


@dataclass(frozen=True)
class Attempt:
    """``id`` when the password may be checked; otherwise why not: ``locked`` (too many failures) or ``busy``."""

    id: int | None
    refused: Literal["locked", "busy"] | None = None


def _key(username: str, address: str) -> tuple[str, str]:
    return username[:64], address[:64]


def _over(ctx: WebContext, username: str, address: str, *, failures_only: bool, extra: int) -> bool:
    """Whether the recent rows (all, or only failures) plus ``extra`` pass one of the limits."""
    settings = ctx.settings
    since = utcnow() - timedelta(minutes=settings.login_window_minutes)
    recent = select(func.count()).select_from(LoginAttemptRow).where(LoginAttemptRow.at >= since)
    if failures_only:
        recent = recent.where(LoginAttemptRow.pending.is_(False))
    with ctx.transaction() as db:
        pair = db.scalar(recent.where(LoginAttemptRow.username == username,
                                      LoginAttemptRow.address == address)) or 0
        by_address = db.scalar(recent.where(LoginAttemptRow.address == address)) or 0
        by_user = db.scalar(recent.where(LoginAttemptRow.username == username)) or 0
    return (pair + extra > settings.login_max_failures
            or by_address + extra > settings.login_max_failures_per_address
            or by_user + extra > settings.login_max_failures_per_username)


def _refusal(ctx: WebContext, username: str, address: str) -> Attempt:
    locked = _over(ctx, username, address, failures_only=True, extra=1)
    return Attempt(None, "locked" if locked else "busy")


def begin_attempt(ctx: WebContext, username: str, address: str) -> Attempt:
    """Count one attempt before its password is checked; refused when it would pass a limit."""
    username, address = _key(username, address)
    if _over(ctx, username, address, failures_only=False, extra=1):
        return _refusal(ctx, username, address)  # already over: no write, so a flood does not grow the table
    now = utcnow()
    with ctx.transaction() as db:
        db.execute(delete(LoginAttemptRow).where(
            LoginAttemptRow.at < now - timedelta(minutes=ctx.settings.login_window_minutes)))
        row = LoginAttemptRow(username=username, address=address, at=now, pending=True)
        db.add(row)
        db.flush()
        attempt_id = row.id
    if _over(ctx, username, address, failures_only=False, extra=0):  # counted after our own commit: the decision
        forget_attempt(ctx, attempt_id)
        return _refusal(ctx, username, address)
    return Attempt(attempt_id)


def fail_attempt(ctx: WebContext, attempt_id: int) -> None:
    """The password was wrong (or the account inactive): the row stays, as a failure."""
    with ctx.transaction() as db:
        db.execute(update(LoginAttemptRow).where(LoginAttemptRow.id == attempt_id).values(pending=False))


def forget_attempt(ctx: WebContext, attempt_id: int) -> None:
    """A success, or an attempt whose password was never checked: it is not a failure."""
    with ctx.transaction() as db:
        db.execute(delete(LoginAttemptRow).where(LoginAttemptRow.id == attempt_id))
