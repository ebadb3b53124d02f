"""Fast robot reachability of tool poses, for planning (the robot solver does the rest).

A pose (TCP position and tool frame in the piece frame, turntable angle) is *reachable*
when the arm has an inverse-kinematics solution for it that the robot solver would accept
(joints inside their limits, away from the wrist, shoulder and elbow singularities with the
solver's own margins, :class:`sculptor.robot.solver.Feasibility`), for at least one of the
freedoms the solver may use: a turntable offset in its window for a gouge, a spin about the
tool axis for a rotary cutter. Joint continuity along a path is not checked here (the solver
does that; strokes are short and rapids between them may re-configure the arm).

``margin_deg`` makes the check a little stricter than the solver (a larger A5 margin and a
narrower turntable window), so that what planning keeps is solved without failures.
"""

from __future__ import annotations

import math

import numpy as np

from sculptor.profiles import GougeTool, load_cell


class ReachCheck:
    """Reachability of poses in one cell with one tool (None on a cell without a robot:
    every pose is reachable there)."""

    def __init__(self, cell, tool, *, a5_margin_deg: float = 10.0, margin_deg: float = 2.0,
                 table_window_deg: float = 25.0, table_step_deg: float = 5.0,
                 spin_step_deg: float = 30.0):
        from sculptor.robot.cell import RobotCell, inv_rigid, tool_matrix
        from sculptor.robot.solver import Feasibility, table_z_in_base

        cp = load_cell(cell) if isinstance(cell, str) else cell
        self.active = cp.machine == "robot"
        if not self.active:
            return
        self.rc = RobotCell.load(cp)
        self.robot = self.rc.robot
        self.rules = Feasibility(self.robot, math.radians(a5_margin_deg + margin_deg),
                                 table_z_mm=table_z_in_base(self.rc))
        self.tcp_from_flange = inv_rigid(tool_matrix(tool))
        if isinstance(tool, GougeTool) and cp.turntable is not None:
            m = int(round(table_window_deg / table_step_deg))
            self.table = np.radians(np.arange(-m, m + 1) * table_step_deg)
            self.spin = np.zeros(1)
        elif isinstance(tool, GougeTool):
            self.table, self.spin = np.zeros(1), np.zeros(1)
        else:
            # a spin about the tool axis turns only A6 when that axis is the flange's
            # (A6 has more than a full turn): one spin is enough then
            axis = tool_matrix(tool)[:3, 2]
            n = 1 if axis[2] > 1 - 1e-9 else max(1, int(round(360.0 / spin_step_deg)))
            self.table = np.zeros(1)
            self.spin = np.radians(np.arange(n) * 360.0 / n)
        self.tlo, self.thi = self.rc.turntable_limits_rad()
        self.has_tt = cp.turntable is not None
        if self.has_tt:
            self.base_from_table = (self.rc.base_from_world
                                    @ cp.turntable.world_from_turntable.matrix())
        else:
            self.base_from_wp = self.rc.base_from_workpiece(np.zeros(1))[0]
        c, s = np.cos(self.spin), np.sin(self.spin)
        self.spin_m = np.zeros((len(self.spin), 3, 3))
        self.spin_m[:, 0, 0], self.spin_m[:, 0, 1] = c, -s
        self.spin_m[:, 1, 0], self.spin_m[:, 1, 1] = s, c
        self.spin_m[:, 2, 2] = 1.0

    def ok(self, pos: np.ndarray, frames: np.ndarray, turntable_rad) -> np.ndarray:
        """(m,) bool: pose m (pos (m, 3) mm, frames (m, 3, 3) workpiece_from_tool) is
        reachable at turntable angle(s) ``turntable_rad`` (scalar or (m,))."""
        from sculptor.robot.cell import rz
        from sculptor.robot.kinematics import ik

        pos = np.asarray(pos, float).reshape(-1, 3)
        m = len(pos)
        if not self.active or m == 0:
            return np.ones(m, bool)
        frames = np.asarray(frames, float).reshape(m, 3, 3)
        th = np.broadcast_to(np.asarray(turntable_rad, float), (m,))
        theta = (th[:, None] + self.table[None, :]).reshape(-1)  # (m * T,)
        T, S = len(self.table), len(self.spin)
        b_wp = self.base_from_table @ rz(theta) if self.has_tt else np.broadcast_to(
            self.base_from_wp, (len(theta), 4, 4))
        wp_tcp = np.zeros((m, S, 4, 4))
        wp_tcp[..., :3, :3] = frames[:, None] @ self.spin_m[None]
        wp_tcp[..., :3, 3] = pos[:, None]
        wp_tcp[..., 3, 3] = 1.0
        pose = b_wp.reshape(m, T, 1, 4, 4) @ wp_tcp[:, None] @ self.tcp_from_flange
        sol, val = ik(self.robot, pose.reshape(-1, 4, 4))
        good = np.any(self.rules.acceptable(sol, val), axis=1).reshape(m, T, S)
        if self.has_tt:
            good &= ((theta >= self.tlo) & (theta <= self.thi)).reshape(m, T, 1)
        return good.any(axis=(1, 2))
