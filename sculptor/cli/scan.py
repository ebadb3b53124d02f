"""`sculptor scan register|prepare` (issue: scan ingestion)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import not_built, scan_app, user_errors


@scan_app.command("register")
@user_errors
def register_cmd(
    scans: Annotated[list[Path], typer.Argument(help="partial scans of ONE piece (PLY/OBJ/STL)")],
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    units: Annotated[str, typer.Option(help="auto|m|mm")] = "auto",
) -> None:
    """Register partial scans from unknown poses and rebuild a watertight piece (mm)."""
    not_built("sculptor scan register")


@scan_app.command("prepare")
@user_errors
def prepare_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="meshes or directories of meshes")],
    out: Annotated[Path, typer.Option("--out", help="dataset directory")],
    res: Annotated[int, typer.Option(help="grid resolution")] = 64,
    meta: Annotated[Path | None, typer.Option(help="CSV with title, year, material, ...")] = None,
) -> None:
    """Pose meshes upright and build the signed distance dataset."""
    not_built("sculptor scan prepare")
