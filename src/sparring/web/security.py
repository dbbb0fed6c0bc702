"""Sessions and CSRF, and the dependencies every route uses to check who is asking.

A session token lives only in the HttpOnly cookie; the database keeps its
SHA-256, so a leaked database does not leak live logins. Each session has its
own CSRF token, required in every POST form. Before login, a double-submit
cookie protects the login form itself. A session also records a stamp of
its user's password hash: a new password, however it was set, ends it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Depends, HTTPException, Request
from sqlalchemy import delete, select
from starlette.datastructures import FormData

from sparring.store.campaign_schema import SessionRow, UserRow
from sparring.web.context import WebContext, aware, utcnow, web_context

SESSION_COOKIE = "sparring_session"
LOGIN_CSRF_COOKIE = "sparring_login_csrf"
CSRF_FIELD = "csrf_token"


class LoginRequired(Exception):
    """Raised by the auth dependency; the app turns it into a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


@dataclass(frozen=True)
class Viewer:
    """The logged-in person making this request."""

    user_id: int
    username: str
    role: str
    pseudonym: str
    csrf_token: str
    session_started: datetime


@dataclass(frozen=True)
class Action:
    """A POST that passed the login, CSRF and role checks, with its form."""

    viewer: Viewer
    form: FormData

    def get(self, name: str, default: str = "") -> str:
        value = self.form.get(name, default)
        return value if isinstance(value, str) else default


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def password_stamp(password_hash: str) -> str:
    """Short digest of a password hash (migration 0003 computes the same): changes whenever the password does."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def create_session(ctx: WebContext, user: UserRow) -> str:
    """Store a new login and return the raw token for the cookie; expired sessions are purged on the way."""
    token, now = new_token(), utcnow()
    with ctx.transaction() as db:
        db.execute(delete(SessionRow).where(SessionRow.expires_at < now))
        db.add(SessionRow(token_hash=token_hash(token), user_id=user.id, csrf_token=new_token(), created_at=now,
                          expires_at=now + timedelta(hours=ctx.settings.session_hours),
                          password_stamp=password_stamp(user.password_hash)))
    return token


def end_session(ctx: WebContext, token: str) -> None:
    with ctx.transaction() as db:
        db.execute(delete(SessionRow).where(SessionRow.token_hash == token_hash(token)))


def find_viewer(ctx: WebContext, token: str | None) -> Viewer | None:
    if not token:
        return None
    with ctx.transaction() as db:
        row = db.execute(
            select(SessionRow, UserRow).join(UserRow, UserRow.id == SessionRow.user_id)
            .where(SessionRow.token_hash == token_hash(token))
        ).first()
        if row is None:
            return None
        session, user = row
        if (aware(session.expires_at) <= utcnow() or not user.active
                or session.password_stamp != password_stamp(user.password_hash)):
            db.delete(session)
            return None
        return Viewer(user.id, user.username, user.role, user.pseudonym, session.csrf_token, aware(session.created_at))


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


# -- dependencies ----------------------------------------------------------------------------------

def current_viewer(request: Request, ctx: WebContext = Depends(web_context)) -> Viewer:
    viewer = find_viewer(ctx, request.cookies.get(SESSION_COOKIE))
    if viewer is None:
        path = request.url.path if request.method == "GET" else "/"
        raise LoginRequired(path)
    return viewer


async def read_form(request: Request) -> FormData:
    """The POST form: no file uploads, a bounded number of fields, and no NUL in any value (400 otherwise)."""
    form = await request.form(max_files=0, max_fields=200)  # a malformed multipart body is Starlette's 400
    for name, value in form.multi_items():
        if "\x00" in name or isinstance(value, str) and "\x00" in value:
            raise HTTPException(400, f"Bad request: {name.replace(chr(0), '')[:40] or 'a field'} contains a NUL "
                                     "character.")
    return form


def _check_role(viewer: Viewer, roles: tuple[str, ...]) -> None:
    if roles and viewer.role not in roles:
        raise HTTPException(403, f"This page is for {' or '.join(r.replace('_', ' ') + 's' for r in roles)} only; "
                                 f"you are logged in as a {viewer.role.replace('_', ' ')}.")


def page(*roles: str) -> Callable[..., Awaitable[Viewer]]:
    """Dependency for a GET page: logged in and one of ``roles`` (any role when none given)."""

    async def dependency(viewer: Viewer = Depends(current_viewer)) -> Viewer:  # no I/O: stays on the event loop
        _check_role(viewer, roles)
        return viewer

    return dependency


def action(*roles: str) -> Callable[..., Awaitable[Action]]:
    """Dependency for a POST: logged in, the session's CSRF token in the form, and one of ``roles``."""

    async def dependency(viewer: Viewer = Depends(current_viewer), form: FormData = Depends(read_form)) -> Action:
        sent = form.get(CSRF_FIELD)
        if not isinstance(sent, str) or not hmac.compare_digest(sent, viewer.csrf_token):
            raise HTTPException(403, "The form's security token (csrf_token) is missing or wrong. "
                                     "Reload the page and submit again.")
        _check_role(viewer, roles)
        return Action(viewer, form)

    return dependency


def check_login_csrf(request: Request, form: FormData) -> None:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    sent = form.get(CSRF_FIELD)
    if not cookie or not isinstance(sent, str) or not hmac.compare_digest(sent, cookie):
        raise HTTPException(403, "The login form's security token (csrf_token) is missing or wrong. "
                                 "Reload the login page and try again.")
