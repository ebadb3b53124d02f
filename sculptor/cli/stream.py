"""`sculptor stream` (issue: shop-floor streaming)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import app, not_built, user_errors


@app.command("stream")
@user_errors
def stream_cmd(
    program: Annotated[Path, typer.Argument(help="G-code program")],
    port: Annotated[str, typer.Option(help="serial port, e.g. /dev/ttyUSB0")],
    baud: Annotated[int, typer.Option()] = 115200,
    protocol: Annotated[str, typer.Option(help="grbl|marlin|ack")] = "grbl",
    check_first: Annotated[bool, typer.Option("--check-first")] = False,
    resume: Annotated[Path | None, typer.Option(help="journal to resume from")] = None,
    journal: Annotated[Path | None, typer.Option(help="journal path")] = None,
) -> None:
    """Stream a program to the controller: character counting, journal, resume."""
    not_built("sculptor stream")
