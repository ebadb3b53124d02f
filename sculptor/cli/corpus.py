"""`sculptor corpus`: procedural figurative carvings in one carver's style, as a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import app, echo, user_errors


@app.command("corpus")
@user_errors
def corpus_cmd(
    out: Annotated[Path, typer.Option("--out", help="output dataset directory")],
    n: Annotated[int, typer.Option("--n", help="number of pieces")] = 200,
    seed: Annotated[int, typer.Option(help="random seed (the corpus is a function of it)")] = 0,
    res: Annotated[int, typer.Option(help="SDF grid samples per axis (16-256)")] = 64,
    kinds: Annotated[str, typer.Option(help="comma list of standing, bust, seated, "
                                            "abstract")] = "standing,bust,seated,abstract",
    meshes: Annotated[bool, typer.Option("--meshes/--no-meshes",
                                         help="also write meshes/<id>.ply (mm)")] = True,
    gallery: Annotated[int, typer.Option(help="pieces shown in gallery.png (0: none)")] = 48,
    workers: Annotated[int, typer.Option(help="processes to generate with (0: automatic; "
                                              "the output does not depend on it)")] = 0,
) -> None:
    """Generate procedural figurative sculptures in one carver's style, and their dataset."""
    from sculptor.corpus import generate_corpus

    m = generate_corpus(n, seed, out, res=res, kinds=kinds, meshes=meshes, gallery=gallery,
                        workers=workers)
    held = len(m.split("held_out"))
    echo(f"wrote {len(m.pieces)} pieces ({len(m.pieces) - held} train, {held} held out) "
         f"at {res}^3 to {out}")
