"""Material removal: subtract the swept volume of every move from a voxel occupancy grid.

The stock is a boolean occupancy grid in the *workpiece frame* (mm, +Z up, base at z=0,
centred on the turntable axis). Toolpath positions and tool frames are given in that same
frame (the turntable angle only moves the piece relative to the robot, not the tool
relative to the piece), so the carved result does not depend on the turntable; the robot
replay (:mod:`sim.replay`) uses the turntable angle.

Each move is cut into sub-segments short enough (length and rotation) that the tool
orientation may be taken constant along each; the swept volume of a constant-orientation
cutter translated along a segment is then tested *exactly* per voxel centre, in closed
form: a voxel is removed when its centre, seen from the tool, travels a path that enters
the cutter. Cutters (tool frame: tip at the origin, body along -Z):

- ball: a capsule (ball + flute cylinder) of radius r whose core runs from z=-r to
  z=-flute_length;
- flat: a cylinder of radius R from z=0 to z=-flute_length;
- bull: three nested cylinders (staircase of the torus: radius R-rc to the tip, R at
  z<=-rc, and R-rc(1-cos45) at z<=-rc(1-sin45)); at most 0.3 rc under-cut at the corner;
- gouge: the edge arc's circular segment (between the arc and its chord) in the plane
  z=0 (0.05 res thick): the channel the edge cuts when pushed through the wood.

Work is batched: all voxels in the boxes of a chunk of sub-segments are enumerated as a
ragged list, only those still occupied are tested, and the hits are cleared. Uses torch
(CUDA when present).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import torch

from sculptor.artifacts.toolpath import MoveKind, Toolpath
from sculptor.errors import UserError
from sculptor.profiles import GougeTool, RotaryTool
from sim import sheet

# bytes per voxel the whole simulation needs at its peak: the bool grid, the padded
# uint8 copy and float32 field for marching cubes, and the carved mesh per surface voxel
BYTES_PER_VOXEL = 6.0
DEFAULT_MEMORY_LIMIT_BYTES = 8 * 1024**3
CHUNK_VOXELS = 3_000_000
BLOCK = 4  # voxels per block edge: empty blocks are skipped
COARSE_REFRESH_VOXELS = 60_000_000


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ------------------------------------------------------------------------------ cutters
@dataclass(frozen=True)
class Primitive:
    """One convex piece of a cutter in the tool frame (tip at origin, body along -Z).

    kind 'capsule': core segment (0,0,z_lo)-(0,0,z_hi), radius.
    kind 'cylinder': axis along z from z_lo to z_hi, radius, centre (cx, cy), and when
    x_max is not None the half-space x <= x_max (used for the gouge's circular segment).
    """

    kind: str
    z_lo: float
    z_hi: float
    radius: float
    cx: float = 0.0
    cy: float = 0.0
    x_max: float | None = None


@dataclass(frozen=True)
class Cutter:
    """The cutting solid of a tool as a union of primitives, plus its tool-frame box."""

    name: str
    primitives: tuple[Primitive, ...]
    box_lo: tuple[float, float, float]
    box_hi: tuple[float, float, float]
    max_step_mm: float  # sub-segment length
    max_step_rad: float = math.radians(2.0)


def make_cutter(tool: RotaryTool | GougeTool, res_mm: float) -> Cutter:
    """The cutting solid of ``tool`` (see module docstring)."""
    if isinstance(tool, GougeTool):
        r, w2, depth = tool.edge_arc_radius_mm, tool.width_mm / 2, tool.arc_depth_mm
        tau = 0.05 * res_mm  # thin: a moving edge is caught where it crosses a voxel centre
        p = Primitive("cylinder", -tau, tau, r, cx=r, cy=0.0, x_max=depth)
        return Cutter(tool.name, (p,), (0.0, -w2, -tau), (depth, w2, tau),
                      max_step_mm=max(2.0, 2 * res_mm))
    rad, fl = tool.radius_mm, tool.flute_length_mm
    step = max(rad, 2 * res_mm)
    if tool.kind == "ball":
        prims = (Primitive("capsule", -max(fl, rad), -rad, rad),)
    elif tool.kind == "flat":
        prims = (Primitive("cylinder", -fl, 0.0, rad),)
    else:  # bull
        rc = tool.corner_radius_mm
        c45 = math.cos(math.radians(45.0))
        prims = (Primitive("cylinder", -fl, 0.0, rad - rc),
                 Primitive("cylinder", -fl, -rc * (1 - c45), rad - rc * (1 - c45)),
                 Primitive("cylinder", -fl, -rc, rad))
    return Cutter(tool.name, prims, (-rad, -rad, -max(fl, rad)), (rad, rad, 0.0), step)


def _segment_hits(q: torch.Tensor, e: torch.Tensor, p: Primitive) -> torch.Tensor:
    """Does the point path q - t e, t in [0, 1], enter primitive ``p``?

    q, e : (m, 3) tool-frame point and tool motion (the tool moves by +e, so the point
    moves by -e relative to it).  Returns (m,) bool.
    """
    eps = 1e-9
    if p.kind == "capsule":
        return _seg_seg_dist2(q, -e, p.z_lo, p.z_hi) <= p.radius * p.radius
    one = torch.ones_like(q[:, 0])
    lo, hi = torch.zeros_like(one), one.clone()
    # axial slab z_lo <= qz - t ez <= z_hi
    ez, qz = e[:, 2], q[:, 2]
    small = ez.abs() < eps
    ez_s = torch.where(small, one, ez)
    t1, t2 = (qz - p.z_hi) / ez_s, (qz - p.z_lo) / ez_s
    inside_z = (qz >= p.z_lo) & (qz <= p.z_hi)
    lo = torch.where(small, torch.where(inside_z, lo, one * 2), torch.maximum(lo, torch.minimum(t1, t2)))
    hi = torch.where(small, hi, torch.minimum(hi, torch.maximum(t1, t2)))
    # radial: (qx - t ex - cx)^2 + (qy - t ey - cy)^2 <= r^2
    qx, qy = q[:, 0] - p.cx, q[:, 1] - p.cy
    ex, ey = e[:, 0], e[:, 1]
    a = ex * ex + ey * ey
    b = -2 * (qx * ex + qy * ey)
    c = qx * qx + qy * qy - p.radius * p.radius
    flat = a < eps
    a_s = torch.where(flat, one, a)
    disc = b * b - 4 * a_s * c
    sq = torch.sqrt(disc.clamp_min(0))
    r_lo, r_hi = (-b - sq) / (2 * a_s), (-b + sq) / (2 * a_s)
    ok_r = torch.where(flat, c <= 0, disc >= 0)
    lo = torch.where(flat, lo, torch.maximum(lo, r_lo))
    hi = torch.where(flat, hi, torch.minimum(hi, r_hi))
    ok = ok_r & (lo <= hi)
    if p.x_max is not None:  # half-space qx' - t ex <= x_max (qx' in tool frame)
        xq = q[:, 0]
        smallx = ex.abs() < eps
        ex_s = torch.where(smallx, one, ex)
        tx = (xq - p.x_max) / ex_s
        lo2 = torch.where(smallx | (ex < 0), lo, torch.maximum(lo, tx))
        hi2 = torch.where(smallx | (ex > 0), hi, torch.minimum(hi, tx))
        ok = ok & (lo2 <= hi2) & ~(smallx & (xq > p.x_max))
    return ok


def _seg_seg_dist2(p0: torch.Tensor, d1: torch.Tensor, z_lo: float, z_hi: float
                   ) -> torch.Tensor:
    """Squared distance between segments p0 + s d1 (s in [0,1]) and the z-axis piece
    (0,0,z) for z in [z_lo, z_hi].  p0, d1 : (m, 3).  Returns (m,)."""
    eps = 1e-12
    q0 = torch.zeros_like(p0)
    q0[:, 2] = z_lo
    L = z_hi - z_lo  # second segment direction (0, 0, L)
    r = p0 - q0
    a = (d1 * d1).sum(1)
    e_ = L * L
    f = r[:, 2] * L
    c = (d1 * r).sum(1)
    b = d1[:, 2] * L
    denom = a * e_ - b * b
    s = torch.where(denom > eps, ((b * f - c * e_) / denom.clamp_min(eps)).clamp(0, 1),
                    torch.zeros_like(a))
    t = (b * s + f) / max(e_, eps)
    # clamp t and recompute s
    t_c = t.clamp(0, 1)
    s = torch.where(t < 0, (-c / a.clamp_min(eps)).clamp(0, 1), s)
    s = torch.where(t > 1, ((b - c) / a.clamp_min(eps)).clamp(0, 1), s)
    s = torch.where(a <= eps, torch.zeros_like(s), s)
    p = p0 + s[:, None] * d1
    qz = z_lo + t_c * L
    dx, dy, dz = p[:, 0], p[:, 1], p[:, 2] - qz
    return dx * dx + dy * dy + dz * dz


# ------------------------------------------------------------------------------ grid
@dataclass
class Grid:
    """Occupancy grid over the stock box, workpiece frame.

    occ : (nx*ny*nz,) bool torch tensor, index (i*ny + j)*nz + k (z fastest).
    Voxel (i, j, k) has its centre at origin + (i+0.5, j+0.5, k+0.5) * res.
    """

    origin: np.ndarray  # (3,) mm
    res: float
    shape: tuple[int, int, int]
    occ: torch.Tensor

    @property
    def n(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    def centres(self, flat_idx: torch.Tensor) -> torch.Tensor:
        """(m,) flat indices -> (m, 3) float32 centres, mm."""
        ny, nz = self.shape[1], self.shape[2]
        k = flat_idx % nz
        j = (flat_idx // nz) % ny
        i = flat_idx // (ny * nz)
        ijk = torch.stack([i, j, k], 1).float()
        o = torch.as_tensor(self.origin, dtype=torch.float32, device=flat_idx.device)
        return o + (ijk + 0.5) * self.res

    def coarse(self) -> torch.Tensor:
        """(cx, cy, cz) bool: does block (BLOCK^3 voxels) hold any material?"""
        nx, ny, nz = self.shape
        pads = [(-s) % BLOCK for s in self.shape]
        v = self.occ.reshape(self.shape)
        if any(pads):
            v = torch.nn.functional.pad(v.view(torch.uint8), (0, pads[2], 0, pads[1], 0, pads[0])
                                        ).bool()
        cx, cy, cz = ((s + p) // BLOCK for s, p in zip(self.shape, pads))
        return v.reshape(cx, BLOCK, cy, BLOCK, cz, BLOCK).any(5).any(3).any(1)

    def as_numpy(self) -> np.ndarray:
        return self.occ.reshape(self.shape).cpu().numpy()

    @property
    def volume_mm3(self) -> float:
        return float(self.occ.sum().item()) * self.res ** 3


def grid_shape(size_mm, res_mm: float) -> tuple[int, int, int]:
    return tuple(int(math.ceil(s / res_mm)) for s in size_mm)  # type: ignore[return-value]


def memory_needed_bytes(size_mm, res_mm: float) -> int:
    nx, ny, nz = grid_shape(size_mm, res_mm)
    return int(nx * ny * nz * BYTES_PER_VOXEL)


def memory_limit_bytes() -> int:
    """The smaller of 8 GiB (or $SCULPTOR_SIM_MEMORY_GB) and 80 % of the available RAM."""
    env = os.environ.get("SCULPTOR_SIM_MEMORY_GB")
    lim = float(env) * 1024**3 if env else DEFAULT_MEMORY_LIMIT_BYTES
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        lim = min(lim, 0.8 * avail)
    except (ValueError, OSError, AttributeError):
        pass
    return int(lim)


def check_memory(size_mm, res_mm: float) -> None:
    """Refuse a grid too large for memory, naming the size it would need."""
    need, lim = memory_needed_bytes(size_mm, res_mm), memory_limit_bytes()
    if need > lim:
        nx, ny, nz = grid_shape(size_mm, res_mm)
        coarser = res_mm * (need / lim) ** (1 / 3) * 1.05
        raise UserError(
            f"a {res_mm} mm grid over the {size_mm[0]:.0f}x{size_mm[1]:.0f}x{size_mm[2]:.0f} mm "
            f"stock is {nx}x{ny}x{nz} voxels and needs {need / 1024**3:.1f} GB, more than the "
            f"{lim / 1024**3:.1f} GB allowed; use --res-mm {coarser:.2f} or coarser")


def stock_grid(job: Toolpath, res_mm: float, stock_mesh=None) -> Grid:
    """The uncut stock as a grid: a box (base at z=0, centred on x=y=0) or a mesh."""
    if res_mm <= 0 or not math.isfinite(res_mm):
        raise UserError(f"--res-mm must be a positive number of millimetres, got {res_mm}")
    if job.stock.kind == "box":
        if not job.stock.size_mm or len(job.stock.size_mm) != 3 or min(job.stock.size_mm) <= 0:
            raise UserError("job.json: stock.size_mm must be three positive numbers")
        size = np.asarray(job.stock.size_mm, float)
        origin = np.array([-size[0] / 2, -size[1] / 2, 0.0])
    else:
        if stock_mesh is None:
            raise UserError(f"job.json: stock mesh {job.stock.mesh} not found")
        b = np.asarray(stock_mesh.bounds, float)
        origin, size = b[0] - res_mm, b[1] - b[0] + 2 * res_mm
    check_memory(size, res_mm)
    shape = grid_shape(size, res_mm)
    dev = device()
    if job.stock.kind == "box":
        occ = torch.ones(int(np.prod(shape)), dtype=torch.bool, device=dev)
    else:
        occ = _mesh_occupancy(stock_mesh, origin, res_mm, shape).to(dev)
    return Grid(origin, float(res_mm), shape, occ)


def _mesh_occupancy(mesh, origin, res, shape) -> torch.Tensor:
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(_to_o3d(mesh)))
    nx, ny, nz = shape
    out = np.zeros((nx, ny, nz), bool)
    k = (np.arange(nz) + 0.5) * res + origin[2]
    for i in range(nx):
        jj, kk = np.meshgrid((np.arange(ny) + 0.5) * res + origin[1], k, indexing="ij")
        pts = np.stack([np.full(jj.size, (i + 0.5) * res + origin[0]), jj.ravel(), kk.ravel()], 1)
        occ = scene.compute_occupancy(o3d.core.Tensor(pts.astype(np.float32))).numpy()
        out[i] = occ.reshape(ny, nz) > 0.5
    return torch.from_numpy(out.ravel())


def _to_o3d(mesh):
    import open3d as o3d

    m = o3d.geometry.TriangleMesh()
    m.vertices = o3d.utility.Vector3dVector(np.asarray(mesh.vertices, float))
    m.triangles = o3d.utility.Vector3iVector(np.asarray(mesh.faces, np.int32))
    return m


# ------------------------------------------------------------------------------ sweeping
@dataclass
class SubSegments:
    """Sub-segments of one pass: start a (n,3), motion d (n,3), rotation rot (n,3,3)
    workpiece_from_tool, move index (n,) and whether it belongs to a rapid (n,)."""

    a: np.ndarray
    d: np.ndarray
    rot: np.ndarray
    move: np.ndarray
    rapid: np.ndarray


def _orthonormalise(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m)
    r = u @ vt
    det = np.linalg.det(r)
    u[det < 0, :, -1] *= -1
    return u @ vt


def subdivide(position: np.ndarray, frame: np.ndarray, kind: np.ndarray, cutter: Cutter
              ) -> SubSegments:
    """Cut the moves of a pass into sub-segments of nearly constant tool orientation.

    position (n,3), frame (n,3,3), kind (n,).  Move i goes from pose i-1 to pose i; the
    first move of a pass is a zero-length segment at its pose.
    """
    n = len(position)
    if n == 0:
        z = np.zeros((0, 3))
        return SubSegments(z, z, np.zeros((0, 3, 3)), np.zeros(0, int), np.zeros(0, bool))
    p0 = np.concatenate([position[:1], position[:-1]])
    f0 = np.concatenate([frame[:1], frame[:-1]])
    length = np.linalg.norm(position - p0, axis=1)
    rel = np.einsum("nji,njk->nik", f0, frame)
    ang = np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1))
    m = np.maximum(1, np.maximum(np.ceil(length / cutter.max_step_mm),
                                 np.ceil(ang / cutter.max_step_rad))).astype(np.int64)
    move = np.repeat(np.arange(n), m)
    first = np.repeat(np.cumsum(m) - m, m)
    j = np.arange(len(move)) - first
    mm = m[move]
    t0, t1 = j / mm, (j + 1) / mm
    a = p0[move] + t0[:, None] * (position - p0)[move]
    d = ((t1 - t0)[:, None]) * (position - p0)[move]
    tm = ((t0 + t1) / 2)[:, None, None]
    rot = _orthonormalise((1 - tm) * f0[move] + tm * frame[move])
    rapid = kind[move] == int(MoveKind.RAPID)
    return SubSegments(a, d, rot, move, rapid)


def _primitives_box(prims) -> tuple[np.ndarray, np.ndarray]:
    """Tool-frame box (lo, hi) holding every primitive (a capsule includes its end caps)."""
    lo, hi = [], []
    for p in prims:
        r = p.radius
        if p.kind == "capsule":
            lo.append((-r, -r, p.z_lo - r))
            hi.append((r, r, p.z_hi + r))
        else:
            x_hi = p.cx + r if p.x_max is None else min(p.cx + r, p.x_max)
            lo.append((p.cx - r, p.cy - r, p.z_lo))
            hi.append((x_hi, p.cy + r, p.z_hi))
    return np.min(lo, 0), np.max(hi, 0)


def _in_swept_box(x: torch.Tensor, rot: torch.Tensor, d: torch.Tensor, lo: torch.Tensor,
                  hi: torch.Tensor, margin: float) -> torch.Tensor:
    """(m,) bool: may a point within ``margin`` of x (relative to the sub-segment start,
    workpiece frame) lie in the tool-frame box [lo, hi] swept along d?  Along each tool axis
    u the swept box spans u.x in [lo_u + min(0, u.d), hi_u + max(0, u.d)]; outside any of
    these three slabs no cutter primitive (all inside the box) can reach the point."""
    q = torch.einsum("mji,mj->mi", rot, x)
    e = torch.einsum("mji,mj->mi", rot, d)
    return ((q >= lo + e.clamp(max=0) - margin) & (q <= hi + e.clamp(min=0) + margin)).all(1)


@dataclass
class CarveStats:
    """Per-move removed volume (mm3) for each pass, filled by :func:`carve_pass`."""

    removed_mm3: list[np.ndarray] = field(default_factory=list)


def carve_pass(grid: Grid, subs: SubSegments, cutter: Cutter, n_moves: int,
               progress: Callable[[int], None] | None = None, cull: bool = True,
               method: Literal["auto", "voxel"] = "auto") -> np.ndarray:
    """Remove the swept volume of one pass from ``grid`` (in place).

    Candidate voxels of each sub-segment are found one of two ways and then tested
    exactly (:func:`_segment_hits`):

    - ``method="auto"`` and the gouge: sub-segments moving across the edge's plane take
      the voxels of closed-form intervals along lines of voxel centres (:mod:`sim.sheet`);
    - the others: the blocks of the sub-segment's axis-aligned box that hold material.
      ``cull``: skip blocks and voxels outside the sub-segment's swept tool-frame box
      (three slabs along the tool axes) first.

    Either way the result is the same voxel for voxel (``cull=False``, which also turns the
    lines off, tests every voxel of each box: the reference the others are tested against).

    Returns (n_moves,) float removed volume per move, mm3 (exact in chunks holding a
    rapid; elsewhere a voxel reached by several sub-segments of a chunk counts for each).
    """
    dev = grid.occ.device
    removed = np.zeros(n_moves)
    n = len(subs.a)
    if n == 0:
        return removed
    res = grid.res
    # boxes (voxel index ranges) of each sub-segment: tool-frame box corners, rotated
    lo_t, hi_t = np.array(cutter.box_lo), np.array(cutter.box_hi)
    corners = np.array([[lo_t[0] if i == 0 else hi_t[0], lo_t[1] if j == 0 else hi_t[1],
                         lo_t[2] if k == 0 else hi_t[2]] for i in (0, 1) for j in (0, 1)
                        for k in (0, 1)])
    cw = np.einsum("nij,cj->nci", subs.rot, corners)  # (n, 8, 3)
    wlo = np.minimum(cw.min(1) + subs.a, cw.min(1) + subs.a + subs.d)
    whi = np.maximum(cw.max(1) + subs.a, cw.max(1) + subs.a + subs.d)
    shape = np.array(grid.shape)
    ilo = np.clip(np.floor((wlo - grid.origin) / res - 0.5).astype(np.int64), 0, shape)
    ihi = np.clip(np.ceil((whi - grid.origin) / res - 0.5).astype(np.int64) + 1, 0, shape)
    # work in blocks of BLOCK^3 voxels; blocks known to be empty are skipped
    blo = ilo // BLOCK
    bhi = np.maximum(-(-ihi // BLOCK), blo)
    bdims = bhi - blo
    lines = None
    if method == "auto" and cull and sheet.applies(cutter):
        lines = sheet.plan(grid, subs, cutter)
        bdims[:] = 0  # no blocks: the lines give the candidates
        count = LINE_COST * lines.lines  # a line costs about what a few box voxels do
    else:
        count = bdims.prod(1) * BLOCK ** 3
    # chunks of consecutive sub-segments; within a chunk a voxel is credited to the
    # earliest sub-segment that reaches it, so per-move removal keeps the time order
    csum = np.cumsum(count)
    boundaries = {0, n}
    edge = 0
    while True:  # greedy voxel budget
        nxt = int(np.searchsorted(csum, (csum[edge - 1] if edge else 0) + CHUNK_VOXELS,
                                  side="right"))
        nxt = max(nxt, edge + 1)
        if nxt >= n:
            break
        boundaries.add(nxt)
        edge = nxt
    boundaries = sorted(boundaries)
    sw = _Swept(grid, subs, cutter, ilo, ihi, blo, bdims, cull)
    move_of = subs.move
    has_rapid = subs.rapid
    for c0, c1 in zip(boundaries[:-1], boundaries[1:]):
        if lines is not None:
            flat, seg = sheet.candidates(grid, lines, torch.arange(c0, c1, device=dev))
        else:
            flat, seg = sw.block_candidates(c0, c1)
        sel = grid.occ[flat].nonzero().squeeze(1)
        sw.work += int(sel.numel())
        if sel.numel():
            flat, seg = flat[sel], seg[sel]
            hit = sw.hits(flat, seg)
            if hit.any():
                hf, hs = flat[hit], seg[hit]
                grid.occ[hf] = False
                if has_rapid[c0:c1].any():
                    # a voxel hit by several sub-segments counts for the earliest of them
                    uf, inv = torch.unique(hf, return_inverse=True)
                    first = torch.full((len(uf),), c1, dtype=hs.dtype, device=dev)
                    hs = first.scatter_reduce(0, inv, hs, reduce="amin")
                per_seg = torch.bincount(hs - c0, minlength=c1 - c0).cpu().numpy()
                np.add.at(removed, move_of[c0:c1], per_seg * res ** 3)
        sw.refresh()
        if progress:
            progress(c1 - c0)
    return removed


LINE_COST = 4  # chunk budget: a line's interval and its few voxels, in box-voxel units


class _Swept:
    """Block enumeration and the exact test of one pass' sub-segments (torch tensors)."""

    def __init__(self, grid: Grid, subs: SubSegments, cutter: Cutter, ilo, ihi, blo, bdims,
                 cull: bool) -> None:
        dev = grid.occ.device
        res = grid.res
        self.grid, self.cull, self.prims, self.work = grid, cull, cutter.primitives, 0
        self.a = torch.as_tensor(subs.a, dtype=torch.float32, device=dev)
        self.d = torch.as_tensor(subs.d, dtype=torch.float32, device=dev)
        self.rot = torch.as_tensor(subs.rot, dtype=torch.float32, device=dev)
        self.ilo = torch.as_tensor(ilo, device=dev)
        self.ihi = torch.as_tensor(ihi, device=dev)
        self.blo = torch.as_tensor(blo, device=dev)
        self.bd = torch.as_tensor(bdims, device=dev)
        self.bc = torch.as_tensor(bdims.prod(1), device=dev)
        self.off = torch.stack(torch.meshgrid(*[torch.arange(BLOCK, device=dev)] * 3,
                                              indexing="ij"), -1).reshape(-1, 3)  # (B^3, 3)
        b_lo, b_hi = _primitives_box(cutter.primitives)
        self.lo = torch.as_tensor(b_lo, dtype=torch.float32, device=dev)
        self.hi = torch.as_tensor(b_hi, dtype=torch.float32, device=dev)
        # block centre (voxel centres' mid-point) and the half diagonal of its voxel centres
        self.bo = torch.as_tensor(grid.origin + 0.5 * BLOCK * res, dtype=torch.float32,
                                  device=dev)
        self.blk_half = math.sqrt(3) * (BLOCK - 1) / 2 * res + 1e-3 * res
        self.off2 = torch.stack(torch.meshgrid(*[torch.arange(2, device=dev)] * 3,
                                               indexing="ij"), -1).reshape(-1, 3)
        self.so = torch.as_tensor(grid.origin + 0.5 * (BLOCK // 2) * res, dtype=torch.float32,
                                  device=dev)
        self.sub_half = math.sqrt(3) * (BLOCK // 2 - 1) / 2 * res + 1e-3 * res
        coarse = grid.coarse()
        self.cny, self.cnz = coarse.shape[1], coarse.shape[2]
        self.coarse_flat = coarse.reshape(-1)

    def refresh(self) -> None:
        """Blocks emptied since the last look: skip them from now on."""
        if self.work > COARSE_REFRESH_VOXELS:
            self.coarse_flat = self.grid.coarse().reshape(-1)
            self.work = 0

    def _in_box(self, x, seg, margin):
        return _in_swept_box(x - self.a[seg], self.rot[seg], self.d[seg], self.lo, self.hi,
                             margin)

    def block_candidates(self, c0: int, c1: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(flat voxel index, sub-segment) of the voxels in the boxes of sub-segments
        c0..c1-1 that lie in blocks holding material (and, culling, in the swept box)."""
        grid, dev, res = self.grid, self.grid.occ.device, self.grid.res
        bc = self.bc[c0:c1]
        total = int(bc.sum())
        if total == 0:
            z = torch.zeros(0, dtype=torch.int64, device=dev)
            return z, z
        seg = torch.repeat_interleave(torch.arange(c0, c1, device=dev), bc)
        start = torch.cumsum(bc, 0) - bc
        local = torch.arange(total, device=dev) - torch.repeat_interleave(start, bc)
        dm = self.bd[seg]
        bk = local % dm[:, 2]
        bj = (local // dm[:, 2]) % dm[:, 1]
        bi = local // (dm[:, 2] * dm[:, 1])
        b0 = self.blo[seg]
        bi, bj, bk = bi + b0[:, 0], bj + b0[:, 1], bk + b0[:, 2]
        keep = self.coarse_flat[(bi * self.cny + bj) * self.cnz + bk]
        seg, bi, bj, bk = seg[keep], bi[keep], bj[keep], bk[keep]
        if self.cull and seg.numel():  # blocks clear of the swept tool-frame box
            bc_ = torch.stack([bi, bj, bk], 1).to(torch.float32) * (BLOCK * res) + self.bo
            keep = self._in_box(bc_, seg, self.blk_half)
            seg, bi, bj, bk = seg[keep], bi[keep], bj[keep], bk[keep]
        if self.cull:  # halve the kept blocks (BLOCK = 4) into 2^3 sub-blocks, cull those too
            sb = BLOCK // 2
            si = (bi[:, None] * 2 + self.off2[None, :, 0]).reshape(-1)
            sj = (bj[:, None] * 2 + self.off2[None, :, 1]).reshape(-1)
            sk = (bk[:, None] * 2 + self.off2[None, :, 2]).reshape(-1)
            seg = seg.repeat_interleave(8)
            sc = torch.stack([si, sj, sk], 1).to(torch.float32) * (sb * res) + self.so
            keep = self._in_box(sc, seg, self.sub_half)
            seg, bi, bj, bk = seg[keep], si[keep], sj[keep], sk[keep]
            voff = self.off2
        else:
            sb, voff = BLOCK, self.off
        vi = (bi[:, None] * sb + voff[None, :, 0]).reshape(-1)
        vj = (bj[:, None] * sb + voff[None, :, 1]).reshape(-1)
        vk = (bk[:, None] * sb + voff[None, :, 2]).reshape(-1)
        seg = seg.repeat_interleave(sb ** 3)
        lo, hi = self.ilo[seg], self.ihi[seg]
        inb = ((vi >= lo[:, 0]) & (vi < hi[:, 0]) & (vj >= lo[:, 1]) & (vj < hi[:, 1])
               & (vk >= lo[:, 2]) & (vk < hi[:, 2]))
        ny, nz = grid.shape[1], grid.shape[2]
        flat = (vi * ny + vj) * nz + vk
        sel = inb.nonzero().squeeze(1)
        flat, seg = flat[sel], seg[sel]
        if self.cull:  # voxels clear of the swept tool-frame box (margin: float rounding)
            sel = self._in_box(grid.centres(flat), seg, 1e-3 * res).nonzero().squeeze(1)
            flat, seg = flat[sel], seg[sel]
        return flat, seg

    def hits(self, flat: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """(m,) bool: does sub-segment seg's cutter sweep through voxel centre flat?"""
        p = self.grid.centres(flat)
        r = self.rot[seg]
        q = torch.einsum("mji,mj->mi", r, p - self.a[seg])  # tool frame
        e = torch.einsum("mji,mj->mi", r, self.d[seg])
        hit = torch.zeros(len(q), dtype=torch.bool, device=q.device)
        for prim in self.prims:
            hit |= _segment_hits(q, e, prim)
        return hit
