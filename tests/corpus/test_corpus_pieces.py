"""Single pieces: solid, watertight, one body, standing on a flat base, realistic size."""

import numpy as np
import pytest
import trimesh

from sculptor.artifacts.sdf import TRUNCATION_VOXELS, grid_world_from_voxel, voxel_centers
from sculptor.corpus import (
    KINDS, footprint_mm2, make_piece, make_piece_sdf, sdf_grid, validate_piece,
)
from sculptor.errors import UserError


@pytest.fixture(scope="module", params=KINDS)
def piece(request):
    mesh, sdf = make_piece_sdf(11, request.param)
    return request.param, mesh, sdf


def test_piece_is_one_watertight_solid_standing_on_its_base(piece):
    kind, mesh, _ = piece
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.body_count == 1
    assert mesh.volume > 0
    assert 250.0 <= mesh.bounds[1, 2] <= 600.0
    assert mesh.bounds[0, 2] == 0.0
    # a flat underside at z = 0, centred on the origin, carrying the centre of mass
    base = (np.abs(mesh.vertices[mesh.faces][:, :, 2]).max(1) == 0)
    assert footprint_mm2(mesh) > 0.2 * mesh.extents[0] * mesh.extents[1]
    foot = mesh.vertices[mesh.faces[base].ravel()]
    centre = (foot.min(0) + foot.max(0)) / 2
    assert np.abs(centre[:2]).max() < 0.05 * mesh.extents[:2].max()
    assert validate_piece(mesh) is None
    # slender carving in the block: wider than deep is fine, but never wider than tall
    if kind != "bust":
        assert mesh.extents[2] > 1.5 * mesh.extents[:2].max()


def test_grid_is_a_signed_distance_of_the_mesh(piece):
    """The dataset grid agrees with the exact distance to the mesh it was meshed from."""
    _, mesh, sdf = piece
    res = 32
    vals, extent = sdf_grid(sdf, mesh, res)
    w = grid_world_from_voxel(mesh.bounds[1, 2], extent, res)
    vox, trunc = w[0, 0], TRUNCATION_VOXELS * w[0, 0]
    assert vals.shape == (res,) * 3 and np.abs(vals).max() <= trunc + 1e-6
    assert (vals < 0).any() and (vals > 0).any()
    c = voxel_centers(w, res)
    band = np.argwhere(np.abs(vals) < 0.8 * trunc)
    pick = band[np.random.default_rng(0).choice(len(band), 150, replace=False)]
    pts = c[tuple(pick.T)]
    v = vals[tuple(pick.T)]
    _, dist, _ = trimesh.proximity.closest_point(mesh, pts)
    err = np.abs(np.abs(v) - dist)
    assert np.median(err) < 0.15 * vox and np.percentile(err, 90) < 0.6 * vox
    inside = mesh.contains(pts)
    clear = dist > 0.5 * vox
    assert np.array_equal(inside[clear], v[clear] < 0)


def test_same_seed_same_piece_other_seed_other_piece():
    a, pa = make_piece(5, "abstract")
    b, pb = make_piece(5, "abstract")
    c, _ = make_piece(6, "abstract")
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.faces, b.faces)
    assert pa == pb and pa["seed"] == 5 and pa["kind"] == "abstract"
    assert a.vertices.shape != c.vertices.shape or not np.allclose(a.vertices, c.vertices)


def test_unknown_kind_is_a_user_error():
    with pytest.raises(UserError, match="unknown kind"):
        make_piece(1, "dragon")
