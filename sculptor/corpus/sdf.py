"""Signed distance primitives and operators on point arrays (numpy, float32).

Points are passed as a tuple ``P = (x, y, z)`` of three (n,) float32 arrays (structure
of arrays: faster than (n, 3) rows for the many elementwise operations). Every primitive
returns (n,) float32 approximate signed distances (negative inside), in the units of the
points. The compositions are Lipschitz-bounded approximations of true distance, exact on
the zero level set; :func:`sculptor.corpus.generate` normalises the gradient on the
dataset grids.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

Points = tuple[np.ndarray, np.ndarray, np.ndarray]
Sdf = Callable[[Points], np.ndarray]
F32 = np.float32


def rot(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """(3, 3) rotation: roll about x, then pitch about y, then yaw about z (radians)."""
    cx, sx, cy, sy, cz, sz = (math.cos(roll), math.sin(roll), math.cos(pitch),
                              math.sin(pitch), math.cos(yaw), math.sin(yaw))
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def to_local(P: Points, center: Sequence[float], R: np.ndarray | None = None) -> Points:
    """Points in a frame placed at ``center`` with orientation ``R`` (world_from_local)."""
    dx, dy, dz = P[0] - F32(center[0]), P[1] - F32(center[1]), P[2] - F32(center[2])
    if R is None:
        return dx, dy, dz
    r = np.asarray(R, np.float32)
    return (r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz,
            r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz,
            r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz)


def smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth union with blend radius ``k``."""
    if k <= 0:
        return np.minimum(a, b)
    h = np.clip(F32(0.5) + F32(0.5 / k) * (b - a), 0, 1)
    return b + (a - b) * h - F32(k) * h * (1 - h)


def smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth intersection (or subtraction with ``-b``)."""
    return -smin(-a, -b, k)


def sphere(P: Points, c: Sequence[float], r: float) -> np.ndarray:
    x, y, z = to_local(P, c)
    return np.sqrt(x * x + y * y + z * z) - F32(r)


def ellipsoid(P: Points, c: Sequence[float], radii: Sequence[float],
              R: np.ndarray | None = None) -> np.ndarray:
    """Ellipsoid with semi-axes ``radii`` (bound-corrected approximation)."""
    x, y, z = to_local(P, c, R)
    a, b, cc = (F32(v) for v in radii)
    k0 = np.sqrt((x / a) ** 2 + (y / b) ** 2 + (z / cc) ** 2)
    k1 = np.sqrt((x / (a * a)) ** 2 + (y / (b * b)) ** 2 + (z / (cc * cc)) ** 2)
    return k0 * (k0 - 1) / np.maximum(k1, F32(1e-9))


def round_cone(P: Points, a: Sequence[float], b: Sequence[float], ra: float,
               rb: float) -> np.ndarray:
    """Capsule from ``a`` to ``b`` whose radius goes from ``ra`` to ``rb``."""
    a = np.asarray(a, np.float32)
    ba = np.asarray(b, np.float32) - a
    L2 = F32(max(float(ba @ ba), 1e-12))
    x, y, z = P[0] - a[0], P[1] - a[1], P[2] - a[2]
    t = np.clip((x * ba[0] + y * ba[1] + z * ba[2]) / L2, 0, 1)
    dx, dy, dz = x - t * ba[0], y - t * ba[1], z - t * ba[2]
    return np.sqrt(dx * dx + dy * dy + dz * dz) - (F32(ra) + F32(rb - ra) * t)


def capsule(P: Points, a: Sequence[float], b: Sequence[float], r: float) -> np.ndarray:
    return round_cone(P, a, b, r, r)


def round_box(P: Points, c: Sequence[float], half: Sequence[float], r: float,
              R: np.ndarray | None = None) -> np.ndarray:
    """Box of half extents ``half`` with edges rounded by ``r`` (r <= min(half))."""
    x, y, z = to_local(P, c, R)
    qx = np.abs(x) - F32(half[0] - r)
    qy = np.abs(y) - F32(half[1] - r)
    qz = np.abs(z) - F32(half[2] - r)
    out = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2 + np.maximum(qz, 0) ** 2)
    return out + np.minimum(np.maximum(qx, np.maximum(qy, qz)), 0) - F32(r)


def slab_z(P: Points, z0: float, z1: float) -> np.ndarray:
    """Region z0 <= z <= z1."""
    return np.maximum(F32(z0) - P[2], P[2] - F32(z1))


def swept_body(P: Points, zk: Sequence[float], rxk: Sequence[float], ryk: Sequence[float],
               cxk: Sequence[float] | None = None, cyk: Sequence[float] | None = None,
               radial: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
               ) -> np.ndarray:
    """A body swept along z with an elliptical section of radii rx(z), ry(z) (knots,
    linear), centre (cx(z), cy(z)) and an optional radial modulation
    ``radial(theta, z) -> factor`` (folds, lobes). Open at both ends: cap it with
    :func:`slab_z` or unions. Distance is radial, divided by an estimate of its gradient.
    """
    x, y, z = P
    zk = np.asarray(zk, np.float32)
    cx = np.interp(z, zk, np.asarray(cxk, np.float32)).astype(F32) if cxk is not None else 0
    cy = np.interp(z, zk, np.asarray(cyk, np.float32)).astype(F32) if cyk is not None else 0
    qx, qy = x - cx, y - cy
    rho = np.sqrt(qx * qx + qy * qy)
    th = np.arctan2(qy, qx)

    def radius(th_: np.ndarray, z_: np.ndarray) -> np.ndarray:
        rx = np.interp(z_, zk, np.asarray(rxk, np.float32)).astype(F32)
        ry = np.interp(z_, zk, np.asarray(ryk, np.float32)).astype(F32)
        c, s = np.cos(th_), np.sin(th_)
        r = rx * ry / np.sqrt((ry * c) ** 2 + (rx * s) ** 2)
        return r * radial(th_, z_) if radial is not None else r

    eps = F32(1e-3)
    r0 = radius(th, z)
    dr_dth = (radius(th + eps, z) - r0) / eps
    dr_dz = (radius(th, z + eps) - r0) / eps
    g = np.sqrt(1 + (dr_dth / np.maximum(rho, F32(0.6) * r0)) ** 2 + dr_dz ** 2)
    return (rho - r0) / g


def scallops(P: Points, pitch: float, depth: float, dirs: np.ndarray,
             warp: float = 0.35) -> np.ndarray:
    """Gouge marks: material removed by rows of concave cuts (>= 0, max ``depth``).

    Each of the unit ``dirs`` (k, 3) is one family of parallel gouge strokes ``pitch``
    apart; every stroke leaves a parabolic dish, ridges where neighbours meet. The
    families are averaged and gently warped so the marks do not look machine-regular.
    """
    x, y, z = P
    out = np.zeros_like(x)
    inv = F32(1.0 / pitch)
    for i, d in enumerate(np.asarray(dirs, np.float32)):
        u = (x * d[0] + y * d[1] + z * d[2]) * inv
        if warp:
            u = u + F32(warp) * np.sin(F32(0.37 + 0.21 * i) * (x + z) * inv
                                       + F32(1.3 * i))
        f = u - np.floor(u) - F32(0.5)
        out += 1 - 4 * f * f
    return out * F32(depth / len(dirs))
