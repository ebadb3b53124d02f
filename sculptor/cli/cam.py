"""`sculptor cam` (issue: CAM)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import app, echo, user_errors


@app.command("cam")
@user_errors
def cam_cmd(
    design: Annotated[Path, typer.Argument(help="design mesh (mm), STL/PLY/OBJ")],
    out: Annotated[Path, typer.Option("--out", help="job directory")],
    tool: Annotated[str, typer.Option(help="finishing tool")] = "gouge-12mm",
    rough_tool: Annotated[str | None, typer.Option(
        help="roughing tool (default: the cell's; 'none' to skip roughing)")] = None,
    cell: Annotated[str, typer.Option(help="cell profile")] = "kuka-kr6-r900-turntable",
    stock: Annotated[str | None, typer.Option(help="box XxYxZ mm")] = None,
    stock_mesh: Annotated[Path | None, typer.Option(help="stock mesh (mm)")] = None,
    grain: Annotated[str, typer.Option(help="grain direction x|y|z")] = "z",
    scallop_mm: Annotated[float, typer.Option(help="target scallop height")] = 0.2,
    quality: Annotated[str, typer.Option(
        help="fine | draft (coarser grids and sampling: fast previews)")] = "fine",
    min_setups: Annotated[int, typer.Option(help="fewest roughing setups")] = 4,
    progress: Annotated[bool, typer.Option(help="show progress")] = True,
) -> None:
    """Plan roughing and finishing toolpaths for a design."""
    from sculptor.cam import plan_job

    tp = plan_job(design, out, tool=tool, rough_tool=rough_tool, cell=cell, stock=stock,
                  stock_mesh=stock_mesh, grain=grain, scallop_mm=scallop_mm,
                  progress=progress, quality=quality, min_setups=min_setups)
    strokes = sum(int(p.stats.get("strokes", 0)) for p in tp.passes)
    echo(f"{out}/job.json: {len(tp.passes)} passes, {tp.n_moves} moves, {strokes} gouge "
         f"strokes (see {out}/summary.json, {out}/toolpath.png)")
