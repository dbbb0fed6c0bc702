"""Accounts and security: login, rate limit, expiry, CSRF on every POST, login on every page, roles."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from test_web_support import PASSWORD, Web, csrf_of, post, web_fixture  # noqa: F401  (fixture)

from sparring.store.campaign_schema import SessionRow, UserRow
from sparring.web.context import utcnow
from sparring.web.security import SESSION_COOKIE, token_hash


def _api_routes(routes):  # type: ignore[no-untyped-def]
    """Every APIRoute, also inside included routers (newer FastAPI keeps them nested; no prefixes here)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from _api_routes(route.original_router.routes)


def _routes(app, method: str) -> list[str]:  # type: ignore[no-untyped-def]
    paths = []
    for route in _api_routes(app.routes):
        if method in route.methods:
            paths.append(re.sub(r"\{(\w+)\}", lambda m: "1" if m.group(1).endswith(("task_id", "review_id")) else "x",
                                route.path))
    return paths


def test_login_and_logout(web: Web):
    web.add_user("alice", "red_teamer")
    client = web.client()
    page = client.get("/login")
    assert page.status_code == 200 and 'id="login-form"' in page.text
    response = client.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": csrf_of(page.text)})
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    home = client.get("/")
    assert home.status_code == 200 and "alice" in home.text

    with Session(web.ctx.engine) as db:  # only the token's hash is stored
        token = client.cookies[SESSION_COOKIE]
        assert db.scalar(select(SessionRow).where(SessionRow.token_hash == token_hash(token))) is not None
        assert db.scalar(select(SessionRow).where(SessionRow.token_hash == token)) is None
        assert db.scalar(select(UserRow.password_hash).where(UserRow.username == "alice")).startswith("$argon2id$")

    out = post(client, "/", "/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    client.cookies.set(SESSION_COOKIE, token)  # the old token no longer works
    assert client.get("/").status_code == 303


def test_wrong_password_and_unknown_user_are_refused_alike(web: Web):
    web.add_user("bob", "reviewer")
    client = web.client()
    for username in ("bob", "nobody"):
        page = client.get("/login")
        response = client.post("/login", data={"username": username, "password": "wrong password",
                                               "csrf_token": csrf_of(page.text)})
        assert response.status_code == 401
        assert "Wrong username or password." in response.text
        assert SESSION_COOKIE not in client.cookies
    assert client.get("/").status_code == 303


def test_the_sixth_failed_login_is_rate_limited(web: Web):
    web.add_user("carol", "red_teamer")
    client = web.client()
    for _ in range(5):
        page = client.get("/login")
        assert client.post("/login", data={"username": "carol", "password": "nope nope",
                                           "csrf_token": csrf_of(page.text)}).status_code == 401
    page = client.get("/login")
    limited = client.post("/login", data={"username": "carol", "password": PASSWORD, "csrf_token": csrf_of(page.text)})
    assert limited.status_code == 429  # even the right password waits out the window
    assert "Too many failed logins" in limited.text
    assert SESSION_COOKIE not in client.cookies
    web.add_user("dave", "red_teamer")  # another username from the same address still logs in
    assert web.login("dave").get("/").status_code == 200


def test_rate_limit_per_address(sqlite_url: str):
    from test_web_support import make_web

    harness = make_web(sqlite_url, login_max_failures_per_address=3)
    harness.add_user("erin", "red_teamer")
    client = harness.client()
    for name in ("x1", "x2", "x3"):
        page = client.get("/login")
        client.post("/login", data={"username": name, "password": "nope nope", "csrf_token": csrf_of(page.text)})
    page = client.get("/login")
    assert client.post("/login", data={"username": "erin", "password": PASSWORD,
                                       "csrf_token": csrf_of(page.text)}).status_code == 429


def test_expired_session_goes_back_to_login(web: Web):
    client = web.login("frank", "red_teamer")
    assert client.get("/").status_code == 200
    with Session(web.ctx.engine) as db, db.begin():
        db.execute(update(SessionRow).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = client.get("/")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    with Session(web.ctx.engine) as db:
        assert db.scalar(select(SessionRow)) is None  # the expired session is gone


def test_login_form_needs_its_csrf_token(web: Web):
    web.add_user("gina", "admin")
    client = web.client()
    client.get("/login")
    assert client.post("/login", data={"username": "gina", "password": PASSWORD}).status_code == 403
    assert client.post("/login", data={"username": "gina", "password": PASSWORD,
                                       "csrf_token": "forged"}).status_code == 403


def test_login_redirects_only_to_local_paths(web: Web):
    web.add_user("hugo", "admin")
    client = web.client()
    page = client.get("/login?next=//evil.example/")
    response = client.post("/login", data={"username": "hugo", "password": PASSWORD, "next": "//evil.example/",
                                           "csrf_token": csrf_of(page.text)})
    assert response.headers["location"] == "/"


def test_every_page_needs_a_login(web: Web):
    client = web.client()
    pages = [p for p in _routes(web.app, "GET") if p != "/login"]
    assert len(pages) >= 12
    for path in pages:
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/login?next="), path


def test_every_post_needs_a_login(web: Web):
    client = web.client()
    for path in _routes(web.app, "POST"):
        if path == "/login":
            continue
        response = client.post(path, data={"csrf_token": "anything"})
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), path


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_every_post_checks_the_csrf_token(web: Web, token: str | None):
    admin = web.login("ivy", "admin")
    routes = _routes(web.app, "POST")
    assert len(routes) >= 15
    data = {"name": "x", "message": "hello", "turn": "0", "sample": "0", "rating": "0", "status": "closed"}
    if token:
        data["csrf_token"] = token
    for path in routes:
        response = admin.post(path, data=data)
        assert response.status_code == 403, path
        assert "csrf_token" in response.text
    assert admin.get("/").status_code == 200  # still logged in: nothing was done


def test_roles_are_checked(web: Web):
    admin = web.login("root", "admin")
    campaign = web.campaign(admin)
    red = web.login("rita", "red_teamer")
    reviewer = web.login("rex", "reviewer")
    for path in ("/admin/campaigns", "/admin/users", f"/admin/campaigns/{campaign}", "/review"):
        assert red.get(path).status_code == 403, path
    for path in ("/admin/campaigns", "/admin/users", f"/campaigns/{campaign}", f"/campaigns/{campaign}/topics"):
        assert reviewer.get(path).status_code == 403, path
    forbidden = reviewer.get(f"/campaigns/{campaign}")
    assert "for red teamers or admins only" in forbidden.text
    # a red teamer cannot use an admin action even with a valid token
    page = red.get("/")
    response = red.post("/admin/users", data={"username": "mallory", "password": "longenough", "role": "admin",
                                              "csrf_token": csrf_of(page.text)})
    assert response.status_code == 403
    with Session(web.ctx.engine) as db:
        assert db.scalar(select(UserRow).where(UserRow.username == "mallory")) is None


def test_admin_creates_users_with_clear_errors(web: Web):
    admin = web.login("root", "admin")
    ok = post(admin, "/admin/users", "/admin/users", {"username": "newbie", "password": "longenough1",
                                                      "role": "reviewer"})
    assert ok.status_code == 303
    assert 'data-testid="user-newbie"' in admin.get("/admin/users").text
    short = post(admin, "/admin/users", "/admin/users", {"username": "other", "password": "short", "role": "reviewer"})
    assert short.status_code == 400 and "password: expected at least 8 characters" in short.text
    taken = post(admin, "/admin/users", "/admin/users", {"username": "newbie", "password": "longenough1",
                                                         "role": "reviewer"})
    assert taken.status_code == 400 and "already taken" in taken.text
    role = post(admin, "/admin/users", "/admin/users", {"username": "x2", "password": "longenough1", "role": "boss"})
    assert role.status_code == 400 and "role: expected one of" in role.text
    assert web.login("newbie", password="longenough1").get("/review").status_code == 200


def test_users_add_cli_reads_the_password_from_stdin(sqlite_url: str):
    from typer.testing import CliRunner

    from sparring.cli import app

    result = CliRunner().invoke(app, ["users", "add", "boss", "--role", "admin", "--db", sqlite_url,
                                      "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "created admin boss" in result.output
    from test_web_support import make_web

    harness = make_web(sqlite_url)
    assert harness.login("boss").get("/admin/campaigns").status_code == 200
    bad = CliRunner().invoke(app, ["users", "add", "boss", "--role", "admin", "--db", sqlite_url,
                                   "--password-stdin"], input=PASSWORD + "\n")
    assert bad.exit_code != 0 and "already taken" in bad.output


def test_security_headers(web: Web):
    page = web.client().get("/login")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"


def test_serve_runs_the_app_on_the_given_database(sqlite_url: str, monkeypatch: pytest.MonkeyPatch):
    import uvicorn
    from typer.testing import CliRunner

    from sparring.cli import app

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda application, **kwargs: seen.update(app=application, **kwargs))
    result = CliRunner().invoke(app, ["serve", "--db", sqlite_url, "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert seen["port"] == 8123 and seen["host"] == "127.0.0.1"
    assert seen["app"].state.web.settings.database_url == sqlite_url
