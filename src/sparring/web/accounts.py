"""Accounts on the web: logging in and out, and the admin's users page (create, deactivate, end sessions)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from sparring.store.campaign_schema import ROLES, UserRow
from sparring.web.context import WebContext, web_context
from sparring.web.login_throttle import Attempt, begin_attempt, fail_attempt, forget_attempt
from sparring.web.pages import redirect, render
from sparring.web.passwords import HashingBusy, verify_password_off_loop
from sparring.web.request_limits import RowId
from sparring.web.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Action,
    Viewer,
    action,
    check_login_csrf,
    client_address,
    create_session,
    end_session,
    new_token,
    page,
    read_form,
)
from sparring.web.users import AccountError, create_user, end_sessions, list_users, set_active

router = APIRouter()

__all__ = ["AccountError", "create_user", "router"]  # creating accounts lives in ``users``; kept importable here


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

    def begin() -> tuple[Attempt, UserRow | None]:
        attempt = begin_attempt(ctx, username, address)  # counted before the password is checked
        if attempt.id is None:
            return attempt, None
        with ctx.transaction() as db:
            return attempt, db.scalar(select(UserRow).where(UserRow.username == username))

    def conclude(attempt: int, user: UserRow | None, verified: bool) -> str | None:
        if user is None or not verified or not user.active:
            fail_attempt(ctx, attempt)
            return None
        forget_attempt(ctx, attempt)
        return create_session(ctx, user)

    def busy() -> Response:
        response = again(503, "Many logins are being checked right now. Try again in a few seconds.")
        response.headers["Retry-After"] = "2"
        return response

    def again(status: int, error: str) -> Response:
        return render(request, "login.html", status_code=status, login_csrf=token, next=next_path,
                      username=username, error=error)

    attempt, user = await run_in_threadpool(begin)
    if attempt.refused == "busy":
        return busy()
    if attempt.id is None:
        minutes = int(ctx.settings.login_window_minutes)
        return again(429, f"Too many failed logins. Wait {minutes} minutes and try again, or ask an admin.")
    try:
        verified = await verify_password_off_loop(user.password_hash if user else None, password,
                                                  ctx.settings.login_max_waiting)
    except HashingBusy:
        await run_in_threadpool(forget_attempt, ctx, attempt.id)  # never checked: not a failure
        return busy()
    session_token = await run_in_threadpool(conclude, attempt.id, user, verified)
    if session_token is None:
        return again(401, "Wrong username or password.")
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
    users = list_users(ctx.engine)
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



USER_ACTIONS = ("deactivate", "activate", "end_sessions")


@router.post("/admin/users/{user_id}")
def change_user(user_id: RowId, done: Action = Depends(action("admin")),
                ctx: WebContext = Depends(web_context)) -> Response:
    """Deactivate or reactivate an account, or end its sessions; taking access away ends its sessions."""
    what = done.get("action")
    if what not in USER_ACTIONS:
        raise HTTPException(400, f"action: expected one of {', '.join(USER_ACTIONS)}")
    with ctx.transaction() as db:
        username = db.scalar(select(UserRow.username).where(UserRow.id == user_id))
    if username is None:
        raise HTTPException(404, "No such user.")
    if user_id == done.viewer.user_id and what != "activate":
        raise HTTPException(400, "You cannot deactivate yourself or end your own sessions here; use Log out.")
    if what == "end_sessions":
        end_sessions(ctx.engine, username)
    else:
        set_active(ctx.engine, username, what == "activate")
    return redirect(f"/admin/users?changed={quote(username)}")
