"""Robot replay: joint limits, singularities, speeds, accelerations, configuration changes,
collisions (capsules) and the cycle time of a robot program.

Frames: the program's ``base_from_tcp`` and ``joints_rad`` are in the robot base frame and
the controller's joint convention; the cell gives ``world_from_robot_base`` and
``world_from_workpiece(turntable)``. Collision geometry is a chain of capsules hung on the
link frames of :func:`sculptor.robot.kinematics.fk_frames` plus the tool (spindle or
holder body, holder, shank), tested against the table (z < table_z), the turntable (a
disk from the table to its top) and the material left in the stock (a distance field of
the voxel grid, 2 mm cells).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sculptor.artifacts.program import RobotProgram
from sculptor.artifacts.toolpath import MoveKind
from sculptor.profiles import CellProfile, GougeTool, RobotProfile, \
    RotaryTool, capsule_step_mm, tool_body_sections
from sculptor.robot.solver import LINK_RADII_MM  # link i joins frame i-1 and frame i

# per-target status (preview colours)
OK, NEAR, UNREACHABLE, COLLIDING = 0, 1, 2, 3
STATUS_NAMES = ("ok", "near limit", "unreachable", "colliding")

NEAR_JOINT_LIMIT_DEG = 5.0
NEAR_WRIST_DEG = 5.0
NEAR_ELBOW_DEG = 5.0
NEAR_SHOULDER_MM = 50.0
FAR = 1.0e9  # where capsules of another pass's tool are parked
# penetrations shallower than this are grazing contact within the 2 mm field's accuracy
MATERIAL_CLEARANCE_MM = 2.0
MATERIAL_MIN_FRACTION = 16  # a coarse cell of the material field holds >= 1/16 material


@dataclass
class Capsule:
    """Segments a (n, 3) -> b (n, 3) in world mm, radius; ``part`` names it."""

    part: str
    a: np.ndarray
    b: np.ndarray
    radius: float
    vs_table: bool = True
    vs_material: bool = True


@dataclass
class ReplayResult:
    figures: dict
    status: np.ndarray  # (n,) int8 per program target
    fails: list[tuple[int, str]] = field(default_factory=list)  # (target, reason)
    nogo: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    time_s: np.ndarray | None = None  # (n,) time stamp of each target
    link_points: np.ndarray | None = None  # (n, 8, 3) world: frames 0..6 + TCP


def tool_capsules(tool: RotaryTool | GougeTool, world_from_flange: np.ndarray) -> list[Capsule]:
    """The tool's body (:func:`sculptor.profiles.tool_body_sections`: shank, holder,
    spindle or adapter) as capsules along its axis. world_from_flange (n, 4, 4).

    The cutting part (flutes, or the last ``GOUGE_FREE_BLADE_MM`` of a gouge blade, which lies
    along the surface at the rake angle) is left out: material it meets is cut, not
    collided with.
    """
    tcp_z = float(np.linalg.norm(tool.flange_from_tcp.xyz_mm))
    r_flange = tool.flange_from_tcp.matrix()[:3, :3]
    axis = world_from_flange[:, :3, :3] @ r_flange[:, 2]
    o = world_from_flange[:, :3, 3]
    return [Capsule(s.name, o + axis * (tcp_z - s.far_mm), o + axis * (tcp_z - s.near_mm),
                    s.radius_mm) for s in tool_body_sections(tool)]


def world_from_workpiece(cell: CellProfile, turntable_rad: np.ndarray) -> np.ndarray:
    """(n,) turntable angles -> (n, 4, 4) world_from_workpiece (vectorised)."""
    tt = np.asarray(turntable_rad, float).reshape(-1)
    if cell.turntable is None:
        return np.broadcast_to(cell.world_from_workpiece.matrix(), (len(tt), 4, 4)).copy()
    rz = np.zeros((len(tt), 4, 4))
    c, s = np.cos(tt), np.sin(tt)
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1] = c, -s, s, c
    rz[:, 2, 2] = rz[:, 3, 3] = 1.0
    return cell.turntable.world_from_turntable.matrix() @ rz


def _sample(c: Capsule) -> np.ndarray:
    """(n, k, 3) points along a capsule's axis, spaced at most its radius (2..10 mm)."""
    step_mm = capsule_step_mm(c.radius)
    length = float(np.max(np.linalg.norm(c.b - c.a, axis=1))) if len(c.a) else 0.0
    k = max(2, int(math.ceil(length / step_mm)) + 1)
    t = np.linspace(0, 1, k)
    return c.a[:, None] + t[None, :, None] * (c.b - c.a)[:, None]


@dataclass
class MaterialField:
    """Distance (mm) from any point to the nearest material, on a coarse grid.

    dist (nx, ny, nz) float32, origin (3,), cell mm; points outside the padded box are free.
    """

    dist: np.ndarray
    origin: np.ndarray
    cell: float

    @classmethod
    def from_occupancy(cls, occ: np.ndarray, origin: np.ndarray, res: float,
                       cell_mm: float = 2.0, pad_mm: float = 80.0) -> "MaterialField":
        from scipy import ndimage

        f = max(1, int(round(cell_mm / res)))
        nx, ny, nz = (s // f * f for s in occ.shape)
        # a cell is material when at least 1/16 of its voxels are: one to three voxels
        # (0.5 mm in a 2 mm cell) are specks the carving's ray approximation leaves on a cut
        # face (under the grid's resolution), not wood a body could meet
        count = occ[:nx, :ny, :nz].reshape(nx // f, f, ny // f, f, nz // f, f).sum(
            (1, 3, 5), dtype=np.int32)
        coarse = count >= max(1, (f ** 3) // MATERIAL_MIN_FRACTION)
        pad = int(math.ceil(pad_mm / (res * f)))
        coarse = np.pad(coarse, pad)
        dist = ndimage.distance_transform_edt(~coarse).astype(np.float32) * (res * f)
        return cls(dist, np.asarray(origin, float) - pad * res * f, res * f)

    def at(self, p: np.ndarray) -> np.ndarray:
        """(..., 3) workpiece-frame points -> (...) distance to material, mm."""
        idx = np.floor((p - self.origin) / self.cell).astype(np.int64)
        shape = np.array(self.dist.shape)
        inside = np.all((idx >= 0) & (idx < shape), axis=-1)
        idx = np.clip(idx, 0, shape - 1)
        d = self.dist[idx[..., 0], idx[..., 1], idx[..., 2]]
        return np.where(inside, d, np.inf)


def replay(program: RobotProgram, robot: RobotProfile, cell: CellProfile,
           tools: list[RotaryTool | GougeTool], materials: list[MaterialField] | None
           ) -> ReplayResult:
    """Check a robot program against its robot, cell and tools.

    tools : the tool of each toolpath pass; materials : one :class:`MaterialField` per
    pass (the material left after that pass); both indexed by the program's
    ``source_index[:, 0]``. None skips material collisions.
    """
    from sculptor.robot.kinematics import fk_frames, to_kinematic

    n = program.n
    q = np.asarray(program.joints_rad, float).reshape(n, 6)
    tt = np.asarray(program.turntable_rad, float).reshape(n)
    kind = np.asarray(program.move_kind).reshape(n)
    valid = np.asarray(program.valid, bool).reshape(n)
    status = np.zeros(n, np.int8)
    fails: list[tuple[int, str]] = []
    nogo, warnings = [], []
    fig: dict = {"n_targets": n}

    # ------------------------------------------------------------ reachability / limits
    bad = ~valid
    if bad.any():
        status[bad] = UNREACHABLE
        fails += [(int(i), "unreachable (no IK solution)") for i in np.nonzero(bad)[0]]
        nogo.append(f"{int(bad.sum())} of {n} targets are unreachable")
    lim = robot.limits_rad
    margin = np.minimum(q - lim[:, 0], lim[:, 1] - q)  # (n, 6) rad
    m_deg = np.degrees(margin)
    fig["joint_limit_margin_deg"] = {j.name: round(float(m_deg[valid, i].min()), 2)
                                     if valid.any() else None
                                     for i, j in enumerate(robot.joints)}
    over = valid & (margin < 0).any(1)
    if over.any():
        status[over] = UNREACHABLE
        fails += [(int(i), "joint limit exceeded") for i in np.nonzero(over)[0]]
        nogo.append(f"{int(over.sum())} targets exceed a joint limit")
    near = valid & ~over & (m_deg < NEAR_JOINT_LIMIT_DEG).any(1)
    status[near & (status == OK)] = NEAR

    # ------------------------------------------------------------ singularities
    qk = to_kinematic(robot, q)
    frames = fk_frames(robot, q)  # (n, 7, 4, 4) base_from_link
    if robot.kinematics == "opw":
        wrist = np.degrees(np.abs(np.arctan2(np.sin(qk[:, 4]), np.cos(qk[:, 4]))))
        wrist = np.minimum(wrist, 180 - wrist)
        psi3 = math.atan2(robot.opw.a2_mm, robot.opw.c3_mm)
        e = np.abs(np.arctan2(np.sin(qk[:, 2] + psi3), np.cos(qk[:, 2] + psi3)))
        elbow = np.degrees(np.minimum(e, math.pi - e))
        wc = frames[:, 5, :3, 3]
        shoulder = np.hypot(wc[:, 0], wc[:, 1])
        sing = {"wrist_deg": wrist, "elbow_deg": elbow, "shoulder_mm": shoulder}
        near_s = (wrist < NEAR_WRIST_DEG) | (elbow < NEAR_ELBOW_DEG) | (shoulder < NEAR_SHOULDER_MM)
        fig["singularity_margin"] = {k: round(float(v[valid].min()), 2) if valid.any() else None
                                     for k, v in sing.items()}
        ns = valid & near_s
        status[ns & (status == OK)] = NEAR
        fig["near_singular_targets"] = int(ns.sum())
        if ns.any():
            warnings.append(f"{int(ns.sum())} targets lie near a singularity "
                            f"(wrist < {NEAR_WRIST_DEG} deg, elbow < {NEAR_ELBOW_DEG} deg or "
                            f"wrist centre < {NEAR_SHOULDER_MM} mm from axis 1)")

    # ------------------------------------------------------------ timing
    world_from_base = cell.world_from_robot_base.matrix()
    base_from_flange = frames[:, 6]
    world_from_flange = world_from_base @ base_from_flange
    world_from_tcp = world_from_base @ np.asarray(program.base_from_tcp, float).reshape(n, 4, 4)
    wp_from_world = np.linalg.inv(world_from_workpiece(cell, tt))
    p_wp = np.einsum("nij,nj->ni", wp_from_world[:, :3, :3], world_from_tcp[:, :3, 3]) \
        + wp_from_world[:, :3, 3]
    feed = np.asarray(program.feed_mm_s, float).reshape(n)
    vmax = robot.max_speed_rad_s
    amax = robot.max_accel_rad_s2
    if cell.turntable is not None:
        vmax = np.append(vmax, math.radians(cell.turntable.max_speed_deg_s))
        amax = np.append(amax, math.radians(cell.turntable.max_accel_deg_s2))
        axes = np.concatenate([q, tt[:, None]], 1)
    else:
        axes = q
    if n >= 2:
        dq = np.abs(np.diff(axes, axis=0))
        length = np.linalg.norm(np.diff(p_wp, axis=0), axis=1)
        t_feed = length / np.maximum(feed[1:], 1e-6)
        t_axes = (dq / vmax).max(1)
        dt = np.maximum(np.maximum(t_feed, t_axes), 1e-4)
        speed_ratio = np.where(t_feed > 1e-9, t_axes / np.maximum(t_feed, 1e-9), 0.0)
        cut = kind[1:] == int(MoveKind.CUT)
        slow = cut & (speed_ratio > 1.0 + 1e-6)
        fig["max_joint_speed_ratio_at_feed"] = round(float(speed_ratio.max()), 3)
        fig["cut_moves_feed_not_held"] = int(slow.sum())
        if slow.any():
            status[1:][slow & (status[1:] == OK)] = NEAR
            warnings.append(f"{int(slow.sum())} cutting moves need joint speeds above the "
                            f"limits at the programmed feed (the controller slows down there; "
                            f"worst {speed_ratio.max():.1f}x)")
        vel = np.diff(axes, axis=0) / dt[:, None]  # (n-1, k) signed
        dv = np.abs(np.diff(vel, axis=0))  # (n-2, k)
        t_mid = (dt[1:] + dt[:-1]) / 2
        acc_ratio = (dv / t_mid[:, None] / amax).max(1) if len(dv) else np.zeros(0)
        fig["max_joint_accel_ratio"] = round(float(acc_ratio.max()), 3) if len(acc_ratio) else 0.0
        fig["targets_over_accel"] = int((acc_ratio > 1.0).sum())
        # accelerating from / to rest at start and end, and blending each change of speed
        t_acc = (dv / amax).max(1).sum() * 0.5 if len(dv) else 0.0
        t_acc += (np.abs(vel[0]) / amax).max() + (np.abs(vel[-1]) / amax).max()
        time_s = np.concatenate([[0.0], np.cumsum(dt)])
        cycle = float(time_s[-1] + t_acc)
        fig["path_length_mm"] = round(float(length.sum()), 1)
        fig["cutting_length_mm"] = round(float(length[cut].sum()), 1)
        fig["cycle_time_feed_only_s"] = round(float(t_feed.sum()), 1)
        # time stamps for the preview: spread the acceleration time proportionally
        time_s *= cycle / max(time_s[-1], 1e-9)
    else:
        time_s = np.zeros(n)
        cycle = 0.0
    fig["cycle_time_s"] = round(cycle, 1)
    cfg = np.asarray(program.config).reshape(n)
    change = np.nonzero(cfg[1:] != cfg[:-1])[0] + 1
    fig["configuration_changes"] = int(len(change))
    in_cut = [int(i) for i in change if kind[i] == int(MoveKind.CUT)]
    fig["configuration_changes_in_cut"] = len(in_cut)
    if in_cut:
        nogo.append(f"{len(in_cut)} configuration changes (arm flips) happen during a cut")
        fails += [(i, "configuration change during a cut") for i in in_cut]
        status[in_cut] = np.maximum(status[in_cut], NEAR)

    # ------------------------------------------------------------ collisions
    caps: list[Capsule] = []
    origins = np.einsum("ij,nkj->nki", world_from_base, np.concatenate(
        [frames[:, :, :3, 3], np.ones((n, 7, 1))], axis=2))[:, :, :3]
    for i in range(6):
        a, b = origins[:, i], origins[:, i + 1]
        caps.append(Capsule(f"arm link {i + 1}", a, b, LINK_RADII_MM[i], vs_table=i >= 1))
    pass_idx = np.asarray(program.source_index).reshape(n, 2)[:, 0].astype(np.int64)
    pass_idx = np.clip(pass_idx, 0, max(len(tools) - 1, 0))
    for ti, tl in enumerate(tools):
        if ti in [tools.index(t) for t in tools[:ti]] or tl is None:
            continue
        same = np.isin(pass_idx, [k for k, t in enumerate(tools) if t == tl])
        for c in tool_capsules(tl, world_from_flange):
            c.a, c.b = np.where(same[:, None], c.a, FAR), np.where(same[:, None], c.b, FAR)
            caps.append(c)
    coll_any = np.zeros(n, bool)
    counts: dict[str, int] = {}
    table_z = cell.table_z_mm
    tt_geo = None
    if cell.turntable is not None:
        wtt = cell.turntable.world_from_turntable.matrix()
        tt_geo = (np.linalg.inv(wtt), cell.turntable.radius_mm)
    for c in caps:
        pts = _sample(c)  # (n, k, 3) world
        hit = np.zeros(n, bool)
        what = []
        if c.vs_table:
            h = (pts[..., 2] - c.radius < table_z).any(1)
            hit |= h
            if h.any():
                what.append(("table", h))
        if tt_geo is not None:
            inv, rad = tt_geo
            pt = np.einsum("ij,nkj->nki", inv[:3, :3], pts) + inv[:3, 3]
            r_xy = np.hypot(pt[..., 0], pt[..., 1])
            h = ((pt[..., 2] - c.radius < 0) & (pt[..., 2] + c.radius > table_z - inv[2, 3])
                 & (r_xy - c.radius < rad)).any(1)
            if c.part.startswith("arm link 1"):
                h[:] = False
            hit |= h
            if h.any():
                what.append(("turntable", h))
        if materials is not None and c.vs_material:
            pw = np.einsum("nij,nkj->nki", wp_from_world[:, :3, :3], pts) \
                + wp_from_world[:, None, :3, 3]
            h = np.zeros(n, bool)
            for pi in np.unique(pass_idx):
                sel = pass_idx == pi
                if 0 <= pi < len(materials) and materials[pi] is not None:
                    h[sel] = (materials[pi].at(pw[sel])
                              < c.radius - MATERIAL_CLEARANCE_MM).any(1)
            hit |= h
            if h.any():
                what.append(("material", h))
        for name, h in what:
            key = f"{c.part} vs {name}"
            counts[key] = int(h.sum())
            fails += [(int(i), f"collision: {key}") for i in np.nonzero(h)[0]]
        coll_any |= hit
    status[coll_any] = COLLIDING
    fig["collisions"] = counts
    if counts:
        nogo.append("collisions: " + ", ".join(f"{k} at {v} targets" for k, v in counts.items()))
    fig["targets_ok"] = int((status == OK).sum())
    fig["targets_near_limit"] = int((status == NEAR).sum())
    fig["targets_unreachable"] = int((status == UNREACHABLE).sum())
    fig["targets_colliding"] = int((status == COLLIDING).sum())
    link_points = np.concatenate([origins, world_from_tcp[:, None, :3, 3]], axis=1)
    return ReplayResult(fig, status, fails, nogo, warnings, time_s, link_points)
