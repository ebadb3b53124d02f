"""`sculptor cam` (issue: CAM)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import app, not_built, user_errors


@app.command("cam")
@user_errors
def cam_cmd(
    design: Annotated[Path, typer.Argument(help="design mesh (mm), STL/PLY/OBJ")],
    out: Annotated[Path, typer.Option("--out", help="job directory")],
    tool: Annotated[str, typer.Option(help="finishing tool")] = "gouge-12mm",
    rough_tool: Annotated[str | None, typer.Option(help="roughing tool")] = None,
    cell: Annotated[str, typer.Option(help="cell profile")] = "kuka-kr6-r900-turntable",
    stock: Annotated[str | None, typer.Option(help="box XxYxZ mm")] = None,
    stock_mesh: Annotated[Path | None, typer.Option(help="stock mesh (mm)")] = None,
    grain: Annotated[str, typer.Option(help="grain direction x|y|z")] = "z",
    scallop_mm: Annotated[float, typer.Option(help="target scallop height")] = 0.2,
) -> None:
    """Plan roughing and finishing toolpaths for a design."""
    not_built("sculptor cam")
