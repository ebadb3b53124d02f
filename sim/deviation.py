"""Carved surface and its deviation from the design.

The carved surface is the marching-cubes iso-surface of the occupancy grid (level 0.5,
between voxel centres), lightly Taubin-smoothed to take the voxel staircase off. Its
deviation is the signed distance of each vertex to the design (open3d ray casting):
positive outside the design (rest material left), negative inside (a gouge).
Because the carved surface is known only to the grid, a deviation within ``res_mm / 2``
of zero is below what the simulation can resolve; the gouge verdict allows for it.
"""

from __future__ import annotations

import numpy as np
import trimesh

DEFAULT_TOLERANCE_MM = 0.5


def carved_mesh(occ: np.ndarray, origin: np.ndarray, res: float, smooth: int = 4,
                factor: int = 1) -> trimesh.Trimesh:
    """(nx, ny, nz) bool occupancy -> closed triangle mesh in the workpiece frame (mm).

    factor > 1 averages factor^3 blocks first (a lighter mesh for the preview page).
    """
    from skimage.measure import marching_cubes

    idx = np.argwhere(occ.any((1, 2))), np.argwhere(occ.any((0, 2))), np.argwhere(occ.any((0, 1)))
    if any(len(i) == 0 for i in idx):
        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64), process=False)
    f_ = max(1, int(factor))
    lo = np.array([int(i.min()) for i in idx]) // f_ * f_
    hi = np.array([int(i.max()) + 1 for i in idx])
    hi = lo + -(-(hi - lo) // f_) * f_
    crop = occ[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    if f_ > 1:
        crop = np.pad(crop, [(0, int(h - l - s)) for h, l, s in zip(hi, lo, crop.shape)])
        sx, sy, sz = (s // f_ for s in crop.shape)
        vol = crop.reshape(sx, f_, sy, f_, sz, f_).mean((1, 3, 5), dtype=np.float32)
    else:
        vol = crop.astype(np.float32)
    vol = np.pad(vol, 1)
    v, f, _, _ = marching_cubes(vol, level=0.5, allow_degenerate=False)
    # padded index p -> block index p - 1; block b's centre at lo + (b + .5) factor voxels
    v = ((v - 1 + 0.5) * f_ + lo) * res + np.asarray(origin, float)
    mesh = trimesh.Trimesh(v, f[:, ::-1], process=False)
    if smooth:
        trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=0.53, iterations=smooth)
    return mesh


def smoothed(mesh: trimesh.Trimesh, iterations: int = 4) -> trimesh.Trimesh:
    """A Taubin-smoothed copy of a :func:`carved_mesh` made with ``smooth=0`` (the same
    surface as ``carved_mesh(..., smooth=iterations)`` without a second marching cubes)."""
    out = mesh.copy()
    if iterations and len(out.faces):
        trimesh.smoothing.filter_taubin(out, lamb=0.5, nu=0.53, iterations=iterations)
    return out


class DesignDistance:
    """Signed distance (mm) to a design mesh: + outside, - inside."""

    def __init__(self, design: trimesh.Trimesh) -> None:
        import open3d as o3d

        m = o3d.geometry.TriangleMesh()
        m.vertices = o3d.utility.Vector3dVector(np.asarray(design.vertices, float))
        m.triangles = o3d.utility.Vector3iVector(np.asarray(design.faces, np.int32))
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(m))
        self._o3c = o3d.core

    def __call__(self, points: np.ndarray, chunk: int = 2_000_000) -> np.ndarray:
        """points (n, 3) mm -> (n,) float signed distance."""
        pts = np.asarray(points, np.float32).reshape(-1, 3)
        out = np.empty(len(pts), np.float32)
        for s in range(0, len(pts), chunk):
            t = self._o3c.Tensor(pts[s:s + chunk])
            out[s:s + chunk] = self._scene.compute_signed_distance(t).numpy()
        return out


def deviation_figures(mesh: trimesh.Trimesh, d: np.ndarray, rest_voxels: int, res: float,
                      tol_mm: float) -> dict:
    """Figures of the carved surface's deviation.

    mesh : carved mesh, d : (n_vertices,) signed distance to the design, rest_voxels:
    material voxels further than ``tol_mm`` outside the design.
    """
    if len(d) == 0:
        return {"max_gouge_mm": None, "rest_max_mm": None}
    face_d = d[mesh.faces].mean(1)
    area = mesh.area_faces
    within = np.abs(face_d) <= tol_mm
    ad = np.abs(d)
    return {
        "tolerance_mm": tol_mm,
        "max_gouge_mm": round(float(max(0.0, -d.min())), 3),
        "gouged_area_mm2": round(float(area[face_d < -max(tol_mm, res / 2)].sum()), 1),
        "rest_max_mm": round(float(max(0.0, d.max())), 3),
        "rest_p95_mm": round(float(max(0.0, np.percentile(d, 95))), 3),
        "rest_volume_above_tol_mm3": round(float(rest_voxels * res ** 3), 1),
        "mean_abs_mm": round(float(ad.mean()), 3),
        "p99_abs_mm": round(float(np.percentile(ad, 99)), 3),
        "area_within_tol_ratio": round(float(area[within].sum() / max(area.sum(), 1e-9)), 4),
        "carved_area_mm2": round(float(area.sum()), 1),
    }


def rest_voxel_count(occ_flat_idx_centres, dist_fn: DesignDistance, tol_mm: float) -> int:
    """How many of the given material voxel centres (m, 3) lie more than tol outside."""
    d = dist_fn(occ_flat_idx_centres)
    return int((d > tol_mm).sum())
