"""Finishing bands: which turntable angle finishes which part of the surface.

The surface is split by its normal: ``n_side`` side bands whose directions f_k are
horizontal, k * 360 / n_side deg apart, a top band (f = +z) and a bottom band (f = -z, not
reachable: the piece stands on it). A surface point belongs to the band whose f is
closest to its normal; each band is finished with the turntable turned so that f_k faces
the robot.
"""

from __future__ import annotations

import math

import numpy as np

from sculptor.cam.dropcutter import frame_from_direction
from sculptor.cam.moves import turntable_for_facing


class Bands:
    def __init__(self, n_side: int, robot_dir=(-1.0, 0.0, 0.0), machine: str = "robot",
                 top_cos: float = 0.8):
        self.machine = machine
        az = np.radians(np.arange(n_side) * 360.0 / n_side)
        self.dirs = np.column_stack([np.cos(az), np.sin(az), np.zeros(n_side)])
        self.n_side = n_side
        self.top_cos = top_cos
        self.robot_dir = robot_dir
        names = [f"band{math.degrees(a):.0f}" for a in az]
        self.names = names + ["top"]

    def __len__(self) -> int:
        return self.n_side + 1

    def direction(self, k: int) -> np.ndarray:
        return self.dirs[k] if k < self.n_side else np.array([0.0, 0.0, 1.0])

    def frame(self, k: int) -> np.ndarray:
        return frame_from_direction(self.direction(k))

    def turntable(self, k: int) -> float:
        if self.machine == "cnc3":
            return 0.0
        return turntable_for_facing(self.direction(k), self.robot_dir) if k < self.n_side \
            else turntable_for_facing(np.array([1.0, 0, 0]), self.robot_dir)

    def assign(self, n: np.ndarray) -> np.ndarray:
        """(m,) band index of each outward normal n (m, 3); -1 for the bottom (faces down
        more than the top band's cone) and, on a 3-axis machine, for all but the top."""
        n = np.asarray(n, float)
        if self.machine == "cnc3":
            return np.where(n[:, 2] > 0.05, self.n_side, -1)
        out = np.argmax(n @ self.dirs.T, axis=1)
        out = np.where(n[:, 2] >= self.top_cos, self.n_side, out)
        return np.where(n[:, 2] <= -self.top_cos, -1, out)
