"""``sparring serve`` and ``sparring users add``: run the web app, create accounts (the first admin)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from rich.markup import escape

from sparring.terminal import console

users_app = typer.Typer(no_args_is_help=True, help="Accounts of the web app.")

DbOption = Annotated[
    Optional[str],
    typer.Option("--db", help="Database URL (default: $SPARRING_DATABASE_URL, else the SQLite file in the data dir)."),
]


def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 exposes it to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    session_hours: Annotated[float, typer.Option(help="Logins expire after this many hours.")] = 12.0,
    secure_cookies: Annotated[bool, typer.Option("--secure-cookies", help="Mark cookies Secure (serve over HTTPS).")] = False,
    model_timeout: Annotated[float, typer.Option(help="Seconds before a model call is shown as failed, with Retry.")] = 120.0,
) -> None:
    """Run the human red-team web app (campaigns, red teaming, reviews, admin)."""
    import uvicorn

    from sparring.store import resolve_database_url
    from sparring.web import WebSettings, create_app

    settings = WebSettings(database_url=resolve_database_url(db), session_hours=session_hours,
                           secure_cookies=secure_cookies, model_timeout_s=model_timeout)
    app = create_app(settings)
    console.print(f"Sparring web app on http://{escape(host)}:{port}/ (database {escape(settings.database_url)})")
    uvicorn.run(app, host=host, port=port, log_level="info")


@users_app.command("add")
def add_user(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option("--role", help="admin, red_teamer or reviewer.")] = "red_teamer",
    db: DbOption = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin (first line).")] = False,
) -> None:
    """Create an account; the password is prompted for (or read from stdin) and stored as an Argon2id hash."""
    from sparring.store import Store, resolve_database_url
    from sparring.web.accounts import AccountError, create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = Store(resolve_database_url(db))
    try:
        user = create_user(store.engine, username, password, role)
    except AccountError as error:
        raise typer.BadParameter(str(error)) from None
    finally:
        store.close()
    console.print(f"created {escape(user.role)} {escape(user.username)} (pseudonym {escape(user.pseudonym)})")
