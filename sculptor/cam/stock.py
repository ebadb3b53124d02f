"""The remaining stock between setups: a voxel model in the piece frame.

``StockModel.material`` (nx, ny, nz) bool marks voxels of wood still to be removed
(stock minus design); design voxels are kept in ``design`` and are never removed.
Removal is done per setup from the emitted moves: a voxel is gone when the cutter surely
passed over its centre (:func:`swept_points`).

A voxel dropped that way can leave a sliver of wood up to half a voxel thick, and a kept
one may be mostly cut: too coarse for the tool body, which must clear the wood left by a
few millimetres. ``StockModel.fine`` holds the same wood on a finer grid (``fine_mm``),
updated by the roughing alongside, for those checks.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_MM = 1.0  # spacing of the samples along the moves in swept_points


class StockModel:
    def __init__(self, stock, design_query, voxel_mm: float, fine_mm: float = 2.0):
        self._stock, self._design_query = stock, design_query
        self.fine_mm = min(float(fine_mm), float(voxel_mm))
        self._fine: FineWood | None = None
        lo, hi = stock.bounds
        self.voxel_mm = float(voxel_mm)
        n = np.maximum(np.ceil((hi - lo) / voxel_mm).astype(int), 1)
        self.shape = tuple(int(x) for x in n)
        self.origin = lo + voxel_mm / 2
        idx = np.stack(np.meshgrid(*(np.arange(k) for k in n), indexing="ij"), -1)
        self.centers = (idx.reshape(-1, 3) * voxel_mm + self.origin)
        inside_stock = stock.inside(self.centers)
        self.design = design_query.inside(self.centers)
        self.material = inside_stock & ~self.design
        self.initial_count = int(self.material.sum())

    @property
    def fine(self) -> "FineWood":
        """The wood left on a grid of ``fine_mm`` (built on first use)."""
        if self._fine is None:
            self._fine = FineWood(self._stock, self._design_query, self.fine_mm)
        return self._fine

    @property
    def fine_if_built(self) -> "FineWood | None":
        """The fine grid if something (the roughing) has used and updated it, else None."""
        return self._fine

    @property
    def volume_mm3(self) -> float:
        return float(self.material.sum()) * self.voxel_mm ** 3

    def column_heights(self, setup_from_piece: np.ndarray, xs: np.ndarray, ys: np.ndarray):
        """For every remaining voxel: its grid cell (flat index into (ny, nx)) and height h
        in the setup frame. Returns (cell (k,), h (k,), voxel index (k,))."""
        vi = np.flatnonzero(self.material)
        p = self.centers[vi] @ setup_from_piece.T
        dx = xs[1] - xs[0] if len(xs) > 1 else 1.0
        dy = ys[1] - ys[0] if len(ys) > 1 else 1.0
        ix = np.rint((p[:, 0] - xs[0]) / dx).astype(np.int64)
        iy = np.rint((p[:, 1] - ys[0]) / dy).astype(np.int64)
        ok = (ix >= 0) & (ix < len(xs)) & (iy >= 0) & (iy < len(ys))
        return iy[ok] * len(xs) + ix[ok], p[ok, 2], vi[ok]

    def removable(self, setup_from_piece, xs, ys, floor: np.ndarray) -> np.ndarray:
        """Indices of remaining voxels above ``floor`` ((ny, nx) tip heights the setup can
        reach; -inf/inf allowed) in their column."""
        cell, h, vi = self.column_heights(setup_from_piece, xs, ys)
        fl = floor.reshape(-1)[cell]
        return vi[h > fl]

    def remove(self, voxel_index: np.ndarray) -> int:
        n = int(self.material[voxel_index].sum())
        self.material[voxel_index] = False
        return n

    def material_near(self, points: np.ndarray, radius_mm: float) -> np.ndarray:
        """(n,) bool: any remaining-material voxel within ``radius_mm`` (+ half a voxel) of
        each point (for the air-cut share)."""
        from scipy.spatial import cKDTree

        vi = np.flatnonzero(self.material)
        if len(vi) == 0 or len(points) == 0:
            return np.zeros(len(points), bool)
        tree = cKDTree(self.centers[vi])
        d, _ = tree.query(points, k=1, distance_upper_bound=radius_mm + self.voxel_mm)
        return np.isfinite(d)


class FineWood:
    """Wood voxels of ``voxel_mm`` (stock less design, centres sampled): ``centers`` (n, 3)
    piece frame of the voxels that held wood at the start, ``material`` (n,) bool those
    that still do."""

    def __init__(self, stock, design_query, voxel_mm: float):
        lo, hi = stock.bounds
        self.voxel_mm = float(voxel_mm)
        n = np.maximum(np.ceil((hi - lo) / voxel_mm).astype(int), 1)
        axes = [lo[k] + voxel_mm / 2 + np.arange(n[k]) * voxel_mm for k in range(3)]
        c = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        c = c[stock.inside(c)]
        self.centers = c[~design_query.inside(c)]
        self.material = np.ones(len(self.centers), bool)

    @property
    def radius_mm(self) -> float:
        """Radius of the ball about a voxel centre that holds the voxel."""
        return self.voxel_mm * math.sqrt(3) / 2


def tip_profile(cutter, d: np.ndarray) -> np.ndarray:
    """Height of a rotary cutter's tip surface above its lowest point at radial distance
    ``d`` (mm) from its axis (cutter: sculptor.cam.dropcutter.Cutter; d <= radius)."""
    r, rc = cutter.radius_mm, min(cutter.corner_radius_mm, cutter.radius_mm)
    a = r - rc
    e = np.clip(d - a, 0.0, rc)
    return np.where(d <= a, 0.0, rc - np.sqrt(np.maximum(rc * rc - e * e, 0.0)))


def _samples(uvh: np.ndarray, step_mm: float) -> np.ndarray:
    """(k, 3) points along the polyline ``uvh`` (m >= 1, 3), at most ``step_mm`` apart in
    (u, v), every vertex included."""
    seg = np.diff(uvh, axis=0)
    n = np.maximum(np.ceil(np.linalg.norm(seg[:, :2], axis=1) / step_mm), 1).astype(int)
    src = np.repeat(np.arange(len(seg)), n)
    t = np.concatenate([np.arange(1, k + 1) / k for k in n]) if len(seg) else np.zeros(0)
    return np.vstack([uvh[:1], uvh[src] + t[:, None] * seg[src]])


def swept_floor(uvh: np.ndarray, xs: np.ndarray, ys: np.ndarray, cutter, step_mm: float
                ) -> np.ndarray:
    """(ny, nx) lowest height the tip surface of ``cutter`` sweeps over each grid cell
    centre when the tool (axis along +h) moves along the polyline ``uvh`` (m, 3) in a
    setup frame (every move, sampled every ``step_mm``); +inf where it never passes."""
    g = float(xs[1] - xs[0]) if len(xs) > 1 else 1.0
    floor = np.full(len(ys) * len(xs), np.inf)
    uvh = np.asarray(uvh, float).reshape(-1, 3)
    if len(uvh) == 0:
        return floor.reshape(len(ys), len(xs))
    pts = _samples(uvh, step_mm)
    r = cutter.radius_mm
    k = int(math.ceil(r / g))
    nx, ny = len(xs), len(ys)
    fx = (pts[:, 0] - xs[0]) / g
    fy = (pts[:, 1] - ys[0]) / g
    ix0 = np.rint(fx).astype(np.int64)
    iy0 = np.rint(fy).astype(np.int64)
    dx0, dy0 = (ix0 - fx) * g, (iy0 - fy) * g  # the sample's cell centre from the sample
    flat = cutter.kind == "flat" or cutter.corner_radius_mm <= 0
    for oy in range(-k, k + 1):
        for ox in range(-k, k + 1):
            if math.hypot(max(abs(ox) - 0.5, 0.0), max(abs(oy) - 0.5, 0.0)) * g > r:
                continue  # no cell centre this far off is within the radius
            ix, iy = ix0 + ox, iy0 + oy
            d = np.hypot(dx0 + ox * g, dy0 + oy * g)
            ok = (d <= r) & (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
            z = pts[ok, 2] if flat else pts[ok, 2] + tip_profile(cutter, d[ok])
            np.minimum.at(floor, iy[ok] * nx + ix[ok], z)
    return floor.reshape(len(ys), len(xs))


def swept_points(uvh: np.ndarray, points: np.ndarray, cutter, length_mm: float,
                 cell_mm: float | None = 1.0) -> np.ndarray:
    """(k,) bool: the points (k, 3) of a setup frame that the cutting part of ``cutter``
    (its tip surface and ``length_mm`` of flutes above it, axis along +h) surely sweeps
    along the polyline ``uvh`` (m, 3), sampled every ``SAMPLE_MM`` (a point within the
    radius less ``SAMPLE_MM^2 / 8r`` of the path is within the radius of a sample).
    ``cell_mm``: the swept floor is taken on a grid of that size about the points with
    the cutter narrowed by the half diagonal of a cell (fast for many points); None: at
    each point's exact (u, v) from the samples within the radius (k-d trees; for few
    points)."""
    from scipy.spatial import cKDTree

    from sculptor.cam.dropcutter import Cutter

    pts = np.asarray(points, float).reshape(-1, 3)
    out = np.zeros(len(pts), bool)
    uvh = np.asarray(uvh, float).reshape(-1, 3)
    shrink = SAMPLE_MM ** 2 / (8 * cutter.radius_mm)
    shrink += cell_mm * math.sqrt(0.5) if cell_mm else 0.0
    if len(pts) == 0 or len(uvh) == 0 or cutter.radius_mm <= shrink:
        return out
    r = cutter.radius_mm - shrink
    # only the points in the box the moves sweep
    lo = uvh.min(0) - [r + 1.0, r + 1.0, 0.0]
    hi = uvh.max(0) + [r + 1.0, r + 1.0, length_mm + cutter.radius_mm]
    sel = np.flatnonzero(np.all((pts > lo) & (pts < hi), axis=1))
    if len(sel) == 0:
        return out
    pts = pts[sel]
    if cell_mm:
        narrow = Cutter(cutter.kind, r, min(cutter.corner_radius_mm, r))
        xs = np.arange(lo[0], hi[0] + cell_mm, cell_mm)
        ys = np.arange(lo[1], hi[1] + cell_mm, cell_mm)
        floor = swept_floor(uvh, xs, ys, narrow, SAMPLE_MM)
        ix = np.clip(np.rint((pts[:, 0] - xs[0]) / cell_mm).astype(np.int64), 0, len(xs) - 1)
        iy = np.clip(np.rint((pts[:, 1] - ys[0]) / cell_mm).astype(np.int64), 0, len(ys) - 1)
        f = floor[iy, ix]
    else:
        smp = _samples(uvh, SAMPLE_MM)
        pairs = cKDTree(pts[:, :2]).sparse_distance_matrix(cKDTree(smp[:, :2]), r,
                                                           output_type="coo_matrix")
        z = smp[pairs.col, 2] + tip_profile(cutter, np.minimum(pairs.data, cutter.radius_mm))
        f = np.full(len(pts), np.inf)
        np.minimum.at(f, pairs.row, z)
    out[sel] = (pts[:, 2] > f) & (pts[:, 2] <= f + length_mm)
    return out
    r = cutter.radius_mm - shrink
    narrow = Cutter(cutter.kind, r, min(cutter.corner_radius_mm, r))
    # only the points in the box the moves sweep, on a grid about it
    lo = uvh.min(0) - [r + cell_mm, r + cell_mm, 0.0]
    hi = uvh.max(0) + [r + cell_mm, r + cell_mm, length_mm + cutter.radius_mm]
    sel = np.flatnonzero(np.all((pts > lo) & (pts < hi), axis=1))
    if len(sel) == 0:
        return out
    pts = pts[sel]
    xs = np.arange(lo[0], hi[0] + cell_mm, cell_mm)
    ys = np.arange(lo[1], hi[1] + cell_mm, cell_mm)
    floor = swept_floor(uvh, xs, ys, narrow, cell_mm / 2)
    ix = np.clip(np.rint((pts[:, 0] - xs[0]) / cell_mm).astype(np.int64), 0, len(xs) - 1)
    iy = np.clip(np.rint((pts[:, 1] - ys[0]) / cell_mm).astype(np.int64), 0, len(ys) - 1)
    f = floor[iy, ix]
    out[sel] = (pts[:, 2] > f) & (pts[:, 2] <= f + length_mm)
    return out
