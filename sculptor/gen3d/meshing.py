"""Grid -> design mesh: keep one component, cut a flat base, marching cubes, checks.

Every generated grid (R, R, R), normalised SDF (negative inside, one unit = the
truncation distance = 4 voxels), goes through `grid_to_design_mesh`, which returns a
single watertight, winding-consistent mesh in the piece frame (mm, +Z up, flat base at
z = 0, base centroid on the origin), scaled to the asked height, and the checks it passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh
from scipy import ndimage
from skimage import measure

from sculptor.artifacts.sdf import TRUNCATION_VOXELS

UNIT_PER_VOXEL = 1.0 / TRUNCATION_VOXELS  # normalised SDF units per voxel


@dataclass
class MeshResult:
    """A repaired design mesh and what was checked."""

    mesh: trimesh.Trimesh | None  # piece frame, mm (None if nothing was inside)
    checks: dict[str, bool] = field(default_factory=dict)
    kept_fraction: float = 0.0  # inside volume kept by the one-component repair
    unit_points: np.ndarray | None = None  # (n, 3) surface points in grid units [0, 1]

    @property
    def valid(self) -> bool:
        return bool(self.checks) and all(self.checks.values())


def _upsample(grid: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return grid
    return ndimage.zoom(grid, factor, order=1, mode="nearest", grid_mode=True)


BASE_MIN_FRACTION = 0.25  # the base's area vs the largest section near the bottom
BASE_ZONE = 0.3  # "near the bottom": the lowest 30 % of the occupied height


def base_layer(areas: np.ndarray) -> int | None:
    """Index of the layer to cut the flat base on, from the inside area of each z layer
    (R,): the lowest layer with at least 2 inside samples and at least
    ``BASE_MIN_FRACTION`` of the largest section in the lowest ``BASE_ZONE`` of the
    occupied height. A pointed or stray tip below the real foot is sawn off, as a
    carver would, instead of becoming a base too small to stand on."""
    occupied = np.nonzero(areas >= 2)[0]
    if len(occupied) == 0:
        return None
    lo, hi = int(occupied[0]), int(occupied[-1])
    zone = areas[lo:lo + max(1, int(np.ceil(BASE_ZONE * (hi - lo + 1))))]
    need = max(2.0, BASE_MIN_FRACTION * float(zone.max()))
    return lo + int(np.nonzero(zone >= need)[0][0])


def repair_grid(grid: np.ndarray, unit_per_voxel: float = UNIT_PER_VOXEL
                ) -> tuple[np.ndarray, float, float]:
    """Keep the largest face-connected inside component, fill cavities, cut a flat base.

    grid : (R, R, R) normalised SDF; unit_per_voxel: SDF units per sample spacing.
    Returns (grid', z_cut in voxel index units,
    kept inside fraction). ``z_cut`` lies half a voxel below the base layer
    (``base_layer``), on which marching cubes puts the base vertices exactly.
    """
    g = np.asarray(grid, np.float32).copy()
    kb = base_layer((g < 0).sum(axis=(0, 1)))
    if kb is None:
        return g, 0.0, 0.0
    z_cut = kb - 0.5
    k = np.arange(g.shape[2], dtype=np.float32)
    plane = ((z_cut - k) * unit_per_voxel)[None, None, :]
    g = np.maximum(g, plane)
    g[:, :, :kb] = plane[:, :, :kb]  # below the base: the plane's own distance only
    # the base layer's inside samples are put at least half a voxel deep, so the base
    # face lies exactly on z_cut (and not on a slope between two layers)
    base = g[:, :, kb]
    g[:, :, kb] = np.where(base < 0, np.minimum(base, -0.5 * unit_per_voxel), base)
    total = int((g < 0).sum())
    labels, n = ndimage.label(g < 0)
    if n == 0:
        return g, z_cut, 0.0
    sizes = np.bincount(labels.ravel())[1:]
    keep = labels == (1 + int(np.argmax(sizes)))
    keep = ndimage.binary_fill_holes(keep)
    g = np.where(keep, np.minimum(g, -1e-3), np.maximum(g, 1e-3)).astype(np.float32)
    return g, z_cut, float(keep.sum()) / total


def component_labels(mesh: trimesh.Trimesh) -> np.ndarray:
    """(n_faces,) int label of each face's edge-connected component."""
    return trimesh.graph.connected_component_labels(mesh.face_adjacency,
                                                    node_count=len(mesh.faces))


def _largest_component(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    labels = component_labels(mesh)
    if len(labels) == 0 or labels.max() == 0:
        return mesh
    keep = labels == np.bincount(labels).argmax()
    mesh.update_faces(keep)
    mesh.remove_unreferenced_vertices()
    return mesh


def grid_to_unit_mesh(grid: np.ndarray, upsample: int = 2) -> tuple[trimesh.Trimesh | None,
                                                                   float, float]:
    """Repaired marching-cubes mesh in grid units (the grid cube is [0, 1]^3), the base
    plane height in grid units and the kept inside fraction."""
    R = grid.shape[0]
    gu = _upsample(np.asarray(grid, np.float32), upsample)
    f = gu.shape[0] / R
    gu, z_cut, kept = repair_grid(gu, UNIT_PER_VOXEL / f)
    if kept == 0.0:
        return None, 0.0, 0.0
    padded = np.pad(gu, 1, constant_values=1.0)
    try:
        v, faces, _, _ = measure.marching_cubes(padded, 0.0)
    except (ValueError, RuntimeError):
        return None, 0.0, 0.0
    v = (v - 1 + 0.5) / f / R  # fine index -> grid units, voxel centres at (i + .5) / R
    mesh = trimesh.Trimesh(v, faces[:, ::-1], process=True)
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    mesh = _largest_component(mesh)
    trimesh.repair.fix_normals(mesh)
    return mesh, (z_cut + 0.5) / f / R, kept


def stands(mesh: trimesh.Trimesh, tol: float = 1e-6) -> tuple[bool, bool]:
    """(has a flat base at its lowest z, centre of mass above the base's convex hull)."""
    from shapely.geometry import MultiPoint, Point

    z0 = mesh.vertices[:, 2].min()
    base = mesh.vertices[np.abs(mesh.vertices[:, 2] - z0) < tol * max(1.0, mesh.scale)]
    if len(base) < 3:
        return False, False
    hull = MultiPoint([tuple(p) for p in base[:, :2]]).convex_hull
    flat = hull.area > 1e-4 * mesh.scale ** 2
    com = mesh.center_mass if mesh.is_watertight else mesh.centroid
    return bool(flat), bool(flat and hull.buffer(1e-9).contains(Point(com[0], com[1])))


def grid_to_design_mesh(grid: np.ndarray, height_mm: float, upsample: int = 2,
                        n_points: int = 0, seed: int = 0) -> MeshResult:
    """The full repair: grid (R, R, R) -> MeshResult with the mesh in mm, base at z = 0."""
    unit, z_base, kept = grid_to_unit_mesh(grid, upsample)
    if unit is None or len(unit.faces) == 0:
        return MeshResult(None, {"non_empty": False})
    pts = None
    if n_points:
        pts = sample_surface(unit, n_points, seed)
    m = unit.copy()
    z0 = m.vertices[:, 2].min()
    base = m.vertices[np.abs(m.vertices[:, 2] - z0) < 1e-7]
    m.vertices[:, 2] -= z0
    if len(base) >= 3:
        m.vertices[:, :2] -= base[:, :2].mean(0)
    h = float(m.vertices[:, 2].max())
    if h <= 0:
        return MeshResult(None, {"non_empty": False})
    m.apply_scale(height_mm / h)
    flat, stable = stands(m)
    checks = {
        "non_empty": True,
        "watertight": bool(m.is_watertight),
        "winding_consistent": bool(m.is_winding_consistent),
        "single_component": int(component_labels(m).max()) == 0,
        "positive_volume": bool(m.is_watertight and m.volume > 0),
        "flat_base": flat,
        "stable": stable,
        "mostly_one_piece": kept >= 0.9,
    }
    return MeshResult(m, checks, kept, pts)


def sample_surface(mesh: trimesh.Trimesh, n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) float32 area-uniform surface points, reproducible from ``seed``."""
    pts, _ = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(pts, np.float32)
