"""Signed distance grids and the dataset that `sculptor train` reads.

Convention (shared by `sculptor scan prepare` and `sculptor corpus`, so the model cannot
tell them apart): a piece is posed upright in its *piece frame* (mm; +Z up; base plane at
z = 0; base centred on the origin). Its grid is a cube of ``res**3`` samples at voxel
centres, side ``side_mm`` = ``GRID_MARGIN`` x the piece's largest extent, centred at
(0, 0, height/2). ``values`` are signed distances in mm (negative inside), truncated to
``+-truncation_mm`` (``TRUNCATION_VOXELS`` voxels), stored as float16.
``world_from_voxel`` maps (i, j, k, 1) voxel indices (i along x) to piece-frame mm.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sculptor.artifacts.core import Artifact

GRID_MARGIN = 1.15
TRUNCATION_VOXELS = 4.0


def grid_world_from_voxel(height_mm: float, extent_mm: float, res: int) -> np.ndarray:
    """4x4 world_from_voxel for the canonical grid of a piece.

    height_mm : piece height (z extent, base at z=0)
    extent_mm : largest extent of the piece over x, y, z
    res : samples per axis
    """
    side = GRID_MARGIN * float(extent_mm)
    h = side / res
    m = np.eye(4)
    m[0, 0] = m[1, 1] = m[2, 2] = h
    m[:3, 3] = np.array([-side / 2, -side / 2, height_mm / 2 - side / 2]) + h / 2
    return m


def voxel_centers(world_from_voxel: np.ndarray, res: int) -> np.ndarray:
    """(res, res, res, 3) float64 piece-frame mm coordinates of the voxel centres."""
    idx = np.stack(np.meshgrid(*(np.arange(res),) * 3, indexing="ij"), axis=-1).astype(float)
    return idx @ world_from_voxel[:3, :3].T + world_from_voxel[:3, 3]


class SdfGrid(Artifact):
    """A truncated signed distance grid of one piece (values in mm, negative inside)."""

    KIND = "sdf_grid"
    SCHEMA_VERSION = 1

    piece_id: str
    res: int
    height_mm: float
    world_from_voxel: list[list[float]] = Field(description="4x4 row-major, mm")
    truncation_mm: float
    values: np.ndarray | None = Field(default=None, exclude=True)

    def payload_arrays(self) -> dict[str, np.ndarray]:
        assert self.values is not None and self.values.shape == (self.res,) * 3
        return {"values": self.values.astype(np.float16)}

    def attach_arrays(self, arrays) -> None:
        self.values = arrays["values"]

    @property
    def voxel_mm(self) -> float:
        return float(np.asarray(self.world_from_voxel)[0, 0])


class PieceEntry(BaseModel):
    """One piece of a dataset, with provenance."""

    model_config = ConfigDict(extra="allow")

    id: str
    grid: str = Field(description="grid file relative to the dataset dir (grids/<id>.npz)")
    mesh: str | None = Field(default=None, description="canonical mesh (mm) relative path")
    split: Literal["train", "held_out"]
    height_mm: float
    bbox_mm: list[float] = Field(description="x, y, z extent in mm")
    source_files: list[str] = Field(default_factory=list)
    source_sha256: list[str] = Field(default_factory=list)
    title: str | None = None
    year: int | None = None
    material: str | None = None
    exhibited: str | None = None
    kind: str | None = Field(default=None, description="standing, bust, seated, abstract, ...")
    parameters: dict | None = Field(default=None, description="generator parameters (corpus)")


class DatasetManifest(Artifact):
    """``DATASET/manifest.json``: every piece, its grid and its split."""

    KIND = "sdf_dataset"
    SCHEMA_VERSION = 1

    res: int
    truncation_voxels: float = TRUNCATION_VOXELS
    grid_margin: float = GRID_MARGIN
    source: Literal["scan", "corpus"]
    regenerate_command: str | None = None
    pieces: list[PieceEntry]

    def split(self, name: str) -> list[PieceEntry]:
        return [p for p in self.pieces if p.split == name]
