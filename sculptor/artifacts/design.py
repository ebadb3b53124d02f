"""A design: one watertight mesh in mm, standing on its base in the piece frame."""

from __future__ import annotations

from pydantic import Field

from sculptor.artifacts.core import Artifact


class Design(Artifact):
    """Header of a design mesh (the mesh itself is ``mesh`` next to it, STL or PLY, mm).

    The piece frame: +Z up, base plane at z = 0, base centred on the origin.
    """

    KIND = "design"
    SCHEMA_VERSION = 1

    mesh: str = Field(description="mesh file name relative to this JSON")
    sha256: str
    height_mm: float
    bbox_mm: list[float]
    volume_mm3: float
    watertight: bool
    seed: int | None = None
