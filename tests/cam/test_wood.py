"""The wood model of the gouge finishing: exact distances, conservative carving, body."""

import math

import numpy as np

from sculptor.cam.moves import gouge_frames
from sculptor.cam.wood import BODY_MARGIN_MM, BodyCheck, WoodGrid
from sculptor.profiles import load_robot, load_tool, tool_body_sections


def _slab(thick_mm: float, v: float = 2.0):
    """Wood voxel centres of a 80 x 60 mm slab from z = 0 up to ``thick_mm``."""
    xs, ys, zs = np.arange(-40, 40, v) + v / 2, np.arange(-30, 30, v) + v / 2, \
        np.arange(0, thick_mm, v) + v / 2
    c = np.stack(np.meshgrid(xs, ys, zs, indexing="ij"), -1).reshape(-1, 3)
    return c


def _brute(centres, pts, r):
    d = np.linalg.norm(pts[:, None] - centres[None], axis=2).min(1) if len(centres) else \
        np.full(len(pts), np.inf)
    return d >= r


def test_clear_is_exact_after_carving_with_an_old_distance_field():
    rng = np.random.default_rng(3)
    c = _slab(12.0)
    w = WoodGrid(c, np.ones(len(c), bool), 2.0)
    pts = rng.uniform([-50, -40, -10], [50, 40, 25], (400, 3))
    r = rng.uniform(0.5, 9.0, 400)
    assert np.array_equal(w.clear(pts, r), _brute(c, pts, r))
    # take out a block by hand: the cached field is now stale, answers must still be exact
    ijk = np.argwhere(w.occ)
    centres = w.origin + ijk * w.voxel_mm
    gone = (np.abs(centres[:, 0]) < 15) & (centres[:, 2] > 5)
    w.occ[tuple(ijk[gone].T)] = False
    w._removed += int(gone.sum())
    got = w.clear(pts, r)
    assert np.array_equal(got, _brute(centres[~gone], pts, r))
    assert w.stats["exact_checks"] > 0


def test_a_stroke_takes_out_only_wood_in_the_path_of_its_edge():
    tool = load_tool("gouge-12mm")
    c = _slab(6.0)
    c = c[c[:, 2] > 0]
    w = WoodGrid(c, np.ones(len(c), bool), 2.0)
    before = w.occ.copy()
    # a stroke along +x cutting a layer whose bottom is at z = 3 (outward normal +z)
    P = np.column_stack([np.linspace(-25, 25, 26), np.zeros(26), np.full(26, 3.0)])
    d = np.tile([1.0, 0, 0], (26, 1))
    n = np.tile([0, 0, 1.0], (26, 1))
    fr = gouge_frames(d, n, math.radians(tool.rake_angle_deg))
    k = w.carve_gouge(P, fr, tool, tool.max_chip_depth_mm)
    assert k > 0
    gone = np.argwhere(before & ~w.occ)
    g = w.origin + gone * w.voxel_mm
    assert len(g) == k
    # only within 3/4 of the half width, above the layer's bottom, within the chip (+0.5)
    assert np.abs(g[:, 1]).max() <= 0.75 * tool.width_mm / 2 + 1e-9
    assert g[:, 2].min() > 3.0 - 1e-9
    assert g[:, 2].max() <= 3.0 + tool.max_chip_depth_mm + 0.5 + tool.arc_depth_mm
    assert g[:, 0].min() >= -25 - 2.0 and g[:, 0].max() <= 25 + 2.0
    # the centres right over the stroke, one voxel above its bottom, are all gone
    over = (np.abs(c[:, 1]) < 2) & (np.abs(c[:, 2] - 4.0) < 0.5) & (np.abs(c[:, 0]) < 20)
    ijk = np.rint((c[over] - w.origin) / w.voxel_mm).astype(int)
    assert not w.occ[tuple(ijk.T)].any()


def test_body_check_keeps_shank_holder_and_last_link_off_the_wood():
    tool = load_tool("gouge-12mm")
    robot = load_robot("kuka-kr6-r900")
    body = BodyCheck(tool, robot)
    secs = tool_body_sections(tool)
    tcp_z = float(np.linalg.norm(tool.flange_from_tcp.xyz_mm))
    assert body.t.min() == secs[0].near_mm
    assert math.isclose(body.t.max(), tcp_z + robot.opw.c4_mm)  # wrist centre
    # tool pointing straight down (-z) over a wood block: the body is above, along +z
    fr = gouge_frames(np.array([[1.0, 0, 0]]), np.array([[0, 0, 1.0]]), math.pi / 2 - 1e-9)
    assert np.allclose(fr[0][:, 2], [0, 0, -1], atol=1e-6)
    c = _slab(10.0)
    w = WoodGrid(c, np.ones(len(c), bool), 2.0)
    # TCP 25 mm above the slab's top: the free blade (30 mm) is all that could meet wood
    assert body.clear(w, np.array([[0, 0, 35.0]]), fr).all()
    # TCP 5 mm into the air over the slab: the shank starts 25 mm above the wood: clear
    assert body.clear(w, np.array([[0, 0, 15.0]]), fr).all()
    # TCP below the slab's top by more than the free blade: the shank is in the wood
    assert not body.clear(w, np.array([[0, 0, -25.0]]), fr).all()
    # beside the slab the shank clears it by its radius + the margin, not less
    r = secs[0].radius_mm + BODY_MARGIN_MM
    edge = c[:, 0].max()
    assert body.clear(w, np.array([[edge + r + 0.01, 0, -25.0]]), fr).all()
    assert not body.clear(w, np.array([[edge + r - 0.2, 0, -25.0]]), fr).all()


def test_the_design_skin_counts_like_wood_for_the_body():
    # wood all around a 'design' (a 20 mm cube with no wood centres): a body point inside
    # the cube's middle sees the skin cells (the cube's outer cells) as obstacles
    c = _slab(40.0)
    hole = np.all(np.abs(c - [0, 0, 20]) < 10, axis=1)
    w = WoodGrid(c[~hole], np.ones(int((~hole).sum()), bool), 2.0)
    assert w.skin.sum() > 0
    skin = w.origin + np.argwhere(w.skin) * w.voxel_mm
    assert np.all(np.abs(skin - [0, 0, 20]).max(1) < 10)
    # the skin is one cell thick: the cube's 10 x 10 x 10 cells less its 8 x 8 x 8 core
    assert w.skin.sum() == 10 ** 3 - 8 ** 3
    p = np.array([[1.0, 1.0, 21.0]])
    assert not w.clear(p, 8.5).all()      # the nearest skin cell centre is 8 mm away
    assert w.clear(p, 7.5).all()
    # carving never takes the skin away
    w.occ[:] = False
    assert not w.clear(p, 8.5).all()
