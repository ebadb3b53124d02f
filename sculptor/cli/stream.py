"""`sculptor stream` (issue: shop-floor streaming)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import app, echo, user_errors


@app.command("stream")
@user_errors
def stream_cmd(
    program: Annotated[Path, typer.Argument(help="G-code program (gcode-joint post output)")],
    port: Annotated[str, typer.Option(help="serial port, e.g. /dev/ttyUSB0")],
    baud: Annotated[int, typer.Option(help="baud rate (the controller profile's)")] = 115200,
    protocol: Annotated[str, typer.Option(help="grbl|marlin|ack")] = "grbl",
    check_first: Annotated[bool, typer.Option(
        "--check-first", help="run the program in grbl check mode ($C) first")] = False,
    resume: Annotated[Path | None, typer.Option(help="journal of a broken stream")] = None,
    journal: Annotated[Path | None, typer.Option(
        help="journal path (default: next to the program)")] = None,
    controller: Annotated[str | None, typer.Option(
        help="controller profile (default grbl-6axis / marlin-6axis)")] = None,
    progress: Annotated[bool, typer.Option(help="progress bar")] = True,
) -> None:
    """Stream a program to the controller: character counting, journal, resume."""
    from sculptor.stream import stream_program

    summary = stream_program(program, port, baud=baud, protocol=protocol,
                             check_first=check_first, resume=resume, journal=journal,
                             progress=progress, controller=controller,
                             keyboard=sys.stdin.isatty())
    echo(summary.text())
    if not summary.ok:
        raise typer.Exit(1)
