"""The voxel engine's swept-box cull (sim.carve.carve_pass(cull=True)) against the plain
engine testing every voxel of each sub-segment's axis-aligned box: the cull only skips
voxels no primitive can reach, so both must remove the very same voxels and credit the
same volume to every move, for the gouge (6-DOF, turning frames) and rotary cutters."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from sculptor.artifacts.toolpath import MoveKind
from sculptor.profiles import load_tool
from sim import carve


def _strokes(seed: int, n: int = 30):
    """A random walk over and into a 60x60x40 block with frames turning up to ~40 deg
    between moves and tilted up to ~60 deg from vertical; two rapids."""
    rng = np.random.default_rng(seed)
    pts = np.cumsum(rng.normal(0, 4, (n, 3)), 0) * np.array([1, 1, 0.3]) + [0, 0, 37.0]
    rv = np.cumsum(rng.normal(0, 0.35, (n, 3)), 0).clip(-1.0, 1.0)
    down = np.diag([1.0, -1.0, -1.0])  # tool z pointing down
    frames = Rotation.from_rotvec(rv).as_matrix() @ down
    kinds = np.full(n, int(MoveKind.CUT))
    kinds[[0, 15]] = MoveKind.RAPID
    return pts, frames, kinds


@pytest.mark.parametrize("tool,seed,res", [("gouge-12mm", 3, 0.5), ("gouge-12mm", 4, 1.0),
                                           ("ball-6mm", 5, 1.5), ("bull-12mm", 6, 1.5)])
def test_cull_removes_the_same_voxels(tool, seed, res):
    pts, frames, kinds = _strokes(seed)
    cut = carve.make_cutter(load_tool(tool), res)
    subs = carve.subdivide(pts, frames, kinds, cut)
    shape = carve.grid_shape((60.0, 60.0, 40.0), res)
    out = []
    for cull in (True, False):
        g = carve.Grid(np.array([-30.0, -30.0, 0.0]), res, shape,
                       torch.ones(int(np.prod(shape)), dtype=torch.bool))
        out.append((g, carve.carve_pass(g, subs, cut, len(pts), cull=cull)))
    (g1, r1), (g0, r0) = out
    assert int((~g0.occ).sum()) > 500  # the strokes really cut
    assert torch.equal(g1.occ, g0.occ)
    np.testing.assert_allclose(r1, r0)


def test_cull_skips_most_of_a_gouge_box():
    # the cull is worth it: a tilted gouge's swept box is a thin part of its axis-aligned box
    pts, frames, kinds = _strokes(3)
    cut = carve.make_cutter(load_tool("gouge-12mm"), 0.5)
    subs = carve.subdivide(pts, frames, kinds, cut)
    lo, hi = carve._primitives_box(cut.primitives)
    res = 0.5
    kept = total = 0
    for i in range(len(subs.a)):
        a, d, r = subs.a[i], subs.d[i], subs.rot[i]
        cw = (r @ np.array(np.meshgrid(*zip(lo, hi), indexing="ij")).reshape(3, -1)).T
        blo = np.minimum(cw.min(0) + a, cw.min(0) + a + d)
        bhi = np.maximum(cw.max(0) + a, cw.max(0) + a + d)
        axes = [np.arange(blo[j], bhi[j], res) for j in range(3)]
        x = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        m = carve._in_swept_box(torch.as_tensor(x - a, dtype=torch.float32),
                                torch.tensor(r, dtype=torch.float32).expand(len(x), 3, 3),
                                torch.tensor(d, dtype=torch.float32).expand(len(x), 3),
                                torch.as_tensor(lo, dtype=torch.float32),
                                torch.as_tensor(hi, dtype=torch.float32), 0.0)
        kept += int(m.sum())
        total += len(x)
    assert kept < 0.5 * total, (kept, total)
