"""`sculptor corpus` (issue: embedded default corpus)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import app, not_built, user_errors


@app.command("corpus")
@user_errors
def corpus_cmd(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    n: Annotated[int, typer.Option("--n", help="number of pieces")] = 200,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    res: Annotated[int, typer.Option(help="grid resolution")] = 64,
    kinds: Annotated[str, typer.Option(help="comma list")] = "standing,bust,seated,abstract",
) -> None:
    """Generate procedural figurative sculptures in one carver's style, and their dataset."""
    not_built("sculptor corpus")
