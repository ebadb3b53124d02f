"""The typer app and the one wrapper that turns user errors into one line + exit 2."""

from __future__ import annotations

import functools
import sys
import traceback
from typing import Callable, TypeVar

import typer

from sculptor.errors import UserError

DEBUG = False

app = typer.Typer(
    name="sculptor",
    help="Carve generated sculpture in wood with a robot: scan -> train -> generate -> "
    "cam -> sim -> post / stream.  Add --debug to any command for full tracebacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
scan_app = typer.Typer(help="Register partial scans and prepare SDF datasets.",
                       no_args_is_help=True)
profiles_app = typer.Typer(help="List and show robot, tool, controller and cell profiles.",
                           no_args_is_help=True)
app.add_typer(scan_app, name="scan")
app.add_typer(profiles_app, name="profiles")

F = TypeVar("F", bound=Callable)


def fail(msg: str, code: int = 2) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def user_errors(fn: F) -> F:
    """Decorator for every command: UserError -> one line on stderr, exit 2."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except UserError as e:
            if DEBUG:
                traceback.print_exc()
            fail(str(e))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except MemoryError:
            fail("out of memory; use a coarser resolution or a smaller job", 2)
        except Exception as e:  # programmer error: short line unless --debug
            if DEBUG:
                raise
            typer.echo(
                f"internal error: {e.__class__.__name__}: {e} (re-run with --debug and "
                "report it)", err=True)
            raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]


def not_built(what: str) -> None:
    """For commands whose stage is not built yet: one line, exit 2, no output."""
    typer.echo(f"error: {what} is not built yet in this version of sculptor", err=True)
    raise typer.Exit(2)


def echo(msg: str = "") -> None:
    typer.echo(msg)


def stderr(msg: str) -> None:
    print(msg, file=sys.stderr)
