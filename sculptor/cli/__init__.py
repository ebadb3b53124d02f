"""The `sculptor` command line: thin typer commands, one library call each.

Each stage registers its commands from its own module (``sculptor/cli/<stage>.py``).
User errors (`sculptor.errors.UserError`) print one line and exit 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import sys

import typer

from sculptor import __version__
from sculptor.cli import _app
from sculptor.cli._app import app

# Each module adds its commands to `app` on import.
from sculptor.cli import profiles as _profiles  # noqa: F401,E402
from sculptor.cli import scan as _scan  # noqa: F401,E402
from sculptor.cli import corpus as _corpus  # noqa: F401,E402
from sculptor.cli import gen as _gen  # noqa: F401,E402
from sculptor.cli import cam as _cam  # noqa: F401,E402
from sculptor.cli import robot as _robot  # noqa: F401,E402
from sculptor.cli import sim as _sim  # noqa: F401,E402
from sculptor.cli import stream as _stream  # noqa: F401,E402
from sculptor.cli import demo as _demo  # noqa: F401,E402


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sculptor` script."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    if args and args[0] == "--version":
        print(f"sculptor {__version__}")
        return 0
    _app.DEBUG = debug
    try:
        app(args=args, prog_name="sculptor", standalone_mode=True)
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 2
    finally:
        _app.DEBUG = False  # never leak into the next call in the same process
    return 0


__all__ = ["app", "main", "typer"]
