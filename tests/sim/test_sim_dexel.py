"""The dexel engine (fixed-axis rotary passes) against the voxel engine it replaces there.

Axis along a grid axis: the rays pass through the voxel centres, so both engines must
remove exactly the same voxels and give the rapids the same removed volume. Tilted axis:
a voxel is decided by the nearest ray (at most res/2 off along each lattice axis), so the
two may differ on the boundary only: removed volume within 2 %, differing voxels within
one boundary layer, and the deviation figures of a whole simulation within res / 2.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sculptor.artifacts.toolpath import MoveKind
from sculptor.profiles import load_tool
from sim import carve, dexel, run_simulation

from conftest import DOWN, make_job, rot_y
from test_sim_run import RES, _facing_pass


def rot_z(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])


def _walk(seed: int, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """A random walk of moves over and into a 60x60x40 block, three of them rapids."""
    rng = np.random.default_rng(seed)
    pts = np.cumsum(rng.normal(0, 6, (n, 3)), 0) * np.array([1, 1, 0.3]) + [0, 0, 35.0]
    kinds = np.full(n, int(MoveKind.CUT))
    kinds[[0, 10, 25]] = MoveKind.RAPID
    return pts, kinds


def _both(tool_name: str, frame: np.ndarray, seed: int, res: float = 1.5):
    tool = load_tool(tool_name)
    pts, kinds = _walk(seed)
    frames = np.broadcast_to(frame, (len(pts), 3, 3)).copy()
    shape = carve.grid_shape((60.0, 60.0, 40.0), res)
    origin = np.array([-30.0, -30.0, 0.0])
    grids = [carve.Grid(origin, res, shape, torch.ones(int(np.prod(shape)), dtype=torch.bool))
             for _ in range(2)]
    cut = carve.make_cutter(tool, res)
    r_vox = carve.carve_pass(grids[0], carve.subdivide(pts, frames, kinds, cut), cut, len(pts))
    axis = dexel.pass_axis(frames)
    assert axis is not None
    r_dex = dexel.carve_pass_dexel(grids[1], pts, kinds, axis, tool)
    return grids, r_vox, r_dex, kinds


@pytest.mark.parametrize("tool", ["flat-10mm", "ball-6mm", "bull-12mm"])
def test_vertical_axis_is_exact(tool):
    (g_vox, g_dex), r_vox, r_dex, kinds = _both(tool, DOWN, seed=1)
    assert int((~g_vox.occ).sum()) > 200  # the walk really cuts
    assert torch.equal(g_vox.occ, g_dex.occ)
    rapid = kinds == int(MoveKind.RAPID)
    np.testing.assert_allclose(r_dex[rapid], r_vox[rapid])


@pytest.mark.parametrize("tool,frame", [
    ("flat-10mm", DOWN @ rot_y(30)), ("flat-10mm", rot_z(35) @ DOWN @ rot_y(50)),
    ("flat-10mm", rot_z(10) @ DOWN @ rot_y(85)), ("ball-6mm", rot_z(35) @ DOWN @ rot_y(50))])
def test_tilted_axis_agrees_on_the_boundary(tool, frame):
    (g_vox, g_dex), r_vox, r_dex, kinds = _both(tool, frame, seed=0)
    n_vox, n_dex = int((~g_vox.occ).sum()), int((~g_dex.occ).sum())
    assert n_vox > 200
    assert abs(n_dex - n_vox) <= 0.02 * n_vox
    # differences lie on the cut's boundary: (nearly) every differing voxel has a
    # neighbour the two engines agree is cut; the rest are lone voxels grazed by an edge
    diff = (g_vox.occ ^ g_dex.occ).reshape(g_vox.shape)
    both_cut = (~g_vox.occ & ~g_dex.occ).reshape(g_vox.shape).numpy()
    from scipy import ndimage

    near = ndimage.binary_dilation(both_cut, iterations=1)
    assert near[diff.numpy()].mean() >= 0.98
    rapid = kinds == int(MoveKind.RAPID)
    np.testing.assert_allclose(r_dex[rapid], r_vox[rapid], rtol=0.1, atol=25 * 1.5 ** 3)  # boundary voxels


def test_whole_simulation_matches_the_voxel_engine(tmp_path, good_job):
    """The tilted ball facing job: deviation figures agree within res / 2."""
    _, rep = good_job
    assert rep.material["carve_engine_per_pass"] == ["dexel"]
    d = make_job(tmp_path / "job", [_facing_pass()])
    ref = run_simulation(d, res_mm=RES, progress=False, engine="voxel")
    assert ref.material["carve_engine_per_pass"] == ["voxel"]
    a, b = rep.material, ref.material
    assert a["removed_volume_mm3"] == pytest.approx(b["removed_volume_mm3"], rel=0.02)
    for key in ("max_gouge_mm", "rest_max_mm", "rest_p95_mm", "mean_abs_mm", "p99_abs_mm"):
        assert abs(a[key] - b[key]) <= RES / 2, key
    assert abs(a["area_within_tol_ratio"] - b["area_within_tol_ratio"]) <= 0.05
    assert rep.go == ref.go


def test_material_field_ignores_specks_but_not_sheets():
    """A cell of the collision field is material when >= 1/16 of its voxels are: a speck
    the fixed-axis carving can leave on a cut face is not a wall, a 0.5 mm sheet is."""
    import numpy as np

    from sim.replay import MaterialField

    res = 0.5
    occ = np.zeros((40, 40, 40), bool)
    occ[20, 20, 20] = occ[21, 20, 20] = True  # a speck of 2 voxels
    f = MaterialField.from_occupancy(occ, np.zeros(3), res)
    p = np.array([[10.25, 10.25, 10.25]])  # at the speck
    assert f.at(p)[0] > 50.0
    occ[20:24, 20:24, 21] = True  # a 0.5 mm sheet across the cell
    f = MaterialField.from_occupancy(occ, np.zeros(3), res)
    assert f.at(p)[0] == 0.0
    assert abs(f.at(p + [0, 0, 6.0])[0] - 6.0) <= 2.0
