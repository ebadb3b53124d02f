"""The gouge carved along lines of voxel centres (sim.sheet, carve_pass(method="auto"))
against the voxel engine's block enumeration (method="voxel", and cull=False: every voxel
of each sub-segment's box). The lines only choose which voxels to test exactly, so both
must remove the very same voxels and credit the same volume to every move: on random
6-DOF strokes and on a small real job planned by the CAM (roughing, then gouge bands)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from sculptor.artifacts.toolpath import MoveKind
from sculptor.profiles import load_tool
from sim import carve, dexel, sheet
from sim.deviation import DesignDistance, carved_mesh, deviation_figures, smoothed

from test_sim_cull import _strokes

DATA = Path(__file__).parents[1] / "data"


def _grid(res: float, size=(60.0, 60.0, 40.0), origin=(-30.0, -30.0, 0.0)) -> carve.Grid:
    shape = carve.grid_shape(size, res)
    return carve.Grid(np.array(origin), res, shape, torch.ones(int(np.prod(shape)),
                                                                 dtype=torch.bool))


@pytest.mark.parametrize("seed,res", [(3, 0.5), (4, 1.0), (7, 0.7)])
def test_lines_remove_the_same_voxels_as_the_voxel_engine(seed, res):
    pts, frames, kinds = _strokes(seed)
    cut = carve.make_cutter(load_tool("gouge-12mm"), res)
    subs = carve.subdivide(pts, frames, kinds, cut)
    out = []
    for kw in ({"method": "auto"}, {"method": "voxel"}, {"cull": False}):
        g = _grid(res)
        out.append((g, carve.carve_pass(g, subs, cut, len(pts), **kw)))
    (g_l, r_l), (g_v, r_v), (g_0, r_0) = out
    assert int((~g_v.occ).sum()) > 1000  # the strokes really cut
    assert torch.equal(g_l.occ, g_v.occ) and torch.equal(g_l.occ, g_0.occ)
    np.testing.assert_allclose(r_l, r_v)
    rapid = kinds == int(MoveKind.RAPID)
    assert r_l[rapid].sum() > 0  # a rapid through the block is credited the same


def test_line_candidates_hold_every_cut_voxel_and_little_more():
    # per sub-segment, ignoring what earlier ones removed: every voxel centre the exact
    # test accepts anywhere in the box is among the line candidates
    res = 0.5
    pts, frames, kinds = _strokes(8)
    cut = carve.make_cutter(load_tool("gouge-12mm"), res)
    subs = carve.subdivide(pts, frames, kinds, cut)
    g = _grid(res)
    n = len(subs.a)
    lp = sheet.plan(g, subs, cut)
    f_l, s_l = sheet.candidates(g, lp, torch.arange(n))
    nx = g.n
    cand = set((s_l * nx + f_l).tolist())
    shape = np.array(g.shape)
    lo_t, hi_t = np.array(cut.box_lo), np.array(cut.box_hi)
    corners = np.array(np.meshgrid(*zip(lo_t, hi_t), indexing="ij")).reshape(3, -1).T
    cw = np.einsum("nij,cj->nci", subs.rot, corners)
    wlo = np.minimum(cw.min(1) + subs.a, cw.min(1) + subs.a + subs.d)
    whi = np.maximum(cw.max(1) + subs.a, cw.max(1) + subs.a + subs.d)
    ilo = np.clip(np.floor((wlo - g.origin) / res - 0.5).astype(np.int64), 0, shape)
    ihi = np.clip(np.ceil((whi - g.origin) / res - 0.5).astype(np.int64) + 1, 0, shape)
    blo = ilo // carve.BLOCK
    bd = np.maximum(-(-ihi // carve.BLOCK), blo) - blo
    sw = carve._Swept(g, subs, cut, ilo, ihi, blo, bd, cull=False)
    f_b, s_b = sw.block_candidates(0, n)
    hit = sw.hits(f_b, s_b)
    hits = (s_b[hit] * nx + f_b[hit]).tolist()
    assert len(hits) > 5000
    assert set(hits) <= cand
    assert len(cand) < 3 * len(hits)  # tight: the boxes hold many times more voxels
    assert len(cand) < 0.2 * len(f_b)


@pytest.fixture(scope="module")
def small_job(tmp_path_factory):
    """A real job: the Nefertiti scan at half size (110 mm), draft roughing + gouge bands."""
    from sculptor.cam import plan_job

    d = tmp_path_factory.mktemp("lines")
    m = trimesh.load(DATA / "nefertiti-4k.ply", force="mesh")
    m.apply_scale(0.5)
    m.export(d / "design.stl")
    tp = plan_job(d / "design.stl", d / "job", stock="60x90x115", quality="draft",
                  progress=False)
    return tp, trimesh.load(d / "job" / "design.stl", force="mesh")


def test_real_job_carves_the_same_with_lines(small_job):
    tp, design = small_job
    res = 1.0
    gouge = [i for i, p in enumerate(tp.passes) if load_tool(p.tool_id).kind == "gouge"]
    assert gouge and gouge[0] > 0
    g = carve.stock_grid(tp, res)
    for p in tp.passes[:gouge[0]]:  # roughing: the same for both
        dexel.carve_pass_dexel(g, p.position_mm, p.kind, dexel.pass_axis(p.tool_frame),
                               load_tool(p.tool_id))
    grids = {m: carve.Grid(g.origin, res, g.shape, g.occ.clone()) for m in ("auto", "voxel")}
    for i in gouge:
        p = tp.passes[i]
        cut = carve.make_cutter(load_tool(p.tool_id), res)
        subs = carve.subdivide(p.position_mm, p.tool_frame, p.kind, cut)
        rem = {m: carve.carve_pass(gr, subs, cut, p.n_moves, method=m)
               for m, gr in grids.items()}
        np.testing.assert_allclose(rem["auto"], rem["voxel"])
    a, v = grids["auto"], grids["voxel"]
    assert g.volume_mm3 - v.volume_mm3 > 1000  # the gouge bands cut
    assert a.volume_mm3 == v.volume_mm3
    assert torch.equal(a.occ, v.occ)
    dist = DesignDistance(design)
    figs = []
    for gr in (a, v):
        raw = carved_mesh(gr.as_numpy(), gr.origin, res, smooth=0)
        figs.append(deviation_figures(raw, dist(raw.vertices), 0, res, 0.5))
    assert figs[0] == figs[1]
    # the smoothed surface for looking at, from the raw one without a second marching cubes
    np.testing.assert_array_equal(smoothed(raw).vertices,
                                  carved_mesh(v.as_numpy(), v.origin, res).vertices)
