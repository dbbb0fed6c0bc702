"""``sparring serve`` and ``sparring users``: run the web app; create, list, deactivate and reset accounts.

Every command ends with one line naming the record it acted on. An account
action the database refuses (no such user, a name taken, a password too short)
exits 1; an unusable database is a ``DatabaseUnusable`` for ``main`` (exit 3).
No path prints a traceback, and no line shows a database password.
"""

from __future__ import annotations

import copy
import sys
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.markup import escape

from sparring.cli import exit_codes
from sparring.cli.options import DbOption, open_for_writing
from sparring.terminal import console, err

if TYPE_CHECKING:
    from sparring.store import Store

users_app = typer.Typer(no_args_is_help=True, help="Accounts of the web app (exit code 1: the database refused the change).")
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin (first line).")]
Username = Annotated[str, typer.Argument(help="Login name.")]


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with every handler redacting secrets and the app's own loggers routed through them."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": "sparring.redaction.RedactingFilter"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    config["loggers"]["sparring"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    session_hours: Annotated[float, typer.Option(help="Logins expire after this many hours.")] = 12.0,
    secure_cookies: Annotated[bool, typer.Option("--secure-cookies", help="Mark cookies Secure (serve over HTTPS).")] = False,
    model_timeout: Annotated[float, typer.Option(help="Seconds before a model call is shown as failed, with Retry.")] = 120.0,
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        "--forwarded-allow-ips",
        help="Comma-separated addresses of reverse proxies whose X-Forwarded-For/-Proto headers are trusted. "
             "Default: none, so the login limit counts the connecting address.")] = None,
) -> None:
    """Run the human red-team web app (campaigns, red teaming, reviews, admin). Exit code 3: database unusable."""
    import uvicorn

    from sparring.cli.options import database_url
    from sparring.redaction import redact_database_url
    from sparring.web import WebSettings, create_app

    settings = WebSettings(database_url=database_url(db), session_hours=session_hours,
                           secure_cookies=secure_cookies, model_timeout_s=model_timeout)
    app = create_app(settings)  # DatabaseUnusable: one line and exit 3 from main
    shown = redact_database_url(settings.database_url)
    proxies = [ip.strip() for ip in (forwarded_allow_ips or "").split(",") if ip.strip()]
    trust = f"; trusting proxy headers from {', '.join(proxies)}" if proxies else ""
    console.print(f"Sparring web app on http://{escape(host)}:{port}/ (database {escape(shown)}{escape(trust)})",
                  soft_wrap=True)
    uvicorn.run(app, host=host, port=port, log_level="info", log_config=_log_config(),
                proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None)


def _open(db: str | None) -> Store:
    return open_for_writing(db)


def _password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def add_user(
    username: Username,
    role: Annotated[str, typer.Option("--role", help="admin, red_teamer or reviewer.")] = "red_teamer",
    db: DbOption = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create an account; the password is prompted for (or read from stdin) and stored as an Argon2id hash."""
    from sparring.web.users import AccountError, create_user

    password = _password(password_stdin)
    store = _open(db)
    try:
        user = create_user(store.engine, username, password, role)
    except AccountError as error:
        _fail(f"user {username}: {error}", exit_codes.REFUSED)
    finally:
        store.close()
    console.print(f"created {escape(user.role)} {escape(user.username)} (pseudonym {escape(user.pseudonym)})")


@users_app.command("list")
def list_accounts(db: DbOption = None) -> None:
    """One line per account: username, role, active or not, pseudonym, live sessions."""
    from sparring.web.users import list_users

    store = _open(db)
    try:
        users = list_users(store.engine)
    finally:
        store.close()
    for user in users:
        console.print(f"{escape(user.username)}  {user.role}  {'active' if user.active else 'deactivated'}  "
                      f"{escape(user.pseudonym)}  sessions={user.live_sessions}", soft_wrap=True)
    console.print(f"{len(users)} users")


def _account_change(db: str | None, username: str, change, done: str) -> None:  # type: ignore[no-untyped-def]
    from sparring.web.users import AccountError

    store = _open(db)
    try:
        user, ended = change(store.engine, username)
    except AccountError as error:
        _fail(f"user {username}: {error}", exit_codes.REFUSED)
    finally:
        store.close()
    console.print(f"{done} {escape(user.username)} ({user.role}); {ended} sessions ended", soft_wrap=True)


@users_app.command("deactivate")
def deactivate(username: Username, db: DbOption = None) -> None:
    """Refuse this account's logins and end its sessions now (its work stays). Exit code 1: no such user."""
    from sparring.web.users import set_active

    _account_change(db, username, lambda engine, name: set_active(engine, name, False), "deactivated")


@users_app.command("activate")
def activate(username: Username, db: DbOption = None) -> None:
    """Allow a deactivated account to log in again. Exit code 1: no such user."""
    from sparring.web.users import set_active

    _account_change(db, username, lambda engine, name: set_active(engine, name, True), "activated")


@users_app.command("reset-password")
def reset_password(username: Username, db: DbOption = None, password_stdin: PasswordStdin = False) -> None:
    """Set a new password and end every session of the account. Exit code 1: no such user or password too short."""
    from sparring.web.users import reset_password as reset

    password = _password(password_stdin)
    _account_change(db, username, lambda engine, name: reset(engine, name, password), "new password for")


@users_app.command("end-sessions")
def end_sessions(username: Username, db: DbOption = None) -> None:
    """Log the account out everywhere (its sessions are revoked); it may log in again. Exit code 1: no such user."""
    from sparring.web.users import end_sessions as end

    _account_change(db, username, end, "ended the sessions of")
