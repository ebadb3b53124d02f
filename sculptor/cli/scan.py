"""`sculptor scan register|prepare` (issue: scan ingestion)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import echo, scan_app, user_errors


@scan_app.command("register")
@user_errors
def register_cmd(
    scans: Annotated[list[Path], typer.Argument(help="partial scans of ONE piece (PLY/OBJ/STL)")],
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    units: Annotated[str, typer.Option(help="auto|m|mm")] = "auto",
) -> None:
    """Register partial scans from unknown poses and rebuild a watertight piece (mm)."""
    from sculptor.scan import register_scans

    reg = register_scans(scans, out, units=units)
    placed = sum(s.placed for s in reg.scans)
    echo(f"registered {placed}/{len(reg.scans)} scans ({reg.units}); piece "
         f"{reg.piece_height_mm:.1f} mm tall -> {out}/registration.json, fused.ply, piece.ply")


@scan_app.command("prepare")
@user_errors
def prepare_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="meshes or directories of meshes")],
    out: Annotated[Path, typer.Option("--out", help="dataset directory")],
    res: Annotated[int, typer.Option(help="grid resolution")] = 64,
    meta: Annotated[Path | None, typer.Option(help="CSV with title, year, material, ...")] = None,
) -> None:
    """Pose meshes upright and build the signed distance dataset."""
    from sculptor.scan import prepare_dataset

    m = prepare_dataset(inputs, out, res=res, meta=meta)
    echo(f"prepared {len(m.pieces)} pieces at {res}^3 "
         f"({len(m.split('held_out'))} held out) -> {out}/manifest.json")
