"""Drop-cutter on real geometry (tests/data/nefertiti-4k.ply, 220 mm): culling changes no
CL, the CL ball touches the design and is free above it, the holder floor is the highest
vertex within the grown holder disk."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import trimesh

from sculptor.cam import Cutter, drop_cutter
from sculptor.cam.bands import Bands
from sculptor.cam.dropcutter import Adjacency, holder_floor

DESIGN = Path(__file__).parents[1] / "data" / "nefertiti-4k.ply"


@pytest.fixture(scope="module")
def design():
    return trimesh.load(DESIGN, force="mesh")


def band(design, k: int, step_u: float, step_v: float):
    """Vertices in band k's frame (k < 8: side bands, 8: top) and a grid over them."""
    R = Bands(8).frame(k)
    v = np.asarray(design.vertices) @ R.T
    lo, hi = v.min(0) - 4.0, v.max(0) + 4.0
    return R, v, np.arange(lo[0], hi[0], step_u), np.arange(lo[1], hi[1], step_v)


@pytest.mark.parametrize("cutter,k,steps", [
    (Cutter.ball(3.0), 1, (0.5, 1.0)),
    (Cutter.ball(3.0), 8, (0.5, 1.0)),
    (Cutter.flat(5.0), 3, (1.0, 1.5)),
    (Cutter("bull", 6.0, 1.0), 5, (3.0, 4.0)),
])
def test_culling_gives_the_same_cl(design, cutter, k, steps):
    R, v, us, vs = band(design, k, *steps)
    f = np.asarray(design.faces)
    edges = Adjacency(design).ball_edges(R) if cutter.kind == "ball" else None
    # a mask as finishing uses it: a band of the grid with holes
    uu, vv = np.meshgrid(us, vs)
    mask = (np.sin(uu / 7.0) + np.cos(vv / 11.0) > -0.5)
    for m in (None, mask):
        cl = drop_cutter(v, f, cutter, us, vs, edges, mask=m)
        ref = drop_cutter(v, f, cutter, us, vs, edges, mask=m, cull=False)
        assert np.isfinite(ref).mean() > 0.3
        np.testing.assert_array_equal(cl, ref)


def _distance(tris: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(n,) exact distance of points p (n, 3) to the triangles tris (t, 3, 3)."""
    t = len(tris)
    q = np.repeat(p, t, axis=0)
    c = trimesh.triangles.closest_point(np.tile(tris, (len(p), 1, 1)), q)
    return np.linalg.norm(c - q, axis=1).reshape(len(p), t).min(axis=1)


def test_ball_cl_touches_the_design_and_is_free_above(design):
    R, v, us, vs = band(design, 2, 0.7, 2.3)
    cl = drop_cutter(v, np.asarray(design.faces), Cutter.ball(3.0), us, vs,
                     Adjacency(design).ball_edges(R))
    jv, ju = np.nonzero(np.isfinite(cl))
    pick = np.random.default_rng(0).choice(len(ju), 150, replace=False)
    centre = np.column_stack([us[ju[pick]], vs[jv[pick]], cl[jv[pick], ju[pick]] + 3.0])
    tris = v[np.asarray(design.faces)]
    np.testing.assert_allclose(_distance(tris, centre), 3.0, atol=1e-6)
    assert (_distance(tris, centre + [0.0, 0.0, 0.01]) > 3.0).all()


def test_holder_floor_is_the_highest_vertex_in_the_grown_disk(design):
    R, v, us, vs = band(design, 6, 0.25, 0.9)
    radius, coarse = 22.0, 6.0
    hf = holder_floor(v, np.asarray(design.faces), radius, us, vs, coarse_mm=coarse)
    e = np.asarray(design.edges_unique)
    r = radius + np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1).max() \
        + coarse * math.sqrt(2) / 2
    cx = np.arange(us[0], us[-1] + coarse, coarse)
    cy = np.arange(vs[0], vs[-1] + coarse, coarse)
    d2 = (cx[None, :, None] - v[None, None, :, 0]) ** 2 + \
        (cy[:, None, None] - v[None, None, :, 1]) ** 2
    ref = np.where(d2 <= r * r, v[None, None, :, 2], -np.inf).max(axis=2)
    ix = np.clip(np.rint((us - cx[0]) / coarse).astype(int), 0, len(cx) - 1)
    iy = np.clip(np.rint((vs - cy[0]) / coarse).astype(int), 0, len(cy) - 1)
    np.testing.assert_array_equal(hf, ref[np.ix_(iy, ix)])
    # and it never lets the holder disk into the design: an exact flat drop is not higher
    flat = drop_cutter(v, np.asarray(design.faces), Cutter.flat(radius), us[::8], vs[::4])
    assert (hf[::4, ::8] >= flat - 1e-9).all()


def _surface_samples(tris: np.ndarray, n: int) -> np.ndarray:
    """Points on the triangles (t, 3, 3) on a barycentric grid of n steps a side."""
    i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1))
    ok = i + j <= n
    b1, b2 = i[ok] / n, j[ok] / n
    w = np.column_stack([1 - b1 - b2, b1, b2])  # (k, 3)
    return np.einsum("kc,tcd->tkd", w, tris).reshape(-1, 3)


@pytest.mark.parametrize("k", [2, 8])
def test_bull_cl_is_the_exact_drop_of_its_profile(design, k):
    """Bull-nose (R 6, corner 2) against a brute-force drop: the cutter's profile
    (flat to R - r, then the torus) dropped on dense points of every triangle near a
    patch of the grid. The drop-cutter is never below it and above it by no more than
    the sampling allows (0.002 mm seen)."""
    R, r = 6.0, 2.0
    Rm, v, us, vs = band(design, k, 0.37, 0.53)
    f = np.asarray(design.faces)
    cl = drop_cutter(v, f, Cutter("bull", R, r), us, vs)
    fin = np.argwhere(np.isfinite(cl))
    jv, ju = fin[len(fin) // 2]
    sl = (slice(jv, jv + 6), slice(ju, ju + 12))  # a 4 x 3 mm patch
    qx, qy = np.meshgrid(us[sl[1]], vs[sl[0]])
    tris = v[f]
    near = (tris[:, :, 0].min(1) < qx.max() + R) & (tris[:, :, 0].max(1) > qx.min() - R) & \
        (tris[:, :, 1].min(1) < qy.max() + R) & (tris[:, :, 1].max(1) > qy.min() - R)
    p = _surface_samples(tris[near], 50)
    rho = np.hypot(qx.reshape(-1, 1) - p[:, 0], qy.reshape(-1, 1) - p[:, 1])
    t = np.maximum(rho - (R - r), 0.0)
    ref = np.where(rho <= R, p[:, 2] - r + np.sqrt(np.maximum(r * r - t * t, 0.0)), -np.inf)
    ref = ref.max(axis=1).reshape(qx.shape)
    got = cl[sl]
    assert np.isfinite(ref).all()
    assert (got >= ref - 1e-6).all()
    assert (got - ref).max() < 0.01
