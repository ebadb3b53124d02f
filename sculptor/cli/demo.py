"""`sculptor demo` (issue: the whole chain)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import app, echo, user_errors


@app.command("demo")
@user_errors
def demo_cmd(
    out: Annotated[Path, typer.Option("--out", help="demo directory")] = Path("sculptor-demo"),
) -> None:
    """Run the whole chain on the embedded defaults (grows as stages land)."""
    from sculptor import profiles

    echo("sculptor demo: stages built so far")
    echo(f"  profiles: {sum(len(profiles.list_profiles(k)) for k in profiles.KINDS)} loaded")
