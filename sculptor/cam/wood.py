"""The wood left while the gouge finishes: for the checks of the tool body and air moves.

:class:`WoodGrid` holds the wood the roughing left as voxel centres on a regular grid (the
stock model's fine grid, 2 mm) and takes out what each gouge stroke surely cuts as the
finishing is planned, so every move is checked against the wood that is there when it runs:

- the tool body (:func:`sculptor.profiles.tool_body_sections`: shank, holder; and the
  robot's last link, which lies on the tool axis behind the flange) keeps its radius plus
  ``BODY_MARGIN_MM`` off every wood voxel centre and off the design's skin (the cells
  its surface crosses);
- on air moves the cutting shape keeps ``AIR_WOOD_MM`` off them (a rapid cuts nothing).

The margin: a wood centre stands for wood up to half a cell diagonal (1.7 mm at 2 mm)
around it, and the roughing drops a cell once the cutter passed its centre, so slivers
of a dropped cell lie within about a cell of a kept one; the simulator measures a body's
distance to the wood between the centres of 2 mm cells (a point and the wood each up to
1.7 mm from theirs) and flags one closer than its radius less 2 mm. 3.2 mm over the
radius keeps a body the CAM passes clear in the simulator. The wood a stroke takes out
is under-counted on purpose (only centres well inside the path of the edge, no deeper
than the layer's chip): a check can refuse a move that was safe, not pass one that was
not.

Distances come from a distance transform of the grid, recomputed only now and then: wood
is only ever removed, so an old transform is a lower bound; points it cannot clear are
checked exactly against the grid as it is now.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from sculptor.profiles import GougeTool, capsule_step_mm, tool_body_sections

BODY_MARGIN_MM = 3.2   # body capsule radius + this to the nearest wood centre / skin cell
AIR_WOOD_MM = 3.5      # cutting shape to the nearest wood centre on air moves (wood >= 1.8 mm off)
EXACT_BEFORE_REBUILD = 4000  # exact point checks after which the transform is redone


class WoodGrid:
    """Wood voxel centres ``origin + ijk * voxel_mm`` (piece frame) still holding wood."""

    def __init__(self, centers: np.ndarray, material: np.ndarray, voxel_mm: float):
        self.voxel_mm = v = float(voxel_mm)
        centers = np.asarray(centers, float).reshape(-1, 3)
        if len(centers) == 0:
            centers = np.zeros((1, 3))
            material = np.zeros(1, bool)
        self.origin = centers.min(0)
        ijk = np.rint((centers - self.origin) / v).astype(np.int64)
        self.occ = np.zeros(tuple(ijk.max(0) + 1), bool)
        self.occ[tuple(ijk[np.asarray(material, bool)].T)] = True
        # the design's skin: cells next to the wood (cut or not) that are not wood: their
        # centres lie in the design (or outside the stock); its surface crosses them, and
        # the body keeps the same distance from it as from the wood
        grid = np.zeros(self.occ.shape, bool)
        grid[tuple(ijk.T)] = True
        self.skin = ndimage.binary_dilation(grid) & ~grid
        self._edt: np.ndarray | None = None
        self._exact = 0
        self._removed = 0
        self.stats = {"rebuilds": 0, "exact_checks": 0, "carved_voxels": 0}

    @classmethod
    def from_stock(cls, stock_model) -> "WoodGrid":
        """The wood of a :class:`sculptor.cam.stock.StockModel`: its fine grid where the
        roughing kept it up to date, else its own voxels."""
        fine = stock_model.fine_if_built
        if fine is not None:
            return cls(fine.centers, fine.material, fine.voxel_mm)
        return cls(stock_model.centers, stock_model.material, stock_model.voxel_mm)

    @property
    def volume_mm3(self) -> float:
        return float(self.occ.sum()) * self.voxel_mm ** 3

    def extent_along(self, f: np.ndarray) -> float:
        """The furthest wood centre along direction f (-inf when no wood is left)."""
        ijk = np.argwhere(self.occ)
        if len(ijk) == 0:
            return -math.inf
        return float(((self.origin + ijk * self.voxel_mm) @ f).max()) + self.voxel_mm

    def thickness_along(self, points: np.ndarray, normals: np.ndarray, max_mm: float
                        ) -> np.ndarray:
        """(n,) how far out along its outward normal the wood over each surface point goes
        (mm, to the outermost wood centre met walking out in half-voxel steps while the
        wood continues, gaps of one voxel allowed; 0: none)."""
        points = np.asarray(points, float).reshape(-1, 3)
        normals = np.asarray(normals, float).reshape(-1, 3)
        v = self.voxel_mm
        n = np.asarray(self.occ.shape)
        out = np.zeros(len(points))
        alive = np.ones(len(points), bool)
        miss = np.zeros(len(points), int)
        for t in np.arange(v / 2, max_mm + 1e-9, v / 2):
            ijk = np.rint((points + normals * t - self.origin) / v).astype(np.int64)
            inb = np.all((ijk >= 0) & (ijk < n), axis=1)
            occ = np.zeros(len(points), bool)
            occ[inb] = self.occ[tuple(ijk[inb].T)]
            out = np.where(alive & occ, t, out)
            miss = np.where(occ, 0, miss + 1)
            alive &= miss <= 2
            if not alive.any():
                break
        return out

    # ---------------------------------------------------------------- distances
    def _field(self) -> np.ndarray:
        if self._edt is None:
            if self.occ.any() or self.skin.any():
                self._edt = (ndimage.distance_transform_edt(~(self.occ | self.skin))
                             * self.voxel_mm).astype(np.float32)
            else:
                self._edt = np.full(self.occ.shape, np.inf, np.float32)
            self._exact = self._removed = 0
            self.stats["rebuilds"] += 1
        return self._edt

    def clear(self, pts: np.ndarray, radius) -> np.ndarray:
        """(n,) bool: no wood voxel centre (nor a cell of the design's skin) within
        ``radius`` (scalar or (n,)) of each point (n, 3)."""
        pts = np.asarray(pts, float).reshape(-1, 3)
        rad = np.broadcast_to(np.asarray(radius, float), (len(pts),))
        if len(pts) == 0:
            return np.zeros(0, bool)
        if self._removed and self._exact > EXACT_BEFORE_REBUILD:
            self._edt = None
        edt = self._field()
        v = self.voxel_mm
        n = np.asarray(self.occ.shape)
        idx = np.clip(np.rint((pts - self.origin) / v).astype(np.int64), 0, n - 1)
        # distance to the nearest wood centre >= the field at any grid point less the way
        # to it (the field is as old as the last rebuild: wood only goes, so still a bound)
        lb = edt[tuple(idx.T)] - np.linalg.norm(pts - (self.origin + idx * v), axis=1)
        ok = lb >= rad
        for i in np.flatnonzero(~ok):
            ok[i] = self._clear_exact(pts[i], rad[i])
        return ok

    def _clear_exact(self, p: np.ndarray, r: float) -> bool:
        self._exact += 1
        self.stats["exact_checks"] += 1
        v = self.voxel_mm
        lo = np.maximum(np.floor((p - r - self.origin) / v).astype(np.int64), 0)
        hi = np.minimum(np.ceil((p + r - self.origin) / v).astype(np.int64) + 1,
                        np.asarray(self.occ.shape))
        if np.any(hi <= lo):
            return True
        sl = (slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
        sub = self.occ[sl] | self.skin[sl]
        nz = np.argwhere(sub)
        if len(nz) == 0:
            return True
        c = self.origin + (nz + lo) * v
        return bool(np.min(np.sum((c - p) ** 2, axis=1)) >= r * r)

    # ---------------------------------------------------------------- carving
    def carve_gouge(self, pos: np.ndarray, frames: np.ndarray, tool: GougeTool,
                    depth_mm: float) -> int:
        """Take out the wood a gouge stroke surely cuts: voxel centres the edge plane
        (TCP frame z = 0) passes with them within 3/4 of the half width (|y|) and above
        the edge arc by no more than ``depth_mm`` + 0.5 (the chip the stroke is planned
        for; thicker wood is left in the grid). pos (m, 3), frames (m, 3, 3). Returns the
        number of voxels taken out."""
        pos = np.asarray(pos, float).reshape(-1, 3)
        frames = np.asarray(frames, float).reshape(-1, 3, 3)
        if len(pos) == 0:
            return 0
        v = self.voxel_mm
        step = min(0.5, v / 4)
        # samples along the stroke (the frame of the segment's start)
        ps, fs = [pos[:1]], [frames[:1]]
        for a, b, fa in zip(pos[:-1], pos[1:], frames[:-1]):
            k = max(1, int(math.ceil(np.linalg.norm(b - a) / step)))
            t = np.arange(1, k + 1)[:, None] / k
            ps.append(a + t * (b - a))
            fs.append(np.broadcast_to(fa, (k, 3, 3)))
        ps, fs = np.concatenate(ps), np.concatenate(fs)
        half = 0.75 * tool.width_mm / 2
        r = tool.edge_arc_radius_mm
        top = depth_mm + 0.5
        reach = math.hypot(half, r - math.sqrt(max(r * r - half * half, 0.0)) + top)
        m = int(math.ceil(reach / v)) + 1
        off = np.stack(np.meshgrid(*(np.arange(-m, m + 1),) * 3, indexing="ij"), -1)
        off = off.reshape(-1, 3)
        n = np.asarray(self.occ.shape)
        base = np.rint((ps - self.origin) / v).astype(np.int64)
        gone = []
        for i0 in range(0, len(ps), 64):  # blocks of samples: (64 x offsets) candidates
            b = base[i0:i0 + 64]
            cand = (b[:, None, :] + off[None]).reshape(-1, 3)
            inb = np.all((cand >= 0) & (cand < n), axis=1)
            cand = cand[inb]
            sample = np.repeat(np.arange(len(b)), len(off))[inb]
            wood = self.occ[tuple(cand.T)]
            cand, sample = cand[wood], sample[wood] + i0
            if len(cand) == 0:
                continue
            loc = np.einsum("nij,ni->nj", fs[sample], self.origin + cand * v - ps[sample])
            x, y, z = loc[:, 0], loc[:, 1], loc[:, 2]
            arc = r - np.sqrt(np.maximum(r * r - y * y, 0.0))
            hit = (np.abs(z) <= step) & (np.abs(y) <= half) & (x > arc) & (x <= arc + top)
            gone.append(cand[hit])
        if not gone:
            return 0
        g = np.unique(np.concatenate(gone), axis=0)
        if len(g) == 0:
            return 0
        self.occ[tuple(g.T)] = False
        self._removed += len(g)
        self.stats["carved_voxels"] += len(g)
        return len(g)


class BodyCheck:
    """The tool body (and the arm's last link, on OPW arms) at tool poses against a
    :class:`WoodGrid`: sample points along each capsule's axis with their radii."""

    def __init__(self, tool, robot=None):
        secs = [(s.near_mm, s.far_mm, s.radius_mm) for s in tool_body_sections(tool)]
        tcp_z = float(np.linalg.norm(tool.flange_from_tcp.xyz_mm))
        if robot is not None and robot.kinematics == "opw" \
                and np.allclose(tool.flange_from_tcp.matrix()[:3, :3], np.eye(3)):
            # arm link 6: wrist centre to flange, on the tool axis (the simulator's capsule)
            from sculptor.robot.solver import LINK_RADII_MM

            secs.append((tcp_z, tcp_z + robot.opw.c4_mm, LINK_RADII_MM[5]))
        t, r = [], []
        for near, far, rad in secs:
            k = max(1, int(math.ceil((far - near) / capsule_step_mm(rad))))
            t.append(np.linspace(near, far, k + 1))
            r.append(np.full(k + 1, rad))
        self.t = np.concatenate(t)        # distance back from the TCP along the axis
        self.radius = np.concatenate(r)

    def points(self, pos: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """(m, k, 3) axis samples in the piece frame (the body lies along the TCP's -Z)."""
        axis = np.asarray(frames, float).reshape(-1, 3, 3)[:, :, 2]
        return np.asarray(pos, float).reshape(-1, 1, 3) - self.t[None, :, None] \
            * axis[:, None, :]

    def clear(self, wood: WoodGrid, pos: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """(m,) bool: the body at each pose keeps its radius + BODY_MARGIN_MM off the wood."""
        pos = np.asarray(pos, float).reshape(-1, 3)
        if len(pos) == 0:
            return np.zeros(0, bool)
        pts = self.points(pos, frames)
        rad = np.broadcast_to(self.radius + BODY_MARGIN_MM, pts.shape[:2])
        return wood.clear(pts.reshape(-1, 3), rad.reshape(-1)).reshape(len(pos), -1).all(1)
