"""CAM within the arm's reach: roughing leaves what the arm cannot reach (and never circles
it), gouge strokes go across the grain where downhill is out of reach, collinear moves are
merged within tolerance. Unit tests with stand-in reach maps on a small sphere; the whole
job against the robot solver is in test_cam_job.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from sculptor.artifacts.toolpath import MoveKind, Pass
from sculptor.cam.bands import Bands
from sculptor.cam.geometry import MeshQuery, Stock
from sculptor.cam.gouge import across_strokes
from sculptor.cam.moves import merge_collinear, simplify_indices
from sculptor.cam.rough import Roughing, side_setup
from sculptor.cam.stock import StockModel
from sculptor.profiles import load_tool


class FakeReach:
    """Reach map for tests: the arm reaches a piece-frame point unless ``bad(p)``."""

    active = True

    def __init__(self, bad):
        self.bad = bad

    def ok(self, pos, frames, turntable_rad):
        return ~self.bad(np.asarray(pos, float).reshape(-1, 3))


@pytest.fixture(scope="module")
def sphere():
    m = trimesh.creation.icosphere(3, radius=25.0)
    m.apply_translation([0, 0, 40.0])
    return MeshQuery(m)


def _rough(sphere, reach):
    stock = StockModel(Stock("box", size_mm=(80.0, 80.0, 80.0)), sphere, 4.0)
    r = Roughing(sphere, stock, load_tool("flat-10mm"), allowance_mm=0.9, grid_mm=3.0,
                 simplify_mm=0.5, robot_dir=(-1.0, 0.0, 0.0), reach=reach)
    setup = side_setup(0.0, 0.0, (-1.0, 0.0, 0.0))
    before = stock.material.copy()
    p = r.plan_setup(setup, 0)
    return p, setup, stock, before


def test_roughing_leaves_what_the_arm_cannot_reach(sphere):
    p_all, _, _, _ = _rough(sphere, None)
    p, setup, stock, before = _rough(sphere, FakeReach(lambda q: q[:, 2] > 55.0))
    assert p.n_moves > 100 and p_all.n_moves > p.n_moves
    assert p.position_mm[:, 2].max() <= 55.0  # no move where the arm cannot go
    assert p_all.position_mm[:, 2].max() > 60.0
    # the wood above is left in the stock model (rest), the wood below is cut
    c = stock.centers
    high = before & (c[:, 2] > 62.0)
    low = before & (c[:, 2] < 45.0) & (c[:, 0] < -30.0)
    assert stock.material[high].mean() > 0.9
    # (the stock model holds what the moves swept: the contour loops leave some corners)
    assert stock.material[low].mean() < 0.2
    assert p.stats["arm_unreachable_moves"] == 0


def _winding(uv: np.ndarray, c: np.ndarray) -> float:
    a = np.arctan2(uv[:, 1] - c[1], uv[:, 0] - c[0])
    d = np.diff(a)
    d = (d + math.pi) % (2 * math.pi) - math.pi
    return float(d.sum() / (2 * math.pi))


def test_roughing_never_circles_an_unreachable_pose(sphere):
    # a thin column of poses the arm cannot take (as around the wrist singularity),
    # off the sphere, in the middle of the wood the side setup clears
    centre = np.array([0.0, -33.0])  # (y, z - 40) offsets from the sphere's centre
    reach = FakeReach(lambda q: np.hypot(q[:, 1] - centre[0], q[:, 2] - 40.0 - centre[1])
                      < 2.5)
    p, setup, _, _ = _rough(sphere, reach)
    R = setup.setup_from_piece
    c_uv = (np.array([0.0, centre[0], 40.0 + centre[1]]) @ R.T)[:2]
    uvh = p.position_mm @ R.T
    cut = p.kind == MoveKind.CUT
    starts = np.flatnonzero(cut & ~np.concatenate([[False], cut[:-1]]))
    assert len(starts) > 5
    for a in starts:
        b = a
        while b + 1 < len(cut) and cut[b + 1]:
            b += 1
        run = uvh[max(a - 1, 0):b + 1, :2]
        assert abs(_winding(run, c_uv)) < 0.75, (a, b)
    # and without the reach map, the contour loops do circle that spot
    p0, _, _, _ = _rough(sphere, None)
    uvh0 = p0.position_mm @ R.T
    cut0 = p0.kind == MoveKind.CUT
    w = [abs(_winding(uvh0[max(a - 1, 0):b + 1, :2], c_uv)) for a, b in _runs(cut0)]
    assert max(w) >= 0.75


def _runs(mask):
    idx = np.flatnonzero(mask)
    for part in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1):
        if len(part):
            yield part[0], part[-1]


def test_across_grain_strokes_are_horizontal(sphere):
    bands = Bands(6)
    tool = load_tool("gouge-12mm")
    k = 0  # band facing +x
    targets = np.array([[25.0 * math.cos(a), 25.0 * math.sin(a), 40.0 + z]
                        for a in np.radians([-10, 0, 10]) for z in (-5.0, 0.0, 5.0)])
    strokes = across_strokes(sphere, bands, k, tool, 3.97, 1.0, 2.5, targets)
    assert strokes
    for s in strokes:
        assert np.ptp(s.points[:, 2]) < 1e-6  # constant height: across a vertical grain
        assert np.all(s.normals @ bands.direction(k) > 0.2)
        assert np.linalg.norm(s.points - [0, 0, 40.0], axis=1).max() < 25.1
    near = np.concatenate([s.points for s in strokes])
    d = np.linalg.norm(near[:, None] - targets[None], axis=2).min(1)
    assert d.max() < 3.97 + 1.0 + 1e-6  # only around the points it was asked for
    assert not across_strokes(sphere, bands, bands.n_side, tool, 3.97, 1.0, 2.5, targets)


def test_simplify_keeps_within_tolerance():
    rng = np.random.default_rng(3)
    t = np.linspace(0, 1, 400)
    line = np.column_stack([t * 100, 20 * np.sin(t * 6), t * 5]) + rng.normal(0, 0.01, (400, 3))
    idx = simplify_indices(line, 0.2)
    assert idx[0] == 0 and idx[-1] == 399 and len(idx) < 60
    kept = line[idx]
    for i in range(400):  # every point near the kept polyline
        a, b = kept[:-1], kept[1:]
        d = b - a
        s = np.clip(np.einsum("ij,ij->i", line[i] - a, d) / np.einsum("ij,ij->i", d, d), 0, 1)
        assert np.linalg.norm(a + s[:, None] * d - line[i], axis=1).min() <= 0.2 + 1e-9


def test_merge_collinear_only_merges_cuts_with_one_frame():
    n = 50
    pos = np.column_stack([np.arange(n, dtype=float), np.zeros(n), np.zeros(n)])
    kind = np.full(n, MoveKind.CUT, np.int8)
    kind[[0, 20]] = MoveKind.RAPID
    fr = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    fr[30:] = np.diag([1.0, -1.0, -1.0])
    p = Pass(name="t", operation="rough", strategy="x", tool_id="flat-10mm",
             position_mm=pos, tool_frame=fr, feed_mm_s=np.full(n, 40.0), kind=kind,
             turntable_rad=np.zeros(n))
    m = merge_collinear(p, 0.1)
    assert m.n_moves < 12
    assert set(np.flatnonzero(m.kind == MoveKind.RAPID)) == {0, int(np.flatnonzero(
        m.position_mm[:, 0] == 20)[0])}
    assert {0.0, 19.0, 20.0, 29.0, 30.0, 49.0} <= set(m.position_mm[:, 0])


def test_long_cuts_are_split_evenly():
    from sculptor.cam.moves import split_long

    pos = np.array([[0, 0, 0], [100, 0, 0], [105, 0, 0], [105, 50, 0.0]])
    p = Pass(name="t", operation="rough", strategy="x", tool_id="flat-10mm",
             position_mm=pos, tool_frame=np.broadcast_to(np.eye(3), (4, 3, 3)),
             feed_mm_s=np.ones(4), kind=np.array([0, 2, 2, 0]), turntable_rad=np.zeros(4))
    q = split_long(p, 30.0)
    np.testing.assert_allclose(q.position_mm[:, 0], [0, 25, 50, 75, 100, 105, 105])
    assert q.kind.tolist() == [0, 2, 2, 2, 2, 2, 0]  # the long rapid stays one move
    seg = np.linalg.norm(np.diff(q.position_mm, axis=0), axis=1)
    assert seg[q.kind[1:] == MoveKind.CUT].max() <= 30.0
