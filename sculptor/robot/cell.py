"""The robot cell in one frame: robot base, turntable, workpiece and mounted tool.

Static definitions (profiles) stay apart from state (joint values, turntable angle).
``RobotCell`` loads and checks the profiles once and offers the transforms the solver and
the post-processors need (mm, rad; ``a_from_b`` composes left to right)::

    base_from_flange = base_from_world @ world_from_workpiece(theta) @ workpiece_from_tcp
                       @ tcp_from_flange
    world_from_workpiece(theta) = world_from_turntable @ Rz(theta)

``theta`` is the physical turntable angle (right-handed about the turntable's +Z); the
controller's external-axis value is ``turntable.sign * theta`` (degrees in the programs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sculptor.errors import UserError
from sculptor.profiles import (
    CellProfile,
    GougeTool,
    RobotProfile,
    RotaryTool,
    load_cell,
    load_robot,
    load_tool,
)


def rz(theta: np.ndarray) -> np.ndarray:
    """(n,) -> (n, 4, 4) rotations about +Z."""
    theta = np.atleast_1d(np.asarray(theta, float))
    c, s = np.cos(theta), np.sin(theta)
    m = np.zeros(theta.shape + (4, 4))
    m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1] = c, -s, s, c
    m[..., 2, 2] = m[..., 3, 3] = 1.0
    return m


def inv_rigid(t: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms (..., 4, 4)."""
    out = np.zeros_like(t)
    rt = np.swapaxes(t[..., :3, :3], -1, -2)
    out[..., :3, :3] = rt
    out[..., :3, 3] = -(rt @ t[..., :3, 3, None])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def check_robot(robot: RobotProfile) -> None:
    """Range checks a schema cannot express; raises UserError naming the field."""
    where = f"robot profile '{robot.name}'"
    for j in robot.joints:
        if j.max_deg - j.min_deg > 1080.0 + 1e-9 or max(abs(j.min_deg), abs(j.max_deg)) > 720:
            raise UserError(f"{where}: joint {j.name} range {j.min_deg:g}..{j.max_deg:g} deg "
                            "is out of range (at most 1080 deg wide, within +/-720)")
        if abs(j.offset_deg) > 360.0:
            raise UserError(f"{where}: joint {j.name} offset_deg {j.offset_deg:g} is beyond "
                            "+/-360")
        if j.max_speed_deg_s > 3600.0:
            raise UserError(f"{where}: joint {j.name} max_speed_deg_s {j.max_speed_deg_s:g} "
                            "is implausible (> 3600)")
    if robot.kinematics == "opw":
        p = robot.opw
        for key in ("c1_mm", "c2_mm", "c3_mm", "c4_mm"):
            v = getattr(p, key)
            if not (0.0 <= v <= 5000.0) or (key in ("c2_mm", "c3_mm") and v <= 0):
                raise UserError(f"{where}: opw.{key} = {v:g} is out of range (0..5000 mm, "
                                "c2 and c3 > 0)")
        for key in ("a1_mm", "a2_mm", "b_mm"):
            v = getattr(p, key)
            if abs(v) > 2000.0:
                raise UserError(f"{where}: opw.{key} = {v:g} is out of range (|v| <= 2000 mm)")
        span = p.c2_mm + math.hypot(p.a2_mm, p.c3_mm) + p.c4_mm + abs(p.a1_mm)
    else:
        span = sum(abs(r.a_mm) + abs(r.d_mm) for r in robot.dh[1:])
        for i, r in enumerate(robot.dh):
            if abs(r.a_mm) > 5000 or abs(r.d_mm) > 5000:
                raise UserError(f"{where}: dh[{i}] length out of range (|v| <= 5000 mm)")
    if robot.reach_mm > 1.25 * span or robot.reach_mm < 0.5 * span:
        raise UserError(f"{where}: reach_mm {robot.reach_mm:g} does not match its kinematics "
                        f"(arm lengths add up to {span:.0f} mm); check the numbers")
    # an arm with a published reference (URDF chain, documented poses) must agree with it:
    # a flipped joint sign, a wrong offset or another model's lengths would move the real
    # arm elsewhere than the program says
    from sculptor.robot.references import check_profile_fk

    res = check_profile_fk(robot, n=24)
    if res["checked"] and max(res["max_pos_mm"], res["pose_err_mm"]) > 0.01:
        raise UserError(f"{where} disagrees with the published kinematics of "
                        f"{robot.name} by {max(res['max_pos_mm'], res['pose_err_mm']):.1f} mm "
                        "(check joint signs, offsets and lengths; tests/robot)")
    if res["checked"] and res["max_rot_deg"] > 1e-3:
        raise UserError(f"{where} disagrees with the published kinematics of {robot.name} by "
                        f"{res['max_rot_deg']:.2f} deg of flange rotation (check joint signs "
                        "and offsets; tests/robot)")


@dataclass(frozen=True)
class RobotCell:
    """A loaded, checked cell: profiles plus the fixed transforms (mm)."""

    cell: CellProfile
    robot: RobotProfile | None
    world_from_base: np.ndarray
    base_from_world: np.ndarray

    @classmethod
    def load(cls, cell: CellProfile | str) -> "RobotCell":
        cp = load_cell(cell) if isinstance(cell, str) else cell
        robot = None
        if cp.machine == "robot":
            robot = load_robot(cp.robot)
            check_robot(robot)
        wfb = cp.world_from_robot_base.matrix()
        return cls(cp, robot, wfb, inv_rigid(wfb))

    # ------------------------------------------------------------------ transforms
    def world_from_workpiece(self, theta_rad: np.ndarray) -> np.ndarray:
        """(n,) physical turntable angles -> (n, 4, 4)."""
        theta = np.atleast_1d(np.asarray(theta_rad, float))
        if self.cell.turntable is None:
            return np.repeat(self.cell.world_from_workpiece.matrix()[None], len(theta), 0)
        return self.cell.turntable.world_from_turntable.matrix() @ rz(theta)

    def base_from_workpiece(self, theta_rad: np.ndarray) -> np.ndarray:
        return self.base_from_world @ self.world_from_workpiece(theta_rad)

    def turntable_limits_rad(self) -> tuple[float, float]:
        """Physical angle limits from the controller limits and sign."""
        tt = self.cell.turntable
        if tt is None:
            return (0.0, 0.0)
        lo, hi = sorted((tt.sign * math.radians(tt.min_deg), tt.sign * math.radians(tt.max_deg)))
        return lo, hi

    def turntable_controller_deg(self, theta_rad: np.ndarray) -> np.ndarray:
        sign = self.cell.turntable.sign if self.cell.turntable else 1
        return sign * np.degrees(theta_rad)


def tool_matrix(tool: RotaryTool | GougeTool) -> np.ndarray:
    """4x4 flange_from_tcp (mm)."""
    return tool.flange_from_tcp.matrix()


def resolve_tool(tool) -> RotaryTool | GougeTool:
    if isinstance(tool, (RotaryTool, GougeTool)):
        return tool
    return load_tool(str(tool))
