"""The ``sparring`` command line: one Typer app, one module per command group, exit codes in ``exit_codes``.

A ``SparringError`` (an input the user can fix) becomes one ``error:`` line and
exit 3 in the command group itself, so test runners see what users see. ``main``
handles the rest: usage errors (2), interrupts (130), and anything else as a
bug, one line naming the log file that holds the traceback (70).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from sparring.cli import exit_codes
from sparring.cli.database import db_app
from sparring.cli.experiments import export, run, runs, show
from sparring.cli.improve import improve
from sparring.cli.judge import pm_app, score
from sparring.cli.listing import components
from sparring.cli.release import release
from sparring.cli.reports import report
from sparring.cli.web import serve, users_app
from sparring.errors import SparringError
from sparring.terminal import err


class _ReportingGroup(TyperGroup):
    """Every command's ``SparringError`` becomes one ``error:`` line and exit 3, under ``main`` and test runners alike.

    Ctrl-C becomes the ``interrupted`` line and exit 130 here too: Typer would turn it
    into a silent exit 130 before ``main`` could say anything.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SparringError as error:
            err.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
            raise typer.Exit(exit_codes.INPUT) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(exit_codes.INTERRUPTED) from None


app = typer.Typer(cls=_ReportingGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help=f"Red team language models, end to end. {exit_codes.HELP}")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"sparring {version('sparring')}")
        raise typer.Exit(exit_codes.OK)


@app.callback()
def _root(version: Annotated[bool | None, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None) -> None:
    """Red team language models, end to end."""


for command in (run, show, export, runs, score, report, release, improve, serve, components):
    app.command(epilog=exit_codes.HELP)(command)
app.add_typer(pm_app, name="pm")
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")


def main() -> None:
    """The console script: every outcome is one line and a documented exit code."""
    sys.exit(_invoke())


def _invoke() -> int:
    try:
        result = app(standalone_mode=False)
        return result if isinstance(result, int) else exit_codes.OK
    except typer.Exit as done:
        return int(getattr(done, "exit_code", exit_codes.OK))
    except typer.TyperException as usage:  # Typer's own click: usage errors and bad parameters
        show = getattr(usage, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"error: {escape(str(usage))}")
        return int(getattr(usage, "exit_code", exit_codes.USAGE))
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted")
        return exit_codes.INTERRUPTED
    except SparringError as error:  # raised outside a command (while parsing); commands report their own
        err.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        return exit_codes.INPUT
    except Exception:  # noqa: BLE001 — the last resort: a bug, logged whole, shown as one line
        from sparring.cli.crash_log import write_crash_log

        where = write_crash_log()
        err.print(f"[red]internal error[/red] (a bug in sparring); the traceback is in {escape(str(where))}",
                  soft_wrap=True)
        return exit_codes.INTERNAL
