"""Accounts: creating users (CLI and admin page), logging in and out."""

from __future__ import annotations

import re
import secrets
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from sparring.store.campaign_schema import ROLES, UserRow
from sparring.web.context import WebContext, utcnow, web_context
from sparring.web.pages import redirect, render
from sparring.web.passwords import hash_password, verify_password_off_loop
from sparring.web.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Action,
    Viewer,
    action,
    check_login_csrf,
    clear_login_failures,
    client_address,
    create_session,
    end_session,
    login_blocked,
    new_token,
    page,
    read_form,
    record_login_failure,
)

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")

router = APIRouter()


class AccountError(ValueError):
    """A user could not be created; the message names the field."""


def create_user(engine: Engine, username: str, password: str, role: str) -> UserRow:
    """Create an account with an Argon2id password hash and a random pseudonym (the id used in exports)."""
    if not USERNAME.match(username):
        raise AccountError("username: expected 2-64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise AccountError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    try:
        password_hash = hash_password(password)
    except ValueError as error:
        raise AccountError(str(error)) from None
    row = UserRow(username=username, password_hash=password_hash, role=role,
                  pseudonym=f"rt-{secrets.token_hex(6)}", active=True, created_at=utcnow())
    try:
        with Session(engine, expire_on_commit=False) as db, db.begin():
            db.add(row)
    except IntegrityError:
        raise AccountError(f"username: {username!r} is already taken") from None
    return row


def _safe_next(value: str) -> str:
    """Only local paths, so the login page cannot be used to redirect elsewhere."""
    return value if value.startswith("/") and not value.startswith("//") and "\\" not in value else "/"


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/") -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
    response = render(request, "login.html", login_csrf=token, next=_safe_next(next))
    _set_login_csrf(request, response, token)
    return response


def _set_login_csrf(request: Request, response: Response, token: str) -> None:
    ctx: WebContext = request.app.state.web
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax", secure=ctx.settings.secure_cookies)


@router.post("/login")
async def login(request: Request, ctx: WebContext = Depends(web_context)) -> Response:
    form = await read_form(request)
    check_login_csrf(request, form)
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    next_path = _safe_next(str(form.get("next", "/")))
    address = client_address(request)
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")

    def account() -> tuple[bool, UserRow | None]:
        if login_blocked(ctx, username, address):
            return True, None
        with ctx.transaction() as db:
            return False, db.scalar(select(UserRow).where(UserRow.username == username))

    def conclude(user: UserRow | None, verified: bool) -> str | None:
        if user is None or not verified or not user.active:
            record_login_failure(ctx, username, address)
            return None
        clear_login_failures(ctx, username)
        return create_session(ctx, user.id)

    blocked, user = await run_in_threadpool(account)
    status, session_token = 429, None
    if not blocked:
        verified = await verify_password_off_loop(user.password_hash if user else None, password)
        session_token = await run_in_threadpool(conclude, user, verified)
        status = 200 if session_token else 401
    if status == 429:
        minutes = int(ctx.settings.login_window_minutes)
        return render(request, "login.html", status_code=429, login_csrf=token, next=next_path, username=username,
                      error=f"Too many failed logins. Wait {minutes} minutes and try again, or ask an admin.")
    if session_token is None:
        return render(request, "login.html", status_code=401, login_csrf=token, next=next_path, username=username,
                      error="Wrong username or password.")
    response = redirect(next_path)
    response.set_cookie(SESSION_COOKIE, session_token, httponly=True, samesite="lax",
                        secure=ctx.settings.secure_cookies, max_age=int(ctx.settings.session_hours * 3600))
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, done: Action = Depends(action()), ctx: WebContext = Depends(web_context)) -> Response:
    end_session(ctx, request.cookies.get(SESSION_COOKIE, ""))
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, viewer: Viewer = Depends(page("admin")),
               ctx: WebContext = Depends(web_context)) -> Response:
    return _users(request, viewer, ctx)


def _users(request: Request, viewer: Viewer, ctx: WebContext, status_code: int = 200, **extra: object) -> Response:
    with ctx.transaction() as db:
        users = list(db.scalars(select(UserRow).order_by(UserRow.username)))
    return render(request, "admin_users.html", status_code=status_code, viewer=viewer, users=users, roles=ROLES,
                  **extra)


@router.post("/admin/users")
def add_user(request: Request, done: Action = Depends(action("admin")),
             ctx: WebContext = Depends(web_context)) -> Response:
    username, role = done.get("username").strip(), done.get("role")
    try:
        create_user(ctx.engine, username, done.get("password"), role)
    except AccountError as error:
        return _users(request, done.viewer, ctx, status_code=400, error=str(error), username=username, role=role)
    return redirect(f"/admin/users?created={quote(username)}")

