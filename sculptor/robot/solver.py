"""Toolpath -> robot program: redundancy search, branch continuity, limits, densification.

The freedoms a tool leaves (a grid of *states*):

* rotary cutters: the spin about the tool axis (``spin_step_deg``, full turn; not searched
  when the tool axis is the flange axis: then it is A6's own turn) and a turntable offset;
* gouges: no spin (the edge must meet the wood as planned), but a turntable offset
  (``turntable_window_deg`` at ``turntable_step_deg``) and a small tilt about the tool's Y
  axis (``tilt_deg``, changes the rake angle a little).

A pass is cut into segments (the moves between two rapids: the arm keeps its configuration
inside one). Every segment is tried in the CAM's own state on all 8 IK branches at once
(vectorised), then in constant states (turntable offsets x tilts, wider offsets after),
and a Viterbi pass over segments picks the branches (a change at a rapid costs
``branch_switch_cost``); only segments still unsolved go to the dynamic programming over
(path point x state x IK branch), where the state may move one grid step between
neighbouring points. Feasible means: IK exists, every joint inside its limits,
``|A5| >= a5_margin_deg`` (wrist), the wrist centre away from the axis-1 line (shoulder)
and the arm not stretched (elbow), no joint jump above ``max_joint_step_deg`` between
neighbouring points (no configuration flip), wide joints fitting their range by whole turns,
and room to retract at both ends of a segment. Where a rapid re-configures the arm or turns
the table, the tool is first pulled back along its axis (rows inserted in the air).

The joint-space result is densified adaptively until linear joint interpolation (what
serial controllers do) stays within ``chord_tol_mm`` of the straight Cartesian move,
measured in the workpiece frame (the turntable may move at the same time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from sculptor.artifacts.core import Provenance
from sculptor.artifacts.program import RobotProgram
from sculptor.artifacts.toolpath import MoveKind, Toolpath
from sculptor.errors import UserError
from sculptor.profiles import CellProfile, GougeTool, RobotProfile
from sculptor.robot.cell import RobotCell, inv_rigid, resolve_tool, rz, tool_matrix
from sculptor.robot.kinematics import (
    arm_config_bits,
    fk,
    ik,
    nearest_turn,
    to_kinematic,
    wrap_pi,
)

BIG = 1.0e6  # cost of an infeasible point: the DP minimises their number first
RETRACT_CHECK_MM = 15.0  # segment ends must allow at least this retract along the tool
JOINT_NAMES_FALLBACK = ("A1", "A2", "A3", "A4", "A5", "A6")


@dataclass(frozen=True)
class Freedom:
    """The search grid for one pass: state k -> (spin, turntable offset, tilt), radians."""

    spin: np.ndarray
    table: np.ndarray
    tilt: np.ndarray
    neighbours: np.ndarray  # (K, W) state indices reachable in one step (-1: none)
    step_cost: np.ndarray  # (K, W) grid steps of that move

    @property
    def k(self) -> int:
        return len(self.spin)


def spin_is_a6(tool) -> bool:
    """True when spinning the tool about its axis is the same as turning the flange (A6):
    the tool axis runs along the flange axis through the TCP (spindles, straight holders).
    Then the spin search adds nothing the +/-360 deg turns of A6 do not already give."""
    m = tool_matrix(tool)
    return bool(abs(m[2, 2] - 1.0) < 1e-9 and abs(m[0, 3]) < 1e-9 and abs(m[1, 3]) < 1e-9)


def make_freedom(tool, *, spin_step_deg: float, turntable_window_deg: float,
                 turntable_step_deg: float, tilt_deg: float, has_turntable: bool) -> Freedom:
    """Search grid of a pass. Gouge: turntable offset x tilt (no spin: the edge must meet
    the wood as planned). Rotary cutter: spin (unless it equals A6) x turntable offset
    (a round cutter cuts the same in any turntable position; no tilt: a flat end changes
    its cut)."""
    if has_turntable and turntable_window_deg > 0:
        m = int(round(turntable_window_deg / turntable_step_deg))
        tables = np.radians(np.arange(-m, m + 1) * turntable_step_deg)
    else:
        tables = np.zeros(1)
    if isinstance(tool, GougeTool):
        spins = np.zeros(1)
        spin_cyclic = False
        tilts = np.radians([-tilt_deg, 0.0, tilt_deg]) if tilt_deg > 0 else np.zeros(1)
    else:
        n_spin = 1 if spin_is_a6(tool) else max(1, int(round(360.0 / spin_step_deg)))
        spins = np.radians(np.arange(n_spin) * 360.0 / n_spin)
        spin_cyclic = n_spin > 1
        tilts = np.zeros(1)
    grid = np.stack(np.meshgrid(np.arange(len(spins)), np.arange(len(tables)),
                                np.arange(len(tilts)), indexing="ij"), -1).reshape(-1, 3)
    dims = np.array([len(spins), len(tables), len(tilts)])
    reach = 2 if spin_cyclic else 1  # spin may move two grid steps between points
    offs = np.stack(np.meshgrid(np.arange(-reach, reach + 1), [-1, 0, 1], [-1, 0, 1],
                                indexing="ij"), -1).reshape(-1, 3)
    nb = grid[:, None, :] + offs[None]
    if spin_cyclic:
        nb[..., 0] %= dims[0]
    ok = np.all((nb >= 0) & (nb < dims), axis=-1)
    flat = (nb[..., 0] * dims[1] + nb[..., 1]) * dims[2] + nb[..., 2]
    steps = np.abs(offs).sum(-1)[None].repeat(len(grid), 0).astype(float)
    flat = np.where(ok, flat, -1)
    # drop all-invalid columns
    keep = np.any(flat >= 0, axis=0)
    return Freedom(spins[grid[:, 0]], tables[grid[:, 1]], tilts[grid[:, 2]], flat[:, keep],
                   steps[:, keep])


# ----------------------------------------------------------------------------- feasibility
# capsule radii of the arm links (mm), link i joins link frame i-1 and i of fk_frames
LINK_RADII_MM = (100.0, 80.0, 70.0, 60.0, 50.0, 45.0)
TABLE_MARGIN_MM = 10.0


def table_z_in_base(rc) -> float | None:
    """The cell's table top as a height in the robot base frame, or None when the base
    is not upright (the closed-form arm height check assumes it is)."""
    b = rc.base_from_world
    if abs(b[2, 2]) < 1.0 - 1e-6:
        return None
    return float((b @ np.array([0.0, 0.0, rc.cell.table_z_mm, 1.0]))[2])


@dataclass
class Feasibility:
    """The solver's rules for one IK solution (public: planners use the same rules).

    A solution (controller joints, as :func:`sculptor.robot.ik` gives them) is acceptable
    when IK found it, every joint lies inside its limits, ``|sin A5| >= sin
    a5_margin_rad`` (wrist singularity), the wrist centre is at least
    ``shoulder_margin_mm`` off the axis-1 line (shoulder), the elbow is at least
    ``elbow_margin_deg`` from stretched (elbow) and, given the table height, the upper
    arm and forearm keep clear of the table (table). :meth:`acceptable` says yes or no,
    :meth:`classify` why not (codes of ``REASONS``). The rest (costs and transitions) is
    the solver's own.

        rules = Feasibility(robot, math.radians(10.0))
        sol, valid = ik(robot, base_from_flange)        # (n, 8, 6), (n, 8)
        ok = rules.acceptable(sol, valid)               # (n, 8) bool
    """

    robot: RobotProfile
    a5_margin_rad: float
    shoulder_margin_mm: float = 15.0
    elbow_margin_deg: float = 3.0
    # table top in the robot base frame (mm): upper arm, elbow and forearm (capsules of
    # LINK_RADII_MM, as the simulator checks them) keep TABLE_MARGIN_MM above it; None: off
    table_z_mm: float | None = None

    def __post_init__(self):
        lim = self.robot.limits_rad
        self.lo, self.hi = lim[:, 0], lim[:, 1]
        self.inv_speed = 1.0 / self.robot.max_speed_rad_s
        self.wide = (self.hi - self.lo) >= 2 * math.pi - 1e-9
        if self.robot.kinematics == "opw":
            p = self.robot.opw
            self.elbow_straight = -math.atan2(p.a2_mm, p.c3_mm)
        else:
            self.elbow_straight = 0.0

    def classify(self, q_ctrl: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(..., 6) controller joints + IK validity -> reason code (...,) int8.

        0 ok, 1 out of reach, 2 joint limit, 3 wrist singularity, 4 shoulder singularity,
        5 elbow singularity, 11 arm meets the table (with ``table_z_mm``).
        """
        reach = np.all(np.isfinite(q_ctrl), axis=-1)
        qk = to_kinematic(self.robot, np.where(np.isfinite(q_ctrl), q_ctrl, 0.0))
        wrist = np.abs(np.sin(qk[..., 4])) < math.sin(self.a5_margin_rad)
        if self.robot.kinematics == "opw":
            elbow = np.abs(np.sin(qk[..., 2] - self.elbow_straight)) < math.sin(
                math.radians(self.elbow_margin_deg))
            p = self.robot.opw
            k = math.hypot(p.a2_mm, p.c3_mm)
            psi3 = math.atan2(p.a2_mm, p.c3_mm)
            cx1 = (p.c2_mm * np.sin(qk[..., 1]) + k * np.sin(qk[..., 1] + qk[..., 2] + psi3)
                   + p.a1_mm)
            shoulder = np.abs(cx1) < self.shoulder_margin_mm
        else:
            elbow = np.abs(np.sin(qk[..., 2])) < math.sin(math.radians(self.elbow_margin_deg))
            shoulder = np.zeros_like(elbow)
        code = np.zeros(q_ctrl.shape[:-1], np.int8)
        if self.table_z_mm is not None and self.robot.kinematics == "opw":
            code = np.where(self._arm_low(qk), 11, code)
        code = np.where(elbow, 5, code)
        code = np.where(shoulder, 4, code)
        code = np.where(wrist, 3, code)
        code = np.where(reach & ~valid, 2, code)
        code = np.where(~reach, 1, code)
        return code.astype(np.int8)

    def _arm_low(self, qk: np.ndarray) -> np.ndarray:
        """(...,) the capsules of links 2-4 (shoulder -> elbow -> forearm start -> wrist
        centre, as sculptor.robot.kinematics.fk_frames places them) dip below the table
        plus the margin (heights in closed form; the base is upright)."""
        p = self.robot.opw
        q2, q23 = qk[..., 1], qk[..., 1] + qk[..., 2]
        z1 = np.full_like(q2, p.c1_mm)
        z2 = z1 + p.c2_mm * np.cos(q2)
        z3 = z2 - p.a2_mm * np.sin(q23)
        z4 = z3 + p.c3_mm * np.cos(q23)
        lim = self.table_z_mm + TABLE_MARGIN_MM
        r2, r3, r4 = LINK_RADII_MM[1:4]
        return ((np.minimum(z1, z2) - r2 < lim) | (np.minimum(z2, z3) - r3 < lim)
                | (np.minimum(z3, z4) - r4 < lim))

    def acceptable(self, q_ctrl: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """(..., 6) controller joints + IK validity (...,) -> (...,) bool: the solver
        accepts the solution (code 0 of :meth:`classify`)."""
        return self.classify(q_ctrl, valid) == 0

    def soft_cost(self, q_ctrl: np.ndarray) -> np.ndarray:
        """(..., 6) -> (...,) small penalties near limits and the wrist singularity."""
        q = np.where(np.isfinite(q_ctrl), q_ctrl, 0.0)
        zone = math.radians(15.0)
        d = np.minimum(q - self.lo, self.hi - q)
        lim_pen = np.sum(np.clip(1.0 - d / zone, 0.0, None) ** 2 * ~self.wide, axis=-1)
        qk = to_kinematic(self.robot, q)
        s5 = np.abs(np.sin(qk[..., 4]))
        wr = np.clip(1.0 - s5 / math.sin(min(3 * self.a5_margin_rad, math.pi / 2)), 0, None)
        return 0.05 * lim_pen + 0.05 * wr ** 2

    def branch_cost(self, q_ctrl: np.ndarray) -> np.ndarray:
        """(..., 6) -> (...,): prefer the usual arm configuration (wrist centre in front
        of axis 1, elbow up) where the path allows it."""
        flat = np.where(np.isfinite(q_ctrl), q_ctrl, 0.0).reshape(-1, 6)
        bits = arm_config_bits(self.robot, flat).reshape(q_ctrl.shape[:-1] + (3,))
        return 0.5 * bits[..., 0] + 0.1 * bits[..., 1]

    def motion_cost(self, dq: np.ndarray) -> np.ndarray:
        """(..., 6) joint steps (controller) -> (...,) seconds at max speed (L1 + max)."""
        dq = np.where(self.wide, wrap_pi(dq), dq)
        return self.motion_cost_wrapped(dq)

    def transition(self, q_ik, base, prev_cost, jump_rad: float, cutting: bool):
        """Costs of moving from predecessor joints ``base`` (K, W, 8, 6) to the IK
        solutions ``q_ik`` (K, 8, 6): wide joints continue by the nearest turn; a
        continuation outside the limits, or (while cutting) a step above ``jump_rad``,
        costs BIG. Returns (total (K, W, 8), continued joints (K, W, 8, 6))."""
        q = q_ik[:, None]
        base = np.where(np.isnan(base), q, base)  # after a failed point: start afresh
        d = q - base
        d[..., self.wide] = wrap_pi(d[..., self.wide])
        q_new = base + d
        # wide joints may wind past their limits here: whole turns per segment fix them
        # later (_unwrap_segments); the others come from IK within their limits
        out = np.any(((q_new < self.lo) | (q_new > self.hi)) & ~self.wide, -1)
        mc = self.motion_cost_wrapped(d)
        bad = out
        if cutting:
            bad = bad | (np.max(np.abs(d), -1) > jump_rad)
        tot = prev_cost + np.where(np.isfinite(mc), mc, BIG) + np.where(bad, BIG, 0.0)
        return tot, q_new

    def motion_cost_wrapped(self, dq: np.ndarray) -> np.ndarray:
        t = np.abs(dq) * self.inv_speed
        return t.sum(-1) + 2.0 * t.max(-1)


REASONS = {1: "out of reach", 2: "joint limit", 3: "wrist singularity",
           4: "shoulder singularity", 5: "elbow singularity", 6: "joint jump (branch flip)",
           7: "turntable limit", 8: "NaN in toolpath", 9: "axis wind-up beyond limit",
           11: "arm meets the table"}


# ----------------------------------------------------------------------------- poses
def _tcp_poses(cell: RobotCell, pos, frames, table_rad, spin, table_off, tilt) -> np.ndarray:
    """base_from_tcp for points (m,) x states (K,) -> (m, K, 4, 4)."""
    m, k = len(pos), len(spin)
    wp_from_tcp = np.zeros((m, 4, 4))
    wp_from_tcp[:, :3, :3] = frames
    wp_from_tcp[:, :3, 3] = pos
    wp_from_tcp[:, 3, 3] = 1.0
    st = np.zeros((k, 4, 4))
    rs = Rotation.from_euler("zy", np.stack([spin, tilt], 1)).as_matrix()
    st[:, :3, :3] = rs
    st[:, 3, 3] = 1.0
    theta = table_rad[:, None] + table_off[None, :]
    b_wp = cell.base_from_workpiece(theta.reshape(-1)).reshape(m, k, 4, 4)
    return b_wp @ (wp_from_tcp[:, None] @ st[None])


def _ik_states(robot, cell, tcp_from_flange, pos, frames, table_rad, fr: Freedom):
    b_tcp = _tcp_poses(cell, pos, frames, table_rad, fr.spin, fr.table, fr.tilt)
    m, k = b_tcp.shape[:2]
    sol, val = ik(robot, (b_tcp @ tcp_from_flange).reshape(-1, 4, 4))
    return sol.reshape(m, k, 8, 6), val.reshape(m, k, 8)


# ----------------------------------------------------------------------------- DP per pass
def _solve_pass(robot, cell, tool, checker: Feasibility, pos, frames, table_rad, kinds,
                fr: Freedom, jump_rad: float, chunk: int, tick,
                branch_switch_cost: float = 2.0, n_rapid_pred: int = 24) -> dict:
    n, K = len(pos), fr.k
    tcp_from_flange = inv_rigid(tool_matrix(tool))
    tlo, thi = cell.turntable_limits_rad()
    has_tt = cell.cell.turntable is not None
    w_state = 0.02
    nb, nbv = fr.neighbours, fr.neighbours >= 0
    nb_safe = np.where(nbv, nb, 0)
    step_pen = np.where(nbv, w_state * fr.step_cost, np.inf)  # (K, W)
    pref = 0.002 * (np.abs(fr.table) + np.abs(fr.tilt)) / math.radians(5.0)  # (K,)
    back = np.zeros((n, K, 8), np.int32)  # flat predecessor state k' * 8 + b'
    cost = None
    q_rep = None  # (K, 8, 6) joints of each DP state, unwrapped along its best path
    kb = K * 8
    b_idx = np.arange(8)
    switch = np.where(b_idx[:, None] != b_idx[None], branch_switch_cost, 0.0)  # (8, 8)
    switch = np.tile(switch, (K, K))  # (KB, KB') with flat index k * 8 + b
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        sol, val = _ik_states(robot, cell, tcp_from_flange, pos[c0:c1], frames[c0:c1],
                              table_rad[c0:c1], fr)
        code = checker.classify(sol, val)  # (m, K, 8)
        if has_tt:
            th = table_rad[c0:c1, None] + fr.table[None]
            tbad = (th < tlo) | (th > thi)
            code = np.where((code == 0) & tbad[..., None], 7, code)
        unary = (np.where(code == 0, 0.0, BIG) + checker.soft_cost(sol) + pref[None, :, None]
                 + checker.branch_cost(sol))
        for i in range(c1 - c0):
            gi = c0 + i
            q_ik = sol[i]  # (K, 8, 6), each joint at the turn nearest zero
            if cost is None:
                cost = unary[i].copy()
                back[gi] = -1
                q_rep = q_ik
                continue
            if kinds[gi] == MoveKind.RAPID:
                # in the air: any state and any branch (a joint move re-configures the arm)
                # predecessors: the n_rapid_pred cheapest states (they hold every
                # feasible path that matters: the others carry BIG or worse soft costs)
                cf = cost.reshape(kb)
                m = min(kb, n_rapid_pred)
                pred = np.argpartition(cf, m - 1)[:m] if m < kb else np.arange(kb)
                qf = q_ik.reshape(kb, 1, 6)  # transition() adds the W axis
                base = q_rep.reshape(kb, 6)[pred].reshape(1, m, 1, 6)
                tot, q_new = checker.transition(qf, base, cf[pred].reshape(1, m, 1),
                                                jump_rad, False)
                tot = tot[..., 0] + switch[:, pred]  # (KB, m)
                arg = np.argmin(tot, axis=1)
                rows = np.arange(kb)
                cost = tot[rows, arg].reshape(K, 8) + unary[i]
                back[gi] = pred[arg].reshape(K, 8)
                q_rep = q_new[rows, arg, 0].reshape(K, 8, 6)
            else:
                base = q_rep[nb_safe]  # (K, W, 8, 6)
                tot, q_new = checker.transition(q_ik, base, cost[nb_safe], jump_rad, True)
                tot = tot + step_pen[..., None]
                arg = np.argmin(tot, axis=1)  # (K, 8) index into W
                cost = np.take_along_axis(tot, arg[:, None], 1)[:, 0] + unary[i]
                back[gi] = np.take_along_axis(nb_safe, arg, 1) * 8 + b_idx
                q_rep = np.take_along_axis(q_new, arg[:, None, :, None], 1)[:, 0]
            cost -= cost.min()
        tick(c1 - c0)
    # best final state, then backtrack states and branches
    s_flat = int(np.argmin(cost.reshape(-1)))
    states = np.empty(n, np.int64)
    branch = np.empty(n, np.int64)
    for gi in range(n - 1, -1, -1):
        states[gi], branch[gi] = divmod(s_flat, 8)
        if gi:
            s_flat = int(back[gi, states[gi], branch[gi]])
    return {"branch": branch, "states": states}


def _finish_pass(robot, cell, tool, checker, pos, frames, table_rad, kinds, b: np.ndarray,
                 spin, toff, tilt, jump_rad):
    """Joints of the chosen branch and state values (n,) each, unwrapped along the path;
    reason code per point."""
    n = len(pos)
    tcp_from_flange = inv_rigid(tool_matrix(tool))
    theta = table_rad + toff
    wp_from_tcp = np.zeros((n, 4, 4))
    wp_from_tcp[:, :3, :3] = frames @ Rotation.from_euler(
        "zy", np.stack([spin, tilt], 1)).as_matrix()
    wp_from_tcp[:, :3, 3] = pos
    wp_from_tcp[:, 3, 3] = 1
    b_tcp = cell.base_from_workpiece(theta) @ wp_from_tcp
    sol, val = ik(robot, b_tcp @ tcp_from_flange)
    rows = np.arange(n)
    q = sol[rows, b]
    code = checker.classify(q, val[rows, b])
    q, wound = _unwrap_segments(checker, q, kinds == MoveKind.RAPID)
    code = np.where((code == 0) & wound, 9, code)
    tlo, thi = cell.turntable_limits_rad()
    if cell.cell.turntable is not None:
        code = np.where((code == 0) & ((theta < tlo) | (theta > thi)), 7, code)
    return {"joints": q, "theta": theta, "base_from_tcp": b_tcp, "code": code,
            "spin": spin, "tilt": tilt, "wp_from_tcp": wp_from_tcp}


# ----------------------------------------------------------------------------- segments
def segment_starts(is_rapid: np.ndarray) -> np.ndarray:
    """(n,) bool RAPID -> start index of each segment (a move in the air begins one; the
    moves between are joined by straight moves, so the arm keeps its configuration)."""
    start = is_rapid.copy()
    start[0] = True
    return np.nonzero(start)[0]


def _unwrap_segments(checker: "Feasibility", q: np.ndarray, is_rapid: np.ndarray,
                     want_cost: bool = False, place: bool = True):
    """Continue wide joints (A4, A6: more than one turn of range) along each segment by
    the nearest turn, then shift each segment by whole turns so it fits the limits,
    nearest to where the previous segment ended (a rapid is a joint move: no turn is
    forced across it).

    q: (n, ..., 6) controller joints (NaN where IK failed). Returns (q' (n, ..., 6),
    wound (n, ...) bool: the segment spans more than the joint's range there), plus, with
    ``want_cost``, per segment (S, ...): max joint step inside it (rad) and motion cost.
    ``place=False`` only tests whether the turns fit (joints left unshifted: faster).
    """
    n = len(q)
    starts = segment_starts(is_rapid)
    seg = np.cumsum(np.isin(np.arange(n), starts)) - 1
    finite = np.all(np.isfinite(q), axis=-1)
    if place and not finite.all():
        # unreachable points hold the last finite value (continuation runs across them)
        idx = np.where(finite, np.arange(n).reshape((n,) + (1,) * (q.ndim - 2)), -1)
        idx = np.maximum.accumulate(idx, axis=0)
        held = np.take_along_axis(np.nan_to_num(q), np.maximum(idx, 0)[..., None], 0)
    else:  # feasibility only: a segment with an unreachable point fails anyway
        held = np.where(finite[..., None], q, 0.0)
    d = np.zeros_like(held)
    d[1:] = np.diff(held, axis=0)
    wide = checker.wide
    d[..., wide] = wrap_pi(d[..., wide])
    d[starts] = 0.0
    out = held.copy()
    if np.any(wide):
        cs = np.cumsum(d[..., wide], axis=0)
        out[..., wide] = (held[starts][seg][..., wide] + cs - cs[starts][seg])
        # whole turns per segment: lo <= min + 2 pi k and max + 2 pi k <= hi
        big = np.where(finite[..., None], out[..., wide], np.nan)
        mn = np.minimum.reduceat(np.where(np.isnan(big), np.inf, big), starts, axis=0)
        mx = np.maximum.reduceat(np.where(np.isnan(big), -np.inf, big), starts, axis=0)
        lo, hi = checker.lo[wide], checker.hi[wide]
        with np.errstate(invalid="ignore"):
            k_lo = np.ceil((lo - mn) / (2 * math.pi))
            k_hi = np.floor((hi - mx) / (2 * math.pi))
        k_lo = np.where(np.isfinite(k_lo), k_lo, 0.0)
        k_hi = np.where(np.isfinite(k_hi), k_hi, 0.0)
        first = out[starts][..., wide]
        last = out[np.r_[starts[1:] - 1, n - 1]][..., wide]
        k = np.zeros_like(k_lo)
        prev_end = None
        for s_ in range(len(starts) if place else 0):  # nearest to the previous end
            want = 0.0 if prev_end is None else np.round((prev_end - first[s_]) / (2 * math.pi))
            k[s_] = np.minimum(np.maximum(want, k_lo[s_]), np.maximum(k_hi[s_], k_lo[s_]))
            prev_end = last[s_] + 2 * math.pi * k[s_]
        out[..., wide] += 2 * math.pi * k[seg]
    wound_seg = np.any(k_lo > k_hi, axis=-1) if np.any(wide) else np.zeros(
        (len(starts),) + q.shape[1:-1], bool)
    out = np.where(finite[..., None], out, np.nan)
    wound = wound_seg[seg]
    if not want_cost:
        return out, wound
    step = np.abs(d).max(-1)
    max_step = np.maximum.reduceat(step, starts, axis=0)
    motion = np.add.reduceat(checker.motion_cost_wrapped(d), starts, axis=0)
    return out, wound, max_step, motion


def _segment_costs(robot, cell, checker: "Feasibility", tcp_from_flange, pos, frames, table_rad,
                   kinds, jump_rad: float, spin=0.0, toff=0.0, tilt=0.0):
    """A state (spin, turntable offset, tilt: scalars or per point; the CAM's own by
    default) on every point, all 8 branches at once (vectorised).

    Returns per segment (S, 8): feasible (every point reachable, safe, no jump, fits the
    limits by whole turns) and cost (soft penalties + motion; BIG where infeasible), the
    segment starts, and per point (n,) the best reason code over the branches."""
    wp_from_tcp = np.zeros((len(pos), 4, 4))
    wp_from_tcp[:, :3, :3] = frames
    if np.any(spin) or np.any(tilt):
        st = np.stack(np.broadcast_arrays(spin, tilt), -1).reshape(-1, 2)
        wp_from_tcp[:, :3, :3] = frames @ Rotation.from_euler("zy", st).as_matrix()
    wp_from_tcp[:, :3, 3] = pos
    wp_from_tcp[:, 3, 3] = 1.0
    theta = table_rad + toff
    b_tcp = cell.base_from_workpiece(theta) @ wp_from_tcp
    sol, val = ik(robot, b_tcp @ tcp_from_flange)  # (n, 8, 6)
    code = checker.classify(sol, val)
    if cell.cell.turntable is not None:
        tlo, thi = cell.turntable_limits_rad()
        code = np.where((code == 0) & ((theta < tlo) | (theta > thi))[:, None], 7, code)
    is_rapid = kinds == MoveKind.RAPID
    _, wound, max_step, motion = _unwrap_segments(checker, sol, is_rapid, want_cost=True,
                                                  place=False)
    starts = segment_starts(is_rapid)
    bad = np.maximum.reduceat((code != 0).astype(np.int8), starts, axis=0) > 0
    # both ends must leave room to pull the tool back along its axis (the arm may have to
    # re-configure or the table turn at the rapids around the segment: _safe_retracts)
    ends = np.r_[starts, np.r_[starts[1:] - 1, len(pos) - 1]]
    back = b_tcp[ends].copy()
    back[:, :3, 3] -= RETRACT_CHECK_MM * back[:, :3, 2]
    s_b, v_b = ik(robot, back @ tcp_from_flange)
    c_b = checker.classify(s_b, v_b).reshape(2, len(starts), 8)
    feasible = ~bad & ~wound[starts] & (max_step <= jump_rad) & np.all(c_b == 0, axis=0)
    unary = checker.soft_cost(sol) + checker.branch_cost(sol)
    cost = np.add.reduceat(unary, starts, axis=0) + motion
    best_code = np.where(np.any(code == 0, axis=1), 0, code.max(axis=1))
    return feasible, np.where(feasible, cost, BIG), starts, best_code


def _constant_states(fr: Freedom, window_lo: float, window_hi: float):
    """States (spin, offset, tilt) of the constant-per-segment search with
    window_lo < |turntable offset| <= window_hi (radians), the CAM's own state excluded."""
    spins = np.unique(fr.spin)
    tilts = np.unique(fr.tilt)
    step = np.diff(np.unique(fr.table)).min() if len(np.unique(fr.table)) > 1 else None
    if step is None:
        offs = np.zeros(1) if window_lo < 0 else np.zeros(0)
    else:
        m = int(round(window_hi / step))
        offs = np.arange(-m, m + 1) * step
        offs = offs[(np.abs(offs) > window_lo + 1e-9) & (np.abs(offs) <= window_hi + 1e-9)
                    & (offs > -math.pi + 1e-9)]  # +180 and -180 are one angle
    out = [(sp, o, t) for o in offs for t in tilts for sp in spins
           if not (sp == 0 and o == 0 and t == 0)]
    out.sort(key=lambda x: (abs(x[1]), abs(x[2]), x[0]))
    return out


def _choose_branches(cost: np.ndarray, switch_cost: float) -> np.ndarray:
    """Viterbi over segments (S, 8): one branch per segment, a branch change (at the rapid
    before a segment) costs ``switch_cost``. Rows of all zeros are wildcards."""
    s_n, nb = cost.shape
    sw = np.where(np.eye(nb, dtype=bool), 0.0, switch_cost)
    back = np.zeros((s_n, nb), np.int64)
    acc = cost[0].copy()
    for s_ in range(1, s_n):
        tot = acc[:, None] + sw  # (from, to)
        back[s_] = np.argmin(tot, axis=0)
        acc = tot[back[s_], np.arange(nb)] + cost[s_]
        acc -= acc.min()
    out = np.empty(s_n, np.int64)
    out[-1] = int(np.argmin(acc))
    for s_ in range(s_n - 1, 0, -1):
        out[s_ - 1] = back[s_, out[s_]]
    return out


# ----------------------------------------------------------------------------- densify
def turn_rotations(ra: np.ndarray, rb: np.ndarray, t) -> np.ndarray:
    """The tool turning from rotation ra to rb as the controller interpolates it (slerp,
    the shortest way) at fractions t: ra, rb (m, 3, 3) or (3, 3), t scalar or (m,) (or
    (k,) with one pair). Returns (..., 3, 3)."""
    r0 = Rotation.from_matrix(ra)
    rel = (r0.inv() * Rotation.from_matrix(rb)).as_rotvec()
    t = np.asarray(t, float)
    return (r0 * Rotation.from_rotvec(rel * (t[..., None] if t.ndim else t))).as_matrix()


def _interp_frames(wa: np.ndarray, wb: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Cartesian interpolation of workpiece_from_tcp: lerp position, slerp rotation."""
    out = np.zeros((len(t), 4, 4))
    out[:, :3, 3] = wa[:, :3, 3] + t[:, None] * (wb[:, :3, 3] - wa[:, :3, 3])
    out[:, :3, :3] = turn_rotations(wa[:, :3, :3], wb[:, :3, :3], t)
    out[:, 3, 3] = 1
    return out


def chord_error(robot, cell, tool, qa, qb, tha, thb, wa, wb,
                ts=(0.25, 0.5, 0.75)) -> np.ndarray:
    """Max distance (mm), in the workpiece frame, of the joint-interpolated TCP from the
    straight segment between wa and wb; all inputs per segment (m, ...) -> (m,)."""
    flange_from_tcp = tool_matrix(tool)
    err = np.zeros(len(qa))
    for t in ts:
        q = qa + t * (qb - qa)
        th = tha + t * (thb - tha)
        b_tcp = fk(robot, q) @ flange_from_tcp
        wp = inv_rigid(cell.base_from_workpiece(th)) @ b_tcp
        want = wa[:, :3, 3] + t * (wb[:, :3, 3] - wa[:, :3, 3])
        err = np.maximum(err, np.linalg.norm(wp[:, :3, 3] - want, axis=1))
    return err


def _densify(robot, cell, tool, data: dict, kinds, branch: np.ndarray, tol: float,
             max_depth: int = 24) -> dict:
    """Insert Cartesian-interpolated points until joint interpolation stays within tol."""
    q, th, wp = data["joints"], data["theta"], data["wp_from_tcp"]
    n = len(q)
    tcp_from_flange = inv_rigid(tool_matrix(tool))
    # segments i-1 -> i that must stay straight: cutting moves between two good points
    lin = (kinds[1:] != MoveKind.RAPID) & (data["code"][1:] == 0) & (data["code"][:-1] == 0)
    seg_a = np.nonzero(lin)[0]
    # each pending segment: (u0, u1, qa, qb, tha, thb, wa, wb)
    u0, u1 = seg_a.astype(float), seg_a + 1.0
    qa, qb, tha, thb, wa, wb = q[seg_a], q[seg_a + 1], th[seg_a], th[seg_a + 1], wp[seg_a], \
        wp[seg_a + 1]
    br = branch[seg_a + 1]
    new_u, new_q, new_th, new_wp, new_ok, new_br = [], [], [], [], [], []
    max_err = 0.0
    for _depth in range(max_depth):
        if len(u0) == 0:
            break
        err = chord_error(robot, cell, tool, qa, qb, tha, thb, wa, wb)
        bad = err > tol
        if np.any(~bad):
            max_err = max(max_err, float(err[~bad].max()))
        if not np.any(bad):
            break
        u0, u1, qa, qb, tha, thb, wa, wb, br = (
            x[bad] for x in (u0, u1, qa, qb, tha, thb, wa, wb, br))
        um = 0.5 * (u0 + u1)
        thm = 0.5 * (tha + thb)
        wm = _interp_frames(wa, wb, np.full(len(um), 0.5))
        b_tcp = cell.base_from_workpiece(thm) @ wm
        sol, val = ik(robot, b_tcp @ tcp_from_flange)
        rows = np.arange(len(um))
        qm = sol[rows, br]
        qm, ok_turn = nearest_turn(robot, qm, 0.5 * (qa + qb))
        ok = val[rows, br] & ok_turn & np.all(np.isfinite(qm), axis=1)
        qm = np.where(ok[:, None], qm, 0.5 * (qa + qb))
        new_u.append(um)
        new_q.append(qm)
        new_th.append(thm)
        new_wp.append(wm)
        new_ok.append(ok)
        new_br.append(br)
        # split into two halves
        u0, u1 = np.concatenate([u0, um]), np.concatenate([um, u1])
        qa, qb = np.concatenate([qa, qm]), np.concatenate([qm, qb])
        tha, thb = np.concatenate([tha, thm]), np.concatenate([thm, thb])
        wa, wb = np.concatenate([wa, wm]), np.concatenate([wm, wb])
        br = np.concatenate([br, br])
    else:
        if len(u0):
            err = chord_error(robot, cell, tool, qa, qb, tha, thb, wa, wb)
            max_err = max(max_err, float(err.max()))
    if not new_u:
        return {"u": np.arange(n, dtype=float), "joints": q, "theta": th, "wp": wp,
                "inserted_ok": np.ones(n, bool), "branch": branch, "max_chord_mm": max_err}
    u = np.concatenate([np.arange(n, dtype=float)] + new_u)
    order = np.argsort(u, kind="stable")
    return {"u": u[order],
            "joints": np.concatenate([q] + new_q)[order],
            "theta": np.concatenate([th] + new_th)[order],
            "wp": np.concatenate([wp] + new_wp)[order],
            "inserted_ok": np.concatenate([np.ones(n, bool)] + new_ok)[order],
            "branch": np.concatenate([branch] + new_br)[order],
            "max_chord_mm": max_err}


# ----------------------------------------------------------------------------- subsets
def _dp_subset(pos: np.ndarray, table: np.ndarray, kinds: np.ndarray,
               spacing_mm: float) -> np.ndarray:
    """Indices the state search runs on: every non-CUT move, the last move, and cutting
    moves spaced at least ``spacing_mm`` apart (or where the turntable turns > 1 deg)."""
    n = len(pos)
    if spacing_mm <= 0 or n < 3:
        return np.arange(n)
    keep = np.zeros(n, bool)
    keep[0] = keep[-1] = True
    keep |= kinds != MoveKind.CUT
    seg = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    acc, last_t = 0.0, table[0]
    for i in range(1, n):  # cheap scalar loop; n is the pass length
        acc += seg[i - 1]
        if keep[i] or acc >= spacing_mm or abs(table[i] - last_t) > 0.0175:
            keep[i] = True
        if keep[i]:
            acc, last_t = 0.0, table[i]
    return np.nonzero(keep)[0]


def _rapid_merge(kinds: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Kinds on the subset: a kept point is RAPID if any skipped move before it was."""
    out = kinds[keep].copy()
    rapid = np.cumsum(kinds == MoveKind.RAPID)
    before = np.concatenate([[0], rapid[keep][:-1]])
    out[(rapid[keep] - before) > 0] = MoveKind.RAPID
    return out


def _spread_states(fr: Freedom, states: np.ndarray, keep: np.ndarray, n: int):
    """State values on every move: kept points take their state, others interpolate."""
    idx = np.arange(n)
    spin = np.unwrap(fr.spin[states]) if fr.k > 1 else fr.spin[states]
    return (np.interp(idx, keep, spin), np.interp(idx, keep, fr.table[states]),
            np.interp(idx, keep, fr.tilt[states]))


def _pass_tool(tool, tool_id: str):
    """The pass's own tool when its ``tool_id`` names a tool profile (the toolpath was
    planned for it), else ``tool`` (fallback; also for synthetic ids)."""
    if tool is not None:
        fallback = resolve_tool(tool)
        if tool_id == fallback.name:
            return fallback
        try:
            return resolve_tool(tool_id)
        except UserError:
            return fallback
    try:
        return resolve_tool(tool_id)
    except UserError as e:
        raise UserError(f"{e}; the toolpath names tool '{tool_id}'") from None


def _hold_last_valid(q: np.ndarray) -> np.ndarray:
    """Unreachable points have no joints: they hold the last finite value (the first
    finite one at the start; zeros if none) so every consumer gets finite numbers; the
    ``valid`` flag says which points are real."""
    ok = np.all(np.isfinite(q), axis=1)
    if ok.all():
        return q
    if not ok.any():
        return np.zeros_like(q)
    idx = np.where(ok, np.arange(len(q)), -1)
    idx = np.maximum.accumulate(idx)
    idx = np.where(idx < 0, np.argmax(ok), idx)
    return q[idx]


def _plan_pass(robot, cell, tool, checker, pos, frames, table, kinds, fr: Freedom,
               jump_rad: float, dp_spacing_mm: float, chunk: int, tick,
               switch_cost: float = 2.0, windows_deg=(90.0, 180.0),
               batch_points: int = 16384):
    """Branch and state (spin, turntable offset, tilt) for every move of a pass.

    1. every segment (the moves between two rapids) is tried in the CAM's own state on all
       8 branches at once (vectorised);
    2. segments no branch can follow there try states held constant along the segment:
       turntable offsets within the pass's search window x tilts (x spins), then wider
       turntable offsets (``windows_deg``: the toolpath is in the workpiece frame, so any
       table angle cuts the same wood), nearest first;
    3. a Viterbi pass over segments picks the branches (a change at a rapid costs
       ``switch_cost``);
    4. segments still unsolved go to the full search (:func:`_solve_pass`: DP over
       point x state x branch, the state moving along the segment).
    Returns per move: branch, spin, turntable offset, tilt (n,) each."""
    n = len(pos)
    tcp_from_flange = inv_rigid(tool_matrix(tool))
    feasible, cost, starts, _ = _segment_costs(robot, cell, checker, tcp_from_flange, pos,
                                               frames, table, kinds, jump_rad)
    seg = np.cumsum(np.isin(np.arange(n), starts)) - 1
    seg_state = np.zeros((len(starts), 8, 3))  # (spin, offset, tilt) per segment, branch
    # the arm in front of its base (wrist centre ahead of axis 1) is what the cell is laid
    # out for: a segment only reachable with the arm turned round (A1 near +/-180) first
    # looks for a table offset or tilt that lets it stay in front
    front = (np.arange(8) & 1) == 0 if robot.kinematics == "opw" else np.ones(8, bool)
    search = ~feasible[:, front].any(axis=1)
    how = np.where(feasible.any(axis=1), 0, 3)  # 0 CAM state, 1 window, 2 wider, 3 DP
    fb = {"found": np.zeros(len(starts), bool), "cost": np.full_like(cost, BIG),
          "feas": np.zeros_like(feasible), "state": np.zeros((len(starts), 3))}
    window = float(np.abs(fr.table).max())
    edges = [-1.0, window] + [math.radians(w) for w in windows_deg if math.radians(w) > window]
    if cell.cell.turntable is None:
        edges = edges[:2]
    states = [st for w_lo, w_hi in zip(edges[:-1], edges[1:])
              for st in _constant_states(fr, w_lo, w_hi)]
    i_state = 0
    while search.any() and i_state < len(states):
        # nearest first: a segment keeps the first state that works; the unsolved
        # segments are tried in several states per call (copies side by side)
        h_seg = np.nonzero(search)[0]
        idx = np.nonzero(search[seg])[0]
        sub_kinds = kinds[idx].copy()
        sub_kinds[np.isin(idx, starts)] = MoveKind.RAPID  # each segment starts afresh
        n_st = max(1, min(len(states) - i_state, batch_points // len(idx)))
        chunk_st = np.array(states[i_state:i_state + n_st])  # (c, 3)
        i_state += n_st
        rep = np.tile(idx, n_st)
        per = np.repeat(chunk_st, len(idx), axis=0)
        f, c, _, _ = _segment_costs(robot, cell, checker, tcp_from_flange, pos[rep],
                                    frames[rep], table[rep], np.tile(sub_kinds, n_st),
                                    jump_rad, per[:, 0], per[:, 1], per[:, 2])
        f = f.reshape(n_st, len(h_seg), 8)
        c = c.reshape(n_st, len(h_seg), 8)
        # any branch: remembered as a fallback for segments nothing else reaches
        f_any = f.any(axis=2)
        first = np.argmax(f_any, axis=0)
        rows = np.nonzero(f_any.any(axis=0) & ~fb["found"][h_seg])[0]
        fb["found"][h_seg[rows]] = True
        fb["cost"][h_seg[rows]] = c[first[rows], rows]
        fb["feas"][h_seg[rows]] = f[first[rows], rows]
        fb["state"][h_seg[rows]] = chunk_st[first[rows]]
        # the arm in front: taken at once
        f_front = f[:, :, front].any(axis=2)
        first = np.argmax(f_front, axis=0)
        rows = np.nonzero(f_front.any(axis=0))[0]
        cost[h_seg[rows]] = c[first[rows], rows]
        feasible[h_seg[rows]] = f[first[rows], rows]
        seg_state[h_seg[rows]] = chunk_st[first[rows]][:, None, :]
        how[h_seg[rows]] = np.where(np.abs(chunk_st[first[rows], 1]) <= window + 1e-9, 1, 2)
        search[h_seg[rows]] = False
    # no front solution anywhere: the CAM state's own (turned-round) solution if it had
    # one, else the nearest state that reaches it at all
    use_fb = ~feasible.any(axis=1) & fb["found"]
    cost[use_fb], feasible[use_fb] = fb["cost"][use_fb], fb["feas"][use_fb]
    seg_state[use_fb] = fb["state"][use_fb][:, None, :]
    how[use_fb] = np.where(np.abs(fb["state"][use_fb, 1]) <= window + 1e-9, 1, 2)
    hard = ~feasible.any(axis=1)
    seg_branch = _choose_branches(np.where(hard[:, None], 0.0, cost), switch_cost)
    branch = seg_branch[seg]
    st = seg_state[np.arange(len(starts)), seg_branch][seg]
    spin, toff, tilt = st[:, 0].copy(), st[:, 1].copy(), st[:, 2].copy()
    if hard.any():
        idx = np.nonzero(hard[seg])[0]
        n_hard = len(idx)
        tick(n - n_hard)
        sub_kinds = kinds[idx].copy()
        sub_kinds[np.isin(idx, starts)] = MoveKind.RAPID
        keep = _dp_subset(pos[idx], table[idx], sub_kinds, dp_spacing_mm)
        res = _solve_pass(robot, cell, tool, checker, pos[idx][keep], frames[idx][keep],
                          table[idx][keep], _rapid_merge(sub_kinds, keep), fr, jump_rad, chunk,
                          tick)
        tick(n_hard - len(keep))
        s_, o_, t_ = _spread_states(fr, res["states"], keep, n_hard)
        spin[idx], toff[idx], tilt[idx] = s_, o_, t_
        branch[idx] = res["branch"][np.searchsorted(keep, np.arange(n_hard), "right") - 1]
    else:
        tick(n)
    return branch, spin, toff, tilt, np.bincount(how, minlength=4)


def _safe_retracts(robot, cell, checker, cat: dict, tcp_from_flange: np.ndarray,
                   clear_mm: tuple[float, ...], turn_deg: float = 1.0):
    """Where a rapid changes the arm's configuration or turns the table by more than
    ``turn_deg``, the arm first pulls the tool back along its own axis (out of the wood:
    the tool reaches along +Z) in the old configuration, makes the joint move there, and
    comes back along the new tool axis: two rows are inserted before the rapid's target
    (both RAPID, source = the rapid move). The clearance is the largest of ``clear_mm``
    that both ends reach safely. Returns (rows with the insertions, (pass, move) of the
    rapids that found no clear retract: their target row is marked invalid)."""
    kind, cfg, th, valid = cat["kind"], cat["config"], cat["theta"], cat["valid"]
    i = np.arange(1, len(kind))
    need = ((kind[1:] == MoveKind.RAPID) & valid[1:] & valid[:-1]
            & ((cfg[1:] != cfg[:-1]) | (np.abs(np.diff(th)) > math.radians(turn_deg))))
    idx = i[need]
    if len(idx) == 0:
        return cat, []

    def pulled(rows):
        b_tcp = cat["b_tcp"][rows]
        q_out = cat["joints"][rows].copy()
        b_out = b_tcp.copy()
        ok = np.zeros(len(rows), bool)
        # away from the wood: back along the tool axis, else radially out from the
        # turntable axis, else straight up
        b_wp = cell.base_from_workpiece(th[rows])
        wp_p = np.einsum("nji,nj->ni", b_wp[:, :3, :3], b_tcp[:, :3, 3] - b_wp[:, :3, 3])
        radial = np.zeros_like(wp_p)
        radial[:, :2] = wp_p[:, :2] / np.maximum(np.linalg.norm(wp_p[:, :2], axis=1), 1e-9)[:, None]
        dirs = [-b_tcp[:, :3, 2], np.einsum("nij,nj->ni", b_wp[:, :3, :3], radial),
                np.repeat(cell.base_from_world[None, :3, 2], len(rows), 0)]
        for d, u in ((d, u) for d in clear_mm for u in dirs):
            todo = np.nonzero(~ok)[0]
            if len(todo) == 0:
                break
            b = b_tcp[todo].copy()
            b[:, :3, 3] += d * u[todo]
            sol, val = ik(robot, b @ tcp_from_flange[rows[todo]])
            br = cat["config"][rows[todo]].astype(int)
            q = sol[np.arange(len(todo)), br]
            q, turn_ok = nearest_turn(robot, q, cat["joints"][rows[todo]])
            good = checker.classify(q, val[np.arange(len(todo)), br] & turn_ok) == 0
            q_out[todo[good]], b_out[todo[good]], ok[todo[good]] = q[good], b[good], True
        return q_out, b_out, ok

    q_lift, b_lift, ok_l = pulled(idx - 1)
    q_app, b_app, ok_a = pulled(idx)
    ok = ok_l & ok_a
    at = np.repeat(idx[ok], 2)

    def pair(a, b):
        return np.stack([a[ok], b[ok]], 1).reshape((-1,) + a.shape[1:])

    add = {"joints": pair(q_lift, q_app), "b_tcp": pair(b_lift, b_app),
           "theta": pair(th[idx - 1], th[idx]), "config": pair(cfg[idx - 1], cfg[idx])}
    for k in ("kind", "feed", "src", "valid"):
        add[k] = np.repeat(cat[k][idx[ok]], 2, axis=0)
    out = {k: np.insert(v, at, add[k].astype(v.dtype), axis=0) for k, v in cat.items()}
    bad = idx[~ok]
    out["valid"][bad + 2 * np.searchsorted(idx[ok], bad)] = False
    return out, [tuple(x) for x in cat["src"][bad].tolist()]


# ----------------------------------------------------------------------------- public
def _failures(p_idx: int, name: str, code: np.ndarray, pos: np.ndarray, robot,
              q: np.ndarray, limit: int = 200) -> list[dict]:
    """Group consecutive failing moves with the same reason into ranges."""
    out = []
    bad = np.nonzero(code != 0)[0]
    if len(bad) == 0:
        return out
    starts = [bad[0]]
    for a, b_ in zip(bad[:-1], bad[1:]):
        if b_ != a + 1 or code[b_] != code[a]:
            starts.append(b_)
    names = [j.name for j in robot.joints] if robot else list(JOINT_NAMES_FALLBACK)
    for s in starts[:limit]:
        e = s
        while e + 1 < len(code) and code[e + 1] == code[s]:
            e += 1
        why = REASONS.get(int(code[s]), "unknown")
        if code[s] == 2 and robot is not None and np.all(np.isfinite(q[s])):
            lim = robot.limits_rad
            over = [names[j] for j in range(6) if not lim[j, 0] <= q[s, j] <= lim[j, 1]]
            why += f" ({', '.join(over)})" if over else ""
        out.append({"pass": p_idx, "pass_name": name, "moves": [int(s), int(e)],
                    "count": int(e - s + 1), "reason": why,
                    "position_mm": [round(float(v), 3) for v in pos[s]]})
    return out


def solve_key(toolpath: Toolpath, job_sha256: str, cell: str, **params) -> str:
    """sha256 naming everything a solved program depends on: the job, the cell, robot and
    tool profiles, the solver's and kinematics' source and the parameters (a program
    saved with the same key can be reused)."""
    import hashlib
    import json
    from pathlib import Path

    from sculptor.robot import kinematics

    h = hashlib.sha256()
    rc = RobotCell.load(cell)
    parts = [job_sha256, rc.cell.model_dump_json(),
             rc.robot.model_dump_json() if rc.robot else "",
             json.dumps(params, sort_keys=True)]
    for tid in sorted({p.tool_id for p in toolpath.passes}):
        try:
            parts.append(resolve_tool(tid).model_dump_json())
        except UserError:
            parts.append(tid)
    for src in (__file__, kinematics.__file__):
        parts.append(hashlib.sha256(Path(src).read_bytes()).hexdigest())
    for x in parts:
        h.update(x.encode())
        h.update(b"\0")
    return h.hexdigest()


def solve_program(toolpath: Toolpath, cell: CellProfile | str, tool=None, *,
                  a5_margin_deg: float = 10.0, chord_tol_mm: float = 0.01,
                  progress: bool = True, spin_step_deg: float = 5.0,
                  turntable_window_deg: float = 30.0, turntable_step_deg: float = 5.0,
                  tilt_deg: float = 4.0, max_joint_step_deg: float = 30.0,
                  dp_spacing_mm: float = 2.0, chunk: int = 256,
                  safe_retract_mm: tuple[float, ...] = (100.0, 60.0, 30.0, 15.0),
                  stats: dict | None = None) -> RobotProgram:
    """Solve joints for every move of ``toolpath`` in ``cell``.

    tool: each pass uses the tool its ``tool_id`` names; ``tool`` (a profile or name) is
    the fallback for passes whose ``tool_id`` is no known tool profile.
    Returns a :class:`RobotProgram` (densified; ``valid_ratio`` and
    ``failures`` say which moves fail and why). The state search runs on points at least
    ``dp_spacing_mm`` apart along cutting moves (every rapid, plunge and retract is kept);
    the points between take interpolated states and are checked one by one.
    ``stats`` (a dict, optional) receives how the segments were solved and how many
    reconfigurations got a retract.
    Never raises for unreachable points:
    the caller decides (``sculptor post`` refuses to write a program with failures).
    """
    if not 0 <= a5_margin_deg < 90:
        raise UserError(f"a5_margin_deg {a5_margin_deg} must lie in [0, 90)")
    if not chord_tol_mm > 0:
        raise UserError(f"chord_tol_mm {chord_tol_mm} must be > 0")
    rc = RobotCell.load(cell)
    if rc.cell.machine != toolpath.machine:
        raise UserError(f"the job is for a '{toolpath.machine}' machine but cell "
                        f"'{rc.cell.name}' is a '{rc.cell.machine}'; use a matching cell")
    if rc.cell.machine == "cnc3":
        return _solve_cnc3(toolpath, rc, tool, chord_tol_mm)
    robot = rc.robot
    checker = Feasibility(robot, math.radians(a5_margin_deg), table_z_mm=table_z_in_base(rc))
    jump = math.radians(max_joint_step_deg)
    parts, failures, tools = [], [], []
    total = max(1, toolpath.n_moves)
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("solving joints", total=total)

        def tick(k: int) -> None:
            bar.advance(task, k)

        max_chord = 0.0
        solved_by = np.zeros(4, int)
        for p_idx, ps in enumerate(toolpath.passes):
            if ps.n_moves == 0:
                continue
            tl = _pass_tool(tool, ps.tool_id)
            tools.append(tl.name)
            pos, frames = ps.position_mm, ps.tool_frame
            table, kinds = ps.turntable_rad, ps.kind
            finite = (np.all(np.isfinite(pos), 1) & np.all(np.isfinite(frames), (1, 2))
                      & np.isfinite(table) & np.isfinite(ps.feed_mm_s))
            if not np.all(finite):
                bad = np.nonzero(~finite)[0]
                raise UserError(f"toolpath pass {p_idx} '{ps.name}': {len(bad)} moves hold NaN "
                                f"or inf (first at move {bad[0]}); re-run sculptor cam")
            det = np.linalg.det(frames)
            if np.any(np.abs(det - 1) > 1e-3):
                bad = np.nonzero(np.abs(det - 1) > 1e-3)[0]
                raise UserError(f"toolpath pass {p_idx} '{ps.name}': tool_frame at move "
                                f"{bad[0]} is not a rotation (det {det[bad[0]]:.3f})")
            # re-orthonormalise (CAM frames carry float32 round-off)
            u, _, vt = np.linalg.svd(frames)
            frames = u @ vt
            fr = make_freedom(tl, spin_step_deg=spin_step_deg,
                              turntable_window_deg=turntable_window_deg,
                              turntable_step_deg=turntable_step_deg, tilt_deg=tilt_deg,
                              has_turntable=rc.cell.turntable is not None)
            branch, spin, toff, tilt, how = _plan_pass(robot, rc, tl, checker, pos, frames,
                                                       table, kinds, fr, jump, dp_spacing_mm,
                                                       chunk, tick)
            solved_by += how
            data = _finish_pass(robot, rc, tl, checker, pos, frames, table, kinds,
                                branch, spin, toff, tilt, jump)
            dens = _densify(robot, rc, tl, data, kinds, branch, chord_tol_mm)
            max_chord = max(max_chord, dens["max_chord_mm"])
            src = np.floor(dens["u"] + 1e-9).astype(int)
            is_orig = np.isclose(dens["u"], np.round(dens["u"]))
            # an inserted point belongs to the move it leads to
            dest = np.where(is_orig, src, np.minimum(src + 1, ps.n_moves - 1))
            # a joint step above max_joint_step left after densification while cutting is a
            # configuration flip (a smooth re-orientation has been split into small steps)
            qd = dens["joints"]
            step = np.abs(np.diff(qd, axis=0)).max(1) > jump
            flip = np.zeros(len(qd), bool)
            flip[1:] = step & (kinds[dest[1:]] != MoveKind.RAPID)
            flip_moves = np.unique(dest[flip])
            data["code"][flip_moves] = np.where(data["code"][flip_moves] == 0, 6,
                                                data["code"][flip_moves])
            failures += _failures(p_idx, ps.name, data["code"], pos, robot, data["joints"])
            code_d = data["code"][dest]
            ok = (code_d == 0) & dens["inserted_ok"]
            b_tcp = rc.base_from_workpiece(dens["theta"]) @ dens["wp"]
            parts.append(dict(
                joints=dens["joints"], theta=dens["theta"], b_tcp=b_tcp,
                kind=kinds[dest], feed=ps.feed_mm_s[dest],
                src=np.stack([np.full(len(dest), p_idx), dest], 1).astype(np.int32),
                config=dens["branch"].astype(np.int8), valid=ok))
    if not parts:
        raise UserError("the toolpath has no moves; re-run sculptor cam")
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    cat["joints"] = _hold_last_valid(cat["joints"])
    tool_rows = np.concatenate([np.full(len(p["kind"]), i) for i, p in enumerate(parts)])
    t_from_f = np.stack([inv_rigid(tool_matrix(_pass_tool(tool, t))) for t in tools])
    cat, unsafe = _safe_retracts(robot, rc, checker, cat, t_from_f[tool_rows],
                                 safe_retract_mm)
    if stats is not None:
        stats["segments"] = int(solved_by.sum())
        stats["solved_by"] = dict(zip(
            ("cam state", f"turntable/tilt within +/-{turntable_window_deg:g} deg",
             "wider turntable", "per-point search"), solved_by.tolist()))
        stats["retracts"] = int(np.sum(cat["kind"] == MoveKind.RAPID)
                                - np.sum(np.concatenate([p["kind"] for p in parts])
                                         == MoveKind.RAPID)) // 2
        stats["no_retract"] = len(unsafe)
    for p_idx, m_idx in unsafe:
        ps = toolpath.passes[p_idx]
        failures.append({"pass": int(p_idx), "pass_name": ps.name, "moves": [int(m_idx)] * 2,
                         "count": 1, "reason": "no clear retract (configuration change or "
                         "turntable turn at a rapid)",
                         "position_mm": [round(float(v), 3) for v in ps.position_mm[m_idx]]})
    n_orig = toolpath.n_moves
    n_bad = sum(f["count"] for f in failures)
    prov = Provenance.make("sculptor post", {
        "a5_margin_deg": a5_margin_deg, "chord_tol_mm": chord_tol_mm,
        "spin_step_deg": spin_step_deg, "turntable_window_deg": turntable_window_deg,
        "turntable_step_deg": turntable_step_deg, "tilt_deg": tilt_deg,
        "max_joint_step_deg": max_joint_step_deg})
    return RobotProgram(
        provenance=prov, robot=robot.name, cell=rc.cell.name,
        tool=tools[0] if tools else "", tools=tools, machine="robot",
        job_sha256=toolpath.provenance.inputs.get("job", ""),
        valid_ratio=float(1.0 - n_bad / max(1, n_orig)), failures=failures,
        max_chord_error_mm=float(max_chord),
        joints_rad=cat["joints"], turntable_rad=cat["theta"], base_from_tcp=cat["b_tcp"],
        move_kind=cat["kind"].astype(np.int8), feed_mm_s=cat["feed"], source_index=cat["src"],
        config=cat["config"], valid=cat["valid"])


def _solve_cnc3(toolpath: Toolpath, rc: RobotCell, tool, chord_tol_mm: float) -> RobotProgram:
    """3-axis router: machine frame = world; the tool must point straight down."""
    parts, failures, tools = [], [], []
    travel = np.array(rc.cell.travel_mm or (1e9, 1e9, 1e9))
    for p_idx, ps in enumerate(toolpath.passes):
        if ps.n_moves == 0:
            continue
        tl = _pass_tool(tool, ps.tool_id)
        tools.append(tl.name)
        if not np.all(np.isfinite(ps.position_mm)) or not np.all(np.isfinite(ps.tool_frame)):
            bad = np.nonzero(~np.all(np.isfinite(ps.position_mm), 1))[0]
            first = int(bad[0]) if len(bad) else 0
            raise UserError(f"toolpath pass {p_idx} '{ps.name}': NaN or inf in the moves "
                            f"(first at move {first}); re-run sculptor cam")
        w_wp = rc.world_from_workpiece(np.zeros(1))[0]
        wp_tcp = np.zeros((ps.n_moves, 4, 4))
        wp_tcp[:, :3, :3] = ps.tool_frame
        wp_tcp[:, :3, 3] = ps.position_mm
        wp_tcp[:, 3, 3] = 1
        w_tcp = w_wp @ wp_tcp
        z = w_tcp[:, :3, 2]
        code = np.zeros(ps.n_moves, np.int8)
        vertical = z[:, 2] < -math.cos(math.radians(0.5))
        p = w_tcp[:, :3, 3]
        inside = np.all((p >= -1e-6) & (p <= travel + 1e-6), axis=1)
        code[~inside] = 1
        code[~vertical] = 10
        fl = _failures(p_idx, ps.name, code, ps.position_mm, None, np.zeros((ps.n_moves, 6)))
        for f in fl:
            if f["reason"] == "unknown":
                f["reason"] = "tool not vertical (a 3-axis router needs tool z straight down)"
            elif f["reason"] == "out of reach":
                f["reason"] = "outside the machine travel"
        failures += fl
        n = ps.n_moves
        parts.append(dict(joints=np.zeros((n, 6)), theta=np.zeros(n), b_tcp=w_tcp,
                          kind=ps.kind, feed=ps.feed_mm_s,
                          src=np.stack([np.full(n, p_idx), np.arange(n)], 1).astype(np.int32),
                          config=np.zeros(n, np.int8), valid=code == 0))
    if not parts:
        raise UserError("the toolpath has no moves; re-run sculptor cam")
    cat = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    n_bad = sum(f["count"] for f in failures)
    return RobotProgram(
        provenance=Provenance.make("sculptor post", {"chord_tol_mm": chord_tol_mm}),
        robot="", cell=rc.cell.name, tool=tools[0] if tools else "", tools=tools,
        machine="cnc3", valid_ratio=float(1 - n_bad / max(1, toolpath.n_moves)),
        failures=failures, max_chord_error_mm=0.0,
        joints_rad=cat["joints"], turntable_rad=cat["theta"], base_from_tcp=cat["b_tcp"],
        move_kind=cat["kind"].astype(np.int8), feed_mm_s=cat["feed"], source_index=cat["src"],
        config=cat["config"], valid=cat["valid"])
