"""Exact, vectorised drop-cutter: the lowest tool-tip height above a triangle mesh.

The cutter is dropped along -Z (of whatever frame the vertices are given in: roughing and
indexed finishing rotate the mesh so that the approach direction becomes -Z). For each
grid point ``(x, y)`` the cutter-location (CL) height is the maximum, over every vertex,
edge and facet of the mesh, of the tip height at which the cutter first touches that
element (the classic vertex / edge / facet drop of OpenCAMLib, done for all elements at
once with numpy instead of one triangle at a time). Triangles are two-sided.

Cutter shapes (radius ``R``):
- ``ball``: a sphere of radius R whose bottom point is the tip.
- ``flat``: a flat disk of radius R at the tip.
- ``bull``: disk of radius R - r with a torus of radius r: exact for facets and vertices,
  edges by bisection of a concave function (to ~1e-7 mm).

Grids are regular: ``xs`` (nx,) and ``ys`` (ny,) evenly spaced, CL returned as (ny, nx);
points no element reaches get ``-inf``.

Culling (same result, a fraction of the work): facets are dropped first; a vertex or
edge whose highest point is not above the lowest CL found so far anywhere in its
footprint box cannot raise the CL there (a cutter touching an element has its tip at most
at the element's highest point) and is skipped, as are elements whose box holds no point
of the mask. The box minimum comes from a sparse table of row minima.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

_CHUNK_PAIRS = 1_000_000
THREADS = max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class Cutter:
    """A rotary cutter's tip shape: ``kind`` ball|flat|bull, radius_mm, corner_radius_mm."""

    kind: str
    radius_mm: float
    corner_radius_mm: float = 0.0

    @classmethod
    def ball(cls, r: float) -> "Cutter":
        return cls("ball", r, r)

    @classmethod
    def flat(cls, r: float) -> "Cutter":
        return cls("flat", r, 0.0)


class Grid:
    """A regular grid: xs = x0 + i dx (nx), ys = y0 + j dy (ny)."""

    def __init__(self, xs: np.ndarray, ys: np.ndarray, mask: np.ndarray | None = None,
                 cull: bool = True):
        self.mask = None if mask is None else np.asarray(mask, bool).reshape(-1)
        self.cull = cull
        self.xs = np.asarray(xs, float)
        self.ys = np.asarray(ys, float)
        self.nx, self.ny = len(self.xs), len(self.ys)
        self.x0 = self.xs[0] if self.nx else 0.0
        self.y0 = self.ys[0] if self.ny else 0.0
        self.dx = (self.xs[1] - self.xs[0]) if self.nx > 1 else 1.0
        self.dy = (self.ys[1] - self.ys[0]) if self.ny > 1 else 1.0

    def ix_range(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.ceil((lo - self.x0) / self.dx - 1e-9).astype(np.int64)
        b = np.floor((hi - self.x0) / self.dx + 1e-9).astype(np.int64)
        return np.clip(a, 0, self.nx), np.clip(b, -1, self.nx - 1)

    def iy_range(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = np.ceil((lo - self.y0) / self.dy - 1e-9).astype(np.int64)
        b = np.floor((hi - self.y0) / self.dy + 1e-9).astype(np.int64)
        return np.clip(a, 0, self.ny), np.clip(b, -1, self.ny - 1)


def _for_pairs(grid: Grid, lo: np.ndarray, hi: np.ndarray, out: np.ndarray,
               fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
               ztop: np.ndarray | None = None, floor_arg: bool = False) -> None:
    """Call ``fn(elem, qx, qy) -> z`` for every (element, grid point) in the element's
    footprint box ``lo``..``hi`` ((m, 2) each) and max-accumulate z into ``out`` (ny*nx).

    Elements that cannot raise ``out`` are skipped first: those whose box holds no grid
    point of the mask, and, given ``ztop`` (m,) (an upper bound of what ``fn`` returns for
    the element), those with ``ztop`` <= the lowest ``out`` over the mask points of their
    box (the result is the same: a max does not change by what lies below it), and then
    the pairs whose grid point already has ``out`` >= ``ztop``. With ``floor_arg`` fn gets
    the current ``out`` of each pair's grid point as a fourth argument (to skip more).
    Chunks run on ``THREADS`` threads (numpy releases the GIL), each into its own buffer."""
    ix0, ix1 = grid.ix_range(lo[:, 0], hi[:, 0])
    iy0, iy1 = grid.iy_range(lo[:, 1], hi[:, 1])
    nx = np.maximum(ix1 - ix0 + 1, 0)
    ny = np.maximum(iy1 - iy0 + 1, 0)
    cnt = nx * ny
    keep = np.flatnonzero(cnt > 0)
    if len(keep) and grid.mask is not None and grid.cull:
        keep = keep[_box_any(grid.mask.reshape(grid.ny, grid.nx), ix0[keep], ix1[keep],
                             iy0[keep], iy1[keep])]
    if len(keep) and ztop is not None and grid.cull:
        vals = out if grid.mask is None else np.where(grid.mask, out, np.inf)
        low = _box_min(vals.reshape(grid.ny, grid.nx), ix0[keep], ix1[keep], iy0[keep],
                       iy1[keep])
        keep = keep[ztop[keep] > low]
    if len(keep) == 0:
        return
    pair_cull = ztop is not None and grid.cull
    cum = np.cumsum(cnt[keep])
    chunks = []
    start = 0
    while start < len(keep):
        base = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, base + _CHUNK_PAIRS, side="right"))
        stop = max(stop, start + 1)
        chunks.append(keep[start:stop])
        start = stop

    base = iy0 * grid.nx + ix0  # flat index of each box's first point

    def run(els, buf):
        for el in els:
            c = cnt[el]
            e = np.repeat(el, c)
            k = np.arange(int(c.sum()), dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
            nxe = nx[e]
            row = k // nxe
            at = base[e] + k + row * (grid.nx - nxe)  # k-th point of e's box, row-major
            m = None
            if grid.mask is not None:
                m = grid.mask[at]
            if pair_cull:  # out only grows: a stale read culls less, never wrongly
                m = ztop[e] > out[at] if m is None else m & (ztop[e] > out[at])
            if m is not None:
                e, at = e[m], at[m]
            iy = at // grid.nx
            qx, qy = grid.xs[at - iy * grid.nx], grid.ys[iy]
            if floor_arg:
                z = fn(e, qx, qy, out[at] if pair_cull else np.full(len(at), -np.inf))
            else:
                z = fn(e, qx, qy)
            ok = z > -np.inf
            np.maximum.at(buf, at[ok], z[ok])

    if THREADS <= 1 or len(chunks) < 2:
        run(chunks, out)
        return
    from concurrent.futures import ThreadPoolExecutor

    bufs = [out] + [np.full_like(out, -np.inf) for _ in range(THREADS - 1)]
    with ThreadPoolExecutor(THREADS) as ex:
        list(ex.map(run, [chunks[i::THREADS] for i in range(THREADS)], bufs))
    for b in bufs[1:]:
        np.maximum(out, b, out=out)


def _box_any(mask: np.ndarray, ix0, ix1, iy0, iy1) -> np.ndarray:
    """(m,) bool: the boxes [ix0, ix1] x [iy0, iy1] (non-empty) hold a True of ``mask``
    (ny, nx) (summed-area table)."""
    sat = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.int64)
    np.cumsum(np.cumsum(mask, axis=0), axis=1, out=sat[1:, 1:])
    n = sat[iy1 + 1, ix1 + 1] - sat[iy0, ix1 + 1] - sat[iy1 + 1, ix0] + sat[iy0, ix0]
    return n > 0


_BOX_MIN_BYTES = 200_000_000
_BISECT = 20  # bull edge contact: bisection steps (12 mm of segment -> 1e-5 mm)
_ZTOP_MM = 1e-6  # upper bounds are raised by this (rounding of the contact formulas)


def _box_min(vals: np.ndarray, ix0, ix1, iy0, iy1) -> np.ndarray:
    """(m,) the minimum of ``vals`` (ny, nx) over the boxes [ix0, ix1] x [iy0, iy1]
    (non-empty): a sparse table of row minima over 2^l columns, then the rows of each box
    one by one. Boxes wider than the table allows get -inf (no culling)."""
    ny, nx = vals.shape
    w = ix1 - ix0 + 1
    levels = int(np.log2(max(int(w.max()), 1))) + 1
    levels = max(1, min(levels, _BOX_MIN_BYTES // max(vals.nbytes, 1)))
    table = np.empty((levels, ny, nx))
    table[0] = vals
    for lv in range(1, levels):
        h = 1 << (lv - 1)
        table[lv] = table[lv - 1]
        np.minimum(table[lv, :, :-h], table[lv - 1, :, h:], out=table[lv, :, :-h])
    lv = np.minimum(np.log2(w).astype(np.int64), levels - 1)
    span = 1 << lv
    wide = w > 2 * span
    b = ix1 - span + 1
    low = np.full(len(w), np.inf)
    h = iy1 - iy0 + 1
    for dy in range(int(h.max())):
        r = np.flatnonzero(h > dy)
        y = iy0[r] + dy
        m = np.minimum(table[lv[r], y, ix0[r]], table[lv[r], y, b[r]])
        low[r] = np.minimum(low[r], m)
    low[wide] = -np.inf
    return low


def _mesh_parts(v: np.ndarray, f: np.ndarray):
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    return e


def _edges_xy(v, edges):
    """Edges that are not vertical: ends a, b, unit xy direction u, xy length L and slope
    m (dz per mm of xy)."""
    a, b = v[edges[:, 0]], v[edges[:, 1]]
    exy = b[:, :2] - a[:, :2]
    L = np.linalg.norm(exy, axis=1)
    ok = L > 1e-9
    a, b, exy, L = a[ok], b[ok], exy[ok], L[ok]
    return a, b, exy / L[:, None], L, (b[:, 2] - a[:, 2]) / L


def _drop_ball(v, f, edges, grid, R, out):
    # facets first, then vertices and edges: what the facets give lets _for_pairs skip
    # most vertices and edges (a cutter touching an element has its tip at most at the
    # element's highest point)
    _drop_facets(v, f, grid, out, lambda nxy, nz: R * nxy, lambda nz, nxy: R * nz - R)
    _drop_vertices(v, grid, R, out, lambda d2: np.sqrt(np.maximum(R * R - d2, 0)), R)
    _ball_edges(v, edges, grid, R, out)


def _drop_vertices(v, grid, R, out, lift, drop: float):
    """Vertex contact of a cutter of radius R: tip = v_z + lift(d^2) - drop within d <= R
    (d the vertex's xy distance from the axis)."""
    def vert(i, qx, qy):
        d2 = (qx - v[i, 0]) ** 2 + (qy - v[i, 1]) ** 2
        return np.where(d2 <= R * R, v[i, 2] + lift(d2) - drop, -np.inf)

    _for_pairs(grid, v[:, :2] - R, v[:, :2] + R, out, vert, v[:, 2] + _ZTOP_MM)


def _ball_edges(v, edges, grid, R, out):
    a, b, u, L, m = _edges_xy(v, edges)
    sq = np.sqrt(1 + m * m)

    def edge(i, qx, qy):
        dx, dy = qx - a[i, 0], qy - a[i, 1]
        s = dx * u[i, 0] + dy * u[i, 1]
        d = dx * u[i, 1] - dy * u[i, 0]
        r2 = R * R - d * d
        rp = np.sqrt(np.maximum(r2, 0))
        sc = s + rp * m[i] / sq[i]
        good = (r2 >= 0) & (sc >= 0) & (sc <= L[i])
        return np.where(good, a[i, 2] + m[i] * s + rp * sq[i] - R, -np.inf)

    lo = np.minimum(a[:, :2], b[:, :2]) - R
    hi = np.maximum(a[:, :2], b[:, :2]) + R
    _for_pairs(grid, lo, hi, out, edge, np.maximum(a[:, 2], b[:, 2]) + _ZTOP_MM)


def _drop_facets(v, f, grid, out, shift_fn, dz_fn):
    """Facet contact: the contact point P_xy = Q - shift(n) lies in the triangle; tip z =
    plane(P_xy) + dz(n)."""
    p0, p1, p2 = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    n = np.cross(p1 - p0, p2 - p0)
    nn = np.linalg.norm(n, axis=1)
    ok = nn > 1e-12
    n = n[ok] / nn[ok, None]
    p0, p1, p2 = p0[ok], p1[ok], p2[ok]
    n = np.where(n[:, 2:3] < 0, -n, n)
    ok = n[:, 2] > 1e-6
    n, p0, p1, p2 = n[ok], p0[ok], p1[ok], p2[ok]
    nxy = n[:, :2]
    shift = shift_fn(nxy, n[:, 2])
    dz = dz_fn(n[:, 2], nxy)
    # 2D barycentric setup
    e1 = p1[:, :2] - p0[:, :2]
    e2 = p2[:, :2] - p0[:, :2]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    good = np.abs(det) > 1e-14
    det = np.where(good, det, 1.0)
    gx = -n[:, 0] / n[:, 2]
    gy = -n[:, 1] / n[:, 2]

    def facet(i, qx, qy):
        px = qx - shift[i, 0] - p0[i, 0]
        py = qy - shift[i, 1] - p0[i, 1]
        b1 = (px * e2[i, 1] - py * e2[i, 0]) / det[i]
        b2 = (e1[i, 0] * py - e1[i, 1] * px) / det[i]
        inside = (b1 >= -1e-9) & (b2 >= -1e-9) & (b1 + b2 <= 1 + 1e-9) & good[i]
        z = p0[i, 2] + gx[i] * px + gy[i] * py + dz[i]
        return np.where(inside, z, -np.inf)

    lo = np.minimum(np.minimum(p0, p1), p2)[:, :2] + shift
    hi = np.maximum(np.maximum(p0, p1), p2)
    top = hi[:, 2] + np.maximum(dz, 0.0) + _ZTOP_MM
    _for_pairs(grid, lo, hi[:, :2] + shift, out, facet, top)


def _drop_flat(v, f, edges, grid, R, out):
    def shift(nxy, nz):
        h = np.linalg.norm(nxy, axis=1, keepdims=True)
        return np.where(h > 1e-9, R * nxy / np.maximum(h, 1e-12), 0.0)

    _drop_facets(v, f, grid, out, shift, lambda nz, nxy: np.zeros_like(nz))
    _drop_vertices(v, grid, R, out, lambda d2: 0.0, 0.0)
    _flat_edges(v, edges, grid, R, out)


def _flat_edges(v, edges, grid, R, out):
    a, b, u, L, m = _edges_xy(v, edges)

    def edge(i, qx, qy):
        dx, dy = qx - a[i, 0], qy - a[i, 1]
        s = dx * u[i, 0] + dy * u[i, 1]
        d = dx * u[i, 1] - dy * u[i, 0]
        r2 = R * R - d * d
        sc = s + np.sign(m[i]) * np.sqrt(np.maximum(r2, 0))
        good = (r2 >= 0) & (sc >= 0) & (sc <= L[i])
        return np.where(good, a[i, 2] + m[i] * sc, -np.inf)

    _for_pairs(grid, np.minimum(a[:, :2], b[:, :2]) - R, np.maximum(a[:, :2], b[:, :2]) + R,
               out, edge, np.maximum(a[:, 2], b[:, 2]) + _ZTOP_MM)


def _drop_bull(v, f, edges, grid, R, r, out):
    """Bull nose: a flat disk of radius R - r at the tip and a torus of tube radius r (the
    union of the balls of radius r centred on the ring of radius R - r, r above the tip).
    Facets exactly (the torus touches a plane at the ring point on the plane's uphill
    side), vertices at the cutter's profile height, edges as the maximum of that profile
    drop over the segment (concave: bisection to ~1e-7 mm)."""
    rin = R - r
    if rin <= 1e-9:
        _drop_ball(v, f, edges, grid, R, out)
        return

    def shift(nxy, nz):
        h = np.linalg.norm(nxy, axis=1, keepdims=True)
        return np.where(h > 1e-9, rin * nxy / np.maximum(h, 1e-12), 0.0) + r * nxy

    _drop_facets(v, f, grid, out, shift, lambda nz, nxy: r * nz - r)
    _drop_vertices(v, grid, R, out, lambda d2: np.sqrt(np.maximum(
        r * r - np.maximum(np.sqrt(d2) - rin, 0.0) ** 2, 0.0)), r)
    a, b, u, L, m = _edges_xy(v, edges)

    def drop(i, qx, qy, floor):
        """Torus (with its flat disk) on the segment: the tip where it touches point s
        of the segment is h(s) = z(s) - r + sqrt(r^2 - max(rho(s) - rin, 0)^2), rho(s) the
        xy distance from the axis (<= R): concave in s (a concave non-increasing profile
        of the convex rho, plus the linear z), so its maximum is where h' changes sign
        (bisection). Pairs that cannot rise above ``floor`` are skipped."""
        dx, dy = qx - a[i, 0], qy - a[i, 1]
        s0 = dx * u[i, 0] + dy * u[i, 1]
        d0 = dx * u[i, 1] - dy * u[i, 0]
        half = np.sqrt(np.maximum(R * R - d0 * d0, 0.0))
        lo = np.maximum(s0 - half, 0.0)
        hi = np.minimum(s0 + half, L[i])
        mi = m[i]
        # no higher than the segment's top within R, lowered by the profile at |d0|
        dd = np.maximum(np.abs(d0) - rin, 0.0)
        top = a[i, 2] + mi * np.where(mi > 0, hi, lo) - r + np.sqrt(
            np.maximum(r * r - dd * dd, 0.0)) + _ZTOP_MM
        z = np.full(len(i), -np.inf)
        go = np.flatnonzero((d0 * d0 <= R * R) & (lo <= hi) & (top > floor))
        if len(go) == 0:
            return z
        s0, d2, lo, hi, mi = s0[go], d0[go] ** 2, lo[go], hi[go], mi[go]

        def h(s):
            t = np.maximum(np.sqrt((s - s0) ** 2 + d2) - rin, 0.0)
            return mi * s + np.sqrt(np.maximum(r * r - t * t, 0.0))

        for _ in range(_BISECT):
            mid = 0.5 * (lo + hi)
            rho = np.sqrt((mid - s0) ** 2 + d2)
            t = np.maximum(rho - rin, 0.0)
            slope = mi - t / np.sqrt(np.maximum(r * r - t * t, 1e-30)) * (mid - s0) \
                / np.maximum(rho, 1e-12)
            up = slope > 0
            lo = np.where(up, mid, lo)
            hi = np.where(up, hi, mid)
        z[go] = a[i[go], 2] + np.maximum(h(lo), h(hi)) - r
        return z

    lo = np.minimum(a[:, :2], b[:, :2]) - R
    hi = np.maximum(a[:, :2], b[:, :2]) + R
    _for_pairs(grid, lo, hi, out, drop, np.maximum(a[:, 2], b[:, 2]) + _ZTOP_MM,
               floor_arg=True)


class Adjacency:
    """Edges of a closed mesh with their two faces and convexity (from trimesh), so the
    ball drop can skip valley edges: where both faces face up and meet concavely, the
    ball touching the edge already touches a face, and the facet drop gives that height."""

    def __init__(self, mesh):
        self.edges = np.asarray(mesh.face_adjacency_edges, np.int64)
        self.pairs = np.asarray(mesh.face_adjacency, np.int64)
        self.convex = np.asarray(mesh.face_adjacency_convex, bool)
        self.face_normals = np.asarray(mesh.face_normals, float)

    def ball_edges(self, setup_from_piece: np.ndarray | None = None) -> np.ndarray:
        nz = self.face_normals @ (np.asarray(setup_from_piece)[2] if setup_from_piece
                                  is not None else np.array([0.0, 0, 1]))
        up = (nz[self.pairs[:, 0]] > 1e-9) & (nz[self.pairs[:, 1]] > 1e-9)
        return self.edges[~(up & ~self.convex)]


def drop_cutter(vertices: np.ndarray, faces: np.ndarray, cutter: Cutter, xs: np.ndarray,
                ys: np.ndarray, edges: np.ndarray | None = None,
                mask: np.ndarray | None = None, cull: bool = True) -> np.ndarray:
    """CL tip heights of ``cutter`` dropped along -Z onto the mesh.

    vertices : (n, 3) float mm; faces : (m, 3) int; xs (nx,), ys (ny,) evenly spaced.
    edges : optional (k, 2) unique edges (computed when omitted).
    mask : optional (ny, nx) bool: only these grid points are computed (others -inf).
    cull : skip the elements that cannot raise the CL (same result; False evaluates every
    element everywhere, for checking).
    Returns (ny, nx) float: tip z, ``-inf`` where the cutter touches nothing.
    """
    v = np.asarray(vertices, float)
    f = np.asarray(faces, np.int64)
    if edges is None:
        edges = _mesh_parts(v, f)
    grid = Grid(xs, ys, mask, cull)
    out = np.full(grid.nx * grid.ny, -np.inf)
    R = float(cutter.radius_mm)
    if cutter.kind == "ball":
        _drop_ball(v, f, edges, grid, R, out)
    elif cutter.kind == "flat":
        _drop_flat(v, f, edges, grid, R, out)
    elif cutter.kind == "bull":
        _drop_bull(v, f, edges, grid, R, float(cutter.corner_radius_mm), out)
    else:
        raise ValueError(f"unknown cutter kind {cutter.kind!r}")
    return out.reshape(grid.ny, grid.nx)


def frame_from_direction(f: np.ndarray) -> np.ndarray:
    """(3, 3) rotation ``setup_from_piece`` whose third row is ``f`` (unit approach-from
    direction: the tool moves along -f); rows 1, 2 complete a right-handed frame, with the
    first row horizontal when possible (u across, v roughly up)."""
    f = np.asarray(f, float)
    f = f / np.linalg.norm(f)
    up = np.array([0.0, 0.0, 1.0]) if abs(f[2]) < 0.95 else np.array([0.0, 1.0, 0.0])
    u = np.cross(up, f)
    u /= np.linalg.norm(u)
    w = np.cross(f, u)
    return np.stack([u, w, f])


def holder_floor(vertices: np.ndarray, faces: np.ndarray, radius_mm: float, xs: np.ndarray,
                 ys: np.ndarray, coarse_mm: float = 6.0, edges: np.ndarray | None = None
                 ) -> np.ndarray:
    """(ny, nx) a height the bottom of a flat disk of ``radius_mm`` (a holder) centred on
    each grid point can be lowered to without touching the mesh -- conservative (never
    lower than the exact drop) and cheap: only vertices are dropped, on a coarse grid,
    with the disk grown by the longest edge (a triangle's highest point is a vertex within
    one edge of any of its points) and by half the coarse cell's diagonal."""
    v = np.asarray(vertices, float)
    f = np.asarray(faces, np.int64)
    if edges is None:
        edges = _mesh_parts(v, f)
    emax = float(np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1).max())
    xs = np.asarray(xs, float)
    ys = np.asarray(ys, float)
    cx = np.arange(xs[0], xs[-1] + coarse_mm, coarse_mm)
    cy = np.arange(ys[0], ys[-1] + coarse_mm, coarse_mm) if len(ys) > 1 else ys[:1]
    r = radius_mm + emax + coarse_mm * math.sqrt(2) / 2
    c = _disk_top(v, cx, cy, coarse_mm, r)
    ix = np.clip(np.rint((xs - cx[0]) / coarse_mm).astype(int), 0, len(cx) - 1)
    iy = np.clip(np.rint((ys - cy[0]) / coarse_mm).astype(int), 0, len(cy) - 1)
    return c[np.ix_(iy, ix)]


def _disk_top(v: np.ndarray, xs: np.ndarray, ys: np.ndarray, step: float, r: float
              ) -> np.ndarray:
    """(ny, nx): the highest z of the vertices v (n, 3) within xy distance ``r`` of each
    grid point (-inf: none), on the grid xs (nx,), ys (ny,) ``step`` apart.

    Each vertex is binned to its nearest grid point c (|v - c| <= h, h half the cell's
    diagonal). A grid point g with |g - c| <= r - h has every vertex of c's cell within r:
    those come from a max filter of the cells' highest z over that disk; only cells with
    r - h < |g - c| <= r + h are decided vertex by vertex (the exact test d^2 <= r^2), and
    vertices off the grid by the generic loop. Same result as testing every vertex."""
    from scipy import ndimage

    grid = Grid(xs, ys)
    tol = 1e-9 * (1.0 + step)
    jx = np.rint((v[:, 0] - xs[0]) / step).astype(np.int64)
    jy = np.rint((v[:, 1] - ys[0]) / step).astype(np.int64)
    near = (jx >= 0) & (jx < grid.nx) & (jy >= 0) & (jy < grid.ny)
    jx, jy = np.where(near, jx, 0), np.where(near, jy, 0)
    near &= (np.abs(v[:, 0] - xs[jx]) <= step / 2 + tol) & \
        (np.abs(v[:, 1] - ys[jy]) <= step / 2 + tol)
    out = np.full(grid.nx * grid.ny, -np.inf)
    far = np.flatnonzero(~near)
    if len(far):
        def vert(i, qx, qy):
            e = far[i]
            d2 = (qx - v[e, 0]) ** 2 + (qy - v[e, 1]) ** 2
            return np.where(d2 <= r * r, v[e, 2], -np.inf)

        _for_pairs(grid, v[far, :2] - r, v[far, :2] + r, out, vert)
    idx = np.flatnonzero(near)
    if len(idx) == 0:
        return out.reshape(grid.ny, grid.nx)
    h = step * math.sqrt(2) / 2 + tol
    top = np.full((grid.ny, grid.nx), -np.inf)
    np.maximum.at(top, (jy[idx], jx[idx]), v[idx, 2])
    k = int(math.ceil((r + h) / step))
    ox, oy = np.meshgrid(np.arange(-k, k + 1), np.arange(-k, k + 1))
    dist = np.hypot(ox, oy) * step
    inner = dist <= r - h - tol
    if inner.any():
        inside = ndimage.maximum_filter(top, footprint=inner, mode="constant", cval=-np.inf)
        np.maximum(out, inside.reshape(-1), out=out)
    ring = ~inner & (dist <= r + h + tol)
    rx, ry = ox[ring], oy[ring]
    for part in np.array_split(idx, max(1, len(idx) * len(rx) // _CHUNK_PAIRS)):
        gx = jx[part, None] + rx[None]
        gy = jy[part, None] + ry[None]
        ok = (gx >= 0) & (gx < grid.nx) & (gy >= 0) & (gy < grid.ny)
        e = np.broadcast_to(part[:, None], gx.shape)[ok]
        gx, gy = gx[ok], gy[ok]
        hit = (xs[gx] - v[e, 0]) ** 2 + (ys[gy] - v[e, 1]) ** 2 <= r * r
        np.maximum.at(out, gy[hit] * grid.nx + gx[hit], v[e[hit], 2])
    return out.reshape(grid.ny, grid.nx)
