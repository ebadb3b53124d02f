"""`sculptor post` (issue: robot cell, kinematics, post-processors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import app, not_built, user_errors


@app.command("post")
@user_errors
def post_cmd(
    job: Annotated[Path, typer.Argument(help="job directory from sculptor cam")],
    dialect: Annotated[str, typer.Option(help="krl|rapid|urscript|gcode-joint|gcode-3axis")],
    out: Annotated[Path, typer.Option("--out", help="program file")],
) -> None:
    """Solve the robot program for a job and write it in a controller language."""
    not_built("sculptor post")
