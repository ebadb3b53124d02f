"""The toolpath artifact: ordered passes of moves (`sculptor cam` -> post, sim).

Frames and units: positions are the TCP in the *workpiece frame* (the design's piece
frame: mm, +Z up, base at z=0, centred on the turntable axis). ``tool_frame`` is the
rotation ``workpiece_from_tool`` (3x3, columns are the tool's x, y, z axes); tools reach
along +Z of the TCP, so for a cutter touching a surface with outward normal n the tool z
axis points roughly along -n. For a gouge the tool x axis is the cutting direction.
``turntable_rad`` is the turntable angle for each move: the workpiece is turned by that
angle about the world z axis of the turntable before the robot reaches it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sculptor.artifacts.core import Artifact


class MoveKind(IntEnum):
    RAPID = 0
    PLUNGE = 1
    CUT = 2
    RETRACT = 3


class Pass(BaseModel):
    """One pass: a tool, a strategy and its moves (arrays of equal length n)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    name: str
    operation: Literal["rough", "finish", "rest", "other"]
    strategy: str = Field(description="e.g. zlevel, indexed-side, raster, waterline, gouge-strokes")
    tool_id: str
    setup_turntable_deg: float | None = None
    stats: dict = Field(default_factory=dict)
    position_mm: np.ndarray = Field(exclude=True, description="(n, 3) TCP in workpiece frame")
    tool_frame: np.ndarray = Field(exclude=True, description="(n, 3, 3) workpiece_from_tool")
    feed_mm_s: np.ndarray = Field(exclude=True, description="(n,)")
    kind: np.ndarray = Field(exclude=True, description="(n,) int8 MoveKind")
    turntable_rad: np.ndarray = Field(exclude=True, description="(n,)")

    def model_post_init(self, __context) -> None:
        n = len(self.position_mm)
        self.position_mm = np.asarray(self.position_mm, float).reshape(n, 3)
        self.tool_frame = np.asarray(self.tool_frame, float).reshape(n, 3, 3)
        self.feed_mm_s = np.asarray(self.feed_mm_s, float).reshape(n)
        self.kind = np.asarray(self.kind, np.int8).reshape(n)
        self.turntable_rad = np.asarray(self.turntable_rad, float).reshape(n)

    @property
    def n_moves(self) -> int:
        return len(self.position_mm)


class StockSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["box", "mesh"]
    size_mm: list[float] | None = Field(default=None, description="box x, y, z (base at z=0)")
    mesh: str | None = None


class Toolpath(Artifact):
    """``JOB/job.json`` + ``JOB/job.npz``."""

    KIND = "toolpath"
    SCHEMA_VERSION = 1

    design: str = Field(description="design mesh path as given")
    design_sha256: str
    cell: str
    machine: Literal["robot", "cnc3"] = "robot"
    stock: StockSpec
    passes: list[Pass] = Field(default_factory=list)

    ARRAYS: ClassVar[tuple[str, ...]] = (
        "position_mm", "tool_frame", "feed_mm_s", "kind", "turntable_rad")

    def payload_arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for i, p in enumerate(self.passes):
            for a in self.ARRAYS:
                out[f"p{i}_{a}"] = getattr(p, a)
        return out

    def attach_arrays(self, arrays) -> None:
        for i, p in enumerate(self.passes):
            for a in self.ARRAYS:
                setattr(p, a, arrays[f"p{i}_{a}"])
            p.model_post_init(None)

    @classmethod
    def model_validate(cls, obj, **kw):  # header passes arrive without arrays
        if isinstance(obj, dict) and "passes" in obj:
            obj = dict(obj)
            empty = {"position_mm": np.zeros((0, 3)), "tool_frame": np.zeros((0, 3, 3)),
                     "feed_mm_s": np.zeros(0), "kind": np.zeros(0, np.int8),
                     "turntable_rad": np.zeros(0)}
            obj["passes"] = [{**empty, **p} for p in obj["passes"]]
        return super().model_validate(obj, **kw)

    @property
    def n_moves(self) -> int:
        return sum(p.n_moves for p in self.passes)
