"""Narrow-band SDF against exact references on real meshes."""

import numpy as np
import pytest
import trimesh

from sculptor.artifacts.sdf import grid_world_from_voxel, voxel_centers
from sculptor.scan.io import load_geometry, strips_to_triangles
from sculptor.scan.sdf import closest_point_on_triangles, mesh_sdf_grid


def test_closest_point_regions_match_brute_force():
    rng = np.random.default_rng(0)
    tri = rng.normal(size=(200, 3, 3))
    p = rng.normal(size=(200, 3)) * 2
    q = closest_point_on_triangles(p, tri[:, 0], tri[:, 1], tri[:, 2])
    # brute force: dense barycentric sampling never beats the analytic closest point
    u, v = np.meshgrid(np.linspace(0, 1, 60), np.linspace(0, 1, 60))
    keep = u + v <= 1
    bary = np.stack([1 - u[keep] - v[keep], u[keep], v[keep]], 1)
    samples = np.einsum("sk,nkd->nsd", bary, tri)
    brute = np.linalg.norm(samples - p[:, None], axis=2).min(axis=1)
    exact = np.linalg.norm(q - p, axis=1)
    assert np.all(exact <= brute + 1e-9)
    assert np.all(brute - exact < 0.05)


@pytest.mark.parametrize("res", [32, 64])
def test_sdf_matches_exact_distance_and_sign(meshes_dir, res):
    mesh = trimesh.load(meshes_dir / "nefertiti-8k.ply")
    assert mesh.is_watertight
    mesh.apply_translation(-mesh.bounds.mean(axis=0) + [0, 0, mesh.extents[2] / 2])
    w = grid_world_from_voxel(mesh.extents[2], mesh.extents.max(), res)
    trunc = 4 * w[0, 0]
    sdf = mesh_sdf_grid(mesh, w, res, trunc)
    pts = voxel_centers(w, res).reshape(-1, 3)
    rng = np.random.default_rng(1)
    band = np.flatnonzero(np.abs(sdf.ravel()) < trunc)
    pick = rng.choice(band, 400, replace=False)
    ref = -trimesh.proximity.signed_distance(mesh, pts[pick])  # trimesh: positive inside
    err = np.abs(sdf.ravel()[pick] - ref)
    assert np.median(err) < 0.01 * w[0, 0]
    assert np.percentile(err, 99) < 0.35 * w[0, 0]
    # sign everywhere: inside exactly where the watertight mesh contains the point
    far = rng.choice(len(pts), 1000, replace=False)
    assert np.mean((sdf.ravel()[far] < 0) == mesh.contains(pts[far])) > 0.995


def test_sign_survives_an_open_base(meshes_dir):
    """The scanned bunny is open at the base: the middle of its body is still inside."""
    mesh = trimesh.load(meshes_dir / "stanford-bunny-8k.ply")
    assert not mesh.is_watertight
    mesh.apply_scale(1000.0)
    res = 48
    centre = mesh.bounds.mean(axis=0)
    w = grid_world_from_voxel(mesh.extents[2], mesh.extents.max(), res)
    w[:3, 3] += centre - [0, 0, mesh.extents[2] / 2]
    sdf = mesh_sdf_grid(mesh, w, res, 4 * w[0, 0])
    c = np.rint(np.linalg.solve(w, np.append(centre, 1))[:3]).astype(int)
    assert sdf[tuple(c)] < 0
    assert sdf[0, 0, 0] > 0 and sdf[-1, -1, -1] > 0
    inside = (sdf < 0).mean()
    assert 0.05 < inside < 0.5


def test_triangle_strips_load_with_consistent_winding(meshes_dir):
    g = load_geometry(meshes_dir / "igea-strips-part.ply", need_faces=True)
    m = trimesh.Trimesh(g.points, g.faces, process=False)
    assert len(g.faces) > 20_000 and m.is_winding_consistent
    t = strips_to_triangles(np.array([0, 1, 2, 3, -1, 4, 5, 6, 6, 7]))
    assert t.tolist() == [[0, 1, 2], [2, 1, 3], [4, 5, 6]]
