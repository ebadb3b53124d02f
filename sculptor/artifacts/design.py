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
    # written by `sculptor generate` (optional for designs from elsewhere)
    noise_seed: int | None = Field(default=None, description="seed of this design's noise")
    attempts: int | None = Field(default=None, description="draws until a valid design")
    checkpoint_sha256: str | None = None
    checks: dict[str, bool] = Field(default_factory=dict, description="validity checks")
    valid: bool | None = None
    nearest_train_id: str | None = None
    nearest_train_chamfer: float | None = Field(
        default=None, description="Chamfer distance to it (mean squared, grid units)")
    interpolate: list[str] | None = None
    interpolation_t: float | None = None
