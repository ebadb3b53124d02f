"""`sculptor demo` (issue: the whole chain)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import app, user_errors


@app.command("demo")
@user_errors
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", help="demo directory")] = Path("sculptor-demo"),
    size: Annotated[str, typer.Option(help="full (what a new user sees) or quick")] = "full",
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
) -> None:
    """Run the whole chain on the embedded defaults: scan, generate, cam, post, sim, stream."""
    from sculptor.demo import run_demo

    run_demo(out, size=size, seed=seed)
