"""The robot program artifact: joint values per move plus the Cartesian targets."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from sculptor.artifacts.core import Artifact


class RobotProgram(Artifact):
    """``JOB/program.json`` + ``.npz``. Angles in radians, lengths in mm.

    Arrays (n = number of robot targets after densification):
      joints_rad   (n, 6)    robot axes A1..A6 in the controller's sign convention
      turntable_rad (n,)     turntable angle (physical, right-handed about its +Z); the
                             controller's E1/U = turntable.sign * angle
      base_from_tcp (n, 4, 4) Cartesian target in the robot base frame (mm), with the
                             spin / tilt the solver chose
      move_kind    (n,) int8 MoveKind
      feed_mm_s    (n,)
      source_index (n, 2) int32  (pass index, move index) in the toolpath it came from
      config       (n,) int8  IK branch index (0..7)
      valid        (n,) bool
    """

    KIND = "robot_program"
    SCHEMA_VERSION = 1

    robot: str = Field(description="robot profile name ('' for a cnc3 machine)")
    cell: str
    tool: str = Field(description="tool of the first pass")
    tools: list[str] = Field(default_factory=list, description="tool name per solved pass")
    machine: str = Field(default="robot", description="'robot' or 'cnc3' (then joints_rad "
                         "is zero and base_from_tcp is the machine-frame tool pose)")
    job_sha256: str = ""
    valid_ratio: float = 1.0
    max_chord_error_mm: float = Field(default=0.0, description="largest deviation of the "
                                      "joint-interpolated TCP from the straight moves")
    failures: list[dict] = Field(default_factory=list, description="groups of failing "
                                 "moves: pass, moves [first, last], count, reason, position_mm")
    joints_rad: np.ndarray = Field(exclude=True)
    turntable_rad: np.ndarray = Field(exclude=True)
    base_from_tcp: np.ndarray = Field(exclude=True)
    move_kind: np.ndarray = Field(exclude=True)
    feed_mm_s: np.ndarray = Field(exclude=True)
    source_index: np.ndarray = Field(exclude=True)
    config: np.ndarray = Field(exclude=True)
    valid: np.ndarray = Field(exclude=True)

    ARRAYS: ClassVar[tuple[str, ...]] = (
        "joints_rad", "turntable_rad", "base_from_tcp", "move_kind", "feed_mm_s",
        "source_index", "config", "valid")

    def payload_arrays(self):
        return {a: np.asarray(getattr(self, a)) for a in self.ARRAYS}

    def attach_arrays(self, arrays) -> None:
        for a in self.ARRAYS:
            setattr(self, a, arrays[a])

    @classmethod
    def model_validate(cls, obj, **kw):
        if isinstance(obj, dict):
            obj = {**{a: np.zeros(0) for a in cls.ARRAYS}, **obj}
        return super().model_validate(obj, **kw)

    @property
    def n(self) -> int:
        return len(self.joints_rad)
