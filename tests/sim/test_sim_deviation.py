"""Rest volume above tolerance: the block-wise count equals the voxel-by-voxel one."""

from __future__ import annotations

import numpy as np
import trimesh

from sim.deviation import DesignDistance
from sim.run import rest_voxel_count


def test_rest_voxel_count_is_exact():
    rng = np.random.default_rng(0)
    dist = DesignDistance(trimesh.creation.icosphere(3, radius=12.0))
    res, origin = 0.7, np.array([-15.0, -14.0, -13.0])
    occ = rng.random((41, 39, 38)) < 0.6  # odd sizes: padded blocks
    idx = np.argwhere(occ)
    for tol in (0.5, 2.0):
        want = int((dist(origin + (idx + 0.5) * res) > tol).sum())
        assert 1000 < want < len(idx)
        assert rest_voxel_count(occ, origin, res, dist, tol) == want
