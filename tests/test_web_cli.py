"""``sparring users`` and ``sparring serve``: account lifecycle, one-line errors and exit codes, secrets never printed,
proxy headers trusted only when configured."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from test_web_support import PASSWORD, csrf_of, make_web, post
from typer.testing import CliRunner

from sparring.cli import app
from sparring.store.campaign_schema import SessionRow, UserRow
from sparring.web.users import create_user

runner = CliRunner()


def cli(*args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), input=stdin)


def one_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


# -- 6: account lifecycle -----------------------------------------------------------------------------------------

def test_users_lifecycle_from_the_cli(sqlite_url: str):
    web = make_web(sqlite_url)
    web.add_user("rita", "red_teamer")
    rita = web.login("rita")
    assert rita.get("/").status_code == 200

    listed = cli("users", "list", "--db", sqlite_url)
    assert listed.exit_code == 0 and "rita  red_teamer  active" in listed.output and "sessions=1" in listed.output

    done = cli("users", "deactivate", "rita", "--db", sqlite_url)
    assert done.exit_code == 0 and one_line(done) == "deactivated rita (red_teamer); 1 sessions ended"
    assert rita.get("/").status_code == 303  # the live session ended at once
    page = web.client()
    login = page.post("/login", data={"username": "rita", "password": PASSWORD, "csrf_token": csrf_of(
        page.get("/login").text)})
    assert login.status_code == 401
    assert "deactivated" in cli("users", "list", "--db", sqlite_url).output

    assert one_line(cli("users", "activate", "rita", "--db", sqlite_url)).startswith("activated rita")
    rita = web.login("rita")
    reset = cli("users", "reset-password", "rita", "--db", sqlite_url, "--password-stdin",
                stdin="a brand new password\n")
    assert reset.exit_code == 0 and one_line(reset) == "new password for rita (red_teamer); 1 sessions ended"
    assert rita.get("/").status_code == 303
    web.login("rita", password="a brand new password")

    ended = cli("users", "end-sessions", "rita", "--db", sqlite_url)
    assert ended.exit_code == 0 and one_line(ended) == "ended the sessions of rita (red_teamer); 1 sessions ended"
    web.ctx.store.close()


@pytest.mark.parametrize("args", [["deactivate", "nobody"], ["activate", "nobody"], ["end-sessions", "nobody"],
                                  ["reset-password", "nobody", "--password-stdin"],
                                  ["reset-password", "rita", "--password-stdin"], ["add", "rita", "--password-stdin"],
                                  ["add", "x", "--password-stdin"], ["add", "newone", "--role", "boss",
                                                                      "--password-stdin"]])
def test_users_refusals_are_one_line_with_exit_code_1(sqlite_url: str, args: list[str]):
    cli("users", "add", "rita", "--db", sqlite_url, "--password-stdin", stdin=PASSWORD + "\n")
    stdin = "short\n" if args[0] == "reset-password" and args[1] == "rita" else PASSWORD + "\n"
    result = cli("users", *args, "--db", sqlite_url, stdin=stdin)
    assert result.exit_code == 1
    line = one_line(result)
    assert line.startswith("error: user ") and args[1] in line


def test_a_password_changed_by_hand_ends_the_sessions(sqlite_url: str):
    web = make_web(sqlite_url)
    rita = web.login("rita", "red_teamer")
    other = create_user(web.ctx.engine, "someone", "another password", "reviewer")
    with Session(web.ctx.engine) as db, db.begin():
        db.execute(update(UserRow).where(UserRow.username == "rita").values(password_hash=other.password_hash))
    assert rita.get("/").status_code == 303
    with Session(web.ctx.engine) as db:
        assert db.scalar(select(SessionRow)) is None
    web.ctx.store.close()


def test_admin_deactivates_and_ends_sessions_on_the_web(sqlite_url: str):
    web = make_web(sqlite_url)
    admin = web.login("root", "admin")
    rita = web.login("rita", "red_teamer")
    with Session(web.ctx.engine) as db:
        rita_id = db.scalar(select(UserRow.id).where(UserRow.username == "rita"))
        root_id = db.scalar(select(UserRow.id).where(UserRow.username == "root"))
    page = admin.get("/admin/users")
    assert 'data-testid="deactivate-rita"' in page.text and 'data-testid="deactivate-root"' not in page.text
    assert post(admin, "/admin/users", f"/admin/users/{rita_id}", {"action": "end_sessions"}).status_code == 303
    assert rita.get("/").status_code == 303
    rita = web.login("rita")
    assert post(admin, "/admin/users", f"/admin/users/{rita_id}", {"action": "deactivate"}).status_code == 303
    assert rita.get("/").status_code == 303
    assert post(admin, "/admin/users", f"/admin/users/{root_id}", {"action": "deactivate"}).status_code == 400
    assert post(admin, "/admin/users", f"/admin/users/{rita_id}", {"action": "activate"}).status_code == 303
    web.login("rita")
    web.ctx.store.close()


# -- 9 and 11: serve prints no password; an unusable database is one line --------------------------------------------

@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> dict:
    import uvicorn

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda application, **kwargs: seen.update(app=application, **kwargs))
    return seen


@pytest.mark.postgres
def test_serve_never_prints_the_database_password(postgres_url: str, no_server: dict):
    url = postgres_url.replace("postgres@", "postgres:hunter2secret@", 1)  # trust auth ignores the password
    result = cli("serve", "--db", url)
    assert result.exit_code == 0, result.output
    assert "hunter2secret" not in result.output and "postgres:***@" in result.output
    no_server["app"].state.web.store.close()


def test_serve_on_an_unreachable_database_is_one_line_without_the_password(no_server: dict):
    result = cli("serve", "--db", "postgresql+psycopg://user:hunter2secret@127.0.0.1:1/nothing")
    assert result.exit_code == 3 and "app" not in no_server
    line = one_line(result)
    assert line.startswith("error: database postgresql+psycopg://user:***@127.0.0.1:1/nothing")
    assert "hunter2secret" not in result.output


def _unusable_databases(tmp_path: Path) -> dict[str, str]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not an SQLite database at all" * 100)
    read_only = tmp_path / "read-only.db"
    from sparring.store import Store

    Store(f"sqlite:///{read_only}").close()  # a valid, current database opened read-only (as an immutable file is)
    return {"parent is a file": f"sqlite:///{a_file}/sparring.db", "corrupt": f"sqlite:///{corrupt}",
            "read-only": f"sqlite:///file:{read_only}?mode=ro&uri=true"}


@pytest.mark.parametrize("case", ["parent is a file", "corrupt", "read-only"])
def test_an_unusable_database_stops_serve_and_users_with_one_line(tmp_path: Path, no_server: dict, case: str):
    url = _unusable_databases(tmp_path)[case]
    served = cli("serve", "--db", url)
    assert served.exit_code == 3 and "app" not in no_server, served.output
    assert one_line(served).startswith("error: database ")
    listed = cli("users", "list", "--db", url)
    assert listed.exit_code == 3 and one_line(listed).startswith("error: database ")


def test_a_database_failure_while_serving_is_a_generic_503(sqlite_url: str, monkeypatch: pytest.MonkeyPatch):
    from sqlalchemy.exc import OperationalError

    web = make_web(sqlite_url)
    admin = web.login("root", "admin")

    def broken(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        raise OperationalError("UPDATE secret_table SET x = 1", {}, Exception("attempt to write a readonly database"))

    monkeypatch.setattr(type(web.ctx), "transaction", broken)
    page = admin.get("/admin/campaigns")
    assert page.status_code == 503 and "database could not complete" in page.text
    assert "secret_table" not in page.text and "readonly" not in page.text
    monkeypatch.undo()
    web.ctx.store.close()


# -- 8: proxy headers ------------------------------------------------------------------------------------------------

def _served_app(sqlite_url: str, no_server: dict, *extra: str):  # type: ignore[no-untyped-def]
    """The ASGI app exactly as uvicorn would run it from ``sparring serve`` (its proxy-header middleware included)."""
    import uvicorn

    result = cli("serve", "--db", sqlite_url, *extra)
    assert result.exit_code == 0, result.output
    config = uvicorn.Config(no_server["app"], proxy_headers=no_server["proxy_headers"],
                            forwarded_allow_ips=no_server["forwarded_allow_ips"])
    config.load()
    return config.loaded_app


def _bad_logins_behind(app, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    """``n`` bad logins from loopback, each claiming another address in X-Forwarded-For."""
    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            token = csrf_of((await client.get("/login")).text)
            codes = []
            for i in range(n):
                response = await client.post("/login", headers={"X-Forwarded-For": f"203.0.113.{i}"},
                                             data={"username": f"user{i}", "password": "wrong password",
                                                   "csrf_token": token})
                codes.append(response.status_code)
            return codes

    return asyncio.run(run())


def test_forwarded_for_is_ignored_unless_the_proxy_is_configured(sqlite_url: str, no_server: dict):
    codes = _bad_logins_behind(_served_app(sqlite_url, no_server), 21)
    assert codes[:20] == [401] * 20 and codes[20] == 429  # all from 127.0.0.1, whatever the header says
    assert no_server["proxy_headers"] is False
    no_server["app"].state.web.store.close()


def test_forwarded_for_is_used_from_a_configured_proxy(tmp_path: Path, no_server: dict):
    url = f"sqlite:///{tmp_path / 'proxied.db'}"
    codes = _bad_logins_behind(_served_app(url, no_server, "--forwarded-allow-ips", "127.0.0.1"), 21)
    assert codes == [401] * 21  # each claimed address is its own
    no_server["app"].state.web.store.close()
