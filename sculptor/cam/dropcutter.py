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
- ``bull``: disk of radius R - r with a torus of radius r; dropped as a ball of radius r
  sampled over offsets on the inner disk (within ~r/50 of exact at the sampled offsets,
  may sit up to ~0.01 mm low between them; the SDF gouge check covers finishing).

Grids are regular: ``xs`` (nx,) and ``ys`` (ny,) evenly spaced, CL returned as (ny, nx);
points no element reaches get ``-inf``.
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

    def __init__(self, xs: np.ndarray, ys: np.ndarray, mask: np.ndarray | None = None):
        self.mask = None if mask is None else np.asarray(mask, bool).reshape(-1)
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
               fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> None:
    """Call ``fn(elem, qx, qy) -> z`` for every (element, grid point) in the element's
    footprint box ``lo``..``hi`` ((m, 2) each) and max-accumulate z into ``out`` (ny*nx).
    Chunks run on ``THREADS`` threads (numpy releases the GIL), each into its own buffer."""
    ix0, ix1 = grid.ix_range(lo[:, 0], hi[:, 0])
    iy0, iy1 = grid.iy_range(lo[:, 1], hi[:, 1])
    nx = np.maximum(ix1 - ix0 + 1, 0)
    ny = np.maximum(iy1 - iy0 + 1, 0)
    cnt = nx * ny
    keep = np.flatnonzero(cnt > 0)
    if len(keep) == 0:
        return
    cum = np.cumsum(cnt[keep])
    chunks = []
    start = 0
    while start < len(keep):
        base = cum[start - 1] if start else 0
        stop = int(np.searchsorted(cum, base + _CHUNK_PAIRS, side="right"))
        stop = max(stop, start + 1)
        chunks.append(keep[start:stop])
        start = stop

    def run(els, buf):
        for el in els:
            c = cnt[el]
            rep = np.repeat(np.arange(len(el), dtype=np.int32), c)
            k = np.arange(int(c.sum()), dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
            e = el[rep]
            nxe = nx[e]
            iy = k // nxe
            ix = ix0[e] + (k - iy * nxe)
            iy += iy0[e]
            if grid.mask is not None:
                m = grid.mask[iy * grid.nx + ix]
                e, ix, iy = e[m], ix[m], iy[m]
            z = fn(e, grid.xs[ix], grid.ys[iy])
            ok = z > -np.inf
            np.maximum.at(buf, (iy * grid.nx + ix)[ok], z[ok])

    if THREADS <= 1 or len(chunks) < 2:
        run(chunks, out)
        return
    from concurrent.futures import ThreadPoolExecutor

    bufs = [out] + [np.full_like(out, -np.inf) for _ in range(THREADS - 1)]
    with ThreadPoolExecutor(THREADS) as ex:
        list(ex.map(run, [chunks[i::THREADS] for i in range(THREADS)], bufs))
    for b in bufs[1:]:
        np.maximum(out, b, out=out)


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
    # vertices
    def vert(i, qx, qy):
        d2 = (qx - v[i, 0]) ** 2 + (qy - v[i, 1]) ** 2
        return np.where(d2 <= R * R, v[i, 2] + np.sqrt(np.maximum(R * R - d2, 0)) - R, -np.inf)

    _for_pairs(grid, v[:, :2] - R, v[:, :2] + R, out, vert)

    # edges
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
    _for_pairs(grid, lo, hi, out, edge)

    # facets
    _drop_facets(v, f, grid, out, lambda nxy, nz: R * nxy, lambda nz, nxy: R * nz - R)


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
    hi = np.maximum(np.maximum(p0, p1), p2)[:, :2] + shift
    _for_pairs(grid, lo, hi, out, facet)


def _drop_flat(v, f, edges, grid, R, out):
    def vert(i, qx, qy):
        d2 = (qx - v[i, 0]) ** 2 + (qy - v[i, 1]) ** 2
        return np.where(d2 <= R * R, v[i, 2], -np.inf)

    _for_pairs(grid, v[:, :2] - R, v[:, :2] + R, out, vert)
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
               out, edge)

    def shift(nxy, nz):
        h = np.linalg.norm(nxy, axis=1, keepdims=True)
        return np.where(h > 1e-9, R * nxy / np.maximum(h, 1e-12), 0.0)

    _drop_facets(v, f, grid, out, shift, lambda nz, nxy: np.zeros_like(nz))


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
                mask: np.ndarray | None = None) -> np.ndarray:
    """CL tip heights of ``cutter`` dropped along -Z onto the mesh.

    vertices : (n, 3) float mm; faces : (m, 3) int; xs (nx,), ys (ny,) evenly spaced.
    edges : optional (k, 2) unique edges (computed when omitted).
    mask : optional (ny, nx) bool: only these grid points are computed (others -inf).
    Returns (ny, nx) float: tip z, ``-inf`` where the cutter touches nothing.
    """
    v = np.asarray(vertices, float)
    f = np.asarray(faces, np.int64)
    if edges is None:
        edges = _mesh_parts(v, f)
    grid = Grid(xs, ys, mask)
    out = np.full(grid.nx * grid.ny, -np.inf)
    R = float(cutter.radius_mm)
    if cutter.kind == "ball":
        _drop_ball(v, f, edges, grid, R, out)
    elif cutter.kind == "flat":
        _drop_flat(v, f, edges, grid, R, out)
    elif cutter.kind == "bull":
        r = float(cutter.corner_radius_mm)
        rin = R - r
        offs = [(0.0, 0.0)]
        for frac, k in ((1 / 3, 8), (2 / 3, 12), (1.0, max(16, int(math.ceil(2 * math.pi * rin
                                                                              / (r / 4)))))):
            for t in np.linspace(0, 2 * math.pi, k, endpoint=False):
                offs.append((frac * rin * math.cos(t), frac * rin * math.sin(t)))
        for ox, oy in offs:
            sub = np.full_like(out, -np.inf)
            _drop_ball(v - [ox, oy, 0.0], f, edges, grid, r, sub)
            np.maximum(out, sub, out=out)
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
    grid = Grid(cx, cy)
    out = np.full(grid.nx * grid.ny, -np.inf)

    def vert(i, qx, qy):
        d2 = (qx - v[i, 0]) ** 2 + (qy - v[i, 1]) ** 2
        return np.where(d2 <= r * r, v[i, 2], -np.inf)

    _for_pairs(grid, v[:, :2] - r, v[:, :2] + r, out, vert)
    c = out.reshape(grid.ny, grid.nx)
    ix = np.clip(np.rint((xs - cx[0]) / coarse_mm).astype(int), 0, len(cx) - 1)
    iy = np.clip(np.rint((ys - cy[0]) / coarse_mm).astype(int), 0, len(cy) - 1)
    return c[np.ix_(iy, ix)]
