"""A virtual range scanner: partial point clouds of a mesh, like one scanning session."""

from __future__ import annotations

import numpy as np
from sculptor.scan.evaluate import random_motion


def virtual_scan(mesh, n_views: int = 6, seed: int = 0, noise_mm: float = 0.2,
                 pixels: int = 256, return_poses: bool = False):
    """Partial scans of ``mesh`` (trimesh.Trimesh, mm, +Z up) seen from ``n_views``
    viewpoints around it (even azimuths, alternating 15/35 degree elevation), each hit
    point jittered by ``noise_mm`` along its ray, and each scan then moved by its own
    random rigid motion (unknown pose, as a hand-held or turntable session gives).

    Returns n_views arrays (n_i, 3) float64 in mm; with ``return_poses`` also the true
    poses, a list of (4, 4) ``scan_from_mesh`` (scan points = mesh-frame points moved by it),
    as ``(scans, poses)``.
    """
    import open3d as o3d

    rng = np.random.default_rng(seed)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
    centre = mesh.bounds.mean(axis=0)
    radius = float(np.linalg.norm(mesh.extents)) * 1.5
    scans, poses = [], []
    for k in range(n_views):
        az = 2 * np.pi * k / n_views + rng.uniform(-0.1, 0.1)
        el = np.radians(15 if k % 2 == 0 else 35)
        eye = centre + radius * np.array([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el),
                                          np.sin(el)])
        rays = o3d.t.geometry.RaycastingScene.create_rays_pinhole(
            fov_deg=45.0, center=o3d.core.Tensor(centre.astype(np.float32)),
            eye=o3d.core.Tensor(eye.astype(np.float32)),
            up=o3d.core.Tensor(np.array([0, 0, 1], np.float32)),
            width_px=pixels, height_px=pixels)
        hit = scene.cast_rays(rays)
        t = hit["t_hit"].numpy().ravel()
        r = rays.numpy().reshape(-1, 6)
        ok = np.isfinite(t)
        d = r[ok, 3:] / np.linalg.norm(r[ok, 3:], axis=1, keepdims=True)
        pts = r[ok, :3] + d * (t[ok, None] * np.linalg.norm(r[ok, 3:], axis=1, keepdims=True))
        pts = pts + d * rng.normal(0, noise_mm, (len(pts), 1))
        scan_from_mesh = random_motion(rng, 200.0)
        scans.append(pts.astype(np.float64) @ scan_from_mesh[:3, :3].T + scan_from_mesh[:3, 3])
        poses.append(scan_from_mesh)
    return (scans, poses) if return_poses else scans
