"""`sculptor sim` (issue: simulation preview, virtual controller)."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import app, echo, user_errors
from sculptor.errors import UserError


@app.command("sim")
@user_errors
def sim_cmd(
    job: Annotated[Path | None, typer.Argument(help="job directory (from sculptor cam)")] = None,
    res_mm: Annotated[float, typer.Option("--res-mm", help="voxel size, mm")] = 0.5,
    tolerance_mm: Annotated[float, typer.Option("--tolerance-mm",
                                                help="deviation counted as on target")] = 0.5,
    open_: Annotated[bool, typer.Option("--open", help="open preview.html")] = False,
    serve: Annotated[bool, typer.Option("--serve", help="start the virtual controller")] = False,
    protocol: Annotated[str, typer.Option("--protocol",
                                          help="--serve: grbl or marlin")] = "grbl",
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """Carve the job virtually, check the robot, write JOB/sim/ (report, stills, preview)."""
    if serve:
        from sim.controller import serve_cli

        if protocol not in ("grbl", "marlin"):
            raise UserError(f"--protocol must be grbl or marlin, got {protocol!r}")
        serve_cli(protocol)
        return
    if job is None:
        raise UserError("give the job directory: sculptor sim JOB (or --serve)")
    from sim import run_simulation

    rep = run_simulation(job, res_mm=res_mm, progress=not no_progress,
                         tolerance_mm=tolerance_mm)
    out = Path(job) / "sim"
    echo(f"{'GO' if rep.go else 'NO-GO'}: {out / 'report.md'}")
    for r in rep.reasons:
        echo(f"  - {r}")
    m = rep.material
    echo(f"  max gouge {m.get('max_gouge_mm')} mm, rest max {m.get('rest_max_mm')} mm, "
         f"cycle {'-' if rep.cycle_time_s is None else f'{rep.cycle_time_s / 60:.1f} min'}")
    echo(f"  preview: {out / 'preview.html'}")
    if open_:
        webbrowser.open((out / "preview.html").resolve().as_uri())
