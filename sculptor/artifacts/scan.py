"""Registration of partial scans of one piece (`sculptor scan register`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sculptor.artifacts.core import Artifact


class ScanPose(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="input path as given on the command line")
    world_from_scan: list[list[float]] | None = Field(
        description="4x4 row-major, in the input's units; null when the scan was not placed"
    )
    fitness: float
    rmse_mm: float
    placed: bool = True
    reason: str | None = None


class Registration(Artifact):
    """``DIR/registration.json``: one pose per input scan plus the fused outputs."""

    KIND = "scan_registration"
    SCHEMA_VERSION = 1

    units: Literal["m", "mm"]
    scans: list[ScanPose]
    fused: str = "fused.ply"
    piece: str = "piece.ply"
    piece_watertight: bool = False
    piece_height_mm: float | None = None
