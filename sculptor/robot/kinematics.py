"""Forward and inverse kinematics of 6-axis arms, vectorised with numpy.

Two families (``RobotProfile.kinematics``):

* ``"opw"``: ortho-parallel base + spherical wrist (KUKA, ABB, Fanuc), closed-form IK with all
  8 branches (Brandstoetter, Angerer, Hofbaur 2014).
* ``"dh"``: six standard Denavit-Hartenberg rows (UR). IK: closed form for the UR wrist
  geometry (8 branches) plus :func:`ik_numeric`, a damped least-squares solver for any
  DH arm (used to polish and to track a path from a seed).

Conventions (see robot_profiles/README.md):

* Lengths in mm, angles in radians.
* Joint values passed in and out are in the **controller's convention**:
  ``controller = sign * kinematic + offset`` per joint (profile ``sign`` / ``offset_deg``).
* ``base_from_flange`` is the controller's flange frame (ROS-Industrial ``tool0``): +Z out of
  the flange. For OPW arms it is the identity rotation with the arm fully upright
  (kinematic zero).
* IK branch index ``b`` (0..7): bit 0 = shoulder (0: front, wrist centre on the +x side of
  axis 1 as seen from joint 2's side), bit 1 = elbow (0: up), bit 2 = wrist flip
  (0: kinematic axis 5 >= 0). For OPW arms branches 0/1 share axis 1 (front), 2/3 use the
  back solution.
"""

from __future__ import annotations

import math

import numpy as np

from sculptor.profiles import RobotProfile

TWO_PI = 2.0 * math.pi


# ----------------------------------------------------------------------------- conventions
def _sign_offset(robot: RobotProfile) -> tuple[np.ndarray, np.ndarray]:
    sign = np.array([j.sign for j in robot.joints], float)
    off = np.radians([j.offset_deg for j in robot.joints])
    return sign, off


def to_kinematic(robot: RobotProfile, joints_rad: np.ndarray) -> np.ndarray:
    """(..., 6) controller angles -> kinematic angles."""
    sign, off = _sign_offset(robot)
    return sign * (np.asarray(joints_rad, float) - off)


def to_controller(robot: RobotProfile, q_kin: np.ndarray) -> np.ndarray:
    """(..., 6) kinematic angles -> controller angles."""
    sign, off = _sign_offset(robot)
    return sign * np.asarray(q_kin, float) + off


# ----------------------------------------------------------------------------- small helpers
def _rz(t: np.ndarray) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    m = np.zeros(t.shape + (4, 4))
    m[..., 0, 0] = c
    m[..., 0, 1] = -s
    m[..., 1, 0] = s
    m[..., 1, 1] = c
    m[..., 2, 2] = 1.0
    m[..., 3, 3] = 1.0
    return m


def _ry(t: np.ndarray) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    m = np.zeros(t.shape + (4, 4))
    m[..., 0, 0] = c
    m[..., 0, 2] = s
    m[..., 2, 0] = -s
    m[..., 2, 2] = c
    m[..., 1, 1] = 1.0
    m[..., 3, 3] = 1.0
    return m


def _trans(x: float, y: float, z: float) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = (x, y, z)
    return m


def _dh(theta: np.ndarray, d: float, a: float, alpha: float) -> np.ndarray:
    """Standard DH: Rz(theta) Tz(d) Tx(a) Rx(alpha); theta (...,) -> (..., 4, 4)."""
    ct, st = np.cos(theta), np.sin(theta)
    ca, sa = math.cos(alpha), math.sin(alpha)
    m = np.zeros(theta.shape + (4, 4))
    m[..., 0, 0] = ct
    m[..., 0, 1] = -st * ca
    m[..., 0, 2] = st * sa
    m[..., 0, 3] = a * ct
    m[..., 1, 0] = st
    m[..., 1, 1] = ct * ca
    m[..., 1, 2] = -ct * sa
    m[..., 1, 3] = a * st
    m[..., 2, 1] = sa
    m[..., 2, 2] = ca
    m[..., 2, 3] = d
    m[..., 3, 3] = 1.0
    return m


def _as_joints(joints_rad) -> np.ndarray:
    q = np.asarray(joints_rad, float)
    if q.ndim == 1:
        q = q[None]
    if q.ndim != 2 or q.shape[1] != 6:
        raise ValueError(f"joints must be (n, 6), got {q.shape}")
    return q


def _as_poses(poses) -> np.ndarray:
    t = np.asarray(poses, float)
    if t.ndim == 2:
        t = t[None]
    if t.ndim != 3 or t.shape[1:] != (4, 4):
        raise ValueError(f"poses must be (n, 4, 4), got {t.shape}")
    return t


# ----------------------------------------------------------------------------- forward
def fk_frames(robot: RobotProfile, joints_rad) -> np.ndarray:
    """Link frames: (n, 6) controller angles -> (n, 7, 4, 4) ``base_from_link`` (mm).

    Frame 0 is the robot base; frame i (1..5) has its origin on the axis of joint i+1
    (OPW: shoulder, elbow, start of the forearm, wrist centre, wrist centre); frame 6 is
    the flange (same as :func:`fk`). For DH arms frame i is the standard DH frame i.
    Consecutive origins trace the arm's centre line (the simulator hangs capsules on them).
    """
    q = to_kinematic(robot, _as_joints(joints_rad))
    n = len(q)
    out = np.empty((n, 7, 4, 4))
    out[:, 0] = np.eye(4)
    if robot.kinematics == "opw":
        p = robot.opw
        steps = [
            (_rz(q[:, 0]), _trans(p.a1_mm, p.b_mm, p.c1_mm)),
            (_ry(q[:, 1]), _trans(0, 0, p.c2_mm)),
            (_ry(q[:, 2]), _trans(p.a2_mm, 0, 0)),
            (_rz(q[:, 3]), _trans(0, 0, p.c3_mm)),
            (_ry(q[:, 4]), np.eye(4)),
            (_rz(q[:, 5]), _trans(0, 0, p.c4_mm)),
        ]
        m = out[:, 0]
        for i, (rot, tr) in enumerate(steps):
            m = m @ rot @ tr
            out[:, i + 1] = m
    else:
        m = out[:, 0]
        for i, row in enumerate(robot.dh):
            m = m @ _dh(q[:, i], row.d_mm, row.a_mm, math.radians(row.alpha_deg))
            out[:, i + 1] = m
    return out


def fk(robot: RobotProfile, joints_rad) -> np.ndarray:
    """(n, 6) controller angles (rad) -> (n, 4, 4) ``base_from_flange`` (mm)."""
    q = to_kinematic(robot, _as_joints(joints_rad))
    if robot.kinematics == "opw":
        return _opw_fk(robot, q)
    return fk_frames(robot, to_controller(robot, q))[:, 6]


def _opw_fk(robot: RobotProfile, q: np.ndarray) -> np.ndarray:
    p = robot.opw
    q1, q2, q3, q4, q5, q6 = q.T
    k = math.hypot(p.a2_mm, p.c3_mm)
    psi3 = math.atan2(p.a2_mm, p.c3_mm)
    q23 = q2 + q3
    cx1 = p.c2_mm * np.sin(q2) + k * np.sin(q23 + psi3) + p.a1_mm
    cy1 = p.b_mm
    cz1 = p.c2_mm * np.cos(q2) + k * np.cos(q23 + psi3)
    s1, c1 = np.sin(q1), np.cos(q1)
    s23, c23 = np.sin(q23), np.cos(q23)
    s4, c4 = np.sin(q4), np.cos(q4)
    s5, c5 = np.sin(q5), np.cos(q5)
    s6, c6 = np.sin(q6), np.cos(q6)
    # R_0c = Rz(q1) Ry(q23); R_ce = Rz(q4) Ry(q5) Rz(q6)
    r0c = np.empty((len(q), 3, 3))
    r0c[:, 0] = np.stack([c1 * c23, -s1, c1 * s23], -1)
    r0c[:, 1] = np.stack([s1 * c23, c1, s1 * s23], -1)
    r0c[:, 2] = np.stack([-s23, np.zeros_like(s1), c23], -1)
    rce = np.empty((len(q), 3, 3))
    rce[:, 0] = np.stack([c4 * c5 * c6 - s4 * s6, -c4 * c5 * s6 - s4 * c6, c4 * s5], -1)
    rce[:, 1] = np.stack([s4 * c5 * c6 + c4 * s6, -s4 * c5 * s6 + c4 * c6, s4 * s5], -1)
    rce[:, 2] = np.stack([-s5 * c6, s5 * s6, c5], -1)
    r = r0c @ rce
    out = np.zeros((len(q), 4, 4))
    out[:, :3, :3] = r
    out[:, 0, 3] = cx1 * c1 - cy1 * s1 + p.c4_mm * r[:, 0, 2]
    out[:, 1, 3] = cx1 * s1 + cy1 * c1 + p.c4_mm * r[:, 1, 2]
    out[:, 2, 3] = cz1 + p.c1_mm + p.c4_mm * r[:, 2, 2]
    out[:, 3, 3] = 1.0
    return out


# ----------------------------------------------------------------------------- inverse
def ik(robot: RobotProfile, base_from_flange) -> tuple[np.ndarray, np.ndarray]:
    """All IK branches: (n, 4, 4) poses (mm) -> solutions (n, 8, 6) rad, valid (n, 8) bool.

    Solutions are in the controller's convention, each joint brought into its limits by
    +/-360 degree turns where possible (the turn nearest zero). ``valid`` is False where
    the pose is out of reach for that branch (solution NaN) or a joint is outside its
    limits. Singularity margins are not applied here (see :mod:`sculptor.robot.solver`).
    """
    t = _as_poses(base_from_flange)
    if len(t) > _CHUNK:  # cache-sized blocks are ~2x faster than one huge batch
        parts = [ik(robot, t[a:a + _CHUNK]) for a in range(0, len(t), _CHUNK)]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    q = _opw_ik(robot, t) if robot.kinematics == "opw" else _ur_ik(robot, t)
    sign, off = _sign_offset(robot)
    q *= sign
    q += off
    q[~np.all(np.isfinite(q), -1)] = np.nan
    return bring_into_limits(robot, q)


_CHUNK = 2048


def wrap_pi(x: np.ndarray) -> np.ndarray:
    """Angles wrapped to [-pi, pi] (x - 2 pi round(x / 2 pi): ~9x faster than
    np.remainder; NaN stays NaN)."""
    return x - TWO_PI * np.round(x * (1.0 / TWO_PI))


def bring_into_limits(robot: RobotProfile, sol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., 6) controller angles -> (same, valid): each joint at its turn nearest zero
    (wrapped to (-pi, pi], then shifted by whole turns only as far as the limits need)."""
    lim = robot.limits_rad
    lo, hi = lim[:, 0], lim[:, 1]
    w = wrap_pi(sol)
    # joints whose range lies within (-pi, pi]: the wrapped value is the only candidate
    inner = (lo >= -math.pi) & (hi <= math.pi)
    with np.errstate(invalid="ignore"):
        ok = (w >= lo) & (w <= hi)  # NaN -> False
        if not inner.all():
            # allowed whole turns k with lo <= w + 2 pi k <= hi; take the one nearest zero
            cols = np.nonzero(~inner)[0]
            wc = w[..., cols]
            k_lo = np.ceil((lo[cols] - wc) / TWO_PI)
            k_hi = np.floor((hi[cols] - wc) / TWO_PI)
            ok[..., cols] = k_lo <= k_hi
            w[..., cols] = wc + TWO_PI * np.minimum(np.maximum(0.0, k_lo), k_hi)
        valid = np.all(ok, axis=-1)
    return w, valid


def nearest_turn(robot: RobotProfile, q: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shift each joint of ``q`` (..., 6) by whole turns to lie nearest ``ref`` (..., 6);
    returns (q', within_limits (...,))."""
    lim = robot.limits_rad
    shifted = q + TWO_PI * np.round((ref - q) / TWO_PI)
    ok = (shifted >= lim[:, 0]) & (shifted <= lim[:, 1])
    # a turn that leaves the limits: try the neighbouring turn towards the range
    for step in (TWO_PI, -TWO_PI):
        alt = shifted + step
        alt_ok = (alt >= lim[:, 0]) & (alt <= lim[:, 1])
        shifted = np.where(~ok & alt_ok, alt, shifted)
        ok = ok | alt_ok
    return shifted, np.all(ok, axis=-1)


def _opw_ik(robot: RobotProfile, t: np.ndarray) -> np.ndarray:
    """Kinematic angles (n, 8, 6) (NaN where out of reach)."""
    p = robot.opw
    a1, a2, b, c1, c2, c3, c4 = (p.a1_mm, p.a2_mm, p.b_mm, p.c1_mm, p.c2_mm, p.c3_mm,
                                 p.c4_mm)
    r = t[:, :3, :3]
    cx = t[:, 0, 3] - c4 * r[:, 0, 2]
    cy = t[:, 1, 3] - c4 * r[:, 1, 2]
    cz = t[:, 2, 3] - c4 * r[:, 2, 2]
    with np.errstate(invalid="ignore"):
        nx1 = np.sqrt(cx * cx + cy * cy - b * b) - a1
        dz = cz - c1
        s1_2 = nx1 * nx1 + dz * dz
        s2_2 = (nx1 + 2 * a1) ** 2 + dz * dz
        k_2 = a2 * a2 + c3 * c3
        s1, s2, k = np.sqrt(s1_2), np.sqrt(s2_2), math.sqrt(k_2)
        base = np.arctan2(cy, cx)
        off1 = np.arctan2(b, nx1 + a1)
        t1_i = base - off1
        t1_ii = base + off1 - math.pi
        acos_s1 = np.arccos(_clip_tol((s1_2 + c2 * c2 - k_2) / (2 * s1 * c2)))
        acos_s2 = np.arccos(_clip_tol((s2_2 + c2 * c2 - k_2) / (2 * s2 * c2)))
        at1 = np.arctan2(nx1, dz)
        at2 = np.arctan2(nx1 + 2 * a1, dz)
        t2 = np.stack([-acos_s1 + at1, acos_s1 + at1, -acos_s2 - at2, acos_s2 - at2], 1)
        psi3 = math.atan2(a2, c3)
        e1 = np.arccos(_clip_tol((s1_2 - c2 * c2 - k_2) / (2 * c2 * k)))
        e2 = np.arccos(_clip_tol((s2_2 - c2 * c2 - k_2) / (2 * c2 * k)))
        t3 = np.stack([e1 - psi3, -e1 - psi3, e2 - psi3, -e2 - psi3], 1)
    t1 = np.stack([t1_i, t1_i, t1_ii, t1_ii], 1)
    s1_, c1_ = np.sin(t1), np.cos(t1)
    s23, c23 = np.sin(t2 + t3), np.cos(t2 + t3)
    r02, r12, r22 = r[:, 0, 2, None], r[:, 1, 2, None], r[:, 2, 2, None]
    m = r02 * s23 * c1_ + r12 * s23 * s1_ + r22 * c23
    t5 = np.arctan2(np.sqrt(np.clip(1 - m * m, 0.0, None)), m)
    t4 = np.arctan2(r12 * c1_ - r02 * s1_, r02 * c23 * c1_ + r12 * c23 * s1_ - r22 * s23)
    e_y = r[:, 0, 1, None] * s23 * c1_ + r[:, 1, 1, None] * s23 * s1_ + r[:, 2, 1, None] * c23
    e_x = -(r[:, 0, 0, None] * s23 * c1_ + r[:, 1, 0, None] * s23 * s1_
            + r[:, 2, 0, None] * c23)
    t6 = np.arctan2(e_y, e_x)
    # wrist singular (t5 ~ 0): t4 + t6 is what matters; keep t4 = 0 by convention
    sing = np.abs(np.sin(t5)) < 1e-12
    if np.any(sing):
        r_0c_t = _r0c_t(t1, t2 + t3)  # (n, 4, 3, 3) transposed R_0c
        r_ce = np.einsum("nkij,njl->nkil", r_0c_t, r)
        phi = np.arctan2(r_ce[..., 1, 0], r_ce[..., 0, 0])
        t4 = np.where(sing, 0.0, t4)
        t6 = np.where(sing, phi, t6)
    out = np.empty((len(t), 8, 6))
    out[:, :4, 0] = t1
    out[:, :4, 1] = t2
    out[:, :4, 2] = t3
    out[:, :4, 3] = t4
    out[:, :4, 4] = t5
    out[:, :4, 5] = t6
    out[:, 4:, :3] = out[:, :4, :3]
    out[:, 4:, 3] = t4 + math.pi
    out[:, 4:, 4] = -t5
    out[:, 4:, 5] = t6 - math.pi
    # branch order: b = shoulder + 2*elbow + 4*flip
    return out[:, [0, 2, 1, 3, 4, 6, 5, 7]]


def _r0c_t(t1: np.ndarray, t23: np.ndarray) -> np.ndarray:
    s1, c1 = np.sin(t1), np.cos(t1)
    s23, c23 = np.sin(t23), np.cos(t23)
    z = np.zeros_like(s1)
    r = np.stack([np.stack([c1 * c23, -s1, c1 * s23], -1),
                  np.stack([s1 * c23, c1, s1 * s23], -1),
                  np.stack([-s23, z, c23], -1)], -2)
    return np.swapaxes(r, -1, -2)


def _clip_tol(x: np.ndarray, tol: float = 1e-12) -> np.ndarray:
    """Clip values within ``tol`` of +/-1 (round-off at the reach boundary); beyond stays NaN."""
    x = np.where((x > 1) & (x < 1 + tol), 1.0, x)
    return np.where((x < -1) & (x > -1 - tol), -1.0, x)


# ----------------------------------------------------------------------------- UR (DH) IK
def _dh_params(robot: RobotProfile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.array([r.d_mm for r in robot.dh])
    a = np.array([r.a_mm for r in robot.dh])
    al = np.radians([r.alpha_deg for r in robot.dh])
    return d, a, al


def _is_ur_geometry(robot: RobotProfile) -> bool:
    d, a, al = _dh_params(robot)
    return (np.allclose(np.degrees(al), [90, 0, 0, 90, -90, 0]) and a[0] == 0
            and a[3] == 0 and a[4] == 0 and a[5] == 0 and d[1] == 0 and d[2] == 0)


def _ur_ik(robot: RobotProfile, t: np.ndarray) -> np.ndarray:
    """Closed-form IK of the UR geometry, polished by two Newton steps; (n, 8, 6) kinematic."""
    if not _is_ur_geometry(robot):
        raise ValueError(f"robot {robot.name}: closed-form DH IK needs the UR geometry; "
                         "use ik_numeric")
    d, a, al = _dh_params(robot)
    d1, a2, a3, d4, d5, d6 = d[0], a[1], a[2], d[3], d[4], d[5]
    n = len(t)
    out = np.full((n, 8, 6), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        p05 = t[:, :3, 3] - d6 * t[:, :3, 2]
        psi = np.arctan2(p05[:, 1], p05[:, 0])
        rxy = np.hypot(p05[:, 0], p05[:, 1])
        phi = np.arccos(_clip_tol(d4 / rxy))
        px, py = t[:, 0, 3], t[:, 1, 3]
        for i_sh, th1 in enumerate((psi + phi + math.pi / 2, psi - phi + math.pi / 2)):
            s1, c1 = np.sin(th1), np.cos(th1)
            c5v = _clip_tol((px * s1 - py * c1 - d4) / d6)
            for i_wr, th5 in enumerate((np.arccos(c5v), -np.arccos(c5v))):
                s5 = np.sin(th5)
                # inverse pose columns (T60 = T06^-1): rotation part is R^T
                rt = np.swapaxes(t[:, :3, :3], 1, 2)
                x60y, y60y = rt[:, 1, 0], rt[:, 1, 1]
                x60x, y60x = rt[:, 0, 0], rt[:, 0, 1]
                th6 = np.arctan2((-x60y * s1 + y60y * c1) / s5, (x60x * s1 - y60x * c1) / s5)
                th6 = np.where(np.abs(s5) < 1e-12, 0.0, th6)
                t01 = _dh(th1, d1, 0.0, al[0])
                t45 = _dh(th5, d5, 0.0, al[4])
                t56 = _dh(th6, d6, 0.0, al[5])
                t14 = np.linalg.inv(t01) @ t @ np.linalg.inv(t45 @ t56)
                p13 = t14[:, :3, 3] - d4 * t14[:, :3, 1]
                l13 = np.linalg.norm(p13, axis=1)
                c3v = _clip_tol((l13 ** 2 - a2 * a2 - a3 * a3) / (2 * a2 * a3))
                for i_el, th3 in enumerate((np.arccos(c3v), -np.arccos(c3v))):
                    th2 = -np.arctan2(p13[:, 1], -p13[:, 0]) + np.arcsin(
                        np.clip(a3 * np.sin(th3) / l13, -1, 1))
                    t12 = _dh(th2, 0.0, a2, al[1])
                    t23 = _dh(th3, 0.0, a3, al[2])
                    t34 = np.linalg.inv(t12 @ t23) @ t14
                    th4 = np.arctan2(t34[:, 1, 0], t34[:, 0, 0])
                    b = i_sh + 2 * i_el + 4 * i_wr
                    out[:, b] = np.stack([th1, th2, th3, th4, th5, th6], 1)
    # Newton polish (closed form loses digits near the boundaries)
    flat = out.reshape(-1, 6)
    ok = np.all(np.isfinite(flat), axis=1)
    if np.any(ok):
        tt = np.repeat(t, 8, axis=0)[ok]
        flat[ok] = _newton(robot, flat[ok], tt, iters=2, damping=0.0)
    return flat.reshape(n, 8, 6)


# ----------------------------------------------------------------------------- numeric IK
def _pose_error(cur: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(n, 6) error [dp (mm), dtheta (rad)] in the base frame from cur to target."""
    dp = target[:, :3, 3] - cur[:, :3, 3]
    rerr = target[:, :3, :3] @ np.swapaxes(cur[:, :3, :3], 1, 2)
    w = 0.5 * np.stack([rerr[:, 2, 1] - rerr[:, 1, 2], rerr[:, 0, 2] - rerr[:, 2, 0],
                        rerr[:, 1, 0] - rerr[:, 0, 1]], 1)
    # sin -> angle (exact for the axis-angle log when the error is below 90 degrees)
    s = np.linalg.norm(w, axis=1, keepdims=True)
    c = (np.trace(rerr, axis1=1, axis2=2)[:, None] - 1) / 2
    ang = np.arctan2(s, c)
    scale = np.where(s > 1e-15, ang / np.maximum(s, 1e-300), 1.0)
    return np.concatenate([dp, w * scale], 1)


def jacobian_kin(robot: RobotProfile, q_kin: np.ndarray) -> np.ndarray:
    """Geometric Jacobian (n, 6, 6) at kinematic angles, rows [v (mm/rad); w]."""
    frames = fk_frames(robot, to_controller(robot, q_kin))
    pe = frames[:, 6, :3, 3]
    jac = np.empty((len(q_kin), 6, 6))
    for i in range(6):
        if robot.kinematics == "dh":
            f = frames[:, i]
            z, o = f[:, :3, 2], f[:, :3, 3]
        else:  # opw chain: joint i+1 axis sits in frame i after its rotation
            f = frames[:, i]
            axis_local = 2 if i in (0, 3, 5) else 1
            z, o = f[:, :3, axis_local], f[:, :3, 3]
            if i in (1, 2, 4):  # Ry joints rotate about the frame's y through its origin
                pass
        jac[:, :3, i] = np.cross(z, pe - o)
        jac[:, 3:, i] = z
    return jac


def _newton(robot: RobotProfile, q_kin: np.ndarray, target: np.ndarray, iters: int,
            damping: float) -> np.ndarray:
    q = q_kin.copy()
    for _ in range(iters):
        cur = fk(robot, to_controller(robot, q))
        err = _pose_error(cur, target)
        jac = jacobian_kin(robot, q)
        if damping > 0:
            jt = np.swapaxes(jac, 1, 2)
            a = jac @ jt + damping ** 2 * np.eye(6)
            dq = (jt @ np.linalg.solve(a, err[..., None]))[..., 0]
        else:
            dq = _lstsq(jac, err)
        q = q + dq
    return q


def _lstsq(jac: np.ndarray, err: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(jac, err[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return (np.linalg.pinv(jac) @ err[..., None])[..., 0]


def ik_numeric(robot: RobotProfile, base_from_flange, seed_rad, *, iters: int = 50,
               tol_mm: float = 1e-9, tol_rad: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Damped least-squares IK from a seed, for any arm (UR or other DH arms).

    base_from_flange (n, 4, 4) mm, seed_rad (n, 6) controller angles ->
    (joints (n, 6) controller angles, converged (n,) bool). Converges to the branch of
    the seed (used to track a path point by point).
    """
    t = _as_poses(base_from_flange)
    q = to_kinematic(robot, _as_joints(seed_rad)).copy()
    lam = np.full(len(t), 1.0)
    for _ in range(iters):
        cur = fk(robot, to_controller(robot, q))
        err = _pose_error(cur, t)
        done = (np.linalg.norm(err[:, :3], axis=1) < tol_mm) & (
            np.linalg.norm(err[:, 3:], axis=1) < tol_rad)
        if np.all(done):
            break
        jac = jacobian_kin(robot, q)
        jt = np.swapaxes(jac, 1, 2)
        a = jac @ jt + (lam ** 2)[:, None, None] * np.eye(6)
        dq = (jt @ np.linalg.solve(a, err[..., None]))[..., 0]
        q = np.where(done[:, None], q, q + dq)
        lam = np.maximum(lam * 0.3, 1e-9)
    cur = fk(robot, to_controller(robot, q))
    err = _pose_error(cur, t)
    conv = (np.linalg.norm(err[:, :3], axis=1) < 1e-6) & (np.linalg.norm(err[:, 3:], axis=1)
                                                          < 1e-9)
    return to_controller(robot, q), conv


# ----------------------------------------------------------------------------- configuration
def elbow_straight_kin(robot: RobotProfile) -> float:
    if robot.kinematics == "opw":
        return -math.atan2(robot.opw.a2_mm, robot.opw.c3_mm)
    return 0.0


def arm_config_bits(robot: RobotProfile, joints_rad: np.ndarray) -> np.ndarray:
    """(n, 6) controller joints -> (n, 3) bools [wrist behind axis 1, elbow 'backward'
    (KUKA status bit 1 inverted), kinematic A5 < 0]; the common ground of KUKA status
    and ABB cfx."""
    q = to_kinematic(robot, joints_rad)
    if robot.kinematics == "opw":
        p = robot.opw
        k = math.hypot(p.a2_mm, p.c3_mm)
        psi3 = math.atan2(p.a2_mm, p.c3_mm)
        cx1 = p.c2_mm * np.sin(q[:, 1]) + k * np.sin(q[:, 1] + q[:, 2] + psi3) + p.a1_mm
        behind = cx1 < 0
    else:
        behind = np.zeros(len(q), bool)
    backward = (q[:, 2] - elbow_straight_kin(robot)) < 0
    neg5 = q[:, 4] < 0
    return np.stack([behind, backward, neg5], 1)
