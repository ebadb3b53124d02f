"""Roughing in the round: indexed turntable setups, each cleared level by level.

A *setup* is an approach direction f (piece frame; the tool moves along -f) and the
turntable angle that turns f towards the robot. In the setup frame (u, v, h) =
``setup_from_piece @ p``, the exact drop-cutter (tool + holder, offset by the allowance)
gives the lowest tip height CL(u, v) that leaves the allowance on the design. Levels are
cut from the outside in, ``stepdown`` apart; at level L the tool centre may go where
CL < L + stepdown and there is stock within reach (rest roughing: the voxel stock model
says what earlier setups left); the tip follows max(L, CL), so no terraces are left.
Paths on a level are contour-parallel: iso-lines of the distance to the region's edge
(one step-over apart), simplified with shapely, entered by a ramp (helix on short loops).
Setups are picked greedily from candidate angles (every 30 or 45 deg, level and tilted 45 deg,
plus the top) by the stock volume each would remove, at least ``min_setups`` of them.
A gouge as roughing tool cuts the same level regions with parallel strokes, chip depth
``max_chip_depth_mm`` per level.

On a robot cell (``reach``: sculptor.cam.reach.ReachCheck) setups count only the wood the
arm reaches, level regions keep only cells it reaches with no unreachable wood above them,
regions never enclose a pose it cannot take (a corridor is cut to the edge: loops round the
wrist singularity wind axes 4 and 6), and every path is checked move by move before it is
kept. Long cutting moves are split (``MAX_MOVE_MM``) so the joints step little.

The stock model takes what the emitted moves sweep (``sculptor.cam.stock.swept_points``,
before each level and at the end of a setup), not the planned regions; travels go over
the wood the model still holds, or cut through it at feed where the arm cannot go over.

The tool body of a rotary tool (shank, holder, spindle: capsules about its axis, as the
simulator checks them, :func:`body_sections`) stays clear of the design
(:func:`body_floor_design`, in the setup's CL) and, level by level, of all the wood left
on the stock model's fine grid (:func:`body_floor_wood`): the level's CL is raised to
both, and what that forbids is left for a later setup or the finishing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from sculptor.artifacts.toolpath import MoveKind, Pass
from sculptor.cam.dropcutter import Cutter, drop_cutter, frame_from_direction
from sculptor.cam.moves import MoveList, gouge_frames, merge_collinear, resample_polyline, \
    rotary_frame, split_long, turntable_for_facing
from sculptor.cam.toolshape import gouge_body_points, to_piece
from sculptor.profiles import GougeTool, RotaryTool, tool_body_sections

RAMP_ANGLE_DEG = 4.0
CLEAR_MM = 3.0
MAX_MOVE_MM = 30.0  # longest cutting move (longer ones are split: small joint steps)
BODY_CLEAR_MM = 0.5  # body capsules to the wood and the design, beyond the model's error


@dataclass
class Setup:
    name: str
    f: np.ndarray
    turntable_rad: float
    setup_from_piece: np.ndarray = field(init=False)

    def __post_init__(self):
        self.f = np.asarray(self.f, float) / np.linalg.norm(self.f)
        self.setup_from_piece = frame_from_direction(self.f)


def side_setup(theta_rad: float, tilt_rad: float, robot_dir=(-1.0, 0.0, 0.0)) -> Setup:
    """Setup with the turntable at theta; the tool comes from the robot side, tilted down
    by ``tilt_rad`` (f points from the piece towards the tool)."""
    rd = np.asarray(robot_dir, float)
    rd = rd / np.linalg.norm(rd[:2])
    fw = np.array([rd[0] * math.cos(tilt_rad), rd[1] * math.cos(tilt_rad), math.sin(tilt_rad)])
    c, s = math.cos(-theta_rad), math.sin(-theta_rad)
    f = np.array([c * fw[0] - s * fw[1], s * fw[0] + c * fw[1], fw[2]])
    return Setup(f"side{math.degrees(theta_rad) % 360:.0f}-tilt{math.degrees(tilt_rad):.0f}",
                 f, theta_rad)


def top_setup(turntable_rad: float = 0.0) -> Setup:
    return Setup("top", np.array([0.0, 0.0, 1.0]), turntable_rad)


def tool_cutter(tool, extra_mm: float = 0.0) -> Cutter:
    """The tip shape of a tool grown by ``extra_mm`` (a gouge counts as a flat disk as
    wide as its edge)."""
    if isinstance(tool, GougeTool):
        return Cutter("flat", tool.width_mm / 2 + extra_mm, 0.0)
    r = tool.radius_mm + extra_mm
    if tool.kind == "ball":
        return Cutter("ball", r, r)
    if tool.kind == "flat":
        return Cutter("flat", r, 0.0)
    return Cutter("bull", r, tool.corner_radius_mm + extra_mm)


def body_sections(tool) -> list[tuple[float, float]]:
    """The tool body above the cutting part (:func:`sculptor.profiles.tool_body_sections`,
    as the simulator checks it against the wood) as (z_mm, radius_mm), each capsule from
    ``z_mm`` above the tip upwards. A capsule's round end reaches ``radius`` below its
    ``z``."""
    return [(s.near_mm, s.radius_mm) for s in tool_body_sections(tool)]


def body_floor_design(v_setup: np.ndarray, faces: np.ndarray, edges, tool, xs, ys,
                      grow_mm: float, covered_mm: float = 0.0) -> np.ndarray:
    """(ny, nx) lowest tip heights at which every body capsule (:func:`body_sections`),
    grown by ``grow_mm``, clears the design (vertices ``v_setup`` (n, 3) in the setup
    frame): a ball of the capsule's radius at its ``z`` dropped on the mesh (the drop
    cutter takes the ball's cylinder above it too). Capsules no wider than
    ``covered_mm`` are skipped: the cutter's own drop (a cylinder of that radius up from
    the tip) already keeps them off the design. Wide capsules are dropped on a grid
    of up to ``rr / 5`` (at most 8 mm), grown by the half diagonal of its cells: the
    ball about a grid point then holds the ball about any point of the cell."""
    out = np.full((len(ys), len(xs)), -np.inf)
    g = float(xs[1] - xs[0]) if len(xs) > 1 else 1.0
    for z, r in body_sections(tool):
        if r <= covered_mm:
            continue
        rr = r + grow_mm
        step = max(g, min(8.0, rr / 5))
        if step > g:
            cx = np.arange(xs[0], xs[-1] + step, step)
            cy = np.arange(ys[0], ys[-1] + step, step)
            rc = rr + step * math.sqrt(0.5)
            c = drop_cutter(v_setup, faces, Cutter("ball", rc, rc), cx, cy, edges) - z + rc
            ix = np.clip(np.rint((xs - cx[0]) / step).astype(int), 0, len(cx) - 1)
            iy = np.clip(np.rint((ys - cy[0]) / step).astype(int), 0, len(cy) - 1)
            c = c[np.ix_(iy, ix)]
        else:
            c = drop_cutter(v_setup, faces, Cutter("ball", rr, rr), xs, ys, edges) - z + rr
        out = np.maximum(out, c)
    return out


def body_floor_wood(top: np.ndarray, tool, g: float, grow_mm: float) -> np.ndarray:
    """(ny, nx) lowest tip heights at which every body capsule (:func:`body_sections`),
    grown by ``grow_mm``, clears wood whose highest point per grid cell (spacing ``g``) is
    ``top`` (ny, nx; -inf: none): the capsule's round end as a non-flat structuring
    element of a grey dilation (a capsule of radius R at z over a point d off its axis
    needs the tip ``top - z + sqrt(R^2 - d^2)`` or higher). Capsules wider than 8 cells
    are dilated on blocks of k x k cells (the block maximum, at the block centre; grown
    by the two half diagonals of a block), so a wide spindle costs no more than the shank."""
    ny, nx = top.shape
    out = np.full(top.shape, -np.inf)
    if not np.isfinite(top).any():
        return out
    t0 = np.where(np.isfinite(top), top, -1e9)
    for z, r in body_sections(tool):
        k = max(1, int(round((r + grow_mm) / (8 * g))))
        rr = r + grow_mm + (k - 1) * g * math.sqrt(2)
        t = t0
        if k > 1:
            t = np.pad(t0, ((0, -ny % k), (0, -nx % k)), constant_values=-1e9)
            t = t.reshape(t.shape[0] // k, k, t.shape[1] // k, k).max(axis=(1, 3))
        step = g * k
        m = int(math.ceil(rr / step))
        yy, xx = np.mgrid[-m:m + 1, -m:m + 1] * step
        d2 = xx ** 2 + yy ** 2
        fp = d2 <= rr * rr
        st = np.sqrt(np.maximum(rr * rr - d2, 0.0))
        dil = ndimage.grey_dilation(t, footprint=fp, structure=np.where(fp, st, 0.0),
                                    mode="constant", cval=-1e9)
        if k > 1:
            dil = np.repeat(np.repeat(dil, k, axis=0), k, axis=1)[:ny, :nx]
        out = np.maximum(out, np.where(dil > -1e8, dil - z, -np.inf))
    return out


def setup_cl(design, setup: Setup, tool, xs, ys, allowance_mm: float,
             rest_mm: float = 0.0) -> np.ndarray:
    """(ny, nx) lowest tip heights in the setup frame: the cutter keeps ``allowance_mm``
    from the design and, for a rotary tool, the body (shank, holder, spindle capsules)
    keeps ``allowance_mm + rest_mm + BODY_CLEAR_MM`` from it (``rest_mm``: rest thinner
    than the stock model sees, left over the design by other setups); a gouge's holder (a disk of its
    diameter, ``length_mm`` above the tip) stays clear of it. -inf where nothing is under
    the tool."""
    v = design.vertices @ setup.setup_from_piece.T
    f = design.faces
    cl = drop_cutter(v, f, tool_cutter(tool, allowance_mm), xs, ys, design.edges)
    cl = cl + allowance_mm
    if isinstance(tool, RotaryTool):
        body = body_floor_design(v, f, design.edges, tool, xs, ys,
                                 allowance_mm + rest_mm + BODY_CLEAR_MM,
                                 tool_cutter(tool, allowance_mm).radius_mm)
    else:
        body = drop_cutter(v, f, Cutter("flat", tool.holder.diameter_mm / 2 + 2.0), xs, ys,
                           design.edges) - tool.length_mm
    return np.maximum(cl, body)


def table_clamp(cl: np.ndarray, setup_from_piece: np.ndarray, xs, ys, z_min_mm: float
                ) -> np.ndarray:
    """Raise CL so the tip stays ``z_min_mm`` above the table (piece z = 0); cells where
    no tip height does (a horizontal tool below the table) get +inf."""
    R = setup_from_piece
    uu, vv = np.meshgrid(xs, ys)
    base = uu * R[0, 2] + vv * R[1, 2]
    if R[2, 2] > 1e-6:
        return np.maximum(cl, (z_min_mm - base) / R[2, 2])
    return np.where(base >= z_min_mm, cl, np.inf)


class Roughing:
    """Plans roughing setups on a StockModel (updated as setups are planned)."""

    def __init__(self, design, stock_model, tool, *, allowance_mm: float, grid_mm: float,
                 simplify_mm: float, robot_dir=(-1.0, 0.0, 0.0), reach=None,
                 stepover_frac: float = 0.6):
        self.design = design
        self.reach = reach if reach is not None and reach.active else None
        self.stock = stock_model
        self.tool = tool
        self.allowance = allowance_mm
        self.g = grid_mm
        self.simplify = simplify_mm
        self.robot_dir = robot_dir
        self.is_gouge = isinstance(tool, GougeTool)
        if self.is_gouge:
            self._body = gouge_body_points(tool)
            self.stepdown = tool.max_chip_depth_mm
            self.stepover = stepover_frac * tool.width_mm
            self.radius = tool.width_mm / 2
        else:
            self.stepdown = tool.max_stepdown_mm
            self.stepover = stepover_frac * tool.diameter_mm
            self.radius = tool.radius_mm
        self._cache: dict[str, tuple] = {}
        self._vreach: dict[str, np.ndarray] = {}
        self.skipped = 0  # paths left out: the arm could not reach every move

    # ------------------------------------------------------------------ grids and CL
    def _grid(self, setup: Setup):
        c = self.stock.centers @ setup.setup_from_piece.T
        pad = self.radius + 2 * self.g
        lo = c[:, :2].min(0) - pad
        hi = c[:, :2].max(0) + pad
        xs = np.arange(lo[0], hi[0] + self.g, self.g)
        ys = np.arange(lo[1], hi[1] + self.g, self.g)
        return xs, ys

    def cl(self, setup: Setup):
        if setup.name not in self._cache:
            xs, ys = self._grid(setup)
            cl = setup_cl(self.design, setup, self.tool, xs, ys, self.allowance,
                          self.stock.fine_mm / 2)
            cl = table_clamp(cl, setup.setup_from_piece, xs, ys, self.radius + 1.0)
            self._cache[setup.name] = (xs, ys, cl)
        return self._cache[setup.name]

    def frame(self, setup: Setup) -> np.ndarray:
        """The tool frame of a setup (constant over its moves)."""
        return rotary_frame(setup.f, setup.setup_from_piece[0])

    def arm_reaches(self, setup: Setup, uvh: np.ndarray) -> np.ndarray:
        """(m,) bool: the arm reaches the tip at setup-frame points uvh (m, 3) with the
        setup's tool frame and turntable angle (always True without a reach check)."""
        if self.reach is None:
            return np.ones(len(uvh), bool)
        if self.is_gouge:
            d = -setup.setup_from_piece[1]
            fr = gouge_frames(d[None], setup.f[None], math.radians(self.tool.rake_angle_deg))
            fr = np.broadcast_to(fr[0], (len(uvh), 3, 3))
        else:
            fr = np.broadcast_to(self.frame(setup), (len(uvh), 3, 3))
        return self.reach.ok(uvh @ setup.setup_from_piece, fr, setup.turntable_rad)

    def _voxel_reach(self, setup: Setup) -> np.ndarray:
        """(n voxels,) bool: the tip can be put at the voxel centre (computed once per
        setup for the voxels that held wood at the start, on blocks of 2x2x2 voxels: an
        estimate for choosing setups; planning checks every move)."""
        if setup.name not in self._vreach:
            out = np.zeros(len(self.stock.centers), bool)
            vi = np.flatnonzero(self.stock.material)
            key = np.ravel_multi_index(tuple(np.array(np.unravel_index(vi, self.stock.shape))
                                             // 2), self.stock.shape)
            _, first, inv = np.unique(key, return_index=True, return_inverse=True)
            rep = self.stock.centers[vi[first]] @ setup.setup_from_piece.T
            out[vi] = self.arm_reaches(setup, rep)[inv.reshape(-1)]
            self._vreach[setup.name] = out
        return self._vreach[setup.name]

    def _removable(self, setup: Setup) -> np.ndarray:
        """Voxels this setup can remove: above the CL, within the tool's reach and the
        arm's: nothing under a voxel the arm cannot reach in the same column."""
        xs, ys, cl = self.cl(setup)
        cell, h, vi = self.stock.column_heights(setup.setup_from_piece, xs, ys)
        if len(h) == 0:
            return vi
        floor = np.maximum(cl.reshape(-1)[cell], self._column_reach(cell, h, cl.size)[cell])
        above = h > floor
        if self.reach is None:
            return vi[above]
        r = self._voxel_reach(setup)[vi]
        stop = above & ~r
        hb = np.full(cl.size, -np.inf)
        np.maximum.at(hb, cell[stop], h[stop])
        return vi[above & r & (h > hb[cell])]

    def _column_reach(self, cell: np.ndarray, h: np.ndarray, ncell: int) -> np.ndarray:
        """(ncell,) lowest tip height per column the tool reaches: the top of the stock
        left in the column less the stick-out (less a margin), so the holder stays out of
        the wood."""
        top = np.full(ncell, -np.inf)
        np.maximum.at(top, cell, h)
        return top - (self.tool.length_mm - 10.0)

    def gain(self, setup: Setup) -> int:
        return len(self._removable(setup))

    def choose(self, candidates: list[Setup], min_setups: int, max_setups: int,
               min_gain_frac: float = 0.002, on_step=None) -> list[Setup]:
        """Greedy: the candidate removing most of what is left, until ``min_setups`` are
        chosen and the next would remove < ``min_gain_frac`` of the initial stock.
        The stock model is not changed (planning updates it)."""
        saved = self.stock.material.copy()
        chosen: list[Setup] = []
        taken: set[int] = set()
        total = max(self.stock.initial_count, 1)
        try:
            while len(chosen) < max_setups:
                gains = [(self.gain(s), i) for i, s in enumerate(candidates)
                         if i not in taken]
                if not gains:
                    break
                g, i = max(gains)
                if len(chosen) >= min_setups and g < min_gain_frac * total:
                    break
                s = candidates[i]
                chosen.append(s)
                taken.add(i)
                self.stock.remove(self._removable(s))
                if on_step:
                    on_step()
        finally:
            self.stock.material[:] = saved
        return chosen

    # ------------------------------------------------------------------ one setup
    def plan_setup(self, setup: Setup, index: int) -> Pass:
        xs, ys, cl = self.cl(setup)
        R = setup.setup_from_piece
        ny, nx = cl.shape
        from sculptor.cam.stock import swept_floor, swept_points

        acell, ah, avi = self.stock.column_heights(R, xs, ys)
        cell, h, vi = acell, ah, avi
        fl = cl.reshape(-1)[cell]
        rem = h > fl
        cell, h, vi = cell[rem], h[rem], vi[rem]
        ml = MoveList()
        self.skipped = 0
        stats = {"levels": 0, "loops": 0, "strokes": 0, "stock_removed_mm3": 0.0}
        if len(h) == 0:
            return self._empty_pass(setup, index, stats)
        top = float(h.max()) + self.stock.voxel_mm / 2
        clear_h = top + 20.0
        if self.is_gouge:  # the blade reaches at most its stick-out (less a margin)
            reach = self._column_reach(cell, h, cl.size)
            keep = h > np.maximum(cl.reshape(-1)[cell], reach[cell])
            cell, h, vi = cell[keep], h[keep], vi[keep]
            if len(h) == 0:
                return self._empty_pass(setup, index, stats)
            floor_min = float(np.maximum(cl.reshape(-1)[cell], reach[cell]).min())
            cl = np.maximum(cl, np.where(np.isfinite(reach), reach, -np.inf).reshape(cl.shape))
        else:  # how deep the tool goes is set level by level by its body (body_floor_wood)
            floor_min = max(float(cl.reshape(-1)[cell].min()), float(h.min()) - self.stepdown)
        levels = []
        L = top - self.stepdown
        while True:
            levels.append(max(L, floor_min))
            if L <= floor_min:
                break
            L -= self.stepdown
        rad_cells = self.radius / self.g
        yy, xx = np.mgrid[-math.ceil(rad_cells):math.ceil(rad_cells) + 1,
                          -math.ceil(rad_cells):math.ceil(rad_cells) + 1]
        disk = (xx ** 2 + yy ** 2) <= rad_cells ** 2
        state = {"pos": None}
        blocked = np.zeros((ny, nx), bool)  # wood left above this level (arm cannot reach)
        cut = np.zeros(len(h), bool)
        cutter = tool_cutter(self.tool)
        cut_len = np.inf if self.is_gouge else float(self.tool.flute_length_mm)
        gone = np.zeros(len(ah), bool)  # swept by the moves emitted so far
        swept = {"mark": 0, "last": None}
        half = self.stock.voxel_mm / 2
        rem0 = ah > self.cl(setup)[2].reshape(-1)[acell]
        auvh = self.stock.centers[avi] @ R.T
        if not self.is_gouge:  # the wood on the fine grid, in this setup's frame
            fine = self.stock.fine
            fvi = np.flatnonzero(fine.material)
            fuvh = fine.centers[fvi] @ R.T
            fix = np.rint((fuvh[:, 0] - xs[0]) / self.g).astype(np.int64)
            fiy = np.rint((fuvh[:, 1] - ys[0]) / self.g).astype(np.int64)
            inside = (fix >= 0) & (fix < nx) & (fiy >= 0) & (fiy < ny)
            fvi, fuvh, fcell = fvi[inside], fuvh[inside], (fiy * nx + fix)[inside]
            fcut = fuvh[:, 2] > cl.reshape(-1)[fcell]  # above the CL: to be cut
            fgone = np.zeros(len(fvi), bool)
            # a fine voxel counts as a ball about its centre, put at its cell's centre
            vox_r = fine.radius_mm
            grow = vox_r + self.g * math.sqrt(0.5) + BODY_CLEAR_MM
            disk_rapid = _disk((self.radius + grow) / self.g)
        else:
            disk_rapid = _disk(self.radius / self.g + 1)
        stats["body_limited_cells"] = 0

        def sweep():
            pts = ml.since(swept["mark"]) @ R.T
            swept["mark"] = ml.mark()
            if len(pts) == 0:
                return
            if swept["last"] is not None:
                pts = np.vstack([swept["last"], pts])
            swept["last"] = pts[-1:]
            if self.is_gouge:
                f = swept_floor(pts, xs, ys, cutter, self.g / 2).reshape(-1)[acell]
                gone[(ah > f) & (ah <= f + cut_len)] = True
            else:  # voxel centres the cutter surely passed over (the few coarse voxels
                # at their exact u, v; the fine ones on a 1 mm grid)
                for done, uvh, cell_mm in ((gone, auvh, None), (fgone, fuvh, 1.0)):
                    live = np.flatnonzero(~done)
                    done[live[swept_points(pts, uvh[live], cutter, cut_len, cell_mm)]] = True

        def column_top(cells, hh):
            t = np.full(ny * nx, -np.inf)
            np.maximum.at(t, cells, hh)
            return t.reshape(ny, nx)

        for L in levels:
            sweep()
            lev = (h > L) & (h <= L + self.stepdown + self.stock.voxel_mm)
            mat = np.zeros(ny * nx, bool)
            if self.is_gouge:
                live = rem0 & ~gone
                top_l = column_top(acell[live], ah[live]) + half
                cl_l = cl
                mat[cell[lev]] = True
            else:  # all the wood left (under the CL too): the body keeps clear of it
                live = ~fgone
                top_l = column_top(fcell[live], fuvh[live, 2])
                body = body_floor_wood(top_l, self.tool, self.g, grow)
                cl_l = np.maximum(cl, body)
                top_l = top_l + vox_r
                fl = live & fcut & (fuvh[:, 2] > L) & (fuvh[:, 2] <= L + self.stepdown
                                                       + fine.voxel_mm)
                mat[fcell[fl]] = True
            mat = mat.reshape(ny, nx)
            self._rapid_top = ndimage.maximum_filter(top_l, footprint=disk_rapid,
                                                     mode="constant", cval=-np.inf)
            safe_cl = ndimage.maximum_filter(np.where(np.isfinite(cl_l), cl_l, -1e9), size=3)
            if not mat.any():
                continue
            region = ndimage.binary_dilation(mat, structure=disk)
            if not self.is_gouge:
                stats["body_limited_cells"] += int((region & (cl < L + self.stepdown)
                                                    & (cl_l >= L + self.stepdown)).sum())
            region &= (cl_l < L + self.stepdown) & (cl_l < np.inf)
            if self.reach is not None:
                region &= ~ndimage.binary_dilation(blocked, structure=disk)
                region &= self._reach_cells(setup, xs, ys, cl_l, region, L)
                region = self._open_holes(setup, xs, ys, region, L, disk)
            covered = ndimage.binary_dilation(region, structure=disk)
            blocked |= mat & ~covered
            cut |= lev & covered.reshape(-1)[cell]
            if not region.any():
                continue
            stats["levels"] += 1
            if self.is_gouge:
                n = self._gouge_level(ml, setup, xs, ys, region, L, safe_cl, clear_h, state)
                stats["strokes"] += n
            else:
                n = self._contour_level(ml, setup, xs, ys, region, L, safe_cl, clear_h, state)
                stats["loops"] += n
        if len(ml):
            p, fr = ml.last()
            u, v, hh = p @ R.T
            for hgt in (max(hh, clear_h), hh + CLEAR_MM + self.radius):
                mark = ml.mark()
                ml.add(np.array([[u, v, hgt]]) @ R, fr, self.tool.feed_mm_s, MoveKind.RETRACT,
                       setup.turntable_rad)
                if self._commit(ml, mark, setup):
                    break
        sweep()
        stats["skipped_paths"] = self.skipped
        stats["planned_removal_mm3"] = int(cut.sum()) * self.stock.voxel_mm ** 3
        removed = self.stock.remove(avi[gone])
        if not self.is_gouge:
            self.stock.fine.material[fvi[fgone]] = False
        stats["stock_removed_mm3"] = removed * self.stock.voxel_mm ** 3
        stats["arm_unreachable_moves"] = int((~self.arm_reaches(setup, ml.since(0) @ R.T)
                                              ).sum())
        p = ml.to_pass(name=f"rough-{index}-{setup.name}", operation="rough",
                       strategy=self._strategy(setup), tool_id=self.tool.name,
                       setup_turntable_deg=math.degrees(setup.turntable_rad), stats=stats)
        if self.is_gouge:  # strokes: every point checked as planned (short moves already)
            return p
        return split_long(merge_collinear(p, min(self.simplify / 2, self.allowance / 3)),
                          MAX_MOVE_MM)

    def _reach_cells(self, setup: Setup, xs, ys, cl, region, L: float) -> np.ndarray:
        """(ny, nx) bool: the arm reaches the tip at the level (bottom and top of the
        step, the tip following the CL) over the cells of ``region``."""
        iy, ix = np.nonzero(region)
        out = np.zeros(region.shape, bool)
        if len(iy) == 0:
            return out
        lo = np.maximum(L, cl[iy, ix])
        ok = np.ones(len(iy), bool)
        for hh in (lo, lo + self.stepdown):
            ok &= self.arm_reaches(setup, np.column_stack([xs[ix], ys[iy], hh]))
        out[iy[ok], ix[ok]] = True
        return out

    def _open_holes(self, setup: Setup, xs, ys, region, L: float, disk) -> np.ndarray:
        """``region`` without loops around poses the arm cannot take: a path that
        circles the wrist singularity winds axes 4 and 6 a full turn per loop. Every hole
        of the region (cells not connected to the grid's edge) holding a pose the arm
        cannot reach at the level gets a corridor cut from it to the edge (+v), as wide
        as the tool: the paths then go round it back and forth instead of circling it;
        the wood in the corridor is left (rest)."""
        holes, n = ndimage.label(~region)
        edge = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
        inner = np.isin(holes, edge, invert=True) & (holes > 0)
        if not inner.any():
            return region
        iy, ix = np.nonzero(inner)
        bad = ~self.arm_reaches(setup, np.column_stack([xs[ix], ys[iy], np.full(len(iy), L)]))
        if not bad.any():
            return region
        corridor = np.zeros_like(region)
        for lab in np.unique(holes[iy[bad], ix[bad]]):
            cols = np.unique(ix[bad][holes[iy[bad], ix[bad]] == lab])
            row0 = int(iy[bad][holes[iy[bad], ix[bad]] == lab].min())
            corridor[row0:, cols] = True
        return region & ~ndimage.binary_dilation(corridor, structure=disk)

    def _empty_pass(self, setup: Setup, index: int, stats: dict) -> Pass:
        return MoveList().to_pass(name=f"rough-{index}-{setup.name}", operation="rough",
                                  strategy=self._strategy(setup), tool_id=self.tool.name,
                                  setup_turntable_deg=math.degrees(setup.turntable_rad),
                                  stats=stats)

    def _strategy(self, setup: Setup) -> str:
        base = "zlevel" if setup.name == "top" else "indexed-side"
        return base + ("-gouge-strokes" if self.is_gouge else "-contour")

    def _heights(self, uv: np.ndarray, xs, ys, safe_cl, L: float) -> np.ndarray:
        ix = (uv[:, 0] - xs[0]) / self.g
        iy = (uv[:, 1] - ys[0]) / self.g
        c = ndimage.map_coordinates(safe_cl, [iy, ix], order=1, mode="nearest")
        return np.maximum(L, c)

    def _travel(self, ml, setup, xs, ys, safe_cl, clear_h, a_uvh, b_uv, b_h0, frame):
        """Retract from a (u, v, h), travel above everything in between, plunge to b."""
        R = setup.setup_from_piece
        seg = np.linspace(a_uvh[:2], b_uv, max(2, int(np.linalg.norm(b_uv - a_uvh[:2]) /
                                                      self.g) + 2))
        ix = np.clip(np.rint((seg[:, 0] - xs[0]) / self.g).astype(int), 0, len(xs) - 1)
        iy = np.clip(np.rint((seg[:, 1] - ys[0]) / self.g).astype(int), 0, len(ys) - 1)
        over = float(np.max(safe_cl[iy, ix]))  # the design and (rotary) the body floor
        low = max(over, a_uvh[2], b_h0)
        wood = float(np.max(self._rapid_top[iy, ix])) + CLEAR_MM  # grown by the radius
        kind = MoveKind.CUT  # where over the wood is out of the arm's reach: cut through it
        th = low + self.stock.fine_mm / 2 + 1.0
        for cand in (max(min(low + CLEAR_MM + self.radius, clear_h), over, wood),
                     max(low + self.stock.fine_mm / 2 + 1.0, wood)):
            pts = np.array([[a_uvh[0], a_uvh[1], cand], [b_uv[0], b_uv[1], cand]])
            if self.arm_reaches(setup, pts).all():
                th, kind = cand, MoveKind.RAPID
                break
        if kind == MoveKind.CUT and wood <= th:
            kind = MoveKind.RAPID
        pts = np.array([[a_uvh[0], a_uvh[1], th], [b_uv[0], b_uv[1], th]])
        ml.add(pts[:1] @ R, frame, self.tool.feed_mm_s, MoveKind.RETRACT, setup.turntable_rad)
        ml.add(pts[1:] @ R, frame, self.tool.feed_mm_s, kind, setup.turntable_rad)

    def _enter(self, ml, setup, xs, ys, safe_cl, clear_h, state, start, frame, low: bool):
        """Rapid to above ``start`` (u, v, h): from the pass's clearance height (or, if
        ``low``, one step above the start) for the first path, else by a travel."""
        if state["pos"] is None:
            h = clear_h if not low else min(clear_h, start[2] + self.stepdown + CLEAR_MM
                                            + self.radius)
            ml.add(np.array([[start[0], start[1], h]]) @ setup.setup_from_piece, frame,
                   self.tool.feed_mm_s, MoveKind.RAPID, setup.turntable_rad)
        else:
            self._travel(ml, setup, xs, ys, safe_cl, clear_h, state["pos"], start[:2],
                         start[2], frame)

    def _commit(self, ml, mark: int, setup: Setup) -> bool:
        """Keep the moves added since ``mark`` if the arm reaches all of them; else drop
        them (counted in ``skipped_paths``) and say so."""
        pts = ml.since(mark)
        if self.arm_reaches(setup, pts @ setup.setup_from_piece.T).all():
            return True
        ml.rollback(mark)
        self.skipped += 1
        return False

    def _contour_level(self, ml, setup, xs, ys, region, L, safe_cl, clear_h, state) -> int:
        from shapely.geometry import LinearRing
        from skimage import measure

        R = setup.setup_from_piece
        frame = rotary_frame(setup.f, R[0])
        # smoothed distance-to-edge: its iso-lines are smooth loops that simplify to few
        # vertices (heights come from the conservative safe_cl, so smoothing cannot gouge)
        dist = ndimage.gaussian_filter(ndimage.distance_transform_edt(np.pad(region, 1))
                                       * self.g, 1.0)
        dmax = float(dist.max())
        ds = [self.g * 0.5]
        while ds[-1] + self.stepover < dmax:
            ds.append(ds[-1] + self.stepover)
        loops = []
        for d in reversed(ds):  # inside out; the last loop is the wall of the level
            for c in measure.find_contours(dist, d):
                if len(c) < 4:
                    continue
                uv = np.stack([xs[0] + (c[:, 1] - 1) * self.g, ys[0] + (c[:, 0] - 1) * self.g],
                              axis=1)
                ring = LinearRing(uv).simplify(self.simplify)
                pts = np.asarray(ring.coords)
                if len(pts) < 3:
                    continue
                loops.append(pts)
        ramp = self.stepdown / math.tan(math.radians(RAMP_ANGLE_DEG))
        for pts in loops:
            pts = pts[:-1] if np.allclose(pts[0], pts[-1]) else pts
            seg = np.linalg.norm(np.diff(np.vstack([pts, pts[:1]]), axis=0), axis=1)
            per = float(seg.sum())
            if per <= 0:
                continue
            turns = int(math.ceil(ramp / per)) + 1
            path = np.vstack([np.vstack([pts] * turns), pts[:1]])
            # heights are sampled at the points: at most half a cell apart (the tip then
            # follows the CL and the body floor between them)
            path = resample_polyline(path, self.g / 2)
            s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0),
                                                                axis=1))])
            keep = s <= ramp + per + 1e-6
            path, s = path[keep], s[keep]
            hgt = self._heights(path, xs, ys, safe_cl, L)
            hgt = hgt + self.stepdown * np.clip(1 - s / ramp, 0, 1)
            start = np.array([path[0, 0], path[0, 1], hgt[0]])
            uvh = np.column_stack([path[1:], hgt[1:]])
            for low in (False, True):
                mark = ml.mark()
                self._enter(ml, setup, xs, ys, safe_cl, clear_h, state, start, frame, low)
                ml.add(start[None] @ R, frame, self.tool.plunge_feed_mm_s, MoveKind.PLUNGE,
                       setup.turntable_rad)
                ml.add(uvh @ R, frame, self.tool.feed_mm_s, MoveKind.CUT, setup.turntable_rad)
                if self._commit(ml, mark, setup):
                    state["pos"] = uvh[-1]
                    break
        return len(loops)

    def _gouge_level(self, ml, setup, xs, ys, region, L, safe_cl, clear_h, state) -> int:
        tool: GougeTool = self.tool  # type: ignore[assignment]
        R = setup.setup_from_piece
        n_out = setup.f
        d_dir = -R[1]  # strokes along -v (down for side setups)
        step = max(self.g, 2.0)
        nstrokes = 0
        cols = np.arange(xs[0], xs[-1], self.stepover)
        for u in cols:
            ix = int(round((u - xs[0]) / self.g))
            col = region[:, ix]
            if not col.any():
                continue
            edges = np.flatnonzero(np.diff(np.concatenate([[0], col.astype(int), [0]])))
            for a, b in zip(edges[::2], edges[1::2]):
                v_hi, v_lo = ys[b - 1], ys[a]
                length = v_hi - v_lo
                if length < tool.min_stroke_length_mm:
                    continue
                k = int(math.ceil(length / tool.max_stroke_length_mm))
                bounds = np.linspace(v_hi, v_lo, k + 1)
                for s0, s1 in zip(bounds[:-1], bounds[1:]):
                    vs = np.arange(s0, s1 - 1e-9, -step)
                    vs = np.append(vs, s1)
                    uv = np.column_stack([np.full(len(vs), u), vs])
                    hgt = self._heights(uv, xs, ys, safe_cl, L)
                    uvh = np.column_stack([uv, hgt])
                    frames = gouge_frames(np.broadcast_to(d_dir, (len(uvh), 3)),
                                          np.broadcast_to(n_out, (len(uvh), 3)),
                                          math.radians(tool.rake_angle_deg))
                    # the blade trails back and up from the edge: where it (or the holder)
                    # would touch the design, leave the stroke there (rest for later)
                    hit = self.design.inside(to_piece(uvh @ R, frames, self._body).reshape(
                        -1, 3)).reshape(len(uvh), -1).any(1)
                    if hit.any():
                        ok = np.flatnonzero(~hit)
                        if len(ok) < 2:
                            continue
                        run = np.split(ok, np.flatnonzero(np.diff(ok) > 1) + 1)
                        run = max(run, key=len)
                        if len(run) < 2:
                            continue
                        uvh, frames = uvh[run], frames[run]
                    lead = uvh[0] + np.array([0, 5.0, CLEAR_MM])
                    if self.design.inside(to_piece((lead @ R)[None], frames[:1],
                                                   self._body).reshape(-1, 3)).any():
                        continue
                    out = uvh[-1] + np.array([0, -3.0, CLEAR_MM + 2])
                    for low in (False, True):
                        mark = ml.mark()
                        self._enter(ml, setup, xs, ys, safe_cl, clear_h, state, lead,
                                    frames[0], low)
                        ml.add(lead[None] @ R, frames[0], tool.plunge_feed_mm_s,
                               MoveKind.PLUNGE, setup.turntable_rad)
                        ml.add(uvh @ R, frames, tool.feed_mm_s, MoveKind.CUT,
                               setup.turntable_rad)
                        ml.add(out[None] @ R, frames[-1], tool.feed_mm_s, MoveKind.RETRACT,
                               setup.turntable_rad)
                        if self._commit(ml, mark, setup):
                            state["pos"] = out
                            nstrokes += 1
                            break
        return nstrokes


def _disk(rad_cells: float) -> np.ndarray:
    """Footprint of a disk of ``rad_cells`` grid cells."""
    k = math.ceil(rad_cells)
    yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
    return (xx ** 2 + yy ** 2) <= rad_cells ** 2


def candidate_setups(machine: str, tilts_rad, step_deg: float = 30.0,
                     robot_dir=(-1.0, 0.0, 0.0)) -> list[Setup]:
    """The top setup and side setups every ``step_deg`` of turntable at each tilt (rad,
    down from horizontal) in ``tilts_rad``."""
    if machine == "cnc3":
        return [top_setup()]
    out = [top_setup(turntable_for_facing(np.array([1.0, 0, 0]), robot_dir))]
    for tilt in np.atleast_1d(tilts_rad):
        for a in np.arange(0.0, 360.0, step_deg):
            out.append(side_setup(math.radians(a), float(tilt), robot_dir))
    return out
