"""Fast robot reachability of tool poses, for planning (the robot solver does the rest).

A pose (TCP position and tool frame in the piece frame, turntable angle) is *reachable*
when the arm has an inverse-kinematics solution for it that the robot solver would accept
(joints inside their limits, away from the wrist, shoulder and elbow singularities with the
solver's own margins, :class:`sculptor.robot.solver._Checker`), for at least one of the
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
        from sculptor.robot.solver import _Checker

        cp = load_cell(cell) if isinstance(cell, str) else cell
        self.active = cp.machine == "robot"
        if not self.active:
            return
        self.rc = RobotCell.load(cp)
        self.robot = self.rc.robot
        self.checker = _Checker(self.robot, math.radians(a5_margin_deg + margin_deg))
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

    def ok(self, pos: np.ndarray, frames: np.ndarray, turntable_rad) -> np.ndarray:
        """(m,) bool: pose m (pos (m, 3) mm, frames (m, 3, 3) workpiece_from_tool) is
        reachable at turntable angle(s) ``turntable_rad`` (scalar or (m,))."""
        from sculptor.robot.kinematics import ik

        pos = np.asarray(pos, float).reshape(-1, 3)
        m = len(pos)
        if not self.active or m == 0:
            return np.ones(m, bool)
        frames = np.asarray(frames, float).reshape(m, 3, 3)
        th = np.broadcast_to(np.asarray(turntable_rad, float), (m,))
        out = np.zeros(m, bool)
        c, s = np.cos(self.spin), np.sin(self.spin)
        spin = np.zeros((len(self.spin), 3, 3))
        spin[:, 0, 0], spin[:, 0, 1], spin[:, 1, 0], spin[:, 1, 1] = c, -s, s, c
        spin[:, 2, 2] = 1.0
        for off in self.table:
            theta = th + off
            inside = np.ones(m, bool) if not self.has_tt else (
                (theta >= self.tlo) & (theta <= self.thi))
            todo = np.flatnonzero(~out & inside)
            if len(todo) == 0:
                continue
            b_wp = self.rc.base_from_workpiece(theta[todo])  # (t, 4, 4)
            k = len(self.spin)
            wp_tcp = np.zeros((len(todo), k, 4, 4))
            wp_tcp[..., :3, :3] = frames[todo][:, None] @ spin[None]
            wp_tcp[..., :3, 3] = pos[todo][:, None]
            wp_tcp[..., 3, 3] = 1.0
            pose = (b_wp[:, None] @ wp_tcp @ self.tcp_from_flange).reshape(-1, 4, 4)
            sol, val = ik(self.robot, pose)
            code = self.checker.classify(sol, val)  # (t * k, 8)
            good = np.any(code == 0, axis=1).reshape(len(todo), k).any(1)
            out[todo] = good
        return out
