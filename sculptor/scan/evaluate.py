"""Scoring a registration against ground truth (tests and benchmarks).

A registration is only defined up to one rigid motion of the whole set, so the
estimated poses are first brought onto the true ones by the single rigid motion that
best aligns all scans' points together (Kabsch); what is left per scan is its relative
pose error: the rotation angle and the RMS displacement of its own points.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation


def read_stanford_conf(path: str | Path, scale: float = 1.0) -> dict[str, np.ndarray]:
    """``bmesh NAME tx ty tz qx qy qz qw`` lines -> {NAME: world_from_scan (4, 4)}.

    Stanford's convention: world = R(q)^T p + t with q read as (x, y, z, w).
    ``scale`` multiplies the translations (1000 for metres -> mm).
    """
    out = {}
    for line in Path(path).read_text().splitlines():
        p = line.split()
        if len(p) == 9 and p[0] == "bmesh":
            m = np.eye(4)
            m[:3, :3] = Rotation.from_quat([float(x) for x in p[5:9]]).as_matrix().T
            m[:3, 3] = np.array([float(x) for x in p[2:5]]) * scale
            out[p[1]] = m
    return out


def random_motion(rng: np.random.Generator, max_shift: float) -> np.ndarray:
    """A random rigid motion (4, 4): uniform rotation, translation uniform in
    [-max_shift, max_shift]^3 (units of the caller). Draws one integer, then three floats
    from ``rng``, so a seeded sequence of motions is reproducible."""
    m = np.eye(4)
    m[:3, :3] = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    m[:3, 3] = rng.uniform(-max_shift, max_shift, 3)
    return m


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """4x4 rigid dst_from_src minimising the squared distances of paired points (n, 3)."""
    cs, cd = src.mean(axis=0), dst.mean(axis=0)
    u, _, vt = np.linalg.svd((src - cs).T @ (dst - cd))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1, 1, d]) @ u.T
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = cd - r @ cs
    return m


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:3, :3].T + m[:3, 3]


def relative_pose_errors(est: list[np.ndarray], true: list[np.ndarray],
                         points: list[np.ndarray], sample: int = 2000
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Per-scan (rotation error deg (n,), RMS point displacement (n,)) after the best gauge.

    est, true : world_from_scan (4, 4) per scan (same units as points)
    points : (n_i, 3) each scan's points in its own input frame
    """
    rng = np.random.default_rng(0)
    pts = [p[rng.choice(len(p), min(sample, len(p)), replace=False)] for p in points]
    src = np.concatenate([apply(e, p) for e, p in zip(est, pts)])
    dst = np.concatenate([apply(t, p) for t, p in zip(true, pts)])
    gauge = _kabsch(src, dst)  # true_world_from_est_world
    rot, disp = [], []
    for e, t, p in zip(est, true, pts):
        err = gauge @ e @ np.linalg.inv(t)
        rot.append(np.degrees(Rotation.from_matrix(err[:3, :3]).magnitude()))
        q = apply(t, p)
        disp.append(np.sqrt(np.mean(np.sum((apply(err, q) - q) ** 2, axis=1))))
    return np.array(rot), np.array(disp)
