"""`sculptor sim` (issue: simulation preview, virtual controller)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import app, not_built, user_errors


@app.command("sim")
@user_errors
def sim_cmd(
    job: Annotated[Path | None, typer.Argument(help="job directory")] = None,
    res_mm: Annotated[float, typer.Option("--res-mm")] = 0.5,
    open_: Annotated[bool, typer.Option("--open", help="open preview.html")] = False,
    serve: Annotated[bool, typer.Option("--serve", help="start the virtual controller")] = False,
) -> None:
    """Carve the job virtually, check the robot, write the preview page."""
    not_built("sculptor sim")
