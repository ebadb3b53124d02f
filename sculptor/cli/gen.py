"""`sculptor train|generate|eval` (issue: generative model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import app, not_built, user_errors


@app.command("train")
@user_errors
def train_cmd(
    data: Annotated[Path, typer.Option("--data", help="dataset directory (manifest.json)")],
    out: Annotated[Path, typer.Option("--out", help="run directory")],
    res: Annotated[int, typer.Option(help="32 or 64")] = 32,
    steps: Annotated[int, typer.Option(help="training steps")] = 20000,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda")] = "auto",
) -> None:
    """Train the style model on an SDF dataset (resumes when RUN has a checkpoint)."""
    not_built("sculptor train")


@app.command("generate")
@user_errors
def generate_cmd(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    checkpoint: Annotated[Path | None, typer.Option(help="default: the shipped model")] = None,
    n: Annotated[int, typer.Option("--n")] = 4,
    seed: Annotated[int, typer.Option()] = 0,
    height_mm: Annotated[float, typer.Option("--height-mm")] = 400.0,
) -> None:
    """Sample new sculptures as watertight meshes in mm."""
    not_built("sculptor generate")


@app.command("eval")
@user_errors
def eval_cmd(
    checkpoint: Annotated[Path, typer.Option(help="checkpoint to evaluate")],
    data: Annotated[Path, typer.Option("--data")],
    out: Annotated[Path, typer.Option("--out")] = Path("eval.json"),
) -> None:
    """COV / MMD / 1-NNA, validity and novelty against baselines on the held-out split."""
    not_built("sculptor eval")
