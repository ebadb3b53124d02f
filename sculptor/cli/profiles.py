"""`sculptor profiles list|show`."""

from __future__ import annotations

from typing import Annotated

import typer

from sculptor import profiles
from sculptor.cli._app import echo, profiles_app, user_errors


@profiles_app.command("list")
@user_errors
def list_cmd() -> None:
    """List every robot, tool, controller and cell profile."""
    for kind in profiles.KINDS:
        echo(f"{kind}:")
        for name in profiles.list_profiles(kind):
            echo(f"  {name}")


@profiles_app.command("show")
@user_errors
def show_cmd(name: Annotated[str, typer.Argument(help="profile name, e.g. gouge-12mm")]) -> None:
    """Print one profile as validated (all fields, defaults filled in)."""
    kind, prof = profiles.find_any(name)
    echo(f"# {kind[:-1]}: {name}")
    echo(prof.model_dump_json(indent=2))
