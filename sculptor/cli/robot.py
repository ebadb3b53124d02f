"""`sculptor post` (issue: robot cell, kinematics, post-processors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sculptor.cli._app import app, echo, user_errors


@app.command("post")
@user_errors
def post_cmd(
    job: Annotated[Path, typer.Argument(help="job directory from sculptor cam")],
    dialect: Annotated[str, typer.Option(help="krl|rapid|urscript|gcode-joint|gcode-3axis")],
    out: Annotated[Path, typer.Option("--out", help="program file")],
    cell: Annotated[Optional[str], typer.Option(help="cell profile (default: the job's)")] = None,
    a5_margin_deg: Annotated[float, typer.Option(help="min |A5| (wrist singularity)")] = 10.0,
    chord_tol_mm: Annotated[float, typer.Option(help="max deviation of joint moves")] = 0.01,
) -> None:
    """Solve the robot program for a job and write it in a controller language."""
    from sculptor.post import post_job

    res = post_job(job, dialect, out, cell=cell, a5_margin_deg=a5_margin_deg,
                   chord_tol_mm=chord_tol_mm)
    files = [str(p) for p in res["files"]]
    if len(files) > 4:  # a split KRL program: name the main file, count the modules
        files = [files[-2], files[-1], f"{(len(files) - 2) // 2} modules"]
    echo(f"wrote {', '.join(files)} ({res['points']} points, valid "
         f"ratio {res['valid_ratio']:.4f}, max chord error {res['max_chord_error_mm']:.4f} mm); "
         f"program: {res['program']}")
