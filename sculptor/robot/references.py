"""Published kinematic references used to check each robot profile's forward kinematics.

Each entry is an independent description of the arm as its publisher gives it: the URDF
joint chain of the ROS-Industrial support package (joint origin xyz in metres, rpy in rad,
axis) and the flange (``tool0``) frame on link 6, plus poses that the manufacturer
documents. :func:`check_profile_fk` compares a profile's FK (OPW/DH numbers, signs and
offsets) with these at random joint values; a wrong sign, offset or length shows up as
millimetres of error. The profile files are data a user may edit: run
``check_profile_fk`` (the tests do) after every change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

from sculptor.profiles import RobotProfile

_PI = math.pi


@dataclass(frozen=True)
class UrdfJoint:
    xyz_m: tuple[float, float, float]
    rpy: tuple[float, float, float]
    axis: tuple[float, float, float]


@dataclass(frozen=True)
class Reference:
    source: str
    joints: tuple[UrdfJoint, ...]
    link6_from_flange_rpy: tuple[float, float, float]
    # (controller joint values in degrees, flange xyz in mm) documented by the maker
    poses: tuple[tuple[tuple[float, ...], tuple[float, float, float]], ...] = field(
        default_factory=tuple)


def _j(xyz, axis, rpy=(0.0, 0.0, 0.0)) -> UrdfJoint:
    return UrdfJoint(tuple(xyz), tuple(rpy), tuple(axis))


REFERENCES: dict[str, Reference] = {
    "kuka-kr6-r900": Reference(
        "ros-industrial/kuka_experimental kuka_kr6_support/urdf/kr6r900sixx_macro.xacro",
        (_j((0, 0, 0.400), (0, 0, -1)), _j((0.025, 0, 0), (0, 1, 0)),
         _j((0.455, 0, 0), (0, 1, 0)), _j((0, 0, 0.035), (-1, 0, 0)),
         _j((0.420, 0, 0), (0, 1, 0)), _j((0.080, 0, 0), (-1, 0, 0))),
        (0.0, _PI / 2, 0.0),
        # KUKA home {A1 0, A2 -90, A3 90, ...}: flange 25+420+80 in front, 400+455+35 high
        (((0, -90, 90, 0, 0, 0), (525.0, 0.0, 890.0)),),
    ),
    "kuka-kr6-r900-2": Reference(
        "ros-industrial/kuka_experimental kuka_kr6_support/urdf/kr6r900_2_macro.xacro",
        (_j((0, 0, 0.400), (0, 0, -1)), _j((0.025, 0, 0), (0, 1, 0)),
         _j((0.455, 0, 0), (0, 1, 0)), _j((0, 0, 0.025), (-1, 0, 0)),
         _j((0.420, 0, 0), (0, 1, 0)), _j((0.090, 0, 0), (-1, 0, 0))),
        (0.0, _PI / 2, 0.0),
        (((0, -90, 90, 0, 0, 0), (535.0, 0.0, 880.0)),),
    ),
    "abb-irb1600-6-1.2": Reference(
        "ros-industrial/abb_experimental abb_irb1600_support/urdf/irb_1600_12_macro.xacro",
        (_j((0, 0, 0), (0, 0, 1)), _j((0.15, 0, 0.4865), (0, 1, 0)),
         _j((0, 0, 0.475), (0, 1, 0)), _j((0.300, 0, 0), (1, 0, 0)),
         _j((0.300, 0, 0), (0, 1, 0)), _j((0.065, 0, 0), (1, 0, 0))),
        (0.0, _PI / 2, 0.0),
        # calibration position (all zero): wrist 150+600+65 in front, 486.5+475 high
        (((0, 0, 0, 0, 0, 0), (815.0, 0.0, 961.5)),),
    ),
    "abb-irb2400": Reference(
        "ros-industrial/abb abb_irb2400_support/urdf/irb2400_macro.xacro",
        (_j((0, 0, 0), (0, 0, 1)), _j((0.1, 0, 0.615), (0, 1, 0)),
         _j((0, 0, 0.705), (0, 1, 0)), _j((0.258, 0, 0.135), (1, 0, 0)),
         _j((0.497, 0, 0), (0, 1, 0)), _j((0.085, 0, 0), (1, 0, 0))),
        (0.0, _PI / 2, 0.0),
        (((0, 0, 0, 0, 0, 0), (940.0, 0.0, 1455.0)),),
    ),
    "fanuc-m20ib-25": Reference(
        "ros-industrial/fanuc fanuc_m20ib_support/urdf/m20ib25_macro.xacro",
        (_j((0, 0, 0.650), (0, 0, 1)), _j((0.075, 0, 0), (0, 1, 0)),
         _j((0, 0, 0.905), (0, -1, 0)), _j((0, 0, 0.120), (-1, 0, 0)),
         _j((0.865, 0, 0), (0, -1, 0)), _j((0.100, 0, 0), (-1, 0, 0))),
        (_PI, -_PI / 2, 0.0),
        (((0, 0, 0, 0, 0, 0), (1040.0, 0.0, 1675.0)),),
    ),
    "ur10e": Reference(
        "ros-industrial/universal_robot ur_description (ur.xacro chain built from the UR10e "
        "DH table of Universal Robots)",
        (_j((0, 0, 0.1807), (0, 0, 1)), _j((0, 0, 0), (0, 0, 1), (_PI / 2, 0, 0)),
         _j((-0.6127, 0, 0), (0, 0, 1)), _j((-0.57155, 0, 0.17415), (0, 0, 1)),
         _j((0, -0.11985, 0), (0, 0, 1), (_PI / 2, 0, 0)),
         _j((0, 0.11655, 0), (0, 0, 1), (_PI / 2, _PI, _PI))),
        (0.0, 0.0, 0.0),
        # all joints zero: UR's documented home-straight pose of the tool flange
        (((0, 0, 0, 0, 0, 0), (-1184.25, -290.7, 60.85)),),
    ),
}


def _rot(axis: np.ndarray, ang: np.ndarray) -> np.ndarray:
    return Rotation.from_rotvec(np.outer(ang, axis)).as_matrix()


def urdf_fk(ref: Reference, joints_deg: np.ndarray) -> np.ndarray:
    """(n, 6) joint values in degrees (URDF convention) -> (n, 4, 4) base_from_flange, mm."""
    q = np.radians(np.atleast_2d(joints_deg))
    n = len(q)
    m = np.repeat(np.eye(4)[None], n, 0)
    for i, j in enumerate(ref.joints):
        origin = np.eye(4)
        origin[:3, :3] = Rotation.from_euler("xyz", j.rpy).as_matrix()
        origin[:3, 3] = np.array(j.xyz_m) * 1000.0
        rot = np.repeat(np.eye(4)[None], n, 0)
        rot[:, :3, :3] = _rot(np.array(j.axis, float), q[:, i])
        m = m @ origin @ rot
    flange = np.eye(4)
    flange[:3, :3] = Rotation.from_euler("xyz", ref.link6_from_flange_rpy).as_matrix()
    return m @ flange


def check_profile_fk(robot: RobotProfile, *, n: int = 200, seed: int = 0) -> dict:
    """Compare a profile's FK with its published reference.

    Returns ``{"max_pos_mm", "max_rot_deg", "pose_err_mm", "checked"}``; ``checked`` is
    False when no reference is known for ``robot.name`` (then nothing was verified).
    """
    from sculptor.robot.kinematics import fk

    ref = REFERENCES.get(robot.name)
    if ref is None:
        return {"checked": False, "max_pos_mm": math.nan, "max_rot_deg": math.nan,
                "pose_err_mm": math.nan}
    rng = np.random.default_rng(seed)
    lim = np.degrees(robot.limits_rad)
    qd = rng.uniform(lim[:, 0], lim[:, 1], size=(n, 6))
    a = fk(robot, np.radians(qd))
    b = urdf_fk(ref, qd)
    pos = np.linalg.norm(a[:, :3, 3] - b[:, :3, 3], axis=1).max()
    rel = np.swapaxes(a[:, :3, :3], 1, 2) @ b[:, :3, :3]
    ang = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    pose_err = 0.0
    for joints_deg, xyz in ref.poses:
        t = fk(robot, np.radians([joints_deg]))[0]
        pose_err = max(pose_err, float(np.linalg.norm(t[:3, 3] - xyz)))
    return {"checked": True, "max_pos_mm": float(pos), "max_rot_deg": float(ang.max()),
            "pose_err_mm": pose_err}
